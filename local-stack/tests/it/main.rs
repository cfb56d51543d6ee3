//! The local stack's integration tests, one module per subject, in one binary: every test
//! binary links the whole AWS SDK again, so one per crate keeps the test build short.

use std::time::Duration;

use common::config::JwtSettings;
use local_stack::StackConfig;

mod fuzz;
mod openapi_routes;
mod restart;
mod stopped_projector;
mod without_metadata;

/// A stack on the shared in-memory emulators under `prefix`: any free port, failed messages
/// retried after 1 s, the stream polled every 20 ms, the search index in memory, no meters.
pub(crate) fn test_config(prefix: &str) -> StackConfig {
    StackConfig {
        endpoints: local_aws::testkit::emulators().clone(),
        prefix: prefix.to_owned(),
        jwt: JwtSettings::new(vec![b's'; 32], Duration::from_secs(3600)).expect("jwt"),
        listen: ([127, 0, 0, 1], 0).into(),
        retry_delay: Some(Duration::from_secs(1)),
        stream_poll_interval: Duration::from_millis(20),
        search: local_stack::SearchBackend::Embedded { dir: None },
        api_meter: None,
        pipeline_meter: None,
    }
}

/// Registers `username` (email `<username>@example.com`) through the stack's API at `api`;
/// the user's token.
pub(crate) async fn register(http: &reqwest::Client, api: &str, username: &str) -> String {
    let registered: serde_json::Value = http
        .post(format!("{api}/users"))
        .json(&serde_json::json!({"user": {
            "username": username,
            "email": format!("{username}@example.com"),
            "password": format!("pw-{username}"),
        }}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    registered["user"]["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}
