//! Provisioning against the emulators: everything is created, twice changes nothing, the
//! filter policy routes by aggregate type, and poison messages end up in the DLQ.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{KeyType, ProjectionType, StreamViewType, TableStatus};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use infra::resources::{self, DLQ_RETENTION_SECS, DOMAIN_EVENTS_TOPIC, USERS_PROJECTOR_QUEUE};
use local_aws::provision::{provision, Provisioned};
use local_aws::{testkit, Clients};
use schema::TABLES;

const DEADLINE: Duration = Duration::from_secs(20);

async fn queue_attrs(clients: &Clients, url: &str) -> HashMap<QueueAttributeName, String> {
    clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default()
}

async fn subscriptions(
    clients: &Clients,
    topic_arn: &str,
) -> Vec<aws_sdk_sns::types::Subscription> {
    clients
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .expect("ListSubscriptionsByTopic")
        .subscriptions
        .unwrap_or_default()
}

/// Everything observable about the provisioned resources that must not change on a re-run.
async fn snapshot(clients: &Clients, p: &Provisioned) -> String {
    let names = p.names();
    let mut out = Vec::new();
    for def in TABLES {
        let t = clients
            .dynamodb
            .describe_table()
            .table_name(names.table(def))
            .send()
            .await
            .expect("DescribeTable")
            .table
            .expect("table");
        out.push(format!(
            "{:?} {:?} {:?} {:?} {:?}",
            t.table_name,
            t.creation_date_time,
            t.key_schema,
            t.latest_stream_arn,
            t.global_secondary_indexes
        ));
    }
    for q in &p.queues {
        for url in [&q.url, &q.dlq_url] {
            let mut attrs: Vec<_> = queue_attrs(clients, url)
                .await
                .into_iter()
                .filter(|(k, _)| {
                    !matches!(
                        k,
                        QueueAttributeName::ApproximateNumberOfMessages
                            | QueueAttributeName::ApproximateNumberOfMessagesNotVisible
                            | QueueAttributeName::ApproximateNumberOfMessagesDelayed
                    )
                })
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            attrs.sort();
            out.push(format!("{url}: {attrs:?}"));
        }
    }
    for s in subscriptions(clients, &p.topic_arn).await {
        let arn = s.subscription_arn().expect("subscription arn");
        let mut attrs: Vec<_> = clients
            .sns
            .get_subscription_attributes()
            .subscription_arn(arn)
            .send()
            .await
            .expect("GetSubscriptionAttributes")
            .attributes
            .unwrap_or_default()
            .into_iter()
            .collect();
        attrs.sort();
        out.push(format!("{arn}: {attrs:?}"));
    }
    out.join("\n")
}

