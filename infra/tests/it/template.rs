//! The deployment template: checked in up to date, tied to the resource definitions, least
//! privilege, no secret in it, and clean under `cfn-lint` and `sam validate --lint` (offline).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use infra::resources::{
    QueueDef, DLQ_RETENTION_SECS, DOMAIN_EVENTS_TOPIC, EVENTS_STREAM_MAPPING, PROJECTOR_QUEUES,
};
use infra::template::{
    self, iam_actions, ids, sam_template, FunctionDef, Trigger, FAN_OUT, FAN_OUT_FAILURES_QUEUE,
    FUNCTIONS, QUERY_API, SEARCH_PROJECTOR,
};
use schema::TABLES;
use serde_json::{json, Value};

const REGENERATE: &str = "run `cargo run -p infra --bin gen-template`";

fn resources() -> Value {
    sam_template()["Resources"].clone()
}

fn resource<'a>(resources: &'a Value, id: &str) -> &'a Value {
    let found = &resources[id];
    assert!(found.is_object(), "the template has no resource {id}");
    found
}

fn props<'a>(resources: &'a Value, id: &str) -> &'a Value {
    &resource(resources, id)["Properties"]
}

fn stack_name(name: &str) -> Value {
    json!({ "Fn::Sub": format!("${{AWS::StackName}}-{name}") })
}

fn get_att(id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attribute] })
}

fn function_of_queue(queue: &QueueDef) -> &'static FunctionDef {
    let feeding: Vec<_> = FUNCTIONS
        .iter()
        .filter(|f| matches!(f.trigger, Trigger::Queue(q) if q.name == queue.name))
        .collect();
    assert_eq!(
        feeding.len(),
        1,
        "projector queue {} must feed exactly one function of template::FUNCTIONS",
        queue.name
    );
    feeding[0]
}

// ---------------------------------------------------------------------------------------------
// (a) the checked-in file
// ---------------------------------------------------------------------------------------------

#[test]
fn checked_in_template_is_what_the_definitions_generate() {
    let path = template::template_path();
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {REGENERATE}", path.display()));
    let parsed: Value = serde_json::from_str(&on_disk)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}); {REGENERATE}", path.display()));
    assert!(
        parsed == sam_template(),
        "{} differs from template::sam_template(): {REGENERATE}",
        path.display()
    );
    assert!(
        on_disk == template::render(),
        "{} is not formatted as gen-template writes it: {REGENERATE}",
        path.display()
    );
}

#[test]
fn gen_template_check_accepts_the_checked_in_file() {
    let status = Command::new(env!("CARGO_BIN_EXE_gen-template"))
        .arg("--check")
        .status()
        .expect("run gen-template --check");
    assert!(
        status.success(),
        "gen-template --check failed: {REGENERATE}"
    );
}

// ---------------------------------------------------------------------------------------------
// (b) tied to resources.rs
// ---------------------------------------------------------------------------------------------

#[test]
fn every_table_has_the_defined_keys_indexes_and_stream() {
    let resources = resources();
    for def in TABLES {
        let id = ids::table(def);
        let p = props(&resources, &id);
        assert_eq!(p["TableName"], stack_name(def.name), "{id}");
        assert_eq!(p["BillingMode"], def.billing.as_str(), "{id}");
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{id}");
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true,
            "{id}"
        );
        let keys = |key: &schema::KeySchema| {
            let mut out = vec![json!({ "AttributeName": key.hash.name, "KeyType": "HASH" })];
            if let Some(r) = key.range {
                out.push(json!({ "AttributeName": r.name, "KeyType": "RANGE" }));
            }
            Value::from(out)
        };
        assert_eq!(p["KeySchema"], keys(&def.key), "{id}");
        let attributes: Vec<Value> = def
            .key_attributes()
            .iter()
            .map(|a| json!({ "AttributeName": a.name, "AttributeType": a.ty.as_str() }))
            .collect();
        assert_eq!(p["AttributeDefinitions"], Value::from(attributes), "{id}");
        let gsis = p["GlobalSecondaryIndexes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(gsis.len(), def.gsis.len(), "{id} indexes");
        for (have, want) in gsis.iter().zip(def.gsis) {
            assert_eq!(have["IndexName"], want.name, "{id}");
            assert_eq!(have["KeySchema"], keys(&want.key), "{id} {}", want.name);
            assert_eq!(
                have["Projection"]["ProjectionType"],
                want.projection.as_str(),
                "{id} {}",
                want.name
            );
        }
        match def.stream {
            Some(view) => assert_eq!(
                p["StreamSpecification"]["StreamViewType"],
                view.as_str(),
                "{id}"
            ),
            None => assert!(p["StreamSpecification"].is_null(), "{id} has no stream"),
        }
    }
    assert_eq!(
        props(&resources, "EventsTable")["StreamSpecification"]["StreamViewType"],
        "NEW_IMAGE"
    );
    assert_eq!(
        resource(&resources, "EventsTable")["DeletionPolicy"],
        "Retain"
    );
}

