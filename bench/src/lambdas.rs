//! Lambda binaries (section 6): size, process start → ready for the first event (local
//! Runtime API), peak memory, each beside the hello-world `lambda_runtime` binary built in the
//! same run.
//!
//! Each binary is started `scale.lambda_starts` times, each time behind a fresh local Lambda
//! Runtime API ([`local_aws::runtime_api`]) in a Lambda-like environment pointed at the emulators
//! (the variables the deployment template gives, on a prefix provisioned for this section).
//! `ready` is the time from spawning the process to its first `GET /invocation/next`; then
//! the function handles one event of its kind (a registration for the command API, an article
//! list for the query API, a stream record or a queue message with one event for the others,
//! `{}` for hello-world) and its peak resident memory (`VmHWM`) is read before it is killed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::AttributeValue;
use events::article::ArticleEvent;
use events::user::UserEvent;
use events::{EventSchema, StoredEvent};
use local_aws::runtime_api::{InvocationError, RuntimeApi};
use local_aws::{Clients, LocalEndpoints};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::report::{BinaryRun, LambdaSection};
use crate::stats::{Latency, VsBaseline};
use crate::Config;

/// Bound on a cold start and on the one invocation.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The file in the Lambda folder where `./dev` writes the `cargo lambda build` command it ran.
const BUILD_NOTE: &str = "BUILD";

/// The name the hello-world baseline goes by.
pub const HELLO: &str = "hello-lambda";
/// `JWT_SECRET` of the API functions (the local stack's kind of secret: long enough).
const JWT_SECRET: &str = "bench-lambda-secret-0123456789-abcdefghijklmnop";

/// The workspace manifest, for the release profile the binaries were built with.
const WORKSPACE_MANIFEST: &str = include_str!("../../Cargo.toml");

pub async fn measure(config: &Config, endpoints: &LocalEndpoints) -> anyhow::Result<LambdaSection> {
    let starts = config.scale.lambda_starts.max(1);
    let functions: Vec<(String, PathBuf)> = config
        .lambda_bins
        .iter()
        .map(|bin| (bin.clone(), config.lambda_dir.join(bin).join("bootstrap")))
        .collect();
    if !config.hello.is_file() {
        bail!(
            "{} does not exist: `./dev lambdas` builds the hello-world baseline with cargo lambda, \
             beside the functions",
            config.hello.display()
        );
    }
    for (_, path) in &functions {
        if !path.is_file() {
            bail!(
                "{} does not exist: `./dev lambdas` builds the Lambda binaries into {}",
                path.display(),
                config.lambda_dir.display()
            );
        }
    }

    let clients = Clients::local(endpoints).await;
    let prefix = local_aws::testkit::unique_prefix("benchlambda");
    let provisioned = local_aws::provision::provision(&clients, &prefix)
        .await
        .with_context(|| format!("provisioning {prefix}"))?;
    let env = [
        ("CONDUIT_TABLE_PREFIX", prefix.clone()),
        ("CONDUIT_TOPIC_ARN", provisioned.topic_arn.clone()),
        ("JWT_SECRET", JWT_SECRET.to_owned()),
    ];
    let measured = async {
        let hello = measure_binary(HELLO, &config.hello, endpoints, &env, starts).await?;
        let mut runs = Vec::new();
        for (name, path) in &functions {
            let mut run = measure_binary(name, path, endpoints, &env, starts).await?;
            beside_hello(&mut run, &hello);
            runs.push(run);
        }
        anyhow::Ok((hello, runs))
    }
    .await;
    let torn_down = local_aws::provision::teardown(&clients, &prefix).await;
    let (hello, runs) = measured?;
    torn_down.with_context(|| format!("deleting what {prefix} holds"))?;

    Ok(LambdaSection {
        build: build_description(config),
        hello: Some(hello),
        functions: runs,
    })
}

