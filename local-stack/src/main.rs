//! `local-stack`: starts DynamoDB Local and moto, provisions everything, serves the API on http://127.0.0.1:3000/api until Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use common::config::{optional, JwtSettings, DEFAULT_JWT_TTL_SECONDS, DEFAULT_TABLE_PREFIX};
use local_aws::emulators::{
    workspace_root, DynamoDbLocal, DynamoDbLocalOptions, Moto, MotoOptions, OpenSearchNode,
    OpenSearchOptions, Storage,
};
use local_aws::LocalEndpoints;
use local_stack::{SearchBackend, StackConfig};
use search::SearchConfig;

fn parse_env<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match optional(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| anyhow::anyhow!("environment variable {name} is invalid: {raw:?}")),
    }
}

/// `JWT_SECRET`, or a secret generated on the first run and kept under the data folder so
/// that tokens survive a restart.
fn jwt_settings(local: &Path) -> anyhow::Result<JwtSettings> {
    if optional("JWT_SECRET").is_some() {
        return Ok(JwtSettings::from_env()?);
    }
    let path = local.join("jwt-secret");
    let secret = match std::fs::read_to_string(&path) {
        Ok(secret) => secret.trim().to_owned(),
        Err(_) => {
            let secret = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            std::fs::create_dir_all(local)?;
            std::fs::write(&path, &secret)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("local-stack: generated a JWT secret in {}", path.display());
            secret
        }
    };
    let ttl = parse_env("JWT_TTL_SECONDS", DEFAULT_JWT_TTL_SECONDS)?;
    Ok(JwtSettings::new(
        secret.into_bytes(),
        Duration::from_secs(ttl),
    )?)
}

/// Where the search read model lives.
enum Search {
    /// A backend the stack does not start: the embedded engine, or `OPENSEARCH_URL`.
    Given(SearchBackend),
    /// A local OpenSearch node to start (`CONDUIT_SEARCH=opensearch` without `OPENSEARCH_URL`).
    LocalNode { port: u16 },
}

/// The search read model as the environment asks for it, read (and checked, with the errors
/// of [`SearchConfig::from_env`]) before anything starts. The embedded engine keeps its
/// indexes under `<local>/data/search` unless CONDUIT_SEARCH_DIR says otherwise.
fn search_from_env(prefix: &str, local: &Path) -> anyhow::Result<Search> {
    if optional("CONDUIT_SEARCH").as_deref() == Some("opensearch")
        && optional("OPENSEARCH_URL").is_none()
    {
        return Ok(Search::LocalNode {
            port: parse_env("CONDUIT_OPENSEARCH_PORT", 8102u16)?,
        });
    }
    let backend = match SearchConfig::from_env(prefix)
        .map_err(anyhow::Error::msg)?
        .backend
    {
        SearchBackend::Embedded { dir: None } => SearchBackend::Embedded {
            dir: Some(local.join("data").join("search")),
        },
        backend => backend,
    };
    Ok(Search::Given(backend))
}

/// Runs DynamoDB Local and moto (and, with CONDUIT_SEARCH=opensearch, an OpenSearch node),
/// provisions every resource and serves the API on http://127.0.0.1:3000/api until Ctrl-C.
///
/// Configured by environment variables only (see the README): CONDUIT_LISTEN,
/// CONDUIT_LOCAL_DIR, CONDUIT_TABLE_PREFIX, CONDUIT_DYNAMODB_PORT, CONDUIT_MOTO_PORT,
/// CONDUIT_RETRY_DELAY_SECONDS, CONDUIT_STREAM_POLL_MS, CONDUIT_WRITE_WAIT_MS,
/// CONDUIT_READ_WAIT_MS, JWT_SECRET, JWT_TTL_SECONDS, RUST_LOG; for the search read model
/// CONDUIT_SEARCH (`embedded`, the default, or `opensearch`), CONDUIT_SEARCH_DIR (the embedded
/// engine's indexes; default `<local dir>/data/search`), OPENSEARCH_URL (an OpenSearch to use;
/// unset with `opensearch`: a local node is started, its data under
/// `<local dir>/data/opensearch`), CONDUIT_OPENSEARCH_PORT (that node's port, default 8102),
/// OPENSEARCH_SIGV4.
#[derive(clap::Parser, Debug)]
#[command(name = "local-stack")]
struct Args {}

