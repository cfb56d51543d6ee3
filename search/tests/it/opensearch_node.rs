//! What only the OpenSearch adapter does, on a real node: the index's settings and mapping,
//! the alias, the alias move at a rebuild's switch, and the engine's own refusals. The answers
//! to queries and writes are in `conformance`, shared with the embedded engine.

use opensearch::http::transport::Transport;
use opensearch::http::{Method, StatusCode};
use opensearch::OpenSearch;
use serde_json::{json, Value};

use search::{
    ArticleQuery, BulkWrite, SearchBackend, SearchConfig, SearchError, SearchIndex,
    VersionedSearch, Written,
};

use crate::conformance::article;

fn node() -> &'static str {
    local_aws::testkit::opensearch()
}

/// A plain client of the node, to look at what the adapter left there.
fn raw() -> OpenSearch {
    OpenSearch::new(Transport::single_node(node()).expect("a transport"))
}

/// `GET path` on the node: status and JSON body.
async fn get(path: &str) -> (StatusCode, Value) {
    let response = raw()
        .send(
            Method::Get,
            path,
            Default::default(),
            None::<&()>,
            None::<opensearch::http::request::JsonBody<Value>>,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status_code();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn config(prefix: &str) -> SearchConfig {
    SearchConfig {
        backend: SearchBackend::OpenSearch {
            url: node().to_owned(),
            sigv4: false,
        },
        alias: format!("{prefix}articles"),
        index: format!("{prefix}articles-v1"),
    }
}

fn all() -> ArticleQuery {
    ArticleQuery {
        limit: 20,
        ..ArticleQuery::default()
    }
}

async fn ids(index: &SearchIndex) -> Vec<String> {
    let page = index.search(&all()).await.expect("search");
    page.hits.into_iter().map(|hit| hit.article_id).collect()
}

#[tokio::test]
async fn ensure_index_creates_the_settings_mapping_and_alias_once() {
    let prefix = local_aws::testkit::unique_prefix("mapping");
    let config = config(&prefix);
    let index = config.open().await.expect("a client");
    index.ensure_index().await.expect("created");
    // Again, as every start does: nothing changes, nothing fails.
    index.ensure_index().await.expect("created again");

    let (status, settings) = get(&format!("/{}/_settings", config.index)).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let settings = &settings[&config.index]["settings"]["index"];
    assert_eq!(settings["number_of_shards"], "1", "{settings}");
    assert_eq!(settings["max_result_window"], "10100", "{settings}");
    // No replica on a single node, so the index is green, not yellow for good.
    assert_eq!(settings["auto_expand_replicas"], "0-1", "{settings}");
    let (_, health) = get(&format!(
        "/_cluster/health/{}?wait_for_status=green&timeout=10s",
        config.index
    ))
    .await;
    assert_eq!(health["status"], "green", "{health}");

    let (_, mapping) = get(&format!("/{}/_mapping", config.index)).await;
    assert_eq!(
        mapping[&config.index]["mappings"],
        json!({
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
        })
    );

    let (status, aliases) = get(&format!("/_alias/{}", config.alias)).await;
    assert_eq!(status, StatusCode::OK, "{aliases}");
    assert_eq!(
        aliases,
        json!({ (config.index.clone()): {"aliases": {(config.alias.clone()): {}}} })
    );

    // Reads and writes through the alias reach the index; the stored document is the
    // article with its sort key, and ISO 8601 dates with milliseconds are taken as dates.
    let doc = article("m1", "u1", &["t"], "2024-01-01T00:00:00.123Z");
    assert_eq!(index.upsert(&doc, 1).await.unwrap(), Written::Applied);
    let (_, stored) = get(&format!("/{}/_doc/m1", config.index)).await;
    assert_eq!(stored["_version"], 1);
    assert_eq!(stored["_source"]["sortKey"], doc.sort_key().unwrap());
    assert_eq!(stored["_source"]["createdAt"], "2024-01-01T00:00:00.123Z");
}

#[tokio::test]
async fn a_switch_moves_the_alias_in_one_step_and_an_old_version_is_removed() {
    let prefix = local_aws::testkit::unique_prefix("switch");
    let versions = VersionedSearch::new(config(&prefix));
    versions.ensure_alias(1).await.expect("alias on v1");
    let v1 = versions.index(1).await.expect("v1");
    v1.upsert(&article("old", "u1", &["t"], "2024-01-01T00:00:00.000Z"), 1)
        .await
        .unwrap();

    // A rebuild fills v2 in bulk beside it; readers of the alias still see v1.
    let v2 = versions.index(2).await.expect("v2");
    let outcome = v2
        .bulk(vec![
            BulkWrite::Upsert {
                doc: article("new", "u1", &["t"], "2024-01-02T00:00:00.000Z"),
                version: 1,
            },
            BulkWrite::Upsert {
                doc: article("old", "u1", &["t"], "2024-01-01T00:00:00.000Z"),
                version: 1,
            },
        ])
        .await
        .unwrap();
    assert_eq!((outcome.applied, outcome.stale), (2, 0));
    let through_alias = versions.base().open().await.expect("the alias");
    assert_eq!(ids(&through_alias).await, ["old"]);

    versions.point_alias(2).await.expect("switch");
    assert_eq!(ids(&through_alias).await, ["new", "old"]);
    let (_, aliases) = get(&format!("/_alias/{}", versions.base().alias)).await;
    let holders: Vec<&String> = aliases.as_object().unwrap().keys().collect();
    assert_eq!(
        holders,
        [&versions.config(2).index],
        "only v2 holds the alias"
    );
    // Writes through the alias now land in v2.
    through_alias
        .upsert(
            &article("later", "u2", &["t"], "2024-01-03T00:00:00.000Z"),
            1,
        )
        .await
        .unwrap();
    assert_eq!(ids(&v2).await, ["later", "new", "old"]);
    assert_eq!(ids(&v1).await, ["old"]);

    // Back (what a failed switch's rollback does), then forward again: idempotent.
    versions.point_alias(1).await.expect("back");
    assert_eq!(ids(&through_alias).await, ["old"]);
    versions.point_alias(2).await.expect("forward");
    versions.point_alias(2).await.expect("forward again");
    assert_eq!(ids(&through_alias).await, ["later", "new", "old"]);

    versions.remove(1).await.expect("v1 removed");
    versions
        .remove(1)
        .await
        .expect("removing it again is a no-op");
    let (status, _) = get(&format!("/{}", versions.config(1).index)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ids(&through_alias).await, ["later", "new", "old"]);
}

#[tokio::test]
async fn a_missing_index_is_a_refusal_not_an_outage() {
    // No index behind the name: the engine answers 404 index_not_found_exception, which no
    // retry will mend (an API answers 500, a projector's message goes to its DLQ).
    let prefix = local_aws::testkit::unique_prefix("missing");
    let index = config(&prefix).open().await.expect("a client");
    let error = index.search(&all()).await.unwrap_err();
    assert!(
        matches!(&error, SearchError::Rejected(m) if m.contains("index_not_found_exception")),
        "{error:?}"
    );
    let error = index.tags().await.unwrap_err();
    assert!(matches!(error, SearchError::Rejected(_)), "{error:?}");
    // A write through an alias that does not exist is refused too, and creates nothing:
    // OpenSearch would otherwise make an index of that name with a guessed mapping
    // (`action.auto_create_index` is on, here as in Amazon OpenSearch Service).
    let doc = article("x", "u1", &[], "2024-01-01T00:00:00.000Z");
    let error = index.upsert(&doc, 1).await.unwrap_err();
    assert!(matches!(&error, SearchError::Rejected(_)), "{error:?}");
    let error = index
        .bulk(vec![BulkWrite::Upsert { doc, version: 1 }])
        .await
        .unwrap_err();
    assert!(matches!(error, SearchError::Rejected(_)), "{error:?}");
    let (status, body) = get(&format!("/{prefix}articles")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
