//! The feed projector against DynamoDB Local and moto: one recorded history of follows,
//! unfollows, publications, edits and deletions delivered in order, shuffled with duplicates,
//! concurrently and with gaps must always give the same feeds; a fan-out too big for its budget
//! pauses and resumes where it stopped; poison messages end in the dead-letter queue.
//!
//! State is compared by reading the three feed tables whole (see [`FeedState`]). The shuffle
//! and concurrency tests record their history once and wipe the feed tables and the checkpoints
//! between deliveries instead of provisioning a fixture per run (provisioning and re-recording
//! cost more than the few dozen deletes).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::support::{messages, sns_body, sqs_event, GARBAGE_NOTIFICATION};
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use events::article::ArticleEvent;
use events::user::UserEvent;
use events::views::feed_articles::FeedArticle;
use events::views::feeds::{self, FeedEntry};
use events::views::{feed_followers, Item};
use events::StoredEvent;
use futures::future::join_all;
use futures::stream::{self, StreamExt};
use infra::resources::FEED_PROJECTOR_QUEUE;
use projectors::feed::FeedLimits;
use projectors::runtime::Outcome;
use projectors::{FeedProjector, ProjectionError, ProjectorRuntime};
use uuid::Uuid;

type Fixture = crate::support::Fixture<FeedProjector>;
type Runtime = ProjectorRuntime<FeedProjector>;

const USER: &str = events::user::AGGREGATE_TYPE;
const ARTICLE: &str = events::article::AGGREGATE_TYPE;

async fn fixture(tag: &str) -> Fixture {
    Fixture::new(tag, FeedProjector::runtime).await
}

/// A runtime over the fixture's tables whose projector has `limits`.
fn limited(f: &Fixture, limits: FeedLimits) -> Runtime {
    ProjectorRuntime::over_tables(
        FeedProjector::new(&f.clients.dynamodb, &f.tables).with_limits(limits),
        &f.clients.dynamodb,
        &f.tables,
    )
}

/// Limits under which every fan-out pauses after its first page of 50.
fn no_budget() -> FeedLimits {
    FeedLimits {
        fanout_budget: Duration::ZERO,
        page_size: 50,
        ..FeedLimits::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Events

fn registered(id: &str) -> UserEvent {
    UserEvent::UserRegistered {
        user_id: id.into(),
        email: format!("{id}@example.com"),
        username: id.into(),
        password_hash: "$argon2id$secret".into(),
    }
}

fn followed(followee: &str) -> UserEvent {
    UserEvent::UserFollowed {
        followee_id: followee.into(),
    }
}

fn unfollowed(followee: &str) -> UserEvent {
    UserEvent::UserUnfollowed {
        followee_id: followee.into(),
    }
}

fn slug(article: &str) -> String {
    format!("{article}-slug")
}

fn title(article: &str) -> String {
    format!("Title of {article}")
}

fn revised_title(article: &str) -> String {
    format!("Title of {article}, revised")
}

fn tags() -> Vec<String> {
    vec!["feeds".into(), "testing".into()]
}

fn published(article: &str, author: &str, created_at: &str) -> ArticleEvent {
    ArticleEvent::ArticlePublished {
        article_id: article.into(),
        author_id: author.into(),
        slug: slug(article),
        title: title(article),
        description: format!("About {article}"),
        body: format!("The body of {article}"),
        tag_list: tags(),
        created_at: created_at.into(),
    }
}

/// The edit of a title (and of the slug, when `new_slug` differs from the published one).
fn edited(
    article: &str,
    author: &str,
    new_slug: &str,
    created_at: &str,
    updated_at: &str,
) -> ArticleEvent {
    ArticleEvent::ArticleEdited {
        slug: new_slug.into(),
        previous_slug: slug(article),
        author_id: author.into(),
        title: revised_title(article),
        description: format!("About {article}"),
        body: format!("The body of {article}, revised"),
        tag_list: tags(),
        created_at: created_at.into(),
        updated_at: updated_at.into(),
    }
}

fn deleted(author: &str, slug: &str) -> ArticleEvent {
    ArticleEvent::ArticleDeleted {
        author_id: author.into(),
        slug: slug.into(),
        deleted_at: "2024-06-01T00:00:00.000Z".into(),
    }
}

/// `<type>#<id>@<sequence> <event type>`, for failure messages.
fn label(event: &StoredEvent) -> String {
    format!(
        "{}@{} {}",
        event.stream_key(),
        event.sequence,
        event.event_type
    )
}

// ---------------------------------------------------------------------------------------------
// Reading and wiping the read model

/// A table's items by key (hash, range).
type Rows = BTreeMap<(String, String), Item>;

/// Everything the feed projector keeps, read whole (strongly consistent).
#[derive(Clone, Debug, PartialEq)]
struct FeedState {
    /// Each reader's feed: article ids in `feedKey` order (readers with an empty feed absent).
    feeds: BTreeMap<String, Vec<String>>,
    /// The `feeds` table.
    entries: Rows,
    /// The `feed-articles` table.
    articles: Rows,
    /// The `feed-followers` table.
    followers: Rows,
}

impl FeedState {
    /// What differs from `other`, one line per key.
    fn differences(&self, other: &FeedState) -> Vec<String> {
        fn rows(name: &str, got: &Rows, want: &Rows, out: &mut Vec<String>) {
            let keys: BTreeSet<_> = got.keys().chain(want.keys()).collect();
            for key in keys {
                match (got.get(key), want.get(key)) {
                    (Some(g), Some(w)) if g == w => {}
                    (g, w) => out.push(format!("{name} {key:?}: got {g:?}, expected {w:?}")),
                }
            }
        }
        let mut out = Vec::new();
        let readers: BTreeSet<_> = self.feeds.keys().chain(other.feeds.keys()).collect();
        for reader in readers {
            let (got, want) = (self.feeds.get(reader), other.feeds.get(reader));
            if got != want {
                out.push(format!("feed of {reader}: got {got:?}, expected {want:?}"));
            }
        }
        rows("feeds", &self.entries, &other.entries, &mut out);
        rows("feed-articles", &self.articles, &other.articles, &mut out);
        rows(
            "feed-followers",
            &self.followers,
            &other.followers,
            &mut out,
        );
        out
    }

    /// The feed-articles items as views (each must be a live article).
    fn feed_articles(&self) -> BTreeMap<String, FeedArticle> {
        self.articles
            .iter()
            .map(|(key, item)| {
                let article = FeedArticle::from_item(item).unwrap_or_else(|| {
                    panic!("feed-articles {key:?} is no live article: {item:?}")
                });
                (article.article_id.clone(), article)
            })
            .collect()
    }
}

async fn scan(f: &Fixture, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut pages = f
        .clients
        .dynamodb
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        items.extend(page.expect("scan").items().iter().cloned());
    }
    items
}

fn text(item: &Item, name: &str) -> String {
    events::views::text(item, name).unwrap_or_else(|| panic!("no {name} in {item:?}"))
}

fn rows(items: &[Item], hash: &str, range: &str) -> Rows {
    items
        .iter()
        .map(|item| ((text(item, hash), text(item, range)), item.clone()))
        .collect()
}

/// The whole feed read model.
async fn snapshot(f: &Fixture) -> FeedState {
    let entries = scan(f, &f.tables.feeds).await;
    let articles = scan(f, &f.tables.feed_articles).await;
    let followers = scan(f, &f.tables.feed_followers).await;
    let mut feeds: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for item in &entries {
        let entry = FeedEntry::from_item(item).unwrap_or_else(|| panic!("feed entry {item:?}"));
        feeds
            .entry(entry.user_id)
            .or_default()
            .push((entry.feed_key, entry.article_id));
    }
    FeedState {
        feeds: feeds
            .into_iter()
            .map(|(reader, mut keyed)| {
                keyed.sort();
                (reader, keyed.into_iter().map(|(_, id)| id).collect())
            })
            .collect(),
        entries: rows(&entries, feeds::USER_ID, feeds::FEED_KEY),
        articles: rows(&articles, "authorId", "articleId"),
        followers: rows(
            &followers,
            feed_followers::AUTHOR_ID,
            feed_followers::FOLLOWER_ID,
        ),
    }
}

/// How many feeds hold `article`.
async fn feeds_holding(f: &Fixture, article: &str) -> usize {
    scan(f, &f.tables.feeds)
        .await
        .iter()
        .filter(|item| text(item, feeds::ARTICLE_ID) == article)
        .count()
}

/// Empties the feed tables and the checkpoints table (checkpoints, leases, fan-out progress),
/// so that the projector starts from nothing again over the same event store.
async fn wipe(f: &Fixture) {
    let tables: [(&str, &[&str]); 4] = [
        (&f.tables.feeds, &[feeds::USER_ID, feeds::FEED_KEY]),
        (&f.tables.feed_articles, &["authorId", "articleId"]),
        (
            &f.tables.feed_followers,
            &[feed_followers::AUTHOR_ID, feed_followers::FOLLOWER_ID],
        ),
        (&f.tables.checkpoints, &[events::views::checkpoints::PK]),
    ];
    for (table, key) in tables {
        let items = scan(f, table).await;
        for chunk in items.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    let key = key
                        .iter()
                        .map(|name| (name.to_string(), item[*name].clone()))
                        .collect();
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key))
                                .build()
                                .expect("delete request"),
                        )
                        .build()
                })
                .collect();
            while !requests.is_empty() {
                let output = f
                    .clients
                    .dynamodb
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .expect("BatchWriteItem");
                requests = output
                    .unprocessed_items
                    .and_then(|mut left| left.remove(table))
                    .unwrap_or_default();
            }
        }
        assert!(scan(f, table).await.is_empty(), "{table} wiped");
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery

