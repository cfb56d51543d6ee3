//! The rebuild's own reader of the `events` table's stream: what was appended since the previous pass, for the catch-up passes and the last pass, at a cost in proportion to it.
//!
//! A rebuild starts a [`TailHandle`] at the stream's current end (`LATEST` on every open shard)
//! right before its full pass scans. The scan's pages are read after that, strongly
//! consistent, so every event committed before the tail started is in the scan, and every one
//! committed after it is in the stream after the tail's start: between them nothing is missed
//! (what both see is applied once; the projector skips duplicates by its checkpoints).
//!
//! While the full pass runs (hours, on AWS), a background task drains the tail every
//! [`DRAIN_EVERY`] into memory: a shard iterator expires 15 minutes after it was handed out,
//! and a LATEST iterator that expires before it read anything cannot be opened again at the
//! same place. [`TailHandle::take`] drains every shard to its current end and hands over what
//! was read; a catch-up pass applies that, then saves [`TailPositions`] (per shard, the last
//! sequence number read) in the progress item, so `--resume` goes on `AFTER_SEQUENCE_NUMBER`.
//!
//! Draining reads each shard with `GetRecords` (up to 1,000 records a call), following
//! `NextShardIterator`: an open shard is taken to be at its end after a response without
//! records (`ends` such responses in a row), a closed shard when `NextShardIterator` is
//! absent. A shard that appears after the start (a split or the stream's roll-over to a new
//! shard) is read from `TRIM_HORIZON`, and only after its parent was read to its end, so the
//! events of one key come in order. The tail is one of the two readers DynamoDB allows per
//! shard (the fan-out's event source mapping is the other); a rebuild runs one tail at a time.
//!
//! # Why draining after the freeze is enough for the last pass
//!
//! The switch freezes the live projector, then drains every shard to its end (two empty
//! reads in a row) and applies what it read before making the new version active. An event
//! the live projector applied to the old version travelled stream → fan-out → SNS → SQS →
//! projector: its stream record was visible before the projector applied it, so before the
//! freeze if the batch finished before the freeze, and the drain that starts after the freeze
//! reads it. A batch that overlaps the freeze is handed back whole by the live projector
//! ([`projectors::VersionedProjector`]) and comes again through its queue, as does every event
//! the old version has not applied: after the switch the projector applies it to the new
//! version. So the new version misses nothing, with no clock and no margin involved.
//!
//! # When the tail is lost
//!
//! Positions cannot always be used again: a rebuild killed before its first catch-up pass
//! saved none; a stream keeps records 24 hours, so positions of a rebuild resumed later than
//! that are trimmed (`TrimmedDataAccessException`, or a shard no longer listed); the table's
//! stream may have been replaced. [`TailHandle::resume`] then fails with
//! [`TailError::Lost`], and the rebuild starts a new tail at `LATEST` and has its next pass
//! also scan the table for events recorded since the pass's bound (the time-filtered scan),
//! to cover the window before the new tail. A tail that keeps running is not lost by a long
//! rebuild: it reads every few seconds. If it buffers more than [`MAX_BUFFERED`] events
//! before a pass takes them, it drops them and the next pass scans the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{
    AttributeValue as StreamValue, OperationType, Shard, ShardIteratorType,
};
use common::clock::now_ms;
use common::projections::Projection;
use events::StoredEvent;
use projectors::ProjectionError;
use tokio::sync::Mutex;

use crate::{Replay, ReplayError};

/// How often the background task drains the tail while no pass takes from it.
pub const DRAIN_EVERY: Duration = Duration::from_secs(3);
/// Events a tail holds for the next pass at most; beyond that it drops them and that pass
/// scans the table instead ([`Taken::overflowed`]).
pub const MAX_BUFFERED: usize = 200_000;
/// Positions taken longer ago than this are not trusted: a stream keeps its records 24 hours
/// (an hour less, for clocks and for records trimmed a little early).
pub const RETENTION: Duration = Duration::from_secs(23 * 60 * 60);
/// `GetRecords` returns at most this many records a call.
const GET_RECORDS_LIMIT: i32 = 1000;
/// How often a failed `GetRecords` / `DescribeStream` of a take is tried before the pass fails.
const TAKE_ATTEMPTS: u32 = 4;
/// How often the background drain lists the shards again while none ends (a new shard
/// follows its parent's end, which lists them at once; every take lists them too).
const DESCRIBE_EVERY: Duration = Duration::from_secs(60);

