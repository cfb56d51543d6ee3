//! The write side over HTTP: each request becomes a command on an aggregate; the only effect is appended events.

mod articles;
mod comments;
mod errors;
mod favorite_counts;
mod favorites;
mod password;
mod profiles;
mod users;

use axum::extract::FromRef;
use axum::routing::{delete, post, put};
use axum::Router;
use common::aws::Clients;
use common::config::{self, ConfigError, JwtSettings, TableNames};
use common::jwt::JwtKeys;
use events::{EventStore, Repository, Tables};

pub use favorite_counts::{FavoriteCounts, Snapshot};
pub use password::Passwords;

/// What every command handler needs, built once per process.
#[derive(Clone, Debug)]
pub struct AppState {
    pub repository: Repository,
    pub keys: JwtKeys,
    pub passwords: Passwords,
    /// The articles projection's favorite counts: the write side's one read-model read.
    pub favorite_counts: FavoriteCounts,
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
            favorite_counts: FavoriteCounts::new(clients.dynamodb.clone(), tables),
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
        .route("/api/articles", post(articles::create))
        .route(
            "/api/articles/{slug}",
            put(articles::update).delete(articles::delete),
        )
        .route(
            "/api/articles/{slug}/favorite",
            post(favorites::favorite).delete(favorites::unfavorite),
        )
        .route("/api/articles/{slug}/comments", post(comments::create))
        .route(
            "/api/articles/{slug}/comments/{id}",
            delete(comments::delete),
        )
        .with_state(state)
}
