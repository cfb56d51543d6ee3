//! A projector's dead-letter queue: what is in it and why, putting it back, emptying it.
//!
//! * [`Dlq::list`] receives every message of the dead-letter queue, holding each for
//!   [`HOLD`], then makes them all visible again: nothing is taken away. Each is read as the
//!   event it carries and joined with the failure item its projector recorded
//!   ([`projectors::failures`]): the reason, the receive count of its last failure, when it
//!   first and last failed.
//! * [`Dlq::redrive`] moves messages back to the projector's queue: for each, `SendMessage`
//!   to the source, then `DeleteMessage` from the dead-letter queue, then the failure item is
//!   deleted. A crash between the send and the delete leaves the message in both queues: the
//!   copy in the dead-letter queue comes back after [`HOLD`] and may be redriven again, and
//!   the projector, which applies each event of a stream exactly once, skips the second
//!   delivery. Nothing is lost (the delete follows the send) and nothing is doubled.
//! * [`Dlq::purge`] deletes every message and its failure item.
//!
//! SQS has `StartMessageMoveTask` for a redrive; moto has not, so this is the same code on
//! the local stack and on AWS.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};
use common::config::TableNames;
use common::projections::Projection;
use projectors::failures::{self, attr, EventRef};
use projectors::runtime::parse_message;

use crate::{store_error, ReplayError};

/// How long a listed or redriven message stays invisible to others while this command holds
/// it.
pub const HOLD: Duration = Duration::from_secs(30);
/// Empty receives in a row after which the queue is taken to be drained (SQS's short poll
/// samples servers, so one empty answer does not prove the queue is empty).
const EMPTY_RECEIVES: u32 = 3;

/// Why a dead letter failed, as its projector recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureRecord {
    pub reason: String,
    /// Receives at the projector's queue when it last failed.
    pub receive_count: u32,
    pub failures: u64,
    pub first_failed_at_ms: u64,
    pub last_failed_at_ms: u64,
}

/// One message of a dead-letter queue.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub message_id: String,
    /// The event it carries; `None` if it is not an event.
    pub event: Option<EventRef>,
    /// When it was first sent to the projector's queue (SQS keeps it through the move).
    pub sent_at_ms: Option<u64>,
    /// What its projector recorded; `None` if nothing was (a failure to record is logged).
    pub failure: Option<FailureRecord>,
    receipt_handle: String,
    body: String,
}

/// What a redrive did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redriven {
    /// Message ids sent back to the projector's queue.
    pub moved: Vec<String>,
}

/// The dead-letter queue of one projector.
#[derive(Clone, Debug)]
pub struct Dlq {
    pub projection: Projection,
    pub queue_url: String,
    pub dlq_url: String,
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    failures_table: String,
}

/// The physical names of `projection`'s queue and dead-letter queue under `base`'s prefix.
pub fn queue_names(base: &TableNames, projection: Projection) -> (String, String) {
    let names = infra::resources::Names::new(&base.prefix);
    let def = infra::resources::PROJECTOR_QUEUES
        .iter()
        .find(|def| def.name == format!("{}-projector", projection.name()))
        .expect("every projection has a queue");
    (names.queue(def), names.dlq(def))
}

impl Dlq {
    /// `projection`'s queues, found by name under `base`'s prefix.
    pub async fn resolve(
        sqs: &aws_sdk_sqs::Client,
        dynamodb: &aws_sdk_dynamodb::Client,
        base: &TableNames,
        projection: Projection,
    ) -> Result<Self, ReplayError> {
        let (queue, dlq) = queue_names(base, projection);
        Ok(Self {
            projection,
            queue_url: queue_url(sqs, &queue).await?,
            dlq_url: queue_url(sqs, &dlq).await?,
            sqs: sqs.clone(),
            dynamodb: dynamodb.clone(),
            failures_table: base.checkpoints.clone(),
        })
    }

    /// About how many messages the dead-letter queue holds (SQS's
    /// `ApproximateNumberOfMessages`).
    pub async fn depth(&self) -> Result<u64, ReplayError> {
        Ok(self.counts(&self.dlq_url).await?.0)
    }

