//! The local stack: one HTTP gateway for both routers and Lambda-like pollers for the fan-out and the projectors, all calling the same library functions the Lambdas call.

mod gateway;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::QueueAttributeName;
use common::config::{JwtSettings, TableNames};
use common::projections::Projection;
use futures::future::BoxFuture;
use infra::resources::{
    QueueDef, ARTICLES_PROJECTOR_QUEUE, EVENTS_STREAM_MAPPING, FEED_PROJECTOR_QUEUE,
    SEARCH_PROJECTOR_QUEUE, USERS_PROJECTOR_QUEUE,
};
use local_aws::esm::{DynamoCheckpoints, QueueMapping, SqsOnFailure, StreamMapping};
use local_aws::meter::{DynamoMeter, RequestMeter};
use local_aws::provision::Provisioned;
use local_aws::{Clients, LocalEndpoints};
use projectors::runtime::{CatchUp, ProjectionError, Projector};
use projectors::{FanOut, VersionedProjector};
use search::{SearchConfig, SearchIndex, VersionedSearch};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use gateway::gateway;
/// The search engines a stack can run on (re-exported: callers need no `search` dependency).
pub use search::SearchBackend;

/// Everything the stack needs to start.
#[derive(Clone, Debug)]
pub struct StackConfig {
    pub endpoints: LocalEndpoints,
    /// Prefix of every table, topic and queue name.
    pub prefix: String,
    pub jwt: JwtSettings,
    /// Where the gateway listens (port 0 picks a free port).
    pub listen: SocketAddr,
    /// How soon a failed message is retried (`None`: after the queue's visibility timeout, as
    /// on Lambda).
    pub retry_delay: Option<Duration>,
    /// How long the stream poller waits between empty reads.
    pub stream_poll_interval: Duration,
    /// The engine of the search read model: the embedded one in a directory or in memory
    /// (`Embedded { dir: None }`, which only suits fresh tables, as in tests: the search
    /// checkpoints in DynamoDB would outlive it), or an OpenSearch node or domain.
    pub search: SearchBackend,
    /// Counts the DynamoDB requests of the API (not of the pollers), for benchmarks.
    pub api_meter: Option<DynamoMeter>,
    /// Counts what the rest of the pipeline does (projectors' DynamoDB capacity, SNS
    /// publishes, SQS requests, function invocations and their time), for benchmarks.
    pub pipeline_meter: Option<PipelineMeter>,
}

/// What the pipeline behind the API does, counted for the cost benchmark: the DynamoDB requests
/// and capacity of the projectors, the SNS requests of the fan-out, the SQS requests of the
/// projectors' queue mappings, and each function's invocations and handler time. The event
/// source mappings' own reads (stream records, their checkpoints) are not counted: on AWS
/// Lambda does them without charge. Cheap to clone; shared by the stack.
#[derive(Clone, Debug, Default)]
pub struct PipelineMeter {
    /// DynamoDB requests and capacity of the projectors.
    pub projectors_dynamodb: DynamoMeter,
    /// SNS requests of the fan-out (`PublishBatch` entries counted as items).
    pub sns: RequestMeter,
    /// SQS requests of the projectors' queue mappings.
    pub sqs: RequestMeter,
    /// Invocations and handler time per function.
    pub functions: FunctionMeter,
}

impl PipelineMeter {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Invocations and handler time of one function.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FunctionTally {
    pub invocations: u64,
    /// Time spent in the handler, all invocations together.
    pub busy: Duration,
    /// The function's memory size in the template (what a GB-second is counted with).
    pub memory_mb: u32,
}

impl FunctionTally {
    /// `busy` × memory, in GB-seconds (as Lambda bills duration).
    pub fn gb_seconds(&self) -> f64 {
        self.busy.as_secs_f64() * f64::from(self.memory_mb) / 1024.0
    }
}

/// Invocations and handler time per function (named by its binary, as in
/// [`infra::template::FUNCTIONS`]), counted by the gateway, the stream poller and the queue
/// pollers: one invocation per API request, per stream batch and per SQS batch, as Lambda
/// invokes them.
#[derive(Clone, Debug, Default)]
pub struct FunctionMeter {
    tally: Arc<Mutex<BTreeMap<&'static str, FunctionTally>>>,
}

impl FunctionMeter {
    /// Counts one invocation of `function` that took `busy`.
    pub fn record(&self, function: &infra::template::FunctionDef, busy: Duration) {
        let mut tally = self.lock();
        let entry = tally.entry(function.bin).or_default();
        entry.invocations += 1;
        entry.busy += busy;
        entry.memory_mb = function.memory_mb;
    }

