//! `GET /articles/{slug}/comments`: the article (one `Query`), its comments (one `Query` per
//! MB), then one `BatchGetItem` for their distinct authors and the caller's follows of them.

use axum::extract::{Path, State};
use axum::Json;
use common::auth::MaybeAuthUser;
use common::error::ApiError;
use common::responses::{CommentBody, MultipleCommentsResponse};

use crate::articles::profile;
use crate::readers::Lookup;
use crate::AppState;

#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    Path(slug): Path<String>,
) -> Result<Json<MultipleCommentsResponse>, ApiError> {
    Ok(Json(comments(&state, caller.user_id(), &slug).await?))
}

/// The comments of an article, oldest first, with `following` for the caller.
pub async fn comments(
    state: &AppState,
    caller: Option<&str>,
    slug: &str,
) -> Result<MultipleCommentsResponse, ApiError> {
    let article = state
        .readers()
        .await?
        .article_by_slug(slug)
        .await?
        .ok_or(ApiError::NotFound("article"))?;
    let comments = state.readers().await?.comments(&article.article_id).await?;
    if comments.is_empty() {
        return Ok(MultipleCommentsResponse {
            comments: Vec::new(),
        });
    }
    let mut authors: Vec<String> = comments.iter().map(|c| c.author_id.clone()).collect();
    authors.sort_unstable();
    authors.dedup();
    let found = state
        .readers()
        .await?
        .lookup(&Lookup {
            caller: caller.map(str::to_owned),
            users: authors.clone(),
            follows: authors,
            ..Lookup::default()
        })
        .await?;
    // A comment whose author the users projection has not caught up with yet waits for it.
    let comments = comments
        .into_iter()
        .filter_map(|comment| {
            let author = found.users.get(&comment.author_id)?;
            Some(CommentBody {
                id: comment.comment_id,
                created_at: comment.created_at,
                updated_at: comment.updated_at,
                body: comment.body,
                author: profile(author, &found),
            })
        })
        .collect();
    Ok(MultipleCommentsResponse { comments })
}
