//! The write side over HTTP: each request becomes a command on an aggregate; the only effect is appended events.

mod errors;
mod password;
mod profiles;
mod users;

use axum::extract::FromRef;
use axum::routing::{post, put};
use axum::Router;
use common::aws::Clients;
use common::config::{self, ConfigError, JwtSettings, TableNames};
use common::jwt::JwtKeys;
use events::{EventStore, Repository, Tables};

pub use password::Passwords;

/// What every command handler needs, built once per process.
#[derive(Clone, Debug)]
pub struct AppState {
    pub repository: Repository,
    pub keys: JwtKeys,
    pub passwords: Passwords,
}

impl FromRef<AppState> for JwtKeys {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

impl AppState {
    pub fn new(clients: &Clients, tables: &TableNames, jwt: &JwtSettings) -> Self {
        let store = EventStore::new(
            clients.dynamodb.clone(),
            Tables {
                events: tables.events.clone(),
                uniques: tables.uniques.clone(),
            },
        );
        Self {
            repository: Repository::new(store),
            keys: JwtKeys::new(jwt),
            passwords: Passwords,
        }
    }

    /// Reads `CONDUIT_TABLE_PREFIX`, `JWT_SECRET` and `JWT_TTL_SECONDS`.
    pub fn from_env(clients: &Clients) -> Result<Self, ConfigError> {
        Ok(Self::new(
            clients,
            &config::table_names_from_env()?,
            &JwtSettings::from_env()?,
        ))
    }
}

/// Every write route of the API, under `/api`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/users", post(users::register))
        .route("/api/users/login", post(users::login))
        .route("/api/user", put(users::update))
        .route(
            "/api/profiles/{username}/follow",
            post(profiles::follow).delete(profiles::unfollow),
        )
        .with_state(state)
}
