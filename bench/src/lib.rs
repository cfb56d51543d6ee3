//! The Conduit-ES benchmark: one run starts in-memory emulators, measures the machine's limits
//! (raw DynamoDB Local and SNS→SQS calls), then the API, projection lag, replay, cost per call,
//! the Lambda binaries, the feed's fan-out and commands against long streams, and writes every
//! figure beside its baseline as Markdown, JSON and SVG charts into one folder. `./dev bench`
//! runs it at full scale; `--smoke` runs it tiny (the test command does, so that it never
//! rots).

pub mod api;
pub mod baselines;
pub mod charts;
pub mod client;
pub mod cost;
pub mod feed;
pub mod history;
pub mod lag;
pub mod lambdas;
pub mod markdown;
pub mod memory;
pub mod replay_rate;
pub mod report;
pub mod stack;
pub mod stats;
pub mod streams;
pub mod summary;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::report::{Meta, Report};

/// How much each section does.
#[derive(Clone, Debug, Serialize)]
pub struct Scale {
    /// Users and articles in the store while the API is measured.
    pub users: usize,
    pub articles: usize,
    /// Raw calls per baseline operation and concurrency.
    pub baseline_samples: usize,
    /// Concurrencies of the raw DynamoDB baselines.
    pub baseline_concurrencies: Vec<usize>,
    /// Calls per endpoint and concurrency.
    pub endpoint_samples: usize,
    pub endpoint_concurrencies: Vec<usize>,
    /// The mixed workload: concurrencies and seconds at each.
    pub mixed_concurrencies: Vec<usize>,
    pub mixed_seconds: f64,
    /// Write rates of the lag measurement and seconds of writing at each.
    pub lag_rates: Vec<f64>,
    pub lag_seconds: f64,
    /// Events in the replayed log.
    pub replay_events: usize,
    /// Workers the rebuilds run on the full pass's units (`replay rebuild --workers`).
    pub replay_workers: usize,
    /// Also kill a `rebuild all` half way through (its task aborted) and resume it.
    pub replay_kill_resume: bool,
    /// Count the rebuilds' requests, in a round of their own (not timed) before the timed ones.
    pub replay_metered: bool,
    /// Calls per endpoint whose whole-pipeline cost is counted.
    pub cost_calls: usize,
    /// Starts of each Lambda binary.
    pub lambda_starts: usize,
    /// Followers of the author whose publish and delete the feed section fans out, and the
    /// small fan-out budget it repeats them with (none: not repeated).
    pub feed_followers: usize,
    pub feed_budget_ms: Option<u64>,
    /// Events in each stream the stream-length section sends commands to (before its first
    /// command; the shortest is the baseline of the others), and the commands sent to each,
    /// one after another.
    pub stream_lengths: Vec<usize>,
    pub stream_samples: usize,
    /// The sections to measure (all of them unless a run asks for fewer).
    pub sections: Vec<Section>,
}

/// A part of the run that can be measured alone. The API part holds the API, lag and cost
/// sections (they share the loaded stack) and needs the baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Baselines,
    Api,
    Replay,
    Lambdas,
    Feed,
    Streams,
}

impl Section {
    pub const ALL: [Section; 6] = [
        Section::Baselines,
        Section::Api,
        Section::Replay,
        Section::Lambdas,
        Section::Feed,
        Section::Streams,
    ];
}

impl Scale {
    /// What the issue asks: 1,000 users and 10,000 articles, concurrency 1 and 16, mixed at
    /// 1, 8 and 32, lag at 10, 50 and 100 writes/s, replay of 100,000 events, commands on
    /// streams of 1, 1,000 and 10,000 events.
    pub fn full() -> Self {
        Self {
            users: 1_000,
            articles: 10_000,
            baseline_samples: 2_000,
            baseline_concurrencies: vec![1, 8, 16, 32],
            endpoint_samples: 300,
            endpoint_concurrencies: vec![1, 16],
            mixed_concurrencies: vec![1, 8, 32],
            mixed_seconds: 30.0,
            lag_rates: vec![10.0, 50.0, 100.0],
            lag_seconds: 20.0,
            replay_events: 100_000,
            replay_workers: 1,
            replay_kill_resume: false,
            replay_metered: true,
            cost_calls: 50,
            lambda_starts: 10,
            feed_followers: 10_000,
            feed_budget_ms: Some(500),
            stream_lengths: vec![1, 1_000, 10_000],
            stream_samples: 200,
            sections: Section::ALL.to_vec(),
        }
    }

    /// Every section, tiny: for the test command.
    pub fn smoke() -> Self {
        Self {
            users: 6,
            articles: 12,
            baseline_samples: 20,
            baseline_concurrencies: vec![1, 4],
            endpoint_samples: 3,
            endpoint_concurrencies: vec![1, 4],
            mixed_concurrencies: vec![1, 4],
            mixed_seconds: 1.0,
            lag_rates: vec![2.0, 5.0],
            lag_seconds: 1.0,
            replay_events: 600,
            replay_workers: 1,
            replay_kill_resume: false,
            replay_metered: true,
            cost_calls: 2,
            lambda_starts: 1,
            feed_followers: 30,
            feed_budget_ms: None,
            // Long enough for snapshots: 150 events are written with two (at 90 or 91, and 150).
            stream_lengths: vec![1, 20, 150],
            stream_samples: 5,
            sections: Section::ALL.to_vec(),
        }
    }
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `full` or `smoke`.
    pub mode: String,
    pub scale: Scale,
    /// The folder the report and charts go to (created).
    pub out: PathBuf,
    /// Where `cargo lambda build` put `<bin>/bootstrap` (the Lambda binaries and hello-lambda).
    pub lambda_dir: PathBuf,
    /// The Lambda binaries to measure, by name.
    pub lambda_bins: Vec<String>,
    /// The hello-world baseline binary.
    pub hello: PathBuf,
}

