//! `replay-bench`: replay throughput on 100,000 events against DynamoDB Local, next to DynamoDB Local's raw `BatchWriteItem` throughput measured in the same run.
//!
//! Starts its own in-memory emulators and provisions a fresh prefix (tables only: no pollers,
//! so nothing but the replay works the database), writes a synthetic but valid history
//! straight into the events table (`BatchWriteItem` of the items the event store writes:
//! users, profiles, follows and unfollows, articles, edits, comments and their deletion,
//! favorites and unfavorites, deleted articles), rebuilds every projection, then writes
//! 100,000 small items with `BatchWriteItem` (25 per request, as many requests in flight as
//! the replay had aggregates in flight) and prints both rates and their ratio.
//!
//! `cargo run --release -p replay --bin replay-bench [-- EVENTS [SEGMENTS [CONCURRENCY]]]`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use common::projections::Projection;
use events::article::ArticleEvent;
use events::comment::CommentEvent;
use events::favorite::{favorite_id, FavoriteEvent};
use events::user::UserEvent;
use events::{EventSchema, StoredEvent};
use futures::stream::{self, StreamExt, TryStreamExt};
use replay::{Progress, RebuildOptions, Replay};

const DEFAULT_EVENTS: usize = 100_000;
const TAGS: [&str; 8] = [
    "rust", "dynamo", "events", "cqrs", "feed", "search", "tokio", "aws",
];

/// Builds a valid history, aggregate by aggregate, with consecutive sequences.
struct History {
    events: Vec<StoredEvent>,
    sequences: HashMap<String, u64>,
    clock: u64,
}

impl History {
    fn push<E: EventSchema>(&mut self, aggregate_type: &str, aggregate_id: &str, event: E) {
        let (event_type, event_version, payload) = event.to_stored();
        let sequence = self
            .sequences
            .entry(format!("{aggregate_type}#{aggregate_id}"))
            .or_insert(0);
        *sequence += 1;
        self.clock += 1;
        self.events.push(StoredEvent {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            sequence: *sequence,
            event_id: uuid::Uuid::new_v4(),
            event_type,
            event_version,
            payload,
            metadata: events::Metadata::default(),
            recorded_at: replay::rebuild::iso_millis(self.clock),
        });
    }

    fn at(&self) -> String {
        replay::rebuild::iso_millis(self.clock)
    }
}

/// About `target` events: per user 1 registration, 1 profile, 10 follows, 1 unfollow, 5
/// articles (half edited, one in ten deleted), 4 comments per article (one in eight deleted),
/// 6 favorites (one in twelve taken back).
fn history(target: usize) -> History {
    // About 76 events per user (see above).
    let users = (target / 76).max(20);
    let mut h = History {
        events: Vec::with_capacity(target + target / 10),
        sequences: HashMap::new(),
        clock: 1_704_067_200_000,
    };
    let user = |i: usize| format!("00000000-0000-4000-8000-{:012}", i % users);
    for i in 0..users {
        let id = user(i);
        h.push(
            "User",
            &id,
            UserEvent::UserRegistered {
                user_id: id.clone(),
                email: format!("user{i}@example.test"),
                username: format!("user{i}"),
                password_hash: String::new(),
            },
        );
        h.push(
            "User",
            &id,
            UserEvent::UserProfileUpdated {
                bio: format!("bio {i}"),
                image: String::new(),
            },
        );
    }
    for i in 0..users {
        for k in 1..=10 {
            h.push(
                "User",
                &user(i),
                UserEvent::UserFollowed {
                    followee_id: user(i + k),
                },
            );
        }
    }
    let mut articles = Vec::new();
    for j in 0..users * 5 {
        let (author, article_id) = (user(j), format!("a0000000-0000-4000-8000-{j:012}"));
        let mut tags = vec![
            TAGS[j % TAGS.len()].to_owned(),
            TAGS[(j / 3) % TAGS.len()].to_owned(),
        ];
        tags.sort();
        tags.dedup();
        let created_at = h.at();
        h.push(
            "Article",
            &article_id,
            ArticleEvent::ArticlePublished {
                article_id: article_id.clone(),
                author_id: author.clone(),
                slug: format!("article-{j}"),
                title: format!("Article {j}"),
                description: format!("About article {j}"),
                body: format!("All there is to say about article {j}."),
                tag_list: tags.clone(),
                created_at: created_at.clone(),
            },
        );
        if j % 2 == 0 {
            h.push(
                "Article",
                &article_id,
                ArticleEvent::ArticleEdited {
                    slug: format!("article-{j}"),
                    previous_slug: format!("article-{j}"),
                    author_id: author.clone(),
                    title: format!("Article {j}"),
                    description: format!("About article {j}, edited"),
                    body: "Edited.".into(),
                    tag_list: tags,
                    created_at,
                    updated_at: h.at(),
                },
            );
        }
        articles.push((j, author, article_id));
    }
    for (j, _, article_id) in &articles {
        for c in 1..=4u64 {
            h.push(
                "ArticleComments",
                article_id,
                CommentEvent::CommentAdded {
                    article_id: article_id.clone(),
                    comment_id: c,
                    author_id: user(j + c as usize),
                    body: format!("comment {c} on {j}"),
                    created_at: h.at(),
                },
            );
        }
        if j % 2 == 0 {
            h.push(
                "ArticleComments",
                article_id,
                CommentEvent::CommentDeleted {
                    article_id: article_id.clone(),
                    comment_id: 1,
                    author_id: user(j + 1),
                    deleted_at: h.at(),
                },
            );
        }
    }
    for (j, _, article_id) in &articles {
        for f in 0..6 {
            let reader = user(j + 20 + f);
            let favorite = favorite_id(article_id, &reader);
            h.push(
                "Favorite",
                &favorite,
                FavoriteEvent::ArticleFavorited {
                    article_id: article_id.clone(),
                    user_id: reader.clone(),
                    favorited_at: h.at(),
                },
            );
            if (j + f) % 12 == 0 {
                h.push(
                    "Favorite",
                    &favorite,
                    FavoriteEvent::ArticleUnfavorited {
                        article_id: article_id.clone(),
                        user_id: reader,
                        unfavorited_at: h.at(),
                    },
                );
            }
        }
    }
    for i in 0..users {
        h.push(
            "User",
            &user(i),
            UserEvent::UserUnfollowed {
                followee_id: user(i + 1),
            },
        );
    }
    for (j, author, article_id) in &articles {
        if j % 10 == 9 {
            h.push(
                "Article",
                article_id,
                ArticleEvent::ArticleDeleted {
                    author_id: author.clone(),
                    slug: format!("article-{j}"),
                    deleted_at: h.at(),
                },
            );
        }
    }
    h
}

