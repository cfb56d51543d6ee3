//! The read side over HTTP: every answer comes from a read model, never from the events table.

mod articles;
mod comments;
mod feed;
mod profiles;
mod readers;
mod tags;
mod users;

use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use common::aws::Clients;
use common::config::{self, ConfigError, JwtSettings, TableNames};
use common::error::ApiError;
use common::jwt::JwtKeys;
use search::{SearchConfig, SearchError, SearchIndex};

pub use articles::{ArticleFilter, DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};
pub use readers::{BatchKey, Found, Lookup, Readers, MAX_BATCH_KEYS};

/// What every query handler needs, built once per process.
#[derive(Clone, Debug)]
pub struct AppState {
    pub readers: Readers,
    pub keys: JwtKeys,
    /// The search read model: which articles match a list query, and the tags.
    pub search: SearchIndex,
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
        clients: &Clients,
        tables: &TableNames,
        jwt: &JwtSettings,
        search: SearchIndex,
    ) -> Self {
        Self {
            readers: Readers::new(clients.dynamodb.clone(), tables.clone()),
            keys: JwtKeys::new(jwt),
            search,
        }
    }

    /// Reads `CONDUIT_TABLE_PREFIX`, `JWT_SECRET`, `JWT_TTL_SECONDS` and the search
    /// configuration (`CONDUIT_SEARCH`, `OPENSEARCH_URL`, ...: see [`SearchConfig`]), and opens
    /// the search index. The read side never creates the index; the projector does.
    pub async fn from_env(clients: &Clients) -> Result<Self, StartupError> {
        let tables = config::table_names_from_env()?;
        let jwt = JwtSettings::from_env()?;
        let search = SearchConfig::from_env(&tables.prefix)
            .map_err(StartupError::SearchConfig)?
            .open()
            .await?;
        Ok(Self::new(clients, &tables, &jwt, search))
    }
}

/// A search failure as an API answer: 503 when worth retrying, else 500.
fn search_failed(error: SearchError) -> ApiError {
    match error {
        SearchError::Unavailable(detail) => ApiError::Unavailable(format!("search: {detail}")),
        other => ApiError::Internal(format!("search: {other}")),
    }
}

/// Every read route of the API, under `/api`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/user", get(users::current))
        .route("/api/profiles/{username}", get(profiles::get))
        .route("/api/articles", get(articles::list))
        // A static segment: it wins over `{slug}` whatever the order.
        .route("/api/articles/feed", get(feed::list))
        .route("/api/articles/{slug}", get(articles::get))
        .route("/api/articles/{slug}/comments", get(comments::list))
        .route("/api/tags", get(tags::list))
        .with_state(state)
}
