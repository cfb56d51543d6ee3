//! The search read model of articles (`GET /api/articles`, `GET /api/tags`): one interface, two adapters.
//!
//! [`SearchIndex`] is what the projector writes to and the query API reads from. It is either
//! an [`OpenSearchIndex`] (production, Amazon OpenSearch Service) or an [`EmbeddedIndex`]
//! (tantivy, in RAM or in a directory: the local default). Both give the same answers to the
//! same [`ArticleQuery`]: they are built from one list of [`Filter`]s and one page window, and
//! order by the same [`sort_key`].
//!
//! Writes carry the article aggregate's event sequence as an external version, so an older
//! event never overwrites a newer one and a redelivered event changes nothing ([`Written::Stale`]).

pub mod embedded;
pub mod opensearch_adapter;
pub mod versions;

use std::path::PathBuf;

pub use embedded::EmbeddedIndex;
pub use opensearch_adapter::OpenSearchIndex;
pub use versions::VersionedSearch;

/// Most tags [`SearchIndex::tags`] returns.
pub const MAX_TAGS: usize = 1000;
/// Largest page size an adapter serves; a larger `limit` is served as this many.
pub const MAX_LIMIT: usize = 100;
/// Largest offset an adapter serves; a larger `offset` is served as this one.
pub const MAX_OFFSET: usize = 10_000;

/// One article as the search read model holds it (no body: lists don't return it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArticleDoc {
    /// The article aggregate's id.
    pub article_id: String,
    /// The author's user id.
    pub author_id: String,
    /// The article's current slug.
    pub slug: String,
    /// The article's title.
    pub title: String,
    /// The article's description.
    pub description: String,
    /// The article's tags, sorted and unique.
    pub tag_list: Vec<String>,
    /// Creation time, ISO 8601 with milliseconds, e.g. `2024-01-01T00:00:00.000Z`.
    pub created_at: String,
    /// Time of the last change, same format as `created_at`.
    pub updated_at: String,
}

impl ArticleDoc {
    /// The order key of this article: see [`sort_key`]. Fails when `created_at` is not RFC 3339.
    pub fn sort_key(&self) -> Result<i64, SearchError> {
        let created = time::OffsetDateTime::parse(
            &self.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| {
            SearchError::InvalidDocument(format!(
                "createdAt {:?} of article {} is not ISO 8601: {e}",
                self.created_at, self.article_id
            ))
        })?;
        let millis = i64::try_from(created.unix_timestamp_nanos() / 1_000_000).map_err(|_| {
            SearchError::InvalidDocument(format!("createdAt {:?} is out of range", self.created_at))
        })?;
        sort_key(&self.article_id, millis).ok_or_else(|| {
            SearchError::InvalidDocument(format!("createdAt {:?} is out of range", self.created_at))
        })
    }
}

/// The single i64 both adapters sort by, newest first:
/// `created_millis * 1_000_000 + fnv1a_64(article_id) % 1_000_000`.
///
/// The hash part only breaks ties between articles created in the same millisecond, so pages
/// are stable and both adapters return the same order. `None` past the year 2262.
pub fn sort_key(article_id: &str, created_millis: i64) -> Option<i64> {
    // The remainder is below 1_000_000, so the cast is lossless.
    let tie_breaker = (fnv1a_64(article_id.as_bytes()) % 1_000_000) as i64;
    created_millis
        .checked_mul(1_000_000)?
        .checked_add(tie_breaker)
}

/// 64-bit FNV-1a hash: stable across processes, platforms and releases (unlike `std`'s hasher).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// Filters of GET /api/articles, already resolved to ids by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArticleQuery {
    /// Only articles with exactly this tag (case-sensitive, no analysis).
    pub tag: Option<String>,
    /// Only articles by this author.
    pub author_id: Option<String>,
    /// Only these articles (the `favorited` filter, resolved by the caller); Some(empty) matches nothing.
    pub article_ids: Option<Vec<String>>,
    /// Page size (served as at most [`MAX_LIMIT`]).
    pub limit: usize,
    /// How many matches to skip (served as at most [`MAX_OFFSET`]).
    pub offset: usize,
}

