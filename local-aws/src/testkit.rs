//! Shared emulators for the integration tests of every crate.
//!
//! ```no_run
//! # async fn example() {
//! let prefix = local_aws::testkit::unique_prefix("users");
//! let (clients, provisioned) = local_aws::testkit::provisioned(&prefix).await;
//! # let _ = (clients, provisioned);
//! # }
//! ```
//!
//! One in-memory DynamoDB Local and one moto server serve the whole test binary: they start on
//! the first call of [`emulators`] (about 1.5 s) and die with the process. Tests keep apart by
//! giving every resource a [`unique_prefix`]. Nothing here needs the emulators to be running
//! beforehand; `./dev test` only makes sure they are installed.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Once, OnceLock};
use std::time::Duration;

use crate::{Clients, LocalEndpoints};

use crate::emulators::{
    DynamoDbLocal, DynamoDbLocalOptions, Moto, MotoOptions, OpenSearchNode, OpenSearchOptions,
    Storage,
};
use crate::provision::{provision, Provisioned};

/// The endpoints, or why the emulators could not start (kept, so that every test of the
/// binary fails at once with the same message instead of each trying again).
static ENDPOINTS: OnceLock<Result<LocalEndpoints, String>> = OnceLock::new();
static METADATA_OFF: Once = Once::new();
/// The URL of this test binary's OpenSearch node, or why it could not start.
static OPENSEARCH: OnceLock<Result<String, String>> = OnceLock::new();

/// Log files of emulators older than this are removed when a test binary starts its own.
const LOG_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Sets `AWS_EC2_METADATA_DISABLED=true` (once), so that no SDK client built from the
/// environment ever tries the instance metadata address.
fn disable_instance_metadata() {
    METADATA_OFF.call_once(|| std::env::set_var("AWS_EC2_METADATA_DISABLED", "true"));
}

/// The endpoints of this test binary's emulators, started on the first call.
///
/// The emulators are started from dedicated threads that stay parked for the rest of the
/// process, so the kernel kills them (`PR_SET_PDEATHSIG`) when the test binary exits, however
/// it exits. Blocks for the start-up on the first call (concurrent callers wait for it);
/// panics if an emulator cannot start (the message names the missing piece or the log).
pub fn emulators() -> &'static LocalEndpoints {
    disable_instance_metadata();
    match ENDPOINTS.get_or_init(start_emulators) {
        Ok(endpoints) => endpoints,
        Err(e) => panic!("{e}"),
    }
}

fn start_emulators() -> Result<LocalEndpoints, String> {
    prune_old_logs(&log_dir());
    let ddb_log = emulator_log("dynamodb-local");
    let moto_log = emulator_log("moto");

    let ddb = keep_alive("conduit-test-dynamodb-local", {
        let log = ddb_log.clone();
        move || {
            DynamoDbLocal::start(DynamoDbLocalOptions {
                storage: Storage::InMemory,
                log_file: Some(log),
                ..DynamoDbLocalOptions::default()
            })
            .map(|e| (e.endpoint(), e))
        }
    })?;
    let moto = keep_alive("conduit-test-moto", {
        let log = moto_log.clone();
        move || {
            Moto::start(MotoOptions {
                log_file: Some(log),
                ..MotoOptions::default()
            })
            .map(|e| (e.endpoint(), e))
        }
    })?;
    let dynamodb = ddb
        .recv()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the DynamoDB Local thread died")))
        .map_err(|e| format!("cannot start DynamoDB Local for tests: {e:#}"))?;
    let moto = moto
        .recv()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the moto thread died")))
        .map_err(|e| format!("cannot start moto server for tests: {e:#}"))?;
    eprintln!(
        "testkit: DynamoDB Local at {dynamodb} (log {}), moto at {moto} (log {})",
        ddb_log.display(),
        moto_log.display()
    );
    Ok(LocalEndpoints { dynamodb, moto })
}

/// The URL (`http://127.0.0.1:PORT`) of this test binary's single-node OpenSearch, started on
/// the first call (about 3 s; it dies with the process, as [`emulators`] do). Tests keep apart
/// by the index names they use ([`unique_prefix`]). Panics if the node cannot start (the
/// message says how to build its launcher, or where its log is).
pub fn opensearch() -> &'static str {
    match OPENSEARCH.get_or_init(start_opensearch) {
        Ok(url) => url,
        Err(e) => panic!("{e}"),
    }
}

