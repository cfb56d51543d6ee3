//! Replay against the black-box stack: a mixed workload of about 2,000 events through the HTTP
//! API, then full rebuilds of every projection into new versions, compared item by item with
//! the live ones; a rebuild while writes go on; a rebuild killed mid-way and resumed.
//!
//! The scale is what the properties need, not a load: every event type, deleted articles and
//! comments, follows taken back, several scan pages and segments. The 100,000-event rebuild is
//! measured by `./dev bench`.
//!
//! The tests share one stack and one workload, and take turns (each rebuild moves the
//! registry every projection reads).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use common::projections::Projection;
use futures::stream::{self, StreamExt};
use replay::progress_item::ProgressItem;
use replay::rebuild::rebuild_all;
use replay::{RebuildOptions, Replay};
use serde_json::{json, Value};
use tests::{Api, TestUser};
use tokio::sync::{Mutex, OnceCell};

mod cloudwatch;
mod dlq;
mod opensearch;
mod scenario;
mod tail;
mod upcasting;

/// Users of the workload: about 100 events each.
const DEFAULT_USERS: usize = 20;
/// Requests in flight while the workload runs.
const CONCURRENT_REQUESTS: usize = 32;
/// How long the read models may take to apply everything the workload wrote.
const SETTLE_BOUND: Duration = Duration::from_secs(1200);
const TAGS: [&str; 8] = [
    "rust", "dynamo", "events", "cqrs", "feed", "search", "tokio", "aws",
];

/// One test at a time: each rebuild switches the versions every projection reads.
static TURN: Mutex<()> = Mutex::const_new(());
static WORKLOAD: OnceCell<Workload> = OnceCell::const_new();

#[derive(Debug)]
struct Workload {
    users: Vec<TestUser>,
    /// Articles that are still there.
    slugs: Vec<String>,
}

/// Clients for the stack of this binary (its search indexes on disk, so that the `replay`
/// binary can build a version of them too).
async fn replay_context() -> Replay {
    common::telemetry::init();
    let stack = tests::stack_with_search_on_disk();
    let clients = local_aws::testkit::clients().await;
    Replay::in_process(
        clients.dynamodb,
        clients.streams,
        TableNames::with_prefix(&stack.prefix),
        local_stack::versioned_search(&stack.prefix, stack.search.clone()),
    )
}

#[track_caller]
fn expect_ok(reply: &tests::Reply, what: &str) -> Value {
    assert!(
        reply.status.is_success(),
        "{what}: {} {}",
        reply.status,
        reply.shown_body()
    );
    reply.body.clone()
}

/// Runs `jobs` with [`CONCURRENT_REQUESTS`] in flight.
async fn run_all<F: std::future::Future<Output = ()>>(jobs: impl IntoIterator<Item = F>) {
    stream::iter(jobs)
        .buffer_unordered(CONCURRENT_REQUESTS)
        .collect::<Vec<()>>()
        .await;
}

