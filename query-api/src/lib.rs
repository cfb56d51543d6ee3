//! The read side over HTTP: every answer comes from a read model, never from the events table.

mod articles;
mod comments;
pub mod consistency;
mod events;
mod feed;
mod openapi;
mod profiles;
mod readers;
mod tags;
mod users;
pub mod views;

use std::time::Duration;

use axum::extract::FromRef;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use common::applied::Applied;
use common::config::{self, ConfigError, JwtSettings, TableNames};
use common::error::ApiError;
use common::jwt::JwtKeys;
use common::projections::{ActiveVersions, Projection, DEFAULT_VERSION_TTL};
use consistency::{ReadWait, Reads};
use search::{SearchBackend, SearchConfig, SearchError, SearchIndex, VersionedSearch};

pub use articles::{ArticleFilter, DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};
pub use readers::{BatchKey, Found, Lookup, Readers, MAX_BATCH_KEYS};

/// What every query handler needs, built once per process.
#[derive(Clone, Debug)]
pub struct AppState {
    pub readers: Readers,
    pub keys: JwtKeys,
    /// The search read model: which articles match a list query, and the tags. With OpenSearch
    /// it is read through the alias, which a replay's switch moves.
    pub search: SearchIndex,
    /// The embedded engine has no alias: when set, each read asks for the index of the
    /// active search version instead of `search`.
    pub search_versions: Option<VersionedSearch>,
    /// Which version of each projection the reads go to.
    pub active: ActiveVersions,
    /// How long a read waits for the positions it was sent (`conduit-min-position`).
    pub read_wait: Duration,
}

impl FromRef<AppState> for JwtKeys {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

/// Why the query API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("search configuration: {0}")]
    SearchConfig(String),
    #[error("opening the search index: {0}")]
    Search(#[from] SearchError),
}

impl AppState {
    pub fn new(
        dynamodb: &aws_sdk_dynamodb::Client,
        tables: &TableNames,
        jwt: &JwtSettings,
        search: SearchIndex,
    ) -> Self {
        Self {
            readers: Readers::new(dynamodb.clone(), tables.clone()),
            keys: JwtKeys::new(jwt),
            search,
            search_versions: None,
            active: ActiveVersions::new(dynamodb.clone(), tables.clone(), DEFAULT_VERSION_TTL),
            read_wait: consistency::DEFAULT_READ_WAIT,
        }
    }

    /// The same state reading the active version's index of `versions` (the embedded engine,
    /// which has no alias) instead of one fixed index.
    pub fn with_search_versions(self, versions: VersionedSearch) -> Self {
        Self {
            search_versions: Some(versions),
            ..self
        }
    }

    /// The search index to read: the active version's (embedded engine) or the alias.
    pub async fn search(&self) -> Result<SearchIndex, ApiError> {
        let Some(versions) = &self.search_versions else {
            return Ok(self.search.clone());
        };
        let version = self
            .active
            .version(Projection::Search)
            .await
            .map_err(ApiError::Unavailable)?;
        versions.reader(version).await.map_err(search_failed)
    }

    /// The same state trusting the active versions it read for `ttl` (default
    /// [`DEFAULT_VERSION_TTL`]): how soon a replay's switch reaches this process, against one
    /// read of the registry per `ttl`.
    pub fn with_version_ttl(self, ttl: Duration) -> Self {
        Self {
            active: self.active.with_ttl(ttl),
            ..self
        }
    }

    /// The same state with another read-your-writes bound (see [`consistency`]).
    pub fn with_read_wait(self, read_wait: Duration) -> Self {
        Self { read_wait, ..self }
    }

    /// The readers of every projection's active version (see [`ActiveVersions`]): what each
    /// request reads, so that a replay's switch reaches the query side within the versions' TTL.
    pub async fn readers(&self) -> Result<Readers, ApiError> {
        let tables = self.active.tables().await.map_err(ApiError::Unavailable)?;
        Ok(self.readers.with_tables(tables))
    }

    /// What the read-your-writes middleware of a route reading `reads` needs.
    fn read_wait(&self, reads: Reads) -> ReadWait {
        ReadWait {
            applied: Applied::new(self.readers.client().clone(), self.active.clone()),
            bound: self.read_wait,
            reads,
        }
    }

