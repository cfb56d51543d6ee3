//! The event store and the repository against DynamoDB Local: races, claims, paging, retries.

use events::user::{self, Email, User, UserCommand, UserError, UserUpdate, Username};
use events::{
    Commit, EventStore, Metadata, NewEvent, Repository, RepositoryError, StoreError, Tables,
};
use futures::future::join_all;
use uuid::Uuid;

pub(crate) async fn store(tag: &str) -> EventStore {
    let prefix = local_aws::testkit::unique_prefix(tag);
    let (clients, _) = local_aws::testkit::provisioned(&prefix).await;
    EventStore::new(clients.dynamodb, Tables::with_prefix(&prefix))
}

fn event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event_type.into(),
        event_version: 1,
        payload,
        metadata: Metadata::default(),
    }
}

fn commit(id: &str, expected: u64, events: Vec<NewEvent>) -> Commit {
    Commit {
        aggregate_type: "Test".into(),
        aggregate_id: id.into(),
        expected_sequence: expected,
        events,
        unique_changes: vec![],
        snapshot: None,
    }
}

pub(crate) fn register(id: &str, email: &str, name: &str) -> UserCommand {
    UserCommand::Register {
        user_id: id.into(),
        email: Email::parse(email).expect("email"),
        username: Username::parse(name).expect("username"),
        password_hash: "hash".into(),
    }
}

#[tokio::test]
async fn concurrent_appends_to_one_aggregate_have_exactly_one_winner() {
    let store = store("race").await;
    store
        .append(commit(
            "a",
            0,
            vec![event("Created", serde_json::json!({}))],
        ))
        .await
        .expect("first event");

    let writers = (0..12).map(|i| {
        let store = store.clone();
        async move {
            store
                .append(commit(
                    "a",
                    1,
                    vec![event("Changed", serde_json::json!({ "writer": i }))],
                ))
                .await
        }
    });
    let results = join_all(writers).await;
    let winners: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one writer wins: {results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(
                matches!(error, StoreError::Conflict { expected: 1, .. }),
                "{error:?}"
            );
        }
    }

    let stored = store.load("Test", "a").await.expect("load");
    assert_eq!(stored.len(), 2);
    let winner = winners[0].as_ref().expect("winner");
    assert_eq!(
        stored[1].event_id, winner[0].event_id,
        "the winner's event is the one stored"
    );
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_make_exactly_one_user() {
    let store = store("claims").await;
    let repository = Repository::new(store.clone());
    let attempts = (0..10).map(|i| {
        let repository = repository.clone();
        async move {
            let id = Uuid::new_v4().to_string();
            repository
                .execute::<User>(
                    &id,
                    register(&id, "same@example.com", &format!("racer{i}")),
                    Metadata::default(),
                )
                .await
                .map(|_| id)
        }
    });
    let results = join_all(attempts).await;
    let winners: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(
                matches!(error, RepositoryError::Store(StoreError::UniqueTaken { key }) if key == "email#same@example.com"),
                "{error:?}"
            );
        }
    }
    let owner = store
        .owner_of(&user::email_key("SAME@example.com"))
        .await
        .expect("owner");
    assert_eq!(owner, Some(format!("User#{}", winners[0])));
}

#[tokio::test]
async fn an_aggregate_of_more_than_one_megabyte_loads_whole() {
    let store = store("big").await;
    let filler = "x".repeat(4_000);
    let mut expected = 0;
    // 320 events of about 4 KB: 1.3 MB, more than one Query page.
    for _ in 0..16 {
        let events = (0..20)
            .map(|_| event("Grown", serde_json::json!({ "filler": filler })))
            .collect();
        expected += store
            .append(commit("big", expected, events))
            .await
            .expect("append")
            .len() as u64;
    }
    let loaded = store.load("Test", "big").await.expect("load");
    assert_eq!(loaded.len(), 320);
    assert!(loaded
        .iter()
        .enumerate()
        .all(|(i, e)| e.sequence == i as u64 + 1));
    let bytes: usize = loaded.iter().map(|e| e.payload.to_string().len()).sum();
    assert!(bytes > 1_048_576, "the stream is over 1 MB ({bytes} bytes)");
}

