//! Feed fan-out (section 7): what the feed projector does when an author with many
//! followers publishes and deletes an article, at the projector level on the emulators (no
//! HTTP: registering 10,000 users through the API would mean 10,000 Argon2 hashes).
//!
//! 1. provisions a fresh prefix and appends `scale.feed_followers` `UserFollowed` events of
//!    one author, one per follower stream, through the real event store;
//! 2. applies them with a feed projector runtime, a few at once (they serialize on the
//!    author's lease by design), metered;
//! 3. appends an `ArticlePublished` by that author and applies it with a metered runtime,
//!    handing it back while it pauses (its fan-out budget ran out), and checks with a
//!    consistent scan of `feeds` that every follower's feed holds exactly that entry;
//! 4. does the same for its `ArticleDeleted` and checks the feeds are empty again, the
//!    projector's copy of the article gone and no author lease left behind;
//! 5. with `scale.feed_budget_ms`, repeats 3 and 4 with that fan-out budget, to show the
//!    pause/resume path at scale.
//!
//! Each fan-out's entries per second are set beside raw `BatchWriteItem` items per second at
//! the projector's number of requests in flight. `feed-bench` runs the same steps alone, and
//! the feed's reads and a publish through the API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use events::article::ArticleEvent;
use events::user::UserEvent;
use events::views::{checkpoints, feed_articles, feeds};
use events::{Commit, EventSchema, EventStore, Metadata, StoredEvent, Tables};
use futures::stream::{self, StreamExt, TryStreamExt};
use local_aws::meter::DynamoMeter;
use local_aws::{Clients, LocalEndpoints};
use projectors::feed::FeedLimits;
use projectors::runtime::Outcome;
use projectors::{FeedProjector, ProjectionError, Projector, ProjectorRuntime};
use uuid::Uuid;

use crate::report::{Baselines, FeedFanout, FeedSection};
use crate::stats::{per_second, VsBaseline};
use crate::Scale;

/// Appends of the follow events in flight at once.
pub const APPEND_CONCURRENCY: usize = 16;
/// Follow events applied at once.
pub const FOLLOW_CONCURRENCY: usize = 8;
/// How often one event may fail with a transient error (a busy lease, an unavailable table)
/// before the benchmark gives up on it.
const TRANSIENT_RETRIES: u64 = 20;

/// Measures on the emulators at `endpoints`, under a prefix of its own deleted afterwards.
pub async fn measure(
    endpoints: &LocalEndpoints,
    scale: &Scale,
    baselines: &Baselines,
) -> anyhow::Result<FeedSection> {
    let prefix = local_aws::testkit::unique_prefix("benchfeed");
    let clients = Clients::local(endpoints).await;
    local_aws::provision::provision(&clients, &prefix)
        .await
        .with_context(|| format!("provisioning {prefix}"))?;
    let measured = fan_out(
        &clients.dynamodb,
        &prefix,
        scale.feed_followers,
        FOLLOW_CONCURRENCY,
        scale.feed_budget_ms,
        baselines,
    )
    .await;
    let cleaned = crate::clean_up(&clients, &prefix).await;
    let section = measured?;
    cleaned.with_context(|| format!("deleting what {prefix} holds"))?;
    Ok(section)
}