/// Where a tail is in one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardPosition {
    /// Nothing read yet: a resumed tail reads it from `TRIM_HORIZON`.
    Unread,
    /// The sequence number of the last record read.
    After(String),
    /// Closed, and read to its end.
    Done,
}

/// Where a tail is in every shard of the stream: what a progress item keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailPositions {
    pub stream_arn: String,
    pub shards: BTreeMap<String, ShardPosition>,
    /// When they were taken (Unix ms): older than [`RETENTION`], they are not used.
    pub taken_at: u64,
}

/// Why a tail cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// What comes after its positions can no longer be read from the stream (trimmed, an
    /// expired iterator before anything was read, another stream): start a new tail and scan
    /// what happened before it.
    #[error("the stream tail is lost: {0}")]
    Lost(String),
    /// DynamoDB Streams failed or could not be reached (worth trying again), or the table has
    /// no stream.
    #[error("DynamoDB Streams: {0}")]
    Stream(String),
    /// A stream record's image is not an event.
    #[error("a stream record of the events table: {0}")]
    Unreadable(String),
}

impl From<TailError> for ReplayError {
    fn from(error: TailError) -> Self {
        match error {
            TailError::Unreadable(e) => ReplayError::Projection(ProjectionError::Unreadable(
                format!("a stream record of the events table: {e}"),
            )),
            other => ReplayError::Store(other.to_string()),
        }
    }
}

fn stream_error<E: std::error::Error>(context: &str) -> impl FnOnce(E) -> TailError + '_ {
    move |e| TailError::Stream(format!("{context}: {}", common::error::one_line(&e)))
}

/// What a drain read.
#[derive(Debug, Default)]
pub struct Drained {
    /// The events of the `INSERT` records, in each shard's order.
    pub events: Vec<StoredEvent>,
    /// Every stream record read (inserts, and the removals a test or an operator made).
    pub records: u64,
    /// `GetRecords` calls made: what DynamoDB Streams bills (one read request unit each).
    pub get_records: u64,
}

struct ShardTail {
    parent: Option<String>,
    position: ShardPosition,
    iterator: Option<String>,
    /// Opened at `LATEST` when the tail started: without a record read, it cannot be opened
    /// at the same place again.
    from_latest: bool,
}

/// A reader of the events table's stream from a given place to its current end.
pub struct StreamTail {
    streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    shards: BTreeMap<String, ShardTail>,
    /// When the shards were last listed; `None`: at the next drain.
    described: Option<Instant>,
}

impl StreamTail {
    /// A tail at the current end of `events_table`'s stream: every open shard at `LATEST`.
    pub async fn start(
        dynamodb: &aws_sdk_dynamodb::Client,
        streams: &aws_sdk_dynamodbstreams::Client,
        events_table: &str,
    ) -> Result<Self, TailError> {
        let stream_arn = stream_arn(dynamodb, events_table).await?;
        let mut tail = Self {
            streams: streams.clone(),
            stream_arn,
            shards: BTreeMap::new(),
            described: None,
        };
        for shard in tail.describe().await? {
            let Some(id) = shard.shard_id() else {
                continue;
            };
            // A closed shard took its last record before now: the scan has its events.
            let closed = shard
                .sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .is_some();
            let iterator = if closed {
                None
            } else {
                tail.iterator(id, ShardIteratorType::Latest, None)
                    .await
                    .map_err(|e| e.lost_or_stream())?
            };
            tail.shards.insert(
                id.to_owned(),
                ShardTail {
                    parent: shard.parent_shard_id().map(str::to_owned),
                    position: if closed || iterator.is_none() {
                        ShardPosition::Done
                    } else {
                        ShardPosition::Unread
                    },
                    iterator,
                    from_latest: !closed,
                },
            );
        }
        Ok(tail)
    }