#[test]
fn code_naming_holds_in_aws() {
    // The code names tables `{CONDUIT_TABLE_PREFIX}{name}`.
    let resources = resources();
    for def in FUNCTIONS {
        let env = &props(&resources, &ids::function(def.bin))["Environment"]["Variables"];
        assert_eq!(
            env["CONDUIT_TABLE_PREFIX"],
            json!({ "Fn::Sub": "${AWS::StackName}-" }),
            "{}",
            def.bin
        );
    }
    assert_eq!(
        props(&resources, &ids::topic(&DOMAIN_EVENTS_TOPIC))["TopicName"],
        stack_name(DOMAIN_EVENTS_TOPIC.name)
    );
}

#[test]
fn every_projector_queue_has_its_dlq_subscription_policy_and_mapping() {
    let resources = resources();
    let topic = json!({ "Ref": ids::topic(&DOMAIN_EVENTS_TOPIC) });
    for def in PROJECTOR_QUEUES {
        let queue_id = ids::queue(def);
        let dlq_id = ids::dlq(def);
        let queue = props(&resources, &queue_id);
        assert_eq!(queue["QueueName"], stack_name(def.name));
        assert_eq!(queue["VisibilityTimeout"], def.visibility_timeout_secs);
        assert_eq!(
            queue["RedrivePolicy"],
            json!({ "deadLetterTargetArn": get_att(&dlq_id, "Arn"), "maxReceiveCount": def.max_receive_count })
        );
        let dlq = props(&resources, &dlq_id);
        assert_eq!(dlq["QueueName"], stack_name(&def.dlq_name()));
        assert_eq!(dlq["MessageRetentionPeriod"], def.dlq_retention_secs);
        // A dead letter keeps its first enqueue time: its queue must keep it longer.
        assert!(
            queue["MessageRetentionPeriod"].as_u64() < dlq["MessageRetentionPeriod"].as_u64(),
            "{queue_id} must retain messages for less time than {dlq_id}"
        );

        let subscription = props(&resources, &ids::subscription(def));
        assert_eq!(subscription["TopicArn"], topic);
        assert_eq!(subscription["Protocol"], "sqs");
        assert_eq!(subscription["Endpoint"], get_att(&queue_id, "Arn"));
        let filter: Value =
            serde_json::from_str(&def.filter_policy_json()).expect("filter policy JSON");
        assert_eq!(subscription["FilterPolicy"], filter, "{}", def.name);
        assert_eq!(subscription["FilterPolicyScope"], "MessageAttributes");
        assert_eq!(subscription["RawMessageDelivery"], def.raw_message_delivery);

        let policy = props(&resources, &ids::queue_policy(def));
        assert_eq!(policy["Queues"], json!([{ "Ref": queue_id }]));
        let statements = policy["PolicyDocument"]["Statement"]
            .as_array()
            .expect("statements");
        assert_eq!(statements.len(), 1);
        let s = &statements[0];
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(s["Principal"], json!({ "Service": "sns.amazonaws.com" }));
        assert_eq!(s["Action"], "sqs:SendMessage");
        assert_eq!(s["Resource"], get_att(&queue_id, "Arn"));
        assert_eq!(s["Condition"]["ArnEquals"]["aws:SourceArn"], topic);

        let function = function_of_queue(def);
        let events = &props(&resources, &ids::function(function.bin))["Events"];
        let sqs: Vec<&Value> = events
            .as_object()
            .expect("events")
            .values()
            .filter(|e| e["Type"] == "SQS")
            .collect();
        assert_eq!(sqs.len(), 1, "{} has one queue mapping", function.bin);
        let mapping = &sqs[0]["Properties"];
        assert_eq!(mapping["Queue"], get_att(&queue_id, "Arn"));
        assert_eq!(mapping["BatchSize"], def.batch_size);
        assert_eq!(
            mapping["FunctionResponseTypes"] == json!(["ReportBatchItemFailures"]),
            def.report_batch_item_failures
        );
    }
}

