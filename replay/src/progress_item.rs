//! A rebuild's progress item, `replay#<name>#v<n>` in the base checkpoints table: its phase,
//! whether its full pass began, the catch-up pass it is at and where its stream tail is, so
//! that `--resume` goes on where a killed rebuild stopped, `status` shows it and `remove`
//! forgets it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use common::clock::now_ms;
use common::projections::Projection;
use schema::checkpoints::PK;

use crate::progress::format_count;
use crate::tail::{ShardPosition, TailPositions};
use crate::{store_error, Replay, ReplayError};
use events::views::n;

/// Where a rebuild is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Full,
    CatchUp,
    Switch,
    Done,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Full => "full",
            Phase::CatchUp => "catch-up",
            Phase::Switch => "switch",
            Phase::Done => "done",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Phase::Full, Phase::CatchUp, Phase::Switch, Phase::Done]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// A rebuild's progress, kept in the base checkpoints table as `replay#<name>#v<n>`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressItem {
    pub projection: Projection,
    pub version: u32,
    pub phase: Phase,
    pub segments: u32,
    /// The active version when the rebuild started.
    pub previous: u32,
    /// Events in the table when counted.
    pub total: Option<u64>,
    /// When the full pass started (Unix ms).
    pub full_started_at: u64,
    /// Whether a full pass began, and so may have written into the version: one that did not
    /// finish goes on with its plan's units ([`Self::full_pass`]), or, with no plan (begun by
    /// an older `replay`), starts again on an emptied version.
    pub full_pass_started: bool,
    /// The full pass it is made in ([`crate::units::PassPlan`]), once it began.
    pub full_pass: Option<String>,
    /// The catch-up pass to run next (from 1).
    pub pass: u32,
    /// Its `recordedAt` bound (Unix ms).
    pub pass_since: Option<u64>,
    /// When it started, if it did (Unix ms).
    pub pass_started_at: Option<u64>,
    /// Where the stream tail was when the last catch-up pass had applied what it read
    /// (`tailStream`, `tailTakenAt`, and `tailShards`: shard id to the last sequence number
    /// read, `true` for a shard read to its end, `NULL` for one with nothing read yet).
    pub tail: Option<TailPositions>,
    /// Events (or stream records) read and applied by every pass so far.
    pub scanned: u64,
    pub applied: u64,
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    events::views::number(item, name)
}

impl ProgressItem {
    pub fn key(projection: Projection, version: u32) -> String {
        format!("replay#{}#v{version}", projection.name())
    }

    pub fn new(projection: Projection, version: u32, segments: u32, previous: u32) -> Self {
        Self {
            projection,
            version,
            phase: Phase::Full,
            segments,
            previous,
            total: None,
            full_started_at: now_ms(),
            full_pass_started: false,
            full_pass: None,
            pass: 1,
            pass_since: None,
            pass_started_at: None,
            tail: None,
            scanned: 0,
            applied: 0,
        }
    }

    pub(crate) fn to_item(&self) -> Result<HashMap<String, AttributeValue>, ReplayError> {
        let mut item = HashMap::from([
            (
                PK.to_owned(),
                AttributeValue::S(Self::key(self.projection, self.version)),
            ),
            (
                "phase".to_owned(),
                AttributeValue::S(self.phase.as_str().into()),
            ),
            ("segments".to_owned(), n(self.segments)),
            ("previous".to_owned(), n(self.previous)),
            ("fullStartedAt".to_owned(), n(self.full_started_at)),
            ("pass".to_owned(), n(self.pass)),
            ("scanned".to_owned(), n(self.scanned)),
            ("applied".to_owned(), n(self.applied)),
            ("updatedAt".to_owned(), n(now_ms())),
        ]);
        if self.full_pass_started {
            item.insert("fullPassStarted".to_owned(), AttributeValue::Bool(true));
        }
        if let Some(id) = &self.full_pass {
            item.insert("fullPass".to_owned(), AttributeValue::S(id.clone()));
        }
        for (name, value) in [
            ("total", self.total),
            ("passSince", self.pass_since),
            ("passStartedAt", self.pass_started_at),
        ] {
            if let Some(value) = value {
                item.insert(name.to_owned(), n(value));
            }
        }
        if let Some(tail) = &self.tail {
            item.insert(
                "tailStream".to_owned(),
                AttributeValue::S(tail.stream_arn.clone()),
            );
            item.insert("tailTakenAt".to_owned(), n(tail.taken_at));
            let shards = tail
                .shards
                .iter()
                .map(|(id, position)| {
                    let value = match position {
                        ShardPosition::Unread => AttributeValue::Null(true),
                        ShardPosition::After(sequence) => AttributeValue::S(sequence.clone()),
                        ShardPosition::Done => AttributeValue::Bool(true),
                    };
                    (id.clone(), value)
                })
                .collect();
            item.insert("tailShards".to_owned(), AttributeValue::M(shards));
        }
        Ok(item)
    }

