//! Bulk: a fresh version of a read model built from whole streams, with no live writer on it: each aggregate's events folded in memory through the same plans the live runtime commits ([`crate::ops`]), then the resulting items written with `BatchWriteItem`, each aggregate's checkpoint after every item.
//!
//! Nothing else writes the version until it is switched to, so there are no checkpoint
//! conditions, transactions or leases: the fold is the only writer, and the live path's
//! convergence (every projection ends the same whatever order aggregates are applied in)
//! makes folding aggregate after aggregate equal to the live build.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use events::views::{checkpoints, n, s, Item};
use events::StoredEvent;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::batch::BATCH_WRITE_LIMIT;
use crate::ops::{Memory, ReadModel};
use crate::runtime::ProjectionError;

/// A read model folded in memory, to be written into a fresh version.
#[derive(Debug)]
pub struct BulkBuild<P> {
    projector: P,
    memory: Memory,
    /// The last sequence folded, per stream.
    checkpoints: BTreeMap<String, u64>,
    folded: u64,
}

impl<P: ReadModel> BulkBuild<P> {
    pub fn new(projector: P) -> Self {
        Self {
            projector,
            memory: Memory::default(),
            checkpoints: BTreeMap::new(),
            folded: 0,
        }
    }

    pub fn projector(&self) -> &P {
        &self.projector
    }

    /// Folds events of one aggregate in sequence order, from the one after the last folded
    /// (earlier ones are skipped). A gap stops the fold of that stream there: what follows it
    /// is left to the catch-up, which fills gaps from the log. Returns the events folded.
    pub async fn fold(&mut self, events: &[StoredEvent]) -> Result<u64, ProjectionError> {
        let mut folded = 0;
        for event in events {
            if !self.projector.accepts(&event.aggregate_type) {
                continue;
            }
            let stream = event.stream_key();
            let last = self.checkpoints.get(&stream).copied().unwrap_or(0);
            if event.sequence <= last {
                continue;
            }
            if event.sequence != last + 1 {
                tracing::warn!(%stream, last, next = event.sequence, "a gap in a stream: the rest of it is left to the catch-up");
                break;
            }
            let plan = self
                .projector
                .plan(&event.without_secrets(), &self.memory)
                .await?;
            self.memory.apply_plan(&plan)?;
            self.checkpoints.insert(stream, event.sequence);
            folded += 1;
        }
        self.folded += folded;
        Ok(folded)
    }

    /// Events folded so far.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// Items the version will hold: the read model's and one checkpoint per stream.
    pub fn items(&self) -> u64 {
        (self.memory.len() + self.checkpoints.len()) as u64
    }

    /// Writes every item into its table, then every checkpoint into `checkpoints_table`:
    /// [`BATCH_WRITE_LIMIT`] puts a `BatchWriteItem`, `in_flight` requests at once, what
    /// DynamoDB leaves unprocessed sent again with backoff ([`crate::batch::write`]).
    /// `written` is told each request's count. Returns the items written.
    pub async fn write(
        self,
        client: &Client,
        checkpoints_table: &str,
        in_flight: usize,
        written: impl Fn(u64) + Sync,
    ) -> Result<u64, ProjectionError> {
        let mut items: Vec<(String, Item)> = Vec::with_capacity(self.memory.len());
        for (table, table_items) in self.memory.tables() {
            items.extend(table_items.map(|item| (table.clone(), item.clone())));
        }
        let mut total = write_items(client, items, in_flight, &written).await?;
        let name = self.projector.name();
        let checkpoints: Vec<(String, Item)> = self
            .checkpoints
            .iter()
            .map(|(stream, last)| {
                let item = HashMap::from([
                    (
                        checkpoints::PK.to_owned(),
                        s(checkpoints::key(name, stream)),
                    ),
                    (checkpoints::LAST_SEQ.to_owned(), n(*last)),
                ]);
                (checkpoints_table.to_owned(), item)
            })
            .collect();
        total += write_items(client, checkpoints, in_flight, &written).await?;
        Ok(total)
    }
}

/// Puts `items` (table, item), [`BATCH_WRITE_LIMIT`] a request, `in_flight` requests at once.
pub async fn write_items(
    client: &Client,
    items: Vec<(String, Item)>,
    in_flight: usize,
    written: &(impl Fn(u64) + Sync),
) -> Result<u64, ProjectionError> {
    let total = items.len() as u64;
    let mut batches = Vec::with_capacity(items.len() / BATCH_WRITE_LIMIT + 1);
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let mut batch: HashMap<String, Vec<WriteRequest>> = HashMap::new();
        let mut count = 0u64;
        for (table, item) in items.by_ref().take(BATCH_WRITE_LIMIT) {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| ProjectionError::Unavailable(format!("a put request: {e}")))?;
            batch
                .entry(table)
                .or_default()
                .push(WriteRequest::builder().put_request(put).build());
            count += 1;
        }
        batches.push((batch, count));
    }
    stream::iter(batches)
        .map(|(batch, count)| async move {
            crate::batch::write(client, batch).await?;
            written(count);
            Ok::<(), ProjectionError>(())
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(total)
}
