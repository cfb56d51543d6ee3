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

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use events::article::ArticleEvent;
use events::comment::CommentEvent;
use events::favorite::FavoriteEvent;
use events::views::{article_bodies, articles, comments, favorites, Item};
use events::{EventSchema, StoredEvent};

use crate::ops::{Condition, ForEach, Key, Op, Plan, ReadModel, State};
use crate::runtime::{ProjectionError, Projector, ProjectorRuntime};
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

    fn article_key(article_id: &str) -> Key {
        Key::new(articles::ARTICLE_ID, s(article_id))
    }

    /// The plan of `change` (made by the event at `sequence`) for an article that is not
    /// deleted. No I/O.
    fn plan_of(&self, sequence: u64, change: &Change) -> Plan {
        match change {
            // The body's put needs no condition of its own: on a deleted article the update's
            // condition fails the whole commit.
            Change::Article { article_id, fields } => Plan::commit(vec![
                self.upsert_article(article_id, sequence, fields),
                Op::put(
                    &self.bodies_table,
                    Key::new(article_bodies::ARTICLE_ID, s(article_id)),
                    vec![
                        (article_bodies::BODY, s(&fields.body)),
                        (article_bodies::LAST_SEQ, n(sequence)),
                    ],
                ),
            ]),
            // The mark comes first, outside the commit: from then on comment and favorite
            // commits of the article fail their condition, so the purge that follows misses
            // nothing. Every step is idempotent: a redelivery after a crash repeats them.
            Change::ArticleDeleted { article_id } => Plan {
                first: vec![Op::Update {
                    table: self.articles_table.clone(),
                    key: Self::article_key(article_id),
                    set: vec![(articles::DELETED, AttributeValue::Bool(true))],
                    remove: Vec::new(),
                    add: None,
                    condition: None,
                }],
                for_each: vec![
                    self.purge(
                        &self.comments_table,
                        article_id,
                        Key::new(comments::ARTICLE_ID, s(article_id))
                            .with_sort(comments::COMMENT_ID, n(0)),
                    ),
                    self.purge(
                        &self.favorites_table,
                        article_id,
                        Key::new(favorites::ARTICLE_ID, s(article_id))
                            .with_sort(favorites::USER_ID, s("")),
                    ),
                ],
                commit: vec![
                    self.tombstone(article_id, sequence),
                    Op::Delete {
                        table: self.bodies_table.clone(),
                        key: Key::new(article_bodies::ARTICLE_ID, s(article_id)),
                    },
                ],
            },
            Change::CommentAdded {
                article_id,
                comment_id,
                author_id,
                body,
                created_at,
            } => Plan::commit(vec![
                Op::put(
                    &self.comments_table,
                    Key::new(comments::ARTICLE_ID, s(article_id))
                        .with_sort(comments::COMMENT_ID, n(*comment_id)),
                    vec![
                        (comments::AUTHOR_ID, s(author_id)),
                        (comments::BODY, s(body)),
                        (comments::CREATED_AT, s(created_at)),
                        (comments::UPDATED_AT, s(created_at)),
                        (comments::SEQ, n(sequence)),
                    ],
                ),
                Op::Check {
                    table: self.articles_table.clone(),
                    key: Self::article_key(article_id),
                    condition: Condition::NotExists(articles::DELETED),
                },
            ]),
            Change::CommentDeleted {
                article_id,
                comment_id,
            } => Plan::commit(vec![Op::Delete {
                table: self.comments_table.clone(),
                key: Key::new(comments::ARTICLE_ID, s(article_id))
                    .with_sort(comments::COMMENT_ID, n(*comment_id)),
            }]),
            Change::Favorited {
                article_id,
                user_id,
            } => Plan::commit(vec![
                Op::put(
                    &self.favorites_table,
                    self.favorite_key(article_id, user_id),
                    vec![(favorites::SEQ, n(sequence))],
                ),
                self.count_favorite(article_id, 1),
            ]),
            Change::Unfavorited {
                article_id,
                user_id,
            } => Plan::commit(vec![
                Op::Delete {
                    table: self.favorites_table.clone(),
                    key: self.favorite_key(article_id, user_id),
                },
                self.count_favorite(article_id, -1),
            ]),
        }
    }

    fn favorite_key(&self, article_id: &str, user_id: &str) -> Key {
        Key::new(favorites::ARTICLE_ID, s(article_id)).with_sort(favorites::USER_ID, s(user_id))
    }

    /// Deletes every item of the article in `table` (partition key `articleId`, sort key as
    /// `key` has it).
    fn purge(&self, table: &str, article_id: &str, key: Key) -> ForEach {
        let (table_name, shape) = (table.to_owned(), key.clone());
        ForEach {
            table: table.to_owned(),
            partition: (comments::ARTICLE_ID, s(article_id)),
            key,
            write: Box::new(move |item| {
                Some(Op::Delete {
                    table: table_name.clone(),
                    key: shape.of_item(item)?,
                })
            }),
        }
    }

    /// `SET` every field of the article but its body, and `lastSeq`; `favoritesCount` is left
    /// as it is (a favorite may have been counted before the article was projected).
    fn upsert_article(&self, article_id: &str, sequence: u64, fields: &ArticleFields) -> Op {
        Op::Update {
            table: self.articles_table.clone(),
            key: Self::article_key(article_id),
            set: vec![
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
            ],
            remove: Vec::new(),
            add: None,
            condition: Some(Condition::NotExists(articles::DELETED)),
        }
    }

    /// What is left of a deleted article: its key, `deleted` and `lastSeq`. The count goes
    /// too: nothing can move it any more, and nothing should read it.
    fn tombstone(&self, article_id: &str, sequence: u64) -> Op {
        Op::Update {
            table: self.articles_table.clone(),
            key: Self::article_key(article_id),
            set: vec![
                (articles::DELETED, AttributeValue::Bool(true)),
                (articles::LAST_SEQ, n(sequence)),
            ],
            remove: ARTICLE_FIELDS
                .iter()
                .copied()
                .chain([articles::FAVORITES_COUNT])
                .collect(),
            add: None,
            condition: None,
        }
    }

    /// `ADD` `by` to the article's favorites count, unless the article was deleted meanwhile.
    fn count_favorite(&self, article_id: &str, by: i64) -> Op {
        Op::Update {
            table: self.articles_table.clone(),
            key: Self::article_key(article_id),
            set: Vec::new(),
            remove: Vec::new(),
            add: Some((articles::FAVORITES_COUNT, by)),
            condition: Some(Condition::NotExists(articles::DELETED)),
        }
    }
}

