//! The projector runtime: applies each aggregate's events in sequence exactly once, whatever order and how often the queue delivers them.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use common::backoff::Backoff;
use common::config::TableNames;
use events::views::checkpoints;
use events::{EventStore, StoredEvent, Tables};
use futures::stream::{self, StreamExt};
use serde::Deserialize;

use crate::failures::{EventRef, Failed};

/// How many aggregates of one batch are projected at once.
const CONCURRENT_STREAMS: usize = 8;
/// How often a lost checkpoint race or a transaction conflict is tried again before the message
/// is handed back to the queue.
const CHECKPOINT_RETRIES: usize = 6;
/// The first pause after a transaction conflict; it doubles with each further conflict.
const CONFLICT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));

/// Why a projection step failed. Every variant fails the message, so the queue redelivers it
/// and, after its receive limit, moves it to the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The message is not an event (a poison message).
    #[error("unreadable message: {0}")]
    Unreadable(String),
    /// The event cannot be applied (unknown type or version, bad payload).
    #[error("cannot apply {event_type} v{version}: {reason}")]
    Unsupported {
        event_type: String,
        version: u32,
        reason: String,
    },
    /// DynamoDB could not be reached or refused the write.
    #[error("read model unavailable: {0}")]
    Unavailable(String),
    /// Other projector instances kept moving the checkpoint, or kept writing the same items
    /// (a popular article's favorites count), or held a lease the event needs.
    #[error("{0} kept moving or stayed busy")]
    Contended(String),
    /// The event's work is larger than one invocation should do: its progress is saved and
    /// the redelivered message continues from there.
    #[error("paused: {0}")]
    Paused(String),
}

/// One read model: which events it wants and the writes each one causes.
pub trait Projector: Send + Sync {
    /// Names the projector in checkpoints and logs.
    fn name(&self) -> &'static str;

    /// Whether events of this aggregate type concern this projector.
    fn accepts(&self, aggregate_type: &str) -> bool;

    /// The writes that apply `event` to the read model. They run in one transaction with the
    /// checkpoint, so they must be idempotent only with respect to that transaction. Work too
    /// large for one transaction (a fan-out) may be written before returning, provided it is
    /// idempotent: a failure before the checkpoint moves repeats it.
    fn effects(
        &self,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<Vec<TransactWriteItem>, ProjectionError>> + Send;

    /// Called when the transaction made of `actions` (from [`Projector::effects`], plus the
    /// checkpoint) did not commit, or may not have: gives back whatever `effects` took outside
    /// that transaction, such as a lease its commit would have released.
    fn abandoned(
        &self,
        _event: &StoredEvent,
        _actions: &[TransactWriteItem],
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What became of one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied, with `filled` earlier events read from the store to close a gap.
    Applied { filled: u64 },
    /// Already applied: a duplicate delivery.
    Duplicate,
    /// Not for this projector.
    Ignored,
}

/// What a [`ProjectorRuntime::catch_up`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Aggregates of the projector's types found in the log.
    pub streams: usize,
    /// Events that had not been applied and now are.
    pub applied: u64,
}

/// Runs a [`Projector`] with per-aggregate checkpoints.
#[derive(Clone, Debug)]
pub struct ProjectorRuntime<P> {
    projector: P,
    client: Client,
    store: EventStore,
    checkpoints_table: String,
}

/// The SNS notification that wraps each message on a subscribed queue.
#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

/// Reads the event out of a queue message body (an SNS envelope, or a raw-delivered event).
pub fn parse_message(body: &str) -> Result<StoredEvent, ProjectionError> {
    let unreadable = |e: serde_json::Error| ProjectionError::Unreadable(e.to_string());
    let inner = match serde_json::from_str::<SnsEnvelope>(body) {
        Ok(envelope) if envelope.kind == "Notification" => envelope.message,
        _ => body.to_owned(),
    };
    serde_json::from_str(&inner).map_err(unreadable)
}

/// SQS's `ApproximateReceiveCount` of a delivered message.
pub fn receive_count(record: &SqsMessage) -> Option<u32> {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
}

/// The batch response that hands `failed` back (each message once).
pub fn response_of(failed: &[Failed]) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let unique: HashSet<&str> = failed.iter().map(|f| f.message_id.as_str()).collect();
    for id in unique {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id.to_owned();
        response.batch_item_failures.push(failure);
    }
    response
}

