//! The articles projector: the `articles`, `article-bodies`, `comments` and `favorites` read models, from `Article`, `ArticleComments` and `Favorite` events.
//!
//! An article's body is an item of its own (see [`events::views::article_bodies`]), put with
//! the `articles` item in one transaction and deleted with it in the one that leaves the
//! tombstone, so a reader never finds an article item without its body for long.
//!
//! Every aggregate has its own checkpoint, so the three streams that touch one article are
//! applied in no order relative to each other. What keeps the result exact anyway:
//! * a favorite moves `favoritesCount` with `ADD` in the same transaction as its own
//!   checkpoint, so it counts once however often it is delivered, and before or after the
//!   article itself (the `ADD` may create an item that holds only the count);
//! * a deleted article leaves a tombstone (`deleted`), set before its comments and favorites
//!   are purged; from then on comment and favorite effects check it and are dropped, so nothing
//!   projected late resurrects the article.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, Put, TransactWriteItem, Update,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use events::article::ArticleEvent;
use events::comment::CommentEvent;
use events::favorite::FavoriteEvent;
use events::views::{article_bodies, articles, comments, favorites, Item};
use events::{EventSchema, StoredEvent};

use crate::runtime::{unavailable, ProjectionError, Projector, ProjectorRuntime};
use events::views::{n, s};

/// The attributes of the `articles` item the article's own events own; a tombstone has none
/// of them.
const ARTICLE_FIELDS: [&str; 7] = [
    articles::SLUG,
    articles::TITLE,
    articles::DESCRIPTION,
    articles::TAG_LIST,
    articles::AUTHOR_ID,
    articles::CREATED_AT,
    articles::UPDATED_AT,
];

/// Builds the articles, article bodies, comments and favorites read models.
#[derive(Clone, Debug)]
pub struct ArticlesProjector {
    client: Client,
    articles_table: String,
    bodies_table: String,
    comments_table: String,
    favorites_table: String,
}

/// An article as its published or edited event states it, whole.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ArticleFields {
    slug: String,
    title: String,
    description: String,
    body: String,
    tag_list: Vec<String>,
    author_id: String,
    created_at: String,
    updated_at: String,
}

/// What one event changes, read from the event alone.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    /// Published or edited: the items take every field of the article.
    Article {
        article_id: String,
        fields: ArticleFields,
    },
    ArticleDeleted {
        article_id: String,
    },
    CommentAdded {
        article_id: String,
        comment_id: u64,
        author_id: String,
        body: String,
        created_at: String,
    },
    CommentDeleted {
        article_id: String,
        comment_id: u64,
    },
    Favorited {
        article_id: String,
        user_id: String,
    },
    Unfavorited {
        article_id: String,
        user_id: String,
    },
}

