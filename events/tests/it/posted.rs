//! Posted events against DynamoDB Local: id claims taken once in the events' transaction, and
//! the repository's replay, reuse and concurrency answers.

use std::collections::BTreeMap;

use events::posted::{PostError, PostOutcome, RawPost, Refusal};
use events::user::User;
use events::{
    Commit, EventStore, Metadata, NewEvent, Repository, StoreError, Tables, UniqueChange,
};
use serde_json::{json, Value};
use uuid::Uuid;

async fn store(tag: &str) -> EventStore {
    let prefix = local_aws::testkit::unique_prefix(tag);
    let (clients, _) = local_aws::testkit::provisioned(&prefix).await;
    EventStore::new(clients.dynamodb, Tables::with_prefix(&prefix))
}

fn once(key: &str, hash: &str) -> UniqueChange {
    UniqueChange::ClaimOnce {
        key: key.into(),
        attributes: BTreeMap::from([("contentHash".to_owned(), hash.to_owned())]),
    }
}

fn commit(id: &str, expected: u64, unique_changes: Vec<UniqueChange>) -> Commit {
    Commit {
        aggregate_type: "Test".into(),
        aggregate_id: id.into(),
        expected_sequence: expected,
        events: vec![NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "Happened".into(),
            event_version: 1,
            payload: json!({}),
            metadata: Metadata::default(),
        }],
        unique_changes,
        snapshot: None,
    }
}

#[tokio::test]
async fn a_claim_once_is_taken_with_its_attributes_and_never_again() {
    let store = store("once").await;
    store
        .append(commit("a", 0, vec![once("event#1", "h1")]))
        .await
        .expect("first claim");
    let claim = store
        .claim("event#1")
        .await
        .expect("read")
        .expect("claimed");
    assert_eq!(claim.owner, "Test#a");
    assert_eq!(
        claim.attributes.get("contentHash").map(String::as_str),
        Some("h1")
    );
    assert_eq!(store.claim("event#2").await.expect("read"), None);

    // Not even by its own aggregate, and nothing of the commit is appended.
    for id in ["a", "b"] {
        let expected = if id == "a" { 1 } else { 0 };
        match store
            .append(commit(id, expected, vec![once("event#1", "h2")]))
            .await
        {
            Err(StoreError::UniqueTaken { key }) => assert_eq!(key, "event#1"),
            other => panic!("{id}: expected the key to be taken, got {other:?}"),
        }
    }
    assert_eq!(store.load("Test", "a").await.expect("load").len(), 1);
    assert!(store.load("Test", "b").await.expect("load").is_empty());
    let claim = store
        .claim("event#1")
        .await
        .expect("read")
        .expect("claimed");
    assert_eq!(
        claim.attributes.get("contentHash").map(String::as_str),
        Some("h1")
    );
}

fn registration(id: &str, name: &str) -> Value {
    json!({
        "eventId": Uuid::new_v4().to_string(),
        "type": "UserRegistered",
        "version": 1,
        "aggregateType": "User",
        "aggregateId": id,
        "data": {"userId": id, "email": format!("{name}@example.test"), "username": name},
    })
}

async fn post(
    repository: &Repository,
    body: &Value,
    actor: &str,
) -> Result<PostOutcome, PostError> {
    let post = RawPost::parse(body)
        .expect("envelope")
        .typed::<events::user::UserEvent>()
        .expect("schema");
    let metadata = Metadata {
        actor: Some(actor.to_owned()),
        ..Metadata::default()
    };
    repository.post::<User>(post, actor, metadata).await
}

#[tokio::test]
async fn a_post_is_appended_once_and_replayed_after() {
    let repository = Repository::new(store("posted").await);
    let id = Uuid::new_v4().to_string();
    let body = json!({ "events": [registration(&id, "poster")] });
    let appended = match post(&repository, &body, &id).await {
        Ok(PostOutcome::Appended(events)) => events,
        other => panic!("expected an append, got {other:?}"),
    };
    assert_eq!(appended[0].sequence, 1);
    assert_eq!(appended[0].metadata.actor.as_deref(), Some(id.as_str()));
    match post(&repository, &body, &id).await {
        Ok(PostOutcome::Replayed(events)) => assert_eq!(events, appended),
        other => panic!("expected a replay, got {other:?}"),
    }
    // The same events as someone else: not theirs to replay.
    let other = Uuid::new_v4().to_string();
    assert!(matches!(
        post(&repository, &body, &other).await,
        Err(PostError::Refused {
            index: 0,
            refusal: Refusal::Forbidden
        })
    ));
    let mut changed = body.clone();
    changed["events"][0]["data"]["username"] = json!("renamed");
    assert!(matches!(
        post(&repository, &changed, &id).await,
        Err(PostError::EventIdReused { index: 0 })
    ));
    // A username someone holds, under a new event id.
    let second = Uuid::new_v4().to_string();
    let taken = json!({ "events": [registration(&second, "poster")] });
    match post(&repository, &taken, &second).await {
        Err(PostError::Taken {
            index: 0, field, ..
        }) => assert_eq!(field, "data.email"),
        other => panic!("expected a taken key, got {other:?}"),
    }
    assert_eq!(
        repository
            .store()
            .load("User", &id)
            .await
            .expect("load")
            .len(),
        1
    );
    assert!(repository
        .store()
        .load("User", &second)
        .await
        .expect("load")
        .is_empty());
}