#[test]
fn queue_visibility_timeout_is_at_least_six_times_the_function_timeout() {
    let resources = resources();
    for def in PROJECTOR_QUEUES {
        let function = function_of_queue(def);
        let timeout = props(&resources, &ids::function(function.bin))["Timeout"]
            .as_u64()
            .expect("Timeout");
        let visibility = props(&resources, &ids::queue(def))["VisibilityTimeout"]
            .as_u64()
            .expect("VisibilityTimeout");
        assert!(
            visibility >= 6 * timeout,
            "{}: visibility timeout {visibility} s < 6 x the function timeout {timeout} s",
            def.name
        );
        assert_eq!(
            timeout,
            u64::from(def.function_timeout_secs),
            "{}",
            def.name
        );
    }
}

#[test]
fn the_events_stream_feeds_the_fan_out_as_defined() {
    let resources = resources();
    let events = &props(&resources, &ids::function(FAN_OUT.bin))["Events"];
    let streams: Vec<&Value> = events
        .as_object()
        .expect("events")
        .values()
        .filter(|e| e["Type"] == "DynamoDB")
        .collect();
    assert_eq!(streams.len(), 1);
    let m = &streams[0]["Properties"];
    let def = EVENTS_STREAM_MAPPING;
    let table = TABLES.iter().find(|t| t.name == def.table).expect("table");
    assert_eq!(m["Stream"], get_att(&ids::table(table), "StreamArn"));
    assert_eq!(m["BatchSize"], def.batch_size);
    assert_eq!(
        m["BisectBatchOnFunctionError"],
        def.bisect_batch_on_function_error
    );
    assert_eq!(m["MaximumRetryAttempts"], def.maximum_retry_attempts);
    assert_eq!(m["StartingPosition"], def.starting_position.as_str());
    assert_eq!(m["StartingPosition"], "TRIM_HORIZON");
    assert_eq!(
        m["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let failures = ids::queue_named(FAN_OUT_FAILURES_QUEUE);
    assert_eq!(
        m["DestinationConfig"]["OnFailure"]["Destination"],
        get_att(&failures, "Arn")
    );
    assert_eq!(
        props(&resources, &failures)["QueueName"],
        stack_name(FAN_OUT_FAILURES_QUEUE)
    );
    assert_eq!(
        props(&resources, &failures)["MessageRetentionPeriod"],
        DLQ_RETENTION_SECS
    );
}

#[test]
fn functions_are_built_by_cargo_lambda_for_al2023() {
    let resources = resources();
    for def in FUNCTIONS {
        let id = ids::function(def.bin);
        let r = resource(&resources, &id);
        assert_eq!(r["Type"], "AWS::Serverless::Function");
        let p = &r["Properties"];
        assert_eq!(p["Runtime"], "provided.al2023", "{id}");
        assert_eq!(p["Architectures"], json!(["x86_64"]), "{id}");
        assert_eq!(p["Handler"], "bootstrap", "{id}");
        assert_eq!(
            p["CodeUri"],
            format!("../target/lambda/{}/bootstrap.zip", def.bin),
            "{id}"
        );
        assert_eq!(p["FunctionName"], stack_name(def.bin), "{id}");
        assert_eq!(p["Role"], get_att(&ids::role(def.bin), "Arn"), "{id}");
        let timeout = p["Timeout"].as_u64().expect("Timeout");
        // Lambda's range; the feed projector's fan-outs take the longest (60 s).
        assert!((1..=900).contains(&timeout), "{id}: timeout {timeout}");
        let memory = p["MemorySize"].as_u64().expect("MemorySize");
        assert!((128..=10240).contains(&memory), "{id}: memory {memory}");
        // Its log group is the one Lambda writes to: /aws/lambda/<function name>.
        let log_group = props(&resources, &ids::log_group(def.bin));
        assert_eq!(
            log_group["LogGroupName"],
            json!({ "Fn::Sub": format!("/aws/lambda/${{AWS::StackName}}-{}", def.bin) })
        );
        assert_eq!(log_group["RetentionInDays"], 14);
        assert_eq!(
            p["LoggingConfig"]["LogGroup"],
            json!({ "Ref": ids::log_group(def.bin) })
        );
    }
    // The stream and API functions read the variables their code requires.
    let env =
        |bin: &str| props(&resources, &ids::function(bin))["Environment"]["Variables"].clone();
    assert_eq!(
        env(FAN_OUT.bin)["CONDUIT_TOPIC_ARN"],
        json!({ "Ref": ids::topic(&DOMAIN_EVENTS_TOPIC) })
    );
    for bin in ["command-api", "query-api"] {
        assert!(env(bin)["JWT_SECRET"].is_object(), "{bin} JWT_SECRET");
        assert_eq!(
            env(bin)["JWT_TTL_SECONDS"],
            json!({ "Ref": "JwtTtlSeconds" })
        );
    }
    for bin in [QUERY_API.bin, SEARCH_PROJECTOR.bin] {
        assert_eq!(env(bin)["CONDUIT_SEARCH"], "opensearch", "{bin}");
        assert_eq!(
            env(bin)["OPENSEARCH_URL"],
            json!({ "Fn::Sub": "https://${SearchDomain.DomainEndpoint}" }),
            "{bin}"
        );
    }
}

#[test]
fn http_api_routes_reads_to_query_api_and_writes_to_command_api() {
    let resources = resources();
    let mut routes = BTreeMap::new();
    for def in FUNCTIONS {
        let events = &props(&resources, &ids::function(def.bin))["Events"];
        for event in events.as_object().expect("events").values() {
            if event["Type"] == "HttpApi" {
                let p = &event["Properties"];
                assert_eq!(p["ApiId"], json!({ "Ref": ids::HTTP_API }));
                assert_eq!(p["PayloadFormatVersion"], "2.0");
                let route = format!(
                    "{} {}",
                    p["Method"].as_str().expect("method"),
                    p["Path"].as_str().expect("path")
                );
                assert!(
                    routes.insert(route.clone(), def.bin).is_none(),
                    "two functions serve {route}"
                );
            }
        }
    }
    let want: BTreeMap<String, &str> = [
        ("GET /api/{proxy+}", "query-api"),
        ("HEAD /api/{proxy+}", "query-api"),
        // Every other method, as the local gateway does: the writes, and 405 for the rest.
        ("ANY /api/{proxy+}", "command-api"),
    ]
    .into_iter()
    .map(|(r, f)| (r.to_owned(), f))
    .collect();
    assert_eq!(routes, want);

    let api = resource(&resources, ids::HTTP_API);
    assert_eq!(api["Type"], "AWS::Serverless::HttpApi");
    let cors = &api["Properties"]["CorsConfiguration"];
    assert_eq!(cors["AllowOrigins"], json!(["*"]));
    let methods: BTreeSet<&str> = cors["AllowMethods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        methods,
        BTreeSet::from(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
    );
    let headers: BTreeSet<String> = cors["AllowHeaders"]
        .as_array()
        .expect("headers")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_ascii_lowercase)
        .collect();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
    // Read-your-writes: browsers may read the position a write answers with.
    assert!(
        cors["ExposeHeaders"]
            .as_array()
            .expect("exposed headers")
            .contains(&json!(schema::headers::POSITION_HEADER)),
        "{cors}"
    );
}

// ---------------------------------------------------------------------------------------------
// (b) least privilege
// ---------------------------------------------------------------------------------------------

const WRITE_WORDS: &[&str] = &[
    "Put",
    "Update",
    "Delete",
    "TransactWrite",
    "BatchWrite",
    "Publish",
    "SendMessage",
    "Create",
    "Patch",
];

fn writes(action: &str) -> bool {
    let name = action.split(':').nth(1).unwrap_or(action);
    WRITE_WORDS.iter().any(|w| name.contains(w)) && !action.starts_with("logs:")
}

#[test]
fn query_api_gets_no_write_action() {
    let actions = iam_actions();
    let query = &actions[QUERY_API.bin];
    let bad: Vec<&String> = query.iter().filter(|a| writes(a)).collect();
    assert!(bad.is_empty(), "query-api may write: {bad:?}");
    assert!(query.contains(&"dynamodb:GetItem".to_owned()));
}

#[test]
fn query_api_reads_the_event_log_by_query_only() {
    // `GET /api/events/{type}/{id}` reads one aggregate's stream; nothing else of the log.
    let resources = resources();
    let role = props(&resources, &ids::role(QUERY_API.bin));
    let statements: Vec<&Value> = role["Policies"]
        .as_array()
        .expect("policies")
        .iter()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array()
                .expect("statements")
        })
        .filter(|s| s["Sid"] == "EventsTable")
        .collect();
    assert_eq!(statements.len(), 1, "{role}");
    assert_eq!(statements[0]["Action"], json!(["dynamodb:Query"]));
    assert_eq!(
        statements[0]["Resource"],
        json!([get_att("EventsTable", "Arn")])
    );
}