/// Writes `items` to `table`, 25 per `BatchWriteItem`, `in_flight` requests at once; the
/// time it took.
async fn batch_write(
    client: &Client,
    table: &str,
    items: Vec<HashMap<String, AttributeValue>>,
    in_flight: usize,
) -> anyhow::Result<Duration> {
    let requests: Vec<WriteRequest> = items
        .into_iter()
        .map(|item| {
            let put = PutRequest::builder().set_item(Some(item)).build()?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let batches: Vec<HashMap<String, Vec<WriteRequest>>> = requests
        .chunks(25)
        .map(|chunk| HashMap::from([(table.to_owned(), chunk.to_vec())]))
        .collect();
    stream::iter(batches)
        .map(|batch| projectors::batch::write(client, batch))
        .buffer_unordered(in_flight)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

fn rate(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64().max(1e-9)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: usize| -> anyhow::Result<usize> {
        match std::env::args().nth(i) {
            Some(n) => n
                .parse()
                .with_context(|| format!("argument {i} must be a number, not {n:?}")),
            None => Ok(default),
        }
    };
    let target = arg(1, DEFAULT_EVENTS)?;
    let defaults = RebuildOptions::default();
    let options = RebuildOptions {
        segments: arg(2, defaults.segments as usize)? as u32,
        concurrency: arg(3, defaults.concurrency)?,
        ..defaults
    };
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let prefix = infra::testkit::unique_prefix("replaybench");
    let (clients, _) = infra::testkit::provisioned(&prefix).await;
    let client = clients.dynamodb.clone();
    let tables = TableNames::with_prefix(&prefix);
    let in_flight = options.segments as usize * options.concurrency;

    let history = history(target);
    let events = history.events.len() as u64;
    let items: Vec<_> = history
        .events
        .iter()
        .map(events::store::event_to_item)
        .collect();
    let took = batch_write(&client, &tables.events, items, in_flight).await?;
    println!(
        "loaded {events} events straight into the events table in {:.1} s ({:.0} items/s)",
        took.as_secs_f64(),
        rate(events, took)
    );

    let mut replay = Replay::in_process(
        client.clone(),
        tables.clone(),
        local_stack::search_versions(&prefix, None),
    );
    replay.progress = Progress::new(true);
    let drawing = replay.progress.spawn_drawing();
    let started = Instant::now();
    let reports = replay::rebuild::rebuild_all(&replay, &Projection::ALL, &options).await?;
    let all = started.elapsed();
    replay.progress.stop();
    if let Some(drawing) = drawing {
        let _ = drawing.join();
    }

    let raw_items = 100_000u64;
    let raw_table = format!("{prefix}bench-raw");
    infra::resources::ensure_table_named(&client, &raw_table, &infra::resources::CHECKPOINTS)
        .await?;
    let raw: Vec<_> = (0..raw_items)
        .map(|i| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S(format!("item#{i:08}"))),
                ("lastSeq".to_owned(), AttributeValue::N(i.to_string())),
                (
                    "body".to_owned(),
                    AttributeValue::S(format!("a read model item of about a hundred bytes, number {i:08}, padded to size....")),
                ),
            ])
        })
        .collect();
    let raw_took = batch_write(&client, &raw_table, raw, in_flight).await?;
    let raw_rate = rate(raw_items, raw_took);

    println!(
        "\n| projection | events read | events applied | full pass s | applied ev/s | read ev/s |"
    );
    println!("|---|---|---|---|---|---|");
    let mut applied = 0;
    for report in &reports {
        applied += report.applied();
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {:.0} |",
            report.projection,
            report.full.scanned,
            report.full.applied,
            report.full.elapsed.as_secs_f64(),
            rate(report.full.applied, report.full.elapsed),
            rate(report.full.scanned, report.full.elapsed),
        );
    }
    let replay_rate = rate(applied, all);
    println!(
        "\nreplay of every projection: {applied} events applied in {:.1} s = {replay_rate:.0} events/s \
         ({:.0} log events/s over the four rebuilds)",
        all.as_secs_f64(),
        rate(events, all)
    );
    println!(
        "DynamoDB Local raw BatchWriteItem: {raw_items} items in {:.1} s = {raw_rate:.0} items/s \
         (25 per request, {in_flight} requests in flight)",
        raw_took.as_secs_f64()
    );
    println!(
        "ratio replay events/s : raw items/s = {:.3}",
        replay_rate / raw_rate
    );
    Ok(())
}