    /// The projector's queue, `(visible, in flight)`, and the dead-letter queue's depth.
    pub async fn depths(&self) -> Result<(u64, u64, u64), ReplayError> {
        let (visible, in_flight) = self.counts(&self.queue_url).await?;
        Ok((visible, in_flight, self.depth().await?))
    }

    /// `ApproximateNumberOfMessages` and `ApproximateNumberOfMessagesNotVisible` of `url`.
    async fn counts(&self, url: &str) -> Result<(u64, u64), ReplayError> {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(sqs_error("GetQueueAttributes"))?
            .attributes
            .unwrap_or_default();
        let count = |name: &QueueAttributeName| {
            attributes
                .get(name)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count(&QueueAttributeName::ApproximateNumberOfMessages),
            count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    /// Every dead letter, each with why it failed; the queue is left as it was.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, ReplayError> {
        let letters = self.receive_all().await?;
        self.release(&letters).await?;
        Ok(letters)
    }

    /// Sends the dead letters back to the projector's queue: every one, or only `message_id`.
    /// An unknown `message_id` is an error, and nothing is moved.
    pub async fn redrive(&self, message_id: Option<&str>) -> Result<Redriven, ReplayError> {
        let letters = self.receive_all().await?;
        let (chosen, others): (Vec<_>, Vec<_>) = letters
            .into_iter()
            .partition(|letter| message_id.is_none_or(|id| letter.message_id == id));
        self.release(&others).await?;
        if let (Some(id), true) = (message_id, chosen.is_empty()) {
            return Err(ReplayError::Invalid(format!(
                "no message {id} in the dead-letter queue of {}",
                self.projection
            )));
        }
        let mut redriven = Redriven::default();
        for letter in &chosen {
            self.send_back(letter).await?;
            self.delete(letter).await?;
            redriven.moved.push(letter.message_id.clone());
        }
        Ok(redriven)
    }

    /// Deletes every dead letter and its failure item; returns how many there were.
    pub async fn purge(&self) -> Result<usize, ReplayError> {
        let letters = self.receive_all().await?;
        for letter in &letters {
            self.delete(letter).await?;
        }
        Ok(letters.len())
    }

    /// Sends `letter` to the projector's queue as it was first sent (step one of a redrive).
    pub async fn send_back(&self, letter: &DeadLetter) -> Result<(), ReplayError> {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&letter.body)
            .send()
            .await
            .map_err(sqs_error("SendMessage"))?;
        Ok(())
    }

    /// Deletes `letter` from the dead-letter queue, then its failure item.
    async fn delete(&self, letter: &DeadLetter) -> Result<(), ReplayError> {
        delete_message(&self.sqs, &self.dlq_url, &letter.receipt_handle).await?;
        self.dynamodb
            .delete_item()
            .table_name(&self.failures_table)
            .key(
                schema::checkpoints::PK,
                AttributeValue::S(failures::key(
                    self.projection,
                    letter.event.as_ref(),
                    &letter.message_id,
                )),
            )
            .send()
            .await
            .map_err(store_error("deleting a failure item"))?;
        Ok(())
    }

    /// Receives every message of the dead-letter queue, each held for [`HOLD`].
    async fn receive_all(&self) -> Result<Vec<DeadLetter>, ReplayError> {
        let mut letters = Vec::new();
        for message in receive_all(&self.sqs, &self.dlq_url).await? {
            letters.push(self.letter(message).await?);
        }
        Ok(letters)
    }

    async fn letter(&self, message: Message) -> Result<DeadLetter, ReplayError> {
        let body = message.body.clone().unwrap_or_default();
        let message_id = message.message_id.clone().unwrap_or_default();
        let event = parse_message(&body).ok().map(|event| EventRef {
            stream: event.stream_key(),
            sequence: event.sequence,
            event_type: event.event_type,
        });
        let sent_at_ms = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            .and_then(|t| t.parse().ok());
        let failure = self.failure(event.as_ref(), &message_id).await?;
        Ok(DeadLetter {
            message_id,
            event,
            sent_at_ms,
            failure,
            receipt_handle: message.receipt_handle.unwrap_or_default(),
            body,
        })
    }