    /// A tail that goes on after `positions`: each shard after its last record read, a shard
    /// with nothing read or not known then from `TRIM_HORIZON`. [`TailError::Lost`] if that
    /// cannot be done (another stream, positions older than [`RETENTION`], a shard trimmed
    /// away, a sequence number the stream rejects).
    pub async fn resume(
        dynamodb: &aws_sdk_dynamodb::Client,
        streams: &aws_sdk_dynamodbstreams::Client,
        events_table: &str,
        positions: &TailPositions,
    ) -> Result<Self, TailError> {
        let stream_arn = stream_arn(dynamodb, events_table).await?;
        if stream_arn != positions.stream_arn {
            return Err(TailError::Lost(format!(
                "the positions are of stream {}, the events table's stream is now {stream_arn}",
                positions.stream_arn
            )));
        }
        let age = now_ms().saturating_sub(positions.taken_at);
        if age > RETENTION.as_millis() as u64 {
            return Err(TailError::Lost(format!(
                "the positions were taken {:.1} hours ago; a stream keeps its records 24 hours",
                age as f64 / 3_600_000.0
            )));
        }
        let mut tail = Self {
            streams: streams.clone(),
            stream_arn,
            shards: BTreeMap::new(),
            described: None,
        };
        let listed = tail.describe().await?;
        let ids: BTreeSet<&str> = listed.iter().filter_map(|s| s.shard_id()).collect();
        for (id, position) in &positions.shards {
            if *position != ShardPosition::Done && !ids.contains(id.as_str()) {
                return Err(TailError::Lost(format!(
                    "shard {id} is no longer in the stream (trimmed) and was not read to its end"
                )));
            }
        }
        for shard in &listed {
            let Some(id) = shard.shard_id() else {
                continue;
            };
            let position = positions
                .shards
                .get(id)
                .cloned()
                .unwrap_or(ShardPosition::Unread);
            let first = shard
                .sequence_number_range()
                .and_then(|r| r.starting_sequence_number());
            if let (ShardPosition::After(sequence), Some(first)) = (&position, first) {
                if sequence_before(sequence, first) {
                    return Err(TailError::Lost(format!(
                        "shard {id} now begins at {first}, after the position {sequence} (trimmed)"
                    )));
                }
            }
            let iterator = match &position {
                ShardPosition::After(sequence) => tail
                    .iterator(id, ShardIteratorType::AfterSequenceNumber, Some(sequence))
                    .await
                    .map_err(|e| e.lost_or_stream())?,
                ShardPosition::Unread | ShardPosition::Done => None,
            };
            tail.shards.insert(
                id.to_owned(),
                ShardTail {
                    parent: shard.parent_shard_id().map(str::to_owned),
                    position,
                    iterator,
                    from_latest: false,
                },
            );
        }
        Ok(tail)
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// Where the tail is: after the records it read so far.
    pub fn positions(&self) -> TailPositions {
        TailPositions {
            stream_arn: self.stream_arn.clone(),
            shards: self
                .shards
                .iter()
                .map(|(id, shard)| (id.clone(), shard.position.clone()))
                .collect(),
            taken_at: now_ms(),
        }
    }

    /// Reads every shard up to its current end (an open one: `ends` responses without records
    /// in a row) and returns what it read.
    pub async fn drain(&mut self, ends: u32) -> Result<Drained, TailError> {
        let mut out = Drained::default();
        self.drain_into(ends, &mut out).await?;
        Ok(out)
    }

    /// [`Self::drain`] into `out`, which keeps what was read before a failure (the tail has
    /// moved past it).
    pub async fn drain_into(&mut self, ends: u32, out: &mut Drained) -> Result<(), TailError> {
        let stale = self
            .described
            .is_none_or(|at| at.elapsed() >= DESCRIBE_EVERY);
        if ends > 1 || stale {
            self.discover().await?;
        }
        loop {
            let ready: Vec<String> = self
                .shards
                .iter()
                .filter(|(_, s)| s.position != ShardPosition::Done)
                .filter(|(_, s)| {
                    s.parent.as_ref().is_none_or(|p| {
                        self.shards
                            .get(p)
                            .is_none_or(|p| p.position == ShardPosition::Done)
                    })
                })
                .map(|(id, _)| id.clone())
                .collect();
            let mut ended = false;
            for id in ready {
                self.read_shard(&id, ends.max(1), out).await?;
                ended |= self
                    .shards
                    .get(&id)
                    .is_some_and(|s| s.position == ShardPosition::Done);
            }
            if !ended {
                return Ok(());
            }
            // Its children may be new, and may be read now.
            self.discover().await?;
        }
    }

    async fn read_shard(
        &mut self,
        id: &str,
        ends: u32,
        out: &mut Drained,
    ) -> Result<(), TailError> {
        let mut empty = 0;
        let mut reopened = 0;
        loop {
            let Some(shard) = self.shards.get(id) else {
                return Ok(());
            };
            let iterator = match shard.iterator.clone() {
                Some(iterator) => iterator,
                None => match self.open(id).await? {
                    Some(iterator) => iterator,
                    None => {
                        self.set(id, |s| s.position = ShardPosition::Done);
                        return Ok(());
                    }
                },
            };
            out.get_records += 1;
            let result = self
                .streams
                .get_records()
                .shard_iterator(&iterator)
                .limit(GET_RECORDS_LIMIT)
                .send()
                .await;
            let output = match result {
                Ok(output) => output,
                Err(error) => match error.code() {
                    Some("ExpiredIteratorException") if reopened < 2 => {
                        reopened += 1;
                        self.set(id, |s| s.iterator = None);
                        continue;
                    }
                    Some("TrimmedDataAccessException") => {
                        return Err(TailError::Lost(format!(
                            "shard {id}: records after the last one read were trimmed ({})",
                            common::error::one_line(&error)
                        )))
                    }
                    _ => {
                        // The iterator stays: the next drain tries it again.
                        self.set(id, |s| s.iterator = Some(iterator));
                        return Err(stream_error("GetRecords")(error));
                    }
                },
            };
            let records = output.records.unwrap_or_default();
            // Decoded whole before anything moves, so that a failure reads the batch again.
            let mut events = Vec::new();
            let mut last = None;
            for record in &records {
                let Some(change) = &record.dynamodb else {
                    continue;
                };
                if record.event_name == Some(OperationType::Insert) {
                    if let Some(image) = &change.new_image {
                        events.push(event_from_image(image)?);
                    }
                }
                if let Some(sequence) = &change.sequence_number {
                    last = Some(sequence.clone());
                }
            }
            out.records += records.len() as u64;
            out.events.extend(events);
            let next = output.next_shard_iterator;
            let at_end = next.is_none();
            self.set(id, |s| {
                if let Some(last) = last {
                    s.position = ShardPosition::After(last);
                }
                s.iterator = next;
                if at_end {
                    s.position = ShardPosition::Done;
                }
            });
            if at_end {
                return Ok(());
            }
            if records.is_empty() {
                empty += 1;
                if empty >= ends {
                    return Ok(());
                }
            } else {
                empty = 0;
            }
        }
    }

    /// A new iterator for shard `id`: after its last record read, or from `TRIM_HORIZON` if it
    /// has none; `None` if it is done.
    async fn open(&mut self, id: &str) -> Result<Option<String>, TailError> {
        let Some(shard) = self.shards.get(id) else {
            return Ok(None);
        };
        match shard.position.clone() {
            ShardPosition::Done => Ok(None),
            ShardPosition::After(sequence) => self
                .iterator(id, ShardIteratorType::AfterSequenceNumber, Some(&sequence))
                .await
                .map_err(|e| e.lost_or_stream()),
            ShardPosition::Unread if shard.from_latest => Err(TailError::Lost(format!(
                "the iterator of shard {id}, opened at LATEST, expired before a record was read"
            ))),
            ShardPosition::Unread => self
                .iterator(id, ShardIteratorType::TrimHorizon, None)
                .await
                .map_err(|e| e.lost_or_stream()),
        }
    }

    async fn iterator(
        &self,
        id: &str,
        kind: ShardIteratorType,
        sequence: Option<&str>,
    ) -> Result<Option<String>, IteratorError> {
        let output = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(id)
            .shard_iterator_type(kind.clone())
            .set_sequence_number(sequence.map(str::to_owned))
            .send()
            .await
            .map_err(|error| IteratorError {
                code: error.code().map(str::to_owned),
                text: format!(
                    "GetShardIterator {kind} {} of shard {id}: {}",
                    sequence.unwrap_or_default(),
                    common::error::one_line(&error)
                ),
            })?;
        Ok(output.shard_iterator)
    }

    /// Adds the shards listed now that the tail does not know (from `TRIM_HORIZON`: they
    /// began after the tail did), and forgets those it read to their end that are gone.
    async fn discover(&mut self) -> Result<(), TailError> {
        let listed = self.describe().await?;
        let ids: BTreeSet<String> = listed
            .iter()
            .filter_map(|s| s.shard_id().map(str::to_owned))
            .collect();
        for shard in &listed {
            let Some(id) = shard.shard_id() else {
                continue;
            };
            self.shards.entry(id.to_owned()).or_insert_with(|| {
                tracing::debug!(shard_id = %id, parent = ?shard.parent_shard_id(), "stream tail: new shard");
                ShardTail {
                    parent: shard.parent_shard_id().map(str::to_owned),
                    position: ShardPosition::Unread,
                    iterator: None,
                    from_latest: false,
                }
            });
        }
        if let Some((id, _)) = self
            .shards
            .iter()
            .find(|(id, s)| s.position != ShardPosition::Done && !ids.contains(*id))
        {
            return Err(TailError::Lost(format!(
                "shard {id} was trimmed away before it was read to its end"
            )));
        }
        self.shards.retain(|id, _| ids.contains(id));
        Ok(())
    }

    /// Every shard of the stream (DescribeStream, paged).
    async fn describe(&mut self) -> Result<Vec<Shard>, TailError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let output = self
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|error| match error.code() {
                    Some("ResourceNotFoundException") => TailError::Lost(format!(
                        "the stream {} is gone ({})",
                        self.stream_arn,
                        common::error::one_line(&error)
                    )),
                    _ => stream_error("DescribeStream")(error),
                })?;
            let Some(description) = output.stream_description else {
                break;
            };
            shards.extend(description.shards.unwrap_or_default());
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        self.described = Some(Instant::now());
        Ok(shards)
    }

    fn set(&mut self, id: &str, change: impl FnOnce(&mut ShardTail)) {
        if let Some(shard) = self.shards.get_mut(id) {
            change(shard);
        }
    }
}

