//! The feed projector: every reader's feed of the articles of the authors they follow, written
//! when things happen (fan-out on write), so that a feed page is one query.
//!
//! It keeps its own follower lists (`feed-followers`) and its own copy of each author's live
//! articles (`feed-articles`): it cannot wait for other projectors, and with its own state the
//! result does not depend on the order in which events of different aggregates arrive.
//!
//! * `UserFollowed` adds the follower, then puts one feed entry per live article of the author.
//! * `UserUnfollowed` removes the follower, then deletes those entries.
//! * `ArticlePublished` copies the article, then puts an entry into every follower's feed.
//! * `ArticleEdited` rewrites the copy only: entries hold keys, the page reads the copy.
//! * `ArticleDeleted` marks the copy, deletes the entry from every follower's feed, then drops
//!   the copy.
//!
//! **One author at a time.** The two sides of a fan-out (an author's followers, an author's
//! articles) change in different streams, so two events about the same author must not
//! interleave: a publish that read the followers just before an unfollow would put an entry
//! back after the unfollow deleted it. Every event about an author therefore runs under that
//! author's lease (a conditional item in the checkpoints table). The lease outlives the
//! function's timeout, so when it expires its holder has been stopped and can write nothing
//! more; inside it the event checks that its stream's checkpoint is still where it expects,
//! and the commit transaction that moves the checkpoint also gives the lease back.
//!
//! **Large fan-outs.** Followers (or articles) are read a page at a time and written 25 per
//! `BatchWriteItem`, a few requests in flight. When an event has fanned out for longer than
//! its budget it saves the page cursor in its stream's checkpoint item, gives the lease back and fails
//! with [`ProjectionError::Paused`]; the redelivered message continues from the cursor. Every
//! write is idempotent, so a crash anywhere only repeats work.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use events::article::ArticleEvent;
use events::user::UserEvent;
use events::views::feed_articles::{self, FeedArticle};
use events::views::{checkpoints, feed_followers, feeds, Item};
use events::{EventSchema, StoredEvent};

use crate::ops::{Condition, ForEach, Key, Live, Op, Plan, ReadModel, State, Visited};
use crate::runtime::{unavailable, ProjectionError, Projector, ProjectorRuntime};
use events::views::{n, s};

/// How much one event may do, and how it shares an author with other events.
#[derive(Clone, Copy, Debug)]
pub struct FeedLimits {
    /// Time one event may spend fanning out before it saves its progress and pauses.
    pub fanout_budget: Duration,
    /// Followers (or articles) read per `Query` page.
    pub page_size: i32,
    /// `BatchWriteItem` requests in flight at once.
    pub concurrent_batches: usize,
    /// How long an author's lease lives. Longer than the function's timeout, so that an
    /// expired lease's holder has certainly been stopped.
    pub lease: Duration,
    /// How long an event waits for a busy author before it hands the message back.
    pub lease_wait: Duration,
}

impl Default for FeedLimits {
    /// For the deployed function's 60 s timeout (`infra`'s `FEED_PROJECTOR_FUNCTION_TIMEOUT_SECS`):
    /// an event waits for a busy author longer than another event fans out in one go (so it
    /// does not give up on a fan-out's first slice), and both fit in the timeout.
    fn default() -> Self {
        Self {
            fanout_budget: Duration::from_secs(15),
            page_size: 1000,
            concurrent_batches: 4,
            lease: Duration::from_secs(70),
            lease_wait: Duration::from_secs(30),
        }
    }
}

/// Builds every reader's feed.
#[derive(Clone, Debug)]
pub struct FeedProjector {
    client: Client,
    feeds_table: String,
    articles_table: String,
    followers_table: String,
    checkpoints_table: String,
    limits: FeedLimits,
    /// Names this projector instance in the leases it holds.
    instance: String,
}

/// What an event changes in the feeds.
#[derive(Clone, Debug, PartialEq)]
enum Change {
    Followed {
        follower: String,
        author: String,
    },
    Unfollowed {
        follower: String,
        author: String,
    },
    Published(FeedArticle),
    Edited(FeedArticle),
    Deleted {
        author: String,
        article_id: String,
    },
    /// A user event that no feed shows (registration, profile...).
    Nothing,
}