#[test]
fn fan_out_gets_no_dynamodb_write() {
    let actions = iam_actions();
    let stream_reads = [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ];
    for action in &actions[FAN_OUT.bin] {
        if action.starts_with("dynamodb:") {
            assert!(
                stream_reads.contains(&action.as_str()),
                "fan-out gets {action}"
            );
        }
    }
}

#[test]
fn every_statement_is_scoped_to_named_resources() {
    fn check(document: &Value, owner: &str) {
        for s in document["Statement"].as_array().expect("statements") {
            let actions = match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(list) => list
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
                other => panic!("{owner}: action {other}"),
            };
            for a in &actions {
                assert!(!a.contains('*'), "{owner}: wildcard action {a}");
            }
            let resources = match &s["Resource"] {
                Value::Array(list) => list.clone(),
                one => vec![one.clone()],
            };
            for r in resources {
                assert!(
                    r != "*" && !r.is_null(),
                    "{owner}: unscoped resource in {s}"
                );
            }
            assert_ne!(s["Principal"], "*", "{owner}: anyone is allowed");
            assert_ne!(s["Principal"]["AWS"], "*", "{owner}: anyone is allowed");
        }
    }
    let resources = resources();
    for (id, r) in resources.as_object().expect("resources") {
        match r["Type"].as_str() {
            Some("AWS::IAM::Role") => {
                for p in r["Properties"]["Policies"].as_array().expect("policies") {
                    check(&p["PolicyDocument"], id);
                }
                assert!(r["Properties"]["ManagedPolicyArns"].is_null(), "{id}");
            }
            Some("AWS::SQS::QueuePolicy") => check(&r["Properties"]["PolicyDocument"], id),
            Some("AWS::OpenSearchService::Domain") => check(&r["Properties"]["AccessPolicies"], id),
            Some("AWS::Serverless::Function") => assert!(
                r["Properties"]["Policies"].is_null(),
                "{id}: permissions belong in its explicit role"
            ),
            _ => {}
        }
    }
}

