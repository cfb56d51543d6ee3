//! SQS → function, as Lambda's event source mapping does it.

use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};
use aws_sdk_sqs::Client;
use tracing::Instrument;

use super::json::{sqs_event, sqs_event_message};
use super::util::{aws_error_text, invoke, retries, Stop};

/// First delay after a failed AWS call (doubles up to 5 s).
const AWS_BACKOFF: Duration = Duration::from_millis(100);
/// Wait after an empty receive when long polling is off (`wait_time` zero).
const SHORT_POLL_IDLE: Duration = Duration::from_millis(50);
/// Tries of a DeleteMessageBatch / ChangeMessageVisibilityBatch before giving up (the
/// message then comes back after its visibility timeout: at least once, never lost).
const BATCH_CALL_TRIES: u32 = 5;

/// An SQS queue → function mapping, with Lambda's semantics:
///
/// * Long-polls ReceiveMessage (`batch_size` 1..=10 messages, `wait_time` up to 20 s) asking
///   for every system attribute and message attribute, builds Lambda's SQS event and calls
///   the handler.
/// * `Ok` with no `batchItemFailures`: every message is deleted (DeleteMessageBatch).
///   With `batchItemFailures`: every other message is deleted. `Err`, a panic, or an entry
///   naming no message of the batch (as Lambda treats it): none is deleted.
/// * A failed message stays on the queue and comes back when its visibility timeout ends
///   (`retry_delay`, if set, shortens that with ChangeMessageVisibilityBatch). The queue's
///   own RedrivePolicy moves a message that keeps failing to its DLQ.
/// * One batch in flight per mapping (like a mapping with maximum concurrency 1): batches
///   are processed in receive order.
/// * AWS errors are logged and retried with a capped backoff. Shutdown is checked between
///   batches: a receive already waiting finishes (at most `wait_time`) and what it returned
///   is processed before the mapping stops.
#[derive(Clone, Debug)]
pub struct QueueMapping {
    pub queue_url: String,
    pub queue_arn: String,
    /// Most messages per invocation, 1..=10 (default 10).
    pub batch_size: usize,
    /// Long poll wait of each ReceiveMessage (default 1 s, at most 20 s), in whole seconds
    /// (rounded down). Zero is short polling, with 50 ms between empty receives.
    pub wait_time: Duration,
    /// Visibility timeout of received messages; `None` = the queue's.
    pub visibility_timeout: Option<Duration>,
    /// Visibility given to failed messages (how soon they come back); `None` = leave them
    /// invisible for the rest of their visibility timeout, as Lambda does.
    pub retry_delay: Option<Duration>,
    /// `awsRegion` in the events; `None` = the SQS client's region.
    pub aws_region: Option<String>,
}

