//! Readers of the read models; the only place the query side talks to DynamoDB.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use common::error::ApiError;
use events::views::follows;
use events::views::users::{self, UserView};

/// Reads the users and follows read models.
#[derive(Clone, Debug)]
pub struct Readers {
    client: Client,
    tables: TableNames,
}

fn unavailable<E: std::fmt::Debug>(error: E) -> ApiError {
    ApiError::Unavailable(format!("{error:?}"))
}

impl Readers {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    /// A user by id.
    #[tracing::instrument(skip(self))]
    pub async fn user(&self, user_id: &str) -> Result<Option<UserView>, ApiError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.users)
            .key(users::USER_ID, AttributeValue::S(user_id.to_owned()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item().and_then(UserView::from_item))
    }

    /// A user by username, through the `byUsername` index.
    #[tracing::instrument(skip(self))]
    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserView>, ApiError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.users)
            .index_name(users::BY_USERNAME)
            .key_condition_expression("#u = :u")
            .expression_attribute_names("#u", users::USERNAME)
            .expression_attribute_values(":u", AttributeValue::S(username.to_owned()))
            .limit(1)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.items().first().and_then(UserView::from_item))
    }

    /// Whether `follower_id` follows `followee_id`.
    #[tracing::instrument(skip(self))]
    pub async fn is_following(
        &self,
        follower_id: &str,
        followee_id: &str,
    ) -> Result<bool, ApiError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.follows)
            .key(
                follows::FOLLOWER_ID,
                AttributeValue::S(follower_id.to_owned()),
            )
            .key(
                follows::FOLLOWEE_ID,
                AttributeValue::S(followee_id.to_owned()),
            )
            .projection_expression("#f")
            .expression_attribute_names("#f", follows::FOLLOWER_ID)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item().is_some())
    }
}