/// A failed `GetShardIterator`, with the error code that says whether the place is lost.
struct IteratorError {
    code: Option<String>,
    text: String,
}

impl IteratorError {
    fn lost_or_stream(self) -> TailError {
        match self.code.as_deref() {
            Some(
                "TrimmedDataAccessException"
                | "ValidationException"
                | "ResourceNotFoundException"
                | "ExpiredIteratorException",
            ) => TailError::Lost(self.text),
            _ => TailError::Stream(self.text),
        }
    }
}

/// Whether stream sequence number `a` comes before `b` (decimal strings of any length; text
/// that is not a number is left to the stream to reject).
fn sequence_before(a: &str, b: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return false;
    }
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) < (b.len(), b)
}

/// The ARN of `events_table`'s stream.
async fn stream_arn(
    dynamodb: &aws_sdk_dynamodb::Client,
    events_table: &str,
) -> Result<String, TailError> {
    let table = dynamodb
        .describe_table()
        .table_name(events_table)
        .send()
        .await
        .map_err(stream_error("DescribeTable of the events table"))?
        .table;
    let enabled = table
        .as_ref()
        .and_then(|t| t.stream_specification())
        .is_some_and(|s| s.stream_enabled());
    match table.and_then(|t| t.latest_stream_arn) {
        Some(arn) if enabled => Ok(arn),
        _ => Err(TailError::Stream(format!(
            "the events table {events_table} has no stream: a rebuild reads what is appended \
             during it from the stream (NEW_IMAGE), as the deployment template defines it"
        ))),
    }
}

