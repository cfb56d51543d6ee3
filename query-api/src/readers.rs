//! Readers of the read models; the only place the query side talks to DynamoDB.

mod batch;
mod pages;

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
use aws_sdk_dynamodb::types::{Get, TransactGetItem};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use common::error::ApiError;
use events::views::article_bodies::{self, ArticleBodyView};
use events::views::articles::{self, ArticleView};
use events::views::comments::{self, CommentView};
use events::views::feed_articles::{self, FeedArticle};
use events::views::feeds::{self, FeedEntry};
use events::views::s;
use events::views::users::{self, UserView};
use events::views::{favorites, follows, number, text, Item};

pub use batch::{BatchKey, MAX_BATCH_KEYS};
pub use pages::PageQuery;

/// Reads the users, follows, articles, article bodies, comments, favorites and feed read
/// models.
#[derive(Clone, Debug)]
pub struct Readers {
    client: Client,
    tables: TableNames,
}

/// A DynamoDB failure, in one line (never the SDK's debug dump, which would reach the log).
fn unavailable<E: std::error::Error>(error: E) -> ApiError {
    ApiError::Unavailable(common::error::one_line(&error))
}

/// What one [`Readers::lookup`] should fetch. `follows` and `favorites` are asked about the
/// caller, so they are ignored without one; the caller's follow of themself is never asked.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    pub caller: Option<String>,
    /// Article items by id.
    pub articles: Vec<String>,
    /// Article body items by article id.
    pub bodies: Vec<String>,
    /// User items by id.
    pub users: Vec<String>,
    /// Whether the caller follows each of these user ids.
    pub follows: Vec<String>,
    /// Whether the caller favorites each of these article ids.
    pub favorites: Vec<String>,
    /// Feed article items by (author id, article id).
    pub feed_articles: Vec<(String, String)>,
}

/// What a [`Lookup`] found. Missing ids are simply absent.
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub articles: HashMap<String, ArticleView>,
    /// The `favoritesCount` of every articles item found, by article id, whether or not it
    /// is a published article (an item may only count favorites so far).
    pub favorites_counts: HashMap<String, u64>,
    /// Bodies by article id.
    pub bodies: HashMap<String, ArticleBodyView>,
    pub users: HashMap<String, UserView>,
    /// The user ids (of those asked) the caller follows.
    pub followed: HashSet<String>,
    /// The article ids (of those asked) the caller favorites.
    pub favorited: HashSet<String>,
    /// Live feed articles by article id (items whose deletion is under way are left out).
    pub feed_articles: HashMap<String, FeedArticle>,
    /// The article ids (of those asked) whose articles item is a tombstone: deleted, whatever
    /// the other read models still show.
    pub deleted: HashSet<String>,
}

/// One page of a feed: how many entries the feed holds, and the entries of the page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedPage {
    pub total: u64,
    /// Newest first.
    pub entries: Vec<FeedEntry>,
}

impl Readers {
    /// The DynamoDB client every read goes through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    /// The same client reading `tables` (e.g. the active versions' tables of
    /// [`ActiveVersions::tables`](common::projections::ActiveVersions::tables)).
    pub fn with_tables(&self, tables: TableNames) -> Self {
        Self {
            client: self.client.clone(),
            tables,
        }
    }

    /// The table names this reader reads.
    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// One aggregate's events `from..=to`, strongly consistent: the one read of the event log
    /// (`GET /api/events/...`, in `crate::events`).
    pub async fn stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<events::StoredEvent>, ApiError> {
        let tables = events::Tables::of(&self.tables);
        events::EventStore::new(self.client.clone(), tables)
            .read_range(aggregate_type, aggregate_id, from, Some(to))
            .await
            .map_err(|error| match error {
                events::StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
                other => ApiError::internal(other),
            })
    }