/// A failed request as a [`ProjectionError::Unavailable`], told in one line: the error and its
/// sources, not the SDK's debug dump of the raw response (headers and body).
pub(crate) fn unavailable<E: std::error::Error>(error: E) -> ProjectionError {
    ProjectionError::Unavailable(common::error::one_line(&error))
}

impl<P: Projector> ProjectorRuntime<P> {
    pub fn new(projector: P, client: Client, store: EventStore, checkpoints_table: String) -> Self {
        Self {
            projector,
            client,
            store,
            checkpoints_table,
        }
    }

    /// The runtime of `projector` over the tables `tables` names: its gaps are read from the
    /// events table, its checkpoints kept in the checkpoints table.
    pub fn over_tables(projector: P, client: &Client, tables: &TableNames) -> Self {
        let store = EventStore::new(client.clone(), Tables::of(tables));
        Self::new(projector, client.clone(), store, tables.checkpoints.clone())
    }

    pub fn projector(&self) -> &P {
        &self.projector
    }

    /// Handles one SQS batch (see [`ProjectorRuntime::project_batch`]): the failed messages
    /// are handed back.
    pub async fn handle_sqs(&self, batch: SqsEvent) -> SqsBatchResponse {
        response_of(&self.project_batch(batch).await)
    }

    /// Applies one SQS batch: each aggregate's messages in sequence order, aggregates in
    /// parallel. A failed message fails the later messages of its aggregate too (they would
    /// only fill the same gap and fail the same way); other aggregates go on. Returns the
    /// messages that failed, each with why.
    pub async fn project_batch(&self, batch: SqsEvent) -> Vec<Failed> {
        let mut failed: Vec<Failed> = Vec::new();
        let mut streams: BTreeMap<String, Vec<(Failed, StoredEvent)>> = BTreeMap::new();
        for record in batch.records {
            let mut message = Failed {
                message_id: record.message_id.clone().unwrap_or_default(),
                event: None,
                reason: String::new(),
                receive_count: receive_count(&record),
            };
            match parse_message(record.body.as_deref().unwrap_or_default()) {
                Ok(event) => {
                    message.event = Some(EventRef {
                        stream: event.stream_key(),
                        sequence: event.sequence,
                        event_type: event.event_type.clone(),
                    });
                    streams
                        .entry(event.stream_key())
                        .or_default()
                        .push((message, event));
                }
                Err(error) => {
                    tracing::error!(projector = self.projector.name(), message_id = %message.message_id, %error, "poison message");
                    message.reason = error.to_string();
                    failed.push(message);
                }
            }
        }
        let results: Vec<Vec<Failed>> = stream::iter(streams.into_values())
            .map(|mut messages| async move {
                messages.sort_by_key(|(_, event)| event.sequence);
                let mut failed: Vec<Failed> = Vec::new();
                for (mut message, event) in messages {
                    if let Some(first) = failed.first() {
                        message.reason = format!(
                            "an earlier event of its stream failed (sequence {}): {}",
                            first.event.as_ref().map_or(0, |e| e.sequence),
                            first.reason
                        );
                        failed.push(message);
                        continue;
                    }
                    if let Err(error) = self.project(&event).await {
                        tracing::error!(
                            projector = self.projector.name(),
                            message_id = %message.message_id,
                            stream = %event.stream_key(),
                            sequence = event.sequence,
                            %error,
                            "projection failed"
                        );
                        message.reason = error.to_string();
                        failed.push(message);
                    }
                }
                failed
            })
            .buffer_unordered(CONCURRENT_STREAMS)
            .collect()
            .await;
        failed.extend(results.into_iter().flatten());
        failed
    }

    /// Applies `event` exactly once: a duplicate is skipped, a gap before it is filled from the
    /// events table first.
    #[tracing::instrument(skip_all, fields(projector = self.projector.name(), stream = %event.stream_key(), sequence = event.sequence))]
    pub async fn project(&self, event: &StoredEvent) -> Result<Outcome, ProjectionError> {
        if !self.projector.accepts(&event.aggregate_type) {
            return Ok(Outcome::Ignored);
        }
        self.apply_through(
            &event.aggregate_type,
            &event.aggregate_id,
            event.sequence,
            Some(event),
        )
        .await
    }

