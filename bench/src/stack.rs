//! The loaded stack the API, lag and cost sections share: a local stack with meters on the
//! whole pipeline, the store loaded through the API, and the calls they send to it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use common::config::JwtSettings;
use futures::stream::{self, StreamExt, TryStreamExt};
use local_aws::meter::DynamoMeter;
use local_aws::LocalEndpoints;
use local_stack::{PipelineMeter, RunningStack, StackConfig};
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{Api, ApiUser};
use crate::Scale;

/// How many requests the loader keeps in flight.
pub(crate) const LOAD_CONCURRENCY: usize = 8;
/// Tags of the loaded articles are drawn from this many.
pub(crate) const TAG_POOL: usize = 30;
/// How long the stream poller waits between empty reads (as the local stack's default).
const STREAM_POLL: Duration = Duration::from_millis(20);

/// A local stack of the benchmark, with its meters.
pub(crate) struct Stack {
    pub running: RunningStack,
    pub client: Api,
    /// The API's DynamoDB requests and capacity.
    pub api_meter: DynamoMeter,
    /// The rest of the pipeline.
    pub pipeline: PipelineMeter,
    /// The projector queues.
    pub queue_urls: Vec<String>,
    /// A random tag of this run, in every name it creates.
    pub run: String,
    /// Hands out numbers for unique names.
    counter: AtomicUsize,
}

impl Stack {
    /// A number not handed out before in this run.
    pub fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) async fn stop(self) {
        self.running.stop().await;
    }
}

pub(crate) async fn start(endpoints: &LocalEndpoints, prefix: &str) -> anyhow::Result<Stack> {
    let secret = uuid::Uuid::new_v4().simple().to_string().repeat(2);
    let api_meter = DynamoMeter::new();
    let pipeline = PipelineMeter::new();
    let running = local_stack::start(StackConfig {
        endpoints: endpoints.clone(),
        prefix: prefix.to_owned(),
        jwt: JwtSettings::new(secret.into_bytes(), Duration::from_secs(24 * 3600))?,
        listen: ([127, 0, 0, 1], 0).into(),
        retry_delay: Some(Duration::from_secs(1)),
        stream_poll_interval: STREAM_POLL,
        search: local_stack::SearchBackend::Embedded { dir: None },
        api_meter: Some(api_meter.clone()),
        pipeline_meter: Some(pipeline.clone()),
    })
    .await
    .context("starting the local stack")?;
    let queue_urls = running
        .provisioned
        .queues
        .iter()
        .map(|q| q.url.clone())
        .collect();
    let client = Api::new(running.api_url());
    Ok(Stack {
        running,
        client,
        api_meter,
        pipeline,
        queue_urls,
        run: format!("{:06x}", rand::rng().random::<u32>() & 0xff_ffff),
        counter: AtomicUsize::new(0),
    })
}

/// Prints a progress line at most every five seconds.
pub(crate) struct Progress {
    what: String,
    last: Mutex<Instant>,
}

impl Progress {
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            last: Mutex::new(Instant::now()),
        }
    }

    /// Prints `detail` if five seconds passed since the last line.
    pub fn tick(&self, detail: impl FnOnce() -> String) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() >= Duration::from_secs(5) {
            *last = Instant::now();
            eprintln!("bench:     {}: {}", self.what, detail());
        }
    }
}

/// What the pipeline has done so far that a call can cause (the empty polls of the queues
/// left out): when it stops changing and the queues are empty, the pipeline is idle.
fn activity(stack: &Stack) -> (u64, u64, u64, u64) {
    let functions: u64 = stack
        .pipeline
        .functions
        .snapshot()
        .iter()
        .filter(|(name, _)| {
            **name != infra::template::COMMAND_API.bin && **name != infra::template::QUERY_API.bin
        })
        .map(|(_, f)| f.invocations)
        .sum();
    (
        stack
            .pipeline
            .projectors_dynamodb
            .snapshot()
            .total_requests(),
        stack.pipeline.sns.snapshot().total_requests(),
        stack.pipeline.sqs.snapshot().requests_with_items(),
        functions,
    )
}

/// How often [`wait_idle`] looks.
const IDLE_CHECK: Duration = Duration::from_millis(200);
/// Looks in a row without any change that make the pipeline idle: longer than the stream
/// poller's pause and a moto delivery together.
const IDLE_CHECKS: usize = 4;

/// Waits until the projector queues are empty and the pipeline stopped moving (see
/// [`activity`]); false if it still moved after `limit`.
pub(crate) async fn wait_idle(stack: &Stack, limit: Duration, what: &str) -> anyhow::Result<bool> {
    let started = Instant::now();
    let progress = Progress::new(format!("{what}: waiting for the pipeline"));
    let mut last = activity(stack);
    let mut still = 0;
    loop {
        tokio::time::sleep(IDLE_CHECK).await;
        let backlog =
            local_stack::largest_backlog(&stack.running.clients.sqs, &stack.queue_urls).await?;
        let now = activity(stack);
        still = if backlog == 0 && now == last {
            still + 1
        } else {
            0
        };
        last = now;
        if still >= IDLE_CHECKS {
            return Ok(true);
        }
        if started.elapsed() > limit {
            return Ok(false);
        }
        progress.tick(|| {
            format!(
                "largest queue backlog {backlog}, {:.0} s",
                started.elapsed().as_secs_f64()
            )
        });
    }
}

