//! `feed-bench`: what the feed costs, written (fan-out on write) and read.
//!
//! **Part 1, fan-out** (`--part fanout`: section 7 of `./dev bench`, [`bench::feed`]), at
//! the projector level on in-memory emulators (no HTTP: registering 10,000 users through the
//! API would mean 10,000 Argon2 hashes):
//! 1. provisions a fresh prefix and appends `--followers` (10,000) `UserFollowed` events of one
//!    author, one per follower stream, through the real event store;
//! 2. applies them with a feed projector runtime, `--concurrency` (8) at once, and prints the
//!    rate (they serialize on the author's lease by design);
//! 3. appends an `ArticlePublished` by that author and applies it with a runtime whose
//!    DynamoDB client is metered, retrying while it pauses (its fan-out budget ran out), and
//!    prints the wall time, entries per second, the requests per operation and the capacity;
//! 4. checks, with a consistent scan of the `feeds` table, that every follower's feed holds
//!    exactly that entry;
//! 5. does the same for the article's `ArticleDeleted` (a fan-out of deletes) and checks the
//!    feeds are empty again, the projector's copy of the article gone, and no author lease
//!    left behind;
//! 6. with `--budget-ms N`, repeats 3 to 5 for a second article with that fan-out budget, to
//!    show the pause/resume path at scale (how many pauses it took).
//!
//! **Part 2, reads** (`--part reads`), through the HTTP API of a local stack whose API client
//! is metered: registers a reader and `--authors` (50) authors, each publishes
//! `--articles-per-author` (20) articles, the reader follows them all (one by one: the follows
//! append to the reader's own stream); waits until the reader's feed counts every article;
//! then times `--reads` (300) sequential
//! `GET /api/articles/feed` (first page of 20) and `?offset=500`, and meters one of each.
//!
//! **Part 3, a publish through the API** (`--part publish`), on a local stack of its own with
//! the default write wait: registers a star author and a solo author (no followers) through the
//! API; appends `--followers` (10,000) followers to the store, each stream a `UserRegistered`
//! and a `UserFollowed` of the star in one commit, and lets the whole pipeline project them;
//! then the solo author and the star each publish `--publishes` (5) articles through the API,
//! one after another. For every publish it records the answer's latency, `conduit-consistency`
//! and `Server-Timing` wait, and, for the star's, how long after the answer the feed projection
//! had applied it (every follower's feed written), then checks that every follower's feed holds
//! every one of the star's articles. The publish waits for the articles and search read models,
//! not for the fan-out into the feeds: it answers within the bound whatever the followers.
//!
//! Exits non-zero if any check fails. Build it in release:
//! `cargo run --release -p bench --bin feed-bench -- [--part fanout|reads|publish|all]`.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use aws_sdk_dynamodb::Client;
use bench::client::{own_stack, summary, tally_row, Api, ApiUser, SUMMARY_HEADER, TALLY_HEADER};
use bench::feed::APPEND_CONCURRENCY;
use bench::stats::ms;
use common::config::TableNames;
use events::user::UserEvent;
use events::views::feeds;
use events::{EventStore, Tables};
use futures::stream::{self, StreamExt, TryStreamExt};
use local_aws::meter::{DynamoMeter, Tally};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// Which parts to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Fanout,
    Reads,
    Publish,
    All,
}

/// What the feed costs, written (fan-out on write) and read; see the module docs.
#[derive(clap::Parser, Debug)]
#[command(name = "feed-bench")]
struct Args {
    /// The part to run.
    #[arg(long, value_enum, default_value = "all")]
    part: Part,
    /// Only the fan-out part (the same as `--part fanout`).
    #[arg(long)]
    skip_reads: bool,
    /// Followers of the author (fan-out and publish parts).
    #[arg(long, default_value_t = 10_000)]
    followers: usize,
    /// Follow events applied at once (fan-out part).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Also fan out with this budget, in milliseconds, to show the pause/resume path.
    #[arg(long)]
    budget_ms: Option<u64>,
    /// Authors the reader follows (reads part).
    #[arg(long, default_value_t = 50)]
    authors: usize,
    /// Articles of each author (reads part).
    #[arg(long, default_value_t = 20)]
    articles_per_author: usize,
    /// Timed reads of each page (reads part).
    #[arg(long, default_value_t = 300)]
    reads: usize,
    /// Publishes of each author (publish part).
    #[arg(long, default_value_t = 5)]
    publishes: usize,
}

