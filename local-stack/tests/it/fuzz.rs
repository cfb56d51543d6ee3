//! The served OpenAPI document is the truth: schemathesis (`SCHEMATHESIS`, pinned and installed
//! by `./dev test`) generates requests from `GET /api/openapi.json`, valid and invalid, one
//! operation at a time and as stateful sequences along the document's links, with a token, and
//! checks every answer against the document (`--checks all`). Its settings, and the complete
//! list of what it excludes with the reasons, are `schemathesis.toml` at the repository root.
//! The budget is [`BUDGET_SECS`]; a fixed seed makes a failure reproducible.

use std::path::PathBuf;
use std::process::Command;

/// The fuzzer's time budget (all phases), in seconds.
const BUDGET_SECS: u32 = 150;
/// A fixed seed: the same run's cases again, so that a failure can be reproduced.
const SEED: &str = "20261203";

fn schemathesis() -> String {
    match std::env::var("SCHEMATHESIS") {
        Ok(path) if !path.is_empty() => path,
        _ => panic!(
            "SCHEMATHESIS is not set: it names the fuzzer; run through ./dev test, which \
             installs it (into .local/tools) and sets it"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fuzzer_finds_nothing_the_document_does_not_say() {
    let program = schemathesis();
    let prefix = local_aws::testkit::unique_prefix("fuzz");
    let stack = local_stack::start(crate::test_config(&prefix))
        .await
        .expect("the stack");
    let api = stack.api_url();
    let http = reqwest::Client::new();
    let token = crate::register(&http, &api, "fuzzer").await;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned();
    let config = root.join("schemathesis.toml").display().to_string();
    let args = [
        "--config-file".to_owned(),
        config,
        "--no-color".to_owned(),
        "run".to_owned(),
        format!("{api}/openapi.json"),
        "--header".to_owned(),
        format!("Authorization: Token {token}"),
        "--checks".to_owned(),
        "all".to_owned(),
        "--max-time".to_owned(),
        BUDGET_SECS.to_string(),
        "--seed".to_owned(),
        SEED.to_owned(),
        "--workers".to_owned(),
        "2".to_owned(),
    ];
    // Off the blocking pool: the stack answers on this runtime while the fuzzer runs.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .args(args)
            // The settings name their hooks relative to the repository's root.
            .current_dir(&root)
            // Nothing leaves the machine: any request not to the stack goes to a closed port.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .output()
    })
    .await
    .expect("the fuzzer's thread")
    .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The summary, also on success: the note on the test's cost reads it.
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            ["passed", "Scenarios", "API Links", "(in ", "====="]
                .iter()
                .any(|part| l.contains(part))
        })
        .collect();
    eprintln!(
        "schemathesis (seed {SEED}, {BUDGET_SECS} s):\n{}",
        summary.join("\n")
    );
    stack.stop().await;
    assert!(
        output.status.success(),
        "schemathesis found failures ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // A green run that tested less than the whole document would prove little. (Loaded from
    // a URL, schemathesis leaves out the operation that serves the document, `GET
    // /openapi.json`, which the API tests check.)
    let document: serde_json::Value =
        serde_json::from_str(common::openapi::DOCUMENT).expect("the document");
    let operations: usize = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| *path != "/openapi.json")
        .filter_map(|(_, item)| item.as_object())
        .map(|item| {
            // A path item also holds shared `parameters`, a `summary` and the like.
            item.keys()
                .filter(|key| {
                    [
                        "get", "put", "post", "delete", "patch", "head", "options", "trace",
                    ]
                    .contains(&key.as_str())
                })
                .count()
        })
        .sum();
    assert!(
        stdout.contains(&format!("Tested: {operations}\n")),
        "schemathesis did not test all {operations} operations:\n{stdout}"
    );
    assert!(
        stdout.contains("Stateful (in "),
        "the stateful phase did not run:\n{stdout}"
    );
}