/// The mixed workload, once per binary: users, profiles, follows and unfollows, articles,
/// edits, comments and their deletion, favorites and unfavorites, deleted articles.
async fn workload() -> &'static Workload {
    WORKLOAD
        .get_or_init(|| async {
            let started = Instant::now();
            let api = Api::new();
            // About 100 events a user. REPLAY_TEST_USERS changes the scale while developing.
            let scale: Option<usize> = std::env::var("REPLAY_TEST_USERS")
                .ok()
                .and_then(|n| n.parse().ok());
            let users = api
                .new_users("rp", scale.unwrap_or(DEFAULT_USERS).max(12))
                .await;
            let n = users.len();
            run_all(users.iter().enumerate().map(|(i, user)| {
                let api = api.clone();
                async move {
                    let reply = api
                        .update_user(Some(&user.token), &json!({"bio": format!("bio {i}")}))
                        .await;
                    expect_ok(&reply, "updating a profile");
                }
            }))
            .await;
            // Everyone follows the next ten users, then unfollows the first two of them.
            run_all(users.iter().enumerate().map(|(i, user)| {
                let (api, users) = (api.clone(), &users);
                async move {
                    for k in 1..=10 {
                        let other = &users[(i + k) % n];
                        expect_ok(
                            &api.follow(&other.username, Some(&user.token)).await,
                            "following",
                        );
                    }
                    for k in 1..=2 {
                        let other = &users[(i + k) % n];
                        expect_ok(
                            &api.unfollow(&other.username, Some(&user.token)).await,
                            "unfollowing",
                        );
                    }
                }
            }))
            .await;
            // Ten articles each.
            let articles: Vec<(usize, String)> = stream::iter((0..n * 10).map(|j| {
                let (api, users) = (api.clone(), &users);
                async move {
                    let author = j % n;
                    let (title, _) = tests::unique_title("Replay workload");
                    let tags = [TAGS[j % TAGS.len()], TAGS[(j / 3) % TAGS.len()]];
                    let article = api.new_article(&users[author], &title, &tags).await;
                    (author, tests::slug_of(&article))
                }
            }))
            .buffer_unordered(CONCURRENT_REQUESTS)
            .collect()
            .await;
            // Every other article edited; four comments on each, the first deleted again on
            // every other one; favorites by three readers, the first taken back on one in
            // eight; one article in ten deleted.
            run_all(articles.iter().enumerate().map(|(j, (author, slug))| {
                let (api, users) = (api.clone(), &users);
                async move {
                    let token = Some(users[*author].token.as_str());
                    if j % 2 == 0 {
                        let reply = api
                            .update_article(slug, token, &json!({"body": format!("edited {j}")}))
                            .await;
                        expect_ok(&reply, "editing an article");
                    }
                    let mut first_comment = None;
                    for c in 0..4 {
                        let commenter = &users[(author + c + 1) % n];
                        let reply = api
                            .add_comment(
                                slug,
                                Some(&commenter.token),
                                &format!("comment {c} on {j}"),
                            )
                            .await;
                        let body = expect_ok(&reply, "commenting");
                        if c == 0 {
                            first_comment = Some((commenter, body["comment"]["id"].to_string()));
                        }
                    }
                    if let (0, Some((commenter, id))) = (j % 2, first_comment) {
                        let reply = api.delete_comment(slug, &id, Some(&commenter.token)).await;
                        expect_ok(&reply, "deleting a comment");
                    }
                    for f in 0..if j % 2 == 0 { 3 } else { 2 } {
                        let reader = &users[(author + 5 + f) % n];
                        expect_ok(&api.favorite(slug, Some(&reader.token)).await, "favoriting");
                    }
                    if j % 8 == 0 {
                        let reader = &users[(author + 5) % n];
                        expect_ok(
                            &api.unfavorite(slug, Some(&reader.token)).await,
                            "unfavoriting",
                        );
                    }
                    if j % 10 == 9 {
                        expect_ok(
                            &api.delete_article(slug, token).await,
                            "deleting an article",
                        );
                    }
                }
            }))
            .await;
            let slugs = articles
                .iter()
                .enumerate()
                .filter(|(j, _)| j % 10 != 9)
                .map(|(_, (_, slug))| slug.clone())
                .collect();
            let replay = replay_context().await;
            let events = count_events(&replay).await;
            eprintln!(
                "workload: {events} events through the API in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            if scale.is_none() {
                assert!(events >= 2_000, "the workload wrote only {events} events");
            }
            Workload { users, slugs }
        })
        .await
}

async fn count_events(replay: &Replay) -> u64 {
    let mut pages = replay
        .client
        .scan()
        .table_name(&replay.base.events)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += page.expect("counting the events").count().max(0) as u64;
    }
    count
}

/// The last sequence of every stream in the events table.
async fn heads(client: &Client, events_table: &str) -> BTreeMap<(String, String), u64> {
    let mut heads = BTreeMap::new();
    let mut pages = client
        .scan()
        .table_name(events_table)
        .consistent_read(true)
        .projection_expression("aggregateType, aggregateId, sk")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for item in page.expect("scanning the events").items() {
            let (Some(kind), Some(id), Some(seq)) = (
                events::views::text(item, "aggregateType"),
                events::views::text(item, "aggregateId"),
                events::views::number(item, "sk"),
            ) else {
                continue;
            };
            let head = heads.entry((kind, id)).or_insert(0);
            *head = seq.max(*head);
        }
    }
    heads
}

