//! The `fan-out` and projector Lambda binaries, their real `main`s, behind a local
//! Lambda Runtime API: a DynamoDB stream event and an SQS event (SNS envelopes) in, partial
//! batch responses out, effects checked on moto and DynamoDB Local.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use events::views::articles::ArticleView;
use events::views::checkpoints;
use events::views::feed_articles::FeedArticle;
use events::views::users::{UserView, USER_ID};
use events::StoredEvent;
use infra::resources::USERS_PROJECTOR_QUEUE;
use local_aws::runtime_api::{event_from_file, FunctionProcess, InvocationError, RuntimeApi};
use serde_json::{json, Value};
use uuid::Uuid;

/// Bound on the cold start and on each invocation.
const TIMEOUT: Duration = Duration::from_secs(60);

fn fixture(name: &str, substitutions: &[(&str, &str)]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    event_from_file(&path, substitutions).expect("event fixture")
}

/// Spawns the function binary `exe` with `env` behind `api` and waits until it asks for its
/// first event.
async fn start(api: &RuntimeApi, exe: &str, env: &[(&str, &str)]) -> FunctionProcess {
    let exe = Path::new(exe);
    let name = exe.file_stem().unwrap_or_default().to_string_lossy();
    let function = api
        .spawn_function(exe, local_aws::testkit::emulators(), env)
        .unwrap_or_else(|e| panic!("spawn {name}: {e:?}"));
    let ready = function
        .ready(TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{name} ready: {e:?}"));
    eprintln!("{name}: spawn -> ready for its first event: {ready:?}");
    function
}

async fn invoke(api: &RuntimeApi, function: &FunctionProcess, event: Value) -> Value {
    api.invoke_answered(function, event, TIMEOUT).await
}

/// Placeholders of the fixtures, for a fresh user.
struct NewUser {
    user_id: String,
    event_id: String,
    email: String,
    username: String,
}

impl NewUser {
    fn new(prefix: &str) -> Self {
        let username = prefix.trim_end_matches('-').to_owned();
        Self {
            user_id: Uuid::new_v4().to_string(),
            event_id: Uuid::new_v4().to_string(),
            email: format!("{username}@example.com"),
            username,
        }
    }

    fn substitutions(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("__USER_ID__", &self.user_id),
            ("__EVENT_ID__", &self.event_id),
            ("__EMAIL__", &self.email),
            ("__USERNAME__", &self.username),
        ]
    }
}

#[tokio::test]
async fn the_fan_out_binary_publishes_stream_records_and_reports_the_corrupt_one() {
    let prefix = local_aws::testkit::unique_prefix("fanoutlambda");
    let (clients, provisioned) = local_aws::testkit::provisioned(&prefix).await;
    let queue = provisioned
        .queue(USERS_PROJECTOR_QUEUE.name)
        .expect("users projector queue")
        .clone();
    let api = RuntimeApi::start().await;
    let function = start(
        &api,
        env!("CARGO_BIN_EXE_fan-out"),
        &[
            ("CONDUIT_TABLE_PREFIX", prefix.as_str()),
            ("CONDUIT_TOPIC_ARN", provisioned.topic_arn.as_str()),
        ],
    )
    .await;

    let user = NewUser::new(&prefix);
    let corrupt_user_id = Uuid::new_v4().to_string();
    let mut substitutions = user.substitutions();
    substitutions.push(("__CORRUPT_USER_ID__", &corrupt_user_id));
    let event = fixture(
        "dynamodb-stream-user-registered-and-corrupt.json",
        &substitutions,
    );
    let corrupt_sequence = event["Records"][1]["dynamodb"]["SequenceNumber"].clone();
    assert!(corrupt_sequence.is_string(), "{event}");

    let response = invoke(&api, &function, event).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": corrupt_sequence}]}),
        "only the corrupt record is reported"
    );

    // The User event reaches the users projector's queue, without its password hash.
    let bodies =
        crate::support::receive_bodies(&clients.sqs, &queue.url, Duration::from_secs(20)).await;
    assert_eq!(
        bodies.len(),
        1,
        "one message for one User event: {bodies:?}"
    );
    let body = &bodies[0];
    assert!(!body.contains("passwordHash"), "{body}");
    assert!(!body.contains("argon2"), "{body}");
    let envelope: Value = serde_json::from_str(body).expect("an SNS envelope");
    assert_eq!(envelope["Type"], "Notification", "{body}");
    assert_eq!(
        envelope["TopicArn"],
        provisioned.topic_arn.as_str(),
        "{body}"
    );
    assert_eq!(
        envelope["MessageAttributes"]["eventType"]["Value"],
        "UserRegistered"
    );
    let published: StoredEvent =
        serde_json::from_str(envelope["Message"].as_str().expect("Message")).expect("an event");
    assert_eq!(published.aggregate_type, "User");
    assert_eq!(published.aggregate_id, user.user_id);
    assert_eq!(published.event_id.to_string(), user.event_id);
    assert_eq!(published.sequence, 1);
    assert_eq!(published.event_type, "UserRegistered");
    assert_eq!(published.payload["email"], user.email.as_str());
    assert_eq!(published.payload["username"], user.username.as_str());
    assert_eq!(function.exit_status(), None, "still running");
}