impl ReadModel for ArticlesProjector {
    async fn plan<S: State>(
        &self,
        event: &StoredEvent,
        state: &S,
    ) -> Result<Plan, ProjectionError> {
        let change = Change::of(event)?;
        if change.needs_live_article() {
            let article = state
                .get(
                    &self.articles_table,
                    &Self::article_key(change.article_id()),
                )
                .await?;
            if article.as_ref().is_some_and(is_tombstone) {
                // Too late: the article is gone. Only the checkpoint moves.
                tracing::debug!(
                    article_id = change.article_id(),
                    "dropped: the article was deleted"
                );
                return Ok(Plan::default());
            }
        }
        Ok(self.plan_of(event.sequence, &change))
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
        crate::ops::live_effects(self, &self.client, event).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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

    /// An update's `set`, `remove`, `add` and condition.
    type Parts<'a> = (
        &'a [(&'static str, AttributeValue)],
        &'a [&'static str],
        Option<(&'static str, i64)>,
        Option<Condition>,
    );

    fn update_parts(op: &Op) -> Parts<'_> {
        match op {
            Op::Update {
                set,
                remove,
                add,
                condition,
                ..
            } => (set, remove, *add, *condition),
            other => panic!("not an update: {other:?}"),
        }
    }

    #[test]
    fn a_published_article_is_set_whole_with_updated_at_its_creation_and_its_body_apart() {
        let change = Change::of(&published()).expect("decodes");
        let Change::Article { fields, .. } = &change else {
            panic!("{change:?}")
        };
        assert_eq!(fields.updated_at, AT);
        let plan = projector().plan_of(1, &change);
        assert!(plan.first.is_empty() && plan.for_each.is_empty());
        assert_eq!(plan.commit.len(), 2);
        let (set, remove, add, condition) = update_parts(&plan.commit[0]);
        let set: HashMap<&str, &AttributeValue> = set.iter().map(|(k, v)| (*k, v)).collect();
        assert_eq!(set.len(), 8);
        assert_eq!(set["tagList"], &AttributeValue::L(Vec::new()));
        assert_eq!(set["updatedAt"], &s(AT));
        assert_eq!(set["lastSeq"], &n(1));
        assert!(!set.contains_key(article_bodies::BODY), "the body is apart");
        assert!(!set.contains_key(articles::FAVORITES_COUNT));
        assert!(remove.is_empty() && add.is_none());
        assert_eq!(condition, Some(Condition::NotExists(articles::DELETED)));
        // Live, the same update in the transaction.
        let action = plan.commit[0].transact().expect("action");
        let update = action.update().expect("an update");
        assert_eq!(update.table_name(), "p-articles");
        assert_eq!(update.key().get("articleId"), Some(&s("a1")));
        assert!(update.update_expression().starts_with("SET "));
        assert_eq!(
            update.condition_expression(),
            Some("attribute_not_exists(#c)")
        );
        let Op::Put { table, item, .. } = &plan.commit[1] else {
            panic!("the body's put");
        };
        assert_eq!(table, "p-article-bodies");
        assert_eq!(
            item,
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

    fn deleted(sequence: u64) -> StoredEvent {
        stored(
            "Article",
            "a1",
            sequence,
            ArticleEvent::ArticleDeleted {
                author_id: "u1".into(),
                slug: "dragons".into(),
                deleted_at: LATER.into(),
            },
        )
    }

    fn comment(sequence: u64, comment_id: u64) -> StoredEvent {
        stored(
            "ArticleComments",
            "a1",
            sequence,
            CommentEvent::CommentAdded {
                article_id: "a1".into(),
                comment_id,
                author_id: "u3".into(),
                body: "Nice".into(),
                created_at: AT.into(),
            },
        )
    }

    #[test]
    fn a_deletion_marks_purges_then_leaves_a_tombstone_and_deletes_the_body() {
        let change = Change::of(&deleted(3)).expect("decodes");
        assert!(!change.needs_live_article());
        let plan = projector().plan_of(3, &change);
        let (set, _, _, condition) = update_parts(&plan.first[0]);
        assert_eq!(set, [(articles::DELETED, AttributeValue::Bool(true))]);
        assert_eq!(condition, None);
        let purged: Vec<&str> = plan.for_each.iter().map(|job| job.table.as_str()).collect();
        assert_eq!(purged, ["p-comments", "p-favorites"]);
        let (set, remove, add, condition) = update_parts(&plan.commit[0]);
        assert_eq!(set.len(), 2);
        for field in ARTICLE_FIELDS.iter().chain([&articles::FAVORITES_COUNT]) {
            assert!(remove.contains(field), "{field} removed");
        }
        assert!(add.is_none() && condition.is_none());
        let action = plan.commit[0].transact().expect("action");
        assert!(action
            .update()
            .expect("update")
            .update_expression()
            .starts_with("SET #s0 = :s0, #s1 = :s1 REMOVE #r0, "));
        assert!(
            matches!(&plan.commit[1], Op::Delete { table, key } if table == "p-article-bodies" && key.item() == HashMap::from([("articleId".to_owned(), s("a1"))]))
        );
    }

    #[test]
    fn a_favorite_counts_with_its_item_unless_the_article_was_deleted() {
        let change = Change::of(&favorited(1)).expect("decodes");
        assert!(change.needs_live_article());
        assert_eq!(change.article_id(), "a1");
        let plan = projector().plan_of(1, &change);
        let Op::Put { table, item, .. } = &plan.commit[0] else {
            panic!("put");
        };
        assert_eq!(table, "p-favorites");
        assert_eq!(item.get("userId"), Some(&s("u2")));
        assert_eq!(item.get("seq"), Some(&n(1)));
        let (_, _, add, condition) = update_parts(&plan.commit[1]);
        assert_eq!(add, Some((articles::FAVORITES_COUNT, 1)));
        assert_eq!(condition, Some(Condition::NotExists(articles::DELETED)));
        let action = plan.commit[1].transact().expect("action");
        let update = action.update().expect("update");
        assert_eq!(update.update_expression(), "ADD #a :a");
        assert_eq!(
            update
                .expression_attribute_values()
                .and_then(|v| v.get(":a")),
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
        let plan = projector().plan_of(2, &Change::of(&unfavorited).expect("decodes"));
        assert!(matches!(&plan.commit[0], Op::Delete { .. }));
        assert_eq!(
            update_parts(&plan.commit[1]).2,
            Some((articles::FAVORITES_COUNT, -1))
        );
    }

    #[test]
    fn a_comment_is_put_only_while_the_article_is_live() {
        let plan = projector().plan_of(4, &Change::of(&comment(4, 2)).expect("decodes"));
        let Op::Put { table, item, .. } = &plan.commit[0] else {
            panic!("put");
        };
        assert_eq!(table, "p-comments");
        assert_eq!(item.get("commentId"), Some(&n(2)));
        assert_eq!(item.get("updatedAt"), Some(&s(AT)));
        assert_eq!(item.get("seq"), Some(&n(4)));
        let action = plan.commit[1].transact().expect("action");
        let check = action.condition_check().expect("condition check");
        assert_eq!(check.table_name(), "p-articles");
        assert_eq!(check.condition_expression(), "attribute_not_exists(#c)");

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
        let plan = projector().plan_of(5, &change);
        assert_eq!(plan.commit.len(), 1);
        assert!(
            matches!(&plan.commit[0], Op::Delete { key, .. } if key.item().get("commentId") == Some(&n(2)))
        );
    }

    /// Folds `events` (each aggregate's in sequence order) in memory.
    async fn fold(events: &[StoredEvent]) -> crate::ops::Memory {
        let projector = projector();
        let mut memory = crate::ops::Memory::default();
        for event in events {
            let plan = projector.plan(event, &memory).await.expect("plan");
            memory.apply_plan(&plan).expect("applies");
        }
        memory
    }

    #[tokio::test]
    async fn in_memory_the_aggregates_converge_in_any_order_and_a_deletion_purges_its_article() {
        let article = [published(), deleted(2)];
        let others = [favorited(1), comment(1, 1)];
        let first: Vec<StoredEvent> = article.iter().chain(&others).cloned().collect();
        let last: Vec<StoredEvent> = others.iter().chain(&article).cloned().collect();
        let (a, b) = (fold(&first).await, fold(&last).await);
        for memory in [&a, &b] {
            // Only the tombstone is left.
            assert_eq!(memory.len(), 1, "{memory:?}");
            let tombstone = memory
                .item("p-articles", &ArticlesProjector::article_key("a1"))
                .expect("tombstone");
            assert_eq!(tombstone.get("lastSeq"), Some(&n(2)));
            assert!(is_tombstone(tombstone));
            assert!(!tombstone.contains_key(articles::FAVORITES_COUNT));
        }
        // A live article counts the favorite once, whichever came first.
        let live = fold(&[favorited(1), published()]).await;
        let item = live
            .item("p-articles", &ArticlesProjector::article_key("a1"))
            .expect("article");
        assert_eq!(item.get(articles::FAVORITES_COUNT), Some(&n(1)));
        assert_eq!(item.get(articles::TITLE), Some(&s("Dragons")));
        assert_eq!(live.len(), 3, "article, body, favorite");
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
