//! Command latency against stream length (section 8): what a command costs through the HTTP
//! API when its aggregate's stream already holds 1, 1,000 or 10,000 events
//! (`scale.stream_lengths`).
//!
//! A command loads its aggregate's latest snapshot and the events after it (see
//! `events::snapshot`), so its cost should not grow with the stream. On a local stack of its
//! own, under a prefix deleted afterwards, this section:
//! 1. registers a user per stream length, an article author and a commenter, and publishes an
//!    article per comment thread, through the API;
//! 2. lengthens the streams straight through the event store (not through HTTP), in commits
//!    of at most [`COMMIT_EVENTS`] events, each with the snapshot command-api would write with
//!    it (the state folded with `Aggregate::apply`): a user's stream alternates `UserFollowed`
//!    and `UserUnfollowed` of the commenter; a comment thread gets `CommentAdded`s by the
//!    commenter alone, or by the commenter and the article's author in turn (every comment a
//!    run of its own in the thread's snapshot: its largest form);
//! 3. waits until the pipeline has projected all of it, so that no write waits behind it;
//! 4. sends `scale.stream_samples` commands to each stream, one after another: `PUT /api/user`
//!    (a new bio each time) and `POST /api/articles/{slug}/comments` by the commenter, each
//!    timed from request to whole answer, with the API's DynamoDB requests and read units.
//!
//! Each row is set beside the row of the same kind of stream at the shortest length.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use events::article::AGGREGATE_TYPE as ARTICLE;
use events::comment::{ArticleComments, CommentEvent};
use events::user::{User, UserEvent};
use events::{Commit, EventSchema, EventStore, Metadata, Repository, Snapshotted, Tables};
use futures::stream::{self, StreamExt, TryStreamExt};
use local_aws::LocalEndpoints;
use reqwest::Method;
use serde_json::json;

use crate::client::ApiUser;
use crate::report::{StreamRow, StreamsSection};
use crate::stack::{send, settle, start, Call, Stack};
use crate::stats::{Latency, VsBaseline};
use crate::Scale;

/// Events per seeding commit: a transaction takes 100 actions, and the snapshot is one more.
pub const COMMIT_EVENTS: usize = 90;
/// Streams seeded at once.
const SEED_CONCURRENCY: usize = 4;

/// What a measured stream holds before its samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum History {
    /// A user: registered, then following and unfollowing the commenter in turn.
    Follows,
    /// A comment thread whose comments are all by the commenter.
    OneAuthor,
    /// A comment thread whose comments are by the commenter and the author in turn.
    TwoAuthors,
}

impl History {
    fn command(self) -> &'static str {
        match self {
            History::Follows => "PUT /api/user",
            History::OneAuthor | History::TwoAuthors => "POST /api/articles/{slug}/comments",
        }
    }

    fn aggregate_type(self) -> &'static str {
        match self {
            History::Follows => events::user::AGGREGATE_TYPE,
            History::OneAuthor | History::TwoAuthors => events::comment::AGGREGATE_TYPE,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            History::Follows => "User: follows and unfollows",
            History::OneAuthor => "ArticleComments: one author",
            History::TwoAuthors => "ArticleComments: two authors in turn",
        }
    }
}

/// One measured stream.
struct Target {
    history: History,
    /// Events in the stream before the first sample.
    length: usize,
    /// The aggregate's id.
    id: String,
    /// Who sends the command.
    caller: ApiUser,
    /// The article, for a comment thread.
    slug: Option<String>,
}

/// A registered user and its id.
struct Member {
    user: ApiUser,
    id: String,
}

/// Who writes what: the author publishes the articles, the commenter comments on them (and
/// is the user the seeded follows follow).
struct Cast {
    author: Member,
    commenter: Member,
}

/// Measures on the emulators at `endpoints`, on a stack of its own deleted afterwards.
pub async fn measure(endpoints: &LocalEndpoints, scale: &Scale) -> anyhow::Result<StreamsSection> {
    ensure!(
        !scale.stream_lengths.is_empty() && !scale.stream_lengths.contains(&0),
        "stream lengths must be at least 1 (got {:?})",
        scale.stream_lengths
    );
    ensure!(
        scale.stream_samples >= 1,
        "need at least one sample per stream"
    );
    eprintln!("bench:   starting a local stack");
    let prefix = local_aws::testkit::unique_prefix("benchstreams");
    let stack = start(endpoints, &prefix).await?;
    let result = measure_on(&stack, &prefix, scale).await;
    stack.stop().await;
    // DynamoDB Local keeps every table in one SQLite database: tens of thousands of events
    // left behind would slow the sections after this one.
    let clients = local_aws::Clients::local(endpoints).await;
    let cleaned = crate::clean_up(&clients, &prefix).await;
    let section = result?;
    cleaned.with_context(|| format!("deleting what {prefix} holds"))?;
    Ok(section)
}

