//! Waiting until projections have applied positions: what a read sent with
//! `conduit-min-position` does before it reads, and what a write does before it answers.
//!
//! For every position and every projection asked for that applies the position's aggregate
//! type, the wait reads that projection's checkpoint of the stream (see [`checkpoints`], in the
//! checkpoints table of the projection's active version) strongly consistently until it has
//! reached the position's sequence: every 10 ms at first, doubling to 100 ms, until the bound
//! passes. Nothing is written; the projectors alone move checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tokio::time::Instant;

use crate::error::one_line;
use crate::projections::{checkpoints, ActiveVersions, Position, Projection};

/// The first pause between two looks at the checkpoints; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(100);

/// How many times a wait looks at each checkpoint when it is applied `lag` after the wait
/// starts: once at once, then after each pause of [`FIRST_POLL`] doubling to [`MAX_POLL`],
/// until a look comes at or after `lag`. Each look is one strongly consistent `GetItem` (1 read
/// unit for a checkpoint item), so this is what a wait costs in reads per checkpoint.
pub fn looks_until(lag: Duration) -> u32 {
    let mut looks = 1;
    let mut at = Duration::ZERO;
    let mut pause = FIRST_POLL;
    while at < lag {
        at += pause;
        pause = (pause * 2).min(MAX_POLL);
        looks += 1;
    }
    looks
}

/// Reads the projections' checkpoints to tell when positions are applied.
#[derive(Clone, Debug)]
pub struct Applied {
    client: Client,
    active: ActiveVersions,
}

/// One checkpoint to wait for: the projection, its table and key, the sequence it must reach.
#[derive(Debug)]
struct Awaited {
    projection: Projection,
    table: String,
    key: String,
    sequence: u64,
}

impl Applied {
    pub fn new(client: Client, active: ActiveVersions) -> Self {
        Self { client, active }
    }

    /// Waits until every projection of `projections` that applies a position's aggregate type
    /// has applied that position, or `bound` has passed. Returns the projections still behind
    /// then (none: every position is applied); `Err` (one line) when a checkpoint could not be
    /// read.
    #[tracing::instrument(skip_all, fields(positions = positions.len()))]
    pub async fn wait(
        &self,
        positions: &[Position],
        projections: &[Projection],
        bound: Duration,
    ) -> Result<BTreeSet<Projection>, String> {
        let deadline = Instant::now() + bound;
        let mut pending = self.checkpoints(positions, projections).await?;
        let mut pause = FIRST_POLL;
        loop {
            let looks = pending
                .iter()
                .map(|awaited| self.applied_through(&awaited.table, &awaited.key));
            let applied = futures::future::try_join_all(looks).await?;
            let mut applied = applied.into_iter();
            pending.retain(|awaited| applied.next().is_none_or(|seq| seq < awaited.sequence));
            let now = Instant::now();
            if pending.is_empty() || now >= deadline {
                return Ok(pending.iter().map(|awaited| awaited.projection).collect());
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// The checkpoints to wait for, one per (stream, projection) with its highest sequence.
    async fn checkpoints(
        &self,
        positions: &[Position],
        projections: &[Projection],
    ) -> Result<Vec<Awaited>, String> {
        let mut wanted: BTreeMap<(Projection, String), u64> = BTreeMap::new();
        for projection in projections {
            for position in positions {
                if projection.accepts(&position.aggregate_type) {
                    let key = checkpoints::key(projection.name(), &position.stream_key());
                    let sequence = wanted.entry((*projection, key)).or_default();
                    *sequence = (*sequence).max(position.sequence);
                }
            }
        }
        let mut tables: BTreeMap<Projection, String> = BTreeMap::new();
        let mut awaited = Vec::with_capacity(wanted.len());
        for ((projection, key), sequence) in wanted {
            let table = match tables.get(&projection) {
                Some(table) => table.clone(),
                None => {
                    let table = self.active.checkpoints_table(projection).await?;
                    tables.insert(projection, table.clone());
                    table
                }
            };
            awaited.push(Awaited {
                projection,
                table,
                key,
                sequence,
            });
        }
        Ok(awaited)
    }

    /// The last sequence `key`'s checkpoint has applied (0 without one), strongly consistent.
    async fn applied_through(&self, table: &str, key: &str) -> Result<u64, String> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key(checkpoints::PK, AttributeValue::S(key.to_owned()))
            .projection_expression("#l")
            .expression_attribute_names("#l", checkpoints::LAST_SEQ)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| format!("reading checkpoint {key}: {}", one_line(&e)))?;
        Ok(output
            .item()
            .and_then(|item| item.get(checkpoints::LAST_SEQ))
            .and_then(|value| value.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_follow_the_doubling_pauses() {
        // Looks at 0, 10, 30, 70, 150, 250, 350 ms...
        assert_eq!(looks_until(Duration::ZERO), 1);
        assert_eq!(looks_until(Duration::from_millis(10)), 2);
        assert_eq!(looks_until(Duration::from_millis(11)), 3);
        assert_eq!(looks_until(Duration::from_millis(70)), 4);
        assert_eq!(looks_until(Duration::from_millis(300)), 7);
        assert_eq!(looks_until(Duration::from_millis(1_000)), 14);
    }
}