#[test]
fn iam_actions_are_exactly_what_the_code_calls() {
    let actions = iam_actions();
    for (function, list) in &actions {
        eprintln!("{function}: {}", list.join(", "));
    }
    let want = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let logs = ["logs:CreateLogStream", "logs:PutLogEvents"];
    let mut expected = BTreeMap::new();
    expected.insert(
        "command-api",
        want(&[
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            logs[0],
            logs[1],
        ]),
    );
    expected.insert(
        "query-api",
        want(&[
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:Scan",
            "es:ESHttpGet",
            "es:ESHttpPost",
            logs[0],
            logs[1],
        ]),
    );
    expected.insert(
        "fan-out",
        want(&[
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
            logs[0],
            logs[1],
            "sns:Publish",
            "sqs:SendMessage",
        ]),
    );
    expected.insert(
        "users-projector",
        want(&[
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            logs[0],
            logs[1],
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ]),
    );
    expected.insert(
        "articles-projector",
        want(&[
            "dynamodb:BatchWriteItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            logs[0],
            logs[1],
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ]),
    );
    expected.insert(
        "feed-projector",
        want(&[
            "dynamodb:BatchWriteItem",
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            logs[0],
            logs[1],
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ]),
    );
    expected.insert(
        "search-projector",
        want(&[
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "es:ESHttpDelete",
            "es:ESHttpGet",
            "es:ESHttpHead",
            "es:ESHttpPost",
            "es:ESHttpPut",
            logs[0],
            logs[1],
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ]),
    );
    assert_eq!(actions, expected);
}

