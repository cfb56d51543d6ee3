//! The OpenSearch adapter at the wire level, for what a local node cannot show: SigV4
//! signing, refusals, throttling and server errors, an unreachable engine, answers of an
//! unexpected shape, and how a bulk is cut into requests. A loopback stub records every
//! request and plays back scripted answers. Everything a node can show (mapping, alias,
//! queries, versions, bulk outcomes, refresh) is tested on a real one: `conformance` and
//! `opensearch_node`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use search::opensearch_adapter::{BULK_MAX_ACTIONS, BULK_MAX_BYTES};
use search::{
    ArticleDoc, ArticleQuery, BulkOutcome, BulkWrite, OpenSearchIndex, SearchError, SearchIndex,
    Written,
};

const ALIAS: &str = "t1-articles";
const INDEX: &str = "t1-articles-v1";

/// One request as the stub received it.
#[derive(Clone, Debug, PartialEq)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    /// `None` when the request had no body, or an NDJSON one (see [`Recorded::ndjson`]).
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
        // OpenSearch takes bodies far larger than axum's default limit of 2 MB.
        let app = Router::new()
            .fallback(answer)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(state.clone());
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
        body: (!body.is_empty() && headers["content-type"] != "application/x-ndjson")
            .then(|| serde_json::from_slice(&body).expect("a JSON body")),
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