    /// Reads an item back; `Err` names what is wrong with it.
    pub fn from_item(
        projection: Projection,
        version: u32,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Self, ReplayError> {
        let bad = |what: &str| {
            ReplayError::Invalid(format!(
                "the progress item {} is damaged ({what}): `replay abort {projection}` and start again",
                Self::key(projection, version)
            ))
        };
        let phase = item
            .get("phase")
            .and_then(|v| v.as_s().ok())
            .and_then(|s| Phase::parse(s))
            .ok_or_else(|| bad("phase"))?;
        let segments = number(item, "segments")
            .filter(|s| (1..=u64::from(common::tables::MAX_TOTAL_SEGMENTS)).contains(s))
            .ok_or_else(|| bad("segments"))? as u32;
        let tail = match item.get("tailStream").map(|v| v.as_s()) {
            None => None,
            Some(Err(_)) => return Err(bad("tailStream")),
            Some(Ok(stream_arn)) => {
                let shards = item
                    .get("tailShards")
                    .and_then(|v| v.as_m().ok())
                    .ok_or_else(|| bad("tailShards"))?
                    .iter()
                    .map(|(id, value)| {
                        let position = match value {
                            AttributeValue::Null(_) => ShardPosition::Unread,
                            AttributeValue::S(sequence) => ShardPosition::After(sequence.clone()),
                            AttributeValue::Bool(true) => ShardPosition::Done,
                            _ => return Err(bad("tailShards")),
                        };
                        Ok((id.clone(), position))
                    })
                    .collect::<Result<_, _>>()?;
                Some(TailPositions {
                    stream_arn: stream_arn.clone(),
                    shards,
                    taken_at: number(item, "tailTakenAt").ok_or_else(|| bad("tailTakenAt"))?,
                })
            }
        };
        Ok(Self {
            projection,
            version,
            phase,
            segments,
            previous: number(item, "previous").ok_or_else(|| bad("previous"))? as u32,
            total: number(item, "total"),
            full_started_at: number(item, "fullStartedAt").ok_or_else(|| bad("fullStartedAt"))?,
            full_pass_started: item
                .get("fullPassStarted")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            full_pass: events::views::text(item, "fullPass"),
            pass: number(item, "pass").unwrap_or(1) as u32,
            pass_since: number(item, "passSince"),
            pass_started_at: number(item, "passStartedAt"),
            tail,
            scanned: number(item, "scanned").unwrap_or(0),
            applied: number(item, "applied").unwrap_or(0),
        })
    }

    pub async fn read(
        replay: &Replay,
        projection: Projection,
        version: u32,
    ) -> Result<Option<Self>, ReplayError> {
        let output = replay
            .client
            .get_item()
            .table_name(&replay.base.checkpoints)
            .key(PK, AttributeValue::S(Self::key(projection, version)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("reading the replay progress"))?;
        output
            .item()
            .map(|item| Self::from_item(projection, version, item))
            .transpose()
    }

    /// Writes the whole item.
    pub async fn save(&self, replay: &Replay) -> Result<(), ReplayError> {
        replay
            .client
            .put_item()
            .table_name(&replay.base.checkpoints)
            .set_item(Some(self.to_item()?))
            .send()
            .await
            .map_err(store_error("saving the replay progress"))?;
        Ok(())
    }

    /// Adds what a unit of the full pass read and applied to the counters `status` shows.
    pub async fn count(
        replay: &Replay,
        projection: Projection,
        version: u32,
        scanned: u64,
        applied: u64,
    ) -> Result<(), ReplayError> {
        replay
            .client
            .update_item()
            .table_name(&replay.base.checkpoints)
            .key(PK, AttributeValue::S(Self::key(projection, version)))
            .update_expression("ADD #scanned :scanned, #applied :applied")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#scanned", "scanned")
            .expression_attribute_names("#applied", "applied")
            .expression_attribute_values(":scanned", n(scanned))
            .expression_attribute_values(":applied", n(applied))
            .send()
            .await
            .map_err(store_error("counting the replay progress"))?;
        Ok(())
    }

    pub async fn delete(
        replay: &Replay,
        projection: Projection,
        version: u32,
    ) -> Result<(), ReplayError> {
        replay
            .client
            .delete_item()
            .table_name(&replay.base.checkpoints)
            .key(PK, AttributeValue::S(Self::key(projection, version)))
            .send()
            .await
            .map_err(store_error("deleting the replay progress"))?;
        Ok(())
    }

    /// One line for `status`.
    pub fn summary(&self) -> String {
        let phase = match self.phase {
            Phase::Full if self.full_pass_started => "full pass".to_owned(),
            Phase::Full => "not started".to_owned(),
            Phase::CatchUp => format!("catch-up pass {}", self.pass),
            Phase::Switch => "switching".to_owned(),
            Phase::Done => "done".to_owned(),
        };
        format!(
            "{phase}; {} events read of {}, {} applied; replaces v{}",
            format_count(self.scanned),
            self.total.map_or_else(|| "?".to_owned(), format_count),
            format_count(self.applied),
            self.previous
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_item_round_trips_with_its_stream_positions() {
        let mut item = ProgressItem::new(Projection::Feed, 3, 3, 2);
        item.total = Some(100);
        item.phase = Phase::CatchUp;
        item.pass = 2;
        item.pass_since = Some(5);
        item.full_pass_started = true;
        item.full_pass = Some("feed.v3".into());
        item.scanned = 60;
        item.applied = 12;
        item.tail = Some(TailPositions {
            stream_arn: "arn:aws:dynamodb:us-east-1:1:table/events/stream/x".into(),
            shards: [
                ("shardId-1".to_owned(), ShardPosition::Done),
                (
                    "shardId-2".to_owned(),
                    ShardPosition::After("000123".into()),
                ),
                ("shardId-3".to_owned(), ShardPosition::Unread),
            ]
            .into(),
            taken_at: 42,
        });
        let stored = item.to_item().expect("serialises");
        assert_eq!(
            stored
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
            Some("replay#feed#v3")
        );
        assert_eq!(
            ProgressItem::from_item(Projection::Feed, 3, &stored).expect("reads back"),
            item
        );
        assert!(item.summary().contains("catch-up pass 2"));
        let mut damaged = stored.clone();
        damaged.insert("phase".into(), AttributeValue::S("sideways".into()));
        let error = ProgressItem::from_item(Projection::Feed, 3, &damaged).expect_err("damaged");
        assert!(error.to_string().contains("replay#feed#v3"), "{error}");
        let mut damaged = stored.clone();
        damaged.insert("tailShards".into(), AttributeValue::S("x".into()));
        let error = ProgressItem::from_item(Projection::Feed, 3, &damaged).expect_err("damaged");
        assert!(error.to_string().contains("tailShards"), "{error}");
        let mut untailed = stored;
        for name in ["tailStream", "tailShards", "tailTakenAt"] {
            untailed.remove(name);
        }
        let read = ProgressItem::from_item(Projection::Feed, 3, &untailed).expect("no tail");
        assert_eq!(read.tail, None);
    }
}