/// Size, `starts` cold starts and the peak memory of `binary`.
async fn measure_binary(
    name: &str,
    binary: &Path,
    endpoints: &LocalEndpoints,
    env: &[(&str, String)],
    starts: usize,
) -> anyhow::Result<BinaryRun> {
    let size_bytes = std::fs::metadata(binary)
        .with_context(|| format!("reading the size of {}", binary.display()))?
        .len();
    let mut ready = Vec::with_capacity(starts);
    let mut peak_rss_kib = 0;
    for start in 1..=starts {
        let (took, peak, answer) = start_once(name, binary, endpoints, env)
            .await
            .with_context(|| format!("{name} ({}), start {start}", binary.display()))?;
        eprintln!(
            "bench:   {name} start {start}/{starts}: ready after {:.1} ms, answered {answer}, \
             peak RSS {peak} KiB",
            took.as_secs_f64() * 1000.0
        );
        ready.push(took);
        peak_rss_kib = peak_rss_kib.max(peak);
    }
    Ok(BinaryRun {
        name: name.to_owned(),
        size_bytes,
        ready: Latency::of(&ready),
        peak_rss_kib,
        vs_size: None,
        vs_ready: None,
        vs_memory: None,
    })
}

/// One cold start behind a fresh Runtime API: time to ready, peak RSS after one event, and
/// what the function answered (for the progress line).
async fn start_once(
    name: &str,
    binary: &Path,
    endpoints: &LocalEndpoints,
    env: &[(&str, String)],
) -> anyhow::Result<(Duration, u64, String)> {
    let api = RuntimeApi::try_start()
        .await
        .context("starting a local Lambda Runtime API")?;
    let event = event_for(name)?;
    let mut function = api.spawn_function(binary, endpoints, env)?;
    let ready = function.ready(TIMEOUT).await?;
    let answer = match api.invoke(event, TIMEOUT).await {
        Ok(response) => describe_response(&response),
        // A clean refusal is fine: the process handled an event.
        Err(InvocationError::Function(error)) => format!("error {}", error.error_type),
        Err(e) => bail!(
            "{name} did not handle its event: {e}; its log {} ends with:\n{}",
            function.log_file().display(),
            function.log_tail(30)
        ),
    };
    let peak = crate::memory::peak_rss_kib(function.pid())
        .with_context(|| format!("reading the peak memory of {name}"))?;
    function.kill();
    Ok((ready, peak, answer))
}

fn beside_hello(run: &mut BinaryRun, hello: &BinaryRun) {
    run.vs_size = Some(VsBaseline::new(
        run.size_bytes as f64,
        "hello-lambda size (bytes)",
        hello.size_bytes as f64,
    ));
    run.vs_ready = Some(VsBaseline::new(
        run.ready.p50_ms,
        "hello-lambda ready p50 (ms)",
        hello.ready.p50_ms,
    ));
    run.vs_memory = Some(VsBaseline::new(
        run.peak_rss_kib as f64,
        "hello-lambda peak RSS (KiB)",
        hello.peak_rss_kib as f64,
    ));
}

/// `HTTP 201`, `0 batch item failures`, or the JSON itself (cut short).
fn describe_response(response: &Value) -> String {
    if let Some(status) = response.get("statusCode").and_then(Value::as_u64) {
        return format!("HTTP {status}");
    }
    if let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) {
        return format!("{} batch item failures", failures.len());
    }
    let text = response.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// How the binaries were built: the `./dev` build, cargo lambda's release settings and the