impl QueueMapping {
    /// A mapping with Lambda's defaults.
    pub fn new(queue_url: impl Into<String>, queue_arn: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            queue_arn: queue_arn.into(),
            batch_size: 10,
            wait_time: Duration::from_secs(1),
            visibility_timeout: None,
            retry_delay: None,
            aws_region: None,
        }
    }

    /// Polls the queue and calls `handler` with each batch until `shutdown` completes.
    pub async fn run<H, Fut, E>(self, sqs: Client, handler: H, shutdown: impl Future)
    where
        H: Fn(SqsEvent) -> Fut,
        Fut: Future<Output = Result<SqsBatchResponse, E>>,
        E: Display,
    {
        let region = self
            .aws_region
            .clone()
            .or_else(|| sqs.config().region().map(|r| r.as_ref().to_owned()))
            .or_else(|| self.queue_arn.split(':').nth(3).map(str::to_owned))
            .unwrap_or_default();
        let mut stop = Stop::new(shutdown);
        let mut backoff = retries(AWS_BACKOFF);
        tracing::info!(queue_url = %self.queue_url, batch_size = self.batch_size, "queue mapping started");
        while !stop.requested() {
            let messages = match self.receive(&sqs).await {
                Ok(messages) => {
                    backoff.reset();
                    messages
                }
                Err(error) => {
                    tracing::warn!(queue_url = %self.queue_url, error = %error, "ReceiveMessage failed; retrying");
                    if stop.sleep(backoff.fail()).await {
                        break;
                    }
                    continue;
                }
            };
            if messages.is_empty() {
                if self.wait_time.is_zero() && stop.sleep(SHORT_POLL_IDLE).await {
                    break;
                }
                continue;
            }
            let span = tracing::info_span!(
                "esm.queue.batch",
                queue_arn = %self.queue_arn,
                size = messages.len(),
            );
            self.process(&sqs, &handler, &region, messages)
                .instrument(span)
                .await;
        }
        tracing::info!(queue_url = %self.queue_url, "queue mapping stopped");
    }

    async fn receive(&self, sqs: &Client) -> anyhow::Result<Vec<Message>> {
        let wait = self.wait_time.as_secs().min(20);
        let mut request = sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(self.batch_size.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(i32::try_from(wait).unwrap_or(20))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All");
        if let Some(visibility) = self.visibility_timeout {
            request = request.visibility_timeout(seconds(visibility));
        }
        let output = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ReceiveMessage: {}", aws_error_text(&e)))?;
        Ok(output.messages.unwrap_or_default())
    }

    async fn process<H, Fut, E>(
        &self,
        sqs: &Client,
        handler: &H,
        region: &str,
        messages: Vec<Message>,
    ) where
        H: Fn(SqsEvent) -> Fut,
        Fut: Future<Output = Result<SqsBatchResponse, E>>,
        E: Display,
    {
        // Messages without an id or receipt handle cannot be acknowledged: never delivered.
        let messages: Vec<Message> = messages
            .into_iter()
            .filter(|m| {
                let usable = m.message_id().is_some() && m.receipt_handle().is_some();
                if !usable {
                    tracing::error!(message = ?m, "message without id or receipt handle ignored");
                }
                usable
            })
            .collect();
        let mut records: Vec<SqsMessage> = Vec::with_capacity(messages.len());
        let mut failed: HashSet<String> = HashSet::new();
        for message in &messages {
            match sqs_event_message(message, &self.queue_arn, region) {
                Ok(record) => records.push(record),
                Err(error) => {
                    tracing::error!(message_id = ?message.message_id(), error = %error, "message cannot be converted to a Lambda event; left on the queue");
                    failed.insert(message.message_id().unwrap_or_default().to_owned());
                }
            }
        }
        let ids: HashSet<&str> = messages.iter().filter_map(Message::message_id).collect();

        if !records.is_empty() {
            let started = Instant::now();
            match invoke(handler, sqs_event(records)).await {
                Ok(response) => {
                    let reported: Vec<&str> = response
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.as_str())
                        .collect();
                    if let Some(bad) = reported.iter().find(|id| !ids.contains(**id)) {
                        tracing::warn!(item_identifier = %bad, "batchItemFailures names no message of the batch: the whole batch failed");
                        failed.extend(ids.iter().map(|id| (*id).to_owned()));
                    } else {
                        if !reported.is_empty() {
                            tracing::warn!(failed = reported.len(), "partial batch failure");
                        }
                        failed.extend(reported.iter().map(|id| (*id).to_owned()));
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "function error: no message of the batch deleted");
                    failed.extend(ids.iter().map(|id| (*id).to_owned()));
                }
            }
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis(),
                failed = failed.len(),
                "batch processed"
            );
        }

        let (retry, done): (Vec<&Message>, Vec<&Message>) = messages
            .iter()
            .partition(|m| failed.contains(m.message_id().unwrap_or_default()));
        self.delete(sqs, &done).await;
        if let Some(delay) = self.retry_delay {
            self.change_visibility(sqs, &retry, delay).await;
        }
    }

    async fn delete(&self, sqs: &Client, messages: &[&Message]) {
        for chunk in messages.chunks(10) {
            let mut entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            let mut backoff = retries(AWS_BACKOFF);
            for attempt in 1..=BATCH_CALL_TRIES {
                if entries.is_empty() {
                    break;
                }
                let result = sqs
                    .delete_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries.clone()))
                    .send()
                    .await;
                match result {
                    Ok(output) => {
                        let retry: HashSet<&str> = output
                            .failed()
                            .iter()
                            .filter(|f| {
                                tracing::warn!(id = f.id(), code = f.code(), message = ?f.message(), sender_fault = f.sender_fault(), "DeleteMessageBatch entry failed");
                                !f.sender_fault()
                            })
                            .map(|f| f.id())
                            .collect();
                        entries.retain(|e| retry.contains(e.id()));
                    }
                    Err(error) => {
                        tracing::warn!(attempt, error = %aws_error_text(&error), "DeleteMessageBatch failed");
                    }
                }
                if !entries.is_empty() && attempt < BATCH_CALL_TRIES {
                    tokio::time::sleep(backoff.fail()).await;
                }
            }
            if !entries.is_empty() {
                tracing::error!(
                    count = entries.len(),
                    "messages not deleted: they will be delivered again"
                );
            }
        }
    }

    async fn change_visibility(&self, sqs: &Client, messages: &[&Message], delay: Duration) {
        for chunk in messages.chunks(10) {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .visibility_timeout(seconds(delay))
                        .build()
                        .ok()
                })
                .collect();
            let mut backoff = retries(AWS_BACKOFF);
            for attempt in 1..=BATCH_CALL_TRIES {
                let result = sqs
                    .change_message_visibility_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries.clone()))
                    .send()
                    .await;
                match result {
                    Ok(output) => {
                        for f in output.failed() {
                            tracing::warn!(id = f.id(), code = f.code(), message = ?f.message(), "ChangeMessageVisibilityBatch entry failed");
                        }
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(attempt, error = %aws_error_text(&error), "ChangeMessageVisibilityBatch failed");
                        if attempt < BATCH_CALL_TRIES {
                            tokio::time::sleep(backoff.fail()).await;
                        }
                    }
                }
            }
        }
    }
}

/// Whole seconds, rounded up, as SQS wants them (0..=43200).
fn seconds(duration: Duration) -> i32 {
    let mut secs = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        secs += 1;
    }
    i32::try_from(secs.min(43_200)).unwrap_or(43_200)
}