#[tokio::test]
async fn the_fan_out_binary_reports_an_event_of_the_wrong_source_as_an_error_and_keeps_serving() {
    // Nothing is published here, so no topic needs to exist.
    let prefix = local_aws::testkit::unique_prefix("fanoutwrong");
    let topic_arn = format!("arn:aws:sns:us-east-1:123456789012:{prefix}domain-events");
    let api = RuntimeApi::start().await;
    let function = start(
        &api,
        env!("CARGO_BIN_EXE_fan-out"),
        &[("CONDUIT_TOPIC_ARN", topic_arn.as_str())],
    )
    .await;

    // An SQS batch is no DynamoDB stream event: the runtime posts it to `/error`.
    let user = NewUser::new(&prefix);
    let sqs_event = fixture(
        "sqs-users-projector-registered-and-garbage.json",
        &user.substitutions(),
    );
    match api.invoke(sqs_event, TIMEOUT).await {
        Err(InvocationError::Function(error)) => {
            assert!(error.error_message.contains("deserialize"), "{error:?}");
        }
        other => panic!(
            "expected a function error, got {other:?}; log:\n{}",
            function.log_tail(40)
        ),
    }
    let response = invoke(&api, &function, json!({"Records": []})).await;
    assert_eq!(response, json!({"batchItemFailures": []}));
}

#[tokio::test]
async fn the_users_projector_binary_applies_the_event_and_reports_the_garbage_message() {
    let prefix = local_aws::testkit::unique_prefix("usersprojlambda");
    let (clients, provisioned) = local_aws::testkit::provisioned(&prefix).await;
    let api = RuntimeApi::start().await;
    let function = start(
        &api,
        env!("CARGO_BIN_EXE_users-projector"),
        &[
            ("CONDUIT_TABLE_PREFIX", prefix.as_str()),
            ("CONDUIT_TOPIC_ARN", provisioned.topic_arn.as_str()),
        ],
    )
    .await;

    let user = NewUser::new(&prefix);
    let event = fixture(
        "sqs-users-projector-registered-and-garbage.json",
        &user.substitutions(),
    );
    let garbage_id = event["Records"][1]["messageId"].clone();
    assert!(garbage_id.is_string(), "{event}");

    let response = invoke(&api, &function, event).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": garbage_id}]}),
        "only the garbage message is reported"
    );

    let item = crate::support::get_item(
        &clients.dynamodb,
        &format!("{prefix}users"),
        USER_ID,
        &user.user_id,
    )
    .await
    .unwrap_or_else(|| panic!("no users item for {}", user.user_id));
    let view = UserView::from_item(&item).expect("a user view");
    assert_eq!(
        view,
        UserView {
            user_id: user.user_id.clone(),
            email: user.email.clone(),
            username: user.username.clone(),
            bio: String::new(),
            image: String::new(),
            last_seq: 1,
        }
    );
    assert_eq!(function.exit_status(), None, "still running");
}

/// An SQS batch of the given events in SNS envelopes, then one garbage message; returns the
/// batch and the garbage message's id.
fn sqs_batch_with_garbage(events: &[Value]) -> (Value, String) {
    let mut records: Vec<Value> = events
        .iter()
        .map(|event| {
            let envelope = json!({
                "Type": "Notification", "MessageId": Uuid::new_v4().to_string(),
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:conduit-domain-events",
                "Message": event.to_string(),
            });
            json!({"messageId": Uuid::new_v4().to_string(), "body": envelope.to_string()})
        })
        .collect();
    let garbage_id = Uuid::new_v4().to_string();
    records.push(json!({"messageId": garbage_id, "body": "not an event"}));
    for record in &mut records {
        record["receiptHandle"] = json!("rh");
        record["attributes"] = json!({"ApproximateReceiveCount": "1"});
        record["messageAttributes"] = json!({});
        record["eventSource"] = json!("aws:sqs");
        record["eventSourceARN"] = json!("arn:aws:sqs:us-east-1:123456789012:q");
        record["awsRegion"] = json!("us-east-1");
    }
    (json!({ "Records": records }), garbage_id)
}

fn article_published(article_id: &str) -> Value {
    json!({
        "aggregateType": "Article", "aggregateId": article_id, "sequence": 1,
        "eventId": Uuid::new_v4().to_string(), "eventType": "ArticlePublished", "eventVersion": 1,
        "payload": {
            "articleId": article_id, "authorId": "author", "slug": format!("s-{article_id}"),
            "title": "T", "description": "D", "body": "B", "tagList": ["x"],
            "createdAt": "2024-01-01T00:00:00.000Z"
        },
        "recordedAt": "2024-01-01T00:00:00.000Z"
    })
}

