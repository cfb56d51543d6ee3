//! `replay`: rebuilds projections from the events table into new versions, switches the read side to them, verifies and removes versions.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::projections::Projection;
use replay::dlq::{self, Dlq};
use replay::fan_out_failures::FanOutFailures;
use replay::{Progress, RebuildOptions, Replay, ReplayError};

/// Rebuild projections (read models) from the events table, side by side with the live ones.
///
/// Configured like the services: CONDUIT_TABLE_PREFIX (default conduit-), the AWS environment
/// (AWS_REGION, credentials; AWS_ENDPOINT_URL_DYNAMODB for the local stack's DynamoDB Local,
/// which serves the stream too unless AWS_ENDPOINT_URL_DYNAMODB_STREAMS says otherwise),
/// and the search settings CONDUIT_SEARCH, CONDUIT_SEARCH_DIR, OPENSEARCH_URL.
/// Exit status: 0 done, 1 verification found differences, 2 usage error or failure.
#[derive(Debug, Parser)]
#[command(name = "replay", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a new version of a projection (or all) from the log, catch up, and switch to it.
    Rebuild {
        /// users, articles, feed, search or all.
        target: Target,
        /// Parallel scan segments of the events table: the full pass's units, one per segment
        /// and round [default: one per 768 KiB of the table, at least 8]
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        segments: Option<u32>,
        /// Aggregates applied at once within a catch-up pass.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
        concurrency: u32,
        /// BatchWriteItem requests in flight while the full pass writes the new version.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=512))]
        in_flight: u32,
        /// Continue the rebuild in progress (after a kill or a failure) from where it was.
        #[arg(long)]
        resume: bool,
        /// After the switch, compare the new version with the one it replaced.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        work: WorkArgs,
    },
    /// Help the full passes of the rebuilds in progress (started by `replay rebuild`, here or
    /// on another machine): claim their units until every one is done. The rebuild that
    /// started a pass then catches up and switches.
    Worker {
        /// How long to wait for a full pass to begin when none is in progress.
        #[arg(long, default_value_t = 0)]
        wait_secs: u64,
        #[command(flatten)]
        work: WorkArgs,
    },
    /// Show every projection's versions and the rebuilds in progress, then each projector's
    /// queue, in-flight messages, age of the oldest message (from CloudWatch, on AWS), dead
    /// letters and lag.
    Status,
    /// Compare a version of a projection with the active one, item by item.
    Verify {
        projection: Projection,
        /// The version to compare (default: the newest version that is not active).
        #[arg(long)]
        version: Option<u32>,
    },
    /// Delete a version's tables (or search index); not the active one, nor one being built.
    Remove {
        projection: Projection,
        #[arg(long)]
        version: u32,
    },
    /// Give up the rebuild in progress (its version stays until removed).
    Abort { projection: Projection },
    /// A projector's dead-letter queue: what could not be applied and why, put it back, or
    /// delete it (the queues are found by name under CONDUIT_TABLE_PREFIX; the local stack's
    /// moto through AWS_ENDPOINT_URL_SQS).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

/// How the workers of a full pass run in this process.
#[derive(Debug, clap::Args)]
struct WorkArgs {
    /// Workers in this process, each claiming units with leases of its own.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Seconds a worker's lease on a unit holds without renewal (renewed every third): after
    /// a kill, its units are taken up again after this.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_secs: u64,
    /// Memory the full pass may use, in MiB: a quarter caches what earlier rounds wrote, and
    /// one unit is done at once per 32 MiB (at most 16).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
    memory_mib: u64,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Every dead letter: its event, when it was sent, how often and when it failed, and why.
    /// `fan-out`: the stream batches the fan-out gave up on.
    List {
        /// users, articles, feed, search or fan-out.
        source: Source,
    },
    /// Put dead letters back on the projector's queue: all of them, or one by message id.
    /// `fan-out`: publish the events of every failed stream batch again, read from the log.
    /// Safe to repeat after an interruption: the projector applies each event once.
    Redrive {
        source: Source,
        /// Every message of the dead-letter queue.
        #[arg(long, conflicts_with = "message", required_unless_present = "message")]
        all: bool,
        /// The message id `dlq list` shows.
        message: Option<String>,
    },
    /// Delete every dead letter (asks first unless --yes).
    Purge {
        source: Source,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// Whose dead letters: a projector's, or the fan-out's.
#[derive(Clone, Copy, Debug)]
enum Source {
    Projector(Projection),
    FanOut,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Projector(projection) => write!(f, "{projection}"),
            Source::FanOut => f.write_str("fan-out"),
        }
    }
}

