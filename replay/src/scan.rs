//! Reading the `events` table for a replay: scan pages of one segment, and applying events with the live projector code (catch-up passes), aggregates in parallel.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::projections::Projection;
use events::StoredEvent;
use futures::stream::{self, StreamExt, TryStreamExt};
use projectors::{
    ArticlesProjector, FeedProjector, ProjectionError, ProjectorRuntime, SearchProjector,
    UsersProjector,
};

use crate::{store_error, Replay, ReplayError};

/// A table key, as `ExclusiveStartKey` / `LastEvaluatedKey`.
pub type Key = std::collections::HashMap<String, AttributeValue>;

/// What `DescribeTable` says of the events table: its item count and size in bytes, as
/// DynamoDB last computed them (every six hours or so on AWS). `None` if it could not be
/// described.
pub async fn describe_events(replay: &Replay) -> Option<(u64, u64)> {
    match common::tables::size(&replay.client, &replay.base.events).await {
        Ok(size) => size,
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "the events table's size is unknown"
            );
            None
        }
    }
}

/// How often a run of events that failed for a passing reason (contention, a busy lease) is
/// tried again before the pass gives up.
const RUN_ATTEMPTS: u32 = 5;

/// The projector of one projection version, whichever it is.
pub enum AnyRuntime {
    Users(ProjectorRuntime<UsersProjector>),
    Articles(ProjectorRuntime<ArticlesProjector>),
    Feed(ProjectorRuntime<FeedProjector>),
    Search(ProjectorRuntime<SearchProjector>),
}

impl AnyRuntime {
    /// The runtime of `projection` at `version` (its search index is opened, or created).
    pub async fn open(
        replay: &Replay,
        projection: Projection,
        version: u32,
    ) -> Result<Self, ReplayError> {
        let tables = replay.tables(projection, version);
        let client = &replay.client;
        Ok(match projection {
            Projection::Users => Self::Users(UsersProjector::runtime(client, &tables)),
            Projection::Articles => Self::Articles(ArticlesProjector::runtime(client, &tables)),
            Projection::Feed => Self::Feed(FeedProjector::runtime(client, &tables)),
            Projection::Search => Self::Search(SearchProjector::runtime(
                client,
                &tables,
                replay.search.index(version).await?,
            )),
        })
    }

    /// See [`ProjectorRuntime::project_run`].
    pub async fn project_run(&self, events: &[StoredEvent]) -> Result<u64, ProjectionError> {
        match self {
            Self::Users(r) => r.project_run(events).await,
            Self::Articles(r) => r.project_run(events).await,
            Self::Feed(r) => r.project_run(events).await,
            Self::Search(r) => r.project_run(events).await,
        }
    }
}

/// One page of a scan segment.
pub struct Page {
    /// The page's events that `projection` applies.
    pub events: Vec<StoredEvent>,
    /// Items the page read (before any filter): what the progress counts.
    pub scanned: u64,
    /// Where the segment goes on; `None` at its end.
    pub next: Option<Key>,
}

/// Reads one page of `segment` of `segments` from `start`, strongly consistent (an event
/// committed before the page was read is in it, if its key is in the page's range): the
/// events of the aggregate types of `projections` (one or several read at once), only those
/// recorded at or after `since` (ISO 8601 ms, which sorts as text) if given.
pub async fn page(
    replay: &Replay,
    projections: &[Projection],
    segment: u32,
    segments: u32,
    start: Option<Key>,
    since: Option<&str>,
) -> Result<Page, ReplayError> {
    let types: Vec<&str> = projections
        .iter()
        .flat_map(|p| p.aggregate_types().iter().copied())
        .collect();
    read_page(replay, &types, segment, segments, start, since).await
}

/// [`page`], for the events of `types`.
pub async fn page_of_types(
    replay: &Replay,
    types: &[&str],
    segment: u32,
    segments: u32,
    start: Option<Key>,
) -> Result<Page, ReplayError> {
    read_page(replay, types, segment, segments, start, None).await
}

async fn read_page(
    replay: &Replay,
    types: &[&str],
    segment: u32,
    segments: u32,
    start: Option<Key>,
    since: Option<&str>,
) -> Result<Page, ReplayError> {
    // Only these aggregate types come back: DynamoDB still reads (and bills) every item, but
    // sends, and the client decodes, only those.
    let mut types = types.to_vec();
    types.sort_unstable();
    types.dedup();
    let placeholders: Vec<String> = (0..types.len()).map(|i| format!(":t{i}")).collect();
    let mut filter = format!("#aggregateType IN ({})", placeholders.join(", "));
    let mut request = replay
        .client
        .scan()
        .table_name(&replay.base.events)
        .consistent_read(true)
        .segment(segment as i32)
        .total_segments(segments as i32)
        .set_exclusive_start_key(start)
        .expression_attribute_names("#aggregateType", "aggregateType");
    for (placeholder, kind) in placeholders.iter().zip(&types) {
        request =
            request.expression_attribute_values(placeholder, AttributeValue::S((*kind).to_owned()));
    }
    if let Some(since) = since {
        filter.push_str(" AND #recordedAt >= :since");
        request = request
            .expression_attribute_names("#recordedAt", "recordedAt")
            .expression_attribute_values(":since", AttributeValue::S(since.to_owned()));
    }
    let request = request.filter_expression(filter);
    let output = request
        .send()
        .await
        .map_err(store_error("scanning the events"))?;
    let mut events = Vec::with_capacity(output.items().len());
    for item in output.items() {
        let event = events::store::event_from_item(item).map_err(|e| {
            ReplayError::Projection(ProjectionError::Unreadable(format!(
                "an item of the events table: {e}"
            )))
        })?;
        if types.contains(&event.aggregate_type.as_str()) {
            events.push(event);
        }
    }
    Ok(Page {
        events,
        scanned: output.scanned_count().max(0) as u64,
        next: output.last_evaluated_key.filter(|key| !key.is_empty()),
    })
}

