//! `BatchWriteItem` that never drops a write: at most 25 per request, unprocessed items sent
//! again with jittered exponential backoff, and an error (the message is retried, the writes
//! are idempotent) if DynamoDB still leaves some after a bounded number of attempts.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::WriteRequest;
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};

use common::backoff::Backoff;

use crate::runtime::ProjectionError;

/// DynamoDB takes at most 25 writes in one `BatchWriteItem`.
pub const BATCH_WRITE_LIMIT: usize = 25;
/// Requests of one batch (the first and every resend of what was left unprocessed).
const ATTEMPTS: u32 = 8;
/// The pause before a resend, jittered so that throttled writers spread out.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(25), Duration::from_secs(1));

/// Writes `requests` (by table, at most [`BATCH_WRITE_LIMIT`] in all) with one
/// `BatchWriteItem`, then resends what DynamoDB left unprocessed until nothing is left.
pub async fn write(
    client: &Client,
    mut requests: HashMap<String, Vec<WriteRequest>>,
) -> Result<(), ProjectionError> {
    for attempt in 1..=ATTEMPTS {
        let output = client
            .batch_write_item()
            .set_request_items(Some(requests))
            .send()
            .await
            .map_err(crate::runtime::unavailable)?;
        requests = output.unprocessed_items.unwrap_or_default();
        requests.retain(|_, pending| !pending.is_empty());
        if requests.is_empty() {
            return Ok(());
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(BACKOFF.jittered(attempt)).await;
        }
    }
    let left: usize = requests.values().map(Vec::len).sum();
    Err(ProjectionError::Unavailable(format!(
        "{left} writes still unprocessed after {ATTEMPTS} attempts"
    )))
}

/// Writes every request of `table`, [`BATCH_WRITE_LIMIT`] per `BatchWriteItem`, with up to
/// `concurrency` requests in flight.
pub async fn write_all(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
    concurrency: usize,
) -> Result<(), ProjectionError> {
    let batches: Vec<HashMap<String, Vec<WriteRequest>>> = requests
        .chunks(BATCH_WRITE_LIMIT)
        .map(|chunk| HashMap::from([(table.to_owned(), chunk.to_vec())]))
        .collect();
    stream::iter(batches)
        .map(|batch| write(client, batch))
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}