impl std::str::FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "fan-out" {
            return Ok(Source::FanOut);
        }
        s.parse::<Projection>().map(Source::Projector).map_err(|_| {
            format!("unknown source {s:?}: expected users, articles, feed, search or fan-out")
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Target {
    One(Projection),
    All,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(Target::All);
        }
        s.parse::<Projection>().map(Target::One).map_err(|_| {
            format!("unknown projection {s:?}: expected users, articles, feed, search or all")
        })
    }
}

enum Outcome {
    Done,
    Differences,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_none() {
        // The progress bar owns stderr; only warnings and errors interrupt it.
        std::env::set_var("RUST_LOG", "warn");
    }
    common::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("replay: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Differences) => ExitCode::from(1),
        Err(error) => {
            eprintln!("replay: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome, ReplayError> {
    let base =
        common::config::table_names_from_env().map_err(|e| ReplayError::Invalid(e.to_string()))?;
    let search = search::VersionedSearch::from_env(&base.prefix).map_err(ReplayError::Invalid)?;
    let config = common::aws::config_from_env().await;
    let replay = Replay {
        client: aws_sdk_dynamodb::Client::new(&config),
        streams: streams_client(aws_sdk_dynamodbstreams::config::Builder::from(&config)),
        base,
        search,
        progress: Progress::new(true),
        in_process: false,
    };
    match cli.command {
        Command::Rebuild {
            target,
            segments,
            concurrency,
            in_flight,
            resume,
            verify,
            work,
        } => {
            let options = RebuildOptions {
                segments,
                concurrency: concurrency as usize,
                in_flight: in_flight as usize,
                resume,
                verify,
                workers: work.workers as usize,
                lease: std::time::Duration::from_secs(work.lease_secs),
                memory_bytes: (work.memory_mib << 20) as usize,
                ..RebuildOptions::default()
            };
            let drawing = replay.progress.spawn_drawing();
            let result = match target {
                Target::One(projection) => replay::rebuild(&replay, projection, &options)
                    .await
                    .map(|report| vec![report]),
                Target::All => {
                    replay::rebuild::rebuild_all(&replay, &Projection::ALL, &options).await
                }
            };
            replay.progress.stop();
            if let Some(drawing) = drawing {
                let _ = drawing.join();
            }
            let mut outcome = Outcome::Done;
            for report in result? {
                println!("{}", report.summary());
                if let Some(verify) = &report.verify {
                    print!("{}", verify.render());
                    if !verify.is_equal() {
                        outcome = Outcome::Differences;
                    }
                }
            }
            Ok(outcome)
        }
        Command::Worker { wait_secs, work } => {
            let options = replay::units::WorkOptions {
                workers: work.workers as usize,
                lease: std::time::Duration::from_secs(work.lease_secs),
                memory_bytes: (work.memory_mib << 20) as usize,
                ..replay::units::WorkOptions::default()
            };
            let drawing = replay.progress.spawn_drawing();
            let helped =
                replay::units::help(&replay, &options, std::time::Duration::from_secs(wait_secs))
                    .await;
            replay.progress.stop();
            if let Some(drawing) = drawing {
                let _ = drawing.join();
            }
            let helped = helped?;
            if helped.is_empty() {
                println!("no full pass is in progress");
            }
            for id in helped {
                println!("full pass {id}: every unit is done");
            }
            Ok(Outcome::Done)
        }
        Command::Status => {
            print!("{}", replay::versions::status(&replay).await?);
            let config = common::aws::config_from_env().await;
            let sqs = aws_sdk_sqs::Client::new(&config);
            let cloudwatch =
                replay::oldest::readable_here().then(|| aws_sdk_cloudwatch::Client::new(&config));
            let status = replay::status::status(&replay, &sqs, cloudwatch.as_ref()).await?;
            print!("\n{}", replay::status::render(&status));
            Ok(Outcome::Done)
        }
        Command::Verify {
            projection,
            version,
        } => {
            let (version, active) = match version {
                Some(version) => {
                    let state = replay::registry::read(&replay, projection).await?.state;
                    if !state.versions.contains(&version) {
                        return Err(ReplayError::Invalid(format!(
                            "{projection} has no version {version}"
                        )));
                    }
                    (version, state.active)
                }
                None => replay::verify::default_version(&replay, projection).await?,
            };
            let report = replay::verify(&replay, projection, version, active).await?;
            print!("{}", report.render());
            Ok(if report.is_equal() {
                Outcome::Done
            } else {
                Outcome::Differences
            })
        }
        Command::Remove {
            projection,
            version,
        } => {
            for removed in replay::versions::remove(&replay, projection, version).await? {
                println!("removed {removed}");
            }
            println!("{projection} version {version} removed");
            Ok(Outcome::Done)
        }
        Command::Dlq { command } => dlq(&replay, command).await,
        Command::Abort { projection } => {
            match replay::registry::abort(&replay, projection).await? {
                Some(version) => println!(
                    "the rebuild of {projection} into version {version} was given up; `replay remove {projection} --version {version}` deletes it"
                ),
                None => println!("no rebuild of {projection} is in progress"),
            }
            Ok(Outcome::Done)
        }
    }
}

async fn dlq(replay: &Replay, command: DlqCommand) -> Result<Outcome, ReplayError> {
    let config = common::aws::config_from_env().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let source = match &command {
        DlqCommand::List { source }
        | DlqCommand::Redrive { source, .. }
        | DlqCommand::Purge { source, .. } => *source,
    };
    let projection = match source {
        Source::Projector(projection) => projection,
        Source::FanOut => {
            let clients = replay::fan_out_failures::Clients {
                sqs,
                sns: aws_sdk_sns::Client::new(&config),
                streams: replay.streams.clone(),
                dynamodb: replay.client.clone(),
            };
            return fan_out_dlq(&clients, &replay.base, command).await;
        }
    };
    let queue = Dlq::resolve(&sqs, &replay.client, &replay.base, projection).await?;
    match command {
        DlqCommand::List { .. } => {
            print!("{}", dlq::render(projection, &queue.list().await?));
        }
        DlqCommand::Redrive { message, .. } => {
            let redriven = queue.redrive(message.as_deref()).await?;
            for id in &redriven.moved {
                println!("redriven {id}");
            }
            println!(
                "{projection}: {} message{} back on {}",
                redriven.moved.len(),
                if redriven.moved.len() == 1 { "" } else { "s" },
                queue.queue_url
            );
        }
        DlqCommand::Purge { yes, .. } => {
            let depth = queue.depth().await?;
            if !yes
                && !confirmed(&format!(
                    "delete the {depth} dead letter(s) of {projection}? [y/N] "
                ))
            {
                println!("nothing deleted");
                return Ok(Outcome::Done);
            }
            println!(
                "{projection}: {} dead letters deleted",
                queue.purge().await?
            );
        }
    }
    Ok(Outcome::Done)
}

async fn fan_out_dlq(
    clients: &replay::fan_out_failures::Clients,
    base: &common::config::TableNames,
    command: DlqCommand,
) -> Result<Outcome, ReplayError> {
    let failures = FanOutFailures::resolve(clients, base).await?;
    match command {
        DlqCommand::List { .. } => {
            print!(
                "{}",
                replay::fan_out_failures::render(&failures.list().await?)
            );
        }
        DlqCommand::Redrive {
            message: Some(_), ..
        } => {
            return Err(ReplayError::Invalid(
                "the fan-out's failures are redriven all at once: `replay dlq redrive fan-out --all`"
                    .into(),
            ));
        }
        DlqCommand::Redrive { .. } => {
            println!(
                "fan-out: {} events published again",
                failures.redrive().await?
            );
        }
        DlqCommand::Purge { yes, .. } => {
            if !yes && !confirmed("delete every stream batch the fan-out gave up on? [y/N] ") {
                println!("nothing deleted");
                return Ok(Outcome::Done);
            }
            println!(
                "fan-out: {} failure descriptions deleted",
                failures.purge().await?
            );
        }
    }
    Ok(Outcome::Done)
}

/// The DynamoDB Streams client of `config`. DynamoDB Local serves its streams on its own
/// port: with only `AWS_ENDPOINT_URL_DYNAMODB` set, the stream is read there too, never from
/// AWS's endpoint with the local stack's credentials.
fn streams_client(
    config: aws_sdk_dynamodbstreams::config::Builder,
) -> aws_sdk_dynamodbstreams::Client {
    let own = std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB_STREAMS").is_some();
    let config = match std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
        Ok(endpoint) if !own && !endpoint.is_empty() => config.endpoint_url(endpoint),
        _ => config,
    };
    aws_sdk_dynamodbstreams::Client::from_conf(config.build())
}

/// Asks `question` on stderr; true only for an answer of y or yes.
fn confirmed(question: &str) -> bool {
    eprint!("{question}");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}