#[test]
fn only_the_query_role_reads_and_only_the_search_projector_writes_the_search_domain() {
    let resources = resources();
    let domain = props(&resources, ids::SEARCH_DOMAIN);
    assert_eq!(domain["EncryptionAtRestOptions"]["Enabled"], true);
    assert_eq!(domain["NodeToNodeEncryptionOptions"]["Enabled"], true);
    assert_eq!(domain["DomainEndpointOptions"]["EnforceHTTPS"], true);
    let statements = domain["AccessPolicies"]["Statement"]
        .as_array()
        .expect("statements");
    assert_eq!(statements.len(), 2);
    let of = |bin: &str| {
        statements
            .iter()
            .find(|s| s["Principal"]["AWS"] == get_att(&ids::role(bin), "Arn"))
            .unwrap_or_else(|| panic!("no statement for {bin}"))
    };
    assert_eq!(
        of(QUERY_API.bin)["Action"],
        json!(["es:ESHttpGet", "es:ESHttpPost"])
    );
    assert_eq!(
        of(SEARCH_PROJECTOR.bin)["Action"],
        json!([
            "es:ESHttpDelete",
            "es:ESHttpGet",
            "es:ESHttpHead",
            "es:ESHttpPost",
            "es:ESHttpPut"
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// (b) no secret in the template
// ---------------------------------------------------------------------------------------------

fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(list) => list.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out);
        }),
        _ => {}
    }
}

