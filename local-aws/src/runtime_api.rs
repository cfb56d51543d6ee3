//! A local Lambda Runtime API, for tests that run a Lambda binary's real `main` the way Lambda
//! runs it: the binary long-polls `GET /2018-06-01/runtime/invocation/next`, gets an event, and
//! posts its response (or error) back.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use local_aws::runtime_api::RuntimeApi;
//! use std::time::Duration;
//!
//! let api = RuntimeApi::start().await;
//! let function = api.spawn_function(
//!     std::path::Path::new("target/debug/fan-out"),
//!     local_aws::testkit::emulators(),
//!     &[("CONDUIT_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:t-domain-events")],
//! )?;
//! let cold_start = function.ready(Duration::from_secs(30)).await?;
//! let response = api
//!     .invoke(serde_json::json!({"Records": []}), Duration::from_secs(30))
//!     .await?;
//! # let _ = (cold_start, response);
//! # Ok(())
//! # }
//! ```
//!
//! Implemented: `GET /invocation/next` (long poll, with the `Lambda-Runtime-Aws-Request-Id`,
//! `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id` headers), `POST
//! /invocation/{id}/response`, `POST /invocation/{id}/error` and `POST /init/error`, with
//! Lambda's 6 MB payload limit. Not implemented: response streaming, SnapStart's
//! `/restore/*`, extensions and telemetry APIs. The deadline is only told to the function,
//! not enforced: [`RuntimeApi::invoke`] stops waiting at its timeout but leaves the function
//! running.
//!
//! One [`RuntimeApi`] serves one function at a time, like one Lambda execution environment;
//! invocations are handed out one by one in the order they were queued.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{LocalEndpoints, LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY};
use anyhow::{anyhow, bail, Context as _};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

/// Lambda's limit on a synchronous invocation's event and on a function's response.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The account id in the function ARNs handed to the function (AWS's documentation account).
pub const ACCOUNT_ID: &str = "123456789012";

/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` of spawned functions, in MB.
pub const MEMORY_SIZE_MB: u32 = 128;

/// How often a spawned function is checked for having exited.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// The error a function reported, as Lambda's `errorType` / `errorMessage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionError {
    /// `errorType` of the body, else the `Lambda-Runtime-Function-Error-Type` header.
    pub error_type: String,
    /// `errorMessage` of the body, else the whole body.
    pub error_message: String,
    /// The body as posted.
    pub body: String,
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

/// Why [`RuntimeApi::invoke`] has no response.
#[derive(Clone, Debug, thiserror::Error)]
pub enum InvocationError {
    /// The function posted to `/invocation/{id}/error` (its handler failed, or the event
    /// could not be deserialised).
    #[error("the function reported an error: {0}")]
    Function(FunctionError),
    /// The function posted to `/init/error`.
    #[error("the function failed to initialise: {0}")]
    Init(FunctionError),
    /// The function's process ended before it answered.
    #[error("the function's process ended ({0}) before it answered")]
    Exited(String),
    /// No answer within the timeout.
    #[error("the function did not answer within {0:?}")]
    Timeout(Duration),
    /// The event is larger than Lambda accepts ([`MAX_PAYLOAD_BYTES`]).
    #[error("the event has {0} bytes, more than Lambda's limit of {MAX_PAYLOAD_BYTES}")]
    EventTooLarge(usize),
    /// The response is not JSON, or larger than [`MAX_PAYLOAD_BYTES`].
    #[error("the function's response is unusable: {0}")]
    InvalidResponse(String),
}

type Outcome = Result<Value, InvocationError>;

/// An invocation waiting for the function's `/next`.
struct Pending {
    request_id: String,
    deadline_ms: u64,
    event: Bytes,
}

/// State shared by the server's handlers, the [`RuntimeApi`] and its [`FunctionProcess`].
struct Shared {
    /// `AWS_LAMBDA_FUNCTION_NAME` of the current function, for the invoked function ARN.
    function_name: Mutex<String>,
    queue: mpsc::UnboundedSender<Pending>,
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    /// Invocations waiting for their response, by request id.
    waiters: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Request ids that were answered, timed out or abandoned: a late answer gets 410 Gone.
    finished: Mutex<HashSet<String>>,
    /// When the current function first asked for an event.
    first_next: watch::Sender<Option<Instant>>,
    /// Set when the current function posted to `/init/error`.
    init_error: watch::Sender<Option<FunctionError>>,
    /// Set when the current function's process ended: how.
    exited: watch::Sender<Option<String>>,
    /// Counts spawned functions, so that a previous function's end is not taken for the
    /// current one's.
    generation: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Hands `outcome` to the invocation waiting for `request_id`.
    fn complete(&self, request_id: &str, outcome: Outcome) -> Delivery {
        let waiter = lock(&self.waiters).remove(request_id);
        match waiter {
            Some(waiter) => {
                lock(&self.finished).insert(request_id.to_owned());
                let _ = waiter.send(outcome);
                Delivery::Delivered
            }
            None if lock(&self.finished).contains(request_id) => Delivery::Finished,
            None => Delivery::Unknown,
        }
    }

    fn abandon(&self, request_id: &str) {
        lock(&self.waiters).remove(request_id);
        lock(&self.finished).insert(request_id.to_owned());
    }
}

/// What became of a function's answer to an invocation.
enum Delivery {
    /// Handed to the waiting invocation.
    Delivered,
    /// The invocation was already answered, timed out or abandoned.
    Finished,
    /// No invocation has this request id.
    Unknown,
}

impl Delivery {
    /// The Runtime API's answer to the function: `accepted` once delivered, else 410 or 400.
    fn into_response(self, accepted: impl FnOnce() -> Response) -> Response {
        match self {
            Delivery::Delivered => accepted(),
            Delivery::Finished => runtime_error(
                StatusCode::GONE,
                "InvalidStateTransition",
                "the invocation was already answered or timed out",
            ),
            Delivery::Unknown => runtime_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                "no invocation has this request id",
            ),
        }
    }
}

