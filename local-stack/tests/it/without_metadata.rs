//! An event appended without metadata (no actor, no request id: a script or a tool writing
//! to the store, not the API) goes through the whole pipeline like any other, and the events
//! after it too. An empty metadata map in its stream record once made every `GetRecords` of
//! the shard fail to parse, which stopped the local pipeline for good.

use std::time::{Duration, Instant};

use events::user::UserEvent;
use events::{Commit, EventSchema, EventStore, Metadata, NewEvent, Tables};
use serde_json::json;
use uuid::Uuid;

/// Polls `GET url` until it answers 200, for at most `within`.
async fn eventually_found(http: &reqwest::Client, url: &str, within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        let response = http.get(url).send().await.expect("an HTTP answer");
        if response.status() == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_metadata_is_projected_and_so_are_the_next() {
    let prefix = local_aws::testkit::unique_prefix("nometa");
    let running = local_stack::start(crate::test_config(&prefix))
        .await
        .expect("the stack starts");
    let api = running.api_url();
    let http = reqwest::Client::new();

    let store = EventStore::new(
        running.clients.dynamodb.clone(),
        Tables::with_prefix(&prefix),
    );
    let user_id = Uuid::new_v4().to_string();
    let event = UserEvent::UserRegistered {
        user_id: user_id.clone(),
        email: "scripted@example.test".to_owned(),
        username: "scripted".to_owned(),
        password_hash: String::new(),
    };
    let (event_type, event_version, payload) = event.to_stored();
    store
        .append(Commit {
            aggregate_type: events::user::AGGREGATE_TYPE.to_owned(),
            aggregate_id: user_id,
            expected_sequence: 0,
            events: vec![NewEvent {
                event_id: Uuid::new_v4(),
                event_type,
                event_version,
                payload,
                metadata: Metadata::default(),
            }],
            unique_changes: event.unique_changes(),
            snapshot: None,
        })
        .await
        .expect("appended");
    let within = Duration::from_secs(30);
    assert!(
        eventually_found(&http, &format!("{api}/profiles/scripted"), within).await,
        "the user appended without metadata was not projected within {within:?}"
    );

    // The pipeline goes on: a write through the API after it shows at once.
    let registered = http
        .post(format!("{api}/users"))
        .json(&json!({"user": {"username": "after-scripted", "email": "after@example.test", "password": "pw-after-scripted"}}))
        .send()
        .await
        .expect("an HTTP answer");
    assert_eq!(registered.status(), 201);
    assert_eq!(
        registered
            .headers()
            .get("conduit-consistency")
            .and_then(|v| v.to_str().ok()),
        Some("current")
    );
    let profile = http
        .get(format!("{api}/profiles/after-scripted"))
        .send()
        .await
        .expect("an HTTP answer");
    assert_eq!(profile.status(), 200);
    running.stop().await;
}
