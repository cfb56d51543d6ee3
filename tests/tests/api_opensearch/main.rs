//! The search-backed modules of the `api` binary (articles, listing, tags, read-after-write,
//! read-your-writes) run again, unchanged, against a stack whose search read model is a real
//! OpenSearch node: the harness picks OpenSearch for a binary whose name ends in
//! `_opensearch` (see the `tests` crate docs).

#[path = "../api/articles.rs"]
mod articles;
#[path = "../api/listing.rs"]
mod listing;
#[path = "../api/read_after_write.rs"]
mod read_after_write;
#[path = "../api/read_your_writes.rs"]
mod read_your_writes;
#[path = "../api/tags.rs"]
mod tags;

use local_stack::SearchBackend;
use serde_json::{json, Value};
use tests::{eventually, unique_name, unique_title, Api, CONSISTENCY_BOUND};

/// The number of documents tagged `tag` in the stack's search index on the node, read through
/// the alias every reader that knows no version uses (`<prefix>articles`).
async fn documents_on_the_node(url: &str, prefix: &str, tag: &str) -> Result<u64, Value> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let response = http
        .post(format!("{url}/{prefix}articles/_count"))
        .json(&json!({"query": {"term": {"tagList": tag}}}))
        .send()
        .await
        .map_err(|e| json!(e.to_string()))?;
    let body: Value = response.json().await.map_err(|e| json!(e.to_string()))?;
    body["count"].as_u64().ok_or(body)
}

#[tokio::test]
async fn the_articles_reach_the_opensearch_node() {
    let api = Api::new();
    let stack = api.stack();
    let SearchBackend::OpenSearch { url, .. } = &stack.search else {
        panic!(
            "this binary's stack is not on OpenSearch: {:?}",
            stack.search
        );
    };
    let author = api.new_user("on_node").await;
    let tag = unique_name("node");
    let mut slugs = Vec::new();
    for words in [
        "First on the node",
        "Second on the node",
        "Third on the node",
    ] {
        let (title, _) = unique_title(words);
        slugs.push(tests::slug_of(
            &api.new_article(&author, &title, &[&tag]).await,
        ));
    }
    api.delete_article(&slugs[0], Some(&author.token))
        .await
        .expect(204);

    // Two documents left in the stack's index on the node (the API could not tell an index
    // elsewhere from this one).
    eventually(CONSISTENCY_BOUND, || async {
        match documents_on_the_node(url, &stack.prefix, &tag).await {
            Ok(2) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    api.eventually_listing(&format!("tag={tag}"), None, &[&slugs[2], &slugs[1]])
        .await;
}
