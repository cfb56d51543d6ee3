//! Who is calling: `Authorization: Token <jwt>` as axum extractors.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::jwt::JwtKeys;

/// A caller with a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthUser {
    pub user_id: String,
    /// The token as sent, echoed back in `user` responses.
    pub token: String,
}

/// A caller that may or may not have sent a token. A token that is sent must be valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl MaybeAuthUser {
    pub fn user_id(&self) -> Option<&str> {
        self.0.as_ref().map(|user| user.user_id.as_str())
    }
}

fn authenticate(parts: &Parts, keys: &JwtKeys) -> Result<Option<AuthUser>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Token "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::missing_token)?;
    match keys.verify(token) {
        Ok(claims) => Ok(Some(AuthUser {
            user_id: claims.sub,
            token: token.to_owned(),
        })),
        Err(error) => {
            tracing::debug!(%error, "token refused");
            Err(ApiError::missing_token())
        }
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    JwtKeys: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts, &JwtKeys::from_ref(state))?.ok_or_else(ApiError::missing_token)
    }
}

impl<S> FromRequestParts<S> for MaybeAuthUser
where
    S: Send + Sync,
    JwtKeys: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts, &JwtKeys::from_ref(state)).map(MaybeAuthUser)
    }
}