/// The event of a stream record's `NEW_IMAGE`.
fn event_from_image(image: &HashMap<String, StreamValue>) -> Result<StoredEvent, TailError> {
    let item = image
        .iter()
        .map(|(name, value)| Ok((name.clone(), attribute(value)?)))
        .collect::<Result<HashMap<_, _>, TailError>>()?;
    events::store::event_from_item(&item).map_err(|e| TailError::Unreadable(e.to_string()))
}

/// A stream record's attribute value as the DynamoDB client's.
fn attribute(value: &StreamValue) -> Result<AttributeValue, TailError> {
    Ok(match value {
        StreamValue::S(s) => AttributeValue::S(s.clone()),
        StreamValue::N(n) => AttributeValue::N(n.clone()),
        StreamValue::B(b) => AttributeValue::B(b.clone()),
        StreamValue::Bool(b) => AttributeValue::Bool(*b),
        StreamValue::Null(b) => AttributeValue::Null(*b),
        StreamValue::Ss(v) => AttributeValue::Ss(v.clone()),
        StreamValue::Ns(v) => AttributeValue::Ns(v.clone()),
        StreamValue::Bs(v) => AttributeValue::Bs(v.clone()),
        StreamValue::L(values) => {
            AttributeValue::L(values.iter().map(attribute).collect::<Result<_, _>>()?)
        }
        StreamValue::M(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), attribute(v)?)))
                .collect::<Result<_, TailError>>()?,
        ),
        other => {
            return Err(TailError::Unreadable(format!(
                "an attribute of a type this client does not know: {other:?}"
            )))
        }
    })
}