impl Change {
    /// Decodes a stored event of one of the three aggregate types.
    fn of(event: &StoredEvent) -> Result<Self, ProjectionError> {
        let unsupported = |reason: String| ProjectionError::Unsupported {
            event_type: event.event_type.clone(),
            version: event.event_version,
            reason,
        };
        let (kind, version, payload) = (&event.event_type, event.event_version, &event.payload);
        let change = match event.aggregate_type.as_str() {
            events::article::AGGREGATE_TYPE => {
                let article_id = event.aggregate_id.clone();
                match ArticleEvent::from_stored(kind, version, payload)
                    .map_err(|e| unsupported(e.to_string()))?
                {
                    ArticleEvent::ArticlePublished {
                        author_id,
                        slug,
                        title,
                        description,
                        body,
                        tag_list,
                        created_at,
                        ..
                    } => Change::Article {
                        article_id,
                        fields: ArticleFields {
                            slug,
                            title,
                            description,
                            body,
                            tag_list,
                            author_id,
                            updated_at: created_at.clone(),
                            created_at,
                        },
                    },
                    ArticleEvent::ArticleEdited {
                        slug,
                        author_id,
                        title,
                        description,
                        body,
                        tag_list,
                        created_at,
                        updated_at,
                        ..
                    } => Change::Article {
                        article_id,
                        fields: ArticleFields {
                            slug,
                            title,
                            description,
                            body,
                            tag_list,
                            author_id,
                            created_at,
                            updated_at,
                        },
                    },
                    ArticleEvent::ArticleDeleted { .. } => Change::ArticleDeleted { article_id },
                }
            }
            // A comment thread's id is its article's id.
            events::comment::AGGREGATE_TYPE => {
                let article_id = event.aggregate_id.clone();
                match CommentEvent::from_stored(kind, version, payload)
                    .map_err(|e| unsupported(e.to_string()))?
                {
                    CommentEvent::CommentAdded {
                        comment_id,
                        author_id,
                        body,
                        created_at,
                        ..
                    } => Change::CommentAdded {
                        article_id,
                        comment_id,
                        author_id,
                        body,
                        created_at,
                    },
                    CommentEvent::CommentDeleted { comment_id, .. } => Change::CommentDeleted {
                        article_id,
                        comment_id,
                    },
                }
            }
            events::favorite::AGGREGATE_TYPE => {
                match FavoriteEvent::from_stored(kind, version, payload)
                    .map_err(|e| unsupported(e.to_string()))?
                {
                    FavoriteEvent::ArticleFavorited {
                        article_id,
                        user_id,
                        ..
                    } => Change::Favorited {
                        article_id,
                        user_id,
                    },
                    FavoriteEvent::ArticleUnfavorited {
                        article_id,
                        user_id,
                        ..
                    } => Change::Unfavorited {
                        article_id,
                        user_id,
                    },
                }
            }
            other => {
                return Err(unsupported(format!(
                    "aggregate type {other} is not projected"
                )))
            }
        };
        Ok(change)
    }

    fn article_id(&self) -> &str {
        match self {
            Change::Article { article_id, .. }
            | Change::ArticleDeleted { article_id }
            | Change::CommentAdded { article_id, .. }
            | Change::CommentDeleted { article_id, .. }
            | Change::Favorited { article_id, .. }
            | Change::Unfavorited { article_id, .. } => article_id,
        }
    }

    /// Whether the change adds to a live article, and so is dropped once it is deleted.
    fn needs_live_article(&self) -> bool {
        matches!(
            self,
            Change::CommentAdded { .. } | Change::Favorited { .. } | Change::Unfavorited { .. }
        )
    }
}

fn build_error<E: std::fmt::Debug>(error: E) -> ProjectionError {
    ProjectionError::Unavailable(format!("request could not be built: {error:?}"))
}

fn is_tombstone(item: &Item) -> bool {
    item.contains_key(articles::DELETED)
}

impl ArticlesProjector {
    pub fn new(client: &Client, tables: &TableNames) -> Self {
        Self {
            client: client.clone(),
            articles_table: tables.articles.clone(),
            bodies_table: tables.article_bodies.clone(),
            comments_table: tables.comments.clone(),
            favorites_table: tables.favorites.clone(),
        }
    }

    /// The projector with its runtime, over the tables named by `tables`.
    pub fn runtime(client: &Client, tables: &TableNames) -> ProjectorRuntime<Self> {
        ProjectorRuntime::over_tables(Self::new(client, tables), client, tables)
    }

