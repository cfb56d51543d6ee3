//! Why a projector handed a message back: one item per failed event (or unreadable message)
//! in the base checkpoints table, so that what ends in a dead-letter queue can be explained
//! (`admin dlq list`) long after the log lines are gone.
//!
//! The item's key is `failure#<projection>#<stream>#<sequence>` (an unreadable message:
//! `failure#<projection>#message#<message id>`, SQS keeps a message's id when it moves it to
//! the dead-letter queue). Each failure sets the reason, the receive count and when it last
//! failed, keeps when it first failed, and counts the failures; the reason is one line (the
//! error and its causes, never a request or a payload). Recording is best effort: a failure
//! that cannot be recorded is logged, and the message is handed back all the same.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use common::projections::Projection;
use futures::stream::{self, StreamExt};

use common::clock::now_ms;

/// The attributes of a failure item.
pub mod attr {
    pub const PROJECTION: &str = "projection";
    pub const STREAM: &str = "stream";
    pub const SEQUENCE: &str = "sequence";
    pub const EVENT_TYPE: &str = "eventType";
    pub const MESSAGE_ID: &str = "messageId";
    pub const REASON: &str = "reason";
    pub const RECEIVE_COUNT: &str = "receiveCount";
    pub const FAILURES: &str = "failures";
    pub const FIRST_FAILED_AT: &str = "firstFailedAt";
    pub const LAST_FAILED_AT: &str = "lastFailedAt";
}

/// The longest reason kept, in characters.
const MAX_REASON_CHARS: usize = 500;
/// Failure items written at once.
const CONCURRENT_WRITES: usize = 8;

/// The event a message carried, when it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRef {
    /// `<AggregateType>#<id>`.
    pub stream: String,
    pub sequence: u64,
    pub event_type: String,
}

/// A message of a batch that was handed back, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    pub message_id: String,
    pub event: Option<EventRef>,
    pub reason: String,
    /// SQS's `ApproximateReceiveCount` of this delivery.
    pub receive_count: Option<u32>,
}

/// The key of the failure item of `event` (or, unreadable, of the message) in `projection`.
pub fn key(projection: Projection, event: Option<&EventRef>, message_id: &str) -> String {
    match event {
        Some(event) => format!(
            "failure#{}#{}#{}",
            projection.name(),
            event.stream,
            event.sequence
        ),
        None => format!("failure#{}#message#{message_id}", projection.name()),
    }
}

/// `reason` as it is kept: one line, at most [`MAX_REASON_CHARS`].
fn one_line(reason: &str) -> String {
    let line = reason.replace(['\n', '\r'], " ");
    match line.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Records every failure of `failed` in `table` (the base checkpoints table).
pub async fn record(client: &Client, table: &str, projection: Projection, failed: &[Failed]) {
    let now = now_ms().to_string();
    // Owned inputs: a stream of futures borrowing from the batch would not be `Send` for
    // every lifetime the Lambda handler asks of it.
    stream::iter(failed.iter().cloned())
        .map(|failure| {
            let (client, table, now) = (client.clone(), table.to_owned(), now.clone());
            async move { write(&client, &table, projection, &failure, now).await }
        })
        .buffer_unordered(CONCURRENT_WRITES)
        .collect::<Vec<()>>()
        .await;
}

async fn write(
    client: &Client,
    table: &str,
    projection: Projection,
    failure: &Failed,
    now: String,
) {
    let key = key(projection, failure.event.as_ref(), &failure.message_id);
    let mut values = HashMap::from([
        (":p".to_owned(), s(projection.name())),
        (":m".to_owned(), s(&failure.message_id)),
        (":r".to_owned(), s(&one_line(&failure.reason))),
        (
            ":c".to_owned(),
            AttributeValue::N(failure.receive_count.unwrap_or(0).to_string()),
        ),
        (":now".to_owned(), AttributeValue::N(now)),
        (":one".to_owned(), AttributeValue::N("1".into())),
    ]);
    // Every attribute through a name placeholder: several are DynamoDB reserved words.
    let mut names = HashMap::new();
    let mut assignments = Vec::new();
    let mut set = |name: &'static str, value: &str| {
        names.insert(format!("#{name}"), name.to_owned());
        assignments.push(format!("#{name} = {value}"));
    };
    set(attr::PROJECTION, ":p");
    set(attr::MESSAGE_ID, ":m");
    set(attr::REASON, ":r");
    set(attr::RECEIVE_COUNT, ":c");
    set(attr::LAST_FAILED_AT, ":now");
    set(
        attr::FIRST_FAILED_AT,
        &format!("if_not_exists(#{}, :now)", attr::FIRST_FAILED_AT),
    );
    if let Some(event) = &failure.event {
        set(attr::STREAM, ":s");
        set(attr::SEQUENCE, ":q");
        set(attr::EVENT_TYPE, ":t");
        values.insert(":s".into(), s(&event.stream));
        values.insert(":q".into(), AttributeValue::N(event.sequence.to_string()));
        values.insert(":t".into(), s(&event.event_type));
    }
    names.insert(format!("#{}", attr::FAILURES), attr::FAILURES.to_owned());
    let written = client
        .update_item()
        .table_name(table)
        .key(schema::checkpoints::PK, s(&key))
        .update_expression(format!(
            "SET {} ADD #{} :one",
            assignments.join(", "),
            attr::FAILURES
        ))
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .send()
        .await;
    if let Err(error) = written {
        tracing::warn!(
            projection = projection.name(),
            key,
            error = %common::error::one_line(&error),
            "could not record why a message failed"
        );
    }
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_kept_on_one_line_and_bounded() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
        let long = "é".repeat(MAX_REASON_CHARS + 10);
        let kept = one_line(&long);
        assert_eq!(kept.chars().count(), MAX_REASON_CHARS + 1);
        assert!(kept.ends_with('…'));
        assert_eq!(one_line("short"), "short");
    }

    #[test]
    fn an_event_is_keyed_by_its_stream_and_sequence_an_unreadable_message_by_its_id() {
        let event = EventRef {
            stream: "User#u1".into(),
            sequence: 7,
            event_type: "UserFollowed".into(),
        };
        assert_eq!(
            key(Projection::Users, Some(&event), "m1"),
            "failure#users#User#u1#7"
        );
        assert_eq!(key(Projection::Feed, None, "m1"), "failure#feed#message#m1");
    }
}