async fn measure_on(stack: &Stack, prefix: &str, scale: &Scale) -> anyhow::Result<StreamsSection> {
    let store = EventStore::new(
        stack.running.clients.dynamodb.clone(),
        Tables::with_prefix(prefix),
    );
    let mut lengths = scale.stream_lengths.clone();
    lengths.sort_unstable();
    lengths.dedup();

    let started = Instant::now();
    let (cast, targets, warm_up) = register(stack, &store, &lengths).await?;
    let register_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let seeded: Vec<usize> = stream::iter(&targets)
        .map(|target| seed(&store, &cast, target))
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect()
        .await?;
    let seeded: usize = seeded.iter().sum();
    let seed_seconds = started.elapsed().as_secs_f64();
    eprintln!("bench:   streams: {seeded} events appended in {seed_seconds:.1} s");

    let started = Instant::now();
    let limit = Duration::from_secs(300)
        + Duration::from_millis(100) * u32::try_from(seeded).unwrap_or(u32::MAX);
    settle(stack, limit, "projecting the seeded streams").await?;
    let settle_seconds = started.elapsed().as_secs_f64();
    eprintln!("bench:   streams: projected in {settle_seconds:.1} s");

    // The first calls of a stack also fill its caches: made here, on streams not measured.
    for call in &warm_up {
        stack
            .client
            .ok(
                call.method.clone(),
                &call.path,
                call.token.as_deref(),
                call.body.clone(),
                call.expected,
            )
            .await
            .context("warming up")?;
    }

    let mut rows = Vec::new();
    for target in &targets {
        let row = measure_target(stack, &store, target, scale.stream_samples).await?;
        eprintln!(
            "bench:   streams: {} on {} ({} events): p50 {:.1} ms ({:.1} without the wait), \
             {:.2} read units ({:.2} loading), {} errors",
            row.command,
            row.stream,
            row.length,
            row.latency.p50_ms,
            row.own_p50_ms,
            row.read_units,
            row.load_read_units,
            row.errors
        );
        rows.push(row);
    }
    set_beside_shortest(&mut rows);
    Ok(StreamsSection {
        samples: scale.stream_samples,
        commit_events: COMMIT_EVENTS,
        snapshot_every: events::snapshot::SNAPSHOT_EVERY,
        register_seconds,
        seeded_events: seeded,
        seed_seconds,
        settle_seconds,
        rows,
    })
}

/// Registers the cast and a user per length, and publishes an article per comment thread and
/// one more to warm up on; the targets, in order, and the calls that warm the stack up.
async fn register(
    stack: &Stack,
    store: &EventStore,
    lengths: &[usize],
) -> anyhow::Result<(Cast, Vec<Target>, Vec<Call>)> {
    let run = &stack.run;
    let member = |name: String| async move {
        let user = stack.client.register(&name).await?;
        let id = owner(
            store,
            &events::user::username_key(&name),
            events::user::AGGREGATE_TYPE,
        )
        .await?;
        anyhow::Ok(Member { user, id })
    };
    let cast = Cast {
        author: member(format!("s{run}author")).await?,
        commenter: member(format!("s{run}commenter")).await?,
    };
    let mut targets = Vec::new();
    for &length in lengths {
        let Member { user, id } = member(format!("s{run}user{length}")).await?;
        targets.push(Target {
            history: History::Follows,
            length,
            id,
            caller: user,
            slug: None,
        });
    }
    for history in [History::OneAuthor, History::TwoAuthors] {
        for &length in lengths {
            let (slug, id) = publish(
                stack,
                store,
                &cast.author.user,
                &format!("{history:?} {length}"),
            )
            .await?;
            targets.push(Target {
                history,
                length,
                id,
                caller: cast.commenter.user.clone(),
                slug: Some(slug),
            });
        }
    }
    let (warm_slug, _) = publish(stack, store, &cast.author.user, "warm-up").await?;
    let warm_up = vec![
        profile_call(&cast.author.user, "warming up".to_owned()),
        comment_call(&cast.commenter.user, &warm_slug, "warming up".to_owned()),
    ];
    Ok((cast, targets, warm_up))
}

