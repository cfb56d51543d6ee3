//! `POST /users`, `POST /users/login`, `PUT /user`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use common::auth::AuthUser;
use common::error::{ApiError, JsonBody};
use common::responses::{UserBody, UserResponse};
use events::user::{self, Email, FieldError, User, UserCommand, UserUpdate, Username};
use events::Metadata;
use serde::Deserialize;
use uuid::Uuid;

use crate::errors::{user_error, FieldErrorList};
use crate::written::Written;
use crate::AppState;

/// Longest password accepted: Argon2 cost grows with input, and no human types more.
const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub user: T,
}

#[derive(Debug, Deserialize)]
pub struct NewUser {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginUser {
    email: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateUser {
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
    bio: Option<String>,
    image: Option<String>,
}

/// The `user` response for the state of a user aggregate.
fn user_response(user: &User, token: String) -> UserResponse {
    UserResponse {
        user: UserBody {
            email: user.email.clone(),
            token,
            username: user.username.clone(),
            bio: user.bio.clone(),
            image: user.image.clone(),
        },
    }
}

fn password(raw: Option<&str>) -> Result<String, FieldError> {
    match raw {
        None | Some("") => Err(FieldError::blank("password")),
        Some(p) if p.chars().count() > MAX_PASSWORD_CHARS => Err(FieldError::invalid("password")),
        Some(p) => Ok(p.to_owned()),
    }
}

/// Metadata for events caused by this request: actor, and the request id as correlation id.
pub fn metadata(headers: &HeaderMap, actor: Option<&str>) -> Metadata {
    let request_id = headers
        .get("x-request-id")
        .or_else(|| headers.get("x-amzn-trace-id"))
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    Metadata {
        actor: actor.map(str::to_owned),
        correlation_id: Some(request_id.clone()),
        causation_id: None,
        request_id: Some(request_id),
    }
}

#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(Envelope { user: input }): JsonBody<Envelope<NewUser>>,
) -> Result<Written<(StatusCode, Json<UserResponse>)>, ApiError> {
    let mut errors = FieldErrorList::default();
    let email = errors.check(Email::parse(input.email.as_deref().unwrap_or("")));
    let username = errors.check(Username::parse(input.username.as_deref().unwrap_or("")));
    let password = errors.check(password(input.password.as_deref()));
    errors.into_result()?;
    let (Some(email), Some(username), Some(password)) = (email, username, password) else {
        return Err(ApiError::internal("validated fields missing"));
    };

    let password_hash = state.passwords.hash(password).await?;
    let user_id = Uuid::new_v4().to_string();
    let executed = state
        .repository
        .execute::<User>(
            &user_id,
            UserCommand::Register {
                user_id: user_id.clone(),
                email,
                username,
                password_hash,
            },
            metadata(&headers, Some(&user_id)),
        )
        .await
        .map_err(user_error)?;
    let token = state.keys.issue(&user_id).map_err(ApiError::internal)?;
    let response = (
        StatusCode::CREATED,
        Json(user_response(&executed.state, token)),
    );
    Ok(Written::after(&user_id, &executed, response))
}

#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    JsonBody(Envelope { user: input }): JsonBody<Envelope<LoginUser>>,
) -> Result<Json<UserResponse>, ApiError> {
    let mut errors = FieldErrorList::default();
    let email = errors.check(match input.email.as_deref().map(str::trim) {
        None | Some("") => Err(FieldError::blank("email")),
        Some(e) => Ok(e.to_owned()),
    });
    let password = errors.check(password(input.password.as_deref()));
    errors.into_result()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::internal("validated fields missing"));
    };

    let wrong = || ApiError::Unauthorized {
        field: "email or password",
        message: "is invalid",
    };
    // The write side, strongly consistent: a user can log in right after registering.
    let repository = &state.repository;
    let owner = repository
        .store()
        .owner_of(&user::email_key(&email))
        .await
        .map_err(crate::errors::store_error)?;
    let user = match owner.as_deref().and_then(|o| o.strip_prefix("User#")) {
        Some(user_id) => Some(
            repository
                .load::<User>(user_id)
                .await
                .map_err(user_error)?
                .state,
        ),
        None => None,
    };
    // A user registered through a posted event has no password (an empty hash): the decoy
    // answers for it like for an unknown email.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .filter(|hash| !hash.is_empty());
    if !state.passwords.verify(password, hash).await? {
        return Err(wrong());
    }
    let Some(user) = user.filter(User::is_registered) else {
        return Err(wrong());
    };
    let user_id = user.id.clone().unwrap_or_default();
    let token = state.keys.issue(&user_id).map_err(ApiError::internal)?;
    Ok(Json(user_response(&user, token)))
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    JsonBody(Envelope { user: input }): JsonBody<Envelope<UpdateUser>>,
) -> Result<Written<Json<UserResponse>>, ApiError> {
    let mut errors = FieldErrorList::default();
    let email = input
        .email
        .as_deref()
        .and_then(|raw| errors.check(Email::parse(raw)));
    let username = input
        .username
        .as_deref()
        .and_then(|raw| errors.check(Username::parse(raw)));
    let password = input
        .password
        .as_deref()
        .and_then(|raw| errors.check(password(Some(raw))));
    if let Some(bio) = &input.bio {
        errors.check(user::check_bio(bio));
    }
    if let Some(image) = &input.image {
        errors.check(user::check_image(image));
    }
    // No field at all is a valid update that changes nothing (every field is optional in
    // the contract): the aggregate decides no event, and the answer is the user as it is.
    errors.into_result()?;

    let password_hash = match password {
        Some(p) => Some(state.passwords.hash(p).await?),
        None => None,
    };
    let executed = state
        .repository
        .execute::<User>(
            &caller.user_id,
            UserCommand::Update(UserUpdate {
                email,
                username,
                password_hash,
                bio: input.bio,
                image: input.image,
            }),
            metadata(&headers, Some(&caller.user_id)),
        )
        .await
        .map_err(user_error)?;
    let response = Json(user_response(&executed.state, caller.token));
    Ok(Written::after(&caller.user_id, &executed, response))
}