#[tokio::test]
async fn the_articles_projector_binary_applies_the_events_and_reports_the_garbage_message() {
    let prefix = local_aws::testkit::unique_prefix("articlesprojlambda");
    let (clients, _) = local_aws::testkit::provisioned(&prefix).await;
    let api = RuntimeApi::start().await;
    let function = start(
        &api,
        env!("CARGO_BIN_EXE_articles-projector"),
        &[("CONDUIT_TABLE_PREFIX", prefix.as_str())],
    )
    .await;

    let article_id = Uuid::new_v4().to_string();
    let favorite = json!({
        "aggregateType": "Favorite", "aggregateId": format!("{article_id}:fan"), "sequence": 1,
        "eventId": Uuid::new_v4().to_string(), "eventType": "ArticleFavorited", "eventVersion": 1,
        "payload": {"articleId": article_id, "userId": "fan", "favoritedAt": "2024-01-02T00:00:00.000Z"},
        "recordedAt": "2024-01-02T00:00:00.000Z"
    });
    let (event, garbage_id) = sqs_batch_with_garbage(&[article_published(&article_id), favorite]);
    let response = invoke(&api, &function, event).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": garbage_id}]}),
        "only the garbage message is reported"
    );

    let item = crate::support::get_item(
        &clients.dynamodb,
        &format!("{prefix}articles"),
        "articleId",
        &article_id,
    )
    .await
    .unwrap_or_else(|| panic!("no articles item for {article_id}"));
    let view = ArticleView::from_item(&item).expect("an article view");
    assert_eq!(view.slug, format!("s-{article_id}"));
    assert_eq!(view.favorites_count, 1);
    let body = crate::support::get_item(
        &clients.dynamodb,
        &format!("{prefix}article-bodies"),
        "articleId",
        &article_id,
    )
    .await
    .expect("the body item");
    assert_eq!(events::views::text(&body, "body").as_deref(), Some("B"));
    assert_eq!(function.exit_status(), None, "still running");
}

#[test]
fn a_feed_lease_outlives_the_function_and_its_fan_out_budget_fits_in_it() {
    use infra::resources::{FEED_FANOUT_BUDGET_SECS, FEED_PROJECTOR_FUNCTION_TIMEOUT_SECS};
    let limits = projectors::feed::FeedLimits::default();
    let timeout = Duration::from_secs(FEED_PROJECTOR_FUNCTION_TIMEOUT_SECS.into());
    assert!(
        limits.lease > timeout,
        "an expired lease's holder must be stopped"
    );
    assert_eq!(
        limits.fanout_budget,
        Duration::from_secs(FEED_FANOUT_BUDGET_SECS.into())
    );
    assert!(limits.fanout_budget + limits.lease_wait < timeout);
    assert!(
        limits.lease_wait > limits.fanout_budget,
        "an event outwaits one slice of another's fan-out"
    );
}

#[tokio::test]
async fn the_feed_projector_binary_copies_the_article_and_reports_the_garbage_message() {
    let prefix = local_aws::testkit::unique_prefix("feedprojlambda");
    let (clients, _) = local_aws::testkit::provisioned(&prefix).await;
    let api = RuntimeApi::start().await;
    let function = start(
        &api,
        env!("CARGO_BIN_EXE_feed-projector"),
        &[("CONDUIT_TABLE_PREFIX", prefix.as_str())],
    )
    .await;

    let article_id = Uuid::new_v4().to_string();
    let (event, garbage_id) = sqs_batch_with_garbage(&[article_published(&article_id)]);
    let response = invoke(&api, &function, event).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": garbage_id}]}),
        "only the garbage message is reported"
    );
    let copy = clients
        .dynamodb
        .get_item()
        .table_name(format!("{prefix}feed-articles"))
        .key("authorId", AttributeValue::S("author".into()))
        .key("articleId", AttributeValue::S(article_id.clone()))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .unwrap_or_else(|| panic!("no feed-articles item for {article_id}"));
    let article = FeedArticle::from_item(&copy).expect("a live article");
    assert_eq!(article.slug, format!("s-{article_id}"));
    assert_eq!(function.exit_status(), None, "still running");
}

#[tokio::test]
async fn the_search_projector_binary_opens_its_index_and_moves_the_checkpoint() {
    let prefix = local_aws::testkit::unique_prefix("searchprojlambda");
    let (clients, _) = local_aws::testkit::provisioned(&prefix).await;
    let api = RuntimeApi::start().await;
    // No CONDUIT_SEARCH: the embedded index, in RAM.
    let function = start(
        &api,
        env!("CARGO_BIN_EXE_search-projector"),
        &[("CONDUIT_TABLE_PREFIX", prefix.as_str())],
    )
    .await;

    let article_id = Uuid::new_v4().to_string();
    let (event, garbage_id) = sqs_batch_with_garbage(&[article_published(&article_id)]);
    let response = invoke(&api, &function, event).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": garbage_id}]}),
        "only the garbage message is reported"
    );
    let checkpoint = crate::support::get_item(
        &clients.dynamodb,
        &format!("{prefix}checkpoints"),
        checkpoints::PK,
        &checkpoints::key("search", &format!("Article#{article_id}")),
    )
    .await
    .expect("a checkpoint");
    assert_eq!(
        events::views::number(&checkpoint, checkpoints::LAST_SEQ),
        Some(1)
    );
    assert_eq!(function.exit_status(), None, "still running");
}
