//! The OpenSearch search read model (production): an index behind an alias, written with
//! external versions, read with filter-only queries sorted by `sortKey`.
//!
//! Every read and write goes through the alias, so a reindex into `-v2` is an alias swap.

use std::sync::Arc;
use std::time::Duration;

use opensearch::auth::Credentials;
use opensearch::http::headers::{HeaderMap, HeaderValue, CONTENT_TYPE};
use opensearch::http::request::JsonBody;
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use opensearch::http::{Method, StatusCode, Url};
use opensearch::indices::{IndicesCreateParts, IndicesExistsAliasParts, IndicesPutAliasParts};
use opensearch::params::{Refresh, VersionType};
use opensearch::{BulkParts, DeleteParts, IndexParts, OpenSearch, SearchParts};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    ArticleDoc, ArticleQuery, BulkOutcome, BulkWrite, Filter, Hit, SearchError, SearchPage,
    Written, MAX_LIMIT, MAX_OFFSET, MAX_TAGS,
};

/// How long one request may take before it counts as [`SearchError::Unavailable`].
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The SigV4 service name of Amazon OpenSearch Service domains.
const SIGV4_SERVICE: &str = "es";
/// Most actions one `_bulk` request carries.
pub const BULK_MAX_ACTIONS: usize = 1_000;
/// Most bytes of NDJSON one `_bulk` request carries (5 MiB, far below the engine's HTTP
/// payload limits), unless one action alone is larger: it then goes alone.
pub const BULK_MAX_BYTES: usize = 5 * 1024 * 1024;

/// The OpenSearch adapter. Cheap to clone (the HTTP client is shared).
#[derive(Clone, Debug)]
pub struct OpenSearchIndex {
    // Behind an `Arc` so that `SearchIndex` stays small.
    client: Arc<OpenSearch>,
    alias: String,
    index: String,
}

/// What the engine answered, classified once for every call.
enum Answer {
    /// 2xx, with the body (`Null` when there is none).
    Ok(Value),
    /// 409 `version_conflict_engine_exception`.
    VersionConflict,
    /// 404, with the body.
    NotFound(Value),
    /// 400 `resource_already_exists_exception`.
    AlreadyExists,
}

/// What an answer to indexing an article means: [`Written`], or the answer if none.
fn indexed(answer: Answer) -> Result<Written, Answer> {
    match answer {
        Answer::Ok(_) => Ok(Written::Applied),
        Answer::VersionConflict => Ok(Written::Stale),
        other => Err(other),
    }
}

/// What an answer to deleting an article means: [`Written`], or the answer if none.
fn deleted(answer: Answer) -> Result<Written, Answer> {
    match answer {
        Answer::Ok(_) => Ok(Written::Applied),
        Answer::VersionConflict => Ok(Written::Stale),
        // The document was never indexed; OpenSearch still records the delete's version.
        Answer::NotFound(body) if body["result"] == "not_found" => Ok(Written::Applied),
        other => Err(other),
    }
}

/// One action of a `_bulk` request.
struct BulkAction {
    article_id: String,
    /// `delete`, else `index`.
    delete: bool,
    /// The action line, and the document's for an `index`, each ending in a newline.
    ndjson: Vec<u8>,
}

impl BulkAction {
    /// The action of `write`: the same id, version and document as a single upsert or delete.
    fn of(write: &BulkWrite) -> Result<BulkAction, SearchError> {
        let (action, article_id, version, source) = match write {
            BulkWrite::Upsert { doc, version } => (
                "index",
                &doc.article_id,
                *version,
                Some(document_body(doc)?),
            ),
            BulkWrite::Delete {
                article_id,
                version,
            } => ("delete", article_id, *version, None),
        };
        let metadata = json!({ action: {
            "_id": article_id,
            "version": external_version(version)?,
            "version_type": "external"
        }});
        let mut ndjson = String::new();
        for line in std::iter::once(metadata).chain(source) {
            // A `Value` displays as compact JSON: one line.
            ndjson.push_str(&line.to_string());
            ndjson.push('\n');
        }
        Ok(BulkAction {
            article_id: article_id.clone(),
            delete: action == "delete",
            ndjson: ndjson.into_bytes(),
        })
    }
}