    /// The transactional writes of `change` (made by the event at `sequence`), for an article
    /// that is not deleted. No I/O.
    fn actions(
        &self,
        sequence: u64,
        change: &Change,
    ) -> Result<Vec<TransactWriteItem>, ProjectionError> {
        let actions = match change {
            // The body's put needs no condition of its own: on a deleted article the update's
            // condition cancels the whole transaction.
            Change::Article { article_id, fields } => vec![
                self.upsert_article(article_id, sequence, fields)?,
                self.put_body(article_id, sequence, &fields.body)?,
            ],
            Change::ArticleDeleted { article_id } => vec![
                self.tombstone(article_id, sequence)?,
                self.delete_body(article_id)?,
            ],
            Change::CommentAdded {
                article_id,
                comment_id,
                author_id,
                body,
                created_at,
            } => {
                let put = Put::builder()
                    .table_name(&self.comments_table)
                    .item(comments::ARTICLE_ID, s(article_id))
                    .item(comments::COMMENT_ID, n(*comment_id))
                    .item(comments::AUTHOR_ID, s(author_id))
                    .item(comments::BODY, s(body))
                    .item(comments::CREATED_AT, s(created_at))
                    .item(comments::UPDATED_AT, s(created_at))
                    .item(comments::SEQ, n(sequence))
                    .build()
                    .map_err(build_error)?;
                vec![
                    TransactWriteItem::builder().put(put).build(),
                    self.article_is_live(article_id)?,
                ]
            }
            Change::CommentDeleted {
                article_id,
                comment_id,
            } => {
                let delete = Delete::builder()
                    .table_name(&self.comments_table)
                    .key(comments::ARTICLE_ID, s(article_id))
                    .key(comments::COMMENT_ID, n(*comment_id))
                    .build()
                    .map_err(build_error)?;
                vec![TransactWriteItem::builder().delete(delete).build()]
            }
            Change::Favorited {
                article_id,
                user_id,
            } => {
                let put = Put::builder()
                    .table_name(&self.favorites_table)
                    .item(favorites::ARTICLE_ID, s(article_id))
                    .item(favorites::USER_ID, s(user_id))
                    .item(favorites::SEQ, n(sequence))
                    .build()
                    .map_err(build_error)?;
                vec![
                    TransactWriteItem::builder().put(put).build(),
                    self.count_favorite(article_id, 1)?,
                ]
            }
            Change::Unfavorited {
                article_id,
                user_id,
            } => {
                let delete = Delete::builder()
                    .table_name(&self.favorites_table)
                    .key(favorites::ARTICLE_ID, s(article_id))
                    .key(favorites::USER_ID, s(user_id))
                    .build()
                    .map_err(build_error)?;
                vec![
                    TransactWriteItem::builder().delete(delete).build(),
                    self.count_favorite(article_id, -1)?,
                ]
            }
        };
        Ok(actions)
    }