/// Steps 1 to 5 under `prefix` (provisioned): `followers` follows applied `concurrency` at
/// a time, then the fan-outs, with the default limits and, if given, a budget of
/// `budget_ms`.
pub async fn fan_out(
    client: &Client,
    prefix: &str,
    followers: usize,
    concurrency: usize,
    budget_ms: Option<u64>,
    baselines: &Baselines,
) -> anyhow::Result<FeedSection> {
    let tables = TableNames::with_prefix(prefix);
    let store = EventStore::new(client.clone(), Tables::with_prefix(prefix));
    let n = followers;
    let author = Uuid::new_v4().to_string();
    let followers: Vec<String> = (0..n).map(|_| Uuid::new_v4().to_string()).collect();

    let started = Instant::now();
    let follows: Vec<StoredEvent> = stream::iter(&followers)
        .map(|follower| {
            let event = UserEvent::UserFollowed {
                followee_id: author.clone(),
            };
            let store = &store;
            async move { append(store, events::user::AGGREGATE_TYPE, follower, 0, &event).await }
        })
        .buffer_unordered(APPEND_CONCURRENCY)
        .try_collect()
        .await?;
    let appended = started.elapsed();
    eprintln!(
        "bench:   feed: {n} UserFollowed events appended in {:.1} s ({:.0}/s)",
        appended.as_secs_f64(),
        per_second(n, appended)
    );

    let meter = DynamoMeter::new();
    let metered = meter.attach(client);
    let runtime = FeedProjector::runtime(&metered, &tables);
    let redeliveries = Redeliveries::default();
    let started = Instant::now();
    stream::iter(&follows)
        .map(|event| project_fully(&runtime, event, &redeliveries))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let projected = started.elapsed();
    let follow_tally = meter.take();
    eprintln!(
        "bench:   feed: follow projection: {n} events in {:.1} s ({:.0}/s), {concurrency} at once; {}",
        projected.as_secs_f64(),
        per_second(n, projected),
        redeliveries.describe()
    );
    let leftovers = leftover_checkpoints(client, &tables).await?;
    ensure!(
        leftovers.is_empty(),
        "leases left after the follows: {leftovers:?}"
    );

    let audience = Audience {
        client,
        tables: &tables,
        store: &store,
        author: &author,
        followers: &followers,
    };
    let default_limits = FeedLimits::default();
    let mut fanouts = Vec::new();
    fanouts.extend(
        publish_and_delete(
            &audience,
            default_limits,
            &format!(
                "default ({} s budget)",
                default_limits.fanout_budget.as_secs_f64()
            ),
            baselines,
        )
        .await?,
    );
    if let Some(budget_ms) = budget_ms {
        let small = FeedLimits {
            fanout_budget: Duration::from_millis(budget_ms),
            ..default_limits
        };
        fanouts.extend(
            publish_and_delete(
                &audience,
                small,
                &format!("{budget_ms} ms budget"),
                baselines,
            )
            .await?,
        );
    }
    Ok(FeedSection {
        followers: n,
        follow_concurrency: concurrency,
        append_seconds: appended.as_secs_f64(),
        follow_seconds: projected.as_secs_f64(),
        follow_per_second: per_second(n, projected),
        follow_redeliveries: redeliveries.describe(),
        follow_requests: follow_tally.total_requests(),
        follow_operations: follow_tally.operations(),
        follow_read_units: follow_tally.read_units,
        follow_write_units: follow_tally.write_units,
        page_size: usize::try_from(default_limits.page_size).unwrap_or_default(),
        concurrent_batches: default_limits.concurrent_batches,
        lease_seconds: default_limits.lease.as_secs(),
        fanouts,
    })
}

/// `per_second` entries beside raw `BatchWriteItem` items per second at the concurrency
/// nearest `in_flight`.
fn vs_batch_writes(baselines: &Baselines, in_flight: usize, per_second: f64) -> VsBaseline {
    match baselines.nearest("BatchWriteItem", in_flight) {
        Some(raw) => VsBaseline::new(
            per_second,
            format!("DynamoDB BatchWriteItem items/s (c={})", raw.concurrency),
            raw.per_second,
        ),
        None => VsBaseline::new(
            per_second,
            "DynamoDB BatchWriteItem items/s (not measured)",
            0.0,
        ),
    }
}

/// Appends `event` as the next event (after `expected_sequence`) of a stream, with the
/// uniqueness changes it implies, through the real event store.
pub async fn append<E: EventSchema>(
    store: &EventStore,
    aggregate_type: &str,
    aggregate_id: &str,
    expected_sequence: u64,
    event: &E,
) -> anyhow::Result<StoredEvent> {
    let mut stored = append_all(
        store,
        aggregate_type,
        aggregate_id,
        expected_sequence,
        std::slice::from_ref(event),
    )
    .await?;
    stored.pop().context("the store returned no event")
}

/// Appends `events` in one commit, as [`append`] does one.
pub async fn append_all<E: EventSchema>(
    store: &EventStore,
    aggregate_type: &str,
    aggregate_id: &str,
    expected_sequence: u64,
    events: &[E],
) -> anyhow::Result<Vec<StoredEvent>> {
    store
        .append(Commit::of(
            aggregate_type,
            aggregate_id,
            expected_sequence,
            events,
            &Metadata::default(),
        ))
        .await
        .with_context(|| format!("appending to {aggregate_type}#{aggregate_id}"))
}

/// How often events had to be handed to the runtime again, by reason.
#[derive(Debug, Default)]
pub struct Redeliveries {
    /// The fan-out budget ran out: progress saved, the event continues where it stopped.
    paused: AtomicU64,
    /// The author's lease stayed busy, or a checkpoint kept moving.
    contended: AtomicU64,
    /// DynamoDB refused or failed a request.
    unavailable: AtomicU64,
}

