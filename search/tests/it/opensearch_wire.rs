//! The OpenSearch adapter at the wire level: a loopback stub records every request and answers
//! as OpenSearch 2.x does. No OpenSearch server can run here; these tests pin what is sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use search::{ArticleDoc, ArticleQuery, Hit, OpenSearchIndex, SearchError, SearchIndex, Written};

const ALIAS: &str = "t1-articles";
const INDEX: &str = "t1-articles-v1";

/// One request as the stub received it.
#[derive(Clone, Debug, PartialEq)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    /// `None` when the request had no body.
    body: Option<Value>,
    raw_body: Vec<u8>,
    headers: HeaderMap,
}

/// A scripted answer: status and JSON body (`None`: no body).
type Scripted = (u16, Option<Value>);

#[derive(Clone, Default)]
struct StubState {
    requests: Arc<Mutex<Vec<Recorded>>>,
    answers: Arc<Mutex<VecDeque<Scripted>>>,
}

/// A loopback OpenSearch stand-in that plays back scripted answers in order.
struct Stub {
    url: String,
    state: StubState,
    server: tokio::task::JoinHandle<()>,
}

impl Stub {
    async fn start(answers: Vec<Scripted>) -> Stub {
        let state = StubState::default();
        state.answers.lock().expect("stub lock").extend(answers);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("the stub address")
        );
        let app = Router::new().fallback(answer).with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the stub serves");
        });
        Stub { url, state, server }
    }

    fn index(&self) -> SearchIndex {
        SearchIndex::OpenSearch(
            OpenSearchIndex::new(&self.url, ALIAS, INDEX, None).expect("a client"),
        )
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("stub lock").clone()
    }

    /// The one request the stub received.
    fn single_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "{requests:#?}");
        requests.into_iter().next().expect("one request")
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(
    State(state): State<StubState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.requests.lock().expect("stub lock").push(Recorded {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        body: (!body.is_empty()).then(|| serde_json::from_slice(&body).expect("a JSON body")),
        raw_body: body.to_vec(),
        headers,
    });
    let Some((status, body)) = state.answers.lock().expect("stub lock").pop_front() else {
        return (StatusCode::IM_A_TEAPOT, "no scripted answer left").into_response();
    };
    let status = StatusCode::from_u16(status).expect("a status code");
    match body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    }
}

fn error_body(status: u16, kind: &str, reason: &str) -> Value {
    json!({
        "error": {
            "root_cause": [{"type": kind, "reason": reason, "index": INDEX, "index_uuid": "kXq2d3pTQ9aT6bq9u1Xb5w"}],
            "type": kind,
            "reason": reason,
            "index": INDEX,
            "index_uuid": "kXq2d3pTQ9aT6bq9u1Xb5w"
        },
        "status": status
    })
}

fn version_conflict() -> Scripted {
    (
        409,
        Some(error_body(
            409,
            "version_conflict_engine_exception",
            "[a1]: version conflict, current version [3] is higher or equal to the one provided [3]",
        )),
    )
}

fn write_result(id: &str, version: u64, result: &str, status: u16) -> Scripted {
    (
        status,
        Some(json!({
            "_index": INDEX, "_id": id, "_version": version, "result": result,
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": 7, "_primary_term": 1
        })),
    )
}

fn search_result(total: u64, hits: &[(&str, &str)]) -> Scripted {
    let hits: Vec<Value> = hits
        .iter()
        .enumerate()
        .map(|(i, (article, author))| {
            json!({"_index": INDEX, "_id": article, "_score": null,
                "_source": {"articleId": article, "authorId": author},
                "sort": [1_704_067_200_000_000_000i64 - i as i64]})
        })
        .collect();
    (
        200,
        Some(json!({
            "took": 3, "timed_out": false,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": total, "relation": "eq"}, "max_score": null, "hits": hits}
        })),
    )
}

fn article() -> ArticleDoc {
    ArticleDoc {
        article_id: "a1".into(),
        author_id: "u1".into(),
        slug: "how-to-train-your-dragon".into(),
        title: "How to train your dragon".into(),
        description: "Ever wonder how?".into(),
        tag_list: vec!["dragons".into(), "training".into()],
        created_at: "2024-01-01T00:00:00.000Z".into(),
        updated_at: "2024-01-02T10:00:00.500Z".into(),
    }
}