/// Publishes an article by `author`; its slug and id.
async fn publish(
    stack: &Stack,
    store: &EventStore,
    author: &ApiUser,
    what: &str,
) -> anyhow::Result<(String, String)> {
    let reply = stack
        .client
        .ok(
            Method::POST,
            "/articles",
            Some(&author.token),
            Some(json!({"article": {
                "title": format!("Thread {what} of run {}", stack.run),
                "description": "A long comment thread",
                "body": "Lorem ipsum dolor sit amet.",
                "tagList": ["bench"],
            }})),
            201,
        )
        .await?;
    let slug = reply["article"]["slug"]
        .as_str()
        .context("an article without a slug")?
        .to_owned();
    let id = owner(store, &events::article::slug_key(&slug), ARTICLE).await?;
    Ok((slug, id))
}

/// The id of the aggregate of `aggregate_type` holding `unique_key` (from the write side's
/// claims, as command-api finds it).
async fn owner(
    store: &EventStore,
    unique_key: &str,
    aggregate_type: &str,
) -> anyhow::Result<String> {
    let owner = store
        .owner_of(unique_key)
        .await?
        .with_context(|| format!("nobody holds {unique_key}"))?;
    owner
        .strip_prefix(&format!("{aggregate_type}#"))
        .map(str::to_owned)
        .with_context(|| format!("{unique_key} is held by {owner}"))
}

/// Lengthens `target`'s stream to `target.length` events; how many it appended.
async fn seed(store: &EventStore, cast: &Cast, target: &Target) -> anyhow::Result<usize> {
    match target.history {
        History::Follows => {
            let followee = &cast.commenter.id;
            append_folded::<User>(store, &target.id, target.length, |_, n| {
                let followee_id = followee.clone();
                if n % 2 == 0 {
                    UserEvent::UserFollowed { followee_id }
                } else {
                    UserEvent::UserUnfollowed { followee_id }
                }
            })
            .await
        }
        History::OneAuthor | History::TwoAuthors => {
            let authors = match target.history {
                History::OneAuthor => vec![&cast.commenter.id],
                _ => vec![&cast.commenter.id, &cast.author.id],
            };
            let article_id = &target.id;
            append_folded::<ArticleComments>(store, &target.id, target.length, |thread, n| {
                CommentEvent::CommentAdded {
                    article_id: article_id.clone(),
                    comment_id: thread.next_id,
                    author_id: authors[n % authors.len()].clone(),
                    body: format!("Comment {} of a long thread, seeded.", thread.next_id),
                    created_at: events::time_format::format_millis(
                        events::time_format::now_millis(),
                    ),
                }
            })
            .await
        }
    }
}

/// Appends events to the stream of `A` `id` until it holds `length`, in commits of
/// [`COMMIT_EVENTS`]: `next(state, n)` is the `n`-th event appended here, decided on the state
/// before it. Each commit carries the snapshot a command committing the same events would
/// (the state folded from the loaded one with `Aggregate::apply`).
async fn append_folded<A>(
    store: &EventStore,
    id: &str,
    length: usize,
    mut next: impl FnMut(&A, usize) -> A::Event,
) -> anyhow::Result<usize>
where
    A: Snapshotted,
    A::Event: EventSchema + Clone,
{
    let loaded = Repository::new(store.clone())
        .load::<A>(id)
        .await
        .map_err(|error| anyhow::anyhow!("loading {}#{id}: {error}", A::TYPE))?;
    let (mut state, mut sequence, mut covered) =
        (loaded.state, loaded.sequence, loaded.snapshot_sequence);
    let wanted = length as u64;
    ensure!(
        sequence <= wanted,
        "{}#{id} already holds {sequence} events, more than {length}",
        A::TYPE
    );
    let mut appended = 0;
    while sequence < wanted {
        let size = usize::try_from(wanted - sequence)
            .unwrap_or(usize::MAX)
            .min(COMMIT_EVENTS);
        let mut decided = Vec::with_capacity(size);
        for _ in 0..size {
            let event = next(&state, appended + decided.len());
            state.apply(event.clone());
            decided.push(event);
        }
        let commit = Commit::of(A::TYPE, id, sequence, &decided, &Metadata::default())
            .with_snapshot(&state, covered);
        if commit.snapshot.is_some() {
            covered = commit.last_sequence();
        }
        sequence = commit.last_sequence();
        store
            .append(commit)
            .await
            .with_context(|| format!("appending to {}#{id}", A::TYPE))?;
        appended += size;
    }
    Ok(appended)
}

