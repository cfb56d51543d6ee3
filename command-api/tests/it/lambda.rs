//! The `command-api` Lambda binary, its real `main`, behind a local Lambda Runtime API: API
//! Gateway HTTP API (payload 2.0) events in, API Gateway responses out, against the emulators.

use std::path::{Path, PathBuf};
use std::time::Duration;

use local_aws::runtime_api::{event_from_file, FunctionProcess, RuntimeApi};
use serde_json::Value;

/// Bound on the cold start and on each invocation (argon2 hashing included).
const TIMEOUT: Duration = Duration::from_secs(60);
const JWT_SECRET: &str = "lambda-test-secret-0123456789-abcdefghijklmnop";

fn fixture(name: &str, substitutions: &[(&str, &str)]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut event = event_from_file(&path, substitutions).expect("event fixture");
    // API Gateway sends the real length of the body it forwards.
    if let Some(length) = event["body"].as_str().map(str::len) {
        event["headers"]["content-length"] = Value::String(length.to_string());
    }
    event
}

async fn invoke(api: &RuntimeApi, function: &FunctionProcess, event: Value) -> Value {
    api.invoke_answered(function, event, TIMEOUT).await
}

fn body(response: &Value) -> Value {
    local_aws::runtime_api::api_gateway_json_body(response)
}

fn content_type(response: &Value) -> Option<&str> {
    response["headers"]["content-type"].as_str()
}

#[tokio::test]
async fn the_binary_registers_users_from_api_gateway_v2_events() {
    let prefix = local_aws::testkit::unique_prefix("cmdlambda");
    let (_clients, provisioned) = local_aws::testkit::provisioned(&prefix).await;
    let api = RuntimeApi::start().await;
    let function = api
        .spawn_function(
            Path::new(env!("CARGO_BIN_EXE_command-api")),
            local_aws::testkit::emulators(),
            &[
                ("CONDUIT_TABLE_PREFIX", prefix.as_str()),
                ("JWT_SECRET", JWT_SECRET),
                ("CONDUIT_TOPIC_ARN", provisioned.topic_arn.as_str()),
            ],
        )
        .expect("spawn command-api");
    let ready = function.ready(TIMEOUT).await.expect("command-api ready");
    eprintln!("command-api: spawn -> ready for its first event: {ready:?}");

    let name = prefix.trim_end_matches('-').to_owned();
    let email = format!("{name}@example.com");
    let register = fixture(
        "apigw-v2-post-users.json",
        &[("__USERNAME__", &name), ("__EMAIL__", &email)],
    );
    let response = invoke(&api, &function, register).await;
    assert_eq!(response["statusCode"], 201, "{response}");
    assert_eq!(
        content_type(&response),
        Some("application/json"),
        "{response}"
    );
    let user = &body(&response)["user"];
    assert_eq!(user["username"], name.as_str(), "{response}");
    assert_eq!(user["email"], email.as_str(), "{response}");
    let token = user["token"].as_str().expect("a token");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    // The same email again, under another name: the uniqueness claim refuses it.
    let other = format!("{name}-2");
    let again = fixture(
        "apigw-v2-post-users.json",
        &[("__USERNAME__", &other), ("__EMAIL__", &email)],
    );
    let response = invoke(&api, &function, again).await;
    assert_eq!(response["statusCode"], 422, "{response}");
    let errors = &body(&response)["errors"];
    assert!(
        errors["email"].as_array().is_some_and(|m| !m.is_empty()),
        "{response}"
    );

    // Bytes that are not JSON: 400, and the function keeps serving.
    let malformed = fixture(
        "apigw-v2-post-users-malformed-json.json",
        &[("__USERNAME__", &other)],
    );
    let response = invoke(&api, &function, malformed).await;
    assert_eq!(response["statusCode"], 400, "{response}");
    assert!(body(&response)["errors"]["body"].is_array(), "{response}");

    assert_eq!(function.exit_status(), None, "still running");
}

#[tokio::test]
async fn a_missing_secret_fails_the_cold_start_with_its_name() {
    let api = RuntimeApi::start().await;
    let function = api
        .spawn_function(
            Path::new(env!("CARGO_BIN_EXE_command-api")),
            local_aws::testkit::emulators(),
            &[("CONDUIT_TABLE_PREFIX", "tnosecret-")],
        )
        .expect("spawn command-api");
    let err = function
        .ready(TIMEOUT)
        .await
        .expect_err("no JWT_SECRET, no start");
    let message = format!("{err:#}");
    assert!(message.contains("JWT_SECRET"), "{message}");
}
