//! The users projector: the `users` (profiles) and `follows` read models, from `User` events.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use events::user::{UserEvent, AGGREGATE_TYPE};
use events::views::{follows, n, s, users};
use events::{EventSchema, StoredEvent};

use crate::ops::{Condition, Key, Op, Plan, ReadModel, State};
use crate::runtime::{ProjectionError, Projector, ProjectorRuntime};

/// Builds the users and follows read models.
#[derive(Clone, Debug)]
pub struct UsersProjector {
    client: Client,
    users_table: String,
    follows_table: String,
}

impl UsersProjector {
    pub fn new(client: &Client, tables: &TableNames) -> Self {
        Self {
            client: client.clone(),
            users_table: tables.users.clone(),
            follows_table: tables.follows.clone(),
        }
    }

    /// The projector with its runtime, over the tables named by `tables`.
    pub fn runtime(client: &Client, tables: &TableNames) -> ProjectorRuntime<Self> {
        ProjectorRuntime::over_tables(Self::new(client, tables), client, tables)
    }

    /// `SET` the given attributes and the user's `lastSeq` on the users item.
    fn set_user(&self, event: &StoredEvent, fields: Vec<(&'static str, AttributeValue)>) -> Op {
        let mut set = vec![(users::LAST_SEQ, n(event.sequence))];
        set.extend(fields);
        Op::Update {
            table: self.users_table.clone(),
            key: Key::new(users::USER_ID, s(&event.aggregate_id)),
            set,
            remove: Vec::new(),
            add: None,
            condition: Some(Condition::Exists(users::USER_ID)),
        }
    }

    fn follow_key(&self, follower: &str, followee: &str) -> Key {
        Key::new(follows::FOLLOWER_ID, s(follower)).with_sort(follows::FOLLOWEE_ID, s(followee))
    }

    /// The writes of `event`: they need nothing read first.
    fn ops(&self, event: &StoredEvent) -> Result<Vec<Op>, ProjectionError> {
        let domain = UserEvent::from_stored(&event.event_type, event.event_version, &event.payload)
            .map_err(|e| ProjectionError::Unsupported {
                event_type: event.event_type.clone(),
                version: event.event_version,
                reason: e.to_string(),
            })?;
        let user_id = &event.aggregate_id;
        Ok(match domain {
            UserEvent::UserRegistered {
                email, username, ..
            } => vec![Op::put(
                &self.users_table,
                Key::new(users::USER_ID, s(user_id)),
                vec![
                    (users::EMAIL, s(&email)),
                    (users::USERNAME, s(&username)),
                    (users::BIO, s("")),
                    (users::IMAGE, s("")),
                    (users::LAST_SEQ, n(event.sequence)),
                ],
            )],
            UserEvent::UserEmailChanged { email, .. } => {
                vec![self.set_user(event, vec![(users::EMAIL, s(email))])]
            }
            UserEvent::UserRenamed { username, .. } => {
                vec![self.set_user(event, vec![(users::USERNAME, s(username))])]
            }
            UserEvent::UserPasswordChanged { .. } => vec![self.set_user(event, Vec::new())],
            UserEvent::UserProfileUpdated { bio, image } => {
                // The read model keeps RealWorld's spelling of none: "".
                let (bio, image) = (bio.unwrap_or_default(), image.unwrap_or_default());
                vec![self.set_user(event, vec![(users::BIO, s(bio)), (users::IMAGE, s(image))])]
            }
            UserEvent::UserFollowed { followee_id } => vec![
                Op::put(
                    &self.follows_table,
                    self.follow_key(user_id, &followee_id),
                    vec![(follows::SEQ, n(event.sequence))],
                ),
                self.set_user(event, Vec::new()),
            ],
            UserEvent::UserUnfollowed { followee_id } => vec![
                Op::Delete {
                    table: self.follows_table.clone(),
                    key: self.follow_key(user_id, &followee_id),
                },
                self.set_user(event, Vec::new()),
            ],
        })
    }
}

impl ReadModel for UsersProjector {
    async fn plan<S: State>(
        &self,
        event: &StoredEvent,
        _state: &S,
    ) -> Result<Plan, ProjectionError> {
        Ok(Plan::commit(self.ops(event)?))
    }
}

impl Projector for UsersProjector {
    fn name(&self) -> &'static str {
        "users"
    }

    fn accepts(&self, aggregate_type: &str) -> bool {
        aggregate_type == AGGREGATE_TYPE
    }

    async fn effects(
        &self,
        event: &StoredEvent,
    ) -> Result<Vec<TransactWriteItem>, ProjectionError> {
        crate::ops::live_effects(self, &self.client, event).await
    }
}