fn main() -> anyhow::Result<()> {
    <Args as clap::Parser>::parse();
    common::telemetry::init();
    let started = Instant::now();
    let root = workspace_root();
    let local = optional("CONDUIT_LOCAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".local"));
    let listen: SocketAddr = parse_env("CONDUIT_LISTEN", SocketAddr::from(([127, 0, 0, 1], 3000)))?;
    let prefix =
        optional("CONDUIT_TABLE_PREFIX").unwrap_or_else(|| DEFAULT_TABLE_PREFIX.to_owned());
    let retry_delay = Duration::from_secs(parse_env("CONDUIT_RETRY_DELAY_SECONDS", 2u64)?);
    let stream_poll_interval = Duration::from_millis(parse_env("CONDUIT_STREAM_POLL_MS", 20u64)?);
    let search = search_from_env(&prefix, &local)?;
    let jwt = jwt_settings(&local)?;
    let logs = local.join("logs");
    std::fs::create_dir_all(&logs)?;

    // The emulators are started from this (main) thread, which lives as long as the process:
    // they are killed with it even if it dies without cleaning up.
    let data = local.join("data").join("dynamodb");
    println!(
        "local-stack: starting DynamoDB Local (data in {})",
        data.display()
    );
    let dynamodb = DynamoDbLocal::start(DynamoDbLocalOptions {
        port: Some(parse_env("CONDUIT_DYNAMODB_PORT", 8100u16)?),
        storage: Storage::Dir(data),
        log_file: Some(logs.join("dynamodb-local.log")),
        ..DynamoDbLocalOptions::default()
    })?;
    println!("local-stack: starting moto (SNS, SQS)");
    let moto = Moto::start(MotoOptions {
        port: Some(parse_env("CONDUIT_MOTO_PORT", 8101u16)?),
        log_file: Some(logs.join("moto.log")),
        ..MotoOptions::default()
    })?;
    let (search, opensearch) = match search {
        Search::Given(backend) => (backend, None),
        Search::LocalNode { port } => {
            let home = local.join("data").join("opensearch");
            println!(
                "local-stack: starting OpenSearch (data in {})",
                home.display()
            );
            let node_started = Instant::now();
            let node = OpenSearchNode::start(OpenSearchOptions {
                port: Some(port),
                home: Some(home),
                log_file: Some(logs.join("opensearch.log")),
                ..OpenSearchOptions::default()
            })?;
            println!(
                "local-stack: OpenSearch at {} after {:.1} s",
                node.endpoint(),
                node_started.elapsed().as_secs_f64()
            );
            let backend = SearchBackend::OpenSearch {
                url: node.endpoint(),
                sigv4: false,
            };
            (backend, Some(node))
        }
    };
    let endpoints = LocalEndpoints {
        dynamodb: dynamodb.endpoint(),
        moto: moto.endpoint(),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        println!("local-stack: creating tables, topic, queues and subscriptions ({prefix}*)");
        let stack = local_stack::start(StackConfig {
            endpoints: endpoints.clone(),
            prefix,
            jwt,
            listen,
            retry_delay: Some(retry_delay),
            stream_poll_interval,
            search,
            api_meter: None,
            pipeline_meter: None,
        })
        .await?;
        println!(
            "local-stack: DynamoDB Local at {} , SNS/SQS (moto) at {}",
            endpoints.dynamodb, endpoints.moto
        );
        println!(
            "local-stack: API ready at {} after {:.1} s (Ctrl-C stops everything)",
            stack.api_url(),
            started.elapsed().as_secs_f64()
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        println!("local-stack: stopping");
        stack.stop().await;
        anyhow::Ok(())
    });
    drop(opensearch);
    drop(moto);
    drop(dynamodb);
    result
}
