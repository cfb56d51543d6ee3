//! The read models' item shapes: the contract between the projectors that write them and the query side that reads them.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Reads a string attribute; absent or of another type gives `None`.
pub fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// Reads a number attribute as `u64`.
pub fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// The `users` table: one item per registered user, key `userId`, GSI `byUsername`.
pub mod users {
    use super::*;

    pub const USER_ID: &str = "userId";
    pub const EMAIL: &str = "email";
    pub const USERNAME: &str = "username";
    pub const BIO: &str = "bio";
    pub const IMAGE: &str = "image";
    /// The sequence of the last event of the user's stream reflected in the item.
    pub const LAST_SEQ: &str = "lastSeq";
    /// The GSI that finds a user by username.
    pub const BY_USERNAME: &str = "byUsername";

    /// A user as the read side sees it. No secret is ever part of it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct UserView {
        pub user_id: String,
        pub email: String,
        pub username: String,
        pub bio: String,
        pub image: String,
        pub last_seq: u64,
    }

    impl UserView {
        pub fn from_item(item: &Item) -> Option<Self> {
            Some(Self {
                user_id: text(item, USER_ID)?,
                email: text(item, EMAIL)?,
                username: text(item, USERNAME)?,
                bio: text(item, BIO).unwrap_or_default(),
                image: text(item, IMAGE).unwrap_or_default(),
                last_seq: number(item, LAST_SEQ).unwrap_or(0),
            })
        }
    }
}

/// The `follows` table: one item per (follower, followee), GSI `byFollowee`.
pub mod follows {
    pub const FOLLOWER_ID: &str = "followerId";
    pub const FOLLOWEE_ID: &str = "followeeId";
    /// The sequence of the follower's event that created the item.
    pub const SEQ: &str = "seq";
    pub const BY_FOLLOWEE: &str = "byFollowee";
}

/// The `checkpoints` table: the last sequence each projector applied per aggregate.
pub mod checkpoints {
    pub const PK: &str = "pk";
    pub const LAST_SEQ: &str = "lastSeq";

    /// The checkpoint key of `projector` for one aggregate stream.
    pub fn key(projector: &str, stream_key: &str) -> String {
        format!("{projector}#{stream_key}")
    }
}