fn start_opensearch() -> Result<String, String> {
    let log = emulator_log("opensearch");
    let started = std::time::Instant::now();
    let ready = keep_alive("conduit-test-opensearch", {
        let log = log.clone();
        move || {
            OpenSearchNode::start(OpenSearchOptions {
                log_file: Some(log),
                ..OpenSearchOptions::default()
            })
            .map(|node| (node.endpoint(), node))
        }
    })?;
    let url = ready
        .recv()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the OpenSearch thread died")))
        .map_err(|e| format!("cannot start OpenSearch for tests: {e:#}"))?;
    eprintln!(
        "testkit: OpenSearch at {url} in {:.1} s (log {})",
        started.elapsed().as_secs_f64(),
        log.display()
    );
    Ok(url)
}

/// Runs `start` on a new thread that then parks forever, keeping the started emulator (and the
/// spawning thread its `PR_SET_PDEATHSIG` is tied to) alive until the process exits.
fn keep_alive<T: Send + 'static>(
    name: &str,
    start: impl FnOnce() -> anyhow::Result<(String, T)> + Send + 'static,
) -> Result<mpsc::Receiver<anyhow::Result<String>>, String> {
    let (ready, stop) = on_own_thread(name, start)?;
    // Never dropped, so the owning thread waits for good.
    std::mem::forget(stop);
    Ok(ready)
}

/// Runs `start` on a new thread that keeps the started emulator until the returned sender is
/// dropped. The emulator must live on a thread that outlasts it: the kernel kills it
/// (`PR_SET_PDEATHSIG`) when the thread that spawned it ends, and tokio ends idle blocking
/// threads.
fn on_own_thread<T: Send + 'static>(
    name: &str,
    start: impl FnOnce() -> anyhow::Result<(String, T)> + Send + 'static,
) -> Result<(mpsc::Receiver<anyhow::Result<String>>, mpsc::Sender<()>), String> {
    let (tx, rx) = mpsc::channel();
    let (stop, stopped) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || match start() {
            Ok((endpoint, emulator)) => {
                let _ = tx.send(Ok(endpoint));
                // Returns once every sender is dropped.
                let _ = stopped.recv();
                drop(emulator);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        });
    spawned.map_err(|e| format!("cannot spawn thread {name}: {e}"))?;
    Ok((rx, stop))
}

/// An in-memory DynamoDB Local of its own, for work that must not share the process's
/// emulator; it stops when this is dropped.
pub struct OwnDynamoDbLocal {
    pub endpoint: String,
    _stop: mpsc::Sender<()>,
}

impl OwnDynamoDbLocal {
    /// Starts one, logging to `log`. Blocks until it answers.
    pub fn start(log: PathBuf) -> anyhow::Result<Self> {
        let (ready, stop) = on_own_thread("conduit-own-dynamodb-local", move || {
            DynamoDbLocal::start(DynamoDbLocalOptions {
                storage: Storage::InMemory,
                log_file: Some(log),
                ..DynamoDbLocalOptions::default()
            })
            .map(|e| (e.endpoint(), e))
        })
        .map_err(anyhow::Error::msg)?;
        let endpoint = ready
            .recv()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the DynamoDB Local thread died")))?;
        Ok(Self {
            endpoint,
            _stop: stop,
        })
    }
}

/// The log file of this test binary's emulator `kind`: `<binary>-<pid>-<kind>.log` in [`log_dir`].
fn emulator_log(kind: &str) -> PathBuf {
    let stem = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".to_owned());
    log_dir().join(format!("{stem}-{}-{kind}.log", std::process::id()))
}

/// Where the emulators of test binaries write their logs.
pub fn log_dir() -> PathBuf {
    std::env::temp_dir().join("conduit-emulators")
}

fn prune_old_logs(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > LOG_MAX_AGE);
        if old && entry.path().extension().is_some_and(|e| e == "log") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A fresh resource prefix `t{tag}{8 random letters/digits}-`, valid for table, topic and
/// queue names; `tag` is reduced to at most 16 ASCII letters and digits.
pub fn unique_prefix(tag: &str) -> String {
    let tag: String = tag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("t{tag}{}-", &random[..8])
}

/// Clients for the shared emulators (starting them if needed).
pub async fn clients() -> Clients {
    Clients::local(emulators()).await
}

/// Clients for the shared emulators and every resource provisioned under `prefix`. Panics if
/// provisioning fails.
pub async fn provisioned(prefix: &str) -> (Clients, Provisioned) {
    let clients = clients().await;
    match provision(&clients, prefix).await {
        Ok(p) => (clients, p),
        Err(e) => panic!("provisioning {prefix:?} on the test emulators failed: {e:#}"),
    }
}