/// `actions` cut into requests of at most [`BULK_MAX_ACTIONS`] actions and, unless one action
/// alone is larger, [`BULK_MAX_BYTES`] bytes, in order.
fn bulk_requests(actions: &[BulkAction]) -> Vec<&[BulkAction]> {
    let mut requests = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (at, action) in actions.iter().enumerate() {
        let full = at - start == BULK_MAX_ACTIONS || bytes + action.ndjson.len() > BULK_MAX_BYTES;
        if at > start && full {
            requests.push(&actions[start..at]);
            (start, bytes) = (at, 0);
        }
        bytes += action.ndjson.len();
    }
    if start < actions.len() {
        requests.push(&actions[start..]);
    }
    requests
}

impl OpenSearchIndex {
    /// A client for the domain at `url`, reading and writing through `alias`, whose concrete
    /// index (created by [`Self::ensure_index`]) is `index`. With `signing`, every request is
    /// signed with SigV4 for service `es`, with that configuration's region and credentials.
    pub fn new(
        url: &str,
        alias: impl Into<String>,
        index: impl Into<String>,
        signing: Option<&aws_config::SdkConfig>,
    ) -> Result<Self, SearchError> {
        let url = Url::parse(url)
            .map_err(|e| SearchError::Rejected(format!("OpenSearch URL {url:?}: {e}")))?;
        let mut transport =
            TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(REQUEST_TIMEOUT);
        if let Some(sdk_config) = signing {
            let credentials = Credentials::try_from(sdk_config)
                .map_err(|e| SearchError::Unavailable(format!("SigV4 configuration: {e}")))?;
            transport = transport.auth(credentials).service_name(SIGV4_SERVICE);
        }
        let transport = transport
            .build()
            .map_err(|e| SearchError::Unavailable(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            client: Arc::new(OpenSearch::new(transport)),
            alias: alias.into(),
            index: index.into(),
        })
    }

