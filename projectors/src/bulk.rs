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

/// The last sequence folded per stream: which of an aggregate's events a fold takes next, and
/// the checkpoints the version gets.
#[derive(Clone, Debug, Default)]
pub struct Folded {
    last: BTreeMap<String, u64>,
    events: u64,
}

impl Folded {
    /// Of `events` (one aggregate's, in sequence order), those that follow the last folded
    /// one: earlier ones are skipped, and a gap ends the run (what follows it is left to the
    /// catch-up, which fills gaps from the log).
    pub fn next_run<'a>(&self, events: &'a [StoredEvent]) -> &'a [StoredEvent] {
        let Some(first) = events.first() else {
            return events;
        };
        let stream = first.stream_key();
        let last = self.last.get(&stream).copied().unwrap_or(0);
        let start = events.partition_point(|e| e.sequence <= last);
        let run = &events[start..];
        let end = run
            .iter()
            .enumerate()
            .position(|(i, e)| e.sequence != last + 1 + i as u64)
            .unwrap_or(run.len());
        if end < run.len() {
            tracing::warn!(%stream, last = last + end as u64, next = run[end].sequence, "a gap in a stream: the rest of it is left to the catch-up");
        }
        &run[..end]
    }

    /// Records that `event` was folded.
    pub fn record(&mut self, event: &StoredEvent) {
        self.last.insert(event.stream_key(), event.sequence);
        self.events += 1;
    }

    /// Events folded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Streams folded: one checkpoint each.
    pub fn streams(&self) -> u64 {
        self.last.len() as u64
    }

    /// The checkpoint items of `projector`'s streams, for `table`.
    pub fn checkpoint_items(&self, projector: &str, table: &str) -> Vec<(String, Item)> {
        self.last
            .iter()
            .map(|(stream, last)| {
                let item = HashMap::from([
                    (
                        checkpoints::PK.to_owned(),
                        s(checkpoints::key(projector, stream)),
                    ),
                    (checkpoints::LAST_SEQ.to_owned(), n(*last)),
                ]);
                (table.to_owned(), item)
            })
            .collect()
    }
}

/// A read model folded in memory, to be written into a fresh version.
#[derive(Debug)]
pub struct BulkBuild<P> {
    projector: P,
    memory: Memory,
    folded: Folded,
}

impl<P: ReadModel> BulkBuild<P> {
    pub fn new(projector: P) -> Self {
        Self {
            projector,
            memory: Memory::default(),
            folded: Folded::default(),
        }
    }

    pub fn projector(&self) -> &P {
        &self.projector
    }

    /// Folds events of one aggregate in sequence order ([`Folded::next_run`]). Returns the
    /// events folded.
    pub async fn fold(&mut self, events: &[StoredEvent]) -> Result<u64, ProjectionError> {
        let mut folded = 0;
        for event in self.folded.next_run(events) {
            if !self.projector.accepts(&event.aggregate_type) {
                continue;
            }
            let plan = self
                .projector
                .plan(&event.without_secrets(), &self.memory)
                .await?;
            self.memory.apply_plan(&plan)?;
            self.folded.record(event);
            folded += 1;
        }
        Ok(folded)
    }

    /// Events folded so far.
    pub fn folded(&self) -> u64 {
        self.folded.events()
    }

    /// Items the version will hold: the read model's and one checkpoint per stream.
    pub fn items(&self) -> u64 {
        self.memory.len() as u64 + self.folded.streams()
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
        let checkpoints = self
            .folded
            .checkpoint_items(self.projector.name(), checkpoints_table);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sequence: u64) -> StoredEvent {
        StoredEvent {
            aggregate_type: "User".into(),
            aggregate_id: "u1".into(),
            sequence,
            event_id: uuid::Uuid::new_v4(),
            event_type: "UserRenamed".into(),
            event_version: 1,
            payload: serde_json::json!({}),
            metadata: Default::default(),
            recorded_at: "2024-01-01T00:00:00.000Z".into(),
        }
    }

    fn sequences(run: &[StoredEvent]) -> Vec<u64> {
        run.iter().map(|e| e.sequence).collect()
    }

    #[test]
    fn a_run_starts_after_the_last_folded_event_and_stops_at_a_gap() {
        let mut folded = Folded::default();
        let events: Vec<StoredEvent> = [1, 2, 3, 5, 6].into_iter().map(event).collect();
        assert_eq!(sequences(folded.next_run(&events)), [1, 2, 3]);
        for e in &events[..2] {
            folded.record(e);
        }
        assert_eq!(sequences(folded.next_run(&events)), [3]);
        folded.record(&events[2]);
        assert!(folded.next_run(&events).is_empty(), "5 does not follow 3");
        let later: Vec<StoredEvent> = [2, 3, 4, 5].into_iter().map(event).collect();
        assert_eq!(sequences(folded.next_run(&later)), [4, 5]);
        assert_eq!((folded.events(), folded.streams()), (3, 1));
        let checkpoints = folded.checkpoint_items("users", "p-checkpoints");
        assert_eq!(checkpoints.len(), 1);
        assert_eq!(checkpoints[0].1.get("lastSeq"), Some(&n(3)));
        assert_eq!(
            checkpoints[0]
                .1
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
            Some("users#User#u1")
        );
    }
}
