//! `POST` and `DELETE /articles/{slug}/favorite`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use common::auth::AuthUser;
use common::error::ApiError;
use common::responses::SingleArticleResponse;
use events::favorite::{favorite_id, Favorite, FavoriteCommand};

use crate::articles::{article_body, author_profile, live_article, now, registered_user};
use crate::errors::favorite_error;
use crate::favorite_counts::count_with_own;
use crate::users::metadata;
use crate::written::Written;
use crate::AppState;

async fn change_favorite(
    state: AppState,
    caller: AuthUser,
    headers: HeaderMap,
    slug: String,
    favorite: bool,
) -> Result<Written<Json<SingleArticleResponse>>, ApiError> {
    // A deleted article is not found, for an unfavorite too.
    let ((article_id, article), viewer) = tokio::try_join!(
        live_article(&state, &slug),
        registered_user(&state, &caller.user_id),
    )?;
    let id = favorite_id(&article_id, &caller.user_id);
    let command = if favorite {
        FavoriteCommand::Favorite {
            article_id: article_id.clone(),
            user_id: caller.user_id.clone(),
            article_exists: article.is_live(),
            at: now(),
        }
    } else {
        FavoriteCommand::Unfavorite {
            article_id: article_id.clone(),
            user_id: caller.user_id.clone(),
            at: now(),
        }
    };
    let executed = state
        .repository
        .execute::<Favorite>(&id, command, metadata(&headers, Some(&caller.user_id)))
        .await
        .map_err(favorite_error)?;
    let favorited = executed.state.favorited;
    let (snapshot, author) = tokio::try_join!(
        state.favorite_counts.snapshot(&article_id, &id),
        author_profile(&state, &article.author_id, &viewer),
    )?;
    let response = Json(SingleArticleResponse {
        article: article_body(
            &article,
            favorited,
            count_with_own(snapshot, favorited),
            author,
        ),
    });
    Ok(Written::after(&id, &executed, response))
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn favorite(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Written<Json<SingleArticleResponse>>, ApiError> {
    change_favorite(state, caller, headers, slug, true).await
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn unfavorite(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Written<Json<SingleArticleResponse>>, ApiError> {
    change_favorite(state, caller, headers, slug, false).await
}
