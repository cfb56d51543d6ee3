//! The stream batches the fan-out gave up on: the queue `fan-out-failures`, the stream
//! mapping's on-failure destination, holds one description per batch (Lambda's
//! `DDBStreamBatchInfo`: shard, first and last sequence number), not the events.
//!
//! A redrive reads those records again from the table's stream (`GetShardIterator` at the
//! first sequence number, `GetRecords` up to the last), reads each new event from the `events`
//! table by its key, and publishes them to the topic through the fan-out's own code
//! ([`projectors::FanOut::republish`]); only then is the description deleted. Interrupted, it
//! can be run again: the projectors skip what they applied. A stream keeps its records 24
//! hours: a batch older than that cannot be redriven this way (the error says so), and the
//! projections must be rebuilt (`replay rebuild`).

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use common::config::TableNames;
use events::StoredEvent;
use infra::resources::{Names, DOMAIN_EVENTS_TOPIC};
use projectors::FanOut;
use serde_json::Value;

use crate::dlq::{delete_message, queue_url, receive_all, release, sqs_error};
use crate::{store_error, ReplayError};

/// Empty `GetRecords` answers in a row after which an open shard is taken to hold nothing more.
const EMPTY_READS: u32 = 3;

/// One stream batch the fan-out gave up on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamFailure {
    pub message_id: String,
    /// `RetryAttemptsExhausted`, `RecordNotConvertible`...
    pub condition: String,
    /// The function's error, as the destination record gives it.
    pub error: String,
    pub timestamp: String,
    pub stream_arn: String,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub batch_size: u64,
    receipt_handle: String,
}

/// The fan-out's failures queue, and what a redrive needs.
#[derive(Clone, Debug)]
pub struct FanOutFailures {
    pub queue_url: String,
    sqs: aws_sdk_sqs::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    events_table: String,
    fan_out: FanOut,
}