/// Lambda's `202 {"status": "OK"}`.
fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}

/// A Lambda Runtime API on `127.0.0.1` and a free port, served by a task of the Tokio runtime
/// it was started on. Stops serving when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RuntimeApi {
    /// Starts serving on `127.0.0.1:0`. Must run inside a Tokio runtime (any flavour); panics
    /// if no loopback port can be bound.
    pub async fn start() -> RuntimeApi {
        match Self::try_start().await {
            Ok(api) => api,
            Err(e) => panic!("cannot start the local Lambda Runtime API: {e}"),
        }
    }

    /// [`RuntimeApi::start`], returning the bind error instead of panicking.
    pub async fn try_start() -> std::io::Result<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (queue, next) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_name: Mutex::new("function".to_owned()),
            queue,
            next: tokio::sync::Mutex::new(next),
            waiters: Mutex::new(HashMap::new()),
            finished: Mutex::new(HashSet::new()),
            first_next: watch::Sender::new(None),
            init_error: watch::Sender::new(None),
            exited: watch::Sender::new(None),
            generation: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            // The 6 MB limit is checked by the handlers, so that the invocation learns of it.
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the local Lambda Runtime API stopped");
            }
        });
        Ok(RuntimeApi {
            addr,
            shared,
            server,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`: the value of `AWS_LAMBDA_RUNTIME_API` for a function (no scheme, as
    /// on Lambda).
    pub fn runtime_api_address(&self) -> String {
        self.addr.to_string()
    }

    /// [`RuntimeApi::invoke`] for tests: the answer, or a panic that quotes the end of the
    /// function's log.
    pub async fn invoke_answered(
        &self,
        function: &FunctionProcess,
        event: Value,
        timeout: Duration,
    ) -> Value {
        match self.invoke(event, timeout).await {
            Ok(response) => response,
            Err(e) => panic!(
                "invocation failed: {e}; the function's log {} ends with:\n{}",
                function.log_file().display(),
                function.log_tail(40)
            ),
        }
    }

    /// Queues `event` for the function and waits for its response: the function's JSON
    /// response, or why there is none. `timeout` is also the deadline told to the function.
    ///
    /// Fails at once if the event exceeds [`MAX_PAYLOAD_BYTES`], the current function has
    /// posted `/init/error`, or its process has ended.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Value, InvocationError> {
        let event = Bytes::from(event.to_string());
        if event.len() > MAX_PAYLOAD_BYTES {
            return Err(InvocationError::EventTooLarge(event.len()));
        }
        if let Some(error) = self.shared.init_error.borrow().clone() {
            return Err(InvocationError::Init(error));
        }
        let mut exited = self.shared.exited.subscribe();
        let mut init_failed = self.shared.init_error.subscribe();
        let request_id = uuid::Uuid::new_v4().to_string();
        let (answer, answered) = oneshot::channel();
        lock(&self.shared.waiters).insert(request_id.clone(), answer);
        let deadline_ms = SystemTime::now()
            .checked_add(timeout)
            .and_then(|deadline| deadline.duration_since(UNIX_EPOCH).ok())
            .and_then(|since_epoch| u64::try_from(since_epoch.as_millis()).ok())
            .unwrap_or(u64::MAX);
        // The receiver lives in `shared`, so sending cannot fail.
        let _ = self.shared.queue.send(Pending {
            request_id: request_id.clone(),
            deadline_ms,
            event,
        });

        let outcome = tokio::select! {
            biased;
            outcome = answered => outcome.unwrap_or_else(|_| {
                Err(InvocationError::Exited("the runtime API dropped the invocation".into()))
            }),
            error = init_failed.wait_for(Option::is_some) => {
                let error = error.ok().and_then(|e| e.clone());
                Err(InvocationError::Init(error.unwrap_or_else(|| FunctionError {
                    error_type: "Unknown".into(),
                    error_message: String::new(),
                    body: String::new(),
                })))
            }
            status = exited.wait_for(Option::is_some) => {
                let status = status.ok().and_then(|s| s.clone()).unwrap_or_default();
                Err(InvocationError::Exited(status))
            }
            () = tokio::time::sleep(timeout) => Err(InvocationError::Timeout(timeout)),
        };
        if outcome.is_err() {
            self.shared.abandon(&request_id);
        }
        outcome
    }

    /// Starts `binary` as a Lambda function of this runtime API, in a Lambda-like environment:
    /// the parent's environment is *not* inherited (only `RUST_LOG` and `RUST_BACKTRACE` pass
    /// through); the function gets
    ///
    /// * `AWS_LAMBDA_RUNTIME_API` (this API), `AWS_LAMBDA_FUNCTION_NAME` (the binary's file
    ///   name unless `env` names it; also used in the invoked function ARN),
    ///   `AWS_LAMBDA_FUNCTION_VERSION` (`$LATEST`), `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`,
    ///   `AWS_LAMBDA_LOG_GROUP_NAME`, `AWS_LAMBDA_LOG_STREAM_NAME`,
    ///   `AWS_LAMBDA_INITIALIZATION_TYPE` (`on-demand`), `TZ`, `LANG`, `PATH`;
    /// * `AWS_REGION`/`AWS_DEFAULT_REGION` (`us-east-1`), the static local credentials,
    ///   `AWS_EC2_METADATA_DISABLED=true`, and `AWS_ENDPOINT_URL_DYNAMODB`,
    ///   `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`, `AWS_ENDPOINT_URL_SNS`, `AWS_ENDPOINT_URL_SQS`
    ///   pointing at `endpoints`;
    /// * then `env`, which may override any of the above.
    ///
    /// Its stdout and stderr go to a log file under [`crate::testkit::log_dir`]
    /// ([`FunctionProcess::log_file`]). It is killed when the [`FunctionProcess`] is dropped,
    /// and by the kernel (`PR_SET_PDEATHSIG`) when the thread that called this exits: call it
    /// from a thread that outlives the function (a test's own thread or a runtime worker,
    /// never a `spawn_blocking` task).
    ///
    /// Spawning resets what the API knows of the previous function (readiness, exit, init
    /// error); run one function per API at a time.
    pub fn spawn_function<K, V>(
        &self,
        binary: &Path,
        endpoints: &LocalEndpoints,
        env: &[(K, V)],
    ) -> anyhow::Result<FunctionProcess>
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let given_name = env
            .iter()
            .rev()
            .find(|(key, _)| key.as_ref() == "AWS_LAMBDA_FUNCTION_NAME")
            .map(|(_, value)| value.as_ref().to_string_lossy().into_owned());
        let name = given_name
            .or_else(|| binary.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow!("{} names no file", binary.display()))?;
        let file_stem: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let log = crate::testkit::log_dir().join(format!(
            "lambda-{file_stem}-{}-{}.log",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("create log dir {}", dir.display()))?;
        }
        let stdout =
            File::create(&log).with_context(|| format!("create log file {}", log.display()))?;
        let stderr = stdout
            .try_clone()
            .context("duplicate the log file handle")?;

        let mut cmd = Command::new(binary);
        cmd.env_clear();
        for (key, value) in lambda_environment(&name, &self.runtime_api_address(), endpoints) {
            cmd.env(key, value);
        }
        for passed in ["RUST_LOG", "RUST_BACKTRACE"] {
            if let Some(value) = std::env::var_os(passed) {
                cmd.env(passed, value);
            }
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        if let Some(dir) = binary.parent().filter(|d| !d.as_os_str().is_empty()) {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        crate::emulators::die_with_parent(&mut cmd);

        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *lock(&self.shared.function_name) = name.clone();
        self.shared.first_next.send_replace(None);
        self.shared.init_error.send_replace(None);
        self.shared.exited.send_replace(None);
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn the Lambda function {}", binary.display()))?;
        let pid = child.id();
        let child = Arc::new(Mutex::new(Some(child)));
        self.runtime.spawn(watch_exit(
            Arc::downgrade(&child),
            Arc::clone(&self.shared),
            generation,
        ));
        Ok(FunctionProcess {
            name,
            pid,
            log,
            spawned_at,
            generation,
            child,
            shared: Arc::clone(&self.shared),
        })
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The environment Lambda gives a function on `provided.al2023`, pointed at the emulators.
fn lambda_environment(
    name: &str,
    runtime_api: &str,
    endpoints: &LocalEndpoints,
) -> Vec<(&'static str, String)> {
    let today = time::OffsetDateTime::now_utc().date();
    let log_stream = format!(
        "{:04}/{:02}/{:02}/[$LATEST]{}",
        today.year(),
        u8::from(today.month()),
        today.day(),
        uuid::Uuid::new_v4().simple()
    );
    vec![
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            MEMORY_SIZE_MB.to_string(),
        ),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("AWS_REGION", LOCAL_REGION.to_owned()),
        ("AWS_DEFAULT_REGION", LOCAL_REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_ACCESS_KEY.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoints.dynamodb.clone()),
        (
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
            endpoints.dynamodb.clone(),
        ),
        ("AWS_ENDPOINT_URL_SNS", endpoints.moto.clone()),
        ("AWS_ENDPOINT_URL_SQS", endpoints.moto.clone()),
    ]
}

/// Publishes the end of the function's process (while it is still the current function).
async fn watch_exit(child: Weak<Mutex<Option<Child>>>, shared: Arc<Shared>, generation: u64) {
    loop {
        tokio::time::sleep(EXIT_POLL).await;
        let Some(child) = child.upgrade() else {
            return;
        };
        let status = match lock(&child).as_mut() {
            None => return,
            Some(process) => process.try_wait(),
        };
        let ended = match status {
            Ok(None) => continue,
            Ok(Some(status)) => status.to_string(),
            Err(e) => format!("cannot wait for it: {e}"),
        };
        if shared.generation.load(Ordering::SeqCst) == generation {
            shared.exited.send_replace(Some(ended));
        }
        return;
    }
}

/// Reads a Lambda event fixture (a JSON file) with every `(placeholder, value)` replaced in
/// its text, so placeholders work inside nested JSON strings too (values must need no JSON
/// escaping). Fails if the file is not JSON afterwards or still holds a `__NAME__` placeholder.
pub fn event_from_file(path: &Path, substitutions: &[(&str, &str)]) -> anyhow::Result<Value> {
    let mut text = std::fs::read_to_string(path)
        .with_context(|| format!("read event fixture {}", path.display()))?;
    for (placeholder, value) in substitutions {
        text = text.replace(placeholder, value);
    }
    if let Some(left) = leftover_placeholder(&text) {
        bail!("{} still holds the placeholder {left}", path.display());
    }
    serde_json::from_str(&text).with_context(|| format!("parse event fixture {}", path.display()))
}

/// The first `__NAME__` (capitals, digits and `_`) in `text`.
fn leftover_placeholder(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find("__") {
        let after = &rest[start + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        if let Some(core) = name.strip_suffix("__") {
            if !core.is_empty() && !core.starts_with('_') {
                return Some(&rest[start..start + 2 + name_len]);
            }
        }
        rest = &rest[start + 2..];
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The Runtime API's endpoints
// ---------------------------------------------------------------------------------------------

async fn next_invocation(State(shared): State<Arc<Shared>>) -> Response {
    shared.first_next.send_if_modified(|first| {
        let unset = first.is_none();
        if unset {
            *first = Some(Instant::now());
        }
        unset
    });
    loop {
        // Cancel-safe: if the function goes away while waiting, nothing is taken off the queue.
        let Some(pending) = shared.next.lock().await.recv().await else {
            return runtime_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                "the runtime API is shutting down",
            );
        };
        // Skip invocations whose caller stopped waiting before the function asked.
        if !lock(&shared.waiters).contains_key(&pending.request_id) {
            continue;
        }
        let name = lock(&shared.function_name).clone();
        let mut headers = HeaderMap::new();
        let mut set = |key: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(key, value);
            }
        };
        set("content-type", "application/json".to_owned());
        set("lambda-runtime-aws-request-id", pending.request_id.clone());
        set(
            "lambda-runtime-deadline-ms",
            pending.deadline_ms.to_string(),
        );
        set(
            "lambda-runtime-invoked-function-arn",
            format!("arn:aws:lambda:{LOCAL_REGION}:{ACCOUNT_ID}:function:{name}"),
        );
        set("lambda-runtime-trace-id", trace_id());
        return (StatusCode::OK, headers, pending.event).into_response();
    }
}

/// An X-Ray trace header as Lambda passes it: `Root=1-<epoch hex>-<96 bits>;Parent=<64 bits>;Sampled=0`.
fn trace_id() -> String {
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let random = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{epoch:08x}-{};Parent={};Sampled=0",
        &random[..24],
        &parent[..16]
    )
}

async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    UrlPath(request_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_PAYLOAD_BYTES {
        let outcome = Err(InvocationError::InvalidResponse(format!(
            "{} bytes, more than Lambda's limit of {MAX_PAYLOAD_BYTES}",
            body.len()
        )));
        return shared.complete(&request_id, outcome).into_response(|| {
            runtime_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Function.ResponseSizeTooLarge",
                "the response exceeds Lambda's 6 MB limit",
            )
        });
    }
    let outcome = serde_json::from_slice::<Value>(&body).map_err(|e| {
        InvocationError::InvalidResponse(format!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    });
    shared
        .complete(&request_id, outcome)
        .into_response(accepted)
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(request_id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error = function_error(&headers, &body);
    shared
        .complete(&request_id, Err(InvocationError::Function(error)))
        .into_response(accepted)
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error = function_error(&headers, &body);
    shared.init_error.send_replace(Some(error.clone()));
    let waiting: Vec<(String, oneshot::Sender<Outcome>)> = lock(&shared.waiters).drain().collect();
    for (request_id, waiter) in waiting {
        lock(&shared.finished).insert(request_id);
        let _ = waiter.send(Err(InvocationError::Init(error.clone())));
    }
    accepted()
}

fn function_error(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    let text = String::from_utf8_lossy(body).into_owned();
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    FunctionError {
        error_type: field("errorType")
            .or(header_type)
            .unwrap_or_else(|| "Unknown".to_owned()),
        error_message: field("errorMessage").unwrap_or_else(|| text.clone()),
        body: text,
    }
}

// ---------------------------------------------------------------------------------------------
// The function's process
// ---------------------------------------------------------------------------------------------

/// A Lambda function process started by [`RuntimeApi::spawn_function`]; killed on drop.
pub struct FunctionProcess {
    name: String,
    pid: u32,
    log: PathBuf,
    spawned_at: Instant,
    generation: u64,
    child: Arc<Mutex<Option<Child>>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for FunctionProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionProcess")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl FunctionProcess {
    /// `AWS_LAMBDA_FUNCTION_NAME`: the binary's file name unless the caller gave one.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Process id of the function.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The file that receives the function's stdout and stderr (kept after it ends).
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the function's log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::emulators::log_tail(&self.log, lines)
    }

    /// When the process was spawned.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Time from spawn to the function's first `GET /invocation/next`, i.e. the cold start
    /// until it is ready for its first event, once it asked.
    pub fn ready_after(&self) -> Option<Duration> {
        let first = *self.shared.first_next.borrow();
        first.map(|at| at.saturating_duration_since(self.spawned_at))
    }

    /// Waits until the function asks for its first event and returns the time from spawn to
    /// then ([`FunctionProcess::ready_after`]). Fails, with the end of its log, if the process
    /// ends first or `timeout` passes.
    pub async fn ready(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let mut first = self.shared.first_next.subscribe();
        let mut exited = self.shared.exited.subscribe();
        tokio::select! {
            biased;
            at = first.wait_for(Option::is_some) => {
                let at = at.ok().and_then(|at| *at);
                at.map(|at| at.saturating_duration_since(self.spawned_at))
                    .ok_or_else(|| anyhow!("the runtime API stopped"))
            }
            status = exited.wait_for(Option::is_some) => {
                let status = status.ok().and_then(|s| s.clone()).unwrap_or_default();
                bail!(
                    "{} ended ({status}) before asking for its first event; {}",
                    self.name,
                    self.describe_log()
                )
            }
            () = tokio::time::sleep(timeout) => bail!(
                "{} did not ask for an event within {timeout:?}; {}",
                self.name,
                self.describe_log()
            ),
        }
    }

    /// How the process ended, if it has (as seen by the exit watcher, within ~20 ms).
    pub fn exit_status(&self) -> Option<String> {
        if self.shared.generation.load(Ordering::SeqCst) != self.generation {
            return None;
        }
        self.shared.exited.borrow().clone()
    }

    /// Kills the process (SIGKILL) and reaps it; nothing if it already ended. Idempotent.
    pub fn kill(&mut self) {
        let child = lock(&self.child).take();
        let Some(mut child) = child else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let ended = match child.wait() {
            Ok(status) => format!("killed ({status})"),
            Err(e) => format!("killed (cannot wait for it: {e})"),
        };
        if self.shared.generation.load(Ordering::SeqCst) == self.generation {
            self.shared.exited.send_if_modified(|exited| match exited {
                Some(_) => false,
                None => {
                    *exited = Some(ended);
                    true
                }
            });
        }
    }

    fn describe_log(&self) -> String {
        let tail = self.log_tail(30);
        if tail.trim().is_empty() {
            format!("its log {} is empty", self.log.display())
        } else {
            format!("its log {} ends with:\n{tail}", self.log.display())
        }
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The JSON body of an API Gateway v2 (HTTP API) response a function answered; panics if
/// it is not JSON text.
pub fn api_gateway_json_body(response: &Value) -> Value {
    assert_ne!(response["isBase64Encoded"], true, "a text body: {response}");
    let text = response["body"].as_str().unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {response}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_invocation_nobody_takes_times_out_and_is_withdrawn() {
        let api = RuntimeApi::start().await;
        let err = api
            .invoke(json!({"hello": "world"}), Duration::from_millis(100))
            .await
            .expect_err("nobody answers");
        assert!(matches!(err, InvocationError::Timeout(_)), "{err}");
        assert!(lock(&api.shared.waiters).is_empty());
        assert_eq!(lock(&api.shared.finished).len(), 1);
    }

    #[tokio::test]
    async fn an_oversized_event_is_refused_before_queueing() {
        let api = RuntimeApi::start().await;
        let big = "x".repeat(MAX_PAYLOAD_BYTES);
        let err = api
            .invoke(json!({ "big": big }), Duration::from_secs(1))
            .await
            .expect_err("too large");
        assert!(matches!(err, InvocationError::EventTooLarge(_)), "{err}");
    }

    #[tokio::test]
    async fn a_binary_that_exits_at_once_is_reported_with_its_log() {
        let api = RuntimeApi::start().await;
        let endpoints = LocalEndpoints {
            dynamodb: "http://127.0.0.1:9".into(),
            moto: "http://127.0.0.1:9".into(),
        };
        let function = api
            .spawn_function(Path::new("/bin/sh"), &endpoints, &[("CONDUIT_TEST", "x")])
            .expect("spawn");
        let err = function
            .ready(Duration::from_secs(10))
            .await
            .expect_err("sh without a script exits");
        assert!(format!("{err:#}").contains("ended"), "{err:#}");
        let err = api
            .invoke(json!({}), Duration::from_secs(10))
            .await
            .expect_err("no function");
        assert!(matches!(err, InvocationError::Exited(_)), "{err}");
    }

    #[test]
    fn leftover_placeholders_are_found() {
        assert_eq!(
            leftover_placeholder(r#"{"a":"__USER_ID__"}"#),
            Some("__USER_ID__")
        );
        assert_eq!(leftover_placeholder(r#"x__A1__y"#), Some("__A1__"));
        assert_eq!(
            leftover_placeholder(r#"{"a":"__lower__", "b": "____"}"#),
            None
        );
        assert_eq!(leftover_placeholder("a__B"), None);
    }

    #[test]
    fn a_function_error_is_read_from_the_body_or_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "lambda-runtime-function-error-type",
            HeaderValue::from_static("Runtime.Unhandled"),
        );
        let from_body = function_error(&headers, br#"{"errorType":"X","errorMessage":"boom"}"#);
        assert_eq!(from_body.error_type, "X");
        assert_eq!(from_body.error_message, "boom");
        let from_header = function_error(&headers, b"plain text");
        assert_eq!(from_header.error_type, "Runtime.Unhandled");
        assert_eq!(from_header.error_message, "plain text");
    }
}