    /// What was counted so far, per function; the meter starts again from zero.
    pub fn take(&self) -> BTreeMap<&'static str, FunctionTally> {
        std::mem::take(&mut *self.lock())
    }

    /// What was counted so far, without resetting it.
    pub fn snapshot(&self) -> BTreeMap<&'static str, FunctionTally> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, FunctionTally>> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The function of the template that a projector queue feeds.
fn function_of_queue(queue: &QueueDef) -> Option<&'static infra::template::FunctionDef> {
    infra::template::FUNCTIONS
        .iter()
        .find(|f| matches!(f.trigger, infra::template::Trigger::Queue(q) if q.name == queue.name))
}

/// A running stack; dropping it without [`RunningStack::stop`] leaves its tasks to the runtime.
pub struct RunningStack {
    pub addr: SocketAddr,
    pub provisioned: Provisioned,
    pub clients: Clients,
    pub tables: TableNames,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningStack {
    /// The API base URL, `http://127.0.0.1:PORT/api`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Stops the gateway and the pollers, letting in-flight batches finish.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Counts an API request as one invocation of the function that serves it (the query API for
/// `GET` and `HEAD`, the command API for the rest, as the gateway routes them), with the time
/// until its response is ready.
async fn count_api_invocation(
    axum::extract::State(functions): axum::extract::State<FunctionMeter>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let function = if matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
        &infra::template::QUERY_API
    } else {
        &infra::template::COMMAND_API
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    functions.record(function, started.elapsed());
    response
}

async fn stopped(mut receiver: watch::Receiver<bool>) {
    let _ = receiver.wait_for(|stop| *stop).await;
}

/// Most messages a projector queue may hold before the local fan-out waits.
pub const MAX_LOCAL_QUEUE_BACKLOG: usize = 50;
/// Longest the fan-out waits for the queues per stream batch (then publishes anyway).
const BACKPRESSURE_LIMIT: Duration = Duration::from_secs(30);

/// Keeps moto's queues short. moto's SQS scans every message of a queue on each receive and
/// each delete, so its throughput falls with the backlog (measured here: 264 messages/s with 20
/// queued, 45 with 200, 5 with 2,000). A bulk load would pile thousands of messages into each
/// projector queue and the projections would fall minutes behind; so before each stream batch
/// the local fan-out waits while a projector queue holds more than
/// [`MAX_LOCAL_QUEUE_BACKLOG`] messages, and the backlog stays in the stream, which DynamoDB
/// Local serves at any length. On AWS, SQS absorbs any backlog and Lambda scales the
/// consumers: the deployed fan-out does not wait.
struct Backpressure {
    sqs: aws_sdk_sqs::Client,
    queue_urls: Vec<String>,
}

impl Backpressure {
    async fn wait(&self) {
        let started = tokio::time::Instant::now();
        while started.elapsed() < BACKPRESSURE_LIMIT {
            match self.largest_backlog().await {
                Ok(backlog) if backlog > MAX_LOCAL_QUEUE_BACKLOG => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the queue depths; publishing anyway");
                    return;
                }
            }
        }
        tracing::warn!(
            waited_s = BACKPRESSURE_LIMIT.as_secs(),
            "projector queues stay full; publishing anyway"
        );
    }

    async fn largest_backlog(&self) -> anyhow::Result<usize> {
        largest_backlog(&self.sqs, &self.queue_urls).await
    }
}

/// The most messages (waiting and in flight) any of the queues holds.
pub async fn largest_backlog(
    sqs: &aws_sdk_sqs::Client,
    queue_urls: &[String],
) -> anyhow::Result<usize> {
    use aws_sdk_sqs::types::QueueAttributeName as Name;
    let mut largest = 0;
    for url in queue_urls {
        let output = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(Name::ApproximateNumberOfMessages)
            .attribute_names(Name::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let count = |name: Name| -> usize {
            output
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        largest = largest.max(
            count(Name::ApproximateNumberOfMessages)
                + count(Name::ApproximateNumberOfMessagesNotVisible),
        );
    }
    Ok(largest)
}

/// One projector's handler of an SQS batch, as the queue poller calls it.
type BatchHandler = Arc<dyn Fn(SqsEvent) -> BoxFuture<'static, SqsBatchResponse> + Send + Sync>;

/// Catches the active version of `projector`'s projection up with the log and returns its SQS
/// batch handler, which follows the registry (a replay may switch versions).
async fn projector<P: Projector + 'static>(
    projector: VersionedProjector<P>,
) -> Result<BatchHandler, ProjectionError> {
    let (version, CatchUp { streams, applied }) = projector.catch_up().await?;
    tracing::info!(
        projection = projector.projection().name(),
        version,
        streams,
        applied,
        "projection caught up"
    );
    let projector = Arc::new(projector);
    Ok(Arc::new(move |batch| {
        let projector = projector.clone();
        Box::pin(async move { projector.handle_sqs(batch).await })
    }))
}

/// Runs `handler` on `batch` as Lambda would: stopped after the function's `timeout`, every
/// message of the batch then failed (they come back after their visibility timeout). Work
/// that relies on the timeout, such as the feed projector's author leases, stays sound.
async fn within(timeout: Duration, handler: &BatchHandler, batch: SqsEvent) -> SqsBatchResponse {
    let ids: Vec<String> = batch
        .records
        .iter()
        .filter_map(|record| record.message_id.clone())
        .collect();
    match tokio::time::timeout(timeout, handler(batch)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(?timeout, messages = ids.len(), "projector batch timed out");
            let mut response = SqsBatchResponse::default();
            for id in ids {
                let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
            response
        }
    }
}

/// The search read model of the stack under `prefix` on `backend`: one index per version,
/// `<prefix>articles-v<n>` (in the embedded engine's directory, or on OpenSearch behind the
/// alias `<prefix>articles`).
pub fn versioned_search(prefix: &str, backend: SearchBackend) -> VersionedSearch {
    VersionedSearch::new(SearchConfig {
        backend,
        alias: format!("{prefix}articles"),
        index: format!("{prefix}articles-v1"),
    })
}

/// The search read model on the embedded engine, in `dir` or in memory (see
/// [`versioned_search`]).
pub fn search_versions(prefix: &str, dir: Option<PathBuf>) -> VersionedSearch {
    versioned_search(prefix, SearchBackend::Embedded { dir })
}

/// The search index of version 1 of the local stack (see [`search_versions`]).
pub async fn open_search(prefix: &str, dir: Option<PathBuf>) -> anyhow::Result<SearchIndex> {
    search_versions(prefix, dir)
        .index(1)
        .await
        .context("opening the search index")
}

/// Provisions every resource, catches the projections up with the log, then serves the API and
/// runs the pollers until [`RunningStack::stop`].
pub async fn start(config: StackConfig) -> anyhow::Result<RunningStack> {
    let clients = Clients::local(&config.endpoints).await;
    let provisioned = local_aws::provision::provision(&clients, &config.prefix)
        .await
        .context("provisioning the local resources")?;
    let tables = TableNames::with_prefix(&config.prefix);
    let search_versions = versioned_search(&config.prefix, config.search.clone());

    // Events written while the stack was down, or whose messages died with the emulators,
    // reach the read models (their active versions) before the first request.
    let meter = config.pipeline_meter.clone();
    let projectors_ddb = match &meter {
        Some(meter) => meter.projectors_dynamodb.attach(&clients.dynamodb),
        None => clients.dynamodb.clone(),
    };
    let ddb = &projectors_ddb;
    let handlers: Vec<(&QueueDef, BatchHandler)> = vec![
        (
            &USERS_PROJECTOR_QUEUE,
            projector(VersionedProjector::users(ddb, &tables))
                .await
                .context("catching up the users projection")?,
        ),
        (
            &ARTICLES_PROJECTOR_QUEUE,
            projector(VersionedProjector::articles(ddb, &tables))
                .await
                .context("catching up the articles projection")?,
        ),
        (
            &FEED_PROJECTOR_QUEUE,
            projector(VersionedProjector::feed(ddb, &tables))
                .await
                .context("catching up the feed projection")?,
        ),
        (
            &SEARCH_PROJECTOR_QUEUE,
            projector(VersionedProjector::search(
                ddb,
                &tables,
                search_versions.clone(),
            ))
            .await
            .context("catching up the search projection")?,
        ),
    ];
    // The query side reads the index of the active search version.
    let search_state =
        projectors::versions::read_registry(ddb, &tables.checkpoints, Projection::Search)
            .await
            .context("reading the search version")?;
    let search = search_versions
        .index(search_state.state.active)
        .await
        .context("opening the search index")?;
    // As the search projector Lambda does at start: on OpenSearch, the alias readers that know
    // no version use, on the active version's index (a no-op for the embedded engine).
    search_versions
        .ensure_alias(search_state.state.active)
        .await
        .context("creating the search alias")?;

    let (shutdown, receiver) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let api_dynamodb = match &config.api_meter {
        Some(meter) => meter.attach(&clients.dynamodb),
        None => clients.dynamodb.clone(),
    };
    let app = gateway(
        command_api::router(
            command_api::AppState::new(&api_dynamodb, &tables, &config.jwt)
                .with_write_wait(command_api::write_wait::write_wait_from_env()?),
        ),
        query_api::router(
            query_api::AppState::new(&api_dynamodb, &tables, &config.jwt, search)
                .with_search_versions(search_versions.clone())
                .with_read_wait(query_api::consistency::read_wait_from_env()?),
        ),
    );
    let app = match &meter {
        Some(meter) => app.layer(axum::middleware::from_fn_with_state(
            meter.functions.clone(),
            count_api_invocation,
        )),
        None => app,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let serve_stop = stopped(receiver.clone());
    tasks.spawn(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(serve_stop)
            .await
        {
            tracing::error!(%error, "gateway stopped");
        }
    });

    let sns = match &meter {
        Some(meter) => meter.sns.attach_sns(&clients.sns),
        None => clients.sns.clone(),
    };
    let fan_out = Arc::new(FanOut::new(sns, provisioned.topic_arn.clone()));
    let fan_out_meter = meter.as_ref().map(|m| m.functions.clone());
    let mut stream = StreamMapping::new(
        provisioned.events_stream_arn.clone(),
        Arc::new(DynamoCheckpoints::new(
            clients.dynamodb.clone(),
            tables.checkpoints.clone(),
            "esm#events-stream#".to_owned(),
        )),
    );
    stream.batch_size = EVENTS_STREAM_MAPPING.batch_size as usize;
    stream.max_retry_attempts = EVENTS_STREAM_MAPPING.maximum_retry_attempts;
    stream.bisect_on_error = EVENTS_STREAM_MAPPING.bisect_batch_on_function_error;
    stream.poll_interval = config.stream_poll_interval;
    // As the template's OnFailure destination: the batch's description to fan-out-failures.
    stream.on_failure = Arc::new(SqsOnFailure {
        sqs: clients.sqs.clone(),
        queue_url: provisioned.fan_out_failures_url.clone(),
        function_arn: format!("local:function:{}", infra::template::FAN_OUT.bin),
    });
    let streams = clients.streams.clone();
    let stream_stop = stopped(receiver.clone());
    let backpressure = Arc::new(Backpressure {
        sqs: clients.sqs.clone(),
        queue_urls: provisioned.queues.iter().map(|q| q.url.clone()).collect(),
    });
    tasks.spawn(async move {
        stream
            .run(
                streams,
                move |event| {
                    let fan_out = fan_out.clone();
                    let backpressure = backpressure.clone();
                    let fan_out_meter = fan_out_meter.clone();
                    async move {
                        // The wait is the local stack's, not the function's: not metered.
                        backpressure.wait().await;
                        let started = std::time::Instant::now();
                        let response = fan_out.handle(event).await;
                        if let Some(functions) = &fan_out_meter {
                            functions.record(&infra::template::FAN_OUT, started.elapsed());
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                },
                stream_stop,
            )
            .await;
    });

    for (def, handler) in handlers {
        let queue = provisioned
            .queue(def.name)
            .with_context(|| format!("the {} queue was not provisioned", def.name))?;
        let timeout = Duration::from_secs(def.function_timeout_secs.into());
        let mut mapping = QueueMapping::new(queue.url.clone(), queue.arn.clone());
        mapping.batch_size = queue.batch_size as usize;
        mapping.retry_delay = config.retry_delay;
        let sqs = match &meter {
            Some(meter) => meter.sqs.attach_sqs(&clients.sqs),
            None => clients.sqs.clone(),
        };
        let function = function_of_queue(def)
            .with_context(|| format!("no function of the template reads {}", def.name))?;
        let functions = meter.as_ref().map(|m| m.functions.clone());
        let queue_stop = stopped(receiver.clone());
        tasks.spawn(async move {
            mapping
                .run(
                    sqs,
                    move |event| {
                        let handler = handler.clone();
                        let functions = functions.clone();
                        async move {
                            let started = std::time::Instant::now();
                            let response = within(timeout, &handler, event).await;
                            if let Some(functions) = &functions {
                                functions.record(function, started.elapsed());
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                    queue_stop,
                )
                .await;
        });
    }

    let watch_stop = stopped(receiver.clone());
    let sqs = clients.sqs.clone();
    let mut queues: Vec<Watched> = provisioned
        .queues
        .iter()
        .map(|q| Watched {
            queue: format!("the {} dead-letter queue", q.name),
            source: q
                .name
                .strip_suffix("-projector")
                .unwrap_or(&q.name)
                .to_owned(),
            url: q.dlq_url.clone(),
        })
        .collect();
    queues.push(Watched {
        queue: infra::resources::FAN_OUT_FAILURES_QUEUE.to_owned(),
        source: "fan-out".to_owned(),
        url: provisioned.fan_out_failures_url.clone(),
    });
    tasks.spawn(async move {
        tokio::select! {
            () = watch_dead_letters(sqs, queues) => {}
            () = watch_stop => {}
        }
    });

    Ok(RunningStack {
        addr,
        provisioned,
        clients,
        tables,
        shutdown,
        tasks,
    })
}

/// A queue the local stack watches for dead letters.
struct Watched {
    /// How the line names it.
    queue: String,
    /// The `replay dlq` source that shows it.
    source: String,
    url: String,
}

/// How often the local stack looks at the dead-letter queues.
const DEAD_LETTER_POLL: Duration = Duration::from_secs(5);

/// Prints one line each time a dead-letter queue (a projector's, or the fan-out's failures)
/// stops being empty, naming it and the command that shows what is in it.
async fn watch_dead_letters(sqs: aws_sdk_sqs::Client, queues: Vec<Watched>) {
    let mut had = vec![0u64; queues.len()];
    loop {
        tokio::time::sleep(DEAD_LETTER_POLL).await;
        for (watched, had) in queues.iter().zip(&mut had) {
            let depth = sqs
                .get_queue_attributes()
                .queue_url(&watched.url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .ok()
                .and_then(|out| {
                    out.attributes?
                        .get(&QueueAttributeName::ApproximateNumberOfMessages)?
                        .parse::<u64>()
                        .ok()
                });
            let Some(depth) = depth else { continue };
            if depth > 0 && *had == 0 {
                tracing::warn!(
                    messages = depth,
                    "{} is not empty: `cargo run -p replay -- dlq list {}` shows what failed and why",
                    watched.queue,
                    watched.source
                );
            }
            *had = depth;
        }
    }
}