/// The arguments, every count at least 1.
fn args() -> anyhow::Result<Args> {
    let mut args = <Args as clap::Parser>::parse();
    if args.skip_reads {
        args.part = Part::Fanout;
    }
    ensure!(
        [
            args.followers,
            args.concurrency,
            args.authors,
            args.articles_per_author,
            args.reads,
            args.publishes
        ]
        .iter()
        .all(|&n| n >= 1),
        "every count must be at least 1 (see --help)"
    );
    Ok(args)
}

/// Requests the HTTP loader of part 2 keeps in flight.
const LOAD_CONCURRENCY: usize = 8;

/// Part 1 is the benchmark's feed section ([`bench::feed`]), alone, without baselines.
async fn fanout_part(args: &Args) -> anyhow::Result<()> {
    let prefix = local_aws::testkit::unique_prefix("feedbench");
    let (clients, _provisioned) = local_aws::testkit::provisioned(&prefix).await;
    let section = bench::feed::fan_out(
        &clients.dynamodb,
        &prefix,
        args.followers,
        args.concurrency,
        args.budget_ms,
        &bench::report::Baselines::default(),
    )
    .await?;
    println!("\n{}", bench::markdown::feed_section(&section));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Part 2: feed reads through the API.
// ---------------------------------------------------------------------------------------

/// Registers the reader and the authors, publishes the articles, and makes the reader follow
/// every author, through the API.
async fn load(
    api: &Api,
    sqs: &aws_sdk_sqs::Client,
    queues: &[(String, String)],
    args: &Args,
    run: &str,
) -> anyhow::Result<(ApiUser, Vec<ApiUser>, String)> {
    let started = Instant::now();
    let reader = api.register(&format!("f{run}reader")).await?;
    let authors: Vec<ApiUser> = stream::iter(0..args.authors)
        .map(|i| async move { api.register(&format!("f{run}a{i}")).await })
        .buffered(LOAD_CONCURRENCY)
        .try_collect()
        .await?;
    let registered = format!(
        "{} users registered in {:.1} s ({LOAD_CONCURRENCY} at once)",
        authors.len() + 1,
        started.elapsed().as_secs_f64()
    );
    eprintln!("feed-bench: {registered}");

    let started = Instant::now();
    let k = args.articles_per_author;
    let total = authors.len() * k;
    stream::iter(0..total)
        .map(|i| {
            let author = &authors[i % authors.len()];
            let body = json!({"article": {
                "title": format!("Feed bench article {i} of run {run}"),
                "description": format!("What article {i} is about"),
                "body": "Lorem ipsum dolor sit amet. ".repeat(40),
                "tagList": [format!("tag{}", i % 10)],
            }});
            async move {
                api.ok(
                    Method::POST,
                    "/articles",
                    Some(&author.token),
                    Some(body),
                    201,
                )
                .await
            }
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let published = format!(
        "{total} articles published in {:.1} s ({LOAD_CONCURRENCY} at once)",
        started.elapsed().as_secs_f64()
    );
    eprintln!("feed-bench: {published}");
    // Before the follows, so that the time to a complete feed below is the follows' alone
    // (their backfills), not the publishes' queueing through the stream and the topic.
    let all = ("/articles?limit=1", None);
    let projected = settle(api, sqs, queues, all, total, Duration::from_millis(200)).await?;
    let projected = format!(
        "every projector idle {:.1} s after the last publish",
        projected.idle.as_secs_f64()
    );
    eprintln!("feed-bench: {projected}");

    // One at a time: every follow appends to the reader's own stream, so concurrent follows
    // would only lose the optimistic lock to each other (409 after the command's retries).
    let started = Instant::now();
    for author in &authors {
        let path = format!("/profiles/{}/follow", author.username);
        api.ok(Method::POST, &path, Some(&reader.token), None, 200)
            .await?;
    }
    let followed = format!(
        "{} follows in {:.1} s (one by one)",
        authors.len(),
        started.elapsed().as_secs_f64()
    );
    eprintln!("feed-bench: {followed}");
    Ok((
        reader,
        authors,
        format!("{registered}; {published}, {projected}; {followed}"),
    ))
}

/// How long after the load the feed counted every article, and how long until every
/// projector was idle too.
struct Settled {
    counted: Duration,
    idle: Duration,
}

/// Polls `GET /api{path}` (every `every`, printing progress every 5 s) until its
/// `articlesCount` is `expected`, then waits until the projector queues are empty (twice, half
/// a second apart), so that the timings do not share the machine with the load's projection.
/// Fails after 300 s.
async fn settle(
    api: &Api,
    sqs: &aws_sdk_sqs::Client,
    queues: &[(String, String)],
    (path, token): (&str, Option<&str>),
    expected: usize,
    every: Duration,
) -> anyhow::Result<Settled> {
    let started = Instant::now();
    let urls: Vec<String> = queues.iter().map(|(_, url)| url.clone()).collect();
    let mut reported = Duration::ZERO;
    let within = Duration::from_secs(300);
    let counted = loop {
        let (status, body) = api.call(Method::GET, path, token, None).await?;
        ensure!(
            status != reqwest::StatusCode::NOT_FOUND,
            "GET /api{path} answers 404: the endpoint is not there"
        );
        if status.is_success() && body["articlesCount"].as_u64() == Some(expected as u64) {
            break started.elapsed();
        }
        if started.elapsed() >= reported {
            eprintln!(
                "feed-bench: {:>5.1} s: {path} counts {}; backlogs {}",
                started.elapsed().as_secs_f64(),
                body["articlesCount"],
                backlogs(sqs, queues).await?
            );
            reported += Duration::from_secs(5);
        }
        ensure!(
            started.elapsed() < within,
            "GET /api{path} did not count {expected} articles within {within:?}: {status} {body}"
        );
        tokio::time::sleep(every).await;
    };
    idle(sqs, &urls, started, within).await?;
    Ok(Settled {
        counted,
        idle: started.elapsed(),
    })
}

/// Waits until no projector queue holds a message, twice half a second apart (failing once
/// `within` has passed since `started`).
async fn idle(
    sqs: &aws_sdk_sqs::Client,
    urls: &[String],
    started: Instant,
    within: Duration,
) -> anyhow::Result<()> {
    let mut idle_checks = 0;
    while idle_checks < 2 {
        idle_checks = if local_stack::largest_backlog(sqs, urls).await? == 0 {
            idle_checks + 1
        } else {
            0
        };
        ensure!(
            started.elapsed() < within,
            "the projectors were not idle within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// `name=n` per queue: the messages waiting or in flight.
async fn backlogs(
    sqs: &aws_sdk_sqs::Client,
    queues: &[(String, String)],
) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    for (name, url) in queues {
        let n = local_stack::largest_backlog(sqs, std::slice::from_ref(url)).await?;
        parts.push(format!("{name}={n}"));
    }
    Ok(parts.join(" "))
}

/// What reading a whole feed costs, as `GET /api/articles/feed` does to count it: the
/// reader's id (from the `users` read model), then one metered Query of every entry with the
/// same projection (eventually consistent, like the API's).
async fn whole_feed_cost(
    client: &Client,
    tables: &TableNames,
    username: &str,
) -> anyhow::Result<(usize, Tally)> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let user_id = user_id_of(client, tables, username).await?;
    let meter = DynamoMeter::new();
    let metered = meter.attach(client);
    let mut entries = 0;
    let mut pages = metered
        .query()
        .table_name(&tables.feeds)
        .key_condition_expression("#u = :u")
        .projection_expression("#u, #k, #a, #i")
        .expression_attribute_names("#u", feeds::USER_ID)
        .expression_attribute_names("#k", feeds::FEED_KEY)
        .expression_attribute_names("#a", feeds::AUTHOR_ID)
        .expression_attribute_names("#i", feeds::ARTICLE_ID)
        .expression_attribute_values(":u", AttributeValue::S(user_id))
        .scan_index_forward(false)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        entries += page.context("querying the feed")?.items().len();
    }
    Ok((entries, meter.take()))
}

/// The id of the user `username`, from the `users` read model.
async fn user_id_of(
    client: &Client,
    tables: &TableNames,
    username: &str,
) -> anyhow::Result<String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    use events::views::users;
    let found = client
        .query()
        .table_name(&tables.users)
        .index_name(users::BY_USERNAME)
        .key_condition_expression("#n = :n")
        .expression_attribute_names("#n", users::USERNAME)
        .expression_attribute_values(":n", AttributeValue::S(username.to_owned()))
        .send()
        .await
        .with_context(|| format!("finding {username}"))?;
    found
        .items()
        .first()
        .and_then(|item| events::views::text(item, users::USER_ID))
        .with_context(|| format!("{username} is not in the users table"))
}

/// Checks one feed page: `expected` articles, newest first, all by followed authors.
fn check_page(page: &Value, expected: usize, total: usize) -> anyhow::Result<()> {
    let articles = page["articles"].as_array().context("no articles")?;
    ensure!(
        articles.len() == expected && page["articlesCount"].as_u64() == Some(total as u64),
        "a page of {} articles (count {}) instead of {expected} (count {total})",
        articles.len(),
        page["articlesCount"]
    );
    ensure!(
        articles
            .iter()
            .all(|a| a["author"]["following"] == Value::Bool(true)),
        "an article of the feed is not by a followed author"
    );
    let created: Vec<&str> = articles
        .iter()
        .filter_map(|a| a["createdAt"].as_str())
        .collect();
    ensure!(
        created.len() == articles.len() && created.windows(2).all(|w| w[0] >= w[1]),
        "the feed page is not newest first: {created:?}"
    );
    Ok(())
}

async fn timed(api: &Api, reads: usize, token: &str, path: &str) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(reads);
    for _ in 0..reads {
        let started = Instant::now();
        api.ok(Method::GET, path, Some(token), None, 200).await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

async fn reads_part(args: &Args) -> anyhow::Result<()> {
    let meter = DynamoMeter::new();
    let stack = own_stack(Duration::from_millis(20), Some(meter.clone())).await?;
    let api = Api::new(stack.api_url());
    let queues: Vec<(String, String)> = stack
        .provisioned
        .queues
        .iter()
        .map(|q| (q.name.clone(), q.url.clone()))
        .collect();
    let sqs = stack.clients.sqs.clone();
    let result = async {
        let run = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let (reader, _authors, load_line) = load(&api, &sqs, &queues, args, &run).await?;
        let total = args.authors * args.articles_per_author;
        let feed = ("/articles/feed?limit=1", Some(reader.token.as_str()));
        let every = Duration::from_millis(100);
        let settled = settle(&api, &sqs, &queues, feed, total, every).await?;
        eprintln!(
            "feed-bench: the feed counted all {total} articles {:.1} s after the load, every projector idle after {:.1} s",
            settled.counted.as_secs_f64(),
            settled.idle.as_secs_f64()
        );

        let deep = 500.min(total.saturating_sub(1));
        let paths = [
            ("GET /api/articles/feed (page of 20)".to_owned(), "/articles/feed".to_owned(), 20.min(total)),
            (
                format!("GET /api/articles/feed?offset={deep}"),
                format!("/articles/feed?offset={deep}"),
                20.min(total - deep),
            ),
        ];
        let mut costs = Vec::new();
        for (name, path, expected) in &paths {
            meter.take();
            let page = api
                .ok(Method::GET, path, Some(&reader.token), None, 200)
                .await?;
            costs.push(tally_row(name, &meter.take()));
            check_page(&page, *expected, total).with_context(|| path.clone())?;
        }
        let (entries, whole) =
            whole_feed_cost(&stack.clients.dynamodb, &stack.tables, &reader.username).await?;
        costs.push(tally_row(
            &format!("of which: Query of the whole feed ({entries} entries, bench-side)"),
            &whole,
        ));
        let mut latencies = Vec::new();
        for (name, path, _) in &paths {
            let samples = timed(&api, args.reads, &reader.token, path).await?;
            latencies.push(summary(name, samples));
        }

        println!(
            "\n## Feed reads: a reader following {} authors of {} articles each ({total} entries)\n",
            args.authors, args.articles_per_author
        );
        println!("Load through the API: {load_line}.\n");
        println!(
            "After the last follow's response, the feed counted all {total} articles after {:.1} s; every projector queue was empty after {:.1} s.\n",
            settled.counted.as_secs_f64(),
            settled.idle.as_secs_f64()
        );
        println!("DynamoDB requests and capacity of one call (the API's requests only):\n");
        println!("{TALLY_HEADER}");
        for row in costs {
            println!("{row}");
        }
        println!("\nLatency, sequential, with the reader's token:\n");
        println!("{SUMMARY_HEADER}");
        for row in latencies {
            println!("{row}");
        }
        anyhow::Ok(())
    }
    .await;
    stack.stop().await;
    result
}

// ---------------------------------------------------------------------------------------
// Part 3: a publish by an author with many followers, through the API.
// ---------------------------------------------------------------------------------------

/// One publish through the API: how long its answer took and what it said.
struct Published {
    latency: Duration,
    answered: Instant,
    consistency: String,
    waited: Option<Duration>,
    position: common::projections::Position,
    article_id: Option<String>,
}

/// Publishes an article as `author` and reads what the answer says of the read models.
async fn publish(api: &Api, author: &ApiUser, title: String) -> anyhow::Result<Published> {
    let body = json!({"article": {
        "title": title,
        "description": "Published to many followers",
        "body": "Lorem ipsum dolor sit amet. ".repeat(20),
        "tagList": ["fan-out"],
    }});
    let started = Instant::now();
    let response = api
        .http
        .post(format!("{}/articles", api.base))
        .header("authorization", format!("Token {}", author.token))
        .json(&body)
        .send()
        .await
        .context("POST /articles")?;
    let status = response.status();
    let headers = response.headers().clone();
    let reply: Value = response.json().await.context("POST /articles: no JSON")?;
    let latency = started.elapsed();
    ensure!(status.as_u16() == 201, "POST /articles: {status} {reply}");
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let position = header(common::projections::POSITION_HEADER)
        .context("the publish has no conduit-position")?
        .parse()
        .map_err(|e: String| anyhow::anyhow!("conduit-position: {e}"))?;
    let consistency = match header(common::projections::BEHIND_HEADER) {
        Some(behind) => format!("behind: {behind}"),
        None => header(common::projections::CONSISTENCY_HEADER)
            .unwrap_or("(none)")
            .to_owned(),
    };
    let waited = header("server-timing").and_then(command_api::write_wait::waited);
    Ok(Published {
        latency,
        answered: Instant::now(),
        consistency,
        waited,
        article_id: None,
        position,
    })
}

/// The followers of `author` the feed projection knows, counted with a consistent `Query`.
async fn followers_known(
    client: &Client,
    tables: &TableNames,
    author: &str,
) -> anyhow::Result<usize> {
    use aws_sdk_dynamodb::types::{AttributeValue, Select};
    use events::views::feed_followers;
    let mut known = 0;
    let mut pages = client
        .query()
        .table_name(&tables.feed_followers)
        .key_condition_expression("#a = :a")
        .expression_attribute_names("#a", feed_followers::AUTHOR_ID)
        .expression_attribute_values(":a", AttributeValue::S(author.to_owned()))
        .select(Select::Count)
        .consistent_read(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        known += page.context("counting the followers")?.count() as usize;
    }
    Ok(known)
}

/// `consistency` values with how often each was answered: `current ×5`.
fn said(published: &[Published]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for p in published {
        *counts.entry(p.consistency.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(what, n)| format!("{what} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn publish_part(args: &Args) -> anyhow::Result<()> {
    let stack = own_stack(Duration::from_millis(20), None).await?;
    let api = Api::new(stack.api_url());
    let result = publish_to_followers(&stack, &api, args).await;
    stack.stop().await;
    result
}

async fn publish_to_followers(
    stack: &local_stack::RunningStack,
    api: &Api,
    args: &Args,
) -> anyhow::Result<()> {
    let client = &stack.clients.dynamodb;
    let tables = &stack.tables;
    let store = EventStore::new(client.clone(), Tables::with_prefix(&tables.prefix));
    let bound = command_api::write_wait::write_wait_from_env()?;
    let n = args.followers;
    let run = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let star = api.register(&format!("p{run}star")).await?;
    let solo = api.register(&format!("p{run}solo")).await?;
    let star_id = user_id_of(client, tables, &star.username).await?;

    // The followers: registered and following the star in one commit each, projected by the
    // pipeline as any other events.
    let started = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let follower = Uuid::new_v4().to_string();
            let username = format!("p{run}f{i}");
            let events = [
                UserEvent::UserRegistered {
                    user_id: follower.clone(),
                    email: format!("{username}@bench.example"),
                    username,
                    password_hash: "not a hash: this follower never logs in".to_owned(),
                },
                UserEvent::UserFollowed {
                    followee_id: star_id.clone(),
                },
            ];
            let store = &store;
            async move {
                bench::feed::append_all(store, events::user::AGGREGATE_TYPE, &follower, 0, &events)
                    .await
            }
        })
        .buffer_unordered(APPEND_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let appended = started.elapsed();
    eprintln!(
        "feed-bench: {n} followers appended in {:.1} s; the pipeline projects them",
        appended.as_secs_f64()
    );
    let within = Duration::from_secs(3_600);
    let mut reported = Duration::ZERO;
    loop {
        let known = followers_known(client, tables, &star_id).await?;
        if known == n {
            break;
        }
        let elapsed = started.elapsed();
        ensure!(
            elapsed < within,
            "the feed projection knew {known} of {n} followers after {within:?}"
        );
        if elapsed >= reported {
            eprintln!(
                "feed-bench: {:>6.1} s: the feed projection knows {known} of {n} followers",
                elapsed.as_secs_f64()
            );
            reported = elapsed + Duration::from_secs(15);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let urls: Vec<String> = stack
        .provisioned
        .queues
        .iter()
        .map(|q| q.url.clone())
        .collect();
    idle(&stack.clients.sqs, &urls, started, within).await?;
    let projected = started.elapsed();
    eprintln!(
        "feed-bench: {n} followers projected, every queue idle, {:.1} s after the first append",
        projected.as_secs_f64()
    );

    let mut rows = Vec::new();
    let mut published_by_star = Vec::new();
    for (author, followers) in [(&solo, 0), (&star, n)] {
        let mut published = Vec::with_capacity(args.publishes);
        for i in 0..args.publishes {
            let title = format!("Fan-out {i} of {} in run {run}", author.username);
            let mut answer = publish(api, author, title).await?;
            answer.article_id = Some(answer.position.aggregate_id.clone());
            eprintln!(
                "feed-bench: {} ({followers} followers) published in {:.1} ms: {}",
                author.username,
                answer.latency.as_secs_f64() * 1000.0,
                answer.consistency
            );
            published.push(answer);
        }
        let latencies = published.iter().map(|p| p.latency).collect();
        let waits: Vec<Duration> = published.iter().filter_map(|p| p.waited).collect();
        let within_bound = published.iter().filter(|p| p.latency <= bound).count();
        let latency = summary(&format!("{followers} followers"), latencies);
        rows.push(format!(
            "{} | {} | {}/{} | {:.1} | {:.1}",
            latency.strip_suffix(" |").unwrap_or(&latency),
            said(&published),
            within_bound,
            published.len(),
            ms(percentile_of(&waits, 0.5)),
            ms(waits.iter().max().copied().unwrap_or_default()),
        ));
        if followers > 0 {
            published_by_star = published;
        }
    }

    // How long after each answer every follower's feed held the article.
    let applied = common::applied::Applied::new(
        client.clone(),
        common::projections::ActiveVersions::new(
            client.clone(),
            tables.clone(),
            Duration::from_secs(5),
        ),
    );
    let fan_out_limit = Duration::from_secs(600);
    let mut fanned_out = Vec::new();
    for answer in &published_by_star {
        let behind = applied
            .wait(
                std::slice::from_ref(&answer.position),
                &[common::projections::Projection::Feed],
                fan_out_limit,
            )
            .await
            .map_err(|e| anyhow::anyhow!("reading the feed checkpoint: {e}"))?;
        ensure!(
            behind.is_empty(),
            "the feed projection had not applied {} within {fan_out_limit:?}",
            answer.position
        );
        fanned_out.push(answer.answered.elapsed());
    }
    let entries = bench::feed::feed_entries(client, tables).await?;
    for answer in &published_by_star {
        let article = answer.article_id.as_deref().unwrap_or_default();
        let holders = entries
            .values()
            .filter(|articles| articles.iter().any(|a| a == article))
            .count();
        ensure!(
            holders == n,
            "{holders} of {n} followers' feeds hold {article}"
        );
    }
    eprintln!("feed-bench: checked: every follower's feed holds every article of the star");

    println!(
        "\n## A publish through the API by an author with {n} followers (local stack, write wait {} ms)\n",
        bound.as_millis()
    );
    println!(
        "{n} followers appended in {:.1} s ({APPEND_CONCURRENCY} commits at once) and projected by the pipeline, every queue idle {:.1} s after the first append.\n",
        appended.as_secs_f64(),
        projected.as_secs_f64()
    );
    println!("| author | n | p50 ms | p90 ms | p99 ms | max ms | conduit-consistency | within the bound | wait p50 ms | wait max ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row} |");
    }
    let mut sorted = fanned_out.clone();
    sorted.sort();
    println!(
        "\nThe publishes of the author with {n} followers were in every follower's feed {:.2} s (p50) and {:.2} s (max) after their answers; every follower's feed was checked to hold all {} of them.",
        percentile_of(&sorted, 0.5).as_secs_f64(),
        sorted.last().copied().unwrap_or_default().as_secs_f64(),
        published_by_star.len()
    );
    Ok(())
}

/// The `p`-quantile of unsorted samples.
fn percentile_of(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    bench::stats::percentile(&sorted, p)
}

fn main() -> anyhow::Result<()> {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let args = args()?;
    if cfg!(debug_assertions) {
        eprintln!("feed-bench: this is a debug build; figures are only meaningful with --release");
    }
    eprintln!("feed-bench: starting in-memory emulators");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if matches!(args.part, Part::Fanout | Part::All) {
            fanout_part(&args).await?;
        }
        if matches!(args.part, Part::Reads | Part::All) {
            reads_part(&args).await?;
        }
        if matches!(args.part, Part::Publish | Part::All) {
            publish_part(&args).await?;
        }
        anyhow::Ok(())
    })?;
    Ok(())
}
