//! One unit of a bulk full pass: one scan segment of the events table read for one round ([`common::projections::Projection::rounds`]) of every projection rebuilt together, each projection's streams in it folded in memory through the projector's own plans, and the result written into its version ([`projectors::bulk`]).
//!
//! Which units there are, who does them and in what order is [`crate::units`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::projections::Projection;
use events::StoredEvent;
use projectors::bulk::{read_cuts, Add, Folded, Foreign, RoundTables, UnitFold};
use projectors::search::SearchBulk;
use projectors::{ArticlesProjector, FeedProjector, ProjectionError, UsersProjector};
use search::SearchIndex;

use crate::scan::Key;
use crate::{scan, Replay, ReplayError};

/// A projection's unit folded in memory, whichever projection it is.
enum AnyFold<'f> {
    Users(UnitFold<'f, UsersProjector>),
    Articles(UnitFold<'f, ArticlesProjector>),
    Feed(UnitFold<'f, FeedProjector>),
    Search(SearchBulk, SearchIndex),
}

impl<'f> AnyFold<'f> {
    async fn open(
        replay: &Replay,
        (projection, version): (Projection, u32),
        round: usize,
        foreign: &'f Foreign,
        folded: Folded,
    ) -> Result<Self, ReplayError> {
        let tables = replay.tables(projection, version);
        let client = &replay.client;
        let round_tables = RoundTables::of(projection, round, &tables);
        Ok(match projection {
            Projection::Users => Self::Users(UnitFold::new(
                UsersProjector::new(client, &tables),
                round_tables,
                foreign,
                folded,
            )),
            Projection::Articles => Self::Articles(UnitFold::new(
                ArticlesProjector::new(client, &tables),
                round_tables,
                foreign,
                folded,
            )),
            Projection::Feed => Self::Feed(UnitFold::new(
                FeedProjector::new(client, &tables),
                round_tables,
                foreign,
                folded,
            )),
            Projection::Search => {
                Self::Search(SearchBulk::new(folded), replay.search.index(version).await?)
            }
        })
    }

    async fn prefetch(&self, streams: &[&[StoredEvent]]) -> Result<(), ProjectionError> {
        match self {
            Self::Users(b) => b.prefetch(streams).await,
            Self::Articles(b) => b.prefetch(streams).await,
            Self::Feed(b) => b.prefetch(streams).await,
            Self::Search(..) => Ok(()),
        }
    }

    async fn fold(&mut self, events: &[StoredEvent]) -> Result<u64, ProjectionError> {
        match self {
            Self::Users(b) => b.fold(events).await,
            Self::Articles(b) => b.fold(events).await,
            Self::Feed(b) => b.fold(events).await,
            Self::Search(b, _) => b.fold(events),
        }
    }

    async fn write(
        self,
        replay: &Replay,
        checkpoints_table: &str,
        in_flight: usize,
    ) -> Result<(u64, Vec<Add>), ProjectionError> {
        let client = &replay.client;
        let written = |_: u64| {};
        match self {
            Self::Users(b) => b.write(client, checkpoints_table, in_flight, written).await,
            Self::Articles(b) => b.write(client, checkpoints_table, in_flight, written).await,
            Self::Feed(b) => b.write(client, checkpoints_table, in_flight, written).await,
            Self::Search(b, index) => b
                .write(&index, client, checkpoints_table, in_flight, written)
                .await
                .map(|items| (items, Vec::new())),
        }
    }
}

/// What one unit did for one projection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnitDone {
    /// Items of the events table read (the segment's, for every projection of the unit).
    pub scanned: u64,
    pub folded: u64,
    /// Items written into the version (its tables or index, and its checkpoints).
    pub items: u64,
    /// Counters of earlier rounds' items the unit moved.
    pub adds: Vec<Add>,
}

/// What a bulk full pass did, for one projection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FullPass {
    /// Items of the events table read (every round's reads of the projection's units).
    pub scanned: u64,
    /// Events folded.
    pub folded: u64,
    /// Items written into the version (its tables or index, and its checkpoints).
    pub items: u64,
    /// Counters set after the rounds on items already written (an article's favorites).
    pub counters: u64,
    /// Units of the pass and rounds (the merge of counters included) it had.
    pub units: u64,
    pub rounds: usize,
    /// Projections it was made for (1 when the projection was rebuilt alone).
    pub shared_by: usize,
    /// Units this process did again after a worker stopped (a kill, a lost lease).
    pub redone: u64,
    pub elapsed: Duration,
}

/// Does unit (`round`, `segment` of `segments`) for every build of `builds` that has that
/// round: reads the segment (the round's aggregate types of them all, one page after
/// another), folds each one's streams, writes each one's items (`in_flight`
/// `BatchWriteItem`s at once). `again`: an earlier attempt of the unit may have written, so
/// each stream is folded only as far as its checkpoint there says.
pub async fn unit(
    replay: &Replay,
    builds: &[(Projection, u32)],
    (round, segment, segments): (usize, u32, u32),
    foreign: &Foreign,
    again: bool,
    in_flight: usize,
) -> Result<Vec<((Projection, u32), UnitDone)>, ReplayError> {
    let builds: Vec<(Projection, u32)> = builds
        .iter()
        .copied()
        .filter(|(p, _)| round < p.rounds().len())
        .collect();
    let types: Vec<&str> = builds
        .iter()
        .flat_map(|(p, _)| p.rounds()[round])
        .copied()
        .collect();
    let started = Instant::now();
    let mut streams: BTreeMap<String, Vec<StoredEvent>> = BTreeMap::new();
    let mut scanned = 0;
    let mut start: Option<Key> = None;
    loop {
        let page = scan::page_of_types(replay, &types, segment, segments, start.take()).await?;
        scanned += page.scanned;
        for event in page.events {
            streams.entry(event.stream_key()).or_default().push(event);
        }
        match page.next {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    for events in streams.values_mut() {
        events.sort_by_key(|e| e.sequence);
        events.dedup_by_key(|e| e.sequence);
    }
    tracing::debug!(round, segment, scanned, took = ?started.elapsed(), "a unit read");

    let mut done = Vec::with_capacity(builds.len());
    for build in builds {
        let (projection, version) = build;
        let round_types = projection.rounds()[round];
        let mine = || {
            streams
                .iter()
                .filter(|(_, events)| {
                    events
                        .first()
                        .is_some_and(|e| round_types.contains(&e.aggregate_type.as_str()))
                })
                .map(|(stream, _)| stream.clone())
        };
        let checkpoints_table = replay.tables(projection, version).checkpoints;
        let folded = if again {
            Folded::with_cuts(
                read_cuts(
                    &replay.client,
                    projection.name(),
                    &checkpoints_table,
                    mine(),
                )
                .await?,
            )
        } else {
            Folded::default()
        };
        let mut fold = AnyFold::open(replay, build, round, foreign, folded).await?;
        let ours: Vec<&[StoredEvent]> = streams
            .values()
            .filter(|events| {
                events
                    .first()
                    .is_some_and(|e| round_types.contains(&e.aggregate_type.as_str()))
            })
            .map(Vec::as_slice)
            .collect();
        fold.prefetch(&ours).await?;
        let mut count = 0;
        for events in ours {
            count += fold.fold(events).await?;
        }
        let (items, adds) = fold.write(replay, &checkpoints_table, in_flight).await?;
        replay.progress.add(0, count);
        done.push((
            build,
            UnitDone {
                scanned,
                folded: count,
                items,
                adds,
            },
        ));
    }
    replay.progress.add(scanned, 0);
    Ok(done)
}
