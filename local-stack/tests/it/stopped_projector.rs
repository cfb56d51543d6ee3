//! A write while a projector is stopped: it answers within its bound, committed, with
//! `conduit-consistency: behind` naming that projection, and the read model catches up once
//! the projector runs again. The projector is stopped the way an operator's replay stops it:
//! a freeze in the projection's registry item, during which it applies nothing.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use common::clock::now_ms;
use common::config::TableNames;
use common::projections::{registry, Projection};
use projectors::versions::FROZEN_UNTIL;
use serde_json::{json, Value};

async fn send(
    request: reqwest::RequestBuilder,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("an HTTP answer");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or_default();
    (status, headers, body)
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Sets or lifts the users projection's freeze (for at most `for_ms` when set).
async fn freeze_users(client: &aws_sdk_dynamodb::Client, prefix: &str, frozen: bool, for_ms: u64) {
    client
        .update_item()
        .table_name(TableNames::with_prefix(prefix).checkpoints)
        .key("pk", AttributeValue::S(Projection::Users.registry_key()))
        .update_expression("SET #frozen = :frozen, #until = :until")
        .expression_attribute_names("#frozen", registry::FROZEN)
        .expression_attribute_names("#until", FROZEN_UNTIL)
        .expression_attribute_values(":frozen", AttributeValue::Bool(frozen))
        .expression_attribute_values(":until", AttributeValue::N((now_ms() + for_ms).to_string()))
        .send()
        .await
        .expect("writing the registry item");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_while_a_projector_is_stopped_answers_behind_and_the_read_catches_up() {
    let prefix = local_aws::testkit::unique_prefix("stopped");
    let running = local_stack::start(crate::test_config(&prefix))
        .await
        .expect("the stack starts");
    let api = running.api_url();
    let http = reqwest::Client::new();

    let (status, headers, body) = send(http.post(format!("{api}/users")).json(
        &json!({"user": {"username": "frozen-out", "email": "frozen@example.test", "password": "pw-frozen-out"}}),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(header(&headers, "conduit-consistency"), Some("current"));
    let token = body["user"]["token"].as_str().expect("token").to_owned();
    let me = || {
        http.get(format!("{api}/user"))
            .header("Authorization", format!("Token {token}"))
    };

    // Stopped for longer than the write's bound (3 s): lifted by hand below.
    freeze_users(&running.clients.dynamodb, &prefix, true, 60_000).await;
    let (status, headers, body) = send(
        http.put(format!("{api}/user"))
            .header("Authorization", format!("Token {token}"))
            .json(&json!({"user": {"bio": "written while stopped"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["bio"], "written while stopped");
    assert_eq!(
        header(&headers, "conduit-consistency"),
        Some("behind"),
        "{headers:?}"
    );
    // Only the stopped projection: the feed, which applies user events too, ran.
    assert_eq!(
        header(&headers, "conduit-behind"),
        Some("users"),
        "{headers:?}"
    );
    assert!(header(&headers, "conduit-position").is_some());
    // What the answer said is what a read sees: the users read model has not applied it.
    let (_, _, shown) = send(me()).await;
    assert_ne!(shown["user"]["bio"], "written while stopped", "{shown}");

    freeze_users(&running.clients.dynamodb, &prefix, false, 0).await;
    let started = Instant::now();
    loop {
        let (_, _, shown) = send(me()).await;
        if shown["user"]["bio"] == "written while stopped" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the users read model never caught up: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the next write waits for it again.
    let (status, headers, _) = send(
        http.put(format!("{api}/user"))
            .header("Authorization", format!("Token {token}"))
            .json(&json!({"user": {"bio": "running again"}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "conduit-consistency"), Some("current"));
    running.stop().await;
}