/// Clients of the services a fan-out failure touches.
#[derive(Clone, Debug)]
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl FanOutFailures {
    /// The failures queue and the topic under `base`'s prefix, found by name.
    pub async fn resolve(clients: &Clients, base: &TableNames) -> Result<Self, ReplayError> {
        let names = Names::new(&base.prefix);
        let queue = names.fan_out_failures();
        let queue_url = queue_url(&clients.sqs, &queue).await?;
        let topic = names.topic(&DOMAIN_EVENTS_TOPIC);
        let topic_arn = topic_arn(&clients.sns, &topic).await?;
        Ok(Self {
            queue_url,
            sqs: clients.sqs.clone(),
            streams: clients.streams.clone(),
            dynamodb: clients.dynamodb.clone(),
            events_table: base.events.clone(),
            fan_out: FanOut::new(clients.sns.clone(), topic_arn),
        })
    }

    /// Every failure in the queue; the queue is left as it was.
    pub async fn list(&self) -> Result<Vec<StreamFailure>, ReplayError> {
        let failures = self.receive_all().await?;
        self.release(&failures).await?;
        Ok(failures)
    }

    /// Publishes the events of every failed batch again, then deletes its description;
    /// returns how many events were published.
    pub async fn redrive(&self) -> Result<usize, ReplayError> {
        let failures = self.receive_all().await?;
        let mut published = 0;
        for (i, failure) in failures.iter().enumerate() {
            let result = match self.events_of(failure).await {
                Ok(events) => self
                    .fan_out
                    .republish(&events)
                    .await
                    .map(|()| events.len())
                    .map_err(ReplayError::Queue),
                Err(error) => Err(error),
            };
            match result {
                Ok(count) => {
                    delete_message(&self.sqs, &self.queue_url, &failure.receipt_handle).await?;
                    published += count;
                }
                Err(error) => {
                    // What was not redriven goes back to the queue at once.
                    self.release(&failures[i..]).await?;
                    return Err(error);
                }
            }
        }
        Ok(published)
    }

    /// Deletes every failure description; returns how many there were.
    pub async fn purge(&self) -> Result<usize, ReplayError> {
        let failures = self.receive_all().await?;
        for failure in &failures {
            delete_message(&self.sqs, &self.queue_url, &failure.receipt_handle).await?;
        }
        Ok(failures.len())
    }

    /// The new events of `failure`'s records, read from the `events` table, in stream order.
    pub async fn events_of(
        &self,
        failure: &StreamFailure,
    ) -> Result<Vec<StoredEvent>, ReplayError> {
        let expired = |e: &dyn std::error::Error| {
            ReplayError::Refused(format!(
                "the stream no longer has records {} to {} of {} ({}): a stream keeps 24 hours; \
                 rebuild the projections with `replay rebuild all`",
                failure.start_sequence_number,
                failure.end_sequence_number,
                failure.shard_id,
                common::error::one_line(e)
            ))
        };
        let mut iterator = self
            .streams
            .get_shard_iterator()
            .stream_arn(&failure.stream_arn)
            .shard_id(&failure.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&failure.start_sequence_number)
            .send()
            .await
            .map_err(|e| expired(&e))?
            .shard_iterator;
        let mut events = Vec::new();
        let mut empty = 0;
        'reading: while let Some(current) = iterator.take() {
            let page = self
                .streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .map_err(|e| expired(&e))?;
            let records = page.records.unwrap_or_default();
            if records.is_empty() {
                empty += 1;
                if empty >= EMPTY_READS {
                    break;
                }
            } else {
                empty = 0;
            }
            for record in records {
                let Some(change) = record.dynamodb else {
                    continue;
                };
                let sequence = change.sequence_number.unwrap_or_default();
                if sequence_after(&sequence, &failure.end_sequence_number) {
                    break 'reading;
                }
                let is_insert = record.event_name.as_ref().map(|n| n.as_str()) == Some("INSERT");
                if let (true, Some(keys)) = (is_insert, change.keys) {
                    events.push(self.event(keys).await?);
                }
                if sequence == failure.end_sequence_number {
                    break 'reading;
                }
            }
            iterator = page.next_shard_iterator;
        }
        Ok(events)
    }

    /// The event of a stream record's `keys`, read from the `events` table.
    async fn event(
        &self,
        keys: std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
    ) -> Result<StoredEvent, ReplayError> {
        let key = keys
            .into_iter()
            .filter_map(|(name, value)| {
                let value = match value {
                    aws_sdk_dynamodbstreams::types::AttributeValue::S(s) => AttributeValue::S(s),
                    aws_sdk_dynamodbstreams::types::AttributeValue::N(n) => AttributeValue::N(n),
                    _ => return None,
                };
                Some((name, value))
            })
            .collect();
        let item = self
            .dynamodb
            .get_item()
            .table_name(&self.events_table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("reading an event"))?
            .item
            .ok_or_else(|| {
                ReplayError::Invalid("a stream record's event is not in the table".into())
            })?;
        events::store::event_from_item(&item)
            .map_err(|e| ReplayError::Invalid(format!("an unreadable event: {e}")))
    }

    async fn receive_all(&self) -> Result<Vec<StreamFailure>, ReplayError> {
        Ok(receive_all(&self.sqs, &self.queue_url)
            .await?
            .into_iter()
            .map(|message| {
                let body: Value = serde_json::from_str(message.body.as_deref().unwrap_or_default())
                    .unwrap_or(Value::Null);
                let info = &body["DDBStreamBatchInfo"];
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                StreamFailure {
                    message_id: message.message_id.unwrap_or_default(),
                    condition: text(&body["requestContext"]["condition"]),
                    error: text(&body["responseContext"]["functionError"]),
                    timestamp: text(&body["timestamp"]),
                    stream_arn: text(&info["streamArn"]),
                    shard_id: text(&info["shardId"]),
                    start_sequence_number: text(&info["startSequenceNumber"]),
                    end_sequence_number: text(&info["endSequenceNumber"]),
                    batch_size: info["batchSize"].as_u64().unwrap_or(0),
                    receipt_handle: message.receipt_handle.unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn release(&self, failures: &[StreamFailure]) -> Result<(), ReplayError> {
        let handles: Vec<&str> = failures.iter().map(|f| f.receipt_handle.as_str()).collect();
        release(&self.sqs, &self.queue_url, &handles).await
    }
}

/// Whether stream sequence number `a` comes after `b` (decimal strings of any length).
fn sequence_after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// The ARN of the topic named `name`.
async fn topic_arn(sns: &aws_sdk_sns::Client, name: &str) -> Result<String, ReplayError> {
    let suffix = format!(":{name}");
    let mut next: Option<String> = None;
    loop {
        let page = sns
            .list_topics()
            .set_next_token(next.take())
            .send()
            .await
            .map_err(sqs_error("SNS ListTopics"))?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| arn.ends_with(&suffix))
        {
            return Ok(arn.to_owned());
        }
        match page.next_token {
            Some(token) => next = Some(token),
            None => return Err(ReplayError::Invalid(format!("no topic {name}"))),
        }
    }
}

/// `failures` as `replay dlq list fan-out` prints them.
pub fn render(failures: &[StreamFailure]) -> String {
    let mut out = format!(
        "fan-out: {} stream batch{} given up on\n",
        failures.len(),
        if failures.len() == 1 { "" } else { "es" }
    );
    for f in failures {
        out.push_str(&format!(
            "\nmessage {}: {} record(s) of shard {}, sequence {} to {}\n  at        {}\n  why       {}: {}\n",
            f.message_id,
            f.batch_size,
            f.shard_id,
            f.start_sequence_number,
            f.end_sequence_number,
            f.timestamp,
            f.condition,
            f.error
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_after("100", "99"));
        assert!(!sequence_after("99", "100"));
        assert!(!sequence_after("100", "100"));
        assert!(sequence_after(
            "000000000000000000101",
            "000000000000000000100"
        ));
    }
}
