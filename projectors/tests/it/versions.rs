//! Live projection follows the projection registry: batches go to the active version, come back whole while a replay freezes the projection or switches versions under them.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{failed, messages, sqs_event};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use common::clock::now_ms;
use common::config::TableNames;
use common::projections::{registry, Projection};
use events::user::UserEvent;
use events::views::{checkpoints, users};
use events::StoredEvent;
use projectors::versions::{RuntimeFactory, FROZEN_UNTIL};
use projectors::{
    ProjectionError, Projector, ProjectorRuntime, UsersProjector, VersionedProjector,
};

type Fixture = crate::support::Fixture<UsersProjector>;

async fn fixture(tag: &str) -> Fixture {
    let fixture = Fixture::new(tag, UsersProjector::runtime).await;
    let v2 = fixture.tables.at_version(Projection::Users, 2);
    for (name, def) in [
        (&v2.users, &schema::users::TABLE),
        (&v2.follows, &schema::follows::TABLE),
        (&v2.checkpoints, &schema::checkpoints::TABLE),
    ] {
        common::tables::ensure(&fixture.clients.dynamodb, name, def)
            .await
            .expect("creating a version 2 table");
    }
    fixture
}

impl Fixture {
    async fn set_registry(&self, active: u32, frozen_until: Option<u64>) {
        let mut put = self
            .clients
            .dynamodb
            .put_item()
            .table_name(&self.tables.checkpoints)
            .item("pk", AttributeValue::S(Projection::Users.registry_key()))
            .item(registry::ACTIVE, AttributeValue::N(active.to_string()))
            .item(
                registry::VERSIONS,
                AttributeValue::Ns(vec!["1".into(), "2".into()]),
            )
            .item(
                registry::FROZEN,
                AttributeValue::Bool(frozen_until.is_some()),
            );
        if let Some(until) = frozen_until {
            put = put.item(FROZEN_UNTIL, AttributeValue::N(until.to_string()));
        }
        put.send().await.expect("writing the registry");
    }

    async fn last_seq(&self, version: u32, user_id: &str) -> Option<u64> {
        let tables = self.tables.at_version(Projection::Users, version);
        crate::support::get_item(
            &self.clients.dynamodb,
            &tables.checkpoints,
            checkpoints::PK,
            &checkpoints::key("users", &format!("User#{user_id}")),
        )
        .await
        .and_then(|item| events::views::number(&item, checkpoints::LAST_SEQ))
    }

    async fn user(&self, version: u32, user_id: &str) -> Option<events::views::Item> {
        let tables = self.tables.at_version(Projection::Users, version);
        crate::support::get_item(
            &self.clients.dynamodb,
            &tables.users,
            users::USER_ID,
            user_id,
        )
        .await
    }