/// workspace's release profile; says so when the hello-world baseline is not the cargo lambda
/// build beside them.
fn build_description(config: &Config) -> String {
    // `./dev test` builds them in the dev profile (and says so in this file) to check the
    // artifacts quickly; those figures are not the release build's.
    let dev_build = std::fs::read_to_string(config.lambda_dir.join(BUILD_NOTE))
        .is_ok_and(|note| note.split_whitespace().all(|word| word != "--release"));
    if dev_build {
        return format!(
            "cargo lambda build --locked (dev profile, unoptimized: sizes, start-up and memory \
             are not the release build's): x86_64 Linux, linked by zig for the glibc of \
             provided.al2023, from {}",
            config.lambda_dir.display()
        );
    }
    let profile = release_profile(WORKSPACE_MANIFEST);
    let mut text = format!(
        "cargo lambda build --release --locked: x86_64 Linux, linked by zig for the glibc of \
         provided.al2023, with cargo lambda's release optimizations (symbols stripped, thin LTO, \
         codegen-units = 1, panic = abort) over the workspace's [profile.release] ({})",
        if profile.is_empty() {
            "cargo's defaults".to_owned()
        } else {
            profile
        }
    );
    let cargo_lambda_hello = config.lambda_dir.join(HELLO).join("bootstrap");
    if config.hello != cargo_lambda_hello {
        text.push_str(&format!(
            "; hello-lambda is {}, not that build: its ratios compare unlike builds",
            config.hello.display()
        ));
    }
    text
}

/// The settings of `[profile.release]` in `manifest`, joined: `strip = "debuginfo"`.
fn release_profile(manifest: &str) -> String {
    manifest
        .lines()
        .skip_while(|line| line.trim() != "[profile.release]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect::<Vec<_>>()
        .join(", ")
}

// -------------------------------------------------------------------------------------------
// Events

/// One event `name` handles: what it gets in production, with fresh ids.
fn event_for(name: &str) -> anyhow::Result<Value> {
    Ok(match name {
        "command-api" => {
            let user = format!("bench{}", &Uuid::new_v4().simple().to_string()[..12]);
            let body = json!({"user": {
                "username": user,
                "email": format!("{user}@example.com"),
                "password": "correct horse battery staple",
            }})
            .to_string();
            api_gateway_event("POST", "/api/users", Some(body))
        }
        "query-api" => api_gateway_event("GET", "/api/articles", None),
        "fan-out" => stream_event(&user_registered())?,
        "users-projector" => sqs_event(&user_registered())?,
        "articles-projector" | "feed-projector" | "search-projector" => {
            sqs_event(&article_published())?
        }
        _ => json!({}),
    })
}

/// An API Gateway HTTP API (payload 2.0) request.
fn api_gateway_event(method: &str, path: &str, body: Option<String>) -> Value {
    let mut headers = json!({
        "accept": "application/json",
        "host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
        "user-agent": "conduit-bench",
        "x-forwarded-proto": "https",
    });
    if let Some(body) = &body {
        headers["content-type"] = json!("application/json");
        headers["content-length"] = json!(body.len().to_string());
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("{method} /api/{{proxy+}}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": local_aws::runtime_api::ACCOUNT_ID,
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "conduit-bench",
            },
            "requestId": Uuid::new_v4().to_string(),
            "routeKey": format!("{method} /api/{{proxy+}}"),
            "stage": "$default",
            "time": "12/Jan/2024:19:03:58 +0000",
            "timeEpoch": 1_705_086_238_390_u64,
        },
        "pathParameters": {"proxy": path.trim_start_matches("/api/")},
        "isBase64Encoded": false,
    });
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    event
}

fn stored<E: EventSchema>(aggregate_type: &str, aggregate_id: &str, event: E) -> StoredEvent {
    let (event_type, event_version, payload) = event.to_stored();
    StoredEvent {
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        sequence: 1,
        event_id: Uuid::new_v4(),
        event_type,
        event_version,
        payload,
        metadata: events::Metadata::default(),
        recorded_at: "2024-01-12T19:03:58.412Z".to_owned(),
    }
}

fn user_registered() -> StoredEvent {
    let id = Uuid::new_v4().to_string();
    let name = format!("bench{}", &Uuid::new_v4().simple().to_string()[..12]);
    stored(
        "User",
        &id,
        UserEvent::UserRegistered {
            user_id: id.clone(),
            email: format!("{name}@example.com"),
            username: name,
            password_hash: String::new(),
        },
    )
}