    async fn failure(
        &self,
        event: Option<&EventRef>,
        message_id: &str,
    ) -> Result<Option<FailureRecord>, ReplayError> {
        let key = failures::key(self.projection, event, message_id);
        let item = self
            .dynamodb
            .get_item()
            .table_name(&self.failures_table)
            .key(schema::checkpoints::PK, AttributeValue::S(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("reading a failure item"))?
            .item;
        Ok(item.map(|item| {
            let number = |name: &str| events::views::number(&item, name).unwrap_or(0);
            FailureRecord {
                reason: text(&item, attr::REASON),
                receive_count: u32::try_from(number(attr::RECEIVE_COUNT)).unwrap_or(u32::MAX),
                failures: number(attr::FAILURES),
                first_failed_at_ms: number(attr::FIRST_FAILED_AT),
                last_failed_at_ms: number(attr::LAST_FAILED_AT),
            }
        }))
    }

    /// Makes `letters` visible again at once.
    async fn release(&self, letters: &[DeadLetter]) -> Result<(), ReplayError> {
        let handles: Vec<&str> = letters.iter().map(|l| l.receipt_handle.as_str()).collect();
        release(&self.sqs, &self.dlq_url, &handles).await
    }
}

/// The URL of the queue named `name`.
pub(crate) async fn queue_url(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> Result<String, ReplayError> {
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| {
            ReplayError::Invalid(format!("queue {name}: {}", common::error::one_line(&e)))
        })?
        .queue_url
        .ok_or_else(|| ReplayError::Invalid(format!("queue {name} has no URL")))
}

/// Receives every message of the queue at `url`, each held for [`HOLD`].
pub(crate) async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<Vec<Message>, ReplayError> {
    let mut all = Vec::new();
    let mut empty = 0;
    while empty < EMPTY_RECEIVES {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(HOLD.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(sqs_error("ReceiveMessage"))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
        } else {
            empty = 0;
            all.extend(messages);
        }
    }
    Ok(all)
}

/// Makes the messages of `receipt_handles` visible again at once.
pub(crate) async fn release(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    receipt_handles: &[&str],
) -> Result<(), ReplayError> {
    for chunk in receipt_handles.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect();
        sqs.change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sqs_error("ChangeMessageVisibilityBatch"))?;
    }
    Ok(())
}

/// Deletes the message of `receipt_handle` from the queue at `url`.
pub(crate) async fn delete_message(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    receipt_handle: &str,
) -> Result<(), ReplayError> {
    sqs.delete_message()
        .queue_url(url)
        .receipt_handle(receipt_handle)
        .send()
        .await
        .map_err(sqs_error("DeleteMessage"))?;
    Ok(())
}

/// `letters` of `projection` as `replay dlq list` prints them: one paragraph each.
pub fn render(projection: Projection, letters: &[DeadLetter]) -> String {
    let mut out = format!(
        "{projection}: {} dead letter{}\n",
        letters.len(),
        if letters.len() == 1 { "" } else { "s" }
    );
    for letter in letters {
        let event = letter.event.as_ref().map_or_else(
            || "not an event".to_owned(),
            |e| format!("{} sequence {} {}", e.stream, e.sequence, e.event_type),
        );
        out.push_str(&format!("\nmessage {}: {event}\n", letter.message_id));
        if let Some(sent) = letter.sent_at_ms {
            out.push_str(&format!(
                "  sent      {}\n",
                crate::rebuild::iso_millis(sent)
            ));
        }
        match &letter.failure {
            Some(f) => out.push_str(&format!(
                "  failed    {} time{}, first {}, last {}; received {} time{} at the last\n  why       {}\n",
                f.failures,
                if f.failures == 1 { "" } else { "s" },
                crate::rebuild::iso_millis(f.first_failed_at_ms),
                crate::rebuild::iso_millis(f.last_failed_at_ms),
                f.receive_count,
                if f.receive_count == 1 { "" } else { "s" },
                f.reason
            )),
            None => out.push_str("  why       not recorded (see the projector's log)\n"),
        }
    }
    out
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn sqs_error<E: std::error::Error>(
    operation: &'static str,
) -> impl FnOnce(E) -> ReplayError {
    move |e| ReplayError::Queue(format!("{operation}: {}", common::error::one_line(&e)))
}