/// Delivers `event` as the queue would until it is applied: a failed delivery (a lost race, a
/// lease held elsewhere, a pause) is delivered again, at most `tries` times in all. Returns the
/// outcome and how many deliveries failed.
async fn until_done(runtime: &Runtime, event: &StoredEvent, tries: usize) -> (Outcome, usize) {
    let mut failures = 0;
    loop {
        match runtime.project(event).await {
            Ok(outcome) => return (outcome, failures),
            Err(error @ (ProjectionError::Unreadable(_) | ProjectionError::Unsupported { .. })) => {
                panic!("{}: {error}", label(event))
            }
            Err(error) => {
                failures += 1;
                assert!(
                    failures < tries,
                    "{} still fails after {failures} deliveries: {error}",
                    label(event)
                );
                tokio::time::sleep(Duration::from_millis(20 * failures as u64)).await;
            }
        }
    }
}

/// Hands `batches` to the runtime all at once (like as many Lambda instances), then delivers
/// the failed messages again (one batch per round) until none fails. Returns the failures.
async fn deliver_batches(runtime: &Runtime, batches: Vec<Vec<(String, String)>>) -> usize {
    let bodies: BTreeMap<String, String> = batches.iter().flatten().cloned().collect();
    let responses = join_all(
        batches
            .iter()
            .map(|batch| runtime.handle_sqs(sqs_event(batch))),
    )
    .await;
    let mut failed: BTreeSet<String> = responses.iter().flat_map(crate::support::failed).collect();
    let mut failures = failed.len();
    for _ in 0..20 {
        if failed.is_empty() {
            return failures;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let again: Vec<(String, String)> = failed
            .iter()
            .map(|id| (id.clone(), bodies[id].clone()))
            .collect();
        failed = crate::support::failed(&runtime.handle_sqs(sqs_event(&again)).await);
        failures += failed.len();
    }
    panic!("messages still failing after 20 redeliveries: {failed:?}");
}

/// Delivers `event` with a budget-limited runtime until it is applied (at most 20 times),
/// checking after each pause that `article`'s entries moved the way `growing` says and that
/// the event's checkpoint did not. Returns how many deliveries paused.
async fn until_done_pausing(
    f: &Fixture,
    runtime: &Runtime,
    event: &StoredEvent,
    article: &str,
    growing: bool,
) -> usize {
    let mut pauses = 0;
    let mut entries = feeds_holding(f, article).await;
    for _ in 0..20 {
        match runtime.project(event).await {
            Ok(outcome) => {
                assert_eq!(outcome, Outcome::Applied { filled: 0 }, "{}", label(event));
                return pauses;
            }
            Err(ProjectionError::Paused(why)) => {
                pauses += 1;
                let now = feeds_holding(f, article).await;
                assert!(
                    if growing { now > entries } else { now < entries },
                    "{}: pause {pauses} ({why}) made no progress: {entries} -> {now} entries of {article}",
                    label(event)
                );
                entries = now;
                assert_eq!(
                    runtime
                        .last_applied(&event.stream_key())
                        .await
                        .expect("checkpoint"),
                    event.sequence - 1,
                    "a paused event is not checkpointed"
                );
            }
            Err(other) => panic!("{}: {other}", label(event)),
        }
    }
    panic!("{} not done after 20 deliveries", label(event));
}

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

// ---------------------------------------------------------------------------------------------
// The recorded history

const ALICE: &str = "alice";
const BOB: &str = "bob";
const CAROL: &str = "carol";
const DAVE: &str = "dave";
const ERIN: &str = "erin";
/// Follows nobody, is followed by nobody, publishes nothing.
const FRANK: &str = "frank";

const T1: &str = "2024-03-01T10:00:00.000Z";
const T2: &str = "2024-03-02T10:00:00.000Z";
const T3: &str = "2024-03-03T10:00:00.000Z";
const T4: &str = "2024-03-04T10:00:00.000Z";
const T5: &str = "2024-03-05T10:00:00.000Z";
const T6: &str = "2024-03-06T10:00:00.000Z";
/// Both `a3` and `c3`: the tie is broken by article id.
const T7: &str = "2024-03-07T10:00:00.000Z";
const EDIT_A1: &str = "2024-04-01T10:00:00.000Z";
const EDIT_C1: &str = "2024-04-02T10:00:00.000Z";
const EDIT_C2: &str = "2024-04-03T10:00:00.000Z";

/// Each article's author and creation time.
fn article_meta(article: &str) -> (&'static str, &'static str) {
    match article {
        "a1" => (ALICE, T1),
        "b1" => (BOB, T2),
        "a2" => (ALICE, T3),
        "c1" => (CAROL, T4),
        "b2" => (BOB, T5),
        "c2" => (CAROL, T6),
        "a3" => (ALICE, T7),
        "c3" => (CAROL, T7),
        other => panic!("no article {other}"),
    }
}

enum Step {
    User(&'static str, UserEvent),
    Article(&'static str, ArticleEvent),
}

fn user(id: &'static str, event: UserEvent) -> Step {
    Step::User(id, event)
}

fn publish(article: &'static str) -> Step {
    let (author, created) = article_meta(article);
    Step::Article(article, published(article, author, created))
}

fn edit(article: &'static str, new_slug: &str, at: &str) -> Step {
    let (author, created) = article_meta(article);
    Step::Article(article, edited(article, author, new_slug, created, at))
}

fn delete(article: &'static str, slug: &str) -> Step {
    let (author, _) = article_meta(article);
    Step::Article(article, deleted(author, slug))
}

/// The history, in the order it is appended. The comments give each step's effect on the feeds
/// when applied in this order.
fn steps() -> Vec<Step> {
    let mut steps: Vec<Step> = [ALICE, BOB, CAROL, DAVE, ERIN, FRANK]
        .into_iter()
        .map(|id| user(id, registered(id)))
        .collect();
    steps.extend([
        publish("a1"),                    // nobody follows alice yet
        publish("b1"),                    // nobody follows bob yet
        user(DAVE, followed(ALICE)),      // dave: a1 (backfill)
        user(ERIN, followed(ALICE)),      // erin: a1
        user(ERIN, followed(BOB)),        // erin: a1 b1
        publish("a2"),                    // dave: a1 a2; erin: a1 b1 a2
        publish("c1"),                    // nobody follows carol yet
        user(BOB, followed(ALICE)),       // bob: a1 a2
        user(DAVE, followed(CAROL)),      // dave: a1 a2 c1 (follow after the article)
        edit("a1", &slug("a1"), EDIT_A1), // title only: no entry changes
        user(ERIN, unfollowed(ALICE)),    // erin: b1
        publish("b2"),                    // erin: b1 b2
        user(ERIN, followed(ALICE)),      // erin: a1 b1 a2 b2 (re-follow)
        publish("c2"),                    // dave: a1 a2 c1 c2
        delete("a2", &slug("a2")),        // out of the feeds of dave, erin and bob
        user(
            FRANK,
            UserEvent::profile_updated("I follow nobody", "https://img/frank.png"),
        ),
        user(CAROL, followed(BOB)),       // carol: b1 b2
        publish("a3"),                    // dave, erin, bob get a3
        user(DAVE, unfollowed(CAROL)),    // dave: a1 a3
        edit("c1", "c1-slug-2", EDIT_C1), // title and slug
        delete("b1", &slug("b1")),        // out of erin's and carol's feeds
        edit("c2", &slug("c2"), EDIT_C2),
        delete("c2", &slug("c2")),    // in nobody's feed any more
        user(ALICE, followed(CAROL)), // alice: c1 (c2 is deleted)
        publish("c3"),                // alice: c1 c3
        user(DAVE, followed(CAROL)),  // dave: a1 c1 a3 c3 (re-follow)
        user(ERIN, unfollowed(BOB)),  // erin: a1 a3
        user(
            FRANK,
            UserEvent::UserRenamed {
                username: "frank-renamed".into(),
                previous_username: FRANK.into(),
            },
        ),
        user(BOB, followed(CAROL)), // bob: a1 c1 a3 c3
    ]);
    steps
}

/// The recorded history: every event in append order.
struct History {
    events: Vec<StoredEvent>,
}

impl History {
    async fn record(f: &Fixture) -> Self {
        let mut events = Vec::new();
        for step in steps() {
            let mut stored = match step {
                Step::User(id, event) => f.append(USER, id, vec![event]).await,
                Step::Article(id, event) => f.append(ARTICLE, id, vec![event]).await,
            };
            events.push(stored.remove(0));
        }
        Self { events }
    }

    /// The events' indexes grouped by stream, each stream in sequence order.
    fn streams(&self) -> Vec<Vec<usize>> {
        let mut streams: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, event) in self.events.iter().enumerate() {
            streams.entry(event.stream_key()).or_default().push(i);
        }
        streams.into_values().collect()
    }

    /// A random delivery order: every event once, interleaving the streams at random (keeping
    /// each stream's own order when `keep_stream_order`, otherwise any order at all), with
    /// about 30% more deliveries re-delivering random events already delivered.
    fn delivery_order(&self, rng: &mut Rng, keep_stream_order: bool) -> Vec<usize> {
        let fresh: Vec<usize> = if keep_stream_order {
            let mut streams: Vec<VecDeque<usize>> =
                self.streams().into_iter().map(VecDeque::from).collect();
            let mut left = self.events.len();
            let mut order = Vec::new();
            while left > 0 {
                // A stream with a chance in proportion to what it has left.
                let mut pick = rng.below(left);
                let stream = streams
                    .iter_mut()
                    .find(|s| {
                        if pick < s.len() {
                            return true;
                        }
                        pick -= s.len();
                        false
                    })
                    .expect("a stream with events left");
                order.push(stream.pop_front().expect("an event"));
                left -= 1;
            }
            order
        } else {
            let mut order: Vec<usize> = (0..self.events.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            order
        };
        let mut order = Vec::new();
        for i in fresh {
            order.push(i);
            if rng.percent(30) {
                order.push(order[rng.below(order.len())]);
            }
        }
        order
    }

    fn describe(&self, order: &[usize]) -> String {
        order
            .iter()
            .map(|&i| label(&self.events[i]))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Delivers the events of `order` one at a time with a fresh runtime, each delivery
    /// expected to succeed with what the runtime's contract says (applied with the gap it
    /// filled, or a duplicate), starting from nothing applied or (`all_applied`) everything.
    async fn deliver(&self, f: &Fixture, order: &[usize], context: &str, all_applied: bool) {
        let runtime = FeedProjector::runtime(&f.clients.dynamodb, &f.tables);
        let mut through: BTreeMap<String, u64> = BTreeMap::new();
        if all_applied {
            for event in &self.events {
                through.insert(event.stream_key(), event.sequence);
            }
        }
        for &i in order {
            let event = &self.events[i];
            let outcome = runtime
                .project(event)
                .await
                .unwrap_or_else(|e| panic!("{context}: delivering {} failed: {e}", label(event)));
            let last = through.entry(event.stream_key()).or_default();
            let expected = if event.sequence <= *last {
                Outcome::Duplicate
            } else {
                Outcome::Applied {
                    filled: event.sequence - *last - 1,
                }
            };
            assert_eq!(outcome, expected, "{context}: {}", label(event));
            *last = (*last).max(event.sequence);
        }
    }

    /// Builds the read model from nothing by delivering every event once in append order.
    async fn build_in_order(&self, f: &Fixture) -> FeedState {
        wipe(f).await;
        let order: Vec<usize> = (0..self.events.len()).collect();
        self.deliver(f, &order, "in order", false).await;
        snapshot(f).await
    }
}

/// Checks the state built in append order against what the semantics say, by hand.
fn assert_expected_by_hand(state: &FeedState) {
    let expected_feeds: BTreeMap<String, Vec<String>> = [
        (ALICE, vec!["c1", "c3"]),
        (BOB, vec!["a1", "c1", "a3", "c3"]),
        (CAROL, vec!["b2"]),
        (DAVE, vec!["a1", "c1", "a3", "c3"]),
        (ERIN, vec!["a1", "a3"]),
    ]
    .into_iter()
    .map(|(reader, ids)| {
        (
            reader.to_owned(),
            ids.into_iter().map(String::from).collect(),
        )
    })
    .collect();
    assert_eq!(state.feeds, expected_feeds, "feeds");

    // Every entry: its key from the article's creation time and id, its author.
    assert_eq!(state.entries.len(), 13);
    for ((reader, key), attributes) in &state.entries {
        let article = state.feeds[reader]
            .iter()
            .find(|id| key.ends_with(&format!("#{id}")))
            .unwrap_or_else(|| panic!("entry {reader} {key}"));
        let (author, created) = article_meta(article);
        assert_eq!(key, &feeds::feed_key(created, article));
        assert_eq!(
            events::views::text(attributes, feeds::AUTHOR_ID).as_deref(),
            Some(author)
        );
    }

    let article = |id: &str, slug: &str, title: String, updated: &str, last_seq: u64| {
        let (author, created) = article_meta(id);
        FeedArticle {
            author_id: author.into(),
            article_id: id.into(),
            slug: slug.into(),
            title,
            description: format!("About {id}"),
            tag_list: tags(),
            created_at: created.into(),
            updated_at: updated.into(),
            last_seq,
        }
    };
    let expected_articles: BTreeMap<String, FeedArticle> = [
        article("a1", "a1-slug", revised_title("a1"), EDIT_A1, 2),
        article("a3", "a3-slug", title("a3"), T7, 1),
        article("b2", "b2-slug", title("b2"), T5, 1),
        article("c1", "c1-slug-2", revised_title("c1"), EDIT_C1, 2),
        article("c3", "c3-slug", title("c3"), T7, 1),
    ]
    .into_iter()
    .map(|a| (a.article_id.clone(), a))
    .collect();
    assert_eq!(state.feed_articles(), expected_articles, "feed-articles");
    assert_eq!(state.articles.len(), 5, "no item left of a deleted article");

    // (author, follower) -> sequence of the follower's last UserFollowed.
    let expected_followers: BTreeMap<(String, String), u64> = [
        ((ALICE, BOB), 2),
        ((ALICE, DAVE), 2),
        ((ALICE, ERIN), 5),
        ((BOB, CAROL), 2),
        ((CAROL, ALICE), 2),
        ((CAROL, BOB), 3),
        ((CAROL, DAVE), 5),
    ]
    .into_iter()
    .map(|((a, r), seq)| ((a.to_owned(), r.to_owned()), seq))
    .collect();
    let followers: BTreeMap<(String, String), u64> = state
        .followers
        .iter()
        .map(|(key, item)| {
            let seq = events::views::number(item, feed_followers::SEQ)
                .unwrap_or_else(|| panic!("no seq in {key:?}"));
            (key.clone(), seq)
        })
        .collect();
    assert_eq!(followers, expected_followers, "feed-followers");
}

fn assert_same(got: &FeedState, expected: &FeedState, context: &str) {
    let differences = got.differences(expected);
    assert!(
        differences.is_empty(),
        "{context}: the state differs from the in-order build:\n  {}",
        differences.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Convergence

/// How many random orders keep each stream's order (the transport's usual disorder), and how
/// many more mix up streams too (drop-then-redeliver: the runtime fills the gaps).
const ORDERED_RUNS: u64 = 25;
const UNORDERED_RUNS: u64 = 5;

#[tokio::test]
async fn any_interleaving_of_the_streams_with_duplicates_gives_the_in_order_feeds() {
    let f = fixture("shuffle").await;
    let history = History::record(&f).await;
    assert_eq!(history.events.len(), 35);

    let expected = history.build_in_order(&f).await;
    assert_expected_by_hand(&expected);
    // Everything again changes nothing.
    let again: Vec<usize> = (0..history.events.len()).collect();
    history
        .deliver(&f, &[again.clone(), again].concat(), "replayed", true)
        .await;
    assert_same(&snapshot(&f).await, &expected, "all delivered again");

    for run in 0..ORDERED_RUNS + UNORDERED_RUNS {
        let seed = 0xFEED_0000 + run;
        let keep_stream_order = run < ORDERED_RUNS;
        let order = history.delivery_order(&mut Rng::new(seed), keep_stream_order);
        let context = format!(
            "seed {seed:#x} ({}, {} deliveries: {})",
            if keep_stream_order {
                "stream order kept"
            } else {
                "any order"
            },
            order.len(),
            history.describe(&order)
        );
        wipe(&f).await;
        history.deliver(&f, &order, &context, false).await;
        assert_same(&snapshot(&f).await, &expected, &context);
    }
}

#[tokio::test]
async fn streams_delivered_concurrently_give_the_in_order_feeds() {
    let f = fixture("concurrent").await;
    let history = History::record(&f).await;
    let expected = history.build_in_order(&f).await;
    assert_expected_by_hand(&expected);
    let streams = history.streams();
    let all: Vec<&StoredEvent> = history.events.iter().collect();

    // 1. Everything in one batch: the runtime projects up to 8 streams at once.
    wipe(&f).await;
    let failures = deliver_batches(&f.runtime, vec![messages(&all)]).await;
    eprintln!("one batch: {failures} failed deliveries (redelivered)");
    assert_same(&snapshot(&f).await, &expected, "one batch");

    // 2. One task per stream, all at once, each stream in order.
    wipe(&f).await;
    let failures: usize = join_all(streams.iter().map(|stream| {
        let (f, history) = (&f, &history);
        async move {
            let mut failures = 0;
            for &i in stream {
                failures += until_done(&f.runtime, &history.events[i], 20).await.1;
            }
            failures
        }
    }))
    .await
    .into_iter()
    .sum();
    eprintln!("a task per stream: {failures} failed deliveries (redelivered)");
    assert_same(&snapshot(&f).await, &expected, "a task per stream");

    // 3. Two instances each given every stream, one in order and one latest event first (it
    //    fills its gaps from the store), racing each other on every stream.
    wipe(&f).await;
    let second = FeedProjector::runtime(&f.clients.dynamodb, &f.tables);
    let tasks = streams.iter().flat_map(|stream| {
        let forward = stream.clone();
        let backward: Vec<usize> = stream.iter().rev().copied().collect();
        [(&f.runtime, forward), (&second, backward)]
    });
    let failures: usize = join_all(tasks.map(|(runtime, order)| {
        let history = &history;
        async move {
            let mut failures = 0;
            for i in order {
                failures += until_done(runtime, &history.events[i], 20).await.1;
            }
            failures
        }
    }))
    .await
    .into_iter()
    .sum();
    eprintln!("two racing instances: {failures} failed deliveries (redelivered)");
    assert_same(&snapshot(&f).await, &expected, "two racing instances");

    // 4. Seeded shuffles of every event twice, in batches of ten handled all at once.
    for seed in [11u64, 12, 13] {
        wipe(&f).await;
        let mut rng = Rng::new(seed);
        let mut twice: Vec<&StoredEvent> = all.iter().chain(&all).copied().collect();
        for i in (1..twice.len()).rev() {
            twice.swap(i, rng.below(i + 1));
        }
        let batches: Vec<Vec<(String, String)>> = twice.chunks(10).map(messages).collect();
        let failures = deliver_batches(&f.runtime, batches).await;
        eprintln!("batches of ten, seed {seed}: {failures} failed deliveries (redelivered)");
        let order: Vec<String> = twice.iter().map(|e| label(e)).collect();
        assert_same(
            &snapshot(&f).await,
            &expected,
            &format!(
                "batches of ten at once, seed {seed}, order {}",
                order.join(", ")
            ),
        );
    }
}

/// Delivers `events` in their order through a pool of workers, `workers` per runtime, each
/// worker taking the next event when done with its last (like Lambda instances polling one
/// queue), a failed delivery delivered again. Returns how many deliveries failed.
async fn deliver_with_workers(
    runtimes: &[&Runtime],
    workers: usize,
    events: Vec<&StoredEvent>,
) -> usize {
    let queue = std::sync::Mutex::new(VecDeque::from(events));
    let next = || queue.lock().expect("queue").pop_front();
    let pool = runtimes
        .iter()
        .flat_map(|runtime| std::iter::repeat_n(*runtime, workers))
        .map(|runtime| {
            let next = &next;
            async move {
                let mut failures = 0;
                while let Some(event) = next() {
                    failures += until_done(runtime, event, 20).await.1;
                }
                failures
            }
        });
    join_all(pool).await.into_iter().sum()
}

/// One round of a hot author's events, `star` with 100 followers publishing three articles
/// (and deleting one of them) while 20 of the followers unfollow and 20 new readers follow,
/// delivered in a random interleaving with duplicates through two projector instances with
/// `limits`, three workers each. Returns the differences from what the semantics say.
///
/// The unfollowers are the last followers in key order: a publish writes their entries last,
/// so an unfollow has the longest time to slip in between the publish's read of the followers
/// and its write of their entries (the race the author lease prevents: without it, an entry
/// stays in the feed of a reader who no longer follows).
async fn hot_author_round(f: &Fixture, star: &str, limits: FeedLimits, seed: u64) -> Vec<String> {
    let fans: Vec<String> = (0..100).map(|i| format!("{star}-fan-{i:03}")).collect();
    let newcomers: Vec<String> = (0..20).map(|i| format!("{star}-new-{i:03}")).collect();
    follow_all(f, &fans, star).await;

    let mut streams: Vec<VecDeque<StoredEvent>> = Vec::new();
    for (n, created) in [T1, T2, T3].into_iter().enumerate() {
        let article = format!("{star}-p{n}");
        let mut events = vec![published(&article, star, created)];
        if n == 1 {
            events.push(deleted(star, &slug(&article)));
        }
        streams.push(f.append(ARTICLE, &article, events).await.into());
    }
    for fan in &fans[80..] {
        streams.push(f.append(USER, fan, vec![unfollowed(star)]).await.into());
    }
    for reader in &newcomers {
        streams.push(f.append(USER, reader, vec![followed(star)]).await.into());
    }
    let all: Vec<StoredEvent> = streams.iter().flatten().cloned().collect();
    let mut rng = Rng::new(seed);
    let mut order: Vec<&StoredEvent> = Vec::new();
    let mut left = all.len();
    let mut cursors = vec![0usize; streams.len()];
    while left > 0 {
        let mut pick = rng.below(left);
        let (s, stream) = streams
            .iter()
            .enumerate()
            .find(|(s, stream)| {
                let remaining = stream.len() - cursors[*s];
                if pick < remaining {
                    return true;
                }
                pick -= remaining;
                false
            })
            .expect("a stream with events left");
        order.push(&stream[cursors[s]]);
        cursors[s] += 1;
        left -= 1;
        if rng.percent(30) {
            order.push(order[rng.below(order.len())]);
        }
    }
    let first = limited(f, limits);
    let second = limited(f, limits);
    let failures = deliver_with_workers(&[&first, &second], 3, order).await;
    eprintln!("hot author {star}: {failures} failed deliveries (redelivered)");

    let readers: BTreeSet<&String> = fans[..80].iter().chain(&newcomers).collect();
    let live = vec![format!("{star}-p0"), format!("{star}-p2")];
    let state = snapshot(f).await;
    let mut differences = Vec::new();
    for (reader, feed) in &state.feeds {
        if !reader.starts_with(&format!("{star}-")) {
            continue;
        }
        if !readers.contains(reader) {
            differences.push(format!(
                "{reader} no longer follows {star} but has {feed:?}"
            ));
        } else if feed != &live {
            differences.push(format!("{reader} has {feed:?}, expected {live:?}"));
        }
    }
    for reader in &readers {
        if !state.feeds.contains_key(*reader) {
            differences.push(format!("{reader} follows {star} but has an empty feed"));
        }
    }
    let followers: BTreeSet<&String> = state
        .followers
        .keys()
        .filter(|(author, _)| author == star)
        .map(|(_, follower)| follower)
        .collect();
    if followers != readers {
        differences.push(format!("followers of {star}: {followers:?}"));
    }
    let articles: Vec<&String> = state
        .articles
        .keys()
        .filter(|(author, _)| author == star)
        .map(|(_, article)| article)
        .collect();
    if articles != live.iter().collect::<Vec<_>>() {
        differences.push(format!("articles of {star}: {articles:?}"));
    }
    differences
}

#[tokio::test]
async fn a_hot_author_s_publishes_follows_and_unfollows_at_once_converge() {
    let f = fixture("hot").await;
    // All followers in one page, their entries written one batch of 25 at a time: the longest
    // window between reading the followers and writing the last entries.
    let limits = FeedLimits {
        concurrent_batches: 1,
        ..FeedLimits::default()
    };
    for round in 0..3 {
        let star = format!("star{round}");
        let differences = hot_author_round(&f, &star, limits, 0x407 + round).await;
        assert!(
            differences.is_empty(),
            "round {round} (seed {:#x}):\n  {}",
            0x407 + round,
            differences.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Gaps

#[tokio::test]
async fn a_delete_delivered_before_its_publish_leaves_no_entry() {
    let f = fixture("gap").await;
    let follows = [
        f.append(USER, DAVE, vec![followed(ALICE)]).await,
        f.append(USER, ERIN, vec![followed(ALICE)]).await,
    ];
    for event in follows.iter().flatten() {
        f.runtime.project(event).await.expect("follow");
    }
    let kept = f
        .append(ARTICLE, "kept", vec![published("kept", ALICE, T1)])
        .await;
    let gone = f
        .append(
            ARTICLE,
            "gone",
            vec![published("gone", ALICE, T2), deleted(ALICE, &slug("gone"))],
        )
        .await;
    f.runtime.project(&kept[0]).await.expect("kept");

    assert_eq!(
        f.runtime.project(&gone[1]).await.expect("delete first"),
        Outcome::Applied { filled: 1 }
    );
    assert_eq!(
        f.runtime.project(&gone[0]).await.expect("late publish"),
        Outcome::Duplicate
    );
    let state = snapshot(&f).await;
    let kept_only = vec!["kept".to_owned()];
    assert_eq!(
        state.feeds,
        BTreeMap::from([
            (DAVE.to_owned(), kept_only.clone()),
            (ERIN.into(), kept_only)
        ])
    );
    assert_eq!(
        state.feed_articles().into_keys().collect::<Vec<_>>(),
        vec!["kept"]
    );

    // A user stream too: an unfollow delivered before its follow.
    let frank = f
        .append(USER, FRANK, vec![followed(ALICE), unfollowed(ALICE)])
        .await;
    assert_eq!(
        f.runtime.project(&frank[1]).await.expect("unfollow first"),
        Outcome::Applied { filled: 1 }
    );
    assert_eq!(
        f.runtime.project(&frank[0]).await.expect("late follow"),
        Outcome::Duplicate
    );
    let after = snapshot(&f).await;
    assert!(!after.feeds.contains_key(FRANK));
    assert_same(&after, &state, "after frank's follow and unfollow");
}

// ---------------------------------------------------------------------------------------------
// Budget-limited fan-out

#[tokio::test]
async fn a_big_fan_out_pauses_within_its_budget_and_resumes_where_it_stopped() {
    const STAR: &str = "star";
    let f = fixture("fanout").await;
    let fans: Vec<String> = (0..300).map(|i| format!("fan-{i:03}")).collect();
    follow_all(&f, &fans, STAR).await;
    assert_eq!(snapshot(&f).await.followers.len(), 300);

    let first = f
        .append(ARTICLE, "p1", vec![published("p1", STAR, T1)])
        .await;
    let second = f
        .append(ARTICLE, "p2", vec![published("p2", STAR, T2)])
        .await;
    let paced = limited(&f, no_budget());

    // 300 followers in pages of 50, no time budget: it pauses, and progresses each time.
    assert!(matches!(
        paced.project(&first[0]).await,
        Err(ProjectionError::Paused(_))
    ));
    let pauses = 1 + until_done_pausing(&f, &paced, &first[0], "p1", true).await;
    eprintln!("publish to 300 followers: {pauses} pauses");
    let pauses = until_done_pausing(&f, &paced, &second[0], "p2", true).await;
    assert!(pauses >= 1, "300 followers take more than one page");
    let state = snapshot(&f).await;
    assert_eq!(state.feeds.len(), 300);
    for fan in &fans {
        assert_eq!(state.feeds[fan], vec!["p1", "p2"], "feed of {fan}");
    }
    assert_eq!(
        paced.project(&first[0]).await.expect("again"),
        Outcome::Duplicate
    );

    // One unfollows; then p1 is deleted, paused and resumed too.
    let unfollow = f.append(USER, &fans[0], vec![unfollowed(STAR)]).await;
    assert_eq!(
        until_done(&paced, &unfollow[0], 20).await.0,
        Outcome::Applied { filled: 0 }
    );
    let delete = f
        .append(ARTICLE, "p1", vec![deleted(STAR, &slug("p1"))])
        .await;
    let pauses = until_done_pausing(&f, &paced, &delete[0], "p1", false).await;
    assert!(pauses >= 1, "299 entries take more than one page");
    assert_eq!(feeds_holding(&f, "p1").await, 0);
    let state = snapshot(&f).await;
    assert_eq!(state.feeds.len(), 299);
    assert!(!state.feeds.contains_key(&fans[0]));
    for fan in &fans[1..] {
        assert_eq!(state.feeds[fan], vec!["p2"], "feed of {fan}");
    }
    assert_eq!(
        state.feed_articles().into_keys().collect::<Vec<_>>(),
        vec!["p2"]
    );
    assert_eq!(state.followers.len(), 299);

    // A later article reaches the 299 followers, not the one who left.
    let third = f
        .append(ARTICLE, "p3", vec![published("p3", STAR, T3)])
        .await;
    until_done_pausing(&f, &paced, &third[0], "p3", true).await;
    let state = snapshot(&f).await;
    assert_eq!(state.feeds.len(), 299);
    for fan in &fans[1..] {
        assert_eq!(state.feeds[fan], vec!["p2", "p3"], "feed of {fan}");
    }
}

#[tokio::test]
async fn a_second_delivery_of_an_event_waits_while_the_first_holds_the_author() {
    const STAR: &str = "twice";
    let f = fixture("twice").await;
    let fans: Vec<String> = (0..400).map(|i| format!("twice-fan-{i:03}")).collect();
    follow_all(&f, &fans, STAR).await;
    let publish = f
        .append(ARTICLE, "t1", vec![published("t1", STAR, T1)])
        .await;
    // One instance, as when a duplicate reaches the same warm function: 16 batches one at a
    // time make a fan-out long enough to be caught holding the lease, and a second delivery
    // gives up at once instead of waiting.
    let runtime = limited(
        &f,
        FeedLimits {
            concurrent_batches: 1,
            lease_wait: Duration::ZERO,
            ..FeedLimits::default()
        },
    );
    let lease = events::views::checkpoints::key("feed", &format!("lease#{STAR}"));
    let (first, second) = tokio::join!(runtime.project(&publish[0]), async {
        for _ in 0..2000 {
            let held = f
                .clients
                .dynamodb
                .get_item()
                .table_name(&f.tables.checkpoints)
                .key(
                    events::views::checkpoints::PK,
                    aws_sdk_dynamodb::types::AttributeValue::S(lease.clone()),
                )
                .consistent_read(true)
                .send()
                .await
                .expect("lease read");
            if held.item().is_some() {
                return Some(runtime.project(&publish[0]).await);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    });
    assert_eq!(
        first.expect("first delivery"),
        Outcome::Applied { filled: 0 }
    );
    let second = second.expect("the first delivery was seen holding the author's lease");
    assert!(
        matches!(second, Err(ProjectionError::Contended(_))),
        "the second delivery entered the author's fan-out beside the first: {second:?}"
    );
    assert_eq!(readers_of(&f, "t1").await.len(), 400);
    // The commit gave the lease back: the retry finds the event applied, without waiting.
    assert_eq!(
        runtime.project(&publish[0]).await.expect("retry"),
        Outcome::Duplicate
    );
}

/// `fans` follow `author`, appended eight at a time and delivered one by one.
async fn follow_all(f: &Fixture, fans: &[String], author: &str) {
    let follows: Vec<StoredEvent> = stream::iter(fans)
        .map(|fan| async move { f.append(USER, fan, vec![followed(author)]).await.remove(0) })
        .buffer_unordered(8)
        .collect()
        .await;
    for event in &follows {
        f.runtime.project(event).await.expect("follow");
    }
}

/// The readers whose feed holds `article`.
async fn readers_of(f: &Fixture, article: &str) -> BTreeSet<String> {
    snapshot(f)
        .await
        .feeds
        .into_iter()
        .filter(|(_, articles)| articles.iter().any(|a| a == article))
        .map(|(reader, _)| reader)
        .collect()
}

#[tokio::test]
async fn follows_and_unfollows_between_two_pauses_of_a_fan_out_are_not_lost() {
    const STAR: &str = "star";
    let f = fixture("interleave").await;
    let fans: Vec<String> = (0..120).map(|i| format!("fan-{i:03}")).collect();
    follow_all(&f, &fans, STAR).await;
    let paced = limited(&f, no_budget());

    // The publish pauses after its first page of followers (fan-000 to fan-049)...
    let p1 = f
        .append(ARTICLE, "p1", vec![published("p1", STAR, T1)])
        .await;
    assert!(matches!(
        paced.project(&p1[0]).await,
        Err(ProjectionError::Paused(_))
    ));
    assert_eq!(feeds_holding(&f, "p1").await, 50);
    // ...and the author is free meanwhile: one reader already reached and one not yet reached
    // unfollow, one reader sorting before the cursor and one after it follow.
    let mut between = Vec::new();
    for (reader, event) in [
        ("fan-010", unfollowed(STAR)),
        ("fan-100", unfollowed(STAR)),
        ("aaa-new", followed(STAR)),
        ("zzz-new", followed(STAR)),
    ] {
        between.extend(f.append(USER, reader, vec![event]).await);
    }
    for event in &between {
        assert_eq!(
            f.runtime.project(event).await.expect("during the pause"),
            Outcome::Applied { filled: 0 },
            "{}",
            label(event)
        );
    }
    until_done_pausing(&f, &paced, &p1[0], "p1", true).await;
    let mut readers: BTreeSet<String> = fans.iter().cloned().collect();
    readers.remove("fan-010");
    readers.remove("fan-100");
    readers.insert("aaa-new".into());
    readers.insert("zzz-new".into());
    assert_eq!(readers_of(&f, "p1").await, readers);

    // The delete pauses too; a follow meanwhile does not bring the article back, an unfollow
    // meanwhile takes it out.
    let delete = f
        .append(ARTICLE, "p1", vec![deleted(STAR, &slug("p1"))])
        .await;
    assert!(matches!(
        paced.project(&delete[0]).await,
        Err(ProjectionError::Paused(_))
    ));
    let mut between = Vec::new();
    // (One of each before the cursor, one of each after it.)
    for (reader, event) in [
        ("aab-new", followed(STAR)),
        ("mid-new", followed(STAR)),
        ("fan-020", unfollowed(STAR)),
        ("fan-110", unfollowed(STAR)),
    ] {
        between.extend(f.append(USER, reader, vec![event]).await);
    }
    for event in &between {
        assert_eq!(
            f.runtime.project(event).await.expect("during the pause"),
            Outcome::Applied { filled: 0 },
            "{}",
            label(event)
        );
    }
    let holding = readers_of(&f, "p1").await;
    assert!(!holding.contains("aab-new") && !holding.contains("mid-new"));
    until_done_pausing(&f, &paced, &delete[0], "p1", false).await;
    let state = snapshot(&f).await;
    assert!(
        state.feeds.is_empty(),
        "p1 is in no feed: {:?}",
        state.feeds
    );
    assert!(state.articles.is_empty());

    // Whoever follows now gets the next article.
    readers.insert("aab-new".into());
    readers.insert("mid-new".into());
    readers.remove("fan-020");
    readers.remove("fan-110");
    assert_eq!(
        state
            .followers
            .keys()
            .map(|(_, follower)| follower.clone())
            .collect::<BTreeSet<_>>(),
        readers
    );
    let p2 = f
        .append(ARTICLE, "p2", vec![published("p2", STAR, T2)])
        .await;
    f.runtime.project(&p2[0]).await.expect("publish");
    assert_eq!(readers_of(&f, "p2").await, readers);
}

#[tokio::test]
async fn following_a_prolific_author_backfills_every_article_within_the_budget() {
    const SCRIBE: &str = "scribe";
    let f = fixture("backfill").await;
    let ids: Vec<String> = (0..130).map(|i| format!("s{i:03}")).collect();
    let articles: Vec<StoredEvent> = stream::iter(&ids)
        .enumerate()
        .map(|(i, id)| {
            let f = &f;
            let created = format!("2024-05-01T00:{:02}:{:02}.000Z", i / 60, i % 60);
            async move {
                f.append(ARTICLE, id, vec![published(id, SCRIBE, &created)])
                    .await
                    .remove(0)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for event in &articles {
        f.runtime.project(event).await.expect("publish");
    }
    let paced = limited(&f, no_budget());
    let follow = f.append(USER, DAVE, vec![followed(SCRIBE)]).await;
    let (outcome, pauses) = until_done(&paced, &follow[0], 20).await;
    assert_eq!(outcome, Outcome::Applied { filled: 0 });
    eprintln!("backfill of 130 articles: {pauses} pauses");
    assert_eq!(
        snapshot(&f).await.feeds[DAVE],
        ids,
        "every article, in order"
    );

    let unfollow = f.append(USER, DAVE, vec![unfollowed(SCRIBE)]).await;
    assert_eq!(
        until_done(&paced, &unfollow[0], 20).await.0,
        Outcome::Applied { filled: 0 }
    );
    let state = snapshot(&f).await;
    assert!(state.feeds.is_empty());
    assert!(state.followers.is_empty());
    assert_eq!(state.articles.len(), 130);
}

// ---------------------------------------------------------------------------------------------
// Single effects

#[tokio::test]
async fn a_follow_backfills_the_live_articles_and_an_unfollow_removes_them() {
    let f = fixture("follow").await;
    let mut log = Vec::new();
    log.extend(
        f.append(ARTICLE, "a1", vec![published("a1", ALICE, T1)])
            .await,
    );
    log.extend(
        f.append(ARTICLE, "a2", vec![published("a2", ALICE, T3)])
            .await,
    );
    log.extend(
        f.append(
            ARTICLE,
            "a3",
            vec![published("a3", ALICE, T2), deleted(ALICE, &slug("a3"))],
        )
        .await,
    );
    log.extend(
        f.append(ARTICLE, "b1", vec![published("b1", BOB, T4)])
            .await,
    );
    for event in &log {
        f.runtime.project(event).await.expect("articles");
    }
    let before = snapshot(&f).await;
    assert!(before.feeds.is_empty() && before.followers.is_empty());
    assert_eq!(
        before.feed_articles().into_keys().collect::<Vec<_>>(),
        vec!["a1", "a2", "b1"]
    );

    let dave = f.append(USER, DAVE, vec![followed(ALICE)]).await;
    let erin = f.append(USER, ERIN, vec![followed(ALICE)]).await;
    let frank = f.append(USER, FRANK, vec![followed(CAROL)]).await; // no articles
    for event in dave.iter().chain(&erin).chain(&frank) {
        assert_eq!(
            f.runtime.project(event).await.expect("follow"),
            Outcome::Applied { filled: 0 }
        );
    }
    let state = snapshot(&f).await;
    let alice_live = vec!["a1".to_owned(), "a2".to_owned()];
    assert_eq!(
        state.feeds,
        BTreeMap::from([
            (DAVE.to_owned(), alice_live.clone()),
            (ERIN.into(), alice_live)
        ])
    );
    let entries: Vec<FeedEntry> = scan(&f, &f.tables.feeds)
        .await
        .iter()
        .filter_map(FeedEntry::from_item)
        .filter(|e| e.user_id == DAVE)
        .collect();
    let mut entries = entries;
    entries.sort_by(|a, b| a.feed_key.cmp(&b.feed_key));
    assert_eq!(
        entries,
        vec![
            FeedEntry {
                user_id: DAVE.into(),
                feed_key: feeds::feed_key(T1, "a1"),
                author_id: ALICE.into(),
                article_id: "a1".into(),
            },
            FeedEntry {
                user_id: DAVE.into(),
                feed_key: feeds::feed_key(T3, "a2"),
                author_id: ALICE.into(),
                article_id: "a2".into(),
            },
        ]
    );
    assert_eq!(
        state.followers.keys().cloned().collect::<Vec<_>>(),
        vec![
            (ALICE.to_owned(), DAVE.to_owned()),
            (ALICE.into(), ERIN.into()),
            (CAROL.into(), FRANK.into()),
        ]
    );
    assert_eq!(
        events::views::number(
            &state.followers[&(ALICE.to_owned(), DAVE.to_owned())],
            feed_followers::SEQ
        ),
        Some(1)
    );
    assert_eq!(
        state.articles, before.articles,
        "a follow changes no article"
    );

    // A new article reaches both followers; an unfollow takes alice's articles out of one feed.
    let a4 = f
        .append(ARTICLE, "a4", vec![published("a4", ALICE, T5)])
        .await;
    f.runtime.project(&a4[0]).await.expect("publish");
    let unfollow = f.append(USER, DAVE, vec![unfollowed(ALICE)]).await;
    assert_eq!(
        f.runtime.project(&unfollow[0]).await.expect("unfollow"),
        Outcome::Applied { filled: 0 }
    );
    let state = snapshot(&f).await;
    assert_eq!(
        state.feeds,
        BTreeMap::from([(ERIN.to_owned(), vec!["a1".into(), "a2".into(), "a4".into()])])
    );
    assert_eq!(
        state.followers.keys().cloned().collect::<Vec<_>>(),
        vec![
            (ALICE.to_owned(), ERIN.to_owned()),
            (CAROL.into(), FRANK.into())
        ]
    );
    // A later article of alice's does not reach dave.
    let a5 = f
        .append(ARTICLE, "a5", vec![published("a5", ALICE, T6)])
        .await;
    f.runtime.project(&a5[0]).await.expect("publish");
    let state = snapshot(&f).await;
    assert!(!state.feeds.contains_key(DAVE));
    assert_eq!(state.feeds[ERIN], vec!["a1", "a2", "a4", "a5"]);
}

#[tokio::test]
async fn an_edit_changes_the_article_item_and_no_feed_entry() {
    let f = fixture("edit").await;
    let follow = f.append(USER, DAVE, vec![followed(ALICE)]).await;
    let article = f
        .append(
            ARTICLE,
            "a1",
            vec![
                published("a1", ALICE, T1),
                edited("a1", ALICE, "a1-renamed", T1, EDIT_A1),
            ],
        )
        .await;
    f.runtime.project(&follow[0]).await.expect("follow");
    f.runtime.project(&article[0]).await.expect("publish");
    let before = snapshot(&f).await;
    assert_eq!(
        before.feed_articles()["a1"],
        FeedArticle {
            author_id: ALICE.into(),
            article_id: "a1".into(),
            slug: "a1-slug".into(),
            title: title("a1"),
            description: "About a1".into(),
            tag_list: tags(),
            created_at: T1.into(),
            updated_at: T1.into(),
            last_seq: 1,
        }
    );

    f.runtime.project(&article[1]).await.expect("edit");
    let after = snapshot(&f).await;
    assert_eq!(
        after.feed_articles()["a1"],
        FeedArticle {
            author_id: ALICE.into(),
            article_id: "a1".into(),
            slug: "a1-renamed".into(),
            title: revised_title("a1"),
            description: "About a1".into(),
            tag_list: tags(),
            created_at: T1.into(),
            updated_at: EDIT_A1.into(),
            last_seq: 2,
        }
    );
    assert_eq!(after.entries, before.entries, "no feed entry is rewritten");
    assert_eq!(after.followers, before.followers);
    assert_eq!(after.feeds[DAVE], vec!["a1"]);
}

#[tokio::test]
async fn user_events_other_than_follows_only_move_the_checkpoint() {
    let f = fixture("others").await;
    let setup = [
        f.append(USER, DAVE, vec![followed(ALICE)]).await,
        f.append(ARTICLE, "a1", vec![published("a1", ALICE, T1)])
            .await,
    ];
    for event in setup.iter().flatten() {
        f.runtime.project(event).await.expect("setup");
    }
    let before = snapshot(&f).await;
    assert_eq!(before.feeds[DAVE], vec!["a1"]);

    let events = f
        .append(
            USER,
            ALICE,
            vec![
                registered(ALICE),
                UserEvent::profile_updated("bio", "https://img/alice.png"),
                UserEvent::UserRenamed {
                    username: "alice-renamed".into(),
                    previous_username: ALICE.into(),
                },
                UserEvent::UserEmailChanged {
                    email: "alice@example.org".into(),
                    previous_email: "alice@example.com".into(),
                },
                UserEvent::UserPasswordChanged {
                    password_hash: "$argon2id$other".into(),
                },
            ],
        )
        .await;
    for event in &events {
        assert_eq!(
            f.runtime.project(event).await.expect("user event"),
            Outcome::Applied { filled: 0 },
            "{}",
            label(event)
        );
    }
    assert_eq!(
        f.runtime
            .last_applied(&events[0].stream_key())
            .await
            .expect("checkpoint"),
        5
    );
    assert_same(&snapshot(&f).await, &before, "after alice's other events");

    // And events of aggregates the feed does not read are ignored.
    let mut favorite = events[0].clone();
    favorite.aggregate_type = events::favorite::AGGREGATE_TYPE.into();
    assert_eq!(
        f.runtime.project(&favorite).await.expect("favorite"),
        Outcome::Ignored
    );
}

// ---------------------------------------------------------------------------------------------
// Poison messages

#[tokio::test]
async fn a_poison_message_fails_alone_and_the_rest_of_its_batch_is_applied() {
    let f = fixture("poison").await;
    let follow = f.append(USER, DAVE, vec![followed(ALICE)]).await;
    let article = f
        .append(ARTICLE, "a1", vec![published("a1", ALICE, T1)])
        .await;
    let mut bad_payload = article[0].clone();
    bad_payload.aggregate_id = Uuid::new_v4().to_string();
    bad_payload.payload = serde_json::json!({"slug": 42});
    let mut unknown = article[0].clone();
    unknown.aggregate_id = Uuid::new_v4().to_string();
    unknown.event_type = "ArticleVanished".into();
    let batch = vec![
        ("poison-1".to_owned(), "this is not an event".to_owned()),
        ("good-1".to_owned(), sns_body(&follow[0])),
        ("poison-2".to_owned(), sns_body(&bad_payload)),
        ("good-2".to_owned(), sns_body(&article[0])),
        ("poison-3".to_owned(), sns_body(&unknown)),
    ];
    let response = f.runtime.handle_sqs(sqs_event(&batch)).await;
    assert_eq!(
        crate::support::failed(&response),
        BTreeSet::from(["poison-1".into(), "poison-2".into(), "poison-3".into()])
    );
    assert_eq!(snapshot(&f).await.feeds[DAVE], vec!["a1"]);
}

#[tokio::test]
async fn a_poison_message_ends_in_the_dead_letter_queue_after_its_receive_limit() {
    let f = fixture("dlq").await;
    let follow = f.append(USER, DAVE, vec![followed(ALICE)]).await;
    let article = f
        .append(ARTICLE, "a1", vec![published("a1", ALICE, T1)])
        .await;
    let queue = f.queue(FEED_PROJECTOR_QUEUE.name);
    f.send(&queue, GARBAGE_NOTIFICATION).await;
    for event in follow.iter().chain(&article) {
        f.send(&queue, &sns_body(event)).await;
    }

    let dead = f.poll_until_dead_letter(&queue).await;
    assert!(dead.body().unwrap_or_default().contains("garbage"));
    assert_eq!(snapshot(&f).await.feeds[DAVE], vec!["a1"]);
}