fn article_published() -> StoredEvent {
    let id = Uuid::new_v4().to_string();
    stored(
        "Article",
        &id,
        ArticleEvent::ArticlePublished {
            article_id: id.clone(),
            author_id: Uuid::new_v4().to_string(),
            slug: format!("bench-{id}"),
            title: "How to train your dragon".to_owned(),
            description: "Ever wonder how?".to_owned(),
            body: "You have to believe.".to_owned(),
            tag_list: vec!["dragons".to_owned(), "training".to_owned()],
            created_at: "2024-01-12T19:03:58.412Z".to_owned(),
        },
    )
}

/// A DynamoDB stream batch of the events table holding `event`'s insert.
fn stream_event(event: &StoredEvent) -> anyhow::Result<Value> {
    let item = events::store::event_to_item(event);
    let image = attributes_json(&item)?;
    let keys = json!({"pk": image["pk"], "sk": image["sk"]});
    Ok(json!({"Records": [{
        "eventID": Uuid::new_v4().simple().to_string(),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_705_086_238,
            "Keys": keys,
            "NewImage": image,
            "SequenceNumber": "4421584500000000017450439091",
            "SizeBytes": 487,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/bench-events/stream/2024-01-12T18:55:07.114",
    }]}))
}

/// An SQS batch of one message: `event` in an SNS envelope, as the projector queues get it.
fn sqs_event(event: &StoredEvent) -> anyhow::Result<Value> {
    let envelope = json!({
        "Type": "Notification",
        "MessageId": Uuid::new_v4().to_string(),
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:bench-domain-events",
        "Message": serde_json::to_string(event)?,
        "MessageAttributes": {
            "aggregateType": {"Type": "String", "Value": event.aggregate_type},
            "eventType": {"Type": "String", "Value": event.event_type},
        },
    });
    Ok(json!({"Records": [{
        "messageId": Uuid::new_v4().to_string(),
        "receiptHandle": "rh",
        "body": envelope.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-projector",
        "awsRegion": "us-east-1",
    }]}))
}

/// An item in DynamoDB's JSON (`{"S": "..."}`), as stream records carry it.
fn attributes_json(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> anyhow::Result<Value> {
    item.iter()
        .map(|(name, value)| Ok((name.clone(), attribute_json(value)?)))
        .collect::<anyhow::Result<serde_json::Map<_, _>>>()
        .map(Value::Object)
}

fn attribute_json(value: &AttributeValue) -> anyhow::Result<Value> {
    Ok(match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::M(map) => json!({ "M": attributes_json(map)? }),
        AttributeValue::L(list) => json!({
            "L": list.iter().map(attribute_json).collect::<anyhow::Result<Vec<_>>>()?
        }),
        other => bail!("an events item holds an attribute of an unexpected type: {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_profile_is_read_from_the_manifest() {
        let manifest = "[profile.dev]\ndebug = 1\n\n[profile.release]\n# why\nstrip = \"debuginfo\"\nlto = true\n\n[workspace]\nx = 1\n";
        assert_eq!(
            release_profile(manifest),
            "strip = \"debuginfo\", lto = true"
        );
        assert_eq!(release_profile("[workspace]\n"), "");
    }

    #[test]
    fn stream_records_carry_the_item_in_dynamodb_json() {
        let event = user_registered();
        let record = &stream_event(&event).expect("a stream event")["Records"][0]["dynamodb"];
        assert_eq!(
            record["Keys"]["pk"]["S"],
            format!("User#{}", event.aggregate_id)
        );
        assert_eq!(record["NewImage"]["sk"]["N"], "1");
        assert_eq!(record["NewImage"]["eventType"]["S"], "UserRegistered");
    }
}