impl Redeliveries {
    pub fn paused(&self) -> u64 {
        self.paused.load(Ordering::Relaxed)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} paused, {} contended, {} unavailable",
            self.paused(),
            self.contended.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed)
        )
    }
}

/// Applies `event` as the queue would: handed back again while it pauses (at once, rather
/// than after a visibility timeout) or fails transiently, until it is applied.
pub async fn project_fully<P: Projector>(
    runtime: &ProjectorRuntime<P>,
    event: &StoredEvent,
    redeliveries: &Redeliveries,
) -> anyhow::Result<()> {
    let mut transient = 0;
    loop {
        match runtime.project(event).await {
            Ok(Outcome::Applied { .. }) => return Ok(()),
            Ok(other) => bail!(
                "{} {} of {}: {other:?} instead of applied",
                event.event_type,
                event.sequence,
                event.stream_key()
            ),
            Err(ProjectionError::Paused(_)) => {
                redeliveries.paused.fetch_add(1, Ordering::Relaxed);
            }
            Err(error @ (ProjectionError::Contended(_) | ProjectionError::Unavailable(_))) => {
                let counter = if matches!(error, ProjectionError::Contended(_)) {
                    &redeliveries.contended
                } else {
                    &redeliveries.unavailable
                };
                counter.fetch_add(1, Ordering::Relaxed);
                transient += 1;
                ensure!(
                    transient <= TRANSIENT_RETRIES,
                    "{} of {} still fails after {TRANSIENT_RETRIES} tries: {error}",
                    event.event_type,
                    event.stream_key()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("{} of {}", event.event_type, event.stream_key()))
            }
        }
    }
}

/// Every feed entry, read with a consistent scan: reader → the article ids in their feed.
pub async fn feed_entries(
    client: &Client,
    tables: &TableNames,
) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let mut entries: HashMap<String, Vec<String>> = HashMap::new();
    let mut pages = client
        .scan()
        .table_name(&tables.feeds)
        .consistent_read(true)
        .projection_expression("#user, #article")
        .expression_attribute_names("#user", feeds::USER_ID)
        .expression_attribute_names("#article", feeds::ARTICLE_ID)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for item in page.context("scanning the feeds")?.items() {
            let reader = events::views::text(item, feeds::USER_ID).context("entry without user")?;
            let article =
                events::views::text(item, feeds::ARTICLE_ID).context("entry without article")?;
            entries.entry(reader).or_default().push(article);
        }
    }
    Ok(entries)
}

/// Checks that every follower's feed holds exactly `article_id` and nobody else's does.
async fn check_published(
    client: &Client,
    tables: &TableNames,
    followers: &[String],
    article_id: &str,
) -> anyhow::Result<()> {
    let entries = feed_entries(client, tables).await?;
    let wrong: Vec<&String> = followers
        .iter()
        .filter(|f| entries.get(*f).map(Vec::as_slice) != Some(&[article_id.to_owned()][..]))
        .collect();
    let holders = entries
        .values()
        .filter(|articles| articles.iter().any(|a| a == article_id))
        .count();
    ensure!(
        wrong.is_empty() && holders == followers.len(),
        "{} of {} followers' feeds do not hold exactly the article (e.g. {:?}); {holders} feeds hold it",
        wrong.len(),
        followers.len(),
        wrong.iter().take(3).collect::<Vec<_>>()
    );
    Ok(())
}

/// Checks that no feed holds `article_id` any more, that the projector's copy of the article
/// is gone, and that no author lease is left in the checkpoints table.
async fn check_deleted(
    client: &Client,
    tables: &TableNames,
    author: &str,
    article_id: &str,
) -> anyhow::Result<()> {
    let entries = feed_entries(client, tables).await?;
    let holders = entries
        .values()
        .filter(|articles| articles.iter().any(|a| a == article_id))
        .count();
    ensure!(
        holders == 0,
        "{holders} feeds still hold the deleted article"
    );
    let copy = client
        .get_item()
        .table_name(&tables.feed_articles)
        .key(
            feed_articles::AUTHOR_ID,
            aws_sdk_dynamodb::types::AttributeValue::S(author.to_owned()),
        )
        .key(
            feed_articles::ARTICLE_ID,
            aws_sdk_dynamodb::types::AttributeValue::S(article_id.to_owned()),
        )
        .consistent_read(true)
        .send()
        .await
        .context("reading the feed article")?;
    ensure!(
        copy.item().is_none(),
        "the projector's copy of the deleted article is still there"
    );
    let leftovers = leftover_checkpoints(client, tables).await?;
    ensure!(leftovers.is_empty(), "leases left behind: {leftovers:?}");
    Ok(())
}

