//! The fan-out: every new event of the stream published to the topic, secrets removed, with the attributes subscriptions filter on.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use events::store::event_from_item;
use events::StoredEvent;
use futures::future::join_all;

/// SNS takes at most ten messages per `PublishBatch`...
const SNS_BATCH: usize = 10;
/// ...and at most 256 KiB in all of them together (bodies and attributes).
const SNS_BATCH_BYTES: usize = 256 * 1024;

/// The message attributes every published event carries.
pub const ATTR_EVENT_TYPE: &str = "eventType";
pub const ATTR_AGGREGATE_TYPE: &str = "aggregateType";

/// Publishes stream records of the `events` table to the domain-events topic.
#[derive(Clone, Debug)]
pub struct FanOut {
    sns: aws_sdk_sns::Client,
    topic_arn: String,
}

/// What became of one stream record.
enum Prepared {
    Publish(Box<PublishBatchRequestEntry>),
    /// Not a new event (a MODIFY or REMOVE): nothing to publish.
    Ignore,
    /// Unreadable: reported as failed so Lambda retries, then sends it to the on-failure destination.
    Fail(String),
}

impl FanOut {
    pub fn new(sns: aws_sdk_sns::Client, topic_arn: String) -> Self {
        Self { sns, topic_arn }
    }

    /// Publishes every INSERT of the batch. Reports the first record that could not be
    /// published, so that Lambda retries from it (records before it are done).
    #[tracing::instrument(skip_all, fields(records = batch.records.len()))]
    pub async fn handle(&self, batch: Event) -> DynamoDbEventResponse {
        let prepared: Vec<Prepared> = batch
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| prepare(i, r))
            .collect();
        let mut failed: Vec<usize> = Vec::new();
        let mut entries: Vec<(usize, PublishBatchRequestEntry)> = Vec::new();
        for (index, item) in prepared.into_iter().enumerate() {
            match item {
                Prepared::Publish(entry) => entries.push((index, *entry)),
                Prepared::Ignore => {}
                Prepared::Fail(reason) => {
                    tracing::error!(record = index, %reason, "unreadable stream record");
                    failed.push(index);
                }
            }
        }

        let publishes = batches(&entries)
            .into_iter()
            .map(|chunk| self.publish(chunk));
        for chunk_failures in join_all(publishes).await {
            failed.extend(chunk_failures);
        }

        let mut response = DynamoDbEventResponse::default();
        if let Some(first) = failed.into_iter().min() {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = batch.records[first].change.sequence_number.clone();
            response.batch_item_failures.push(failure);
        }
        response
    }

    /// Publishes `events` again (a redrive of a stream batch the fan-out gave up on), as
    /// [`FanOut::handle`] publishes them: the same messages, the same batching. An error names
    /// how many were not accepted; publishing them again is safe (the projectors skip
    /// duplicates).
    pub async fn republish(&self, events: &[StoredEvent]) -> Result<(), String> {
        let entries = events
            .iter()
            .enumerate()
            .map(|(i, event)| message(i.to_string(), event).map(|entry| (i, entry)))
            .collect::<Result<Vec<_>, String>>()?;
        let publishes = batches(&entries)
            .into_iter()
            .map(|chunk| self.publish(chunk));
        let refused: usize = join_all(publishes).await.iter().map(Vec::len).sum();
        if refused == 0 {
            Ok(())
        } else {
            Err(format!(
                "{refused} of {} events not published",
                events.len()
            ))
        }
    }

    /// Publishes one chunk; returns the record indexes that were not accepted.
    async fn publish(&self, chunk: &[(usize, PublishBatchRequestEntry)]) -> Vec<usize> {
        let result = self
            .sns
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(chunk.iter().map(|(_, e)| e.clone()).collect()))
            .send()
            .await;
        match result {
            Ok(output) => {
                let by_id: HashMap<&str, usize> = chunk.iter().map(|(i, e)| (e.id(), *i)).collect();
                output
                    .failed()
                    .iter()
                    .filter_map(|f| {
                        tracing::warn!(id = f.id(), code = f.code(), "publish refused");
                        by_id.get(f.id()).copied()
                    })
                    .collect()
            }
            Err(error) => {
                tracing::error!(error = %common::error::one_line(&error), "publish batch failed");
                chunk.iter().map(|(i, _)| *i).collect()
            }
        }
    }
}

