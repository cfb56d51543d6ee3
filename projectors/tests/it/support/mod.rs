//! What the projector tests share: a projector over freshly provisioned local resources, events
//! appended through the real event store, SNS notifications in SQS batches, and queue polling.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use common::config::TableNames;
use events::views::Item;
use events::{Commit, EventSchema, EventStore, Metadata, StoredEvent, Tables};
use local_aws::esm::QueueMapping;
use local_aws::provision::{Provisioned, ProvisionedQueue};
use local_aws::Clients;
use projectors::{Projector, ProjectorRuntime};
use uuid::Uuid;

/// A notification whose message is no event: it fails each time it is received.
pub const GARBAGE_NOTIFICATION: &str = "{\"Type\":\"Notification\",\"Message\":\"garbage\"}";

/// One projector's runtime over every resource provisioned under a fresh prefix, with the event
/// store its gaps are filled from.
pub struct Fixture<P> {
    pub clients: Clients,
    pub tables: TableNames,
    pub provisioned: Provisioned,
    pub store: EventStore,
    pub runtime: ProjectorRuntime<P>,
}

impl<P: Projector> Fixture<P> {
    /// Provisions the resources under a fresh prefix made from `tag` and builds the runtime over
    /// their tables with `runtime`.
    pub async fn new(
        tag: &str,
        runtime: impl FnOnce(&aws_sdk_dynamodb::Client, &TableNames) -> ProjectorRuntime<P>,
    ) -> Self {
        let prefix = local_aws::testkit::unique_prefix(tag);
        let (clients, provisioned) = local_aws::testkit::provisioned(&prefix).await;
        let tables = TableNames::with_prefix(&prefix);
        Self {
            runtime: runtime(&clients.dynamodb, &tables),
            store: EventStore::new(clients.dynamodb.clone(), Tables::with_prefix(&prefix)),
            clients,
            tables,
            provisioned,
        }
    }

    /// Appends `events` to the end of a stream with the real event store (so gap filling can read
    /// them back) and returns them as stored.
    pub async fn append<E: EventSchema>(
        &self,
        aggregate_type: &str,
        id: &str,
        events: Vec<E>,
    ) -> Vec<StoredEvent> {
        let expected_sequence = self
            .store
            .load(aggregate_type, id)
            .await
            .expect("load")
            .len() as u64;
        self.store
            .append(Commit::of(
                aggregate_type,
                id,
                expected_sequence,
                &events,
                &Metadata::default(),
            ))
            .await
            .expect("append")
    }

    /// Hands `messages` to the runtime all in one SQS batch (`together`) or one per batch;
    /// returns the ids of the messages it reported as failed.
    pub async fn deliver(&self, messages: &[(String, String)], together: bool) -> BTreeSet<String> {
        if together {
            return failed(&self.runtime.handle_sqs(sqs_event(messages)).await);
        }
        let mut failures = BTreeSet::new();
        for message in messages {
            let response = self
                .runtime
                .handle_sqs(sqs_event(std::slice::from_ref(message)))
                .await;
            failures.extend(failed(&response));
        }
        failures
    }

    /// The provisioned projector queue named `name`.
    pub fn queue(&self, name: &str) -> ProvisionedQueue {
        self.provisioned.queue(name).expect("queue").clone()
    }

    /// Sends `body` to `queue`, as the topic's subscription would.
    pub async fn send(&self, queue: &ProvisionedQueue, body: &str) {
        self.clients
            .sqs
            .send_message()
            .queue_url(&queue.url)
            .message_body(body)
            .send()
            .await
            .expect("send message");
    }
}

impl<P: Projector + Clone + 'static> Fixture<P> {
    /// Polls `queue` into the runtime as the Lambda event source mapping does, with failed
    /// messages visible again at once, until a message lands in the dead-letter queue (within
    /// 60 s); returns that message once the poller has stopped.
    pub async fn poll_until_dead_letter(&self, queue: &ProvisionedQueue) -> Message {
        let sqs = self.clients.sqs.clone();
        let mut mapping = QueueMapping::new(queue.url.clone(), queue.arn.clone());
        mapping.retry_delay = Some(Duration::ZERO);
        mapping.wait_time = Duration::from_millis(200);
        let runtime = Arc::new(self.runtime.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let poller = tokio::spawn(mapping.run(
            sqs.clone(),
            move |event| {
                let runtime = runtime.clone();
                async move { Ok::<_, std::convert::Infallible>(runtime.handle_sqs(event).await) }
            },
            async move {
                let _ = stopped.await;
            },
        ));

        let deadline = Instant::now() + Duration::from_secs(60);
        let dead = loop {
            let received = sqs
                .receive_message()
                .queue_url(&queue.dlq_url)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .expect("receive dlq");
            if let Some(message) = received.messages().first() {
                break message.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the poison message never reached the DLQ"
            );
        };
        let _ = stop.send(());
        poller.await.expect("poller");
        dead
    }
}

/// `event`, without its secrets, in the SNS notification the topic delivers to a queue.
pub fn sns_body(event: &StoredEvent) -> String {
    serde_json::json!({
        "Type": "Notification",
        "MessageId": Uuid::new_v4().to_string(),
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:domain-events",
        "Message": serde_json::to_string(&event.without_secrets()).expect("json"),
    })
    .to_string()
}

/// Each event in its own notification, under a fresh message id.
pub fn messages(events: &[&StoredEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|event| (Uuid::new_v4().to_string(), sns_body(event)))
        .collect()
}

/// The SQS event a Lambda receives for these `(message id, body)` pairs.
pub fn sqs_event(bodies: &[(String, String)]) -> SqsEvent {
    let records: Vec<_> = bodies
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("sqs event")
}

/// The ids of the messages a partial batch response reports as failed.
pub fn failed(response: &SqsBatchResponse) -> BTreeSet<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// The bodies of the messages received from `queue_url`, polling until at least one arrives or
/// `within` has passed.
pub async fn receive_bodies(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut bodies = Vec::new();
    while bodies.is_empty() && Instant::now() < deadline {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        bodies.extend(
            received
                .messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
    }
    bodies
}

/// The item of `table` whose key `key` is `value`, read strongly consistent.
pub async fn get_item(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
    value: &str,
) -> Option<Item> {
    dynamodb
        .get_item()
        .table_name(table)
        .key(key, AttributeValue::S(value.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
}