    /// Brings one aggregate's projection up to `target` (reading what is missing from the
    /// store). `known` is the event at `target` when the caller already has it.
    pub async fn apply_through(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        target: u64,
        known: Option<&StoredEvent>,
    ) -> Result<Outcome, ProjectionError> {
        let known = known.map(std::slice::from_ref).unwrap_or_default();
        self.apply_known(aggregate_type, aggregate_id, target, known)
            .await
            .map(|(outcome, _)| outcome)
    }

    /// Applies `events`, consecutive events of one aggregate in sequence order (a replay's
    /// scan page), exactly once each, reading the checkpoint once for all of them rather than
    /// once per event; a gap before them is filled from the store. Returns how many events
    /// were applied now (the others were applied already).
    pub async fn project_run(&self, events: &[StoredEvent]) -> Result<u64, ProjectionError> {
        let Some(last) = events.last() else {
            return Ok(0);
        };
        if !self.projector.accepts(&last.aggregate_type) {
            return Ok(0);
        }
        let consecutive = events
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence + 1 && w[1].stream_key() == w[0].stream_key());
        if !consecutive {
            return Err(ProjectionError::Unreadable(format!(
                "{}: a run of events must be consecutive",
                last.stream_key()
            )));
        }
        self.apply_known(
            &last.aggregate_type,
            &last.aggregate_id,
            last.sequence,
            events,
        )
        .await
        .map(|(_, applied)| applied)
    }

    /// Brings one aggregate's projection up to `target`; `known` are consecutive events the
    /// caller has, ending at `target` (possibly none); the rest comes from the store. Returns
    /// the outcome and how many events were applied now.
    async fn apply_known(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        target: u64,
        known: &[StoredEvent],
    ) -> Result<(Outcome, u64), ProjectionError> {
        let stream = events::envelope::stream_key(aggregate_type, aggregate_id);
        let first_known = known.first().map_or(target + 1, |e| e.sequence);
        // Events applied by earlier attempts (before a lost race) count too.
        let mut applied = 0;
        for attempt in 0..CHECKPOINT_RETRIES {
            let last = self.last_applied(&stream).await?;
            if target <= last {
                return Ok((Outcome::Duplicate, applied));
            }
            // Everything after the checkpoint that the caller did not hand us comes from the store.
            let missing_upto = first_known.saturating_sub(1).min(target);
            let mut pending = if missing_upto > last {
                self.store
                    .read_range(aggregate_type, aggregate_id, last + 1, Some(missing_upto))
                    .await
                    .map_err(unavailable)?
            } else {
                Vec::new()
            };
            let filled = pending.len() as u64;
            pending.extend(known.iter().filter(|e| e.sequence > last).cloned());
            let contiguous = pending
                .iter()
                .enumerate()
                .all(|(i, e)| e.sequence == last + 1 + i as u64);
            if !contiguous || pending.last().map(|e| e.sequence) != Some(target) {
                return Err(ProjectionError::Unavailable(format!(
                    "{stream}: events {} to {target} are not all in the store yet",
                    last + 1
                )));
            }
            let mut done = true;
            for event in &pending {
                match self.apply_one(&event.without_secrets()).await? {
                    Attempt::Applied => applied += 1,
                    Attempt::CheckpointMoved => {
                        done = false;
                        break;
                    }
                    Attempt::Conflicted => {
                        // Another transaction held one of our items: wait a little, jittered so
                        // that the writers of a hot item spread out, then start over.
                        let failures = attempt as u32 + 1;
                        let pause = CONFLICT_BACKOFF.ceiling(failures);
                        tokio::time::sleep(pause + CONFLICT_BACKOFF.jittered(failures)).await;
                        done = false;
                        break;
                    }
                }
            }
            if done {
                if filled > 0 && known.len() <= 1 {
                    tracing::info!(filled, "filled a gap from the events table");
                }
                return Ok((Outcome::Applied { filled }, applied));
            }
        }
        Err(ProjectionError::Contended(format!(
            "the checkpoint of {stream}"
        )))
    }

    /// Brings every aggregate this projector accepts up to the end of its stream, reading the
    /// whole events table. Used when the local stack starts: messages lost with a stopped
    /// emulator are made good from the log, duplicates cost one checkpoint read.
    pub async fn catch_up(&self) -> Result<CatchUp, ProjectionError> {
        // In parallel segments, one page each as far as the table's size tells: DynamoDB
        // Local reads a whole segment for every page, so one segment over 100,000 events
        // read the table 40 times and ran out of heap.
        let events = &self.store.tables().events;
        let segments = common::tables::scan_segments(&self.client, events).await;
        let heads: std::sync::Mutex<BTreeMap<(String, String), u64>> = Default::default();
        common::tables::each_segment::<ProjectionError, _, _>(segments, |segment| {
            let heads = &heads;
            async move {
                let mut pages = self
                    .client
                    .scan()
                    .table_name(events)
                    .segment(segment as i32)
                    .total_segments(segments as i32)
                    .projection_expression("aggregateType, aggregateId, sk")
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(unavailable)?;
                    let mut heads = heads.lock().unwrap_or_else(|e| e.into_inner());
                    for item in page.items() {
                        let (Some(kind), Some(id), Some(seq)) = (
                            events::views::text(item, "aggregateType"),
                            events::views::text(item, "aggregateId"),
                            events::views::number(item, schema::events::SK),
                        ) else {
                            continue;
                        };
                        if self.projector.accepts(&kind) {
                            let head = heads.entry((kind, id)).or_default();
                            *head = (*head).max(seq);
                        }
                    }
                }
                Ok(())
            }
        })
        .await?;
        let heads = heads.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut report = CatchUp {
            streams: heads.len(),
            ..CatchUp::default()
        };
        for ((kind, id), head) in heads {
            if let Outcome::Applied { filled } = self.apply_through(&kind, &id, head, None).await? {
                report.applied += filled;
            }
        }
        Ok(report)
    }

    /// The last sequence applied for a stream (0 when none).
    pub async fn last_applied(&self, stream: &str) -> Result<u64, ProjectionError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.checkpoints_table)
            .key(
                checkpoints::PK,
                AttributeValue::S(checkpoints::key(self.projector.name(), stream)),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output
            .item()
            .and_then(|item| events::views::number(item, checkpoints::LAST_SEQ))
            .unwrap_or(0))
    }

    /// Applies one event together with its checkpoint move. Nothing was written unless
    /// [`Attempt::Applied`].
    async fn apply_one(&self, event: &StoredEvent) -> Result<Attempt, ProjectionError> {
        let mut actions = self.projector.effects(event).await?;
        let previous = event.sequence - 1;
        let checkpoint = Update::builder()
            .table_name(&self.checkpoints_table)
            .key(
                checkpoints::PK,
                AttributeValue::S(checkpoints::key(self.projector.name(), &event.stream_key())),
            )
            .update_expression("SET #last = :seq")
            .condition_expression(if previous == 0 {
                "attribute_not_exists(#last)"
            } else {
                "#last = :prev"
            })
            .expression_attribute_names("#last", checkpoints::LAST_SEQ)
            .expression_attribute_values(":seq", AttributeValue::N(event.sequence.to_string()));
        let checkpoint = if previous == 0 {
            checkpoint
        } else {
            checkpoint.expression_attribute_values(":prev", AttributeValue::N(previous.to_string()))
        };
        let checkpoint = checkpoint.build().map_err(unavailable)?;
        let checkpoint_index = actions.len();
        actions.push(TransactWriteItem::builder().update(checkpoint).build());
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions.clone()))
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Attempt::Applied),
            Err(error) => error,
        };
        self.projector.abandoned(event, &actions).await;
        match cancellation_reasons(&error).and_then(|reasons| retryable(reasons, checkpoint_index))
        {
            Some(attempt) => Ok(attempt),
            None => Err(unavailable(error)),
        }
    }
}

