//! The users projector against DynamoDB Local and moto: duplicates, reordering, gaps, poison messages.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::{messages, sns_body, sqs_event, GARBAGE_NOTIFICATION};
use aws_sdk_dynamodb::types::AttributeValue;
use events::user::{Email, User, UserCommand, UserUpdate, Username};
use events::views::users::UserView;
use events::{Metadata, Repository, StoredEvent};
use infra::resources::USERS_PROJECTOR_QUEUE;
use projectors::runtime::Outcome;
use projectors::UsersProjector;
use uuid::Uuid;

type Fixture = crate::support::Fixture<UsersProjector>;

async fn fixture(tag: &str) -> Fixture {
    Fixture::new(tag, UsersProjector::runtime).await
}

impl Fixture {
    /// A user with a history of six events: register, profile, two follows, an unfollow, a rename.
    async fn user_with_history(&self, name: &str) -> (String, Vec<StoredEvent>) {
        let id = Uuid::new_v4().to_string();
        let commands = vec![
            UserCommand::Register {
                user_id: id.clone(),
                email: Email::parse(&format!("{name}@example.com")).expect("email"),
                username: Username::parse(name).expect("username"),
                password_hash: "$argon2id$secret".into(),
            },
            UserCommand::Update(UserUpdate {
                bio: Some("bio".into()),
                image: Some("https://img/x.png".into()),
                ..UserUpdate::default()
            }),
            UserCommand::Follow {
                followee_id: "followee-a".into(),
            },
            UserCommand::Follow {
                followee_id: "followee-b".into(),
            },
            UserCommand::Unfollow {
                followee_id: "followee-a".into(),
            },
            UserCommand::Update(UserUpdate {
                username: Some(Username::parse(&format!("{name}-renamed")).expect("username")),
                ..UserUpdate::default()
            }),
        ];
        let repository = Repository::new(self.store.clone());
        for command in commands {
            repository
                .execute::<User>(&id, command, Metadata::default())
                .await
                .expect("command");
        }
        let events = self.store.load("User", &id).await.expect("load");
        assert_eq!(events.len(), 6);
        (id, events)
    }

    async fn view(&self, user_id: &str) -> Option<(UserView, BTreeSet<String>)> {
        let item = crate::support::get_item(
            &self.clients.dynamodb,
            &self.tables.users,
            "userId",
            user_id,
        )
        .await?;
        let follows = self
            .clients
            .dynamodb
            .query()
            .table_name(&self.tables.follows)
            .key_condition_expression("followerId = :f")
            .expression_attribute_values(":f", AttributeValue::S(user_id.into()))
            .send()
            .await
            .expect("query follows")
            .items()
            .iter()
            .filter_map(|item| item.get("followeeId")?.as_s().ok().cloned())
            .collect();
        let raw: BTreeMap<_, _> = item.keys().cloned().map(|k| (k, ())).collect();
        assert!(
            !raw.contains_key("passwordHash"),
            "no secret in the read model"
        );
        Some((UserView::from_item(&item).expect("view"), follows))
    }
}

fn expected_follows() -> BTreeSet<String> {
    BTreeSet::from(["followee-b".to_owned()])
}

#[tokio::test]
async fn the_same_message_twice_is_applied_once() {
    let f = fixture("dup").await;
    let (id, events) = f.user_with_history("dupe").await;
    assert_eq!(
        f.runtime.project(&events[0]).await.expect("first"),
        Outcome::Applied { filled: 0 }
    );
    assert_eq!(
        f.runtime.project(&events[0]).await.expect("again"),
        Outcome::Duplicate
    );
    assert_eq!(
        f.runtime.project(&events[1]).await.expect("next"),
        Outcome::Applied { filled: 0 }
    );
    // A redelivered old message after newer ones changes nothing.
    assert_eq!(
        f.runtime.project(&events[0]).await.expect("late"),
        Outcome::Duplicate
    );
    let (view, _) = f.view(&id).await.expect("projected");
    assert_eq!(view.bio, "bio");
    assert_eq!(view.last_seq, 2);
    assert_eq!(
        f.runtime
            .last_applied(&events[0].stream_key())
            .await
            .expect("checkpoint"),
        2
    );
}