/// The keys of author leases in the checkpoints table.
async fn leftover_checkpoints(client: &Client, tables: &TableNames) -> anyhow::Result<Vec<String>> {
    let mut left = Vec::new();
    let mut pages = client
        .scan()
        .table_name(&tables.checkpoints)
        .consistent_read(true)
        .projection_expression("#pk")
        .expression_attribute_names("#pk", checkpoints::PK)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for item in page.context("scanning the checkpoints")?.items() {
            if let Some(key) = events::views::text(item, checkpoints::PK) {
                if key.contains("#lease#") {
                    left.push(key);
                }
            }
        }
    }
    Ok(left)
}

/// The author, its followers, and where their events and feeds are.
struct Audience<'a> {
    client: &'a Client,
    tables: &'a TableNames,
    store: &'a EventStore,
    author: &'a str,
    followers: &'a [String],
}

/// Publishes an article by the author, fans it out to the followers with `limits`, checks
/// every feed, then deletes it, fans that out and checks the feeds are empty again.
async fn publish_and_delete(
    audience: &Audience<'_>,
    limits: FeedLimits,
    limits_name: &str,
    baselines: &Baselines,
) -> anyhow::Result<[FeedFanout; 2]> {
    let Audience {
        client,
        tables,
        store,
        author,
        followers,
    } = *audience;
    let article_id = Uuid::new_v4().to_string();
    let slug = format!("fan-out-{}", &article_id[..8]);
    let published = append(
        store,
        events::article::AGGREGATE_TYPE,
        &article_id,
        0,
        &ArticleEvent::ArticlePublished {
            article_id: article_id.clone(),
            author_id: author.to_owned(),
            slug: slug.clone(),
            title: format!("Fan-out {slug}"),
            description: "One article, every follower's feed".to_owned(),
            body: "Lorem ipsum dolor sit amet.".to_owned(),
            tag_list: vec!["bench".to_owned()],
            created_at: events::time_format::format_millis(events::time_format::now_millis()),
        },
    )
    .await?;
    let meter = DynamoMeter::new();
    let metered = meter.attach(client);
    let runtime = ProjectorRuntime::over_tables(
        FeedProjector::new(&metered, tables).with_limits(limits),
        &metered,
        tables,
    );

    let fan_out = |what: &'static str, event: StoredEvent| {
        let (runtime, meter) = (&runtime, &meter);
        async move {
            meter.take();
            let redeliveries = Redeliveries::default();
            let started = Instant::now();
            project_fully(runtime, &event, &redeliveries).await?;
            let wall = started.elapsed();
            let tally = meter.take();
            let entries = followers.len();
            let per_second = per_second(entries, wall);
            let row = FeedFanout {
                event: what.to_owned(),
                limits: limits_name.to_owned(),
                entries,
                seconds: wall.as_secs_f64(),
                per_second,
                pauses: redeliveries.paused(),
                requests: tally.total_requests(),
                operations: tally.operations(),
                read_units: tally.read_units,
                write_units: tally.write_units,
                vs: vs_batch_writes(baselines, limits.concurrent_batches, per_second),
            };
            eprintln!(
                "bench:   feed: {what} ({limits_name}) fanned out to {entries} feeds in {:.2} s ({})",
                row.seconds,
                redeliveries.describe()
            );
            anyhow::Ok(row)
        }
    };

    let publish = fan_out("ArticlePublished", published).await?;
    check_published(client, tables, followers, &article_id).await?;
    eprintln!("bench:   feed: checked: every follower's feed holds exactly the new article");

    let deleted = append(
        store,
        events::article::AGGREGATE_TYPE,
        &article_id,
        1,
        &ArticleEvent::ArticleDeleted {
            author_id: author.to_owned(),
            slug,
            deleted_at: events::time_format::format_millis(events::time_format::now_millis()),
        },
    )
    .await?;
    let delete = fan_out("ArticleDeleted", deleted).await?;
    check_deleted(client, tables, author, &article_id).await?;
    eprintln!("bench:   feed: checked: no feed holds the deleted article, nothing left behind");
    Ok([publish, delete])
}