    async fn user_history(&self, user_id: &str) -> Vec<StoredEvent> {
        self.append(
            "User",
            user_id,
            vec![
                UserEvent::UserRegistered {
                    user_id: user_id.into(),
                    email: format!("{user_id}@example.test"),
                    username: user_id.into(),
                    password_hash: "$argon2id$secret".into(),
                },
                UserEvent::profile_updated("first", ""),
                UserEvent::profile_updated("second", ""),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn batches_go_to_the_active_version_and_come_back_whole_while_it_is_frozen() {
    let fixture = fixture("versionsfreeze").await;
    let projector = VersionedProjector::users(&fixture.clients.dynamodb, &fixture.tables)
        .with_freeze_wait(Duration::from_millis(300));
    let id = uuid::Uuid::new_v4().to_string();
    let history = fixture.user_history(&id).await;

    // No registry item: version 1.
    let first = messages(&[&history[0]]);
    assert!(failed(&projector.handle_sqs(sqs_event(&first)).await).is_empty());
    assert_eq!(fixture.last_seq(1, &id).await, Some(1));

    // Frozen: the whole batch comes back, nothing is applied anywhere.
    fixture.set_registry(2, Some(now_ms() + 60_000)).await;
    let second = messages(&[&history[1]]);
    let response = projector.handle_sqs(sqs_event(&second)).await;
    assert_eq!(failed(&response).len(), 1);
    assert_eq!(fixture.last_seq(2, &id).await, None);
    assert_eq!(fixture.last_seq(1, &id).await, Some(1));

    // A freeze past its deadline (its replay died) no longer holds: version 2 is active, and
    // its gap is filled from the log.
    fixture.set_registry(2, Some(now_ms() - 1)).await;
    assert!(failed(&projector.handle_sqs(sqs_event(&second)).await).is_empty());
    assert_eq!(fixture.last_seq(2, &id).await, Some(2));
    assert_eq!(
        fixture.last_seq(1, &id).await,
        Some(1),
        "version 1 is left alone"
    );
    let user = fixture.user(2, &id).await.expect("the user in version 2");
    assert_eq!(
        events::views::text(&user, users::BIO).as_deref(),
        Some("first")
    );

    // Unfrozen: applied as usual.
    fixture.set_registry(2, None).await;
    let third = messages(&[&history[2]]);
    assert!(failed(&projector.handle_sqs(sqs_event(&third)).await).is_empty());
    assert_eq!(fixture.last_seq(2, &id).await, Some(3));
}

#[tokio::test]
async fn a_freeze_that_ends_within_the_wait_costs_the_batch_nothing() {
    let fixture = fixture("versionsthaw").await;
    let projector = VersionedProjector::users(&fixture.clients.dynamodb, &fixture.tables)
        .with_freeze_wait(Duration::from_secs(5));
    let id = uuid::Uuid::new_v4().to_string();
    let history = fixture.user_history(&id).await;
    fixture.set_registry(1, Some(now_ms() + 60_000)).await;
    let thaw = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The switch: version 2 active, freeze over.
        fixture.set_registry(2, None).await;
    };
    let (response, ()) = tokio::join!(
        projector.handle_sqs(sqs_event(&messages(&[&history[0]]))),
        thaw
    );
    assert!(failed(&response).is_empty());
    assert_eq!(fixture.last_seq(2, &id).await, Some(1));
    assert_eq!(fixture.last_seq(1, &id).await, None);
}

/// The users projector, with a replay switching versions while it applies an event.
#[derive(Clone)]
struct SwitchDuring {
    inner: UsersProjector,
    client: aws_sdk_dynamodb::Client,
    registry_table: String,
}

impl Projector for SwitchDuring {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn accepts(&self, aggregate_type: &str) -> bool {
        self.inner.accepts(aggregate_type)
    }

    async fn effects(
        &self,
        event: &StoredEvent,
    ) -> Result<Vec<TransactWriteItem>, ProjectionError> {
        self.client
            .put_item()
            .table_name(&self.registry_table)
            .item("pk", AttributeValue::S(Projection::Users.registry_key()))
            .item(registry::ACTIVE, AttributeValue::N("2".into()))
            .item(
                registry::VERSIONS,
                AttributeValue::Ns(vec!["1".into(), "2".into()]),
            )
            .send()
            .await
            .expect("switching");
        self.inner.effects(event).await
    }
}

#[tokio::test]
async fn a_batch_applied_while_the_version_switched_comes_back_for_the_new_one() {
    let fixture = fixture("versionsswitch").await;
    let (client, base) = (fixture.clients.dynamodb.clone(), fixture.tables.clone());
    let factory: RuntimeFactory<SwitchDuring> = Arc::new(move |version| {
        let tables: TableNames = base.at_version(Projection::Users, version);
        let projector = SwitchDuring {
            inner: UsersProjector::new(&client, &tables),
            client: client.clone(),
            registry_table: base.checkpoints.clone(),
        };
        let runtime = ProjectorRuntime::over_tables(projector, &client, &tables);
        Box::pin(async move { Ok(runtime) })
    });
    let projector = VersionedProjector::new(
        Projection::Users,
        &fixture.clients.dynamodb,
        &fixture.tables,
        factory,
    );
    let id = uuid::Uuid::new_v4().to_string();
    let history = fixture.user_history(&id).await;
    let batch = messages(&[&history[0], &history[1]]);
    let response = projector.handle_sqs(sqs_event(&batch)).await;
    // Applied to version 1, but version 2 became active meanwhile: every message comes back.
    assert_eq!(failed(&response).len(), 2);
    assert_eq!(fixture.last_seq(1, &id).await, Some(2));
    // Redelivered, the batch lands in version 2.
    let response = projector.handle_sqs(sqs_event(&batch)).await;
    assert!(failed(&response).is_empty());
    assert_eq!(fixture.last_seq(2, &id).await, Some(2));
}