/// One condition of an [`ArticleQuery`]; a match meets all of them. Both adapters translate
/// this list, so they cannot disagree on what a query means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filter<'a> {
    /// `tagList` contains the tag.
    Tag(&'a str),
    /// `authorId` is this id.
    Author(&'a str),
    /// `articleId` is one of these (none: nothing matches).
    Ids(&'a [String]),
}

impl ArticleQuery {
    /// The conditions, in a fixed order: tag, author, ids.
    pub(crate) fn filters(&self) -> Vec<Filter<'_>> {
        let mut filters = Vec::with_capacity(3);
        if let Some(tag) = &self.tag {
            filters.push(Filter::Tag(tag));
        }
        if let Some(author) = &self.author_id {
            filters.push(Filter::Author(author));
        }
        if let Some(ids) = &self.article_ids {
            filters.push(Filter::Ids(ids));
        }
        filters
    }

    /// `(offset, limit)` as served: clamped to [`MAX_OFFSET`] and [`MAX_LIMIT`].
    pub(crate) fn window(&self) -> (usize, usize) {
        (self.offset.min(MAX_OFFSET), self.limit.min(MAX_LIMIT))
    }
}

/// One matching article: enough for the caller to load the rest from its own read models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The article's id.
    pub article_id: String,
    /// The author's user id.
    pub author_id: String,
}

/// One page of matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchPage {
    /// The page, newest first.
    pub hits: Vec<Hit>,
    /// How many articles match in all, not the page size.
    pub total: u64,
}

/// What a versioned write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The write took effect.
    Applied,
    /// A version >= the given one is already there: nothing changed (a redelivery or an
    /// out-of-order event, both safe to acknowledge).
    Stale,
}

/// One write of a [`SearchIndex::bulk`] request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BulkWrite {
    /// What [`SearchIndex::upsert`] does: writes `doc` at `version` unless a version >=
    /// `version` is already there.
    Upsert {
        /// The article as the read model holds it.
        doc: ArticleDoc,
        /// Its aggregate's event sequence.
        version: u64,
    },
    /// What [`SearchIndex::delete`] does: removes the article at `version` unless a version
    /// >= `version` is already there.
    Delete {
        /// The article aggregate's id.
        article_id: String,
        /// Its aggregate's event sequence.
        version: u64,
    },
}

/// What a [`SearchIndex::bulk`] request did: one count per outcome, `applied + stale` being
/// the number of writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// Writes that took effect ([`Written::Applied`]).
    pub applied: u64,
    /// Writes that changed nothing, a version >= theirs being there ([`Written::Stale`]).
    pub stale: u64,
}

impl BulkOutcome {
    /// Counts one write's outcome.
    pub(crate) fn count(&mut self, written: Written) {
        match written {
            Written::Applied => self.applied += 1,
            Written::Stale => self.stale += 1,
        }
    }
}

/// Why the search read model could not serve a call.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SearchError {
    /// The engine could not be reached or failed: network, timeout, 5xx, 429, local I/O.
    /// Worth retrying; an API answers 503.
    #[error("search engine unavailable: {0}")]
    Unavailable(String),
    /// The engine refused the request (a 4xx other than a version conflict): retrying the
    /// same request will not help; an API answers 500.
    #[error("search engine rejected the request: {0}")]
    Rejected(String),
    /// The document cannot be indexed as it is (e.g. `createdAt` is not ISO 8601, or the
    /// version exceeds i64): a bug upstream, not worth retrying.
    #[error("article cannot be indexed: {0}")]
    InvalidDocument(String),
}

/// The search read model, chosen by configuration.
#[derive(Clone, Debug)]
pub enum SearchIndex {
    /// Amazon OpenSearch Service (or any OpenSearch 2.x), through the alias.
    OpenSearch(opensearch_adapter::OpenSearchIndex),
    /// tantivy inside the process, in RAM or in a directory.
    Embedded(embedded::EmbeddedIndex),
}

