//! 2. The API on a loaded stack: p50/p95/p99 of every RealWorld endpoint, mixed throughput.
//!
//! Also runs the lag ([`crate::lag`]) and cost ([`crate::cost`]) sections on the same stack.
//!
//! The stack is the local one (gateway, fan-out and projector pollers) on the shared
//! emulators, under a fresh prefix, with meters on the whole pipeline (see
//! [`local_stack::PipelineMeter`]) that only the cost section reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::client::Api;
use anyhow::{ensure, Context};
use futures::stream::{self, StreamExt};
use local_aws::LocalEndpoints;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};

use crate::report::{ApiSection, Baselines, CostSection, EndpointRun, LagSection, MixedRun};
use crate::stack::{
    credentials, load, send, settle, settle_load, start, Answer, Call, Loaded, Stack,
    LOAD_CONCURRENCY, TAG_POOL,
};
use crate::stats::{per_second, Latency, VsBaseline};
use crate::Scale;

/// What the loaded stack measured.
pub struct StackResults {
    pub api: ApiSection,
    pub lag: LagSection,
    pub cost: CostSection,
    /// How the figures were taken and what they leave out (for the report's notes).
    pub notes: Vec<String>,
}

/// Starts a local stack on `endpoints`, loads `scale.users` users and `scale.articles`
/// articles through the API, and measures the API, the lag and the cost.
pub async fn measure_stack(
    endpoints: &LocalEndpoints,
    scale: &Scale,
    baselines: &Baselines,
) -> anyhow::Result<StackResults> {
    ensure!(
        scale.users >= 3 && scale.articles >= 1,
        "the API section needs at least 3 users and 1 article (got {} and {})",
        scale.users,
        scale.articles
    );
    ensure!(
        !scale.endpoint_concurrencies.contains(&0) && !scale.mixed_concurrencies.contains(&0),
        "concurrencies must be at least 1"
    );
    eprintln!("bench:   starting a local stack with metered pipeline");
    let prefix = local_aws::testkit::unique_prefix("benchapi");
    let stack = start(endpoints, &prefix).await?;
    let result = measure_on(&stack, scale, baselines).await;
    stack.stop().await;
    // DynamoDB Local keeps every table in one SQLite database: what this stack left behind
    // (tens of thousands of items and stream records) would slow the sections after it.
    let clients = local_aws::Clients::local(endpoints).await;
    crate::clean_up(&clients, &prefix)
        .await
        .context("deleting the stack's tables, topic and queues")?;
    result
}

async fn measure_on(
    stack: &Stack,
    scale: &Scale,
    baselines: &Baselines,
) -> anyhow::Result<StackResults> {
    let started = Instant::now();
    let loaded = load(stack, scale).await.context("loading the store")?;
    settle_load(stack, &loaded, scale).await?;
    let load_seconds = started.elapsed().as_secs_f64();
    eprintln!("bench:   store loaded and projected in {load_seconds:.1} s");

    let endpoints = measure_endpoints(stack, &loaded, scale, baselines).await?;
    let mixed = measure_mixed(stack, &loaded, scale, baselines).await?;
    let api = ApiSection {
        users: scale.users,
        articles: scale.articles,
        load_seconds,
        endpoints,
        mixed,
    };
    let (lag, lag_notes) = crate::lag::measure(stack, &loaded, scale, baselines)
        .await
        .context("measuring the projection lag")?;
    let (cost, cost_notes) = crate::cost::measure(stack, &loaded, scale)
        .await
        .context("measuring the cost per call")?;

    let mut notes = vec![format!(
        "API: {} users, {} articles, {} follows, {} favorites and {} comments loaded through \
         the API ({LOAD_CONCURRENCY} at a time) before measuring; latency is from sending a \
         request to its whole answer, on the local gateway (no API Gateway, no Lambda \
         start); each concurrency level starts on an idle pipeline; errors are answers \
         with another status than the endpoint's, left out of the latency.",
        scale.users, scale.articles, loaded.follows, loaded.favorites, loaded.comments
    )];
    notes.extend(lag_notes);
    notes.extend(cost_notes);
    Ok(StackResults {
        api,
        lag,
        cost,
        notes,
    })
}

// -------------------------------------------------------------------------------------------
// Every call measured

/// The raw operation an endpoint is set beside: `GetItem` for reads, `PutItem` for writes.
fn raw_op(endpoint: &str) -> &'static str {
    if endpoint.starts_with("GET ") {
        "GetItem"
    } else {
        "PutItem"
    }
}