#[tokio::test]
async fn a_gap_is_filled_from_the_events_table() {
    let f = fixture("gap").await;
    let (id, events) = f.user_with_history("gappy").await;
    assert_eq!(
        f.runtime.project(&events[5]).await.expect("last first"),
        Outcome::Applied { filled: 5 }
    );
    let (view, follows) = f.view(&id).await.expect("projected");
    assert_eq!(view.username, "gappy-renamed");
    assert_eq!(view.last_seq, 6);
    assert_eq!(follows, expected_follows());
    for event in &events {
        assert_eq!(
            f.runtime.project(event).await.expect("late copies"),
            Outcome::Duplicate
        );
    }
}

#[tokio::test]
async fn any_delivery_order_with_duplicates_gives_the_in_order_result() {
    let f = fixture("order").await;
    // In order, as the reference.
    let (reference_id, reference_events) = f.user_with_history("ref").await;
    for event in &reference_events {
        f.runtime.project(event).await.expect("in order");
    }
    let (reference, reference_follows) = f.view(&reference_id).await.expect("reference");

    // Reversed, rotated, interleaved, with duplicates; one message per SQS batch and all in one batch.
    let orders: Vec<Vec<usize>> = vec![
        vec![5, 4, 3, 2, 1, 0],
        vec![2, 0, 4, 1, 5, 3, 0, 2],
        vec![3, 3, 1, 5, 0, 4, 2, 5],
        vec![1, 0, 3, 2, 5, 4],
    ];
    for (n, order) in orders.iter().enumerate() {
        let name = format!("shuffled{n}");
        let (id, events) = f.user_with_history(&name).await;
        let shuffled: Vec<&StoredEvent> = order.iter().map(|&i| &events[i]).collect();
        let together = n % 2 == 1;
        let failed = f.deliver(&messages(&shuffled), together).await;
        assert!(failed.is_empty(), "order {order:?}");
        let (view, follows) = f.view(&id).await.expect("projected");
        assert_eq!(view.username, format!("{name}-renamed"));
        assert_eq!(view.bio, reference.bio);
        assert_eq!(view.image, reference.image);
        assert_eq!(view.last_seq, reference.last_seq);
        assert_eq!(follows, reference_follows, "order {order:?}");
    }
}

#[tokio::test]
async fn a_poison_message_fails_alone_and_the_rest_of_its_batch_is_applied() {
    let f = fixture("poison").await;
    let (id, events) = f.user_with_history("healthy").await;
    let mut unknown = events[0].clone();
    unknown.aggregate_id = Uuid::new_v4().to_string();
    unknown.event_type = "UserVanished".into();
    let batch = vec![
        ("poison-1".to_owned(), "this is not an event".to_owned()),
        ("good-1".to_owned(), sns_body(&events[0])),
        ("poison-2".to_owned(), sns_body(&unknown)),
        ("good-2".to_owned(), sns_body(&events[1])),
    ];
    let response = f.runtime.handle_sqs(sqs_event(&batch)).await;
    assert_eq!(
        crate::support::failed(&response),
        BTreeSet::from(["poison-1".to_owned(), "poison-2".to_owned()])
    );
    let (view, _) = f.view(&id).await.expect("projected");
    assert_eq!(view.last_seq, 2);
}

#[tokio::test]
async fn a_poison_message_ends_in_the_dead_letter_queue_after_its_receive_limit() {
    let f = fixture("dlq").await;
    let (id, events) = f.user_with_history("survivor").await;
    let queue = f.queue(USERS_PROJECTOR_QUEUE.name);
    f.send(&queue, GARBAGE_NOTIFICATION).await;
    for event in &events {
        f.send(&queue, &sns_body(event)).await;
    }

    let dead = f.poll_until_dead_letter(&queue).await;
    assert!(dead.body().unwrap_or_default().contains("garbage"));

    let (view, follows) = f.view(&id).await.expect("the rest was applied");
    assert_eq!(view.last_seq, 6);
    assert_eq!(follows, expected_follows());
    let left = f
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("attributes");
    let visible = left
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .cloned()
        .unwrap_or_default();
    assert_eq!(visible, "0", "nothing is left on the source queue");
}

#[tokio::test]
async fn catch_up_applies_what_no_message_brought() {
    let f = fixture("catchup").await;
    let (id, _) = f.user_with_history("silent").await;
    assert!(f.view(&id).await.is_none());
    let report = f.runtime.catch_up().await.expect("catch up");
    assert_eq!(report.applied, 6);
    let (view, follows) = f.view(&id).await.expect("projected");
    assert_eq!(view.last_seq, 6);
    assert_eq!(follows, expected_follows());
    assert_eq!(f.runtime.catch_up().await.expect("again").applied, 0);
}