/// `PUT /api/user` changing `user`'s bio to `bio`.
fn profile_call(user: &ApiUser, bio: String) -> Call {
    Call::new(
        Method::PUT,
        "/user".to_owned(),
        Some(user),
        Some(json!({"user": {"bio": bio}})),
        200,
    )
}

/// `POST /api/articles/{slug}/comments` by `user`.
fn comment_call(user: &ApiUser, slug: &str, body: String) -> Call {
    Call::new(
        Method::POST,
        format!("/articles/{slug}/comments"),
        Some(user),
        Some(json!({"comment": {"body": body}})),
        200,
    )
}

/// Sends `samples` commands to `target`'s stream one after another; the row, without its
/// ratios.
async fn measure_target(
    stack: &Stack,
    store: &EventStore,
    target: &Target,
    samples: usize,
) -> anyhow::Result<StreamRow> {
    let tables = store.tables();
    stack.api_meter.take();
    let mut times = Vec::with_capacity(samples);
    let mut waits = Vec::with_capacity(samples);
    let mut own = Vec::with_capacity(samples);
    let mut errors = 0;
    let mut first_error = None;
    for _ in 0..samples {
        let n = stack.next();
        let text = format!("Sample {n} on {} events", target.length);
        let call = match &target.slug {
            Some(slug) => comment_call(&target.caller, slug, text),
            None => profile_call(&target.caller, text),
        };
        let answer = send(&stack.client, &call).await;
        match answer.error {
            None => {
                let waited = answer.waited.unwrap_or_default();
                times.push(answer.elapsed);
                waits.push(waited);
                own.push(answer.elapsed.saturating_sub(waited));
            }
            Some(error) => {
                errors += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    let tally = stack.api_meter.take();
    let calls = samples as f64;
    let load_read_units: f64 = tally
        .by_table
        .iter()
        .filter(|(table, _)| **table == tables.events || **table == tables.snapshots)
        .map(|(_, units)| units.read)
        .sum();
    let snapshot = store
        .snapshot(target.history.aggregate_type(), &target.id)
        .await?;
    Ok(StreamRow {
        command: target.history.command().to_owned(),
        stream: target.history.describe().to_owned(),
        length: target.length,
        latency: Latency::of(&times),
        wait_p50_ms: Latency::of(&waits).p50_ms,
        own_p50_ms: Latency::of(&own).p50_ms,
        errors,
        first_error,
        read_units: tally.read_units / calls,
        load_read_units: load_read_units / calls,
        api_requests: tally
            .requests
            .iter()
            .map(|(operation, n)| (operation.clone(), *n as f64 / calls))
            .collect::<BTreeMap<_, _>>(),
        snapshot_sequence: snapshot.as_ref().map(|s| s.sequence),
        snapshot_bytes: snapshot.as_ref().map(|s| s.state.len()),
        p50_vs_shortest: VsBaseline::default(),
        read_units_vs_shortest: VsBaseline::default(),
    })
}

/// Sets each row beside the row of the same stream kind at the shortest length.
fn set_beside_shortest(rows: &mut [StreamRow]) {
    let shortest: Vec<(String, usize, f64, f64)> = rows
        .iter()
        .map(|row| {
            (
                row.stream.clone(),
                row.length,
                row.latency.p50_ms,
                row.read_units,
            )
        })
        .collect();
    for row in rows.iter_mut() {
        let Some((_, length, p50, read_units)) = shortest
            .iter()
            .filter(|(stream, ..)| *stream == row.stream)
            .min_by_key(|(_, length, ..)| *length)
        else {
            continue;
        };
        let events = if *length == 1 { "event" } else { "events" };
        row.p50_vs_shortest = VsBaseline::new(
            row.latency.p50_ms,
            format!("p50 ms at {length} {events}"),
            *p50,
        );
        row.read_units_vs_shortest = VsBaseline::new(
            row.read_units,
            format!("read units at {length} {events}"),
            *read_units,
        );
    }
}