/// What [`TailHandle::take`] hands over.
#[derive(Debug)]
pub struct Taken {
    /// The events of the projection appended since the previous take (or the start).
    pub events: Vec<StoredEvent>,
    /// Stream records read meanwhile (of every aggregate).
    pub records: u64,
    /// `GetRecords` calls made meanwhile.
    pub get_records: u64,
    /// More than [`MAX_BUFFERED`] events came: some were dropped, and a scan must cover them.
    pub overflowed: bool,
    /// Where the tail is: after `events`.
    pub positions: TailPositions,
}

struct Shared {
    tail: StreamTail,
    projection: Projection,
    read: Drained,
    overflowed: bool,
    lost: Option<String>,
}

impl Shared {
    async fn drain(&mut self, ends: u32) -> Result<(), TailError> {
        let mut out = Drained::default();
        let result = self.tail.drain_into(ends, &mut out).await;
        self.read.records += out.records;
        self.read.get_records += out.get_records;
        for event in out.events {
            if !self.projection.accepts(&event.aggregate_type) {
                continue;
            }
            if self.read.events.len() >= MAX_BUFFERED {
                self.overflowed = true;
            } else {
                self.read.events.push(event);
            }
        }
        if self.overflowed {
            self.read.events.clear();
        }
        result
    }
}

/// A [`StreamTail`] of one rebuild, drained in the background every [`DRAIN_EVERY`] until
/// dropped, keeping the events of its projection for the next [`TailHandle::take`].
pub struct TailHandle {
    shared: Arc<Mutex<Shared>>,
    background: tokio::task::JoinHandle<()>,
}

impl Drop for TailHandle {
    fn drop(&mut self) {
        self.background.abort();
    }
}

impl TailHandle {
    /// Starts the tail of `projection`'s rebuild at the stream's current end. Called right
    /// before the full pass scans: everything committed after this is the tail's.
    pub async fn start(replay: &Replay, projection: Projection) -> Result<Self, ReplayError> {
        let tail = StreamTail::start(&replay.client, &replay.streams, &replay.base.events).await?;
        Ok(Self::spawn(tail, projection))
    }

