//! The read models' item shapes: the contract between the projectors that write them and the query side that reads them.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A string attribute value.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

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
    pub use schema::users::*;

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
    pub use schema::follows::*;
}

/// The `checkpoints` table: the last sequence each projector applied per aggregate.
pub use common::projections::checkpoints;

/// Reads a list-of-strings attribute (absent gives an empty list).
pub fn text_list(item: &Item, name: &str) -> Vec<String> {
    item.get(name)
        .and_then(|v| v.as_l().ok())
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v.as_s().ok().cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `articles` table: one item per article, key `articleId`, GSI `bySlug`.
///
/// Written by the articles projector from `Article` events (the article's fields but its body,
/// which is in [`article_bodies`](super::article_bodies); `lastSeq`)
/// and from `Favorite` events (`favoritesCount`, moved with `ADD` in the same transaction as the
/// favorite's checkpoint, so it counts every favorite exactly once). A favorite can be
/// projected before its article, so an item may hold only `favoritesCount` for a while; a
/// deleted article leaves a tombstone (`deleted`, no `slug`) so that late comment and favorite
/// events of it are dropped instead of resurrecting it. [`ArticleView::from_item`] sees neither.
pub mod articles {
    use super::*;
    pub use schema::articles::*;

    /// A published, not deleted article as the read side sees it, without its body (see
    /// [`ArticleBodyView`](super::article_bodies::ArticleBodyView)).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ArticleView {
        pub article_id: String,
        pub slug: String,
        pub title: String,
        pub description: String,
        pub tag_list: Vec<String>,
        pub author_id: String,
        pub created_at: String,
        pub updated_at: String,
        pub favorites_count: u64,
        pub last_seq: u64,
    }

    impl ArticleView {
        /// `None` for a tombstone or an item that only counts favorites so far.
        pub fn from_item(item: &Item) -> Option<Self> {
            if item.contains_key(DELETED) {
                return None;
            }
            Some(Self {
                article_id: text(item, ARTICLE_ID)?,
                slug: text(item, SLUG)?,
                title: text(item, TITLE)?,
                description: text(item, DESCRIPTION).unwrap_or_default(),
                tag_list: text_list(item, TAG_LIST),
                author_id: text(item, AUTHOR_ID)?,
                created_at: text(item, CREATED_AT)?,
                updated_at: text(item, UPDATED_AT)?,
                favorites_count: number(item, FAVORITES_COUNT).unwrap_or(0),
                last_seq: number(item, LAST_SEQ).unwrap_or(0),
            })
        }
    }
}

/// The `article-bodies` table: one item per published, not deleted article, key `articleId`.
///
/// The body lives apart from the rest of the article because DynamoDB charges a read by the
/// size of the whole item (a projection expression does not lower it): a body may be 50,000
/// characters, and a list page, which never shows bodies, reads 20 `articles` items at once.
/// The articles projector writes this item in the same transaction as the `articles` item of
/// the same event, and deletes it in the transaction that leaves the tombstone.
pub mod article_bodies {
    use super::*;
    pub use schema::article_bodies::*;

    /// The body of a published, not deleted article.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ArticleBodyView {
        pub article_id: String,
        pub body: String,
        pub last_seq: u64,
    }

    impl ArticleBodyView {
        pub fn from_item(item: &Item) -> Option<Self> {
            Some(Self {
                article_id: text(item, ARTICLE_ID)?,
                body: text(item, BODY).unwrap_or_default(),
                last_seq: number(item, LAST_SEQ).unwrap_or(0),
            })
        }
    }
}

/// The `comments` table: one item per live comment, key (`articleId`, `commentId`).
pub mod comments {
    use super::*;
    pub use schema::comments::*;

    /// A comment as the read side sees it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct CommentView {
        pub article_id: String,
        pub comment_id: u64,
        pub author_id: String,
        pub body: String,
        pub created_at: String,
        pub updated_at: String,
    }

    impl CommentView {
        pub fn from_item(item: &Item) -> Option<Self> {
            Some(Self {
                article_id: text(item, ARTICLE_ID)?,
                comment_id: number(item, COMMENT_ID)?,
                author_id: text(item, AUTHOR_ID)?,
                body: text(item, BODY).unwrap_or_default(),
                created_at: text(item, CREATED_AT)?,
                updated_at: text(item, UPDATED_AT)?,
            })
        }
    }
}