/// How many streams `projection`'s active version has not applied up to their last event.
async fn lagging(
    replay: &Replay,
    projection: Projection,
    heads: &BTreeMap<(String, String), u64>,
) -> usize {
    let active = replay::registry::read(replay, projection)
        .await
        .expect("registry")
        .state
        .active;
    let table = replay.tables(projection, active).checkpoints;
    let wanted: Vec<(String, u64)> = heads
        .iter()
        .filter(|((kind, _), _)| projection.accepts(kind))
        .map(|((kind, id), head)| {
            (
                events::views::checkpoints::key(projection.name(), &format!("{kind}#{id}")),
                *head,
            )
        })
        .collect();
    let mut applied: HashMap<String, u64> = HashMap::new();
    for chunk in wanted.chunks(100) {
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for (key, _) in chunk {
            keys = keys.keys(HashMap::from([(
                "pk".to_owned(),
                AttributeValue::S(key.clone()),
            )]));
        }
        let mut request = HashMap::from([(table.clone(), keys.build().expect("keys"))]);
        while !request.is_empty() {
            let output = replay
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .expect("reading checkpoints");
            for item in output
                .responses()
                .and_then(|r| r.get(&table))
                .into_iter()
                .flatten()
            {
                if let (Some(key), Some(seq)) = (
                    events::views::text(item, "pk"),
                    events::views::number(item, "lastSeq"),
                ) {
                    applied.insert(key, seq);
                }
            }
            request = output.unprocessed_keys.unwrap_or_default();
        }
    }
    wanted
        .iter()
        .filter(|(key, head)| applied.get(key).copied().unwrap_or(0) < *head)
        .count()
}

