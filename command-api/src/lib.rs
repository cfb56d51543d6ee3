//! The write side over HTTP: each request becomes a command on an aggregate; the only effect is appended events.

mod articles;
mod comments;
mod errors;
mod events_api;
mod favorite_counts;
mod favorites;
mod password;
mod profiles;
mod users;
pub mod write_wait;
mod written;

use axum::extract::FromRef;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use common::applied::Applied;
use common::config::{self, ConfigError, JwtSettings, TableNames};
use common::jwt::JwtKeys;
use common::projections::{ActiveVersions, DEFAULT_VERSION_TTL};
use events::{EventStore, Repository, Tables};
use std::time::Duration;
use write_wait::WriteWait;

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
    /// The wait before a write answers (see [`write_wait`]).
    pub write_wait: WriteWait,
}

impl FromRef<AppState> for JwtKeys {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

impl AppState {
    pub fn new(
        dynamodb: &aws_sdk_dynamodb::Client,
        tables: &TableNames,
        jwt: &JwtSettings,
    ) -> Self {
        let store = EventStore::new(dynamodb.clone(), Tables::of(tables));
        let active = ActiveVersions::new(dynamodb.clone(), tables.clone(), DEFAULT_VERSION_TTL);
        Self {
            repository: Repository::new(store),
            keys: JwtKeys::new(jwt),
            passwords: Passwords,
            // One cache of the projection registry for the write side's two reads of read
            // models.
            favorite_counts: FavoriteCounts::with_versions(dynamodb.clone(), active.clone()),
            write_wait: WriteWait {
                applied: Applied::new(dynamodb.clone(), active),
                bound: write_wait::DEFAULT_WRITE_WAIT,
            },
        }
    }

    /// The same state with another bound on the wait before a write answers (0: no wait).
    pub fn with_write_wait(self, bound: Duration) -> Self {
        Self {
            write_wait: WriteWait {
                bound,
                ..self.write_wait
            },
            ..self
        }
    }

    /// Reads `CONDUIT_TABLE_PREFIX`, `JWT_SECRET`, `JWT_TTL_SECONDS` and
    /// `CONDUIT_WRITE_WAIT_MS` (see [`write_wait`]).
    pub fn from_env(dynamodb: &aws_sdk_dynamodb::Client) -> Result<Self, ConfigError> {
        Ok(Self::new(
            dynamodb,
            &config::table_names_from_env()?,
            &JwtSettings::from_env()?,
        )
        .with_write_wait(write_wait::write_wait_from_env()?))
    }
}

/// One operation of the write side: a method and a path under `/api`, and what serves them.
struct Route {
    method: Method,
    path: &'static str,
    handler: MethodRouter<AppState>,
}

/// `handler` for `method` on `path`; the router's method filter is derived from the method, so
/// what [`operations`] lists and what [`router`] serves cannot disagree.
fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = match MethodFilter::try_from(method.clone()) {
        Ok(filter) => filter,
        // Only an extension method has no filter; the table below names none.
        Err(e) => panic!("route table: {e}"),
    };
    Route {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every write operation of the API. The OpenAPI document lists exactly these with the read
/// side's (`local-stack/tests/it/openapi_routes.rs`). A table: one line an operation.
#[rustfmt::skip]
fn routes() -> Vec<Route> {
    use Method as M;
    vec![
        route(M::POST, "/api/users", users::register),
        route(M::POST, "/api/users/login", users::login),
        route(M::PUT, "/api/user", users::update),
        route(M::POST, "/api/profiles/{username}/follow", profiles::follow),
        route(M::DELETE, "/api/profiles/{username}/follow", profiles::unfollow),
        route(M::POST, "/api/articles", articles::create),
        route(M::PUT, "/api/articles/{slug}", articles::update),
        route(M::DELETE, "/api/articles/{slug}", articles::delete),
        route(M::POST, "/api/articles/{slug}/favorite", favorites::favorite),
        route(M::DELETE, "/api/articles/{slug}/favorite", favorites::unfavorite),
        route(M::POST, "/api/articles/{slug}/comments", comments::create),
        route(M::DELETE, "/api/articles/{slug}/comments/{id}", comments::delete),
        route(M::POST, "/api/events", events_api::append),
    ]
}

/// Every `(method, path)` the write router serves.
pub fn operations() -> Vec<(Method, &'static str)> {
    routes()
        .into_iter()
        .map(|route| (route.method, route.path))
        .collect()
}

/// Every write route of the API, under `/api`. Routes of one path merge into one method router.
pub fn router(state: AppState) -> Router {
    let wait = state.write_wait.clone();
    routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .route_layer(axum::middleware::from_fn_with_state(
            wait,
            write_wait::wait_for_projections,
        ))
        .fallback(common::openapi::unrouted)
        .method_not_allowed_fallback(common::openapi::unrouted)
        .with_state(state)
}
