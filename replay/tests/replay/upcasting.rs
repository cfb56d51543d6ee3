//! Old events stay readable: the fixture `tests/fixtures/log-v1.json` is the scenario's history
//! as the code of commit 659f1d3 wrote it (every event in version 1). Loaded into a fresh
//! events table, every aggregate folds to the same state as the same scenario written by
//! today's code (version 2 of `UserProfileUpdated`).

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use events::article::Article;
use events::comment::ArticleComments;
use events::favorite::Favorite;
use events::user::User;
use events::{EventStore, Repository, StoredEvent, Tables};

use super::scenario;

const FIXTURE: &str = include_str!("../fixtures/log-v1.json");

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
    let old: Vec<StoredEvent> = serde_json::from_str(FIXTURE).expect("fixture");
    assert!(
        old.iter()
            .any(|e| e.event_type == "UserProfileUpdated" && e.event_version == 1),
        "the fixture holds version 1 profile updates"
    );
    let from_fixture = repository("upcastold").await;
    let store = from_fixture.store();
    for chunk in old.chunks(25) {
        let writes = chunk
            .iter()
            .map(|event| {
                let put = PutRequest::builder()
                    .set_item(Some(events::store::event_to_item(event)))
                    .build()
                    .expect("put");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let written = store
            .client()
            .batch_write_item()
            .request_items(&store.tables().events, writes)
            .send()
            .await
            .expect("writing the fixture");
        assert!(written.unprocessed_items().is_none_or(|u| u.is_empty()));
    }
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