#[test]
fn no_literal_secret_is_in_the_template() {
    let template = sam_template();
    let resources = &template["Resources"];
    let dynamic = json!({ "Fn::Sub": "{{resolve:secretsmanager:${JwtSecretArn}:SecretString}}" });
    for def in FUNCTIONS {
        let env = &props(resources, &ids::function(def.bin))["Environment"]["Variables"];
        for (name, value) in env.as_object().expect("variables") {
            let upper = name.to_ascii_uppercase();
            if ["SECRET", "PASSWORD", "TOKEN", "KEY"]
                .iter()
                .any(|w| upper.contains(w))
            {
                assert_eq!(
                    value, &dynamic,
                    "{}: {name} must be a Secrets Manager dynamic reference",
                    def.bin
                );
            }
        }
    }
    let parameter = &template["Parameters"]["JwtSecretArn"];
    assert!(
        parameter["Default"].is_null(),
        "JwtSecretArn has no default"
    );
    let mut all = Vec::new();
    strings(&template, &mut all);
    for s in &all {
        if s.contains("{{resolve:") {
            assert_eq!(s, "{{resolve:secretsmanager:${JwtSecretArn}:SecretString}}");
        }
    }
    // The local stack's generated secret, if there is one, is not in the file either.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    if let Ok(local) = std::fs::read_to_string(workspace.join(".local/jwt-secret")) {
        let local = local.trim();
        if !local.is_empty() {
            let text = template::render();
            assert!(
                !text.contains(local),
                "the local JWT secret is in the template"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Alarms and limits
// ---------------------------------------------------------------------------------------------

#[test]
fn alarms_watch_every_dead_letter_queue_and_the_iterator_age() {
    let resources = resources();
    let alarms: Vec<&Value> = resources
        .as_object()
        .expect("resources")
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|r| &r["Properties"])
        .collect();
    let mut dead_letter_queues: Vec<String> = PROJECTOR_QUEUES.iter().map(ids::dlq).collect();
    dead_letter_queues.push(ids::queue_named(FAN_OUT_FAILURES_QUEUE));
    for queue in &dead_letter_queues {
        let watching: Vec<_> = alarms
            .iter()
            .filter(|a| {
                a["MetricName"] == "ApproximateNumberOfMessagesVisible"
                    && a["Dimensions"][0]["Value"] == get_att(queue, "QueueName")
            })
            .collect();
        assert_eq!(watching.len(), 1, "one alarm on {queue}");
        let a = watching[0];
        assert_eq!(a["Namespace"], "AWS/SQS");
        assert_eq!(a["Threshold"], 1);
        assert_eq!(a["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
    }
    let age: Vec<_> = alarms
        .iter()
        .filter(|a| a["MetricName"] == "IteratorAge")
        .collect();
    assert_eq!(age.len(), 1);
    assert_eq!(age[0]["Namespace"], "AWS/Lambda");
    assert_eq!(
        age[0]["Dimensions"][0]["Value"],
        json!({ "Ref": ids::function(FAN_OUT.bin) })
    );
    assert_eq!(age[0]["Statistic"], "Maximum");
    assert_eq!(age[0]["Threshold"], 60_000);
    assert_eq!(age[0]["ComparisonOperator"], "GreaterThanThreshold");

    // Every projection's lag, on the metric its projector emits, over the parameter.
    for def in PROJECTOR_QUEUES {
        let projection = infra::template::projection_of(def);
        let lag: Vec<_> = alarms
            .iter()
            .filter(|a| {
                a["MetricName"] == schema::metrics::LAG_SECONDS
                    && a["Dimensions"][0]["Value"] == projection
            })
            .collect();
        assert_eq!(lag.len(), 1, "one lag alarm on {projection}");
        assert_eq!(lag[0]["Namespace"], schema::metrics::NAMESPACE);
        assert_eq!(lag[0]["Dimensions"][0]["Name"], schema::metrics::PROJECTION);
        assert_eq!(
            lag[0]["Threshold"],
            json!({ "Ref": infra::template::LAG_ALARM_PARAMETER })
        );
    }
    let template = sam_template();
    let parameter = &template["Parameters"][infra::template::LAG_ALARM_PARAMETER];
    assert_eq!(parameter["Type"], "Number");
    assert_eq!(
        parameter["Default"],
        infra::template::DEFAULT_LAG_ALARM_SECONDS
    );
}

/// The longest stack name whose derived names fit AWS's limits (Lambda function names 64
/// characters, SQS queue names 80); the README's deploy section states it.
#[test]
fn the_documented_stack_name_limit_is_right() {
    let function = FUNCTIONS
        .iter()
        .map(|f| 64 - (f.bin.len() + 1))
        .min()
        .expect("functions");
    let queue = PROJECTOR_QUEUES
        .iter()
        .flat_map(|q| [q.name.to_owned(), q.dlq_name()])
        .chain([FAN_OUT_FAILURES_QUEUE.to_owned()])
        .map(|name| 80 - (name.len() + 1))
        .min()
        .expect("queues");
    let limit = function.min(queue);
    let deploy =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let sentence = format!("at most {limit} characters");
    assert!(
        deploy.contains(&sentence),
        "README.md must say the stack name is {sentence:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// (c) cfn-lint and sam validate --lint, offline
// ---------------------------------------------------------------------------------------------

fn tool(var: &str) -> String {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => path,
        _ => panic!(
            "{var} is not set: it names the program that lints the template; \
             run through ./dev test, which installs them (into .local/tools) and sets it"
        ),
    }
}

/// Runs a linter offline: a region, no telemetry, static credentials, no instance metadata,
/// and every HTTP(S) request sent to a closed loopback port (SAM CLI's version check, or any
/// other request, fails at once instead of leaving the machine).
fn run_offline(program: &str, args: &[&str]) -> (bool, String) {
    let infra_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(program)
        .args(args)
        .current_dir(&infra_dir)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "conduitlocal")
        .env("AWS_SECRET_ACCESS_KEY", "conduitlocal")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn cfn_lint_passes() {
    let cfn_lint = tool("CFN_LINT");
    // Informational checks too (explicit deletion policies, retention periods).
    let (ok, out) = run_offline(
        &cfn_lint,
        &[
            "--regions",
            "us-east-1",
            "--include-checks",
            "I",
            "--",
            "template.json",
        ],
    );
    assert!(ok, "cfn-lint found problems in infra/template.json:\n{out}");
}

#[test]
fn sam_validate_lint_passes() {
    let sam = tool("SAM_CLI");
    let (ok, out) = run_offline(
        &sam,
        &[
            "validate",
            "--lint",
            "--template-file",
            "template.json",
            "--region",
            "us-east-1",
        ],
    );
    assert!(ok, "sam validate --lint failed:\n{out}");
    assert!(out.contains("is a valid SAM Template"), "{out}");
}