    /// `SET` every field of the article but its body, and `lastSeq`; `favoritesCount` is left
    /// as it is (a favorite may have been counted before the article was projected).
    fn upsert_article(
        &self,
        article_id: &str,
        sequence: u64,
        fields: &ArticleFields,
    ) -> Result<TransactWriteItem, ProjectionError> {
        let values = [
            (articles::SLUG, s(&fields.slug)),
            (articles::TITLE, s(&fields.title)),
            (articles::DESCRIPTION, s(&fields.description)),
            (
                articles::TAG_LIST,
                AttributeValue::L(fields.tag_list.iter().map(s).collect()),
            ),
            (articles::AUTHOR_ID, s(&fields.author_id)),
            (articles::CREATED_AT, s(&fields.created_at)),
            (articles::UPDATED_AT, s(&fields.updated_at)),
            (articles::LAST_SEQ, n(sequence)),
        ];
        let mut update = Update::builder()
            .table_name(&self.articles_table)
            .key(articles::ARTICLE_ID, s(article_id))
            .condition_expression("attribute_not_exists(#deleted)")
            .expression_attribute_names("#deleted", articles::DELETED);
        let mut assignments = Vec::with_capacity(values.len());
        for (i, (name, value)) in values.into_iter().enumerate() {
            assignments.push(format!("#f{i} = :v{i}"));
            update = update
                .expression_attribute_names(format!("#f{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value);
        }
        let update = update
            .update_expression(format!("SET {}", assignments.join(", ")))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The article's body item, whole.
    fn put_body(
        &self,
        article_id: &str,
        sequence: u64,
        body: &str,
    ) -> Result<TransactWriteItem, ProjectionError> {
        let put = Put::builder()
            .table_name(&self.bodies_table)
            .item(article_bodies::ARTICLE_ID, s(article_id))
            .item(article_bodies::BODY, s(body))
            .item(article_bodies::LAST_SEQ, n(sequence))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Deletes the article's body item (nothing to do if it is gone already).
    fn delete_body(&self, article_id: &str) -> Result<TransactWriteItem, ProjectionError> {
        let delete = Delete::builder()
            .table_name(&self.bodies_table)
            .key(article_bodies::ARTICLE_ID, s(article_id))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// What is left of a deleted article: its key, `deleted` and `lastSeq`.
    fn tombstone(
        &self,
        article_id: &str,
        sequence: u64,
    ) -> Result<TransactWriteItem, ProjectionError> {
        let mut update = Update::builder()
            .table_name(&self.articles_table)
            .key(articles::ARTICLE_ID, s(article_id))
            .expression_attribute_names("#deleted", articles::DELETED)
            .expression_attribute_names("#lastSeq", articles::LAST_SEQ)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":seq", n(sequence));
        // The count goes too: nothing can move it any more, and nothing should read it.
        let removed: Vec<&str> = ARTICLE_FIELDS
            .iter()
            .copied()
            .chain([articles::FAVORITES_COUNT])
            .collect();
        let mut names = Vec::with_capacity(removed.len());
        for (i, name) in removed.into_iter().enumerate() {
            names.push(format!("#r{i}"));
            update = update.expression_attribute_names(format!("#r{i}"), name);
        }
        let update = update
            .update_expression(format!(
                "SET #deleted = :true, #lastSeq = :seq REMOVE {}",
                names.join(", ")
            ))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Cancels the transaction if the article was deleted meanwhile.
    fn article_is_live(&self, article_id: &str) -> Result<TransactWriteItem, ProjectionError> {
        let check = ConditionCheck::builder()
            .table_name(&self.articles_table)
            .key(articles::ARTICLE_ID, s(article_id))
            .condition_expression("attribute_not_exists(#deleted)")
            .expression_attribute_names("#deleted", articles::DELETED)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// `ADD` `by` to the article's favorites count, unless the article was deleted meanwhile.
    fn count_favorite(
        &self,
        article_id: &str,
        by: i64,
    ) -> Result<TransactWriteItem, ProjectionError> {
        let update = Update::builder()
            .table_name(&self.articles_table)
            .key(articles::ARTICLE_ID, s(article_id))
            .update_expression("ADD #count :by")
            .condition_expression("attribute_not_exists(#deleted)")
            .expression_attribute_names("#count", articles::FAVORITES_COUNT)
            .expression_attribute_names("#deleted", articles::DELETED)
            .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Whether the article is a tombstone, read strongly consistent.
    async fn is_deleted(&self, article_id: &str) -> Result<bool, ProjectionError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.articles_table)
            .key(articles::ARTICLE_ID, s(article_id))
            .projection_expression("#deleted")
            .expression_attribute_names("#deleted", articles::DELETED)
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item().is_some_and(is_tombstone))
    }

    /// Marks the article deleted, outside any transaction: from then on comment and favorite
    /// transactions of it fail their condition, so the purge that follows misses nothing.
    async fn mark_deleted(&self, article_id: &str) -> Result<(), ProjectionError> {
        self.client
            .update_item()
            .table_name(&self.articles_table)
            .key(articles::ARTICLE_ID, s(article_id))
            .update_expression("SET #deleted = :true")
            .expression_attribute_names("#deleted", articles::DELETED)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Deletes every comment and favorite of the article. Idempotent.
    async fn purge(&self, article_id: &str) -> Result<(), ProjectionError> {
        let mut deletes = Vec::new();
        for (table, sort_key) in [
            (&self.comments_table, comments::COMMENT_ID),
            (&self.favorites_table, favorites::USER_ID),
        ] {
            for key in self.keys_of(table, sort_key, article_id).await? {
                let request = DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(build_error)?;
                deletes.push((
                    table.clone(),
                    WriteRequest::builder().delete_request(request).build(),
                ));
            }
        }
        let count = deletes.len();
        for chunk in deletes.chunks(crate::batch::BATCH_WRITE_LIMIT) {
            let mut requests: HashMap<String, Vec<WriteRequest>> = HashMap::new();
            for (table, request) in chunk {
                requests
                    .entry(table.clone())
                    .or_default()
                    .push(request.clone());
            }
            crate::batch::write(&self.client, requests).await?;
        }
        if count > 0 {
            tracing::info!(
                article_id,
                count,
                "purged comments and favorites of a deleted article"
            );
        }
        Ok(())
    }

    /// The keys of the items of one article in `table` (partition key `articleId`).
    async fn keys_of(
        &self,
        table: &str,
        sort_key: &str,
        article_id: &str,
    ) -> Result<Vec<Item>, ProjectionError> {
        let mut pages = self
            .client
            .query()
            .table_name(table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk")
            .projection_expression("#pk, #sk")
            .expression_attribute_names("#pk", comments::ARTICLE_ID)
            .expression_attribute_names("#sk", sort_key)
            .expression_attribute_values(":pk", s(article_id))
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            keys.extend(page.map_err(unavailable)?.items().iter().cloned());
        }
        Ok(keys)
    }
}

impl Projector for ArticlesProjector {
    fn name(&self) -> &'static str {
        "articles"
    }

    fn accepts(&self, aggregate_type: &str) -> bool {
        matches!(
            aggregate_type,
            events::article::AGGREGATE_TYPE
                | events::comment::AGGREGATE_TYPE
                | events::favorite::AGGREGATE_TYPE
        )
    }

    async fn effects(
        &self,
        event: &StoredEvent,
    ) -> Result<Vec<TransactWriteItem>, ProjectionError> {
        let change = Change::of(event)?;
        match &change {
            Change::ArticleDeleted { article_id } => {
                // Both steps are idempotent: a redelivery after a crash just repeats them.
                self.mark_deleted(article_id).await?;
                self.purge(article_id).await?;
            }
            _ if change.needs_live_article() && self.is_deleted(change.article_id()).await? => {
                // Too late: the article is gone. Only the checkpoint moves.
                tracing::info!(
                    article_id = change.article_id(),
                    "dropped: the article was deleted"
                );
                return Ok(Vec::new());
            }
            _ => {}
        }
        self.actions(event.sequence, &change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::favorite::favorite_id;
    use serde_json::json;

    const AT: &str = "2024-01-01T00:00:00.000Z";
    const LATER: &str = "2024-01-02T00:00:00.000Z";

    fn projector() -> ArticlesProjector {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        ArticlesProjector::new(&Client::from_conf(config), &TableNames::with_prefix("p-"))
    }

    fn stored(
        aggregate_type: &str,
        id: &str,
        sequence: u64,
        event: impl EventSchema,
    ) -> StoredEvent {
        let (event_type, event_version, payload) = event.to_stored();
        StoredEvent {
            aggregate_type: aggregate_type.into(),
            aggregate_id: id.into(),
            sequence,
            event_id: uuid::Uuid::new_v4(),
            event_type,
            event_version,
            payload,
            metadata: events::Metadata::default(),
            recorded_at: AT.into(),
        }
    }

    fn published() -> StoredEvent {
        stored(
            "Article",
            "a1",
            1,
            ArticleEvent::ArticlePublished {
                article_id: "a1".into(),
                author_id: "u1".into(),
                slug: "dragons".into(),
                title: "Dragons".into(),
                description: "How".into(),
                body: "Believe".into(),
                tag_list: Vec::new(),
                created_at: AT.into(),
            },
        )
    }

    fn favorited(sequence: u64) -> StoredEvent {
        stored(
            "Favorite",
            &favorite_id("a1", "u2"),
            sequence,
            FavoriteEvent::ArticleFavorited {
                article_id: "a1".into(),
                user_id: "u2".into(),
                favorited_at: AT.into(),
            },
        )
    }

    fn update_of(action: &TransactWriteItem) -> &Update {
        action.update().expect("an update")
    }

    #[test]
    fn a_published_article_is_set_whole_with_updated_at_its_creation_and_its_body_apart() {
        let change = Change::of(&published()).expect("decodes");
        let Change::Article { fields, .. } = &change else {
            panic!("{change:?}")
        };
        assert_eq!(fields.updated_at, AT);
        let actions = projector().actions(1, &change).expect("actions");
        assert_eq!(actions.len(), 2);
        let update = update_of(&actions[0]);
        assert_eq!(update.table_name(), "p-articles");
        assert_eq!(update.key().get("articleId"), Some(&s("a1")));
        assert_eq!(
            update.condition_expression(),
            Some("attribute_not_exists(#deleted)")
        );
        let names = update.expression_attribute_names().expect("names");
        let values = update.expression_attribute_values().expect("values");
        let set: HashMap<&str, &AttributeValue> = (0..)
            .map_while(|i| Some((names.get(&format!("#f{i}"))?, &values[&format!(":v{i}")])))
            .map(|(name, value)| (name.as_str(), value))
            .collect();
        assert_eq!(set.len(), 8);
        assert_eq!(set["tagList"], &AttributeValue::L(Vec::new()));
        assert_eq!(set["updatedAt"], &s(AT));
        assert_eq!(set["lastSeq"], &n(1));
        assert!(!set.contains_key(article_bodies::BODY), "the body is apart");
        assert!(!names.values().any(|name| name == articles::FAVORITES_COUNT));
        assert!(update.update_expression().starts_with("SET "));
        let body = actions[1].put().expect("the body's put");
        assert_eq!(body.table_name(), "p-article-bodies");
        assert_eq!(
            body.item(),
            &HashMap::from([
                ("articleId".to_owned(), s("a1")),
                ("body".to_owned(), s("Believe")),
                ("lastSeq".to_owned(), n(1)),
            ])
        );
    }

    #[test]
    fn an_edit_carries_the_whole_article() {
        let edited = stored(
            "Article",
            "a1",
            2,
            ArticleEvent::ArticleEdited {
                slug: "new".into(),
                previous_slug: "dragons".into(),
                author_id: "u1".into(),
                title: "New".into(),
                description: "d".into(),
                body: "b".into(),
                tag_list: vec!["x".into(), "y".into()],
                created_at: AT.into(),
                updated_at: LATER.into(),
            },
        );
        assert_eq!(
            Change::of(&edited).expect("decodes"),
            Change::Article {
                article_id: "a1".into(),
                fields: ArticleFields {
                    slug: "new".into(),
                    title: "New".into(),
                    description: "d".into(),
                    body: "b".into(),
                    tag_list: vec!["x".into(), "y".into()],
                    author_id: "u1".into(),
                    created_at: AT.into(),
                    updated_at: LATER.into(),
                }
            }
        );
    }

    #[test]
    fn a_deletion_leaves_a_tombstone_without_the_article_fields_and_deletes_the_body() {
        let deleted = stored(
            "Article",
            "a1",
            3,
            ArticleEvent::ArticleDeleted {
                author_id: "u1".into(),
                slug: "dragons".into(),
                deleted_at: LATER.into(),
            },
        );
        let change = Change::of(&deleted).expect("decodes");
        assert!(!change.needs_live_article());
        let actions = projector().actions(3, &change).expect("actions");
        let update = update_of(&actions[0]);
        assert!(update
            .update_expression()
            .starts_with("SET #deleted = :true, #lastSeq = :seq REMOVE "));
        let names = update.expression_attribute_names().expect("names");
        for field in ARTICLE_FIELDS {
            assert!(names.values().any(|name| name == field), "{field} removed");
        }
        assert_eq!(update.condition_expression(), None);
        assert_eq!(actions.len(), 2);
        let body = actions[1].delete().expect("the body's delete");
        assert_eq!(body.table_name(), "p-article-bodies");
        assert_eq!(
            body.key(),
            &HashMap::from([("articleId".to_owned(), s("a1"))])
        );
    }

    #[test]
    fn a_favorite_counts_with_its_item_unless_the_article_was_deleted() {
        let change = Change::of(&favorited(1)).expect("decodes");
        assert!(change.needs_live_article());
        assert_eq!(change.article_id(), "a1");
        let actions = projector().actions(1, &change).expect("actions");
        let put = actions[0].put().expect("put");
        assert_eq!(put.table_name(), "p-favorites");
        assert_eq!(put.item().get("userId"), Some(&s("u2")));
        assert_eq!(put.item().get("seq"), Some(&n(1)));
        let count = update_of(&actions[1]);
        assert_eq!(count.update_expression(), "ADD #count :by");
        assert_eq!(
            count.condition_expression(),
            Some("attribute_not_exists(#deleted)")
        );
        assert_eq!(
            count
                .expression_attribute_values()
                .expect("values")
                .get(":by"),
            Some(&AttributeValue::N("1".into()))
        );

        let unfavorited = stored(
            "Favorite",
            &favorite_id("a1", "u2"),
            2,
            FavoriteEvent::ArticleUnfavorited {
                article_id: "a1".into(),
                user_id: "u2".into(),
                unfavorited_at: LATER.into(),
            },
        );
        let actions = projector()
            .actions(2, &Change::of(&unfavorited).expect("decodes"))
            .expect("actions");
        assert!(actions[0].delete().is_some());
        assert_eq!(
            update_of(&actions[1])
                .expression_attribute_values()
                .expect("values")
                .get(":by"),
            Some(&AttributeValue::N("-1".into()))
        );
    }

    #[test]
    fn a_comment_is_put_only_while_the_article_is_live() {
        let added = stored(
            "ArticleComments",
            "a1",
            4,
            CommentEvent::CommentAdded {
                article_id: "a1".into(),
                comment_id: 2,
                author_id: "u3".into(),
                body: "Nice".into(),
                created_at: AT.into(),
            },
        );
        let actions = projector()
            .actions(4, &Change::of(&added).expect("decodes"))
            .expect("actions");
        let put = actions[0].put().expect("put");
        assert_eq!(put.table_name(), "p-comments");
        assert_eq!(put.item().get("commentId"), Some(&n(2)));
        assert_eq!(put.item().get("updatedAt"), Some(&s(AT)));
        assert_eq!(put.item().get("seq"), Some(&n(4)));
        let check = actions[1].condition_check().expect("condition check");
        assert_eq!(check.table_name(), "p-articles");
        assert_eq!(
            check.condition_expression(),
            "attribute_not_exists(#deleted)"
        );

        let removed = stored(
            "ArticleComments",
            "a1",
            5,
            CommentEvent::CommentDeleted {
                article_id: "a1".into(),
                comment_id: 2,
                author_id: "u3".into(),
                deleted_at: LATER.into(),
            },
        );
        let change = Change::of(&removed).expect("decodes");
        assert!(!change.needs_live_article());
        let actions = projector().actions(5, &change).expect("actions");
        assert_eq!(actions.len(), 1);
        assert_eq!(
            actions[0].delete().expect("delete").key().get("commentId"),
            Some(&n(2))
        );
    }

    #[test]
    fn unknown_events_are_unsupported() {
        let mut event = published();
        event.event_type = "ArticleVanished".into();
        assert!(matches!(
            Change::of(&event),
            Err(ProjectionError::Unsupported { .. })
        ));
        let mut event = favorited(1);
        event.payload = json!({"articleId": 5});
        assert!(matches!(
            Change::of(&event),
            Err(ProjectionError::Unsupported { .. })
        ));
    }
}
