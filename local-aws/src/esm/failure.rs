//! The on-failure destination of a stream mapping: where records go once their retries are
//! exhausted (Lambda's `DestinationConfig.OnFailure`), so the shard can move on.

use std::sync::{Mutex, PoisonError};

use aws_sdk_dynamodbstreams::types::Record;

use super::BoxFuture;

/// Why records were given up on (Lambda's `requestContext.condition`).
pub const RETRY_ATTEMPTS_EXHAUSTED: &str = "RetryAttemptsExhausted";
/// A record that cannot be turned into Lambda's event shape (never delivered).
pub const RECORD_NOT_CONVERTIBLE: &str = "RecordNotConvertible";

/// What Lambda sends to an on-failure destination for a stream batch
/// (`DDBStreamBatchInfo` + `requestContext`), plus the records themselves, which the local
/// stack can afford to keep.
#[derive(Debug, Clone)]
pub struct StreamBatchFailure {
    /// [`RETRY_ATTEMPTS_EXHAUSTED`] or [`RECORD_NOT_CONVERTIBLE`].
    pub condition: &'static str,
    pub stream_arn: String,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub batch_size: usize,
    /// How many times the function was invoked with (the first of) these records.
    pub approximate_invoke_count: u32,
    /// The last function error (or the conversion error).
    pub last_error: String,
    /// The stream records given up on, as GetRecords returned them.
    pub records: Vec<Record>,
}

/// An on-failure destination. An `Err` is retried by the mapping (with backoff) before it
/// checkpoints past the records, so a destination that is down loses nothing.
pub trait OnFailure: Send + Sync {
    fn on_failure<'a>(
        &'a self,
        failure: &'a StreamBatchFailure,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Logs each failure with `tracing::error!` (the default destination).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogOnFailure;

impl OnFailure for LogOnFailure {
    fn on_failure<'a>(
        &'a self,
        failure: &'a StreamBatchFailure,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        tracing::error!(
            condition = failure.condition,
            stream_arn = %failure.stream_arn,
            shard_id = %failure.shard_id,
            start_sequence_number = %failure.start_sequence_number,
            end_sequence_number = %failure.end_sequence_number,
            batch_size = failure.batch_size,
            approximate_invoke_count = failure.approximate_invoke_count,
            last_error = %failure.last_error,
            "stream records given up on"
        );
        Box::pin(async { Ok(()) })
    }
}

/// Keeps every failure in memory (for tests and the local stack's inspection).
#[derive(Debug, Default)]
pub struct MemoryOnFailure {
    failures: Mutex<Vec<StreamBatchFailure>>,
}

impl MemoryOnFailure {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every failure received so far, oldest first.
    pub fn failures(&self) -> Vec<StreamBatchFailure> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl OnFailure for MemoryOnFailure {
    fn on_failure<'a>(
        &'a self,
        failure: &'a StreamBatchFailure,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(failure.clone());
        Box::pin(async { Ok(()) })
    }
}

/// Sends each failure to an SQS queue as Lambda sends it to an SQS on-failure destination:
/// `requestContext`, `responseContext`, `version`, `timestamp` and `DDBStreamBatchInfo` (the
/// records themselves are not in it: a redrive reads them from the stream).
#[derive(Debug, Clone)]
pub struct SqsOnFailure {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    /// `requestContext.functionArn`.
    pub function_arn: String,
}

/// The on-failure record Lambda writes for `failure`, at `timestamp` (RFC 3339).
pub fn destination_record(
    failure: &StreamBatchFailure,
    function_arn: &str,
    timestamp: &str,
) -> serde_json::Value {
    let arrival = |record: Option<&Record>| {
        record
            .and_then(|r| r.dynamodb.as_ref())
            .and_then(|d| d.approximate_creation_date_time)
            .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
    };
    serde_json::json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": function_arn,
            "condition": failure.condition,
            "approximateInvokeCount": failure.approximate_invoke_count,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": failure.last_error,
        },
        "version": "1.0",
        "timestamp": timestamp,
        "DDBStreamBatchInfo": {
            "shardId": failure.shard_id,
            "startSequenceNumber": failure.start_sequence_number,
            "endSequenceNumber": failure.end_sequence_number,
            "approximateArrivalOfFirstRecord": arrival(failure.records.first()),
            "approximateArrivalOfLastRecord": arrival(failure.records.last()),
            "batchSize": failure.batch_size,
            "streamArn": failure.stream_arn,
        },
    })
}

impl OnFailure for SqsOnFailure {
    fn on_failure<'a>(
        &'a self,
        failure: &'a StreamBatchFailure,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let record = destination_record(failure, &self.function_arn, &now);
            tracing::error!(
                condition = failure.condition,
                shard_id = %failure.shard_id,
                start_sequence_number = %failure.start_sequence_number,
                end_sequence_number = %failure.end_sequence_number,
                last_error = %failure.last_error,
                "stream records given up on; sent to the failures queue"
            );
            self.sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(record.to_string())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("SendMessage: {}", common::error::one_line(&e)))?;
            Ok(())
        })
    }
}