impl SearchIndex {
    fn backend(&self) -> &'static str {
        match self {
            SearchIndex::OpenSearch(_) => "opensearch",
            SearchIndex::Embedded(_) => "embedded",
        }
    }

    /// Creates the index (mapping) and its alias if missing; idempotent, safe at every start.
    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.backend()))]
    pub async fn ensure_index(&self) -> Result<(), SearchError> {
        match self {
            SearchIndex::OpenSearch(index) => index.ensure_index().await,
            SearchIndex::Embedded(index) => index.ensure_index().await,
        }
    }

    /// Writes the article at `version` (its aggregate's event sequence) unless a version
    /// >= `version` is already there (then [`Written::Stale`]).
    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.backend(), article_id = %doc.article_id, version = version))]
    pub async fn upsert(&self, doc: &ArticleDoc, version: u64) -> Result<Written, SearchError> {
        match self {
            SearchIndex::OpenSearch(index) => index.upsert(doc, version).await,
            SearchIndex::Embedded(index) => index.upsert(doc, version).await,
        }
    }

    /// Removes the article at `version` unless a version >= `version` is already there; an
    /// older upsert arriving later is [`Written::Stale`]. Deleting an unknown article is
    /// [`Written::Applied`] (the version is remembered).
    ///
    /// How long a deletion's version is remembered differs: the embedded engine keeps it for
    /// good, OpenSearch for `index.gc_deletes` (60 s by default) and not across a restart of
    /// the shard. After that an older upsert would bring the article back; the search
    /// projector never sends one, its checkpoint applying each article's events in order.
    #[tracing::instrument(level = "debug", skip(self), fields(backend = self.backend()))]
    pub async fn delete(&self, article_id: &str, version: u64) -> Result<Written, SearchError> {
        match self {
            SearchIndex::OpenSearch(index) => index.delete(article_id, version).await,
            SearchIndex::Embedded(index) => index.delete(article_id, version).await,
        }
    }

    /// Applies `writes` as [`Self::upsert`] and [`Self::delete`] one by one in this order
    /// would (same versions, stale writes change nothing, so a repeated bulk is all stale),
    /// in few requests or commits; a read after it returns sees every write.
    ///
    /// Every document is checked before anything is written ([`SearchError::InvalidDocument`]
    /// writes nothing). A failure half-way may leave the writes before it applied: a retry of
    /// the same bulk is safe, those being stale then.
    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.backend(), writes = writes.len()))]
    pub async fn bulk(&self, writes: Vec<BulkWrite>) -> Result<BulkOutcome, SearchError> {
        match self {
            SearchIndex::OpenSearch(index) => index.bulk(writes).await,
            SearchIndex::Embedded(index) => index.bulk(writes).await,
        }
    }

    /// One page of the articles matching every filter, newest first, with the total count.
    #[tracing::instrument(level = "debug", skip(self), fields(backend = self.backend()))]
    pub async fn search(&self, query: &ArticleQuery) -> Result<SearchPage, SearchError> {
        match self {
            SearchIndex::OpenSearch(index) => index.search(query).await,
            SearchIndex::Embedded(index) => index.search(query).await,
        }
    }

    /// Every tag of a live article, most used first, ties by name ascending; at most MAX_TAGS (1000).
    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.backend()))]
    pub async fn tags(&self) -> Result<Vec<String>, SearchError> {
        match self {
            SearchIndex::OpenSearch(index) => index.tags().await,
            SearchIndex::Embedded(index) => index.tags().await,
        }
    }
}

/// Which engine holds the read model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchBackend {
    /// tantivy in the process: in RAM (`dir: None`) or under `dir/<index name>`.
    Embedded {
        /// `CONDUIT_SEARCH_DIR`; one process at a time may open a given directory.
        dir: Option<PathBuf>,
    },
    /// An OpenSearch 2.x domain.
    OpenSearch {
        /// `OPENSEARCH_URL`, e.g. `https://search-xxx.us-east-1.es.amazonaws.com`.
        url: String,
        /// Sign requests with SigV4 for service `es` (region and credentials from the default
        /// chain): `OPENSEARCH_SIGV4`, by default on for `*.amazonaws.com` hosts.
        sigv4: bool,
    },
}

/// Configuration: CONDUIT_SEARCH = "embedded" (default) | "opensearch"; OPENSEARCH_URL (required for opensearch, e.g. https://search-xxx.us-east-1.es.amazonaws.com); CONDUIT_SEARCH_DIR (embedded index directory; absent = in RAM). Index names derive from the table prefix: alias `<prefix>articles`, concrete index `<prefix>articles-v1`.
///
/// `OPENSEARCH_SIGV4` = "true" | "false" overrides whether requests are signed (default:
/// signed when the URL's host ends with `.amazonaws.com`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchConfig {
    /// The engine and how to reach it.
    pub backend: SearchBackend,
    /// The name every read and write goes through: `<prefix>articles`.
    pub alias: String,
    /// The concrete index behind the alias: `<prefix>articles-v1`.
    pub index: String,
}

impl SearchConfig {
    /// Reads the configuration from the environment; the error names the variable at fault.
    pub fn from_env(prefix: &str) -> Result<Self, String> {
        Self::from_lookup(prefix, |name| {
            std::env::var(name).ok().filter(|value| !value.is_empty())
        })
    }