#[tokio::test]
async fn retrying_a_commit_that_succeeded_appends_nothing() {
    let store = store("retry").await;
    let first = commit("r", 0, vec![event("Created", serde_json::json!({"n": 1}))]);
    let stored = store.append(first.clone()).await.expect("first attempt");
    // The same commit again, as a client whose response was lost would send it.
    let again = store
        .append(first.clone())
        .await
        .expect("retry is not an error");
    assert_eq!(again, stored);
    assert_eq!(store.load("Test", "r").await.expect("load").len(), 1);

    // A different event at the same position is a conflict, not a retry.
    let rival = commit("r", 0, vec![event("Created", serde_json::json!({"n": 2}))]);
    assert!(matches!(
        store.append(rival).await,
        Err(StoreError::Conflict { .. })
    ));
}

#[tokio::test]
async fn a_rename_releases_the_old_username_in_the_same_commit() {
    let store = store("rename").await;
    let repository = Repository::new(store.clone());
    let (a, b) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    repository
        .execute::<User>(
            &a,
            register(&a, "a@example.com", "alpha"),
            Metadata::default(),
        )
        .await
        .expect("register a");
    repository
        .execute::<User>(
            &a,
            UserCommand::Update(UserUpdate {
                username: Some(Username::parse("omega").expect("username")),
                ..UserUpdate::default()
            }),
            Metadata::default(),
        )
        .await
        .expect("rename");
    assert_eq!(
        store
            .owner_of(&user::username_key("alpha"))
            .await
            .expect("read"),
        None
    );
    repository
        .execute::<User>(
            &b,
            register(&b, "b@example.com", "alpha"),
            Metadata::default(),
        )
        .await
        .expect("the released name is free again");
    let taken = repository
        .execute::<User>(
            &b,
            UserCommand::Update(UserUpdate {
                username: Some(Username::parse("omega").expect("username")),
                ..UserUpdate::default()
            }),
            Metadata::default(),
        )
        .await;
    assert!(
        matches!(
            taken,
            Err(RepositoryError::Store(StoreError::UniqueTaken { .. }))
        ),
        "{taken:?}"
    );
}

#[tokio::test]
async fn events_are_stored_readable_with_their_version_and_metadata() {
    let store = store("shape").await;
    let repository = Repository::new(store.clone());
    let id = Uuid::new_v4().to_string();
    let metadata = Metadata {
        actor: Some(id.clone()),
        correlation_id: Some("req-1".into()),
        causation_id: None,
        request_id: Some("req-1".into()),
    };
    repository
        .execute::<User>(
            &id,
            register(&id, "shape@example.com", "shape"),
            metadata.clone(),
        )
        .await
        .expect("register");
    let item = store
        .client()
        .get_item()
        .table_name(&store.tables().events)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("User#{id}")),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("stored");
    assert_eq!(item["eventType"].as_s().expect("type"), "UserRegistered");
    assert_eq!(item["eventVersion"].as_n().expect("version"), "1");
    let payload: serde_json::Value =
        serde_json::from_str(item["payload"].as_s().expect("payload text")).expect("json");
    assert_eq!(payload["email"], "shape@example.com");
    let stored = store.load("User", &id).await.expect("load");
    assert_eq!(stored[0].metadata, metadata);

    let refused = repository
        .execute::<User>(
            &id,
            UserCommand::Follow {
                followee_id: id.clone(),
            },
            Metadata::default(),
        )
        .await;
    assert!(matches!(
        refused,
        Err(RepositoryError::Domain(UserError::CannotFollowSelf))
    ));
    assert_eq!(
        store.load("User", &id).await.expect("load").len(),
        1,
        "a refusal appends nothing"
    );
}
