//! `articles-bench`: what each endpoint costs in DynamoDB requests and capacity, and how fast
//! the article reads are with a realistic store behind them.
//!
//! Starts in-memory emulators and a local stack whose API clients carry a
//! [`common::meter::DynamoMeter`], loads users, follows, articles (1,000 by default),
//! favorites and comments through the API, waits until the read models show them, then:
//! 1. calls every endpoint once and prints the DynamoDB requests it sent and the capacity
//!    units they consumed (from `ReturnConsumedCapacity`; the API's requests only, not the
//!    projectors' that follow a write);
//! 2. times `--reads` sequential calls of `GET /api/articles` (a page of 20, with a token, so
//!    every flag is looked up), of a tag-filtered page, of `GET /api/articles/{slug}` (random
//!    slugs) and of `GET /api/tags`, and prints p50/p90/p99/max;
//! 3. publishes up to 100 articles one by one and measures, after each response, how long
//!    until the article shows through the articles table and through the search read model.
//!
//! Build it in release: `cargo run --release -p local-stack --bin articles-bench`.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use common::meter::{DynamoMeter, Tally};
use futures::stream::{self, StreamExt, TryStreamExt};
use local_stack::bench::{own_stack, summary, Api as Client, ApiUser as User, SUMMARY_HEADER};
use rand::seq::IndexedRandom;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Args {
    articles: usize,
    users: usize,
    reads: usize,
}

const USAGE: &str = "articles-bench [--articles N (1000)] [--users N (50)] [--reads N (300)]";