    /// Creates the index with its mapping unless it exists, then the alias unless it exists.
    pub async fn ensure_index(&self) -> Result<(), SearchError> {
        let created = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&self.index))
            .body(index_definition())
            .send()
            .await;
        match answer("creating the index", created).await? {
            Answer::Ok(_) => tracing::info!(index = %self.index, "search index created"),
            Answer::AlreadyExists => {}
            other => return Err(unexpected("creating the index", other)),
        }
        if self.alias == self.index {
            // A handle on one concrete index (a version of the read model): no alias of its own.
            return Ok(());
        }
        let alias = self
            .client
            .indices()
            .exists_alias(IndicesExistsAliasParts::Name(&[&self.alias]))
            .send()
            .await;
        match answer("looking up the alias", alias).await? {
            Answer::Ok(_) => return Ok(()),
            Answer::NotFound(_) => {}
            other => return Err(unexpected("looking up the alias", other)),
        }
        let added = self
            .client
            .indices()
            .put_alias(IndicesPutAliasParts::IndexName(&[&self.index], &self.alias))
            .send()
            .await;
        match answer("adding the alias", added).await? {
            Answer::Ok(_) => {
                tracing::info!(alias = %self.alias, index = %self.index, "search alias added");
                Ok(())
            }
            other => Err(unexpected("adding the alias", other)),
        }
    }

    /// Points `alias` at this handle's concrete index and at nothing else, in one
    /// `POST /_aliases` (readers see the old index or the new one, never neither).
    pub async fn point_alias(&self, alias: &str) -> Result<(), SearchError> {
        let path = format!("/_alias/{alias}");
        let current = self
            .client
            .send(
                Method::Get,
                &path,
                HeaderMap::new(),
                None::<&()>,
                None::<JsonBody<Value>>,
                None,
            )
            .await;
        let holders: Vec<String> = match answer("reading the alias", current).await? {
            // `{"<index>": {"aliases": {"<alias>": {}}}, ...}`
            Answer::Ok(Value::Object(indexes)) => indexes.keys().cloned().collect(),
            Answer::Ok(_) | Answer::NotFound(_) => Vec::new(),
            other => return Err(unexpected("reading the alias", other)),
        };
        let mut actions: Vec<Value> = holders
            .iter()
            .filter(|index| **index != self.index)
            .map(|index| json!({"remove": {"index": index, "alias": alias}}))
            .collect();
        actions.push(json!({"add": {"index": self.index, "alias": alias}}));
        let moved = self
            .client
            .send(
                Method::Post,
                "/_aliases",
                HeaderMap::new(),
                None::<&()>,
                Some(JsonBody::new(json!({ "actions": actions }))),
                None,
            )
            .await;
        match answer("moving the alias", moved).await? {
            Answer::Ok(_) => {
                tracing::info!(%alias, index = %self.index, "search alias moved");
                Ok(())
            }
            other => Err(unexpected("moving the alias", other)),
        }
    }

    /// Deletes this handle's concrete index (nothing to do if it is gone).
    pub async fn delete_index(&self) -> Result<(), SearchError> {
        let path = format!("/{}", self.index);
        let deleted = self
            .client
            .send(
                Method::Delete,
                &path,
                HeaderMap::new(),
                None::<&()>,
                None::<JsonBody<Value>>,
                None,
            )
            .await;
        match answer("deleting the index", deleted).await? {
            Answer::Ok(_) | Answer::NotFound(_) => Ok(()),
            other => Err(unexpected("deleting the index", other)),
        }
    }

    /// `require_alias=true` for a write through the alias: without it, a write to an alias
    /// that does not exist (yet, or any more) makes OpenSearch create an index of that name
    /// with a mapping guessed from the document (`action.auto_create_index` is on by
    /// default, in Amazon OpenSearch Service too), which no alias move could then replace.
    /// A handle on one concrete index has no alias to require.
    fn require_alias(&self) -> Option<(&'static str, &'static str)> {
        (self.alias != self.index).then_some(("require_alias", "true"))
    }

    /// See [`crate::SearchIndex::upsert`]: `PUT /<alias>/_doc/<id>?version=<v>&version_type=external&refresh=true`.
    pub async fn upsert(&self, doc: &ArticleDoc, version: u64) -> Result<Written, SearchError> {
        let body = document_body(doc)?;
        let version = external_version(version)?.to_string();
        // The typed `index` builder always POSTs; PUT is the documented create-or-replace by id.
        let path = IndexParts::IndexId(&self.alias, &doc.article_id).url();
        let mut params = vec![
            ("version", version.as_str()),
            ("version_type", "external"),
            // Searchable before this returns: the read-your-writes wait reports the write as
            // applied from then on (a periodic refresh would leave up to a second's gap).
            ("refresh", "true"),
        ];
        params.extend(self.require_alias());
        let sent = self
            .client
            .send(
                Method::Put,
                &path,
                HeaderMap::new(),
                Some(&params),
                Some(JsonBody::new(body)),
                None,
            )
            .await;
        indexed(answer("indexing an article", sent).await?)
            .map_err(|other| unexpected("indexing an article", other))
    }

    /// See [`crate::SearchIndex::delete`]: `DELETE /<alias>/_doc/<id>?version=<v>&version_type=external&refresh=true`.
    pub async fn delete(&self, article_id: &str, version: u64) -> Result<Written, SearchError> {
        let sent = self
            .client
            .delete(DeleteParts::IndexId(&self.alias, article_id))
            .version(external_version(version)?)
            .version_type(VersionType::External)
            .refresh(Refresh::True)
            .send()
            .await;
        deleted(answer("deleting an article", sent).await?)
            .map_err(|other| unexpected("deleting an article", other))
    }

    /// See [`crate::SearchIndex::bulk`]: `POST /<alias>/_bulk` of NDJSON `index` and `delete`
    /// actions with `version` and `version_type: external`, as many requests as
    /// [`BULK_MAX_ACTIONS`] and [`BULK_MAX_BYTES`] make, one after the other. An item's 409
    /// version conflict is stale; the first item that fails otherwise fails the bulk. The
    /// last request asks for a refresh, so searches see the whole bulk once it returns (the
    /// index has one shard, which that refresh covers).
    pub async fn bulk(&self, writes: Vec<BulkWrite>) -> Result<BulkOutcome, SearchError> {
        let actions = writes
            .iter()
            .map(BulkAction::of)
            .collect::<Result<Vec<_>, _>>()?;
        drop(writes);
        let mut outcome = BulkOutcome::default();
        let requests = bulk_requests(&actions);
        let last = requests.len().saturating_sub(1);
        for (at, request) in requests.into_iter().enumerate() {
            self.bulk_request(request, at == last, &mut outcome).await?;
        }
        Ok(outcome)
    }

    async fn bulk_request(
        &self,
        actions: &[BulkAction],
        refresh: bool,
        outcome: &mut BulkOutcome,
    ) -> Result<(), SearchError> {
        const CONTEXT: &str = "writing articles in bulk";
        let body: Vec<u8> = actions
            .iter()
            .flat_map(|action| action.ndjson.iter().copied())
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        let path = BulkParts::Index(&self.alias).url();
        let params: Vec<(&str, &str)> = refresh
            .then_some(("refresh", "true"))
            .into_iter()
            .chain(self.require_alias())
            .collect();
        let sent = self
            .client
            .send(
                Method::Post,
                &path,
                headers,
                Some(&params),
                Some(body),
                None,
            )
            .await;
        let body = match answer(CONTEXT, sent).await? {
            Answer::Ok(body) => body,
            other => return Err(unexpected(CONTEXT, other)),
        };
        let response: BulkResponse = parse(CONTEXT, body)?;
        if response.items.len() != actions.len() {
            return Err(SearchError::Unavailable(format!(
                "OpenSearch, {CONTEXT}: {} items answered for {} actions",
                response.items.len(),
                actions.len()
            )));
        }
        for (action, item) in actions.iter().zip(response.items) {
            let context = format!(
                "{} article {}",
                if action.delete {
                    "deleting"
                } else {
                    "indexing"
                },
                action.article_id
            );
            // `{"index": {"_id": …, "status": 201, …}}`: one key, the action.
            let result = item.into_iter().next().map(|(_, result)| result);
            let status = result
                .as_ref()
                .and_then(|result| result["status"].as_u64())
                .and_then(|status| u16::try_from(status).ok())
                .and_then(|status| StatusCode::from_u16(status).ok());
            let (Some(result), Some(status)) = (result, status) else {
                return Err(SearchError::Unavailable(format!(
                    "OpenSearch, {context}: a bulk item without a status"
                )));
            };
            let answer = classify(&context, status, result)?;
            let written = if action.delete {
                deleted(answer)
            } else {
                indexed(answer)
            };
            outcome.count(written.map_err(|other| unexpected(&context, other))?);
        }
        Ok(())
    }

    /// See [`crate::SearchIndex::search`].
    pub async fn search(&self, query: &ArticleQuery) -> Result<SearchPage, SearchError> {
        let sent = self
            .client
            .search(SearchParts::Index(&[&self.alias]))
            .body(search_body(query))
            .send()
            .await;
        let body = match answer("searching articles", sent).await? {
            Answer::Ok(body) => body,
            other => return Err(unexpected("searching articles", other)),
        };
        let response: SearchResponse = parse("searching articles", body)?;
        Ok(SearchPage {
            total: response.hits.total.value,
            hits: response
                .hits
                .hits
                .into_iter()
                .map(|hit| Hit {
                    article_id: hit.source.article_id,
                    author_id: hit.source.author_id,
                })
                .collect(),
        })
    }

    /// See [`crate::SearchIndex::tags`].
    pub async fn tags(&self) -> Result<Vec<String>, SearchError> {
        let sent = self
            .client
            .search(SearchParts::Index(&[&self.alias]))
            .body(tags_body())
            .send()
            .await;
        let body = match answer("aggregating tags", sent).await? {
            Answer::Ok(body) => body,
            other => return Err(unexpected("aggregating tags", other)),
        };
        let response: TagsResponse = parse("aggregating tags", body)?;
        Ok(response
            .aggregations
            .tags
            .buckets
            .into_iter()
            .map(|bucket| bucket.key)
            .collect())
    }
}