#[tokio::test]
async fn ensure_index_creates_the_strict_mapping_then_the_alias() {
    let stub = Stub::start(vec![
        (
            200,
            Some(json!({"acknowledged": true, "shards_acknowledged": true, "index": INDEX})),
        ),
        (404, None),
        (200, Some(json!({"acknowledged": true}))),
    ])
    .await;
    stub.index().ensure_index().await.unwrap();

    let requests = stub.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert_eq!(
        (
            &requests[0].method,
            requests[0].path.as_str(),
            &requests[0].query
        ),
        (&Method::PUT, "/t1-articles-v1", &None)
    );
    assert_eq!(
        requests[0].body,
        Some(json!({
            "settings": {"index": {"number_of_shards": 1, "max_result_window": 10100}},
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
        }))
    );
    assert_eq!(
        (
            &requests[1].method,
            requests[1].path.as_str(),
            &requests[1].body
        ),
        (&Method::HEAD, "/_alias/t1-articles", &None)
    );
    assert_eq!(
        (
            &requests[2].method,
            requests[2].path.as_str(),
            &requests[2].query,
            &requests[2].body
        ),
        (
            &Method::PUT,
            "/t1-articles-v1/_alias/t1-articles",
            &None,
            &None
        )
    );
}

#[tokio::test]
async fn ensure_index_tolerates_an_existing_index_and_alias() {
    let stub = Stub::start(vec![
        (
            400,
            Some(error_body(
                400,
                "resource_already_exists_exception",
                "index [t1-articles-v1/kXq2d3pTQ9aT6bq9u1Xb5w] already exists",
            )),
        ),
        (200, None),
    ])
    .await;
    stub.index().ensure_index().await.unwrap();
    let requests = stub.requests();
    let calls: Vec<(Method, &str)> = requests
        .iter()
        .map(|r| (r.method.clone(), r.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        vec![
            (Method::PUT, "/t1-articles-v1"),
            (Method::HEAD, "/_alias/t1-articles")
        ]
    );
}

#[tokio::test]
async fn ensure_index_reports_a_refusal() {
    let stub = Stub::start(vec![(
        403,
        Some(error_body(
            403,
            "security_exception",
            "no permissions for [indices:admin/create]",
        )),
    )])
    .await;
    let error = stub.index().ensure_index().await.unwrap_err();
    assert!(
        matches!(&error, SearchError::Rejected(m) if m.contains("security_exception")),
        "{error:?}"
    );
}

#[tokio::test]
async fn upsert_indexes_through_the_alias_with_an_external_version() {
    let stub = Stub::start(vec![write_result("a1", 3, "created", 201)]).await;
    let doc = article();
    assert_eq!(
        stub.index().upsert(&doc, 3).await.unwrap(),
        Written::Applied
    );

    let request = stub.single_request();
    assert_eq!(request.method, Method::PUT);
    assert_eq!(request.path, "/t1-articles/_doc/a1");
    assert_eq!(
        request.query.as_deref(),
        Some("version=3&version_type=external")
    );
    assert_eq!(
        request.body,
        Some(json!({
            "articleId": "a1", "authorId": "u1", "slug": "how-to-train-your-dragon",
            "title": "How to train your dragon", "description": "Ever wonder how?",
            "tagList": ["dragons", "training"],
            "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-02T10:00:00.500Z",
            "sortKey": search::sort_key("a1", 1_704_067_200_000).unwrap()
        }))
    );
    assert_eq!(
        request.headers["content-type"], "application/json",
        "{:?}",
        request.headers
    );
}

#[tokio::test]
async fn upsert_of_an_old_version_is_stale() {
    let stub = Stub::start(vec![version_conflict()]).await;
    assert_eq!(
        stub.index().upsert(&article(), 3).await.unwrap(),
        Written::Stale
    );
}

#[tokio::test]
async fn server_errors_and_throttling_are_unavailable_other_refusals_rejected() {
    let stub = Stub::start(vec![
        (
            503,
            Some(error_body(503, "unavailable_shards_exception", "[t1-articles-v1][0] primary shard is not active")),
        ),
        (
            429,
            Some(error_body(429, "es_rejected_execution_exception", "rejected execution")),
        ),
        (
            400,
            Some(error_body(400, "strict_dynamic_mapping_exception", "mapping set to strict, dynamic introduction of [body] within [_doc] is not allowed")),
        ),
        (500, None),
    ])
    .await;
    let index = stub.index();
    for expected in ["unavailable", "unavailable", "rejected", "unavailable"] {
        let error = index.upsert(&article(), 3).await.unwrap_err();
        let kind = match error {
            SearchError::Unavailable(_) => "unavailable",
            SearchError::Rejected(_) => "rejected",
            SearchError::InvalidDocument(_) => "invalid",
        };
        assert_eq!(kind, expected, "{error:?}");
    }
}

#[tokio::test]
async fn an_unreachable_engine_is_unavailable() {
    // Bind, then free the port: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let index = SearchIndex::OpenSearch(OpenSearchIndex::new(&url, ALIAS, INDEX, None).unwrap());
    let error = index.search(&ArticleQuery::default()).await.unwrap_err();
    assert!(matches!(error, SearchError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn a_document_that_cannot_be_indexed_is_never_sent() {
    let stub = Stub::start(vec![]).await;
    let mut doc = article();
    doc.created_at = "1 Jan 2024".into();
    let error = stub.index().upsert(&doc, 1).await.unwrap_err();
    assert!(
        matches!(error, SearchError::InvalidDocument(_)),
        "{error:?}"
    );
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn delete_is_versioned_and_maps_every_outcome() {
    let stub = Stub::start(vec![
        write_result("a1", 4, "deleted", 200),
        write_result("a9", 5, "not_found", 404),
        version_conflict(),
        (
            404,
            Some(error_body(
                404,
                "index_not_found_exception",
                "no such index [t1-articles]",
            )),
        ),
    ])
    .await;
    let index = stub.index();
    assert_eq!(index.delete("a1", 4).await.unwrap(), Written::Applied);
    assert_eq!(index.delete("a9", 5).await.unwrap(), Written::Applied);
    assert_eq!(index.delete("a1", 2).await.unwrap(), Written::Stale);
    let error = index.delete("a1", 6).await.unwrap_err();
    assert!(
        matches!(&error, SearchError::Rejected(m) if m.contains("index_not_found_exception")),
        "{error:?}"
    );

    let requests = stub.requests();
    let sent: Vec<(Method, &str, Option<&str>, Option<&Value>)> = requests
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.path.as_str(),
                r.query.as_deref(),
                r.body.as_ref(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            (
                Method::DELETE,
                "/t1-articles/_doc/a1",
                Some("version=4&version_type=external"),
                None
            ),
            (
                Method::DELETE,
                "/t1-articles/_doc/a9",
                Some("version=5&version_type=external"),
                None
            ),
            (
                Method::DELETE,
                "/t1-articles/_doc/a1",
                Some("version=2&version_type=external"),
                None
            ),
            (
                Method::DELETE,
                "/t1-articles/_doc/a1",
                Some("version=6&version_type=external"),
                None
            ),
        ]
    );
}

fn query(
    tag: Option<&str>,
    author: Option<&str>,
    ids: Option<&[&str]>,
    limit: usize,
    offset: usize,
) -> ArticleQuery {
    ArticleQuery {
        tag: tag.map(String::from),
        author_id: author.map(String::from),
        article_ids: ids.map(|ids| ids.iter().map(|id| id.to_string()).collect()),
        limit,
        offset,
    }
}

#[tokio::test]
async fn search_sends_one_filter_per_condition_and_reads_hits_and_total() {
    let cases = [
        (query(None, None, None, 20, 0), json!([])),
        (
            query(Some("dragons"), None, None, 20, 0),
            json!([{"term": {"tagList": "dragons"}}]),
        ),
        (
            query(None, Some("u1"), None, 5, 10),
            json!([{"term": {"authorId": "u1"}}]),
        ),
        (
            query(None, None, Some(&["a1", "a2"]), 20, 0),
            json!([{"terms": {"articleId": ["a1", "a2"]}}]),
        ),
        (
            query(None, None, Some(&[]), 20, 0),
            json!([{"terms": {"articleId": []}}]),
        ),
        (
            query(Some("dragons"), Some("u1"), Some(&["a2"]), 1, 1),
            json!([{"term": {"tagList": "dragons"}}, {"term": {"authorId": "u1"}},
                {"terms": {"articleId": ["a2"]}}]),
        ),
    ];
    for (query, filter) in cases {
        let stub = Stub::start(vec![search_result(2, &[("a2", "u2"), ("a1", "u1")])]).await;
        let page = stub.index().search(&query).await.unwrap();
        assert_eq!(page.total, 2);
        assert_eq!(
            page.hits,
            vec![
                Hit {
                    article_id: "a2".into(),
                    author_id: "u2".into()
                },
                Hit {
                    article_id: "a1".into(),
                    author_id: "u1".into()
                },
            ]
        );

        let request = stub.single_request();
        assert_eq!(
            (
                &request.method,
                request.path.as_str(),
                request.query.as_deref()
            ),
            (&Method::POST, "/t1-articles/_search", None)
        );
        assert_eq!(
            request.body,
            Some(json!({
                "query": {"bool": {"filter": filter}},
                "sort": [{"sortKey": "desc"}],
                "from": query.offset,
                "size": query.limit,
                "track_total_hits": true,
                "_source": ["articleId", "authorId"]
            })),
            "{query:?}"
        );
    }
}

#[tokio::test]
async fn a_page_past_the_end_keeps_the_total() {
    let stub = Stub::start(vec![search_result(2, &[])]).await;
    let page = stub
        .index()
        .search(&query(None, None, None, 20, 40))
        .await
        .unwrap();
    assert_eq!((page.hits.len(), page.total), (0, 2));
}

#[tokio::test]
async fn an_unexpected_search_answer_is_unavailable() {
    let stub = Stub::start(vec![(200, Some(json!({"hits": {"hits": []}})))]).await;
    let error = stub
        .index()
        .search(&ArticleQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(error, SearchError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn tags_are_one_terms_aggregation_read_in_bucket_order() {
    let stub = Stub::start(vec![(
        200,
        Some(json!({
            "took": 2, "timed_out": false,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": 3, "relation": "eq"}, "max_score": null, "hits": []},
            "aggregations": {"tags": {
                "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                "buckets": [
                    {"key": "rust", "doc_count": 2},
                    {"key": "dragons", "doc_count": 1},
                    {"key": "training", "doc_count": 1}
                ]
            }}
        })),
    )])
    .await;
    assert_eq!(
        stub.index().tags().await.unwrap(),
        vec!["rust", "dragons", "training"]
    );
    let request = stub.single_request();
    assert_eq!(
        (
            &request.method,
            request.path.as_str(),
            request.query.as_deref()
        ),
        (&Method::POST, "/t1-articles/_search", None)
    );
    assert_eq!(
        request.body,
        Some(json!({"size": 0, "aggs": {"tags": {"terms": {
            "field": "tagList", "size": 1000,
            "order": [{"_count": "desc"}, {"_key": "asc"}]
        }}}}))
    );
}

#[tokio::test]
async fn requests_are_signed_with_sigv4_for_es_when_configured() {
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;

    let stub = Stub::start(vec![write_result("a1", 3, "created", 201)]).await;
    let sdk_config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::from_keys(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        )))
        .build();
    let index = SearchIndex::OpenSearch(
        OpenSearchIndex::new(&stub.url, ALIAS, INDEX, Some(&sdk_config)).unwrap(),
    );
    assert_eq!(index.upsert(&article(), 3).await.unwrap(), Written::Applied);

    let request = stub.single_request();
    let authorization = request.headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/eu-west-1/es/aws4_request"),
        "{authorization}"
    );
    assert!(authorization.contains("Signature="), "{authorization}");
    // The payload hash covers exactly the bytes sent.
    assert_eq!(
        request.headers["x-amz-content-sha256"].to_str().unwrap(),
        hex::encode(Sha256::digest(&request.raw_body))
    );
    assert!(request.headers.contains_key("x-amz-date"));
}

#[tokio::test]
async fn unsigned_requests_carry_no_authorization() {
    let stub = Stub::start(vec![write_result("a1", 3, "created", 201)]).await;
    stub.index().upsert(&article(), 3).await.unwrap();
    assert!(!stub.single_request().headers.contains_key("authorization"));
}
