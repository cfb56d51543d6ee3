//! The `query-api` Lambda binary, its real `main`, behind a local Lambda Runtime API: API
//! Gateway HTTP API (payload 2.0) events in, API Gateway responses out, against the emulators.

use std::path::{Path, PathBuf};
use std::time::Duration;

use local_aws::runtime_api::{event_from_file, FunctionProcess, RuntimeApi};
use serde_json::{json, Value};

/// Bound on the cold start and on each invocation.
const TIMEOUT: Duration = Duration::from_secs(60);
const JWT_SECRET: &str = "lambda-test-secret-0123456789-abcdefghijklmnop";

fn fixture(name: &str, substitutions: &[(&str, &str)]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    event_from_file(&path, substitutions).expect("event fixture")
}

async fn invoke(api: &RuntimeApi, function: &FunctionProcess, event: Value) -> Value {
    api.invoke_answered(function, event, TIMEOUT).await
}

fn body(response: &Value) -> Value {
    local_aws::runtime_api::api_gateway_json_body(response)
}

#[tokio::test]
async fn the_binary_answers_reads_from_api_gateway_v2_events() {
    let prefix = local_aws::testkit::unique_prefix("qrylambda");
    let (_clients, provisioned) = local_aws::testkit::provisioned(&prefix).await;
    let api = RuntimeApi::start().await;
    let function = api
        .spawn_function(
            Path::new(env!("CARGO_BIN_EXE_query-api")),
            local_aws::testkit::emulators(),
            &[
                ("CONDUIT_TABLE_PREFIX", prefix.as_str()),
                ("JWT_SECRET", JWT_SECRET),
                ("CONDUIT_TOPIC_ARN", provisioned.topic_arn.as_str()),
            ],
        )
        .expect("spawn query-api");
    let ready = function.ready(TIMEOUT).await.expect("query-api ready");
    eprintln!("query-api: spawn -> ready for its first event: {ready:?}");

    // Nobody by that name in the (empty) users read model.
    let nobody = format!("{}nobody", prefix.trim_end_matches('-'));
    let response = invoke(
        &api,
        &function,
        fixture("apigw-v2-get-profile.json", &[("__USERNAME__", &nobody)]),
    )
    .await;
    assert_eq!(response["statusCode"], 404, "{response}");
    assert_eq!(
        response["headers"]["content-type"], "application/json",
        "{response}"
    );
    assert_eq!(
        body(&response),
        json!({"errors": {"profile": ["not found"]}}),
        "{response}"
    );

    // The current user without a token.
    let response = invoke(
        &api,
        &function,
        fixture("apigw-v2-get-user-without-token.json", &[]),
    )
    .await;
    assert_eq!(response["statusCode"], 401, "{response}");
    assert_eq!(
        response["headers"]["www-authenticate"], "Token",
        "{response}"
    );
    assert!(
        body(&response)["errors"]["token"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{response}"
    );
    assert_eq!(function.exit_status(), None, "still running");
}
