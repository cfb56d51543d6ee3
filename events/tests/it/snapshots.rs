//! Snapshots against DynamoDB Local: written in the append's transaction, only by the winner of
//! a race, ignored when of another shape, and bounding what a load reads.

use cqrs_es::Aggregate;
use events::snapshot::SNAPSHOT_EVERY;
use events::user::{User, UserCommand, UserEvent};
use events::{Commit, Metadata, Repository, Snapshot, Snapshotted, StoreError};
use futures::future::join_all;
use uuid::Uuid;

use crate::store::{register, store};

/// A registered user with `events` events in all: following and unfollowing `other` in turn.
async fn user_with(repository: &Repository, events: u64) -> String {
    let id = Uuid::new_v4().to_string();
    let email = format!("{}@example.com", &id[..8]);
    let name = format!("u{}", &id[..8]);
    repository
        .execute::<User>(&id, register(&id, &email, &name), Metadata::default())
        .await
        .expect("register");
    for n in 1..events {
        let followee_id = "other".to_owned();
        let command = if n % 2 == 1 {
            UserCommand::Follow { followee_id }
        } else {
            UserCommand::Unfollow { followee_id }
        };
        let executed = repository
            .execute::<User>(&id, command, Metadata::default())
            .await
            .expect("follow or unfollow");
        assert_eq!(executed.sequence, n + 1, "one event a command");
    }
    id
}

/// The load through the snapshot equals the fold of every event.
async fn assert_loads_whole(repository: &Repository, id: &str) -> u64 {
    let loaded = repository.load::<User>(id).await.expect("load");
    let folded = repository.load_from_events::<User>(id).await.expect("fold");
    assert_eq!(loaded.state, folded.state);
    assert_eq!(loaded.sequence, folded.sequence);
    loaded.snapshot_sequence
}

#[tokio::test]
async fn snapshots_are_written_every_so_many_events_and_bound_the_load() {
    let store = store("snap-every").await;
    let repository = Repository::new(store.clone());
    let id = user_with(&repository, 2 * SNAPSHOT_EVERY + 30).await;

    let snapshot = store
        .snapshot(User::TYPE, &id)
        .await
        .expect("read")
        .expect("a snapshot");
    assert_eq!(snapshot.sequence, 2 * SNAPSHOT_EVERY);
    assert_eq!(snapshot.shape, User::SHAPE);
    let covered = assert_loads_whole(&repository, &id).await;
    assert_eq!(
        covered,
        2 * SNAPSHOT_EVERY,
        "the load starts from the snapshot"
    );
    let loaded = repository.load::<User>(&id).await.expect("load");
    assert!(loaded.sequence - loaded.snapshot_sequence < SNAPSHOT_EVERY);
}

#[tokio::test]
async fn of_two_racing_commits_with_snapshots_only_the_winner_writes_its_snapshot() {
    let store = store("snap-race").await;
    let repository = Repository::new(store.clone());
    let id = user_with(&repository, SNAPSHOT_EVERY - 1).await;
    let loaded = repository.load::<User>(&id).await.expect("load");
    assert_eq!(loaded.snapshot_sequence, 0, "no snapshot yet");

    // Each writer follows someone else from the same loaded state: its commit reaches
    // `SNAPSHOT_EVERY` events and carries its own snapshot.
    let writers = (0..8).map(|i| {
        let store = store.clone();
        let mut state = loaded.state.clone();
        let (sequence, covered) = (loaded.sequence, loaded.snapshot_sequence);
        let id = id.clone();
        async move {
            let event = UserEvent::UserFollowed {
                followee_id: format!("writer{i}"),
            };
            state.apply(event.clone());
            let commit = Commit::of(User::TYPE, &id, sequence, &[event], &Metadata::default())
                .with_snapshot(&state, covered);
            assert!(commit.snapshot.is_some(), "the commit carries a snapshot");
            store.append(commit).await.map(|_| state)
        }
    });
    let results = join_all(writers).await;
    let winners: Vec<&User> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one writer wins: {results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
        }
    }

    let snapshot = store
        .snapshot(User::TYPE, &id)
        .await
        .expect("read")
        .expect("the winner's snapshot");
    assert_eq!(snapshot.sequence, SNAPSHOT_EVERY);
    assert_eq!(snapshot.restore::<User>().as_ref(), Some(winners[0]));
    assert_eq!(assert_loads_whole(&repository, &id).await, SNAPSHOT_EVERY);
}

#[tokio::test]
async fn a_snapshot_of_another_shape_or_unreadable_is_ignored_then_replaced() {
    let store = store("snap-shape").await;
    let repository = Repository::new(store.clone());
    let id = user_with(&repository, 3).await;

    for forged in [
        Snapshot {
            sequence: 4,
            shape: User::SHAPE + 1,
            state: "{\"a\":\"shape from another version\"}".into(),
        },
        Snapshot {
            sequence: 5,
            shape: User::SHAPE,
            state: "{\"id\": 5".into(),
        },
    ] {
        // A commit carrying a snapshot the current code cannot use, as another version of it
        // (or a bug) would have written.
        let loaded = repository.load::<User>(&id).await.expect("load");
        let event = UserEvent::UserFollowed {
            followee_id: format!("at{}", forged.sequence),
        };
        let mut commit = Commit::of(
            User::TYPE,
            &id,
            loaded.sequence,
            &[event],
            &Metadata::default(),
        );
        commit.snapshot = Some(forged.clone());
        store.append(commit).await.expect("append");
        assert_eq!(
            store.snapshot(User::TYPE, &id).await.expect("read"),
            Some(forged)
        );
        assert_eq!(
            assert_loads_whole(&repository, &id).await,
            0,
            "folded from the first event"
        );
    }

    // The tail is counted from the start then: the next command's commit writes a snapshot
    // once the stream holds `SNAPSHOT_EVERY` events.
    for _ in 5..SNAPSHOT_EVERY {
        let loaded = repository.load::<User>(&id).await.expect("load");
        repository
            .execute::<User>(
                &id,
                UserCommand::Follow {
                    followee_id: format!("at{}", loaded.sequence + 1),
                },
                Metadata::default(),
            )
            .await
            .expect("follow");
    }
    let snapshot = store
        .snapshot(User::TYPE, &id)
        .await
        .expect("read")
        .expect("a snapshot");
    assert_eq!(
        (snapshot.sequence, snapshot.shape),
        (SNAPSHOT_EVERY, User::SHAPE)
    );
    assert_eq!(assert_loads_whole(&repository, &id).await, SNAPSHOT_EVERY);
}
