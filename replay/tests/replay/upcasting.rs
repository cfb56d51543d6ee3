//! Old events stay readable: the fixture `tests/fixtures/log-v1.json` is the scenario's history
//! as the code of commit 659f1d3 wrote it (every event in version 1). Loaded into a fresh
//! events table, every aggregate folds to the same state as the same scenario written by
//! today's code (version 2 of `UserProfileUpdated`).

use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use common::config::TableNames;
use common::projections::Projection;
use events::article::Article;
use events::comment::ArticleComments;
use events::favorite::Favorite;
use events::user::User;
use events::{EventStore, Repository, StoredEvent, Tables};
use replay::rebuild::rebuild_all;
use replay::{RebuildOptions, Replay};

use super::scenario;

const FIXTURE: &str = include_str!("../fixtures/log-v1.json");

fn fixture() -> Vec<StoredEvent> {
    serde_json::from_str(FIXTURE).expect("fixture")
}

/// Writes `requests` into the events table, 25 a request.
async fn write_events(store: &EventStore, requests: Vec<WriteRequest>) {
    for chunk in requests.chunks(25) {
        let written = store
            .client()
            .batch_write_item()
            .request_items(&store.tables().events, chunk.to_vec())
            .send()
            .await
            .expect("writing the events table");
        assert!(written.unprocessed_items().is_none_or(|u| u.is_empty()));
    }
}

/// Writes `log` into the events table as it is (version, ids and times kept).
async fn write_log(store: &EventStore, log: &[StoredEvent]) {
    let puts = log
        .iter()
        .map(|event| {
            let put = PutRequest::builder()
                .set_item(Some(events::store::event_to_item(event)))
                .build()
                .expect("put");
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    write_events(store, puts).await;
}

/// Deletes every event of the scenario's aggregates.
async fn clear_log(store: &EventStore) {
    let mut deletes = Vec::new();
    for (kind, id) in scenario::aggregates() {
        for event in store.load(kind, &id).await.expect("loading the log") {
            let mut key = events::store::event_to_item(&event);
            key.retain(|name, _| name == schema::events::PK || name == schema::events::SK);
            let delete = DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .expect("delete");
            deletes.push(WriteRequest::builder().delete_request(delete).build());
        }
    }
    write_events(store, deletes).await;
}

async fn repository(tag: &str) -> Repository {
    let prefix = local_aws::testkit::unique_prefix(tag);
    let (clients, _) = local_aws::testkit::provisioned(&prefix).await;
    Repository::new(EventStore::new(
        clients.dynamodb,
        Tables::with_prefix(&prefix),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_log_loads_as_the_same_history_written_today() {
    let old = fixture();
    assert!(
        old.iter()
            .any(|e| e.event_type == "UserProfileUpdated" && e.event_version == 1),
        "the fixture holds version 1 profile updates"
    );
    let from_fixture = repository("upcastold").await;
    let store = from_fixture.store();
    write_log(store, &old).await;
    let today = repository("upcastnew").await;
    scenario::run(&today).await;

    for (kind, id) in scenario::aggregates() {
        let new_log = today.store().load(kind, &id).await.expect("new log");
        let old_log = store.load(kind, &id).await.expect("old log");
        assert_eq!(new_log.len(), old_log.len(), "{kind} {id}");
        for (new, old) in new_log.iter().zip(&old_log) {
            assert_eq!(new.event_type, old.event_type);
            if new.event_type == "UserProfileUpdated" {
                assert_eq!((old.event_version, new.event_version), (1, 2));
            }
        }
        match kind {
            "User" => same::<User>(&from_fixture, &today, &id).await,
            "Article" => same::<Article>(&from_fixture, &today, &id).await,
            "ArticleComments" => same::<ArticleComments>(&from_fixture, &today, &id).await,
            "Favorite" => same::<Favorite>(&from_fixture, &today, &id).await,
            other => panic!("no aggregate {other}"),
        }
    }
}

async fn same<A>(old: &Repository, new: &Repository, id: &str)
where
    A: events::Snapshotted + PartialEq + std::fmt::Debug,
    A::Event: events::EventSchema,
{
    let from_old = old.load::<A>(id).await.expect("loading the fixture");
    let from_new = new.load::<A>(id).await.expect("loading today's log");
    assert_eq!(from_old.sequence, from_new.sequence, "{} {id}", A::TYPE);
    assert_eq!(from_old.state, from_new.state, "{} {id}", A::TYPE);
}

/// Every projection rebuilt from the version 1 fixture equals, item by item, the same
/// projection rebuilt from the same history written by today's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_log_rebuilds_every_projection_as_today_s_log() {
    let prefix = local_aws::testkit::unique_prefix("upcastproj");
    let (clients, _) = local_aws::testkit::provisioned(&prefix).await;
    let repository = Repository::new(EventStore::new(
        clients.dynamodb.clone(),
        Tables::with_prefix(&prefix),
    ));
    write_log(repository.store(), &fixture()).await;
    let replay = Replay::in_process(
        clients.dynamodb,
        clients.streams,
        TableNames::with_prefix(&prefix),
        local_stack::search_versions(&prefix, None),
    );
    rebuild_all(&replay, &Projection::ALL, &RebuildOptions::default())
        .await
        .expect("rebuilding every projection from the version 1 log");

    clear_log(repository.store()).await;
    scenario::run(&repository).await;
    let options = RebuildOptions {
        verify: true,
        ..RebuildOptions::default()
    };
    let reports = rebuild_all(&replay, &Projection::ALL, &options)
        .await
        .expect("rebuilding every projection from today's log");
    super::assert_equal(&reports);
}
