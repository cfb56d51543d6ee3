//! `GET /user`.

use axum::extract::State;
use axum::Json;
use common::auth::AuthUser;
use common::error::ApiError;
use common::responses::{UserBody, UserResponse};

use crate::AppState;

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn current(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<UserResponse>, ApiError> {
    let user = state
        .readers()
        .await?
        .user(&caller.user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(UserResponse {
        user: UserBody {
            email: user.email,
            token: caller.token,
            username: user.username,
            bio: user.bio,
            image: user.image,
        },
    }))
}