    /// A user by id.
    #[tracing::instrument(skip(self))]
    pub async fn user(&self, user_id: &str) -> Result<Option<UserView>, ApiError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.users)
            .key(users::USER_ID, s(user_id))
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
            .expression_attribute_values(":u", s(username))
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
            .key(follows::FOLLOWER_ID, s(follower_id))
            .key(follows::FOLLOWEE_ID, s(followee_id))
            .projection_expression("#f")
            .expression_attribute_names("#f", follows::FOLLOWER_ID)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item().is_some())
    }

    /// A published article by slug, through the `bySlug` index (which holds neither
    /// tombstones nor favorite-count-only items).
    #[tracing::instrument(skip(self))]
    pub async fn article_by_slug(&self, slug: &str) -> Result<Option<ArticleView>, ApiError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.articles)
            .index_name(articles::BY_SLUG)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", articles::SLUG)
            .expression_attribute_values(":s", s(slug))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.items().iter().find_map(ArticleView::from_item))
    }

    /// The comments of an article, oldest (lowest id) first; pages past 1 MB.
    #[tracing::instrument(skip(self))]
    pub async fn comments(&self, article_id: &str) -> Result<Vec<CommentView>, ApiError> {
        let items = self
            .query_all(|query| {
                query
                    .table_name(&self.tables.comments)
                    .key_condition_expression("#a = :a")
                    .expression_attribute_names("#a", comments::ARTICLE_ID)
                    .expression_attribute_values(":a", s(article_id))
                    .scan_index_forward(true)
            })
            .await?;
        Ok(items.iter().filter_map(CommentView::from_item).collect())
    }

    /// The ids of every article `user_id` favorites, through the `byUser` index; pages past 1 MB.
    #[tracing::instrument(skip(self))]
    pub async fn favorited_article_ids(&self, user_id: &str) -> Result<Vec<String>, ApiError> {
        let items = self
            .query_all(|query| {
                query
                    .table_name(&self.tables.favorites)
                    .index_name(favorites::BY_USER)
                    .key_condition_expression("#u = :u")
                    .expression_attribute_names("#u", favorites::USER_ID)
                    .expression_attribute_values(":u", s(user_id))
            })
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| text(item, favorites::ARTICLE_ID))
            .collect())
    }

    /// The entries `offset..offset + limit` of `user_id`'s feed, newest first, and how many
    /// entries it holds: one backwards `Query` of the `feeds` table, paging past 1 MB (an
    /// entry is a few ids, so a page holds thousands), keeping only the entries asked for.
    #[tracing::instrument(skip(self))]
    pub async fn feed_page(
        &self,
        user_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<FeedPage, ApiError> {
        let feed = |query: QueryFluentBuilder| {
            query
                .table_name(&self.tables.feeds)
                .key_condition_expression("#u = :u")
                .expression_attribute_names("#u", feeds::USER_ID)
                .expression_attribute_values(":u", s(user_id))
        };
        // The count reads the whole feed but sends back only a number; the page, read beside
        // it, stops at its last entry. Both are cheaper in time than one read of every entry.
        let count = async {
            let mut total = 0_u64;
            self.query_pages(
                |query| feed(query).select(aws_sdk_dynamodb::types::Select::Count),
                |output| {
                    total += output.count().max(0) as u64;
                    true
                },
            )
            .await?;
            Ok::<_, ApiError>(total)
        };
        let wanted = offset.saturating_add(limit);
        let entries = async {
            let mut entries = Vec::new();
            let mut position = 0_usize;
            self.query_pages(
                |query| {
                    feed(query)
                        .projection_expression("#u, #k, #a, #i")
                        .expression_attribute_names("#k", feeds::FEED_KEY)
                        .expression_attribute_names("#a", feeds::AUTHOR_ID)
                        .expression_attribute_names("#i", feeds::ARTICLE_ID)
                        .scan_index_forward(false)
                        .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
                },
                |output| {
                    for item in output.items() {
                        if position >= offset && position < wanted {
                            entries.extend(FeedEntry::from_item(item));
                        }
                        position += 1;
                    }
                    position < wanted
                },
            )
            .await?;
            Ok::<_, ApiError>(entries)
        };
        let (total, entries) = tokio::try_join!(count, entries)?;
        Ok(FeedPage { total, entries })
    }

    /// Sends a query and its next pages while `each` answers true and `LastEvaluatedKey` says
    /// there is more.
    async fn query_pages(
        &self,
        build: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
        mut each: impl FnMut(&aws_sdk_dynamodb::operation::query::QueryOutput) -> bool,
    ) -> Result<(), ApiError> {
        let mut start: Option<Item> = None;
        loop {
            let output = build(self.client.query())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            let more = each(&output);
            match output.last_evaluated_key() {
                Some(key) if more && !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(()),
            }
        }
    }

    /// Every item a query matches, following `LastEvaluatedKey`.
    async fn query_all(
        &self,
        build: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
    ) -> Result<Vec<Item>, ApiError> {
        let mut items = Vec::new();
        self.query_each(build, |item| items.push(item.clone()))
            .await?;
        Ok(items)
    }

    /// Hands every item a query matches to `each`, in order, following `LastEvaluatedKey`.
    async fn query_each(
        &self,
        build: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
        mut each: impl FnMut(&Item),
    ) -> Result<(), ApiError> {
        self.query_pages(build, |output| {
            output.items().iter().for_each(&mut each);
            true
        })
        .await
    }

    /// The article item and whether `caller` favorites it, read together with one
    /// `TransactGetItems`: the articles projector writes the favorite and its count in one
    /// transaction, and only a transactional read never sees one without the other (a
    /// `BatchGetItem` may). Retried when it meets that transaction in flight.
    pub async fn article_and_favorite(
        &self,
        article_id: &str,
        caller: &str,
    ) -> Result<(Option<ArticleView>, bool), ApiError> {
        let get = |table: &str, key: Item| {
            Get::builder()
                .table_name(table)
                .set_key(Some(key))
                .build()
                .map(|get| TransactGetItem::builder().get(get).build())
                .map_err(unavailable)
        };
        let article = get(
            &self.tables.articles,
            Item::from([(articles::ARTICLE_ID.to_owned(), s(article_id))]),
        )?;
        let favorite = get(
            &self.tables.favorites,
            Item::from([
                (favorites::ARTICLE_ID.to_owned(), s(article_id)),
                (favorites::USER_ID.to_owned(), s(caller)),
            ]),
        )?;
        let backoff = batch::Backoff::DEFAULT;
        let mut retry = 0;
        loop {
            let result = self
                .client
                .transact_get_items()
                .transact_items(article.clone())
                .transact_items(favorite.clone())
                .send()
                .await;
            match result {
                Ok(output) => {
                    let item = |i: usize| output.responses().get(i).and_then(|r| r.item());
                    return Ok((item(0).and_then(ArticleView::from_item), item(1).is_some()));
                }
                Err(error)
                    if retry < backoff.retries
                        && matches!(
                            error.as_service_error(),
                            Some(TransactGetItemsError::TransactionCanceledException(_))
                        ) =>
                {
                    retry += 1;
                    tokio::time::sleep(backoff.pause(retry)).await;
                }
                Err(error) => return Err(unavailable(error)),
            }
        }
    }

    /// Articles, article bodies, users, feed articles, and the caller's follows and favorites,
    /// all in one `BatchGetItem`
    /// (more only past [`MAX_BATCH_KEYS`] keys or when DynamoDB leaves keys unprocessed).
    #[tracing::instrument(skip_all, fields(
        articles = wanted.articles.len(),
        bodies = wanted.bodies.len(),
        users = wanted.users.len(),
        follows = wanted.follows.len(),
        favorites = wanted.favorites.len(),
        feed_articles = wanted.feed_articles.len(),
    ))]
    pub async fn lookup(&self, wanted: &Lookup) -> Result<Found, ApiError> {
        let tables = &self.tables;
        let mut keys: Vec<BatchKey> = Vec::new();
        for id in &wanted.articles {
            keys.push(BatchKey::new(
                &tables.articles,
                [(articles::ARTICLE_ID, s(id))],
            ));
        }
        for id in &wanted.bodies {
            keys.push(BatchKey::new(
                &tables.article_bodies,
                [(article_bodies::ARTICLE_ID, s(id))],
            ));
        }
        for id in &wanted.users {
            keys.push(BatchKey::new(&tables.users, [(users::USER_ID, s(id))]));
        }
        for (author, article) in &wanted.feed_articles {
            keys.push(BatchKey::new(
                &tables.feed_articles,
                [
                    (feed_articles::AUTHOR_ID, s(author)),
                    (feed_articles::ARTICLE_ID, s(article)),
                ],
            ));
        }
        if let Some(caller) = &wanted.caller {
            for followee in wanted.follows.iter().filter(|id| *id != caller) {
                keys.push(BatchKey::new(
                    &tables.follows,
                    [
                        (follows::FOLLOWER_ID, s(caller)),
                        (follows::FOLLOWEE_ID, s(followee)),
                    ],
                ));
            }
            for article in &wanted.favorites {
                keys.push(BatchKey::new(
                    &tables.favorites,
                    [
                        (favorites::ARTICLE_ID, s(article)),
                        (favorites::USER_ID, s(caller)),
                    ],
                ));
            }
        }
        let mut found = Found::default();
        for (table, items) in self.batch_get(keys).await? {
            for item in &items {
                if table == tables.articles {
                    if let Some(id) = text(item, articles::ARTICLE_ID) {
                        let count = number(item, articles::FAVORITES_COUNT).unwrap_or(0);
                        if item.contains_key(articles::DELETED) {
                            found.deleted.insert(id.clone());
                        }
                        found.favorites_counts.insert(id, count);
                    }
                    if let Some(article) = ArticleView::from_item(item) {
                        found.articles.insert(article.article_id.clone(), article);
                    }
                } else if table == tables.article_bodies {
                    if let Some(body) = ArticleBodyView::from_item(item) {
                        found.bodies.insert(body.article_id.clone(), body);
                    }
                } else if table == tables.users {
                    if let Some(user) = UserView::from_item(item) {
                        found.users.insert(user.user_id.clone(), user);
                    }
                } else if table == tables.follows {
                    found.followed.extend(text(item, follows::FOLLOWEE_ID));
                } else if table == tables.favorites {
                    found.favorited.extend(text(item, favorites::ARTICLE_ID));
                } else if table == tables.feed_articles {
                    if let Some(article) = FeedArticle::from_item(item) {
                        found
                            .feed_articles
                            .insert(article.article_id.clone(), article);
                    }
                }
            }
        }
        Ok(found)
    }
}
