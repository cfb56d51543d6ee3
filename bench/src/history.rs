//! The replay section's steps: a synthetic but valid history written straight into the
//! events table, a timed rebuild of every projection, and DynamoDB Local's raw
//! `BatchWriteItem` throughput to set it beside.
//!
//! The history holds the items the event store writes: users, profiles, follows and
//! unfollows, articles, edits, comments and their deletion, favorites and unfavorites,
//! deleted articles.

use std::collections::HashMap;
use std::time::{Duration, Instant};

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

use replay::{RebuildOptions, RebuildReport, Replay};

const TAGS: [&str; 8] = [
    "rust", "dynamo", "events", "cqrs", "feed", "search", "tokio", "aws",
];

/// The fewest users a history has: with fewer, a user's 10 follows would not be 10 other
/// users.
pub const MIN_USERS: usize = 11;

/// A valid history, aggregate by aggregate, with consecutive sequences.
pub struct History {
    pub events: Vec<StoredEvent>,
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

/// About `target` events, at least [`MIN_USERS`]' worth (about 840): per user 1
/// registration, 1 profile, 10 follows, 1 unfollow, 5 articles (half edited, one in ten
/// deleted), 4 comments per article (one in eight deleted), 6 favorites (one in twelve taken
/// back).
pub fn history(target: usize) -> History {
    // About 76 events per user (see above).
    let users = (target / 76).max(MIN_USERS);
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
            UserEvent::profile_updated(&format!("bio {i}"), ""),
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

/// Writes `items` to `table`, 25 per `BatchWriteItem`, `in_flight` requests at once
/// (resending what DynamoDB leaves unprocessed); the time it took.
pub async fn batch_write(
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
        .buffer_unordered(in_flight.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

/// `count` per second of `took`.
pub fn rate(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64().max(1e-9)
}

/// Requests in flight when loading the history and measuring the raw writes: as many as the
/// rebuild's full pass has `BatchWriteItem`s in flight.
pub fn in_flight(options: &RebuildOptions) -> usize {
    options.in_flight
}

/// The history as written into the events table.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub events: u64,
    pub took: Duration,
}

/// Writes [`history`]`(target)` straight into `tables.events` (the items the event store
/// writes), `in_flight` requests at once.
pub async fn load_history(
    client: &Client,
    tables: &TableNames,
    target: usize,
    in_flight: usize,
) -> anyhow::Result<Loaded> {
    let history = history(target);
    let events = history.events.len() as u64;
    let items: Vec<_> = history
        .events
        .iter()
        .map(events::store::event_to_item)
        .collect();
    let took = batch_write(client, &tables.events, items, in_flight).await?;
    Ok(Loaded { events, took })
}

/// Every projection rebuilt from the log, one after the other.
#[derive(Clone, Debug)]
pub struct Rebuilt {
    pub reports: Vec<RebuildReport>,
    /// The DynamoDB requests and capacity of each rebuild, in the same order.
    pub tallies: Vec<local_aws::meter::Tally>,
    /// All of them, from the first allocation to the last switch.
    pub took: Duration,
}

impl Rebuilt {
    /// Events applied, over every projection and pass.
    pub fn applied(&self) -> u64 {
        self.reports.iter().map(RebuildReport::applied).sum()
    }
}

/// Rebuilds every projection with `replay`, one after the other (its progress reports as it
/// goes); with `metered`, counting each one's DynamoDB requests and capacity with a meter on
/// its client (which makes it slower: see [`crate::replay_rate`]), otherwise with empty
/// tallies.
pub async fn rebuild_every_projection(
    replay: &Replay,
    options: &RebuildOptions,
    metered: bool,
) -> anyhow::Result<Rebuilt> {
    let meter = local_aws::meter::DynamoMeter::new();
    let replay = if metered {
        Replay {
            client: meter.attach(&replay.client),
            ..replay.clone()
        }
    } else {
        replay.clone()
    };
    let started = Instant::now();
    let mut reports = Vec::new();
    let mut tallies = Vec::new();
    for projection in Projection::ALL {
        reports.push(replay::rebuild(&replay, projection, options).await?);
        tallies.push(meter.take());
    }
    Ok(Rebuilt {
        reports,
        tallies,
        took: started.elapsed(),
    })
}

/// Rebuilds every projection with `replay rebuild all`'s path ([`replay::rebuild_all`]: one read
/// of the log for the four full passes), after [`rebuild_every_projection`].
pub async fn rebuild_all_together(
    replay: &Replay,
    options: &RebuildOptions,
) -> anyhow::Result<(Vec<RebuildReport>, Duration)> {
    let started = Instant::now();
    let reports = replay::rebuild_all(replay, &Projection::ALL, options).await?;
    Ok((reports, started.elapsed()))
}

/// Raw `BatchWriteItem` of the items `projection`'s `version` holds in DynamoDB (its tables and
/// its checkpoints; a search index is not DynamoDB's): each table's items read back (not
/// timed) and written with [`batch_write`] into a fresh table of the same definition, indexes
/// included, one table after the other. Returns the items and the time the writes took.
pub async fn raw_own_items(
    replay: &Replay,
    projection: Projection,
    version: u32,
    prefix: &str,
    in_flight: usize,
) -> anyhow::Result<(u64, Duration)> {
    let mut tables = replay::versions::own_tables(replay, projection, version);
    tables.push((
        replay.tables(projection, version).checkpoints,
        &schema::checkpoints::TABLE,
    ));
    let (mut items, mut took) = (0, Duration::ZERO);
    for (i, (table, def)) in tables.into_iter().enumerate() {
        let read = replay::verify::scan_all(replay, &table).await?;
        items += read.len() as u64;
        let copy = format!("{prefix}bench-own-{projection}-{i}");
        common::tables::ensure(&replay.client, &copy, def).await?;
        let written = batch_write(&replay.client, &copy, read, in_flight).await;
        let deleted = common::tables::delete(&replay.client, &copy).await;
        took += written?;
        deleted?;
    }
    Ok((items, took))
}

/// Raw `BatchWriteItem` throughput on the same emulator.
#[derive(Clone, Debug)]
pub struct RawWrites {
    pub items: u64,
    pub took: Duration,
    pub in_flight: usize,
    /// Items per second.
    pub per_second: f64,
}

/// Writes `items` small items (about a hundred bytes, like a read model item) into a fresh
/// table `<prefix>bench-raw` with [`batch_write`], `in_flight` requests at once, and deletes
/// the table afterwards.
pub async fn raw_batch_writes(
    client: &Client,
    prefix: &str,
    items: u64,
    in_flight: usize,
) -> anyhow::Result<RawWrites> {
    let table = format!("{prefix}bench-raw");
    common::tables::ensure(client, &table, &schema::checkpoints::TABLE).await?;
    let raw: Vec<_> = (0..items)
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
    let took = batch_write(client, &table, raw, in_flight).await;
    let deleted = common::tables::delete(client, &table).await;
    let took = took?;
    deleted?;
    Ok(RawWrites {
        items,
        took,
        in_flight,
        per_second: rate(items, took),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_is_valid_and_about_the_size_asked() {
        let h = history(7_600);
        assert!(
            (7_000..8_500).contains(&h.events.len()),
            "{}",
            h.events.len()
        );
        // Sequences are consecutive from 1 within each aggregate.
        let mut last: HashMap<(String, String), u64> = HashMap::new();
        for e in &h.events {
            let seq = last
                .entry((e.aggregate_type.clone(), e.aggregate_id.clone()))
                .or_insert(0);
            assert_eq!(e.sequence, *seq + 1, "{e:?}");
            *seq = e.sequence;
        }
        // Small targets still get MIN_USERS users' worth of history, each following 10 others.
        let small = history(10);
        assert!(
            (700..1_000).contains(&small.events.len()),
            "{}",
            small.events.len()
        );
        for e in small
            .events
            .iter()
            .filter(|e| e.event_type == "UserFollowed")
        {
            assert_ne!(e.payload["followeeId"], e.aggregate_id.as_str(), "{e:?}");
        }
    }
}
