//! `GET /profiles/{username}`.

use axum::extract::{Path, State};
use axum::Json;
use common::auth::MaybeAuthUser;
use common::error::ApiError;
use common::responses::{ProfileBody, ProfileResponse};

use crate::AppState;

#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    Path(username): Path<String>,
) -> Result<Json<ProfileResponse>, ApiError> {
    let user = state
        .readers()
        .await?
        .user_by_username(&username)
        .await?
        .ok_or(ApiError::NotFound("profile"))?;
    let following = match caller.user_id() {
        Some(caller_id) if caller_id != user.user_id => {
            state
                .readers()
                .await?
                .is_following(caller_id, &user.user_id)
                .await?
        }
        _ => false,
    };
    Ok(Json(ProfileResponse {
        profile: ProfileBody {
            username: user.username,
            bio: user.bio,
            image: user.image,
            following,
        },
    }))
}
