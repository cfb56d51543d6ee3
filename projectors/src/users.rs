//! The users projector: the `users` (profiles) and `follows` read models, from `User` events.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use events::user::{UserEvent, AGGREGATE_TYPE};
use events::views::{follows, users};
use events::{EventSchema, StoredEvent};

use crate::runtime::{ProjectionError, Projector, ProjectorRuntime};
use events::views::s;

/// Builds the users and follows read models.
#[derive(Clone, Debug)]
pub struct UsersProjector {
    users_table: String,
    follows_table: String,
}

fn build_error<E: std::fmt::Debug>(error: E) -> ProjectionError {
    ProjectionError::Unavailable(format!("request could not be built: {error:?}"))
}

impl UsersProjector {
    pub fn new(tables: &TableNames) -> Self {
        Self {
            users_table: tables.users.clone(),
            follows_table: tables.follows.clone(),
        }
    }

    /// The projector with its runtime, over the tables named by `tables`.
    pub fn runtime(client: &Client, tables: &TableNames) -> ProjectorRuntime<Self> {
        ProjectorRuntime::over_tables(Self::new(tables), client, tables)
    }

    /// `SET` the given attributes and the user's `lastSeq` on the users item.
    fn set_user(
        &self,
        event: &StoredEvent,
        fields: &[(&str, &str)],
    ) -> Result<TransactWriteItem, ProjectionError> {
        let mut expression = String::from("SET #lastSeq = :lastSeq");
        let mut update = Update::builder()
            .table_name(&self.users_table)
            .key(users::USER_ID, s(&event.aggregate_id))
            .condition_expression("attribute_exists(#userId)")
            .expression_attribute_names("#userId", users::USER_ID)
            .expression_attribute_names("#lastSeq", users::LAST_SEQ)
            .expression_attribute_values(":lastSeq", AttributeValue::N(event.sequence.to_string()));
        for (i, (name, value)) in fields.iter().enumerate() {
            expression.push_str(&format!(", #f{i} = :v{i}"));
            update = update
                .expression_attribute_names(format!("#f{i}"), *name)
                .expression_attribute_values(format!(":v{i}"), s(*value));
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
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
        let domain = UserEvent::from_stored(&event.event_type, event.event_version, &event.payload)
            .map_err(|e| ProjectionError::Unsupported {
                event_type: event.event_type.clone(),
                version: event.event_version,
                reason: e.to_string(),
            })?;
        let user_id = &event.aggregate_id;
        let actions = match domain {
            UserEvent::UserRegistered {
                email, username, ..
            } => {
                let put = Put::builder()
                    .table_name(&self.users_table)
                    .item(users::USER_ID, s(user_id))
                    .item(users::EMAIL, s(&email))
                    .item(users::USERNAME, s(&username))
                    .item(users::BIO, s(""))
                    .item(users::IMAGE, s(""))
                    .item(
                        users::LAST_SEQ,
                        AttributeValue::N(event.sequence.to_string()),
                    )
                    .build()
                    .map_err(build_error)?;
                vec![TransactWriteItem::builder().put(put).build()]
            }
            UserEvent::UserEmailChanged { email, .. } => {
                vec![self.set_user(event, &[(users::EMAIL, &email)])?]
            }
            UserEvent::UserRenamed { username, .. } => {
                vec![self.set_user(event, &[(users::USERNAME, &username)])?]
            }
            UserEvent::UserPasswordChanged { .. } => vec![self.set_user(event, &[])?],
            UserEvent::UserProfileUpdated { bio, image } => {
                // The read model keeps RealWorld's spelling of none: "".
                let (bio, image) = (bio.unwrap_or_default(), image.unwrap_or_default());
                vec![self.set_user(event, &[(users::BIO, &bio), (users::IMAGE, &image)])?]
            }
            UserEvent::UserFollowed { followee_id } => {
                let put = Put::builder()
                    .table_name(&self.follows_table)
                    .item(follows::FOLLOWER_ID, s(user_id))
                    .item(follows::FOLLOWEE_ID, s(&followee_id))
                    .item(follows::SEQ, AttributeValue::N(event.sequence.to_string()))
                    .build()
                    .map_err(build_error)?;
                vec![
                    TransactWriteItem::builder().put(put).build(),
                    self.set_user(event, &[])?,
                ]
            }
            UserEvent::UserUnfollowed { followee_id } => {
                let delete = Delete::builder()
                    .table_name(&self.follows_table)
                    .key(follows::FOLLOWER_ID, s(user_id))
                    .key(follows::FOLLOWEE_ID, s(&followee_id))
                    .build()
                    .map_err(build_error)?;
                vec![
                    TransactWriteItem::builder().delete(delete).build(),
                    self.set_user(event, &[])?,
                ]
            }
        };
        Ok(actions)
    }
}
