//! The read side over HTTP: every answer comes from a read model, never from the events table.

mod profiles;
mod readers;
mod users;

use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use common::aws::Clients;
use common::config::{self, ConfigError, JwtSettings, TableNames};
use common::jwt::JwtKeys;

pub use readers::Readers;

/// What every query handler needs, built once per process.
#[derive(Clone, Debug)]
pub struct AppState {
    pub readers: Readers,
    pub keys: JwtKeys,
}

impl FromRef<AppState> for JwtKeys {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

impl AppState {
    pub fn new(clients: &Clients, tables: &TableNames, jwt: &JwtSettings) -> Self {
        Self {
            readers: Readers::new(clients.dynamodb.clone(), tables.clone()),
            keys: JwtKeys::new(jwt),
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

/// Every read route of the API, under `/api`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/user", get(users::current))
        .route("/api/profiles/{username}", get(profiles::get))
        .with_state(state)
}