/// The index: one shard (the corpus is small, and a terms aggregation over one shard is exact),
/// a replica wherever a second data node can hold it (none on a one-node domain, whose index
/// would otherwise stay yellow for good), a result window that fits every page callers may
/// ask for, and a strict mapping.
pub(crate) fn index_definition() -> Value {
    json!({
        "settings": {
            "index": {
                "number_of_shards": 1,
                "auto_expand_replicas": "0-1",
                "max_result_window": MAX_OFFSET + MAX_LIMIT
            }
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "articleId": {"type": "keyword"},
                "authorId": {"type": "keyword"},
                "slug": {"type": "keyword"},
                "title": {"type": "text"},
                "description": {"type": "text"},
                "tagList": {"type": "keyword"},
                "createdAt": {"type": "date"},
                "updatedAt": {"type": "date"},
                "sortKey": {"type": "long"}
            }
        }
    })
}

/// The stored document: the article's fields plus its `sortKey`.
pub(crate) fn document_body(doc: &ArticleDoc) -> Result<Value, SearchError> {
    let sort_key = doc.sort_key()?;
    let mut body = serde_json::to_value(doc)
        .map_err(|e| SearchError::InvalidDocument(format!("serialising the article: {e}")))?;
    if let Value::Object(fields) = &mut body {
        fields.insert("sortKey".into(), sort_key.into());
    }
    Ok(body)
}