fn args() -> anyhow::Result<Args> {
    let mut parsed = Args {
        articles: 1000,
        users: 50,
        reads: 300,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> anyhow::Result<usize> {
            it.next()
                .with_context(|| format!("{name} needs a number"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--articles" => parsed.articles = number("--articles")?,
            "--users" => parsed.users = number("--users")?,
            "--reads" => parsed.reads = number("--reads")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    ensure!(
        parsed.users >= 2 && parsed.articles >= 1 && parsed.reads >= 1,
        "need at least 2 users, 1 article and 1 read\n{USAGE}"
    );
    Ok(parsed)
}

/// How many requests the loader keeps in flight.
const LOAD_CONCURRENCY: usize = 8;
/// Tags are drawn from this many.
const TAG_POOL: usize = 30;

/// Users, follows, articles, favorites and comments, through the API. Returns the users and
/// the slugs.
async fn load(client: &Client, args: &Args, run: &str) -> anyhow::Result<(Vec<User>, Vec<String>)> {
    let started = Instant::now();
    let users: Vec<User> = stream::iter(0..args.users)
        .map(|i| async move { client.register(&format!("b{run}u{i}")).await })
        .buffered(LOAD_CONCURRENCY)
        .try_collect()
        .await?;
    eprintln!(
        "articles-bench: {} users registered in {:.1} s",
        users.len(),
        started.elapsed().as_secs_f64()
    );

    let n = users.len();
    let follows: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (1..=5).map(move |d| (i, (i + d) % n)))
        .filter(|(a, b)| a != b)
        .collect();
    stream::iter(follows)
        .map(|(a, b)| {
            let path = format!("/profiles/{}/follow", users[b].username);
            let token = users[a].token.clone();
            async move {
                client
                    .ok(Method::POST, &path, Some(&token), None, 200)
                    .await
            }
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;

    let started = Instant::now();
    let slugs: Vec<String> = stream::iter(0..args.articles)
        .map(|i| {
            let author = users[i % users.len()].clone();
            let tags = vec![
                format!("tag{}", i % TAG_POOL),
                format!("tag{}", (i * 7 + 3) % TAG_POOL),
            ];
            let body = json!({"article": {
                "title": format!("Bench article {i} of run {run}"),
                "description": format!("What article {i} is about"),
                "body": "Lorem ipsum dolor sit amet. ".repeat(40),
                "tagList": tags,
            }});
            async move {
                let reply = client
                    .ok(
                        Method::POST,
                        "/articles",
                        Some(&author.token),
                        Some(body),
                        201,
                    )
                    .await?;
                reply["article"]["slug"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no slug")
            }
        })
        .buffered(LOAD_CONCURRENCY)
        .try_collect()
        .await?;
    eprintln!(
        "articles-bench: {} articles published in {:.1} s",
        slugs.len(),
        started.elapsed().as_secs_f64()
    );

    let mut rng = rand::rng();
    let mut favorites = Vec::new();
    let mut comments = Vec::new();
    for user in &users {
        for slug in slugs.choose_multiple(&mut rng, 20.min(slugs.len())) {
            favorites.push((user.token.clone(), slug.clone()));
        }
        for slug in slugs.choose_multiple(&mut rng, 6.min(slugs.len())) {
            comments.push((user.token.clone(), slug.clone()));
        }
    }
    let started = Instant::now();
    let favorite_count = favorites.len();
    stream::iter(favorites)
        .map(|(token, slug)| async move {
            client
                .ok(
                    Method::POST,
                    &format!("/articles/{slug}/favorite"),
                    Some(&token),
                    None,
                    200,
                )
                .await
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let comment_count = comments.len();
    stream::iter(comments)
        .map(|(token, slug)| async move {
            client
                .ok(
                    Method::POST,
                    &format!("/articles/{slug}/comments"),
                    Some(&token),
                    Some(json!({"comment": {"body": "A fair point, well made."}})),
                    200,
                )
                .await
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    eprintln!(
        "articles-bench: {favorite_count} favorites and {comment_count} comments in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok((users, slugs))
}

/// The projector queues of the stack, to see when the projectors are idle.
struct Queues {
    sqs: aws_sdk_sqs::Client,
    urls: Vec<String>,
}

impl Queues {
    /// Whether no projector queue holds a message, waiting or in flight.
    async fn empty(&self) -> anyhow::Result<bool> {
        Ok(local_stack::largest_backlog(&self.sqs, &self.urls).await? == 0)
    }
}

/// Waits until the search read model counts every article, the last user's favorites show,
/// and the projectors are idle (their queues empty twice, half a second apart), so that the
/// timings below do not share the machine with the load's projection.
async fn settle(
    client: &Client,
    queues: &Queues,
    users: &[User],
    articles: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let last = users.last().context("no users")?;
    let mut idle_checks = 0;
    loop {
        let (_, all) = client
            .call(Method::GET, "/articles?limit=1", None, None)
            .await?;
        let (_, favored) = client
            .call(
                Method::GET,
                &format!("/articles?favorited={}&limit=1", last.username),
                None,
                None,
            )
            .await?;
        let counted = all["articlesCount"].as_u64() == Some(articles as u64)
            && favored["articlesCount"].as_u64() == Some(20.min(articles) as u64);
        idle_checks = if counted && queues.empty().await? {
            idle_checks + 1
        } else {
            0
        };
        if idle_checks == 2 {
            eprintln!(
                "articles-bench: read models caught up {:.1} s after the load",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the read models did not catch up within 300 s: {all}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn cost_row(name: &str, tally: &Tally) -> String {
    format!(
        "| {name} | {} | {} | {:.1} | {:.1} |",
        tally.total_requests(),
        if tally.requests.is_empty() {
            "-".to_owned()
        } else {
            tally.operations()
        },
        tally.read_units,
        tally.write_units
    )
}

/// Every endpoint once, each with the DynamoDB requests and capacity of that one call.
async fn costs(
    client: &Client,
    meter: &DynamoMeter,
    users: &[User],
    slugs: &[String],
    run: &str,
) -> anyhow::Result<Vec<String>> {
    let me = &users[0];
    let other = &users[1];
    let slug = &slugs[slugs.len() / 2];
    let mut rows = Vec::new();
    meter.take();
    let mut measure = |name: &str| rows.push(cost_row(name, &meter.take()));

    let newcomer = client.register(&format!("b{run}new")).await?;
    measure("POST /api/users");
    let login = json!({"user": {"email": format!("b{run}new@bench.example"), "password": format!("pw-b{run}new-secret")}});
    client
        .ok(Method::POST, "/users/login", None, Some(login), 200)
        .await?;
    measure("POST /api/users/login");
    client
        .ok(Method::GET, "/user", Some(&me.token), None, 200)
        .await?;
    measure("GET /api/user");
    client
        .ok(
            Method::PUT,
            "/user",
            Some(&newcomer.token),
            Some(json!({"user": {"bio": "Measured."}})),
            200,
        )
        .await?;
    measure("PUT /api/user");
    let profile = format!("/profiles/{}", other.username);
    client
        .ok(Method::GET, &profile, Some(&me.token), None, 200)
        .await?;
    measure("GET /api/profiles/{username}");
    let follow = format!("{profile}/follow");
    client
        .ok(Method::POST, &follow, Some(&newcomer.token), None, 200)
        .await?;
    measure("POST /api/profiles/{username}/follow");
    client
        .ok(Method::DELETE, &follow, Some(&newcomer.token), None, 200)
        .await?;
    measure("DELETE /api/profiles/{username}/follow");

    let created = client
        .ok(
            Method::POST,
            "/articles",
            Some(&newcomer.token),
            Some(json!({"article": {"title": format!("Measured {run}"), "description": "d", "body": "b", "tagList": ["measured"]}})),
            201,
        )
        .await?;
    measure("POST /api/articles");
    let own = created["article"]["slug"]
        .as_str()
        .context("no slug")?
        .to_owned();
    client
        .ok(
            Method::GET,
            &format!("/articles/{slug}"),
            Some(&me.token),
            None,
            200,
        )
        .await?;
    measure("GET /api/articles/{slug}");
    client
        .ok(
            Method::PUT,
            &format!("/articles/{own}"),
            Some(&newcomer.token),
            Some(json!({"article": {"body": "Edited."}})),
            200,
        )
        .await?;
    measure("PUT /api/articles/{slug} (same title)");
    for (name, query) in [
        ("GET /api/articles (page of 20)", "/articles".to_owned()),
        ("GET /api/articles?tag=", "/articles?tag=tag3".to_owned()),
        (
            "GET /api/articles?author=",
            format!("/articles?author={}", other.username),
        ),
        (
            "GET /api/articles?favorited=",
            format!("/articles?favorited={}", other.username),
        ),
    ] {
        client
            .ok(Method::GET, &query, Some(&me.token), None, 200)
            .await?;
        measure(name);
    }
    let favorite = format!("/articles/{slug}/favorite");
    client
        .ok(Method::POST, &favorite, Some(&newcomer.token), None, 200)
        .await?;
    measure("POST /api/articles/{slug}/favorite");
    client
        .ok(Method::DELETE, &favorite, Some(&newcomer.token), None, 200)
        .await?;
    measure("DELETE /api/articles/{slug}/favorite");
    let comments = format!("/articles/{slug}/comments");
    let comment = client
        .ok(
            Method::POST,
            &comments,
            Some(&newcomer.token),
            Some(json!({"comment": {"body": "Measured."}})),
            200,
        )
        .await?;
    measure("POST /api/articles/{slug}/comments");
    client
        .ok(Method::GET, &comments, Some(&me.token), None, 200)
        .await?;
    measure("GET /api/articles/{slug}/comments");
    let id = comment["comment"]["id"].as_u64().context("no comment id")?;
    client
        .ok(
            Method::DELETE,
            &format!("{comments}/{id}"),
            Some(&newcomer.token),
            None,
            204,
        )
        .await?;
    measure("DELETE /api/articles/{slug}/comments/{id}");
    client
        .ok(
            Method::DELETE,
            &format!("/articles/{own}"),
            Some(&newcomer.token),
            None,
            204,
        )
        .await?;
    measure("DELETE /api/articles/{slug}");
    client.ok(Method::GET, "/tags", None, None, 200).await?;
    measure("GET /api/tags");
    Ok(rows)
}

async fn timed(
    client: &Client,
    reads: usize,
    token: &str,
    mut path: impl FnMut() -> String,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(reads);
    for _ in 0..reads {
        let path = path();
        let started = Instant::now();
        client
            .ok(Method::GET, &path, Some(token), None, 200)
            .await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// Polls `path` until `ready` holds for its answer; the time that took.
async fn visible_after(
    client: &Client,
    path: &str,
    ready: impl Fn(&Value) -> bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let (status, body) = client.call(Method::GET, path, None, None).await?;
        if status == StatusCode::OK && ready(&body) {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "{path} not visible after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Publishes `count` articles one by one; after each response, how long until the article
/// shows in `GET /api/articles/{slug}` (the articles table) and in a list filtered by its own
/// tag (the search read model).
async fn lag(
    client: &Client,
    user: &User,
    count: usize,
    run: &str,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, Vec<Duration>)> {
    let (mut writes, mut single, mut listed) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..count {
        let tag = format!("lag{run}n{i}");
        let body = json!({"article": {"title": format!("Lag {i} of {run}"), "description": "d", "body": "b", "tagList": [tag]}});
        let started = Instant::now();
        let created = client
            .ok(
                Method::POST,
                "/articles",
                Some(&user.token),
                Some(body),
                201,
            )
            .await?;
        writes.push(started.elapsed());
        let slug = created["article"]["slug"].as_str().context("no slug")?;
        let (by_slug, by_tag) = (format!("/articles/{slug}"), format!("/articles?tag={tag}"));
        let (a, b) = tokio::join!(
            visible_after(client, &by_slug, |_| true),
            visible_after(client, &by_tag, |v| v["articlesCount"] == 1),
        );
        single.push(a?);
        listed.push(b?);
    }
    Ok((writes, single, listed))
}

async fn run(client: Client, queues: Queues, meter: DynamoMeter, args: Args) -> anyhow::Result<()> {
    let run = format!("{:06x}", rand::rng().random::<u32>() & 0xff_ffff);
    let (users, slugs) = load(&client, &args, &run).await?;
    settle(&client, &queues, &users, args.articles).await?;

    let rows = costs(&client, &meter, &users, &slugs, &run).await?;
    println!(
        "\n## DynamoDB requests and capacity per call ({} articles, {} users)\n",
        args.articles, args.users
    );
    println!("| endpoint | requests | operations | read units | write units |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }

    let token = users[0].token.clone();
    let mut rng = rand::rng();
    let page = timed(&client, args.reads, &token, || "/articles".to_owned()).await?;
    let tagged = timed(&client, args.reads, &token, || {
        format!("/articles?tag=tag{}", rand::rng().random_range(0..TAG_POOL))
    })
    .await?;
    let single = timed(&client, args.reads, &token, || {
        format!(
            "/articles/{}",
            slugs.choose(&mut rng).map(String::as_str).unwrap_or("none")
        )
    })
    .await?;
    let tags = timed(&client, args.reads, &token, || "/tags".to_owned()).await?;
    println!(
        "\n## Latency, sequential, with a token ({} articles)\n",
        args.articles
    );
    println!("{SUMMARY_HEADER}");
    println!("{}", summary("GET /api/articles (page of 20)", page));
    println!("{}", summary("GET /api/articles?tag= (random tag)", tagged));
    println!("{}", summary("GET /api/articles/{slug} (random)", single));
    println!("{}", summary("GET /api/tags", tags));

    let (writes, single, listed) = lag(&client, &users[0], args.reads.min(100), &run).await?;
    println!("\n## Projection lag: from the response of `POST /api/articles` to visible\n");
    println!("{SUMMARY_HEADER}");
    println!("{}", summary("POST /api/articles response", writes));
    println!(
        "{}",
        summary("→ GET /api/articles/{slug} (articles table)", single)
    );
    println!(
        "{}",
        summary("→ GET /api/articles?tag= (search read model)", listed)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let args = args()?;
    if cfg!(debug_assertions) {
        eprintln!(
            "articles-bench: this is a debug build; figures are only meaningful with --release"
        );
    }
    eprintln!("articles-bench: starting in-memory emulators and a local stack");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let meter = DynamoMeter::new();
        let stack = own_stack(Duration::from_millis(20), Some(meter.clone())).await?;
        let client = Client::new(stack.api_url());
        let queues = Queues {
            sqs: stack.clients.sqs.clone(),
            urls: stack
                .provisioned
                .queues
                .iter()
                .map(|q| q.url.clone())
                .collect(),
        };
        let result = run(client, queues, meter, args).await;
        stack.stop().await;
        result
    })
}
