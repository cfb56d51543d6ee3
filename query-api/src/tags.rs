//! `GET /tags`: every tag in use, from the search read model.

use axum::extract::State;
use axum::Json;
use common::error::ApiError;
use common::responses::TagsResponse;

use crate::AppState;

#[tracing::instrument(skip_all)]
pub async fn list(State(state): State<AppState>) -> Result<Json<TagsResponse>, ApiError> {
    let tags = state
        .search()
        .await?
        .tags()
        .await
        .map_err(crate::search_failed)?;
    Ok(Json(TagsResponse { tags }))
}