impl Change {
    fn of(event: &StoredEvent) -> Result<Self, ProjectionError> {
        let unsupported = |reason: String| ProjectionError::Unsupported {
            event_type: event.event_type.clone(),
            version: event.event_version,
            reason,
        };
        let (kind, version, payload) = (&event.event_type, event.event_version, &event.payload);
        let id = &event.aggregate_id;
        let article =
            |author_id, slug, title, description, tag_list, created_at, updated_at| FeedArticle {
                author_id,
                article_id: id.clone(),
                slug,
                title,
                description,
                tag_list,
                created_at,
                updated_at,
                last_seq: event.sequence,
            };
        Ok(match event.aggregate_type.as_str() {
            events::user::AGGREGATE_TYPE => {
                match UserEvent::from_stored(kind, version, payload)
                    .map_err(|e| unsupported(e.to_string()))?
                {
                    UserEvent::UserFollowed { followee_id } => Change::Followed {
                        follower: id.clone(),
                        author: followee_id,
                    },
                    UserEvent::UserUnfollowed { followee_id } => Change::Unfollowed {
                        follower: id.clone(),
                        author: followee_id,
                    },
                    _ => Change::Nothing,
                }
            }
            events::article::AGGREGATE_TYPE => {
                match ArticleEvent::from_stored(kind, version, payload)
                    .map_err(|e| unsupported(e.to_string()))?
                {
                    ArticleEvent::ArticlePublished {
                        author_id,
                        slug,
                        title,
                        description,
                        tag_list,
                        created_at,
                        ..
                    } => Change::Published(article(
                        author_id,
                        slug,
                        title,
                        description,
                        tag_list,
                        created_at.clone(),
                        created_at,
                    )),
                    ArticleEvent::ArticleEdited {
                        author_id,
                        slug,
                        title,
                        description,
                        tag_list,
                        created_at,
                        updated_at,
                        ..
                    } => Change::Edited(article(
                        author_id,
                        slug,
                        title,
                        description,
                        tag_list,
                        created_at,
                        updated_at,
                    )),
                    ArticleEvent::ArticleDeleted { author_id, .. } => Change::Deleted {
                        author: author_id,
                        article_id: id.clone(),
                    },
                }
            }
            other => return Err(unsupported(format!("aggregate type {other}"))),
        })
    }

    /// The author whose lease the change needs: the one whose followers or articles it fans
    /// out over. An edit needs none: it rewrites the article's copy in the commit transaction
    /// itself, which the checkpoint condition already orders after the article's earlier
    /// events, and feed entries hold no article content.
    fn lease_author(&self) -> Option<&str> {
        match self {
            Change::Followed { author, .. }
            | Change::Unfollowed { author, .. }
            | Change::Deleted { author, .. } => Some(author),
            Change::Published(article) => Some(&article.author_id),
            Change::Edited(_) | Change::Nothing => None,
        }
    }
}

/// One pass over a page source: followers of an author, or articles of an author.
#[derive(Clone, Copy, Debug)]
enum Source {
    Followers,
    Articles,
}

/// Attributes of the checkpoint item where a paused fan-out keeps its place: the event's
/// sequence and the `Query` cursor. A later event never reads a cursor saved for another.
/// The pause before another try at a busy author lease: 5 ms doubling to 50 ms, jittered.
const LEASE_BACKOFF: common::backoff::Backoff =
    common::backoff::Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
const FANOUT_SEQ: &str = "fanoutSeq";
const FANOUT_CURSOR: &str = "fanoutCursor";

/// Whether a fan-out puts or deletes its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    Put,
    Delete,
}

/// The lease an event holds on its author while it runs.
struct Lease {
    key: String,
    owner: String,
}