#[tokio::test]
async fn provisions_every_resource_and_twice_changes_nothing() {
    let prefix = testkit::unique_prefix("prov");
    let (clients, first) = testkit::provisioned(&prefix).await;
    let names = first.names();
    let before = snapshot(&clients, &first).await;

    // Tables: keys, indexes, stream, status.
    for def in TABLES {
        let t = clients
            .dynamodb
            .describe_table()
            .table_name(names.table(def))
            .send()
            .await
            .expect("DescribeTable")
            .table
            .expect("table");
        assert_eq!(t.table_status, Some(TableStatus::Active), "{}", def.name);
        let hash = t
            .key_schema()
            .iter()
            .find(|k| k.key_type == KeyType::Hash)
            .expect("hash key");
        assert_eq!(hash.attribute_name, def.key.hash.name);
        let range = t.key_schema().iter().find(|k| k.key_type == KeyType::Range);
        assert_eq!(
            range.map(|k| k.attribute_name.as_str()),
            def.key.range.map(|r| r.name)
        );
        assert_eq!(
            t.global_secondary_indexes().len(),
            def.gsis.len(),
            "{}",
            def.name
        );
    }
    let events = clients
        .dynamodb
        .describe_table()
        .table_name(names.table(&schema::events::TABLE))
        .send()
        .await
        .expect("DescribeTable events")
        .table
        .expect("table");
    let stream = events.stream_specification().expect("events stream");
    assert!(stream.stream_enabled);
    assert_eq!(stream.stream_view_type, Some(StreamViewType::NewImage));
    assert_eq!(
        events.latest_stream_arn.as_deref(),
        Some(first.events_stream_arn.as_str())
    );
    for (def, index) in [
        (&schema::users::TABLE, "byUsername"),
        (&schema::follows::TABLE, "byFollowee"),
    ] {
        let t = clients
            .dynamodb
            .describe_table()
            .table_name(names.table(def))
            .send()
            .await
            .expect("DescribeTable")
            .table
            .expect("table");
        let gsi = t
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name() == Some(index))
            .expect("gsi");
        assert_eq!(
            gsi.projection().and_then(|p| p.projection_type.clone()),
            Some(ProjectionType::All)
        );
    }
    let follows_gsi_key: Vec<_> = schema::follows::TABLE.gsis[0]
        .key
        .range
        .iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(follows_gsi_key, ["followerId"]);

    // Topic.
    assert!(first
        .topic_arn
        .ends_with(&names.topic(&DOMAIN_EVENTS_TOPIC)));
    clients
        .sns
        .get_topic_attributes()
        .topic_arn(&first.topic_arn)
        .send()
        .await
        .expect("topic exists");

    // Queues, DLQs and redrive.
    assert_eq!(first.queues.len(), resources::PROJECTOR_QUEUES.len());
    let q = first
        .queue("users-projector")
        .expect("users-projector queue");
    assert_eq!(q.batch_size, 10);
    assert_eq!(q.visibility_timeout_secs, 60);
    assert_eq!(q.max_receive_count, 5);
    let attrs = queue_attrs(&clients, &q.url).await;
    assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "60");
    assert_eq!(attrs[&QueueAttributeName::QueueArn], q.arn);
    let redrive: serde_json::Value =
        serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).expect("redrive json");
    assert_eq!(redrive["deadLetterTargetArn"], q.dlq_arn.as_str());
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    let dlq_attrs = queue_attrs(&clients, &q.dlq_url).await;
    assert_eq!(
        dlq_attrs[&QueueAttributeName::MessageRetentionPeriod],
        DLQ_RETENTION_SECS.to_string()
    );
    assert!(q.url.contains(&names.queue(&USERS_PROJECTOR_QUEUE)));
    assert!(q.dlq_url.contains(&names.dlq(&USERS_PROJECTOR_QUEUE)));

    // Subscriptions: one per projector queue, to that queue, filtered by its policy, not raw.
    let subs = subscriptions(&clients, &first.topic_arn).await;
    assert_eq!(subs.len(), resources::PROJECTOR_QUEUES.len(), "{subs:?}");
    for def in resources::PROJECTOR_QUEUES {
        let queue = first.queue(def.name).expect("queue");
        let sub = subs
            .iter()
            .find(|s| s.endpoint() == Some(queue.arn.as_str()))
            .unwrap_or_else(|| panic!("no subscription for {}: {subs:?}", def.name));
        assert_eq!(sub.protocol(), Some("sqs"));
        let sub_attrs = clients
            .sns
            .get_subscription_attributes()
            .subscription_arn(sub.subscription_arn().expect("arn"))
            .send()
            .await
            .expect("GetSubscriptionAttributes")
            .attributes
            .unwrap_or_default();
        let policy: serde_json::Value =
            serde_json::from_str(&sub_attrs["FilterPolicy"]).expect("filter policy json");
        let want: serde_json::Value =
            serde_json::from_str(&def.filter_policy_json()).expect("policy json");
        assert_eq!(policy, want, "{}", def.name);
        assert_ne!(
            sub_attrs.get("RawMessageDelivery").map(String::as_str),
            Some("true")
        );
    }
    let users_policy: serde_json::Value =
        serde_json::from_str(&USERS_PROJECTOR_QUEUE.filter_policy_json()).expect("json");
    assert_eq!(users_policy, serde_json::json!({"aggregateType": ["User"]}));

    // Twice: same result, nothing changed.
    let second = provision(&clients, &prefix)
        .await
        .expect("second provision");
    assert_eq!(first, second);
    assert_eq!(before, snapshot(&clients, &second).await);
}

