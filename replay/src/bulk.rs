//! The full pass of a rebuild, in bulk: the whole events table read with parallel scan segments (once for all the projections rebuilt together), each aggregate's events folded in memory through the projector's own plans, and the resulting items written with `BatchWriteItem` into the fresh version ([`projectors::bulk`]).
//!
//! A full pass that was killed starts again from nothing on `--resume`: the version's tables
//! are emptied first ([`crate::versions::truncate`]), so that no item of a fold that saw
//! fewer events survives. The search index needs no emptying: every article's last write
//! is sent again, deletes included, at a version no lower than before.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::projections::Projection;
use events::StoredEvent;
use projectors::bulk::BulkBuild;
use projectors::search::SearchBulk;
use projectors::{ArticlesProjector, FeedProjector, ProjectionError, UsersProjector};
use search::SearchIndex;
use tokio::sync::Mutex;

use crate::scan::Key;
use crate::{scan, Replay, ReplayError};

/// A projection folded in memory, whichever it is.
enum AnyBulk {
    Users(BulkBuild<UsersProjector>),
    Articles(BulkBuild<ArticlesProjector>),
    Feed(BulkBuild<FeedProjector>),
    Search(SearchBulk, SearchIndex),
}

impl AnyBulk {
    async fn open(
        replay: &Replay,
        projection: Projection,
        version: u32,
    ) -> Result<Self, ReplayError> {
        let tables = replay.tables(projection, version);
        let client = &replay.client;
        Ok(match projection {
            Projection::Users => Self::Users(BulkBuild::new(UsersProjector::new(client, &tables))),
            Projection::Articles => {
                Self::Articles(BulkBuild::new(ArticlesProjector::new(client, &tables)))
            }
            Projection::Feed => Self::Feed(BulkBuild::new(FeedProjector::new(client, &tables))),
            Projection::Search => {
                Self::Search(SearchBulk::default(), replay.search.index(version).await?)
            }
        })
    }

    async fn fold(&mut self, events: &[StoredEvent]) -> Result<u64, ProjectionError> {
        match self {
            Self::Users(b) => b.fold(events).await,
            Self::Articles(b) => b.fold(events).await,
            Self::Feed(b) => b.fold(events).await,
            Self::Search(b, _) => b.fold(events),
        }
    }

    fn items(&self) -> u64 {
        match self {
            Self::Users(b) => b.items(),
            Self::Articles(b) => b.items(),
            Self::Feed(b) => b.items(),
            Self::Search(b, _) => b.items(),
        }
    }

    async fn write(
        self,
        replay: &Replay,
        checkpoints_table: &str,
        in_flight: usize,
    ) -> Result<u64, ProjectionError> {
        let client = &replay.client;
        let written = |n: u64| replay.progress.add(n, n);
        match self {
            Self::Users(b) => b.write(client, checkpoints_table, in_flight, written).await,
            Self::Articles(b) => b.write(client, checkpoints_table, in_flight, written).await,
            Self::Feed(b) => b.write(client, checkpoints_table, in_flight, written).await,
            Self::Search(b, index) => {
                b.write(&index, client, checkpoints_table, in_flight, written)
                    .await
            }
        }
    }
}

/// What a bulk full pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FullPass {
    /// Items of the events table read.
    pub scanned: u64,
    /// Events folded.
    pub folded: u64,
    /// Items written into the version (its tables or index, and its checkpoints).
    pub items: u64,
    /// The read of the events table (shared by the projections read together).
    pub read: Duration,
    /// Projections the read was shared by (1 when the projection was read alone).
    pub shared_by: usize,
    pub fold: Duration,
    pub write: Duration,
}

/// Reads the whole events table once (`segments` parallel scan segments) for every one of
/// `builds` (a projection and the version it builds), then, one after the other, folds each
/// projection's events and writes the result into its version, `in_flight`
/// `BatchWriteItem`s at once. `replay rebuild all` reads the log once for four projections
/// this way. Progress: the read against the table's approximate item count, then each
/// version's items written. Each projection's [`FullPass`] has the one read's figures.
pub async fn full_pass(
    replay: &Replay,
    builds: &[(Projection, u32)],
    segments: u32,
    in_flight: usize,
) -> Result<Vec<FullPass>, ReplayError> {
    let projections: Vec<Projection> = builds.iter().map(|(p, _)| *p).collect();
    let names: Vec<String> = builds.iter().map(|(p, v)| format!("{p} v{v}")).collect();
    let started = Instant::now();
    replay.progress.start(
        &format!("{} full pass: read", names.join(", ")),
        0,
        scan::describe_events(replay).await.map(|(count, _)| count),
    );
    let streams: Mutex<BTreeMap<String, Vec<StoredEvent>>> = Mutex::new(BTreeMap::new());
    let scanned = Mutex::new(0u64);
    common::tables::each_segment::<ReplayError, _, _>(segments, |segment| {
        let (streams, scanned, projections) = (&streams, &scanned, &projections);
        async move {
            let mut start: Option<Key> = None;
            loop {
                let page =
                    scan::page(replay, projections, segment, segments, start.take(), None).await?;
                replay.progress.add(page.scanned, 0);
                *scanned.lock().await += page.scanned;
                {
                    let mut streams = streams.lock().await;
                    for event in page.events {
                        streams.entry(event.stream_key()).or_default().push(event);
                    }
                }
                match page.next {
                    Some(key) => start = Some(key),
                    None => return Ok(()),
                }
            }
        }
    })
    .await?;
    replay.progress.finish();
    let read = started.elapsed();
    let scanned = scanned.into_inner();
    let mut streams = streams.into_inner();
    for events in streams.values_mut() {
        events.sort_by_key(|e| e.sequence);
        events.dedup_by_key(|e| e.sequence);
    }

    let mut passes = Vec::with_capacity(builds.len());
    for &(projection, version) in builds {
        let started = Instant::now();
        let mut bulk = AnyBulk::open(replay, projection, version).await?;
        let mut folded = 0;
        for events in streams.values() {
            if events
                .first()
                .is_some_and(|e| projection.accepts(&e.aggregate_type))
            {
                folded += bulk.fold(events).await?;
            }
        }
        let fold = started.elapsed();

        let started = Instant::now();
        let items = bulk.items();
        replay.progress.start(
            &format!("{projection} v{version} full pass: write"),
            0,
            Some(items),
        );
        let checkpoints_table = replay.tables(projection, version).checkpoints;
        let written = bulk.write(replay, &checkpoints_table, in_flight).await?;
        replay.progress.finish();
        passes.push(FullPass {
            scanned,
            folded,
            items: written,
            read,
            shared_by: builds.len(),
            fold,
            write: started.elapsed(),
        });
    }
    Ok(passes)
}
