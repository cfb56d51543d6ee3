//! A rebuild of the search read model of a local stack on OpenSearch (the binary's own node):
//! the new version's index equals the live one, and the stack serves it once switched.

use std::time::Duration;

use common::config::{JwtSettings, TableNames};
use common::projections::Projection;
use local_stack::{SearchBackend, StackConfig};
use replay::{RebuildOptions, Replay};
use serde_json::{json, Value};

/// Sends `request` and returns the status and the JSON body (`null` when there is none).
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("an HTTP answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The slugs `GET /articles?{query}` lists.
async fn listed(http: &reqwest::Client, api: &str, query: &str) -> Vec<String> {
    let (status, body) = send(http.get(format!("{api}/articles?{query}"))).await;
    assert_eq!(status, 200, "{body}");
    body["articles"]
        .as_array()
        .expect("articles")
        .iter()
        .map(|a| a["slug"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_rebuild_on_opensearch_equals_the_live_index_and_is_served() {
    let prefix = local_aws::testkit::unique_prefix("rpos");
    let backend = SearchBackend::OpenSearch {
        url: local_aws::testkit::opensearch().to_owned(),
        sigv4: false,
    };
    let stack = local_stack::start(StackConfig {
        endpoints: local_aws::testkit::emulators().clone(),
        prefix: prefix.clone(),
        jwt: JwtSettings::new(vec![b's'; 32], Duration::from_secs(3600)).expect("jwt"),
        listen: ([127, 0, 0, 1], 0).into(),
        retry_delay: Some(Duration::from_secs(1)),
        stream_poll_interval: Duration::from_millis(20),
        search: backend.clone(),
        api_meter: None,
        pipeline_meter: None,
    })
    .await
    .expect("a stack on OpenSearch");
    let api = stack.api_url();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");

    // Articles published, edited, deleted and favorited, with tags (each write answers once
    // the read models it touches have applied it).
    let (status, body) = send(http.post(format!("{api}/users")).json(&json!({"user": {
        "username": format!("{prefix}alice"),
        "email": format!("{prefix}alice@example.test"),
        "password": "alice-password",
    }})))
    .await;
    assert_eq!(status, 201, "{body}");
    let token = format!("Token {}", body["user"]["token"].as_str().expect("token"));
    let tag = format!("{prefix}tag");
    let mut slugs = Vec::new();
    for i in 1..=4 {
        let (status, body) = send(
            http.post(format!("{api}/articles"))
                .header("Authorization", &token)
                .json(&json!({"article": {"title": format!("Article {i}"),
                    "description": "d", "body": "b", "tagList": [tag, format!("t{i}")]}})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        slugs.push(body["article"]["slug"].as_str().expect("slug").to_owned());
    }
    let edited = send(
        http.put(format!("{api}/articles/{}", slugs[1]))
            .header("Authorization", &token)
            .json(&json!({"article": {"title": "Article Two"}})),
    )
    .await;
    assert_eq!(edited.0, 200, "{}", edited.1);
    let deleted = send(
        http.delete(format!("{api}/articles/{}", slugs[2]))
            .header("Authorization", &token),
    )
    .await;
    assert_eq!(deleted.0, 204, "{}", deleted.1);
    let favorited = send(
        http.post(format!("{api}/articles/{}/favorite", slugs[0]))
            .header("Authorization", &token),
    )
    .await;
    assert_eq!(favorited.0, 200, "{}", favorited.1);
    assert_eq!(listed(&http, &api, &format!("tag={tag}")).await.len(), 3);

    let replay = Replay::in_process(
        stack.clients.dynamodb.clone(),
        stack.clients.streams.clone(),
        TableNames::with_prefix(&prefix),
        local_stack::versioned_search(&prefix, backend),
    );
    let options = RebuildOptions {
        verify: true,
        ..RebuildOptions::default()
    };
    let report = replay::rebuild(&replay, Projection::Search, &options)
        .await
        .expect("rebuilding the search read model");
    eprintln!("{}", report.summary());
    assert_eq!(report.version, 2);
    let verify = report.verify.as_ref().expect("verified");
    assert!(verify.is_equal(), "{}", verify.render());
    assert!(
        verify.comparisons.iter().all(|c| c.old_items > 0),
        "an empty index proves nothing: {}",
        verify.render()
    );

    // The stack now reads and writes version 2: a new article is listed with the others.
    let (status, body) = send(
        http.post(format!("{api}/articles"))
            .header("Authorization", &token)
            .json(&json!({"article": {"title": "After the switch",
                "description": "d", "body": "b", "tagList": [tag]}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let after = body["article"]["slug"].as_str().expect("slug").to_owned();
    let expected = [after.as_str(), &slugs[3], "article-two", &slugs[0]];
    assert_eq!(listed(&http, &api, &format!("tag={tag}")).await, expected);
    stack.stop().await;
}
