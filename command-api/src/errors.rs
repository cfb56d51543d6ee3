//! How write-side failures become HTTP errors: one exhaustive mapping.

use common::error::ApiError;
use events::article::ArticleError;
use events::comment::CommentError;
use events::favorite::FavoriteError;
use events::user::{FieldError, UserError};
use events::{RepositoryError, StoreError};

impl From<FieldErrorList> for ApiError {
    fn from(list: FieldErrorList) -> Self {
        let mut fields = std::collections::BTreeMap::<String, Vec<String>>::new();
        for error in list.0 {
            fields
                .entry(error.field.to_owned())
                .or_default()
                .push(error.message.to_owned());
        }
        ApiError::Unprocessable(fields)
    }
}

/// Every invalid field of one request, reported together.
#[derive(Debug, Default)]
pub struct FieldErrorList(pub Vec<FieldError>);

impl FieldErrorList {
    /// Keeps the value, or records why it was refused.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.into())
        }
    }
}

pub fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Conflict { stream, .. } => ApiError::Conflict(stream),
        StoreError::UniqueTaken { key } => {
            let field = match key.split_once('#') {
                Some(("email", _)) => "email",
                Some(("username", _)) => "username",
                Some(("slug", _)) => "slug",
                _ => "body",
            };
            ApiError::field(field, "has already been taken")
        }
        StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
        StoreError::InvalidCommit(detail) | StoreError::Corrupt(detail) => {
            ApiError::internal(detail)
        }
    }
}

pub fn user_error(error: RepositoryError<UserError>) -> ApiError {
    match error {
        RepositoryError::Domain(UserError::AlreadyRegistered) => {
            ApiError::Conflict("user already registered".into())
        }
        RepositoryError::Domain(UserError::NotRegistered) => ApiError::NotFound("user"),
        RepositoryError::Domain(UserError::CannotFollowSelf) => {
            ApiError::field("username", "cannot follow yourself")
        }
        RepositoryError::Domain(UserError::Field(field)) => FieldErrorList(vec![field]).into(),
        RepositoryError::Store(error) => store_error(error),
        RepositoryError::Schema(error) => ApiError::internal(error),
    }
}

pub fn article_error(error: RepositoryError<ArticleError>) -> ApiError {
    match error {
        RepositoryError::Domain(ArticleError::AlreadyPublished) => {
            ApiError::Conflict("article already published".into())
        }
        RepositoryError::Domain(ArticleError::NotFound) => ApiError::NotFound("article"),
        RepositoryError::Domain(ArticleError::Forbidden) => ApiError::Forbidden,
        RepositoryError::Domain(ArticleError::Field(field)) => FieldErrorList(vec![field]).into(),
        RepositoryError::Store(error) => store_error(error),
        RepositoryError::Schema(error) => ApiError::internal(error),
    }
}

pub fn comment_error(error: RepositoryError<CommentError>) -> ApiError {
    match error {
        RepositoryError::Domain(CommentError::ArticleNotFound) => ApiError::NotFound("article"),
        RepositoryError::Domain(CommentError::CommentNotFound) => ApiError::NotFound("comment"),
        RepositoryError::Domain(CommentError::Forbidden) => ApiError::Forbidden,
        RepositoryError::Store(error) => store_error(error),
        RepositoryError::Schema(error) => ApiError::internal(error),
    }
}

pub fn favorite_error(error: RepositoryError<FavoriteError>) -> ApiError {
    match error {
        RepositoryError::Domain(FavoriteError::ArticleNotFound) => ApiError::NotFound("article"),
        RepositoryError::Store(error) => store_error(error),
        RepositoryError::Schema(error) => ApiError::internal(error),
    }
}