/// `value` (a p50 in ms) beside the p50 of `op` at the concurrency nearest `concurrency`.
pub(crate) fn vs_p50(
    baselines: &Baselines,
    op: &str,
    concurrency: usize,
    value: f64,
) -> VsBaseline {
    match baselines.nearest(op, concurrency) {
        Some(raw) => VsBaseline::new(
            value,
            format!("DynamoDB {op} p50 (c={})", raw.concurrency),
            raw.latency.p50_ms,
        ),
        None => VsBaseline::new(value, format!("DynamoDB {op} p50 (not measured)"), 0.0),
    }
}

/// Runs `calls` (`None`: its input could not be prepared, an error) `concurrency` at a time
/// as `endpoint`; the run and every answer, in order.
async fn run_endpoint(
    client: &Api,
    baselines: &Baselines,
    endpoint: &str,
    concurrency: usize,
    calls: Vec<Option<Call>>,
) -> (EndpointRun, Vec<Option<Answer>>) {
    let started = Instant::now();
    let mut answers: Vec<(usize, Option<Answer>)> = stream::iter(calls.into_iter().enumerate())
        .map(|(i, call)| async move {
            match call {
                Some(call) => (i, Some(send(client, &call).await)),
                None => (i, None),
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = started.elapsed();
    answers.sort_by_key(|(i, _)| *i);
    let answers: Vec<Option<Answer>> = answers.into_iter().map(|(_, a)| a).collect();
    let samples: Vec<Duration> = answers
        .iter()
        .flatten()
        .filter(|a| a.error.is_none())
        .map(|a| a.elapsed)
        .collect();
    let errors = answers.len() - samples.len();
    if errors > 0 {
        let first = answers
            .iter()
            .find_map(|a| match a {
                None => Some("its input could not be prepared (an earlier call failed)".to_owned()),
                Some(a) => a.error.clone(),
            })
            .unwrap_or_default();
        eprintln!(
            "bench: ERROR {endpoint} c={concurrency}: {errors} of {} calls failed; first: {first}",
            answers.len()
        );
    }
    let latency = Latency::of(&samples);
    let run = EndpointRun {
        endpoint: endpoint.to_owned(),
        concurrency,
        per_second: per_second(samples.len(), wall),
        errors,
        vs: vs_p50(baselines, raw_op(endpoint), concurrency, latency.p50_ms),
        latency,
        samples,
    };
    eprintln!(
        "bench:   {endpoint} c={concurrency}: p50 {:.1} ms, p99 {:.1} ms, {:.0}/s ({} vs {})",
        run.latency.p50_ms,
        run.latency.p99_ms,
        run.per_second,
        run.vs.ratio_text(),
        run.vs.baseline
    );
    (run, answers)
}

/// The slug of an article answer.
fn slug_of(answer: &Option<Answer>) -> Option<String> {
    answer
        .as_ref()
        .filter(|a| a.error.is_none())
        .and_then(|a| a.body["article"]["slug"].as_str().map(str::to_owned))
}

/// The id of a comment answer.
fn comment_id_of(answer: &Option<Answer>) -> Option<u64> {
    answer
        .as_ref()
        .filter(|a| a.error.is_none())
        .and_then(|a| a.body["comment"]["id"].as_u64())
}

// -------------------------------------------------------------------------------------------
// Every endpoint

/// Every RealWorld endpoint (and three filtered lists) at each concurrency, reads first, each
/// write with inputs of its own.
async fn measure_endpoints(
    stack: &Stack,
    loaded: &Loaded,
    scale: &Scale,
    baselines: &Baselines,
) -> anyhow::Result<Vec<EndpointRun>> {
    let client = &stack.client;
    let n = scale.endpoint_samples;
    let (n_users, n_articles) = (loaded.users.len(), loaded.slugs.len());
    let run = &stack.run;
    let mut runs = Vec::new();
    for (level, &c) in scale.endpoint_concurrencies.iter().enumerate() {
        settle(stack, Duration::from_secs(900), &format!("endpoints c={c}")).await?;
        let offset = level * n;
        // The user of call k: each call of a level its own user (while there are enough).
        let u = |k: usize| (offset + k) % n_users;
        let user = |k: usize| loaded.user(u(k));
        let measure = move |endpoint: &'static str, calls: Vec<Option<Call>>| {
            run_endpoint(client, baselines, endpoint, c, calls)
        };

        // Reads.
        let reads: Vec<(&'static str, Vec<Option<Call>>)> = vec![
            (
                "GET /api/user",
                (0..n)
                    .map(|k| Some(Call::get("/user".into(), Some(user(k)))))
                    .collect(),
            ),
            (
                "GET /api/profiles/{username}",
                (0..n)
                    .map(|k| {
                        let other = loaded.user(u(k) * 3 + 1);
                        Some(Call::get(
                            format!("/profiles/{}", other.username),
                            Some(user(k)),
                        ))
                    })
                    .collect(),
            ),
            (
                "GET /api/articles",
                (0..n)
                    .map(|k| Some(Call::get("/articles".into(), Some(user(k)))))
                    .collect(),
            ),
            (
                "GET /api/articles?tag={tag}",
                (0..n)
                    .map(|k| {
                        let tag = (offset + k) % TAG_POOL;
                        Some(Call::get(format!("/articles?tag=tag{tag}"), Some(user(k))))
                    })
                    .collect(),
            ),
            (
                "GET /api/articles?author={username}",
                (0..n)
                    .map(|k| {
                        let author = loaded.user(u(k) * 5 + 2);
                        Some(Call::get(
                            format!("/articles?author={}", author.username),
                            Some(user(k)),
                        ))
                    })
                    .collect(),
            ),
            (
                "GET /api/articles?favorited={username}",
                (0..n)
                    .map(|k| {
                        let fan = loaded.user(u(k) * 5 + 3);
                        Some(Call::get(
                            format!("/articles?favorited={}", fan.username),
                            Some(user(k)),
                        ))
                    })
                    .collect(),
            ),
            (
                "GET /api/articles/feed",
                (0..n)
                    .map(|k| Some(Call::get("/articles/feed".into(), Some(user(k)))))
                    .collect(),
            ),
            (
                "GET /api/articles/{slug}",
                (0..n)
                    .map(|k| {
                        let slug = loaded.slug((offset + k) * 11);
                        Some(Call::get(format!("/articles/{slug}"), Some(user(k))))
                    })
                    .collect(),
            ),
            (
                "GET /api/articles/{slug}/comments",
                (0..n)
                    .map(|k| {
                        let slug = loaded.slug((offset + k) * 13 + 5);
                        Some(Call::get(
                            format!("/articles/{slug}/comments"),
                            Some(user(k)),
                        ))
                    })
                    .collect(),
            ),
            (
                "GET /api/tags",
                (0..n)
                    .map(|_| Some(Call::get("/tags".into(), None)))
                    .collect(),
            ),
        ];
        for (endpoint, calls) in reads {
            runs.push(measure(endpoint, calls).await.0);
        }

        // Writes, each call on inputs of its own.
        let login = (0..n)
            .map(|k| {
                Some(Call::new(
                    Method::POST,
                    "/users/login".into(),
                    None,
                    Some(credentials(user(k))),
                    200,
                ))
            })
            .collect();
        runs.push(measure("POST /api/users/login", login).await.0);

        let register = (0..n)
            .map(|_| {
                let name = format!("b{run}r{}", stack.next());
                Some(Call::new(
                    Method::POST,
                    "/users".into(),
                    None,
                    Some(json!({"user": {
                        "username": name,
                        "email": format!("{name}@bench.example"),
                        "password": format!("pw-{name}-secret"),
                    }})),
                    201,
                ))
            })
            .collect();
        runs.push(measure("POST /api/users", register).await.0);

        let update_user = (0..n)
            .map(|k| {
                Some(Call::new(
                    Method::PUT,
                    "/user".into(),
                    Some(user(k)),
                    Some(json!({"user": {"bio": format!("Measured at c={c}, call {k}.")}})),
                    200,
                ))
            })
            .collect();
        runs.push(measure("PUT /api/user", update_user).await.0);

        // Pairs not followed by the load: offsets past `follows_per_user`.
        let spare = n_users - 1 - loaded.follows_per_user;
        let followee = |k: usize| {
            let d = loaded.follows_per_user + 1 + ((offset + k) / n_users) % spare;
            loaded.user(u(k) + d)
        };
        let follow = |method: Method| -> Vec<Option<Call>> {
            (0..n)
                .map(|k| {
                    Some(Call::new(
                        method.clone(),
                        format!("/profiles/{}/follow", followee(k).username),
                        Some(user(k)),
                        None,
                        200,
                    ))
                })
                .collect()
        };
        runs.push(
            measure("POST /api/profiles/{username}/follow", follow(Method::POST))
                .await
                .0,
        );
        runs.push(
            measure(
                "DELETE /api/profiles/{username}/follow",
                follow(Method::DELETE),
            )
            .await
            .0,
        );

        let create = (0..n)
            .map(|k| {
                let id = stack.next();
                Some(Call::new(
                    Method::POST,
                    "/articles".into(),
                    Some(user(k)),
                    Some(json!({"article": {
                        "title": format!("Measured article {id} of run {run}"),
                        "description": "Written while measuring",
                        "body": "Lorem ipsum dolor sit amet. ".repeat(20),
                        "tagList": [format!("tag{}", k % TAG_POOL)],
                    }})),
                    201,
                ))
            })
            .collect();
        let (created, answers) = measure("POST /api/articles", create).await;
        runs.push(created);
        let new_slugs: Vec<Option<String>> = answers.iter().map(slug_of).collect();
        let on_new = |method: Method, body: Option<Value>, expected: u16| -> Vec<Option<Call>> {
            new_slugs
                .iter()
                .enumerate()
                .map(|(k, slug)| {
                    slug.as_ref().map(|slug| {
                        Call::new(
                            method.clone(),
                            format!("/articles/{slug}"),
                            Some(user(k)),
                            body.clone(),
                            expected,
                        )
                    })
                })
                .collect()
        };
        let edit = Some(json!({"article": {"body": "Edited while measuring."}}));
        runs.push(
            measure("PUT /api/articles/{slug}", on_new(Method::PUT, edit, 200))
                .await
                .0,
        );

        // Articles the user did not favorite in the load (written by user + 2, not + 1).
        let per_author = (n_articles / n_users).max(1);
        let favorite = |method: Method| -> Vec<Option<Call>> {
            (0..n)
                .map(|k| {
                    let article = u(k) + 2 + ((offset + k) / n_users % per_author) * n_users;
                    Some(Call::new(
                        method.clone(),
                        format!("/articles/{}/favorite", loaded.slug(article)),
                        Some(user(k)),
                        None,
                        200,
                    ))
                })
                .collect()
        };
        runs.push(
            measure("POST /api/articles/{slug}/favorite", favorite(Method::POST))
                .await
                .0,
        );
        runs.push(
            measure(
                "DELETE /api/articles/{slug}/favorite",
                favorite(Method::DELETE),
            )
            .await
            .0,
        );

        let commented: Vec<String> = (0..n)
            .map(|k| loaded.slug((offset + k) * 7 + 1).to_owned())
            .collect();
        let comment = commented
            .iter()
            .enumerate()
            .map(|(k, slug)| {
                Some(Call::new(
                    Method::POST,
                    format!("/articles/{slug}/comments"),
                    Some(user(k)),
                    Some(json!({"comment": {"body": format!("Measured comment {k}.")}})),
                    200,
                ))
            })
            .collect();
        let (added, answers) = measure("POST /api/articles/{slug}/comments", comment).await;
        runs.push(added);
        let uncomment = answers
            .iter()
            .zip(&commented)
            .enumerate()
            .map(|(k, (answer, slug))| {
                comment_id_of(answer).map(|id| {
                    Call::new(
                        Method::DELETE,
                        format!("/articles/{slug}/comments/{id}"),
                        Some(user(k)),
                        None,
                        204,
                    )
                })
            })
            .collect();
        runs.push(
            measure("DELETE /api/articles/{slug}/comments/{id}", uncomment)
                .await
                .0,
        );

        runs.push(
            measure(
                "DELETE /api/articles/{slug}",
                on_new(Method::DELETE, None, 204),
            )
            .await
            .0,
        );
    }
    Ok(runs)
}

// -------------------------------------------------------------------------------------------
// Mixed workload

/// The mixed workload's operations, with their weights (per thousand).
#[derive(Clone, Copy, Debug)]
enum MixedOp {
    List,
    Article,
    Comments,
    Profile,
    Feed,
    Tags,
    Favorite,
    Comment,
    Publish,
}

/// Reads 85 %, favorites and comments 12 %, publishes 3 %.
const MIXED: [(MixedOp, u32); 9] = [
    (MixedOp::List, 200),
    (MixedOp::Article, 250),
    (MixedOp::Comments, 150),
    (MixedOp::Profile, 100),
    (MixedOp::Feed, 100),
    (MixedOp::Tags, 50),
    (MixedOp::Favorite, 60),
    (MixedOp::Comment, 60),
    (MixedOp::Publish, 30),
];

fn mixed_call(stack: &Stack, loaded: &Loaded, rng: &mut StdRng) -> Call {
    let mut pick = rng.random_range(0..1000);
    let op = MIXED
        .iter()
        .find(|(_, weight)| {
            if pick < *weight {
                true
            } else {
                pick -= weight;
                false
            }
        })
        .map_or(MixedOp::List, |(op, _)| *op);
    let user = loaded.user(rng.random_range(0..loaded.users.len()));
    let slug = loaded.slug(rng.random_range(0..loaded.slugs.len()));
    match op {
        MixedOp::List => Call::get("/articles".into(), Some(user)),
        MixedOp::Article => Call::get(format!("/articles/{slug}"), Some(user)),
        MixedOp::Comments => Call::get(format!("/articles/{slug}/comments"), Some(user)),
        MixedOp::Profile => {
            let other = loaded.user(rng.random_range(0..loaded.users.len()));
            Call::get(format!("/profiles/{}", other.username), Some(user))
        }
        MixedOp::Feed => Call::get("/articles/feed".into(), Some(user)),
        MixedOp::Tags => Call::get("/tags".into(), None),
        MixedOp::Favorite => Call::new(
            Method::POST,
            format!("/articles/{slug}/favorite"),
            Some(user),
            None,
            200,
        ),
        MixedOp::Comment => Call::new(
            Method::POST,
            format!("/articles/{slug}/comments"),
            Some(user),
            Some(json!({"comment": {"body": "Mixed workload comment."}})),
            200,
        ),
        MixedOp::Publish => Call::new(
            Method::POST,
            "/articles".into(),
            Some(user),
            Some(json!({"article": {
                "title": format!("Mixed article {} of run {}", stack.next(), stack.run),
                "description": "Written by the mixed workload",
                "body": "Lorem ipsum dolor sit amet. ".repeat(20),
                "tagList": [format!("tag{}", rng.random_range(0..TAG_POOL))],
            }})),
            201,
        ),
    }
}

/// The mixed workload at each concurrency: `c` workers sending one request after another for
/// `scale.mixed_seconds`.
async fn measure_mixed(
    stack: &Stack,
    loaded: &Loaded,
    scale: &Scale,
    baselines: &Baselines,
) -> anyhow::Result<Vec<MixedRun>> {
    let mut runs = Vec::new();
    let length = Duration::from_secs_f64(scale.mixed_seconds.max(0.1));
    for &c in &scale.mixed_concurrencies {
        settle(stack, Duration::from_secs(900), &format!("mixed c={c}")).await?;
        let started = Instant::now();
        let errors = AtomicUsize::new(0);
        let first_error: Mutex<Option<String>> = Mutex::new(None);
        let workers = (0..c).map(|w| {
            let (errors, first_error) = (&errors, &first_error);
            async move {
                let mut rng = StdRng::seed_from_u64((c * 1000 + w) as u64);
                let mut samples = Vec::new();
                let mut sent = 0usize;
                while started.elapsed() < length {
                    let call = mixed_call(stack, loaded, &mut rng);
                    let answer = send(&stack.client, &call).await;
                    sent += 1;
                    match answer.error {
                        None => samples.push(answer.elapsed),
                        Some(error) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert(error);
                        }
                    }
                }
                (sent, samples)
            }
        });
        let results = futures::future::join_all(workers).await;
        let wall = started.elapsed();
        let requests: usize = results.iter().map(|(sent, _)| sent).sum();
        let samples: Vec<Duration> = results.into_iter().flat_map(|(_, s)| s).collect();
        let errors = errors.into_inner();
        if errors > 0 {
            eprintln!(
                "bench: ERROR mixed workload c={c}: {errors} of {requests} requests failed; \
                 first: {}",
                first_error
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .unwrap_or_default()
            );
        }
        let rate = per_second(samples.len(), wall);
        let vs = match baselines.nearest("GetItem", c) {
            Some(raw) => VsBaseline::new(
                rate,
                format!("DynamoDB GetItem/s (c={})", raw.concurrency),
                raw.per_second,
            ),
            None => VsBaseline::new(rate, "DynamoDB GetItem/s (not measured)", 0.0),
        };
        let run = MixedRun {
            concurrency: c,
            seconds: wall.as_secs_f64(),
            requests,
            errors,
            per_second: rate,
            latency: Latency::of(&samples),
            vs,
        };
        eprintln!(
            "bench:   mixed workload c={c}: {:.0} requests/s, p50 {:.1} ms, p99 {:.1} ms ({} vs {})",
            run.per_second,
            run.latency.p50_ms,
            run.latency.p99_ms,
            run.vs.ratio_text(),
            run.vs.baseline
        );
        runs.push(run);
    }
    Ok(runs)
}
