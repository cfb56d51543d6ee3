//! The rebuild's stream tail on DynamoDB Local: it reads what was appended after it started
//! and nothing before, goes on after saved positions, and says it is lost, rather than
//! reading nothing, when positions cannot be used.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::config::TableNames;
use events::StoredEvent;
use local_aws::Clients;
use replay::tail::{Drained, ShardPosition, StreamTail, TailError, TailPositions};

/// How long DynamoDB Local may take to show a committed write in its stream.
const VISIBLE_WITHIN: Duration = Duration::from_secs(10);

fn events(aggregate: &str, sequences: std::ops::RangeInclusive<u64>) -> Vec<StoredEvent> {
    sequences
        .map(|sequence| StoredEvent {
            aggregate_type: "User".into(),
            aggregate_id: aggregate.into(),
            sequence,
            event_id: uuid::Uuid::new_v4(),
            event_type: "UserProfileUpdated".into(),
            event_version: 2,
            payload: serde_json::json!({"bio": format!("bio {sequence}")}),
            metadata: Default::default(),
            recorded_at: "2024-01-01T00:00:00.000Z".into(),
        })
        .collect()
}

async fn append(clients: &Clients, tables: &TableNames, events: &[StoredEvent]) {
    for event in events {
        clients
            .dynamodb
            .put_item()
            .table_name(&tables.events)
            .set_item(Some(events::store::event_to_item(event)))
            .send()
            .await
            .expect("appending an event");
    }
}

fn ids(events: &[StoredEvent]) -> BTreeSet<uuid::Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

/// Drains until `n` events came (the stream shows a write a moment after it), then once more
/// to the end: what it returns is everything the tail had to read.
async fn drain_all(tail: &mut StreamTail, n: usize) -> Drained {
    let started = Instant::now();
    let mut all = Drained::default();
    while all.events.len() < n && started.elapsed() < VISIBLE_WITHIN {
        tail.drain_into(1, &mut all).await.expect("draining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tail.drain_into(2, &mut all)
        .await
        .expect("draining to the end");
    all
}

async fn resume(
    clients: &Clients,
    tables: &TableNames,
    positions: &TailPositions,
) -> Result<StreamTail, TailError> {
    StreamTail::resume(
        &clients.dynamodb,
        &clients.streams,
        &tables.events,
        positions,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_reads_what_was_appended_after_it_started_and_resumes_after_its_positions() {
    let prefix = local_aws::testkit::unique_prefix("tail");
    let (clients, _) = local_aws::testkit::provisioned(&prefix).await;
    let tables = TableNames::with_prefix(&prefix);
    // Before the tail started: the full pass's, not the tail's.
    append(&clients, &tables, &events("before", 1..=5)).await;

    let mut tail = StreamTail::start(&clients.dynamodb, &clients.streams, &tables.events)
        .await
        .expect("starting the tail");
    let first: Vec<StoredEvent> = [events("a", 1..=4), events("b", 1..=3)].concat();
    append(&clients, &tables, &first).await;
    let drained = drain_all(&mut tail, first.len()).await;
    assert_eq!(ids(&drained.events), ids(&first));
    assert_eq!(drained.events.len(), first.len(), "read once each");
    assert_eq!(drained.records, first.len() as u64);
    assert!(drained.get_records >= 1);
    // A stream record's image reads as the event written.
    let a3 = first
        .iter()
        .find(|e| e.aggregate_id == "a" && e.sequence == 3);
    let read = drained
        .events
        .iter()
        .find(|e| e.aggregate_id == "a" && e.sequence == 3);
    assert_eq!(read, a3);
    // At the end, a drain reads nothing more, for one GetRecords call a shard or two.
    let quiet = tail.drain(2).await.expect("draining a quiet stream");
    assert_eq!((quiet.events.len(), quiet.records), (0, 0));
    assert!((1..=2).contains(&quiet.get_records), "{quiet:?}");

    let positions = tail.positions();
    assert_eq!(positions.stream_arn, tail.stream_arn());
    assert!(
        positions
            .shards
            .values()
            .any(|p| matches!(p, ShardPosition::After(_))),
        "{positions:?}"
    );
    let second: Vec<StoredEvent> = [events("a", 5..=6), events("c", 1..=2)].concat();
    append(&clients, &tables, &second).await;
    let mut resumed = resume(&clients, &tables, &positions)
        .await
        .expect("resuming after the positions");
    let drained = drain_all(&mut resumed, second.len()).await;
    assert_eq!(ids(&drained.events), ids(&second));
    assert_eq!(drained.events.len(), second.len());

    // Positions that cannot be used say so, instead of reading nothing.
    let with = |position: &str| TailPositions {
        shards: positions
            .shards
            .keys()
            .map(|id| (id.clone(), ShardPosition::After(position.to_owned())))
            .collect(),
        ..positions.clone()
    };
    for (what, bad) in [
        ("a garbage sequence number", with("garbage")),
        (
            "a sequence number before the shard's first",
            with("000000000000000000000"),
        ),
        (
            "positions older than the stream keeps records",
            TailPositions {
                taken_at: positions.taken_at - 25 * 60 * 60 * 1000,
                ..positions.clone()
            },
        ),
        (
            "another stream",
            TailPositions {
                stream_arn: format!("{}-gone", positions.stream_arn),
                ..positions.clone()
            },
        ),
    ] {
        match resume(&clients, &tables, &bad).await {
            Err(TailError::Lost(why)) => eprintln!("{what}: lost: {why}"),
            Err(other) => panic!("{what}: not a lost tail: {other}"),
            Ok(mut tail) => panic!(
                "{what}: resumed, and read {:?}",
                tail.drain(2).await.map(|d| d.events.len())
            ),
        }
    }
}