impl Recorded {
    /// The lines of an NDJSON body, each parsed; fails unless every line, the last included,
    /// ends with a newline.
    fn ndjson(&self) -> Vec<Value> {
        let text = std::str::from_utf8(&self.raw_body).expect("UTF-8");
        let lines = text.strip_suffix('\n').expect("a final newline");
        lines
            .split('\n')
            .map(|line| serde_json::from_str(line).expect("one JSON value a line"))
            .collect()
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

fn upsert(id: &str, version: u64) -> BulkWrite {
    let mut doc = article();
    doc.article_id = id.into();
    BulkWrite::Upsert { doc, version }
}

fn delete(id: &str, version: u64) -> BulkWrite {
    BulkWrite::Delete {
        article_id: id.into(),
        version,
    }
}

/// One item of a `_bulk` answer: `{"<action>": {…, "status": …}}`.
fn bulk_item(action: &str, id: &str, status: u16, result: &str) -> Value {
    json!({action: {"_index": INDEX, "_id": id, "_version": 1, "result": result, "status": status,
        "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": 7, "_primary_term": 1}})
}

fn bulk_error_item(action: &str, id: &str, status: u16, kind: &str, reason: &str) -> Value {
    json!({action: {"_index": INDEX, "_id": id, "status": status,
        "error": {"type": kind, "reason": reason, "index": INDEX, "shard": "0"}}})
}

fn bulk_answer(items: Vec<Value>) -> Scripted {
    let errors = items.iter().any(|item| {
        item.as_object()
            .into_iter()
            .flatten()
            .any(|(_, r)| r.get("error").is_some())
    });
    (
        200,
        Some(json!({"took": 30, "errors": errors, "items": items})),
    )
}

/// What OpenSearch answers when every write of `writes` applies.
fn all_applied(writes: &[BulkWrite]) -> Scripted {
    bulk_answer(
        writes
            .iter()
            .map(|write| match write {
                BulkWrite::Upsert { doc, .. } => {
                    bulk_item("index", &doc.article_id, 201, "created")
                }
                BulkWrite::Delete { article_id, .. } => {
                    bulk_item("delete", article_id, 200, "deleted")
                }
            })
            .collect(),
    )
}

#[tokio::test]
async fn bulk_sends_at_most_a_thousand_actions_a_request_in_order() {
    let writes: Vec<BulkWrite> = (0..2_500)
        .map(|i| {
            if i % 10 == 0 {
                delete(&format!("a{i}"), 2)
            } else {
                upsert(&format!("a{i}"), 1)
            }
        })
        .collect();
    let answers = writes.chunks(BULK_MAX_ACTIONS).map(all_applied).collect();
    let stub = Stub::start(answers).await;
    let outcome = stub.index().bulk(writes).await.unwrap();
    assert_eq!(
        outcome,
        BulkOutcome {
            applied: 2_500,
            stale: 0
        }
    );

    let requests = stub.requests();
    let actions: Vec<usize> = requests
        .iter()
        .map(|request| {
            request
                .ndjson()
                .iter()
                .filter(|line| line.get("index").is_some() || line.get("delete").is_some())
                .count()
        })
        .collect();
    assert_eq!(actions, [1_000, 1_000, 500]);
    // Only the last request asks for the refresh that makes the whole bulk searchable; each
    // writes only through an existing alias.
    let queries: Vec<Option<&str>> = requests.iter().map(|r| r.query.as_deref()).collect();
    assert_eq!(
        queries,
        [
            Some("require_alias=true"),
            Some("require_alias=true"),
            Some("refresh=true&require_alias=true")
        ]
    );
    let ids: Vec<String> = requests
        .iter()
        .flat_map(Recorded::ndjson)
        .filter_map(|line| {
            let action = line.get("index").or_else(|| line.get("delete"))?;
            Some(action["_id"].as_str()?.to_owned())
        })
        .collect();
    let expected: Vec<String> = (0..2_500).map(|i| format!("a{i}")).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn bulk_keeps_each_request_under_the_byte_limit() {
    // 12 articles of about 1 MB: 5 fit in 5 MiB, so 5 + 5 + 2.
    let big = |id: &str| {
        let mut doc = article();
        doc.article_id = id.into();
        doc.description = "x".repeat(1_000_000);
        BulkWrite::Upsert { doc, version: 1 }
    };
    let writes: Vec<BulkWrite> = (0..12).map(|i| big(&format!("a{i}"))).collect();
    let answers = [0..5, 5..10, 10..12]
        .into_iter()
        .map(|range| all_applied(&writes[range]))
        .collect();
    let stub = Stub::start(answers).await;
    assert_eq!(stub.index().bulk(writes).await.unwrap().applied, 12);
    let requests = stub.requests();
    let sizes: Vec<(usize, bool)> = requests
        .iter()
        .map(|request| {
            (
                request.ndjson().len() / 2,
                request.raw_body.len() <= BULK_MAX_BYTES,
            )
        })
        .collect();
    assert_eq!(sizes, [(5, true), (5, true), (2, true)]);
}

#[tokio::test]
async fn bulk_fails_on_the_first_other_item_error_naming_it_and_sends_no_more() {
    let writes: Vec<BulkWrite> = (0..1_200).map(|i| upsert(&format!("a{i}"), 1)).collect();
    let mut items: Vec<Value> = (0..BULK_MAX_ACTIONS)
        .map(|i| bulk_item("index", &format!("a{i}"), 201, "created"))
        .collect();
    items[7] = bulk_error_item(
        "index",
        "a7",
        400,
        "mapper_parsing_exception",
        "failed to parse field [createdAt] of type [date]",
    );
    items[9] = bulk_error_item("index", "a9", 400, "illegal_argument_exception", "later");
    let stub = Stub::start(vec![bulk_answer(items)]).await;
    let error = stub.index().bulk(writes).await.unwrap_err();
    assert!(
        matches!(&error, SearchError::Rejected(m)
            if m.contains("a7") && m.contains("mapper_parsing_exception")
                && m.contains("failed to parse field [createdAt]") && !m.contains("a9")),
        "{error:?}"
    );
    assert_eq!(stub.requests().len(), 1, "the second request is not sent");
}

#[tokio::test]
async fn bulk_maps_request_failures_like_every_other_call() {
    let stub = Stub::start(vec![
        (
            503,
            Some(error_body(
                503,
                "unavailable_shards_exception",
                "primary shard is not active",
            )),
        ),
        (
            403,
            Some(error_body(
                403,
                "security_exception",
                "no permissions for [indices:data/write/bulk]",
            )),
        ),
        (413, None),
        // An item throttled by the engine is worth retrying, as a throttled request is.
        bulk_answer(vec![bulk_error_item(
            "index",
            "a1",
            429,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation",
        )]),
        // An answer that does not account for every action.
        bulk_answer(vec![]),
    ])
    .await;
    let index = stub.index();
    for expected in [
        "unavailable",
        "rejected",
        "rejected",
        "unavailable",
        "unavailable",
    ] {
        let error = index.bulk(vec![upsert("a1", 1)]).await.unwrap_err();
        let kind = match error {
            SearchError::Unavailable(_) => "unavailable",
            SearchError::Rejected(_) => "rejected",
            SearchError::InvalidDocument(_) => "invalid",
        };
        assert_eq!(kind, expected, "{error:?}");
    }
}

#[tokio::test]
async fn a_bulk_with_a_document_that_cannot_be_indexed_sends_nothing() {
    let stub = Stub::start(vec![]).await;
    let mut bad = article();
    bad.article_id = "a2".into();
    bad.created_at = "1 Jan 2024".into();
    let error = stub
        .index()
        .bulk(vec![
            upsert("a1", 1),
            BulkWrite::Upsert {
                doc: bad,
                version: 1,
            },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(error, SearchError::InvalidDocument(_)),
        "{error:?}"
    );
    assert_eq!(
        stub.index().bulk(vec![]).await.unwrap(),
        BulkOutcome::default()
    );
    assert!(stub.requests().is_empty());
}