/// [`wait_idle`], warning loudly (and going on) when the pipeline does not settle.
pub(crate) async fn settle(stack: &Stack, limit: Duration, what: &str) -> anyhow::Result<()> {
    if !wait_idle(stack, limit, what).await? {
        eprintln!(
            "bench: WARNING {what}: the pipeline was still busy after {:.0} s; measuring anyway",
            limit.as_secs_f64()
        );
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Loading the store

/// What was loaded: user `i` wrote articles `i`, `i + users`, `i + 2 × users`... and follows
/// users `i + 1 ..= i + follows_per_user`; user `i` favorited articles `i + 1 + j × users`
/// (up to five, written by user `i + 1`).
pub(crate) struct Loaded {
    pub users: Arc<Vec<ApiUser>>,
    pub slugs: Arc<Vec<String>>,
    pub follows_per_user: usize,
    pub follows: usize,
    pub favorites: usize,
    pub comments: usize,
}

impl Loaded {
    pub fn user(&self, i: usize) -> &ApiUser {
        &self.users[i % self.users.len()]
    }

    pub fn slug(&self, i: usize) -> &str {
        &self.slugs[i % self.slugs.len()]
    }
}

/// The email and password of a user registered by the benchmark (see [`Api::register`]).
pub(crate) fn credentials(user: &ApiUser) -> Value {
    json!({"user": {
        "email": format!("{}@bench.example", user.username),
        "password": format!("pw-{}-secret", user.username),
    }})
}

/// Runs `calls` of the loader `LOAD_CONCURRENCY` at a time, each answering `expected`, with
/// progress; their answers in order.
async fn load_calls(client: &Api, what: &str, calls: Vec<Call>) -> anyhow::Result<Vec<Value>> {
    let started = Instant::now();
    let total = calls.len();
    let done = AtomicUsize::new(0);
    let progress = Progress::new(format!("loading {what}"));
    let answers: Vec<Value> = stream::iter(calls)
        .map(|call| {
            let (done, progress) = (&done, &progress);
            async move {
                let answer = client
                    .ok(
                        call.method,
                        &call.path,
                        call.token.as_deref(),
                        call.body,
                        call.expected,
                    )
                    .await?;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress.tick(|| format!("{n}/{total}"));
                anyhow::Ok(answer)
            }
        })
        .buffered(LOAD_CONCURRENCY)
        .try_collect()
        .await?;
    eprintln!(
        "bench:     loaded {total} {what} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(answers)
}

pub(crate) async fn load(stack: &Stack, scale: &Scale) -> anyhow::Result<Loaded> {
    let client = &stack.client;
    let run = &stack.run;
    let (n_users, n_articles) = (scale.users, scale.articles);

    let started = Instant::now();
    let progress = Progress::new("loading users");
    let done = AtomicUsize::new(0);
    let users: Vec<ApiUser> = stream::iter(0..n_users)
        .map(|i| {
            let (done, progress) = (&done, &progress);
            async move {
                let user = client.register(&format!("b{run}u{i}")).await?;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress.tick(|| format!("{n}/{n_users}"));
                anyhow::Ok(user)
            }
        })
        .buffered(LOAD_CONCURRENCY)
        .try_collect()
        .await?;
    eprintln!(
        "bench:     loaded {n_users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let follows_per_user = ((n_users - 1) / 2).clamp(1, 5);
    let follows: Vec<Call> = (0..n_users)
        .flat_map(|i| (1..=follows_per_user).map(move |d| (i, (i + d) % n_users)))
        .map(|(a, b)| {
            Call::new(
                Method::POST,
                format!("/profiles/{}/follow", users[b].username),
                Some(&users[a]),
                None,
                200,
            )
        })
        .collect();
    let n_follows = follows.len();
    load_calls(client, "follows", follows).await?;

    let articles: Vec<Call> = (0..n_articles)
        .map(|i| {
            let tags = vec![
                format!("tag{}", i % TAG_POOL),
                format!("tag{}", (i * 7 + 3) % TAG_POOL),
            ];
            Call::new(
                Method::POST,
                "/articles".to_owned(),
                Some(&users[i % n_users]),
                Some(json!({"article": {
                    "title": format!("Bench article {i} of run {run}"),
                    "description": format!("What article {i} is about"),
                    "body": "Lorem ipsum dolor sit amet. ".repeat(40),
                    "tagList": tags,
                }})),
                201,
            )
        })
        .collect();
    let slugs: Vec<String> = load_calls(client, "articles", articles)
        .await?
        .iter()
        .map(|reply| {
            reply["article"]["slug"]
                .as_str()
                .map(str::to_owned)
                .context("an article without a slug")
        })
        .collect::<anyhow::Result<_>>()?;

    let favorites_per_user = (n_articles / n_users).clamp(1, 5);
    let favorites: Vec<Call> = (0..n_users)
        .flat_map(|u| (0..favorites_per_user).map(move |j| (u, (u + 1 + j * n_users) % n_articles)))
        .map(|(u, a)| {
            Call::new(
                Method::POST,
                format!("/articles/{}/favorite", slugs[a]),
                Some(&users[u]),
                None,
                200,
            )
        })
        .collect();
    let n_favorites = favorites.len();
    load_calls(client, "favorites", favorites).await?;

    let comments: Vec<Call> = (0..n_users)
        .flat_map(|u| (0..2).map(move |j| (u, (u * 3 + j * 5 + 3) % n_articles)))
        .map(|(u, a)| {
            Call::new(
                Method::POST,
                format!("/articles/{}/comments", slugs[a]),
                Some(&users[u]),
                Some(json!({"comment": {"body": "A fair point, well made."}})),
                200,
            )
        })
        .collect();
    let n_comments = comments.len();
    load_calls(client, "comments", comments).await?;

    Ok(Loaded {
        users: Arc::new(users),
        slugs: Arc::new(slugs),
        follows_per_user,
        follows: n_follows,
        favorites: n_favorites,
        comments: n_comments,
    })
}

/// Waits until the list counts every article and the pipeline is idle.
pub(crate) async fn settle_load(
    stack: &Stack,
    loaded: &Loaded,
    scale: &Scale,
) -> anyhow::Result<()> {
    let started = Instant::now();
    // Generous: moto's SQS serves a few hundred messages a second at best.
    let writes = scale.users + scale.articles + loaded.follows + loaded.favorites + loaded.comments;
    let limit = Duration::from_secs(300)
        + Duration::from_millis(100) * u32::try_from(writes).unwrap_or(u32::MAX);
    let progress = Progress::new("projecting the load");
    loop {
        let (status, all) = stack
            .client
            .call(Method::GET, "/articles?limit=1", None, None)
            .await?;
        let counted = all["articlesCount"].as_u64();
        if status.is_success() && counted == Some(scale.articles as u64) {
            let left = limit.saturating_sub(started.elapsed());
            if wait_idle(stack, left, "projecting the load").await? {
                return Ok(());
            }
        }
        ensure!(
            started.elapsed() < limit,
            "the read models did not show the load within {:.0} s: GET /api/articles counts \
             {counted:?} of {} articles",
            limit.as_secs_f64(),
            scale.articles
        );
        progress.tick(|| {
            format!(
                "GET /api/articles counts {} of {} articles",
                counted.unwrap_or(0),
                scale.articles
            )
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// -------------------------------------------------------------------------------------------
// Calls

/// One request, prepared before it is timed.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub method: Method,
    /// Under `/api`.
    pub path: String,
    pub token: Option<String>,
    pub body: Option<Value>,
    /// The status a success answers with.
    pub expected: u16,
}

impl Call {
    pub fn new(
        method: Method,
        path: String,
        user: Option<&ApiUser>,
        body: Option<Value>,
        expected: u16,
    ) -> Self {
        Self {
            method,
            path,
            token: user.map(|u| u.token.clone()),
            body,
            expected,
        }
    }

    pub fn get(path: String, user: Option<&ApiUser>) -> Self {
        Self::new(Method::GET, path, user, None, 200)
    }
}

/// What one call answered.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    /// From sending the request to the last byte of its answer.
    pub elapsed: Duration,
    /// The JSON answer (`Null` when empty or not JSON).
    pub body: Value,
    /// Why it is not a success (unexpected status, no answer), if so.
    pub error: Option<String>,
    /// How long a write waited for its read models (its `Server-Timing: wait;dur=`).
    pub waited: Option<Duration>,
    /// The position a write appended (its `conduit-position`).
    pub position: Option<common::projections::Position>,
}

/// Sends `call` and times it (the JSON is parsed after the clock stops).
pub(crate) async fn send(client: &Api, call: &Call) -> Answer {
    let mut request = client
        .http
        .request(call.method.clone(), format!("{}{}", client.base, call.path));
    if let Some(token) = &call.token {
        request = request.header("authorization", format!("Token {token}"));
    }
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    let started = Instant::now();
    let answered = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            response.bytes().await.map(|bytes| (status, headers, bytes))
        }
        Err(error) => Err(error),
    };
    let elapsed = started.elapsed();
    match answered {
        Ok((status, headers, bytes)) => {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let error = (status != call.expected).then(|| {
                format!(
                    "{} {}: {status} (expected {}) {}",
                    call.method,
                    call.path,
                    call.expected,
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                )
            });
            Answer {
                elapsed,
                body,
                error,
                waited: header("server-timing").and_then(command_api::write_wait::waited),
                position: header(common::projections::POSITION_HEADER).and_then(|p| p.parse().ok()),
            }
        }
        Err(error) => Answer {
            elapsed,
            body: Value::Null,
            error: Some(format!("{} {}: {error}", call.method, call.path)),
            waited: None,
            position: None,
        },
    }
}