/// Waits until the active version of every projection has applied every event of the log.
async fn settled(replay: &Replay) {
    let started = Instant::now();
    loop {
        let heads = heads(&replay.client, &replay.base.events).await;
        let mut behind = Vec::new();
        for projection in Projection::ALL {
            let count = lagging(replay, projection, &heads).await;
            if count > 0 {
                behind.push(format!("{projection}: {count} streams"));
            }
        }
        if behind.is_empty() {
            eprintln!(
                "pipeline settled in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        assert!(
            started.elapsed() < SETTLE_BOUND,
            "the read models are still behind the log after {SETTLE_BOUND:?}: {}",
            behind.join(", ")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn active_versions(replay: &Replay) -> Vec<u32> {
    let mut versions = Vec::new();
    for projection in Projection::ALL {
        let state = replay::registry::read(replay, projection)
            .await
            .expect("registry");
        versions.push(state.state.active);
    }
    versions
}

fn assert_equal(reports: &[replay::RebuildReport]) {
    assert_eq!(reports.len(), Projection::ALL.len());
    for report in reports {
        eprintln!("{}", report.summary());
        let verify = report.verify.as_ref().expect("verified");
        assert!(verify.is_equal(), "{}", verify.render());
        assert!(
            verify.comparisons.iter().all(|c| c.old_items > 0),
            "an empty table proves nothing: {}",
            verify.render()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_replay_of_every_projection_equals_the_live_read_models() {
    let _turn = TURN.lock().await;
    let replay = replay_context().await;
    workload().await;
    settled(&replay).await;
    let before = active_versions(&replay).await;
    let started = Instant::now();
    let options = RebuildOptions {
        verify: true,
        ..RebuildOptions::default()
    };
    let reports = rebuild_all(&replay, &Projection::ALL, &options)
        .await
        .expect("rebuilding every projection");
    eprintln!(
        "full replay of every projection in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_equal(&reports);
    for (report, before) in reports.iter().zip(before) {
        assert_eq!(report.previous, before);
        assert!(report.version > before);
        assert!(report.full.scanned >= 1_000, "{}", report.summary());
        assert!(report.full.applied > 0, "{}", report.summary());
        // Nothing was appended during the rebuild: the catch-up passes and the last one read
        // the stream's new records (none), not the thousands of events of the log again.
        assert!(!report.catch_up.is_empty(), "{}", report.summary());
        for pass in report.catch_up.iter().chain([&report.last]) {
            assert_eq!(pass.scanned, 0, "{}", report.summary());
            assert!(pass.get_records >= 1, "{}", report.summary());
        }
        let state = replay::registry::read(&replay, report.projection)
            .await
            .expect("registry")
            .state;
        assert_eq!(state.active, report.version);
        assert_eq!(state.building, None);
        assert!(!state.frozen);
    }
    // The read side serves the new versions: a sample of the workload's articles and the
    // tags through the API.
    let api = Api::new();
    let workload = workload().await;
    for slug in workload.slugs.iter().step_by(50) {
        api.eventually_article(slug, None, |a| a["slug"] == slug.as_str())
            .await;
    }
    let tags = api.eventually_tags(|tags| !tags.is_empty()).await;
    for tag in TAGS {
        assert!(tags.iter().any(|t| t == tag), "{tag} missing from {tags:?}");
    }
    // The version replaced stays until removed; the active one cannot be removed.
    let users = &reports[0];
    let refused = replay::versions::remove(&replay, Projection::Users, users.version).await;
    assert!(
        matches!(refused, Err(replay::ReplayError::Refused(_))),
        "{refused:?}"
    );
    let removed = replay::versions::remove(&replay, Projection::Users, users.previous)
        .await
        .expect("removing the replaced version");
    assert!(!removed.is_empty());
    let state = replay::registry::read(&replay, Projection::Users)
        .await
        .expect("registry")
        .state;
    assert!(!state.versions.contains(&users.previous), "{state:?}");
}

/// A replay while writes go on, then a replay killed mid-way and resumed with `--verify`:
/// the resumed one is built from the log alone and compared with the versions the first one
/// built under writes, so one rebuild checks both.
/// A unit done again after a kill folds each stream only as far as the checkpoint its first
/// attempt wrote (checkpoints go first), so it writes the same items even though events were
/// appended since: those are the catch-up's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_unit_done_again_folds_each_stream_only_as_far_as_its_first_checkpoint() {
    let _turn = TURN.lock().await;
    let replay = replay_context().await;
    workload().await;
    settled(&replay).await;
    let projection = Projection::Users;
    let (version, _) = replay::registry::allocate(&replay, projection)
        .await
        .expect("allocating a version");
    replay::versions::create(&replay, projection, version)
        .await
        .expect("creating the version");
    let tables = replay.tables(projection, version);
    // Two users of the workload: registered, profile, ten follows, two unfollows.
    let users: Vec<(String, u64)> = heads(&replay.client, &replay.base.events)
        .await
        .into_iter()
        .filter(|((kind, _), head)| kind == "User" && *head >= 14)
        .map(|((_, id), head)| (id, head))
        .take(2)
        .collect();
    let [(cut_user, _), (whole_user, whole_head)] = &users[..] else {
        panic!("two users with their follows: {users:?}");
    };
    // The first attempt had got as far as the fifth event of one of them: three follows.
    let checkpoint = |user: &str| format!("users#User#{user}");
    replay
        .client
        .put_item()
        .table_name(&tables.checkpoints)
        .item("pk", AttributeValue::S(checkpoint(cut_user)))
        .item("lastSeq", AttributeValue::N("5".into()))
        .send()
        .await
        .expect("planting the first attempt's checkpoint");
    let foreign = projectors::bulk::Foreign::new(&replay.client, 1 << 20);
    let done = replay::bulk::unit(
        &replay,
        &[(projection, version)],
        (0, 0, 1),
        &foreign,
        true,
        8,
    )
    .await
    .expect("doing the unit again");
    assert!(done[0].1.folded > 0, "{done:?}");
    let last_seq = |user: String| {
        let replay = &replay;
        let table = tables.checkpoints.clone();
        async move {
            let item = replay
                .client
                .get_item()
                .table_name(&table)
                .key("pk", AttributeValue::S(user))
                .consistent_read(true)
                .send()
                .await
                .expect("reading a checkpoint")
                .item
                .expect("a checkpoint");
            events::views::number(&item, "lastSeq").expect("lastSeq")
        }
    };
    assert_eq!(last_seq(checkpoint(cut_user)).await, 5);
    assert_eq!(last_seq(checkpoint(whole_user)).await, *whole_head);
    let follows = |user: String| {
        let replay = &replay;
        let table = tables.follows.clone();
        async move {
            replay
                .client
                .query()
                .table_name(&table)
                .key_condition_expression("followerId = :u")
                .expression_attribute_values(":u", AttributeValue::S(user))
                .consistent_read(true)
                .send()
                .await
                .expect("reading follows")
                .count()
        }
    };
    assert_eq!(follows(cut_user.clone()).await, 3, "events 3 to 5 only");
    assert_eq!(
        follows(whole_user.clone()).await,
        8,
        "ten follows, two unfollowed"
    );
    replay::registry::abort(&replay, projection)
        .await
        .expect("aborting");
    replay::versions::remove(&replay, projection, version)
        .await
        .expect("removing the version");
}

/// A full pass shared by several workers, three in the rebuilding process and two more that
/// join it as `replay worker` does: every unit is done once, the rounds in order, and the
/// versions equal the live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_share_a_full_pass_and_give_the_same_result() {
    let _turn = TURN.lock().await;
    let replay = replay_context().await;
    workload().await;
    settled(&replay).await;
    let segments = 5;
    let options = RebuildOptions {
        verify: true,
        segments: Some(segments),
        workers: 3,
        lease: Duration::from_secs(2),
        ..RebuildOptions::default()
    };
    let helper = replay::units::WorkOptions {
        workers: 2,
        lease: Duration::from_secs(2),
        ..replay::units::WorkOptions::default()
    };
    let (reports, helped) = tokio::join!(
        rebuild_all(&replay, &Projection::ALL, &options),
        replay::units::help(&replay, &helper, Duration::from_secs(30)),
    );
    let reports = reports.expect("rebuilding with workers");
    let helped = helped.expect("helping");
    assert_equal(&reports);
    assert_eq!(
        helped.len(),
        1,
        "the helper joined the one pass: {helped:?}"
    );
    for report in &reports {
        let bulk = report.bulk.expect("a full pass");
        let rounds = report.projection.rounds().len() as u64;
        // Every segment of every round once, and the merge of counters for the projections
        // of two rounds.
        assert_eq!(
            bulk.units,
            segments as u64 * rounds + u64::from(rounds > 1),
            "{}",
            report.summary()
        );
        assert_eq!(bulk.redone, 0, "{}", report.summary());
    }
    let articles = reports
        .iter()
        .find(|r| r.projection == Projection::Articles)
        .and_then(|r| r.bulk)
        .expect("articles");
    assert!(
        articles.counters > 0,
        "favorites counted apart and set: {articles:?}"
    );
    // The pass is forgotten once its rebuilds went on: a worker finds nothing to do.
    let idle = replay::units::help(&replay, &helper, Duration::ZERO)
        .await
        .expect("an idle worker");
    assert!(idle.is_empty(), "{idle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_under_writes_then_a_replay_killed_mid_way_and_resumed() {
    let _turn = TURN.lock().await;
    let replay = replay_context().await;
    writes_made_while_a_replay_runs_all_reach_the_new_version(&replay).await;
    a_replay_killed_mid_way_resumes_to_the_same_result(&replay).await;
}

async fn writes_made_while_a_replay_runs_all_reach_the_new_version(replay: &Replay) {
    let workload = workload().await;
    settled(replay).await;

    // Writers that go on through the rebuild and the switch: several at once, since each
    // write waits for its read models and the bulk rebuild of every projection takes seconds.
    const WRITERS: usize = 4;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|k| {
            let (stop, users, slugs) =
                (stop.clone(), workload.users.clone(), workload.slugs.clone());
            tokio::spawn(async move {
                let api = Api::new();
                let mut written: Vec<(String, Value, String)> = Vec::new();
                let mut i = k;
                while !stop.load(Ordering::Relaxed) {
                    let author = &users[i % users.len()];
                    let reader = &users[(i + 7) % users.len()];
                    let (title, _) = tests::unique_title("During replay");
                    let article = api.new_article(author, &title, &["during"]).await;
                    let slug = tests::slug_of(&article);
                    let comment = api
                        .add_comment(&slug, Some(&reader.token), &format!("late comment {i}"))
                        .await;
                    let comment_id = expect_ok(&comment, "commenting")["comment"]["id"].clone();
                    expect_ok(
                        &api.favorite(&slugs[i % slugs.len()], Some(&reader.token))
                            .await,
                        "favoriting",
                    );
                    written.push((slug, comment_id, reader.username.clone()));
                    i += WRITERS;
                    // A trickle: the point is writes during every phase, not a load test.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                written
            })
        })
        .collect();
    let reports = rebuild_all(replay, &Projection::ALL, &RebuildOptions::default())
        .await
        .expect("rebuilding while writes go on");
    // Writes after the switch go to the new versions through the live projectors.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut written = Vec::new();
    for writer in writers {
        written.extend(writer.await.expect("a writer"));
    }
    for report in &reports {
        eprintln!("{}", report.summary());
    }
    assert!(
        written.len() >= 5,
        "only {} writes during the rebuild",
        written.len()
    );
    let caught_up: u64 = reports
        .iter()
        .map(|r| r.catch_up.iter().map(|p| p.applied).sum::<u64>() + r.last.applied)
        .sum();
    // The catch-up passes read what was appended during the rebuild, from the stream: far
    // less than the log, which a scan would read whole each time.
    let log = count_events(replay).await;
    for report in &reports {
        for pass in report.catch_up.iter().chain([&report.last]) {
            assert!(
                pass.scanned < log / 4,
                "{} of {log}: {}",
                pass.scanned,
                report.summary()
            );
        }
    }
    eprintln!(
        "{} articles written during the rebuild; {caught_up} events applied by catch-up passes",
        written.len()
    );

    // Every event of the log reaches the new versions...
    settled(replay).await;
    // ...and the last writes read back through the API.
    let api = Api::new();
    for (slug, comment_id, commenter) in written.iter().rev().take(10) {
        api.eventually_article(slug, None, |a| a["slug"] == slug.as_str())
            .await;
        api.eventually_comments(slug, None, |comments| {
            comments
                .iter()
                .any(|c| c["id"] == *comment_id && c["author"]["username"] == commenter.as_str())
        })
        .await;
    }
    // The search read model has every article written meanwhile, and only those.
    let slugs_written: std::collections::BTreeSet<String> =
        written.iter().map(|w| w.0.clone()).collect();
    api.eventually_get("/articles?tag=during&limit=100", None, |reply| {
        let page = tests::slugs(&reply.body);
        reply.body["articlesCount"] == written.len()
            && page.len() == written.len().min(100)
            && page.iter().all(|slug| slugs_written.contains(slug))
    })
    .await;
    // That these versions equal a rebuild from the log alone, the resumed replay checks.
}

async fn a_replay_killed_mid_way_resumes_to_the_same_result(replay: &Replay) {
    workload().await;
    settled(replay).await;
    let stack = tests::stack_with_search_on_disk();
    let endpoints = local_aws::testkit::emulators();
    let local_stack::SearchBackend::Embedded {
        dir: Some(search_dir),
    } = &stack.search
    else {
        panic!(
            "the stack's search is not in a directory: {:?}",
            stack.search
        );
    };
    let command = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_replay"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CONDUIT_TABLE_PREFIX", &stack.prefix)
            .env("CONDUIT_SEARCH", "embedded")
            .env("CONDUIT_SEARCH_DIR", search_dir)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &endpoints.dynamodb)
            .env("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", &endpoints.dynamodb)
            .env("AWS_ENDPOINT_URL_SQS", &endpoints.moto)
            .env("AWS_REGION", local_aws::LOCAL_REGION)
            .env("AWS_ACCESS_KEY_ID", local_aws::LOCAL_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", local_aws::LOCAL_SECRET_ACCESS_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .kill_on_drop(true);
        command
    };
    let before = active_versions(replay).await;

    let mut child = command(&["rebuild", "all", "--segments", "4"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawning replay");
    // Kill it as soon as its progress shows events applied (and before it finishes).
    let started = Instant::now();
    let killed_in = loop {
        assert!(
            child.try_wait().expect("polling replay").is_none(),
            "replay finished before it could be killed"
        );
        let mut shown = None;
        for projection in Projection::ALL {
            let building = replay::registry::read(replay, projection)
                .await
                .expect("registry")
                .state
                .building;
            if let Some(version) = building {
                if let Some(item) = ProgressItem::read(replay, projection, version)
                    .await
                    .expect("progress")
                {
                    if item.applied > 0 {
                        shown = Some((projection, item.summary()));
                        break;
                    }
                }
            }
        }
        if let Some(shown) = shown {
            child.start_kill().expect("killing replay");
            child.wait().await.expect("reaping replay");
            break shown;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "replay showed no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("replay killed during {}: {}", killed_in.0, killed_in.1);
    // `rebuild all` allocates every version first, so the kill leaves at least the later
    // projections being built (the one seen may have switched in the meantime: a bulk
    // rebuild of this workload takes about a second).
    let mut building = Vec::new();
    for projection in Projection::ALL {
        let state = replay::registry::read(replay, projection)
            .await
            .expect("registry")
            .state;
        if state.building.is_some() {
            building.push(projection);
        }
    }
    assert!(
        !building.is_empty(),
        "the kill came after every rebuild had switched"
    );
    eprintln!("still being built after the kill: {building:?}");

    // A new rebuild is refused while one is in progress; --resume goes on.
    let refused = command(&["rebuild", "all"])
        .output()
        .await
        .expect("running replay");
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--resume"),
        "{refused:?}"
    );
    let resumed = command(&["rebuild", "all", "--resume", "--verify"])
        .output()
        .await
        .expect("running replay --resume");
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    eprintln!("replay --resume --verify:\n{stdout}");
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("no difference") && !stdout.contains("differences"),
        "{stdout}"
    );

    // Every projection was rebuilt exactly once from where it was, and equals what it replaced.
    for (projection, before) in Projection::ALL.into_iter().zip(before) {
        let state = replay::registry::read(replay, projection)
            .await
            .expect("registry")
            .state;
        assert_eq!(state.active, before + 1, "{projection}: {state:?}");
        assert_eq!(state.building, None);
        let report = replay::verify(replay, projection, before, state.active)
            .await
            .expect("verifying");
        assert!(report.is_equal(), "{}", report.render());
    }
    let status = command(&["status"]).output().await.expect("replay status");
    assert_eq!(status.status.code(), Some(0));
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("done"), "{status:?}");
    // Then each projector's queues and lag.
    assert!(
        shown.contains("in flight") && shown.contains("lag"),
        "{shown}"
    );
    for projection in Projection::ALL {
        assert!(
            shown
                .lines()
                .any(|line| line.starts_with(projection.name())),
            "{projection}: {shown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_pass_killed_while_writing_starts_again_on_an_emptied_version() {
    let _turn = TURN.lock().await;
    let replay = replay_context().await;
    workload().await;
    settled(&replay).await;
    // The feed: its fan-outs depend on what other streams were folded before, so a fold that
    // saw fewer events can leave items that no fold of the whole log writes.
    let projection = Projection::Feed;
    let (version, active) = replay::registry::allocate(&replay, projection)
        .await
        .expect("allocating a version");
    replay::versions::create(&replay, projection, version)
        .await
        .expect("creating the version");
    // What a killed attempt left behind: an entry and a checkpoint of a stream that today's
    // log gives no such item.
    let tables = replay.tables(projection, version);
    let ghost = HashMap::from([
        (
            "userId".to_owned(),
            AttributeValue::S("ghost-reader".into()),
        ),
        (
            "feedKey".to_owned(),
            AttributeValue::S("0000000000000#ghost".into()),
        ),
        ("authorId".to_owned(), AttributeValue::S("ghost".into())),
        ("articleId".to_owned(), AttributeValue::S("ghost".into())),
    ]);
    replay
        .client
        .put_item()
        .table_name(&tables.feeds)
        .set_item(Some(ghost))
        .send()
        .await
        .expect("planting a leftover entry");
    let mut item = ProgressItem::new(projection, version, 4, active);
    item.full_pass_started = true;
    item.save(&replay).await.expect("saving the progress");

    let options = RebuildOptions {
        resume: true,
        verify: true,
        ..RebuildOptions::default()
    };
    let report = replay::rebuild(&replay, projection, &options)
        .await
        .expect("resuming the rebuild");
    assert_eq!(report.version, version);
    let verify = report.verify.as_ref().expect("verified");
    assert!(verify.is_equal(), "{}", verify.render());
    assert!(
        report.items > 0 && report.full.applied > 0,
        "{}",
        report.summary()
    );
    let leftover = replay
        .client
        .get_item()
        .table_name(&tables.feeds)
        .key("userId", AttributeValue::S("ghost-reader".into()))
        .key("feedKey", AttributeValue::S("0000000000000#ghost".into()))
        .send()
        .await
        .expect("reading the leftover");
    assert!(leftover.item().is_none(), "the leftover entry survived");
}