    fn from_lookup(prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let backend = match lookup("CONDUIT_SEARCH").as_deref() {
            None | Some("embedded") => SearchBackend::Embedded {
                dir: lookup("CONDUIT_SEARCH_DIR").map(PathBuf::from),
            },
            Some("opensearch") => {
                let url = lookup("OPENSEARCH_URL").ok_or(
                    "environment variable OPENSEARCH_URL is required when CONDUIT_SEARCH=opensearch",
                )?;
                let parsed = opensearch::http::Url::parse(&url)
                    .map_err(|e| format!("environment variable OPENSEARCH_URL is invalid: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(
                        "environment variable OPENSEARCH_URL is invalid: must be http(s)".into(),
                    );
                }
                let sigv4 = match lookup("OPENSEARCH_SIGV4").as_deref() {
                    None => parsed
                        .host_str()
                        .is_some_and(|host| host.ends_with(".amazonaws.com")),
                    Some("true") => true,
                    Some("false") => false,
                    Some(other) => {
                        return Err(format!(
                            "environment variable OPENSEARCH_SIGV4 is invalid: {other:?}, expected \"true\" or \"false\""
                        ))
                    }
                };
                SearchBackend::OpenSearch { url, sigv4 }
            }
            Some(other) => {
                return Err(format!(
                    "environment variable CONDUIT_SEARCH is invalid: {other:?}, expected \"embedded\" or \"opensearch\""
                ))
            }
        };
        Ok(Self {
            backend,
            alias: format!("{prefix}articles"),
            index: format!("{prefix}articles-v1"),
        })
    }

    /// The configuration of one version of the read model: reads and writes go to its own
    /// concrete index, `<alias>-v<version>`, never through the alias (which follows the
    /// active version).
    pub fn at_version(&self, version: u32) -> SearchConfig {
        let index = format!("{}-v{}", self.alias, version.max(1));
        SearchConfig {
            backend: self.backend.clone(),
            alias: index.clone(),
            index,
        }
    }