/// The SNS envelope's `Message` of every message received until `stop` says so or the
/// deadline passes.
async fn receive_until(
    clients: &Clients,
    url: &str,
    mut stop: impl FnMut(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    while !stop(&seen) {
        assert!(
            Instant::now() < deadline,
            "timed out; received so far: {seen:?}"
        );
        let out = clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        for m in out.messages() {
            seen.push(serde_json::from_str(m.body().expect("body")).expect("envelope json"));
        }
    }
    seen
}

async fn publish(clients: &Clients, topic_arn: &str, aggregate_type: &str, body: &str) {
    clients
        .sns
        .publish()
        .topic_arn(topic_arn)
        .message(body)
        .message_attributes(
            "aggregateType",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(aggregate_type)
                .build()
                .expect("attribute"),
        )
        .send()
        .await
        .expect("Publish");
}

#[tokio::test]
async fn filter_policy_routes_user_events_to_the_users_projector_only() {
    let prefix = testkit::unique_prefix("filter");
    let (clients, p) = testkit::provisioned(&prefix).await;
    let q = p.queue("users-projector").expect("queue");

    // Published first: if the filter let it through, it would be received before the other.
    publish(&clients, &p.topic_arn, "Article", r#"{"n":"article"}"#).await;
    publish(&clients, &p.topic_arn, "User", r#"{"n":"user"}"#).await;

    let user_seen =
        |seen: &[serde_json::Value]| seen.iter().any(|m| m["Message"] == r#"{"n":"user"}"#);
    let mut seen = receive_until(&clients, &q.url, user_seen).await;
    // Whatever else is waiting right now (short poll).
    seen.extend(
        clients
            .sqs
            .receive_message()
            .queue_url(&q.url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("ReceiveMessage")
            .messages()
            .iter()
            .map(|m| serde_json::from_str(m.body().expect("body")).expect("envelope json")),
    );

    assert_eq!(seen.len(), 1, "{seen:?}");
    let envelope = &seen[0];
    assert_eq!(envelope["Type"], "Notification");
    assert_eq!(envelope["TopicArn"], p.topic_arn.as_str());
    assert_eq!(
        envelope["MessageAttributes"]["aggregateType"]["Value"],
        "User"
    );
}

/// Every projector queue receives exactly the aggregate types of its filter policy.
#[tokio::test]
async fn filter_policies_route_each_aggregate_type_to_its_projectors() {
    let prefix = testkit::unique_prefix("route");
    let (clients, p) = testkit::provisioned(&prefix).await;
    let kinds = ["User", "Article", "ArticleComments", "Favorite"];
    for kind in kinds {
        publish(
            &clients,
            &p.topic_arn,
            kind,
            &format!(r#"{{"n":"{kind}"}}"#),
        )
        .await;
    }
    // A marker every queue accepts cannot exist (policies differ), so each queue is read
    // until it holds as many messages as its policy lets through, then once more.
    for def in resources::PROJECTOR_QUEUES {
        let queue = p.queue(def.name).expect("queue");
        let wanted: Vec<&str> = kinds
            .iter()
            .copied()
            .filter(|k| def.filter_policy.iter().all(|c| c.values.contains(k)))
            .collect();
        let mut seen = receive_until(&clients, &queue.url, |seen| seen.len() >= wanted.len()).await;
        seen.extend(
            clients
                .sqs
                .receive_message()
                .queue_url(&queue.url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("ReceiveMessage")
                .messages()
                .iter()
                .map(|m| serde_json::from_str(m.body().expect("body")).expect("envelope json")),
        );
        let mut got: Vec<String> = seen
            .iter()
            .map(|m| {
                m["MessageAttributes"]["aggregateType"]["Value"]
                    .as_str()
                    .expect("attribute")
                    .to_owned()
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = wanted.iter().map(|k| (*k).to_owned()).collect();
        want.sort();
        assert_eq!(got, want, "{}", def.name);
    }
}

#[tokio::test]
async fn a_message_received_too_often_moves_to_the_dlq() {
    let prefix = testkit::unique_prefix("dlq");
    let (clients, p) = testkit::provisioned(&prefix).await;
    let q = p.queue("users-projector").expect("queue");
    clients
        .sqs
        .send_message()
        .queue_url(&q.url)
        .message_body("poison")
        .send()
        .await
        .expect("SendMessage");

    let deadline = Instant::now() + DEADLINE;
    let mut receives = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "not in the DLQ after {receives} receives"
        );
        let out = clients
            .sqs
            .receive_message()
            .queue_url(&q.url)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        if let Some(m) = out.messages().first() {
            receives += 1;
            assert_eq!(m.body(), Some("poison"));
            // Fail fast: make it visible again at once instead of after 60 s.
            clients
                .sqs
                .change_message_visibility()
                .queue_url(&q.url)
                .receipt_handle(m.receipt_handle().expect("receipt handle"))
                .visibility_timeout(0)
                .send()
                .await
                .expect("ChangeMessageVisibility");
            continue;
        }
        let dead = clients
            .sqs
            .receive_message()
            .queue_url(&q.dlq_url)
            .send()
            .await
            .expect("ReceiveMessage DLQ");
        if let Some(m) = dead.messages().first() {
            assert_eq!(m.body(), Some("poison"));
            break;
        }
    }
    assert_eq!(
        receives, q.max_receive_count,
        "receives before the move to the DLQ"
    );
}

#[tokio::test]
async fn teardown_removes_everything_and_provision_recreates_it() {
    let prefix = testkit::unique_prefix("teardown");
    let (clients, first) = testkit::provisioned(&prefix).await;
    local_aws::provision::teardown(&clients, &prefix)
        .await
        .expect("teardown");
    assert!(
        local_aws::provision::existing_table_names(&clients, &prefix)
            .await
            .expect("ListTables")
            .is_empty()
    );
    let queues = clients
        .sqs
        .list_queues()
        .queue_name_prefix(&prefix)
        .send()
        .await
        .expect("ListQueues");
    assert!(queues.queue_urls().is_empty(), "{queues:?}");
    let second = provision(&clients, &prefix).await.expect("provision again");
    assert_eq!(first.prefix, second.prefix);
    assert_eq!(
        subscriptions(&clients, &second.topic_arn).await.len(),
        resources::PROJECTOR_QUEUES.len()
    );
}