    /// Resumes from `positions` (see [`StreamTail::resume`]).
    pub async fn resume(
        replay: &Replay,
        projection: Projection,
        positions: &TailPositions,
    ) -> Result<Self, TailError> {
        let tail = StreamTail::resume(
            &replay.client,
            &replay.streams,
            &replay.base.events,
            positions,
        )
        .await?;
        Ok(Self::spawn(tail, projection))
    }

    fn spawn(tail: StreamTail, projection: Projection) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            tail,
            projection,
            read: Drained::default(),
            overflowed: false,
            lost: None,
        }));
        let background = tokio::spawn({
            let shared = shared.clone();
            async move {
                loop {
                    tokio::time::sleep(DRAIN_EVERY).await;
                    let mut shared = shared.lock().await;
                    match shared.drain(1).await {
                        Ok(()) => {}
                        Err(TailError::Lost(why)) => {
                            tracing::warn!(%why, "the rebuild's stream tail is lost");
                            shared.lost = Some(why);
                            return;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "draining the stream tail failed; trying again");
                        }
                    }
                }
            }
        });
        Self { shared, background }
    }

    /// Drains every shard to its end (`ends` empty reads in a row for an open shard) and
    /// hands over what was read since the previous take.
    pub async fn take(&self, ends: u32) -> Result<Taken, TailError> {
        let mut shared = self.shared.lock().await;
        if let Some(why) = shared.lost.take() {
            return Err(TailError::Lost(why));
        }
        let mut pause = Duration::from_millis(200);
        let mut attempt = 1;
        // A pass sees every shard there is now, whatever the background drain last listed.
        shared.tail.described = None;
        loop {
            match shared.drain(ends).await {
                Ok(()) => break,
                Err(TailError::Stream(error)) if attempt < TAKE_ATTEMPTS => {
                    tracing::warn!(%error, attempt, "draining the stream tail failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
        let read = std::mem::take(&mut shared.read);
        Ok(Taken {
            events: read.events,
            records: read.records,
            get_records: read.get_records,
            overflowed: std::mem::take(&mut shared.overflowed),
            positions: shared.tail.positions(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_before("99", "100"));
        assert!(sequence_before("000000000000000000099", "100"));
        assert!(!sequence_before("100", "100"));
        assert!(!sequence_before("101", "000100"));
        assert!(!sequence_before("garbage", "100"));
    }

    #[test]
    fn a_stream_image_reads_as_the_event_it_holds() {
        let event = StoredEvent {
            aggregate_type: "User".into(),
            aggregate_id: "u1".into(),
            sequence: 3,
            event_id: uuid::Uuid::new_v4(),
            event_type: "UserRegistered".into(),
            event_version: 1,
            payload: serde_json::json!({"username": "jake", "tags": ["a", "b"]}),
            metadata: Default::default(),
            recorded_at: "2024-01-01T00:00:00.000Z".into(),
        };
        fn to_stream(value: &AttributeValue) -> StreamValue {
            match value {
                AttributeValue::S(s) => StreamValue::S(s.clone()),
                AttributeValue::N(n) => StreamValue::N(n.clone()),
                AttributeValue::Bool(b) => StreamValue::Bool(*b),
                AttributeValue::Null(b) => StreamValue::Null(*b),
                AttributeValue::L(l) => StreamValue::L(l.iter().map(to_stream).collect()),
                AttributeValue::M(m) => {
                    StreamValue::M(m.iter().map(|(k, v)| (k.clone(), to_stream(v))).collect())
                }
                other => panic!("not in an event item: {other:?}"),
            }
        }
        let image: HashMap<String, StreamValue> = events::store::event_to_item(&event)
            .iter()
            .map(|(k, v)| (k.clone(), to_stream(v)))
            .collect();
        assert_eq!(event_from_image(&image).expect("an event"), event);
        let mut damaged = image;
        damaged.remove("eventId");
        assert!(matches!(
            event_from_image(&damaged),
            Err(TailError::Unreadable(_))
        ));
    }
}