/// What became of one transaction of [`ProjectorRuntime::apply_one`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    Applied,
    /// The checkpoint was not where we expected (another instance applied the event first).
    CheckpointMoved,
    /// Another transaction was writing one of the same items at the same moment.
    Conflicted,
}

fn cancellation_reasons(
    error: &SdkError<TransactWriteItemsError>,
) -> Option<&[CancellationReason]> {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            Some(cancelled.cancellation_reasons())
        }
        _ => None,
    }
}

/// Whether a cancelled transaction is worth trying again, and why; `None` when one of
/// the projector's own conditions failed (that is an error of the message).
fn retryable(reasons: &[CancellationReason], checkpoint_index: usize) -> Option<Attempt> {
    let code = |reason: &CancellationReason| reason.code().map(str::to_owned);
    let at_checkpoint = reasons.get(checkpoint_index).and_then(code);
    if matches!(
        at_checkpoint.as_deref(),
        Some("ConditionalCheckFailed" | "TransactionConflict")
    ) {
        return Some(Attempt::CheckpointMoved);
    }
    let codes: Vec<String> = reasons.iter().filter_map(code).collect();
    let conflict = codes.iter().any(|c| c == "TransactionConflict");
    let only_conflicts = codes
        .iter()
        .all(|c| c == "TransactionConflict" || c == "None");
    (conflict && only_conflicts).then_some(Attempt::Conflicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_events_out_of_sns_envelopes_and_raw_bodies() {
        let event = serde_json::json!({
            "aggregateType": "User", "aggregateId": "u1", "sequence": 2,
            "eventId": "7f8a5f4c-8f0e-4a59-9d0e-0c1c8e2b7a11", "eventType": "UserFollowed",
            "eventVersion": 1, "payload": {"followeeId": "u2"}, "recordedAt": "2024-01-01T00:00:00.000Z"
        });
        let envelope = serde_json::json!({
            "Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": event.to_string()
        });
        let parsed = parse_message(&envelope.to_string()).expect("envelope");
        assert_eq!(parsed.sequence, 2);
        assert_eq!(
            parse_message(&event.to_string()).expect("raw").aggregate_id,
            "u1"
        );
    }

    fn reasons(codes: &[&str]) -> Vec<CancellationReason> {
        codes
            .iter()
            .map(|code| CancellationReason::builder().code(*code).build())
            .collect()
    }

    #[test]
    fn a_failed_request_is_told_in_one_line_without_the_raw_response() {
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;

        let cancelled = TransactionCanceledException::builder()
            .message("Transaction cancelled [None, ConditionalCheckFailed, None]")
            .set_cancellation_reasons(Some(reasons(&["None", "ConditionalCheckFailed", "None"])))
            .build();
        let raw = Response::new(
            StatusCode::try_from(400).expect("status"),
            SdkBody::from(r#"{"__type":"TransactionCanceledException","raw-body-marker":1}"#),
        );
        let error: SdkError<TransactWriteItemsError, Response> = SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(cancelled),
            raw,
        );
        let ProjectionError::Unavailable(text) = unavailable(error) else {
            panic!("not an Unavailable");
        };
        assert!(
            text.contains("[None, ConditionalCheckFailed, None]"),
            "the reasons are told: {text}"
        );
        assert!(
            !text.contains("raw-body-marker") && !text.contains('\n'),
            "one line, no raw response: {text}"
        );
    }

    #[test]
    fn cancelled_transactions_are_retried_only_for_races() {
        // The checkpoint (last action) moved: re-read it.
        assert_eq!(
            retryable(&reasons(&["None", "ConditionalCheckFailed"]), 1),
            Some(Attempt::CheckpointMoved)
        );
        assert_eq!(
            retryable(&reasons(&["None", "TransactionConflict"]), 1),
            Some(Attempt::CheckpointMoved)
        );
        // Someone else was writing the same read-model item: try again after a pause.
        assert_eq!(
            retryable(&reasons(&["TransactionConflict", "None", "None"]), 2),
            Some(Attempt::Conflicted)
        );
        // A condition of the projector's own failed: an error of the message.
        assert_eq!(
            retryable(&reasons(&["ConditionalCheckFailed", "None"]), 1),
            None
        );
        assert_eq!(
            retryable(
                &reasons(&["ConditionalCheckFailed", "TransactionConflict", "None"]),
                2
            ),
            None
        );
        assert_eq!(retryable(&reasons(&["ValidationError", "None"]), 1), None);
        assert_eq!(retryable(&[], 0), None);
    }

    #[test]
    fn garbage_is_a_poison_message() {
        assert!(matches!(
            parse_message("not json"),
            Err(ProjectionError::Unreadable(_))
        ));
        assert!(matches!(
            parse_message(r#"{"Type":"Notification","Message":"{}"}"#),
            Err(ProjectionError::Unreadable(_))
        ));
    }
}