/// The filter-only query of one page, newest first, counting every match.
pub(crate) fn search_body(query: &ArticleQuery) -> Value {
    let filters: Vec<Value> = query
        .filters()
        .into_iter()
        .map(|filter| match filter {
            Filter::Tag(tag) => json!({"term": {"tagList": tag}}),
            Filter::Author(author) => json!({"term": {"authorId": author}}),
            // An empty `terms` list matches nothing, as `Some(empty)` must.
            Filter::Ids(ids) => json!({"terms": {"articleId": ids}}),
        })
        .collect();
    let (offset, limit) = query.window();
    json!({
        "query": {"bool": {"filter": filters}},
        "sort": [{"sortKey": "desc"}],
        "from": offset,
        "size": limit,
        "track_total_hits": true,
        "_source": ["articleId", "authorId"]
    })
}

/// Every tag with its count; deleted documents are not counted.
pub(crate) fn tags_body() -> Value {
    json!({
        "size": 0,
        "aggs": {
            "tags": {
                "terms": {
                    "field": "tagList",
                    "size": MAX_TAGS,
                    "order": [{"_count": "desc"}, {"_key": "asc"}]
                }
            }
        }
    })
}

fn external_version(version: u64) -> Result<i64, SearchError> {
    i64::try_from(version)
        .map_err(|_| SearchError::InvalidDocument(format!("version {version} exceeds i64")))
}

/// Sends nothing itself: classifies the outcome of one request.
async fn answer(
    context: &str,
    sent: Result<opensearch::http::response::Response, opensearch::Error>,
) -> Result<Answer, SearchError> {
    let response =
        sent.map_err(|e| SearchError::Unavailable(format!("OpenSearch, {context}: {e}")))?;
    let status = response.status_code();
    let text = response.text().await.map_err(|e| {
        SearchError::Unavailable(format!("OpenSearch, {context}: reading the answer: {e}"))
    })?;
    // HEAD answers and some errors have no JSON body.
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    classify(context, status, body)
}

/// Classifies one answer, of a request or of one item of a `_bulk` request, by its status and
/// error type.
fn classify(context: &str, status: StatusCode, body: Value) -> Result<Answer, SearchError> {
    let error_type = body["error"]["type"].as_str().unwrap_or_default();
    if status.is_success() {
        return Ok(Answer::Ok(body));
    }
    match (status, error_type) {
        (StatusCode::CONFLICT, "version_conflict_engine_exception") => {
            return Ok(Answer::VersionConflict)
        }
        (StatusCode::BAD_REQUEST, "resource_already_exists_exception") => {
            return Ok(Answer::AlreadyExists)
        }
        (StatusCode::NOT_FOUND, _) => return Ok(Answer::NotFound(body)),
        _ => {}
    }
    let reason = body["error"]["reason"].as_str().unwrap_or_default();
    let message = format!("OpenSearch, {context}: {status} {error_type} {reason}");
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Err(SearchError::Unavailable(message))
    } else {
        Err(SearchError::Rejected(message))
    }
}

/// An answer that the call does not expect (a 404 of a missing index, a stray 409, …).
fn unexpected(context: &str, answer: Answer) -> SearchError {
    let what = match answer {
        Answer::Ok(_) => "unexpected success".to_owned(),
        Answer::VersionConflict => "409 version_conflict_engine_exception".to_owned(),
        Answer::AlreadyExists => "400 resource_already_exists_exception".to_owned(),
        Answer::NotFound(body) => format!(
            "404 {} {}",
            body["error"]["type"].as_str().unwrap_or("not found"),
            body["error"]["reason"].as_str().unwrap_or_default()
        ),
    };
    SearchError::Rejected(format!("OpenSearch, {context}: {what}"))
}

fn parse<T: serde::de::DeserializeOwned>(context: &str, body: Value) -> Result<T, SearchError> {
    serde_json::from_value(body).map_err(|e| {
        SearchError::Unavailable(format!("OpenSearch, {context}: unexpected answer: {e}"))
    })
}