    /// Connects to (or opens) the configured engine. Does not create the index: call
    /// [`SearchIndex::ensure_index`]. An embedded index is shared by everyone in the process
    /// who opens it through a configuration: in RAM by its name, in a directory while somebody
    /// holds it (see [`EmbeddedIndex::shared_dir`]).
    pub async fn open(&self) -> Result<SearchIndex, SearchError> {
        match &self.backend {
            SearchBackend::Embedded { dir: None } => Ok(SearchIndex::Embedded(
                EmbeddedIndex::shared_in_ram(&self.index)?,
            )),
            SearchBackend::Embedded { dir: Some(dir) } => {
                let path = dir.join(&self.index);
                let index = tokio::task::spawn_blocking(move || EmbeddedIndex::shared_dir(path))
                    .await
                    .map_err(|e| SearchError::Unavailable(format!("opening the index: {e}")))??;
                Ok(SearchIndex::Embedded(index))
            }
            SearchBackend::OpenSearch { url, sigv4 } => {
                let sdk_config = if *sigv4 {
                    Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
                } else {
                    None
                };
                Ok(SearchIndex::OpenSearch(OpenSearchIndex::new(
                    url,
                    self.alias.clone(),
                    self.index.clone(),
                    sdk_config.as_ref(),
                )?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn fnv1a_64_matches_the_reference_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn sort_key_is_the_creation_millisecond_then_a_hash_of_the_id() {
        let hash = (fnv1a_64(b"article-1") % 1_000_000) as i64;
        assert_eq!(
            sort_key("article-1", 1_704_067_200_000),
            Some(1_704_067_200_000 * 1_000_000 + hash)
        );
        // A later millisecond always sorts after, whatever the ids.
        let earlier = sort_key("zzz", 1_000).unwrap();
        let later = sort_key("aaa", 1_001).unwrap();
        assert!(later > earlier);
        assert_eq!(sort_key("x", i64::MAX / 1000), None);
    }

    #[test]
    fn sort_key_of_a_doc_parses_iso_8601_with_milliseconds() {
        let mut doc = ArticleDoc {
            article_id: "a1".into(),
            author_id: "u1".into(),
            slug: "s".into(),
            title: "t".into(),
            description: "d".into(),
            tag_list: vec![],
            created_at: "2024-01-01T00:00:00.123Z".into(),
            updated_at: "2024-01-01T00:00:00.123Z".into(),
        };
        assert_eq!(
            doc.sort_key().unwrap(),
            sort_key("a1", 1_704_067_200_123).unwrap()
        );
        doc.created_at = "yesterday".into();
        assert!(matches!(
            doc.sort_key(),
            Err(SearchError::InvalidDocument(_))
        ));
    }

    #[test]
    fn article_doc_serialises_in_camel_case() {
        let doc = ArticleDoc {
            article_id: "a1".into(),
            author_id: "u1".into(),
            slug: "s".into(),
            title: "t".into(),
            description: "d".into(),
            tag_list: vec!["x".into()],
            created_at: "c".into(),
            updated_at: "u".into(),
        };
        assert_eq!(
            serde_json::to_value(&doc).unwrap(),
            serde_json::json!({"articleId": "a1", "authorId": "u1", "slug": "s", "title": "t",
                "description": "d", "tagList": ["x"], "createdAt": "c", "updatedAt": "u"})
        );
    }

    #[test]
    fn filters_and_window_follow_the_query() {
        let ids = vec!["a".to_string()];
        let query = ArticleQuery {
            tag: Some("t".into()),
            author_id: Some("u".into()),
            article_ids: Some(ids.clone()),
            limit: 500,
            offset: 20_000,
        };
        assert_eq!(
            query.filters(),
            vec![Filter::Tag("t"), Filter::Author("u"), Filter::Ids(&ids)]
        );
        assert_eq!(query.window(), (MAX_OFFSET, MAX_LIMIT));
        assert_eq!(ArticleQuery::default().filters(), vec![]);
    }

    fn read(vars: &[(&str, &str)]) -> Result<SearchConfig, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SearchConfig::from_lookup("t1-", |name| vars.get(name).cloned())
    }

    #[test]
    fn configuration_defaults_to_embedded_in_ram_and_derives_names_from_the_prefix() {
        let config = read(&[]).unwrap();
        assert_eq!(config.backend, SearchBackend::Embedded { dir: None });
        assert_eq!(config.alias, "t1-articles");
        assert_eq!(config.index, "t1-articles-v1");
        let config = read(&[("CONDUIT_SEARCH_DIR", "/tmp/x")]).unwrap();
        assert_eq!(
            config.backend,
            SearchBackend::Embedded {
                dir: Some("/tmp/x".into())
            }
        );
    }

    #[test]
    fn opensearch_needs_a_url_and_signs_for_aws_hosts_by_default() {
        let missing = read(&[("CONDUIT_SEARCH", "opensearch")]).unwrap_err();
        assert!(missing.contains("OPENSEARCH_URL"), "{missing}");
        let aws = read(&[
            ("CONDUIT_SEARCH", "opensearch"),
            (
                "OPENSEARCH_URL",
                "https://search-x.us-east-1.es.amazonaws.com",
            ),
        ])
        .unwrap();
        assert!(matches!(
            aws.backend,
            SearchBackend::OpenSearch { sigv4: true, .. }
        ));
        let local = read(&[
            ("CONDUIT_SEARCH", "opensearch"),
            ("OPENSEARCH_URL", "http://127.0.0.1:9200"),
        ])
        .unwrap();
        assert!(matches!(
            local.backend,
            SearchBackend::OpenSearch { sigv4: false, .. }
        ));
        let unsigned = read(&[
            ("CONDUIT_SEARCH", "opensearch"),
            (
                "OPENSEARCH_URL",
                "https://search-x.us-east-1.es.amazonaws.com",
            ),
            ("OPENSEARCH_SIGV4", "false"),
        ])
        .unwrap();
        assert!(matches!(
            unsigned.backend,
            SearchBackend::OpenSearch { sigv4: false, .. }
        ));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let error = read(&[("CONDUIT_SEARCH", "solr")]).unwrap_err();
        assert!(error.contains("CONDUIT_SEARCH"), "{error}");
        let error = read(&[
            ("CONDUIT_SEARCH", "opensearch"),
            ("OPENSEARCH_URL", "not a url"),
        ])
        .unwrap_err();
        assert!(error.contains("OPENSEARCH_URL"), "{error}");
        let error = read(&[
            ("CONDUIT_SEARCH", "opensearch"),
            ("OPENSEARCH_URL", "http://127.0.0.1:9200"),
            ("OPENSEARCH_SIGV4", "yes"),
        ])
        .unwrap_err();
        assert!(error.contains("OPENSEARCH_SIGV4"), "{error}");
    }
}