/// The bytes SNS counts for a message: its body and its attributes' names, types and values.
fn message_bytes(entry: &PublishBatchRequestEntry) -> usize {
    let attributes: usize = entry
        .message_attributes()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| {
                    name.len() + value.data_type().len() + value.string_value().map_or(0, str::len)
                })
                .sum()
        })
        .unwrap_or(0);
    entry.message().len() + attributes
}

/// Splits entries into `PublishBatch` calls within both SNS limits, keeping their order. An
/// entry too large on its own still gets a call of its own, which SNS refuses: it is then
/// reported like any other refused publish.
fn batches<T>(entries: &[(T, PublishBatchRequestEntry)]) -> Vec<&[(T, PublishBatchRequestEntry)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, entry)) in entries.iter().enumerate() {
        let size = message_bytes(entry);
        if i > start && (i - start == SNS_BATCH || bytes + size > SNS_BATCH_BYTES) {
            out.push(&entries[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

/// The SNS message of a stored event: its JSON without secrets, and the filter attributes.
pub fn message(id: String, event: &StoredEvent) -> Result<PublishBatchRequestEntry, String> {
    let body = serde_json::to_string(&event.without_secrets()).map_err(|e| e.to_string())?;
    let attribute = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| e.to_string())
    };
    PublishBatchRequestEntry::builder()
        .id(id)
        .message(body)
        .message_attributes(ATTR_EVENT_TYPE, attribute(&event.event_type)?)
        .message_attributes(ATTR_AGGREGATE_TYPE, attribute(&event.aggregate_type)?)
        .build()
        .map_err(|e| e.to_string())
}

fn prepare(index: usize, record: &EventRecord) -> Prepared {
    if record.event_name != "INSERT" {
        return Prepared::Ignore;
    }
    let item: HashMap<String, AttributeValue> = record.change.new_image.clone().into();
    let event = match event_from_item(&item) {
        Ok(event) => event,
        Err(error) => return Prepared::Fail(error.to_string()),
    };
    match message(index.to_string(), &event) {
        Ok(entry) => Prepared::Publish(Box::new(entry)),
        Err(reason) => Prepared::Fail(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::Metadata;

    fn entry_of(size: usize) -> ((), PublishBatchRequestEntry) {
        let entry = PublishBatchRequestEntry::builder()
            .id("x")
            .message("m".repeat(size))
            .build()
            .expect("entry");
        ((), entry)
    }

    #[test]
    fn batches_respect_the_count_and_the_total_size() {
        let small: Vec<_> = (0..23).map(|_| entry_of(100)).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![10, 10, 3]);

        // Three 100 KiB messages: two fit under 256 KiB, the third starts a new call.
        let large: Vec<_> = (0..3).map(|_| entry_of(100 * 1024)).collect();
        let sizes: Vec<usize> = batches(&large).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![2, 1]);

        let mixed = vec![entry_of(200 * 1024), entry_of(100 * 1024), entry_of(10)];
        let sizes: Vec<usize> = batches(&mixed).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1, 2]);
        assert!(batches::<()>(&[]).is_empty());
    }

    #[test]
    fn messages_carry_no_secret_and_the_filter_attributes() {
        let event = StoredEvent {
            aggregate_type: "User".into(),
            aggregate_id: "u1".into(),
            sequence: 1,
            event_id: uuid::Uuid::new_v4(),
            event_type: "UserRegistered".into(),
            event_version: 1,
            payload: serde_json::json!({"userId": "u1", "email": "a@b.io", "username": "a", "passwordHash": "$argon2id$secret"}),
            metadata: Metadata::default(),
            recorded_at: "2024-01-01T00:00:00.000Z".into(),
        };
        let entry = message("0".into(), &event).expect("message");
        assert!(!entry.message().contains("argon2id"));
        assert!(entry.message().contains("a@b.io"));
        let attributes = entry.message_attributes().expect("attributes");
        assert_eq!(attributes[ATTR_AGGREGATE_TYPE].string_value(), Some("User"));
        assert_eq!(
            attributes[ATTR_EVENT_TYPE].string_value(),
            Some("UserRegistered")
        );
    }
}