#[derive(Deserialize)]
struct BulkResponse {
    /// One per action, in the order sent: `{"<action>": {"_id": …, "status": …, …}}`.
    items: Vec<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct SearchResponse {
    hits: SearchHits,
}

#[derive(Deserialize)]
struct SearchHits {
    total: TotalHits,
    hits: Vec<SearchHit>,
}

#[derive(Deserialize)]
struct TotalHits {
    value: u64,
}

#[derive(Deserialize)]
struct SearchHit {
    #[serde(rename = "_source")]
    source: HitSource,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HitSource {
    article_id: String,
    author_id: String,
}

#[derive(Deserialize)]
struct TagsResponse {
    aggregations: TagsAggregations,
}

#[derive(Deserialize)]
struct TagsAggregations {
    tags: TagsTerms,
}

#[derive(Deserialize)]
struct TagsTerms {
    buckets: Vec<TagBucket>,
}

#[derive(Deserialize)]
struct TagBucket {
    key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> ArticleDoc {
        ArticleDoc {
            article_id: "a1".into(),
            author_id: "u1".into(),
            slug: "how-to".into(),
            title: "How to".into(),
            description: "Ever wonder how?".into(),
            tag_list: vec!["dragons".into(), "training".into()],
            created_at: "2024-01-01T00:00:00.000Z".into(),
            updated_at: "2024-01-02T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn the_document_is_the_article_plus_its_sort_key() {
        let doc = doc();
        assert_eq!(
            document_body(&doc).unwrap(),
            json!({"articleId": "a1", "authorId": "u1", "slug": "how-to", "title": "How to",
                "description": "Ever wonder how?", "tagList": ["dragons", "training"],
                "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-02T00:00:00.000Z",
                "sortKey": doc.sort_key().unwrap()})
        );
    }

    #[test]
    fn the_mapping_has_every_field_of_the_document_and_nothing_dynamic() {
        let definition = index_definition();
        let mapped: Vec<&String> = definition["mappings"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let stored = document_body(&doc()).unwrap();
        let sent: Vec<&String> = stored.as_object().unwrap().keys().collect();
        let (mut mapped, mut sent) = (mapped, sent);
        mapped.sort();
        sent.sort();
        assert_eq!(mapped, sent);
        assert_eq!(definition["mappings"]["dynamic"], "strict");
    }

    #[test]
    fn an_unfiltered_query_is_an_empty_bool_filter() {
        let query = ArticleQuery {
            limit: 20,
            ..ArticleQuery::default()
        };
        assert_eq!(
            search_body(&query),
            json!({"query": {"bool": {"filter": []}}, "sort": [{"sortKey": "desc"}],
                "from": 0, "size": 20, "track_total_hits": true,
                "_source": ["articleId", "authorId"]})
        );
    }

    #[test]
    fn every_filter_becomes_one_exact_clause() {
        let query = ArticleQuery {
            tag: Some("Rust".into()),
            author_id: Some("u1".into()),
            article_ids: Some(vec!["a1".into(), "a2".into()]),
            limit: 10,
            offset: 30,
        };
        let body = search_body(&query);
        assert_eq!(
            body["query"],
            json!({"bool": {"filter": [{"term": {"tagList": "Rust"}},
                {"term": {"authorId": "u1"}}, {"terms": {"articleId": ["a1", "a2"]}}]}})
        );
        assert_eq!(
            (body["from"].clone(), body["size"].clone()),
            (json!(30), json!(10))
        );
    }

    #[test]
    fn no_ids_is_an_empty_terms_list_and_the_window_is_clamped() {
        let query = ArticleQuery {
            article_ids: Some(vec![]),
            limit: 1_000,
            offset: 50_000,
            ..ArticleQuery::default()
        };
        let body = search_body(&query);
        assert_eq!(
            body["query"],
            json!({"bool": {"filter": [{"terms": {"articleId": []}}]}})
        );
        assert_eq!(body["from"], json!(MAX_OFFSET));
        assert_eq!(body["size"], json!(MAX_LIMIT));
        // The index's result window admits the deepest page.
        assert_eq!(
            index_definition()["settings"]["index"]["max_result_window"],
            json!(MAX_OFFSET + MAX_LIMIT)
        );
    }

    #[test]
    fn tags_are_a_terms_aggregation_ordered_by_count_then_name() {
        assert_eq!(
            tags_body(),
            json!({"size": 0, "aggs": {"tags": {"terms": {"field": "tagList", "size": 1000,
                "order": [{"_count": "desc"}, {"_key": "asc"}]}}}})
        );
    }
}