/// Runs every section and writes the report; returns it.
pub async fn run(config: &Config) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut report = Report {
        meta: Meta {
            mode: config.mode.clone(),
            started_at: now_rfc3339(),
            git_commit: git_commit(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: memory_gib(),
            scale: serde_json::to_value(&config.scale)?,
            ..Meta::default()
        },
        ..Report::default()
    };
    let endpoints = local_aws::testkit::emulators().clone();
    let scale = &config.scale;
    let wanted = |section: Section| scale.sections.contains(&section);
    anyhow::ensure!(
        !wanted(Section::Api) || wanted(Section::Baselines),
        "the API section needs the baselines (its figures are divided by them)"
    );
    let skipped: Vec<String> = Section::ALL
        .iter()
        .filter(|s| !wanted(**s))
        .map(|s| format!("{s:?}").to_lowercase())
        .collect();
    if !skipped.is_empty() {
        report.meta.notes.push(format!(
            "This run measured only some sections; left out: {}.",
            skipped.join(", ")
        ));
    }

    if wanted(Section::Baselines) {
        step(1, "baselines: raw DynamoDB Local and SNS→SQS calls");
        report.baselines = baselines::measure(&endpoints, scale)
            .await
            .context("measuring the baselines")?;
        checkpoint(config, &mut report, started)?;
    }

    if wanted(Section::Api) {
        step(2, "API, projection lag and cost per call on a loaded stack");
        let stack = api::measure_stack(&endpoints, scale, &report.baselines)
            .await
            .context("measuring the API")?;
        report.api = Some(stack.api);
        report.lag = Some(stack.lag);
        report.cost = Some(stack.cost);
        report.meta.notes.extend(stack.notes);
        checkpoint(config, &mut report, started)?;
    }

    if wanted(Section::Replay) {
        step(4, "replay of the whole log");
        report.replay = Some(
            replay_rate::measure(&endpoints, scale)
                .await
                .context("measuring the replay")?,
        );
        checkpoint(config, &mut report, started)?;
    }

    if wanted(Section::Lambdas) {
        step(6, "Lambda binaries");
        report.lambdas = Some(
            lambdas::measure(config, &endpoints)
                .await
                .context("measuring the Lambda binaries")?,
        );
        checkpoint(config, &mut report, started)?;
    }

    if wanted(Section::Feed) {
        step(7, "feed fan-out to an author's followers");
        report.feed = Some(
            feed::measure(&endpoints, scale, &report.baselines)
                .await
                .context("measuring the feed fan-out")?,
        );
        checkpoint(config, &mut report, started)?;
    }

    if wanted(Section::Streams) {
        step(8, "command latency against stream length");
        report.streams = Some(
            streams::measure(&endpoints, scale)
                .await
                .context("measuring commands against stream length")?,
        );
        checkpoint(config, &mut report, started)?;
    }
    Ok(report)
}

/// Writes the report with what is measured so far, so that a run stopped midway still leaves
/// its figures (the sections not reached are absent).
fn checkpoint(config: &Config, report: &mut Report, started: Instant) -> anyhow::Result<()> {
    report.summary = summary::rows(report);
    report.meta.seconds = started.elapsed().as_secs_f64();
    write(config, report)
}

/// Deletes what a section provisioned under `prefix`: the tables (the projections' rebuilt
/// versions included), the topic and the queues.
pub(crate) async fn clean_up(clients: &local_aws::Clients, prefix: &str) -> anyhow::Result<()> {
    local_aws::provision::teardown(clients, prefix).await?;
    for table in local_aws::provision::existing_table_names(clients, prefix).await? {
        common::tables::delete(&clients.dynamodb, &table).await?;
    }
    Ok(())
}

/// Writes `report.json`, `report.md` and the charts into `config.out`.
pub fn write(config: &Config, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("creating {}", config.out.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(config.out.join("report.json"), json + "\n")?;
    draw(report, &config.out)
}

/// Redraws `report.md` and the charts of `dir` from its `report.json`, measuring nothing.
/// The summary is kept as the run wrote it.
pub fn render(dir: &std::path::Path) -> anyhow::Result<()> {
    let path = dir.join("report.json");
    let json =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let report: Report = serde_json::from_str(&json)
        .with_context(|| format!("{} is not a report of this version", path.display()))?;
    draw(&report, dir)
}

/// Writes `report.md` and the charts of `report` into `dir`.
fn draw(report: &Report, dir: &std::path::Path) -> anyhow::Result<()> {
    let charts = charts::draw(report, dir).context("drawing the charts")?;
    std::fs::write(dir.join("report.md"), markdown::render(report, &charts))?;
    Ok(())
}

/// The numbered sections of the report.
const REPORT_SECTIONS: usize = 8;

/// Prints which section of the report runs now (its number there), on stderr.
pub fn step(n: usize, what: &str) {
    eprintln!("bench: [{n}/{REPORT_SECTIONS}] {what}");
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn git_commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}