/// Splits a page's events into runs of consecutive events of one aggregate, each run in
/// sequence order, grouped by aggregate (the runs of one aggregate in order).
pub fn runs(events: Vec<StoredEvent>) -> Vec<Vec<Vec<StoredEvent>>> {
    let mut streams: BTreeMap<String, Vec<StoredEvent>> = BTreeMap::new();
    for event in events {
        streams.entry(event.stream_key()).or_default().push(event);
    }
    streams
        .into_values()
        .map(|mut events| {
            events.sort_by_key(|e| e.sequence);
            events.dedup_by_key(|e| e.sequence);
            let mut runs: Vec<Vec<StoredEvent>> = Vec::new();
            for event in events {
                match runs.last_mut() {
                    Some(run) if run.last().is_some_and(|e| e.sequence + 1 == event.sequence) => {
                        run.push(event)
                    }
                    _ => runs.push(vec![event]),
                }
            }
            runs
        })
        .collect()
}

/// Applies a page's events: aggregates `concurrency` at a time, each aggregate's runs in
/// order. Returns how many events were applied now (not already).
pub async fn apply(
    runtime: &AnyRuntime,
    events: Vec<StoredEvent>,
    concurrency: usize,
) -> Result<u64, ReplayError> {
    let applied: Vec<u64> = stream::iter(runs(events))
        .map(|stream_runs| async move {
            let mut applied = 0;
            for run in &stream_runs {
                applied += apply_run(runtime, run).await?;
            }
            Ok::<u64, ReplayError>(applied)
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(applied.into_iter().sum())
}

async fn apply_run(runtime: &AnyRuntime, run: &[StoredEvent]) -> Result<u64, ReplayError> {
    let mut pause = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match runtime.project_run(run).await {
            Ok(applied) => return Ok(applied),
            Err(
                error @ (ProjectionError::Contended(_)
                | ProjectionError::Unavailable(_)
                | ProjectionError::Paused(_)),
            ) if attempt < RUN_ATTEMPTS => {
                // A paused fan-out goes on from its saved cursor (progress: not an attempt);
                // contention passes.
                if !matches!(error, ProjectionError::Paused(_)) {
                    let stream = run.first().map(StoredEvent::stream_key).unwrap_or_default();
                    let sequence = run.first().map_or(0, |e| e.sequence);
                    tracing::warn!(%error, %stream, sequence, attempt, "applying a run failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
            }
            Err(error) => {
                let first = run.first().map(|e| (e.stream_key(), e.sequence));
                return Err(ReplayError::Projection(match first {
                    Some((stream, sequence)) => ProjectionError::Unavailable(format!(
                        "{stream} from sequence {sequence}: {error}"
                    )),
                    None => error,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(aggregate: &str, sequence: u64) -> StoredEvent {
        StoredEvent {
            aggregate_type: "User".into(),
            aggregate_id: aggregate.into(),
            sequence,
            event_id: uuid::Uuid::new_v4(),
            event_type: "UserRenamed".into(),
            event_version: 1,
            payload: serde_json::json!({}),
            metadata: Default::default(),
            recorded_at: "2024-01-01T00:00:00.000Z".into(),
        }
    }

    fn shape(runs: &[Vec<Vec<StoredEvent>>]) -> Vec<Vec<Vec<(String, u64)>>> {
        runs.iter()
            .map(|stream| {
                stream
                    .iter()
                    .map(|run| {
                        run.iter()
                            .map(|e| (e.aggregate_id.clone(), e.sequence))
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_page_splits_into_ordered_consecutive_runs_per_aggregate() {
        let page = vec![
            event("b", 2),
            event("a", 3),
            event("b", 1),
            event("a", 1),
            event("a", 2),
            event("b", 5),
            event("b", 2),
        ];
        let s = |id: &str, n: u64| (id.to_owned(), n);
        assert_eq!(
            shape(&runs(page)),
            vec![
                vec![vec![s("a", 1), s("a", 2), s("a", 3)]],
                vec![vec![s("b", 1), s("b", 2)], vec![s("b", 5)]],
            ]
        );
        assert!(runs(Vec::new()).is_empty());
    }
}