/// The `favorites` table: one item per (article, user) while the user favorites the article,
/// key (`articleId`, `userId`), GSI `byUser` (`userId`, `articleId`).
pub mod favorites {
    pub use schema::favorites::*;
}

/// The feed read model, owned by the feed projector: three tables, never read by anyone else
/// except `feeds` and `feed-articles` by the query side.
///
/// * `feed-followers` (key `authorId`, `followerId`): who follows whom, as the feed projector
///   has applied it (it cannot wait for the users projector's `follows`).
/// * `feed-articles` (key `authorId`, `articleId`): each author's live articles with what a
///   feed shows of them. An edit changes this one item; no feed entry is rewritten.
/// * `feeds` (key `userId`, `feedKey`): one small entry per (reader, article), `feedKey`
///   sorting newest first when queried backwards.
pub mod feeds {
    use super::*;
    pub use schema::feeds::*;

    /// The sort key of an article in every feed: ascending creation time, then id. Creation
    /// times before 1970 or unparseable ones sort first.
    pub fn feed_key(created_at: &str, article_id: &str) -> String {
        let millis = crate::time_format::parse(created_at)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0))
            .unwrap_or(0);
        format!("{millis:013}#{article_id}")
    }

    /// One entry of a feed page.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct FeedEntry {
        pub user_id: String,
        pub feed_key: String,
        pub author_id: String,
        pub article_id: String,
    }

    impl FeedEntry {
        pub fn from_item(item: &Item) -> Option<Self> {
            Some(Self {
                user_id: text(item, USER_ID)?,
                feed_key: text(item, FEED_KEY)?,
                author_id: text(item, AUTHOR_ID)?,
                article_id: text(item, ARTICLE_ID)?,
            })
        }
    }
}

/// `feed-articles`: the feed projector's own copy of each author's live articles (see
/// [`feeds`]). Same attribute names as [`articles`]; no body, no counts.
pub mod feed_articles {
    use super::*;
    pub use schema::feed_articles::*;

    /// A live article as a feed shows it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct FeedArticle {
        pub author_id: String,
        pub article_id: String,
        pub slug: String,
        pub title: String,
        pub description: String,
        pub tag_list: Vec<String>,
        pub created_at: String,
        pub updated_at: String,
        pub last_seq: u64,
    }

    impl FeedArticle {
        /// `None` for an article whose deletion is under way.
        pub fn from_item(item: &Item) -> Option<Self> {
            if item.contains_key(DELETED) {
                return None;
            }
            Some(Self {
                author_id: text(item, AUTHOR_ID)?,
                article_id: text(item, ARTICLE_ID)?,
                slug: text(item, SLUG)?,
                title: text(item, TITLE)?,
                description: text(item, DESCRIPTION).unwrap_or_default(),
                tag_list: text_list(item, TAG_LIST),
                created_at: text(item, CREATED_AT)?,
                updated_at: text(item, UPDATED_AT)?,
                last_seq: number(item, LAST_SEQ).unwrap_or(0),
            })
        }

        /// This article's key in every feed.
        pub fn feed_key(&self) -> String {
            feeds::feed_key(&self.created_at, &self.article_id)
        }
    }
}

#[cfg(test)]
mod feed_tests {
    use super::feeds::feed_key;

    #[test]
    fn feed_keys_sort_by_creation_then_id() {
        let a = feed_key("2024-01-01T00:00:00.000Z", "b");
        let b = feed_key("2024-01-01T00:00:00.001Z", "a");
        let c = feed_key("2024-01-01T00:00:00.001Z", "c");
        assert_eq!(a, "1704067200000#b");
        assert!(a < b && b < c);
        assert_eq!(feed_key("not a time", "x"), "0000000000000#x");
        assert_eq!(feed_key("1960-01-01T00:00:00Z", "x"), "0000000000000#x");
    }
}

/// `feed-followers`: one item per (author, follower), written by the feed projector only.
pub mod feed_followers {
    pub use schema::feed_followers::*;
}