impl FeedProjector {
    pub fn new(client: &Client, tables: &TableNames) -> Self {
        Self {
            client: client.clone(),
            feeds_table: tables.feeds.clone(),
            articles_table: tables.feed_articles.clone(),
            followers_table: tables.feed_followers.clone(),
            checkpoints_table: tables.checkpoints.clone(),
            limits: FeedLimits::default(),
            instance: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn with_limits(mut self, limits: FeedLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The projector with its runtime, over the tables named by `tables`.
    pub fn runtime(client: &Client, tables: &TableNames) -> ProjectorRuntime<Self> {
        ProjectorRuntime::over_tables(Self::new(client, tables), client, tables)
    }

    fn checkpoint_key(&self, event: &StoredEvent) -> String {
        checkpoints::key(self.name(), &event.stream_key())
    }

    /// Takes `author`'s lease, waiting (with jittered backoff) up to `lease_wait` while another
    /// event holds it. Each call holds it under its own owner: two deliveries of one event
    /// (a duplicate, or a retry after a lost commit) exclude each other like any two events,
    /// so no fan-out runs on after another's commit released the author.
    async fn acquire(&self, author: &str, event: &StoredEvent) -> Result<Lease, ProjectionError> {
        let lease = Lease {
            key: checkpoints::key(self.name(), &format!("lease#{author}")),
            owner: format!(
                "{}:{}:{}:{}",
                self.instance,
                event.stream_key(),
                event.sequence,
                uuid::Uuid::new_v4()
            ),
        };
        let started = Instant::now();
        let mut failures = 0;
        loop {
            let now = common::clock::now_ms();
            let result = self
                .client
                .put_item()
                .table_name(&self.checkpoints_table)
                .item(checkpoints::PK, s(&lease.key))
                .item("owner", s(&lease.owner))
                .item("expiresAt", n(now + self.limits.lease.as_millis() as u64))
                .condition_expression("attribute_not_exists(#pk) OR #expires < :now")
                .expression_attribute_names("#pk", checkpoints::PK)
                .expression_attribute_names("#expires", "expiresAt")
                .expression_attribute_values(":now", n(now))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(lease),
                Err(error) if error.code() == Some("ConditionalCheckFailedException") => {
                    if started.elapsed() >= self.limits.lease_wait {
                        return Err(ProjectionError::Contended(format!(
                            "the feed lease of author {author}"
                        )));
                    }
                    failures += 1;
                    tokio::time::sleep(LEASE_BACKOFF.jittered(failures)).await;
                }
                Err(error) => return Err(unavailable(error)),
            }
        }
    }

    /// The lease's release, to run in the commit transaction: the checkpoint moves and the
    /// author is free in one step. Fails the transaction if the lease was lost meanwhile.
    fn release_action(&self, lease: &Lease) -> Result<TransactWriteItem, ProjectionError> {
        let delete = Delete::builder()
            .table_name(&self.checkpoints_table)
            .key(checkpoints::PK, s(&lease.key))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&lease.owner))
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Gives the lease back now (the event failed, paused or was already applied). Best
    /// effort: if this fails too, the lease expires.
    async fn release(&self, lease: &Lease) {
        let result = self
            .client
            .delete_item()
            .table_name(&self.checkpoints_table)
            .key(checkpoints::PK, s(&lease.key))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&lease.owner))
            .send()
            .await;
        if let Err(error) = result {
            if error.code() != Some("ConditionalCheckFailedException") {
                tracing::warn!(lease = %lease.key, error = %error, "lease not released; it will expire");
            }
        }
    }

    /// The last applied sequence of the event's stream and, if an earlier run of this event
    /// paused its fan-out, where to continue; read consistently from the checkpoint item.
    async fn position(&self, event: &StoredEvent) -> Result<(u64, Option<Item>), ProjectionError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.checkpoints_table)
            .key(checkpoints::PK, s(self.checkpoint_key(event)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = output.item() else {
            return Ok((0, None));
        };
        let last = events::views::number(item, checkpoints::LAST_SEQ).unwrap_or(0);
        let resume = match item.get(FANOUT_CURSOR) {
            Some(AttributeValue::M(cursor))
                if events::views::number(item, FANOUT_SEQ) == Some(event.sequence) =>
            {
                Some(cursor.clone())
            }
            _ => None,
        };
        Ok((last, resume))
    }

    /// Applies `event` under its author's lease; returns the writes for the commit
    /// transaction, or `None` when the event turned out to be applied already.
    async fn apply(
        &self,
        event: &StoredEvent,
    ) -> Result<Option<Vec<TransactWriteItem>>, ProjectionError> {
        let (last, resume) = self.position(event).await?;
        if last >= event.sequence {
            return Ok(None);
        }
        let plan = self.plan(event, &Live(&self.client)).await?;
        for op in &plan.first {
            op.send(&self.client).await?;
        }
        let mut resume = resume;
        for job in &plan.for_each {
            let started = Instant::now();
            let resumed = resume.is_some();
            let visited = crate::ops::visit(
                &self.client,
                job,
                self.limits.page_size,
                self.limits.concurrent_batches,
                resume.take(),
                Some(self.limits.fanout_budget),
            )
            .await?;
            match visited {
                Visited::Done(written) => {
                    if written > 100 || resumed {
                        tracing::info!(table = %job.table, written, resumed, "fan-out done");
                    }
                }
                Visited::Paused { written, cursor } => {
                    self.save_cursor(event, cursor).await?;
                    return Err(ProjectionError::Paused(format!(
                        "fan-out over {}: {written} entries written in {:?}; continues from the saved cursor",
                        job.table,
                        started.elapsed()
                    )));
                }
            }
        }
        plan.commit
            .iter()
            .map(Op::transact)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Keeps a paused fan-out's place in the event's checkpoint item.
    async fn save_cursor(&self, event: &StoredEvent, cursor: Item) -> Result<(), ProjectionError> {
        self.client
            .update_item()
            .table_name(&self.checkpoints_table)
            .key(checkpoints::PK, s(self.checkpoint_key(event)))
            .update_expression("SET #seq = :seq, #cursor = :cursor")
            .expression_attribute_names("#seq", FANOUT_SEQ)
            .expression_attribute_names("#cursor", FANOUT_CURSOR)
            .expression_attribute_values(":seq", n(event.sequence))
            .expression_attribute_values(":cursor", AttributeValue::M(cursor))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn follower_key(author: &str, follower: &str) -> Key {
        Key::new(feed_followers::AUTHOR_ID, s(author))
            .with_sort(feed_followers::FOLLOWER_ID, s(follower))
    }

    fn article_key(author: &str, article_id: &str) -> Key {
        Key::new(feed_articles::AUTHOR_ID, s(author))
            .with_sort(feed_articles::ARTICLE_ID, s(article_id))
    }

    /// The author's copy of `article`, whole.
    fn article_put(&self, article: &FeedArticle) -> Op {
        Op::put(
            &self.articles_table,
            Self::article_key(&article.author_id, &article.article_id),
            vec![
                (feed_articles::SLUG, s(&article.slug)),
                (feed_articles::TITLE, s(&article.title)),
                (feed_articles::DESCRIPTION, s(&article.description)),
                (
                    feed_articles::TAG_LIST,
                    AttributeValue::L(article.tag_list.iter().map(s).collect()),
                ),
                (feed_articles::CREATED_AT, s(&article.created_at)),
                (feed_articles::UPDATED_AT, s(&article.updated_at)),
                (feed_articles::LAST_SEQ, n(article.last_seq)),
            ],
        )
    }

    /// A fan-out over `author`'s followers or articles: `entry` turns each item into
    /// (reader, feed key, article id), or skips it; each becomes a put or a delete of that
    /// feed entry.
    fn fan_out<F>(&self, author: &str, source: Source, write: Write, entry: F) -> ForEach
    where
        F: Fn(&Item) -> Option<(String, String, String)> + Send + Sync + 'static,
    {
        let (table, key) = match source {
            Source::Followers => (&self.followers_table, Self::follower_key(author, "")),
            Source::Articles => (&self.articles_table, Self::article_key(author, "")),
        };
        let (feeds_table, author_id) = (self.feeds_table.clone(), author.to_owned());
        ForEach {
            table: table.clone(),
            partition: key.partition.clone(),
            key,
            write: Box::new(move |item| {
                let (reader, feed_key, article_id) = entry(item)?;
                let key =
                    Key::new(feeds::USER_ID, s(reader)).with_sort(feeds::FEED_KEY, s(feed_key));
                Some(match write {
                    Write::Put => Op::put(
                        &feeds_table,
                        key,
                        vec![
                            (feeds::AUTHOR_ID, s(&author_id)),
                            (feeds::ARTICLE_ID, s(article_id)),
                        ],
                    ),
                    Write::Delete => Op::Delete {
                        table: feeds_table.clone(),
                        key,
                    },
                })
            }),
        }
    }
}

impl ReadModel for FeedProjector {
    async fn plan<S: State>(
        &self,
        event: &StoredEvent,
        state: &S,
    ) -> Result<Plan, ProjectionError> {
        Ok(match Change::of(event)? {
            Change::Nothing => Plan::default(),
            // Entries hold keys only: an edit rewrites the copy every feed page reads.
            Change::Edited(article) => Plan::commit(vec![self.article_put(&article)]),
            Change::Followed { follower, author } => Plan {
                first: vec![Op::put(
                    &self.followers_table,
                    Self::follower_key(&author, &follower),
                    vec![(feed_followers::SEQ, n(event.sequence))],
                )],
                for_each: vec![
                    self.fan_out(&author, Source::Articles, Write::Put, move |item| {
                        let article = FeedArticle::from_item(item)?;
                        Some((follower.clone(), article.feed_key(), article.article_id))
                    }),
                ],
                commit: Vec::new(),
            },
            Change::Unfollowed { follower, author } => Plan {
                first: vec![Op::Delete {
                    table: self.followers_table.clone(),
                    key: Self::follower_key(&author, &follower),
                }],
                // Articles whose deletion is under way too: their entries go either way.
                for_each: vec![self.fan_out(
                    &author,
                    Source::Articles,
                    Write::Delete,
                    move |item| {
                        let article_id = events::views::text(item, feed_articles::ARTICLE_ID)?;
                        let created_at = events::views::text(item, feed_articles::CREATED_AT)?;
                        let key = feeds::feed_key(&created_at, &article_id);
                        Some((follower.clone(), key, article_id))
                    },
                )],
                commit: Vec::new(),
            },
            // The copy comes before the fan-out, so that a follow that runs while the fan-out
            // is paused already sees it.
            Change::Published(article) => {
                let (key, article_id) = (article.feed_key(), article.article_id.clone());
                Plan {
                    first: vec![self.article_put(&article)],
                    for_each: vec![self.fan_out(
                        &article.author_id,
                        Source::Followers,
                        Write::Put,
                        move |follower| {
                            let follower =
                                events::views::text(follower, feed_followers::FOLLOWER_ID)?;
                            Some((follower, key.clone(), article_id.clone()))
                        },
                    )],
                    commit: Vec::new(),
                }
            }
            // Marked first, so that follows no longer bring it in; dropped in the commit. No
            // copy: nothing to remove.
            Change::Deleted { author, article_id } => {
                let copy_key = Self::article_key(&author, &article_id);
                let Some(copy) = state.get(&self.articles_table, &copy_key).await? else {
                    return Ok(Plan::default());
                };
                let created_at =
                    events::views::text(&copy, feed_articles::CREATED_AT).unwrap_or_default();
                let key = feeds::feed_key(&created_at, &article_id);
                Plan {
                    first: vec![Op::Update {
                        table: self.articles_table.clone(),
                        key: copy_key.clone(),
                        set: vec![(feed_articles::DELETED, AttributeValue::Bool(true))],
                        remove: Vec::new(),
                        add: None,
                        condition: Some(Condition::Exists(feed_articles::ARTICLE_ID)),
                    }],
                    for_each: vec![self.fan_out(
                        &author,
                        Source::Followers,
                        Write::Delete,
                        move |follower| {
                            let follower =
                                events::views::text(follower, feed_followers::FOLLOWER_ID)?;
                            Some((follower, key.clone(), article_id.clone()))
                        },
                    )],
                    commit: vec![Op::Delete {
                        table: self.articles_table.clone(),
                        key: copy_key,
                    }],
                }
            }
        })
    }
}

impl Projector for FeedProjector {
    fn name(&self) -> &'static str {
        "feed"
    }

    fn accepts(&self, aggregate_type: &str) -> bool {
        matches!(
            aggregate_type,
            events::user::AGGREGATE_TYPE | events::article::AGGREGATE_TYPE
        )
    }

    /// The commit that would have released the lease did not happen (or may not have): give the
    /// lease back now, so that the retry, or the next event about the author, need not wait
    /// for it to expire. Conditional on the owner, so it never frees someone else's lease.
    async fn abandoned(&self, _event: &StoredEvent, actions: &[TransactWriteItem]) {
        for action in actions {
            let Some(delete) = action.delete() else {
                continue;
            };
            let owner = delete
                .expression_attribute_values()
                .and_then(|values| values.get(":owner"))
                .and_then(|owner| owner.as_s().ok());
            let key = delete
                .key()
                .get(checkpoints::PK)
                .and_then(|key| key.as_s().ok());
            if let (true, Some(key), Some(owner)) =
                (delete.table_name() == self.checkpoints_table, key, owner)
            {
                let lease = Lease {
                    key: key.clone(),
                    owner: owner.clone(),
                };
                self.release(&lease).await;
            }
        }
    }

    async fn effects(
        &self,
        event: &StoredEvent,
    ) -> Result<Vec<TransactWriteItem>, ProjectionError> {
        let change = Change::of(event)?;
        let Some(author) = change.lease_author() else {
            // An edit needs no lease: its commit rewrites the copy alone.
            let plan = self.plan(event, &Live(&self.client)).await?;
            return plan.commit.iter().map(Op::transact).collect();
        };
        let lease = self.acquire(author, event).await?;
        match self.apply(event).await {
            Ok(Some(mut actions)) => {
                actions.push(self.release_action(&lease)?);
                Ok(actions)
            }
            Ok(None) => {
                // Applied meanwhile by another instance: the runtime's checkpoint condition
                // fails next and reports a duplicate.
                self.release(&lease).await;
                Ok(Vec::new())
            }
            Err(error) => {
                self.release(&lease).await;
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(
        aggregate_type: &str,
        id: &str,
        event_type: &str,
        payload: serde_json::Value,
    ) -> StoredEvent {
        serde_json::from_value(json!({
            "aggregateType": aggregate_type, "aggregateId": id, "sequence": 3,
            "eventId": "7f8a5f4c-8f0e-4a59-9d0e-0c1c8e2b7a11", "eventType": event_type,
            "eventVersion": 1, "payload": payload, "recordedAt": "2024-01-01T00:00:00.000Z"
        }))
        .expect("event")
    }

    #[test]
    fn follows_concern_the_followee_and_articles_their_author() {
        let followed = stored("User", "f", "UserFollowed", json!({"followeeId": "a"}));
        let change = Change::of(&followed).expect("decodes");
        assert_eq!(change.lease_author(), Some("a"));
        assert!(matches!(change, Change::Followed { ref follower, .. } if follower == "f"));

        let published = stored(
            "Article",
            "x",
            "ArticlePublished",
            json!({"articleId": "x", "authorId": "a", "slug": "s", "title": "T",
                   "description": "D", "body": "B", "tagList": ["t"],
                   "createdAt": "2024-01-01T00:00:00.000Z"}),
        );
        let Change::Published(article) = Change::of(&published).expect("decodes") else {
            panic!("not a publish");
        };
        assert_eq!(article.author_id, "a");
        assert_eq!(article.updated_at, article.created_at);
        assert_eq!(article.last_seq, 3);
        assert_eq!(article.feed_key(), "1704067200000#x");

        let deleted = stored(
            "Article",
            "x",
            "ArticleDeleted",
            json!({"authorId": "a", "slug": "s", "deletedAt": "2024-01-02T00:00:00.000Z"}),
        );
        assert_eq!(
            Change::of(&deleted).expect("decodes").lease_author(),
            Some("a")
        );
    }

    #[test]
    fn other_user_events_change_no_feed_and_unknown_ones_are_refused() {
        let renamed = stored(
            "User",
            "u",
            "UserRenamed",
            json!({"username": "b", "previousUsername": "a"}),
        );
        assert_eq!(Change::of(&renamed).expect("decodes"), Change::Nothing);
        let unknown = stored("User", "u", "UserVanished", json!({}));
        assert!(matches!(
            Change::of(&unknown),
            Err(ProjectionError::Unsupported { .. })
        ));
        let other = stored("Favorite", "x:u", "ArticleFavorited", json!({}));
        assert!(matches!(
            Change::of(&other),
            Err(ProjectionError::Unsupported { .. })
        ));
    }
}