    /// Reads `CONDUIT_TABLE_PREFIX`, `JWT_SECRET`, `JWT_TTL_SECONDS`, `CONDUIT_READ_WAIT_MS`
    /// (see [`consistency`]) and the search
    /// configuration (`CONDUIT_SEARCH`, `OPENSEARCH_URL`, ...: see [`SearchConfig`]), and opens
    /// the search index. The read side never creates the index; the projector does.
    pub async fn from_env(dynamodb: &aws_sdk_dynamodb::Client) -> Result<Self, StartupError> {
        let tables = config::table_names_from_env()?;
        let jwt = JwtSettings::from_env()?;
        let config = SearchConfig::from_env(&tables.prefix).map_err(StartupError::SearchConfig)?;
        let search = config.open().await?;
        let read_wait = consistency::read_wait_from_env()?;
        let state = Self::new(dynamodb, &tables, &jwt, search).with_read_wait(read_wait);
        Ok(match config.backend {
            SearchBackend::OpenSearch { .. } => state,
            SearchBackend::Embedded { .. } => {
                state.with_search_versions(VersionedSearch::new(config))
            }
        })
    }
}

/// A search failure as an API answer: 503 when worth retrying, else 500.
fn search_failed(error: SearchError) -> ApiError {
    match error {
        SearchError::Unavailable(detail) => ApiError::Unavailable(format!("search: {detail}")),
        other => ApiError::internal(format!("search: {other}")),
    }
}

/// A RealWorld-style error body for one field, for the statuses [`ApiError`] has no field for
/// (400 for a header or a cursor, 403 for a private view).
pub(crate) fn field_error(status: StatusCode, field: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "errors": { field: [message.into()] } });
    (status, Json(body)).into_response()
}

/// One operation of the read side: a method and a path under `/api`, what serves them, and the
/// projections it reads for read-your-writes ([`consistency`]; `None`: it waits for nothing).
struct Route {
    method: Method,
    path: &'static str,
    handler: MethodRouter<AppState>,
    reads: Option<Reads>,
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
        reads: None,
    }
}

impl Route {
    fn reading(self, reads: Reads) -> Self {
        Self {
            reads: Some(reads),
            ..self
        }
    }
}

/// Every read operation of the API. The OpenAPI document lists exactly these with the write
/// side's (`local-stack/tests/it/openapi_routes.rs`). A table: one line an operation.
#[rustfmt::skip]
fn routes() -> Vec<Route> {
    use Method as M;
    use Projection::{Articles, Feed, Search, Users};
    use Reads::{ByPath, These};
    vec![
        route(M::GET, "/api/user", users::current).reading(These(&[Users])),
        route(M::GET, "/api/profiles/{username}", profiles::get).reading(These(&[Users])),
        route(M::GET, "/api/articles", articles::list).reading(These(&[Search, Articles, Users])),
        // A static segment: it wins over `{slug}` whatever the order.
        route(M::GET, "/api/articles/feed", feed::list).reading(These(&[Feed, Articles, Users])),
        route(M::GET, "/api/articles/{slug}", articles::get).reading(These(&[Articles, Users])),
        route(M::GET, "/api/articles/{slug}/comments", comments::list).reading(These(&[Articles, Users])),
        route(M::GET, "/api/tags", tags::list).reading(These(&[Search])),
        route(M::GET, "/api/views", views::index).reading(These(&[])),
        route(M::GET, "/api/views/{view}", views::list).reading(ByPath(views::projections_of)),
        route(M::GET, "/api/views/{view}/{id}", views::get).reading(ByPath(views::projections_of)),
        route(M::GET, "/api/openapi.json", openapi::get),
        route(M::GET, "/api/events/{aggregate_type}/{aggregate_id}", events::stream),
    ]
}

/// Every `(method, path)` the read router serves.
pub fn operations() -> Vec<(Method, &'static str)> {
    routes()
        .into_iter()
        .map(|route| (route.method, route.path))
        .collect()
}

/// Every read route of the API, under `/api`, each behind the read-your-writes wait for the
/// projections it reads.
pub fn router(state: AppState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            let handler = match route.reads {
                Some(reads) => route
                    .handler
                    .route_layer(axum::middleware::from_fn_with_state(
                        state.read_wait(reads),
                        consistency::wait_for_positions,
                    )),
                None => route.handler,
            };
            router.route(route.path, handler)
        })
        .fallback(common::openapi::unrouted)
        .method_not_allowed_fallback(common::openapi::unrouted)
        .with_state(state)
}
