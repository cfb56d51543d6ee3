//! The local stack: one HTTP gateway for both routers and Lambda-like pollers for the fan-out and the projectors, all calling the same library functions the Lambdas call.

mod gateway;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use common::aws::{Clients, LocalEndpoints};
use common::config::{JwtSettings, TableNames};
use infra::esm::{DynamoCheckpoints, LogOnFailure, QueueMapping, StreamMapping};
use infra::resources::{self, Provisioned, EVENTS_STREAM_MAPPING, USERS_PROJECTOR_QUEUE};
use projectors::{FanOut, UsersProjector};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use gateway::gateway;

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

async fn stopped(mut receiver: watch::Receiver<bool>) {
    let _ = receiver.wait_for(|stop| *stop).await;
}

/// Provisions every resource, catches the projections up with the log, then serves the API and
/// runs the pollers until [`RunningStack::stop`].
pub async fn start(config: StackConfig) -> anyhow::Result<RunningStack> {
    let clients = Clients::local(&config.endpoints).await;
    let provisioned = resources::provision(&clients, &config.prefix)
        .await
        .context("provisioning the local resources")?;
    let tables = TableNames::with_prefix(&config.prefix);

    let users = Arc::new(UsersProjector::runtime(&clients.dynamodb, &tables));
    // Events written while the stack was down, or whose messages died with the emulators,
    // reach the read models before the first request.
    let caught_up = users
        .catch_up()
        .await
        .context("catching up the users projection")?;
    tracing::info!(
        streams = caught_up.streams,
        applied = caught_up.applied,
        "users projection caught up"
    );

    let (shutdown, receiver) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let app = gateway(
        command_api::router(command_api::AppState::new(&clients, &tables, &config.jwt)),
        query_api::router(query_api::AppState::new(&clients, &tables, &config.jwt)),
    );
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

    let fan_out = Arc::new(FanOut::new(
        clients.sns.clone(),
        provisioned.topic_arn.clone(),
    ));
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
    stream.on_failure = Arc::new(LogOnFailure);
    let streams = clients.streams.clone();
    let stream_stop = stopped(receiver.clone());
    tasks.spawn(async move {
        stream
            .run(
                streams,
                move |event| {
                    let fan_out = fan_out.clone();
                    async move { Ok::<_, std::convert::Infallible>(fan_out.handle(event).await) }
                },
                stream_stop,
            )
            .await;
    });

    let queue = provisioned
        .queue(USERS_PROJECTOR_QUEUE.name)
        .context("the users projector queue was not provisioned")?;
    let mut mapping = QueueMapping::new(queue.url.clone(), queue.arn.clone());
    mapping.batch_size = queue.batch_size as usize;
    mapping.retry_delay = config.retry_delay;
    let sqs = clients.sqs.clone();
    let queue_stop = stopped(receiver.clone());
    tasks.spawn(async move {
        mapping
            .run(
                sqs,
                move |event| {
                    let users = users.clone();
                    async move { Ok::<_, std::convert::Infallible>(users.handle_sqs(event).await) }
                },
                queue_stop,
            )
            .await;
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
