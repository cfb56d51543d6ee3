//! `POST` and `DELETE /profiles/{username}/follow`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use common::auth::AuthUser;
use common::error::ApiError;
use common::responses::{ProfileBody, ProfileResponse};
use events::user::{self, User, UserCommand};

use crate::errors::{store_error, user_error};
use crate::users::metadata;
use crate::written::Written;
use crate::AppState;

/// The id of the user holding `username`, from the write side's claims.
async fn user_id_of(state: &AppState, username: &str) -> Result<String, ApiError> {
    let owner = state
        .repository
        .store()
        .owner_of(&user::username_key(username))
        .await
        .map_err(store_error)?;
    owner
        .as_deref()
        .and_then(|o| o.strip_prefix("User#"))
        .map(str::to_owned)
        .ok_or(ApiError::NotFound("profile"))
}

async fn change_follow(
    state: AppState,
    caller: AuthUser,
    headers: HeaderMap,
    username: String,
    follow: bool,
) -> Result<Written<Json<ProfileResponse>>, ApiError> {
    let followee_id = user_id_of(&state, &username).await?;
    let command = if follow {
        UserCommand::Follow {
            followee_id: followee_id.clone(),
        }
    } else {
        UserCommand::Unfollow {
            followee_id: followee_id.clone(),
        }
    };
    let executed = state
        .repository
        .execute::<User>(
            &caller.user_id,
            command,
            metadata(&headers, Some(&caller.user_id)),
        )
        .await
        .map_err(user_error)?;
    let followee = state
        .repository
        .load::<User>(&followee_id)
        .await
        .map_err(user_error)?
        .state;
    let response = Json(ProfileResponse {
        profile: ProfileBody {
            username: followee.username,
            bio: followee.bio,
            image: followee.image,
            following: follow,
        },
    });
    Ok(Written::after(&caller.user_id, &executed, response))
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn follow(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Result<Written<Json<ProfileResponse>>, ApiError> {
    change_follow(state, caller, headers, username, true).await
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn unfollow(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Result<Written<Json<ProfileResponse>>, ApiError> {
    change_follow(state, caller, headers, username, false).await
}
