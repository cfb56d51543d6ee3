//! The report: every section's figures, each beside its baseline, written as JSON and Markdown.
//!
//! The section types are filled by their modules ([`crate::baselines`], [`crate::api`],
//! [`crate::lag`], [`crate::replay_rate`], [`crate::cost`], [`crate::lambdas`],
//! [`crate::feed`], [`crate::streams`]); raw samples are kept (not serialized) for the charts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::{Latency, VsBaseline};

/// Everything one run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub meta: Meta,
    pub baselines: Baselines,
    pub api: Option<ApiSection>,
    pub lag: Option<LagSection>,
    pub replay: Option<ReplaySection>,
    pub cost: Option<CostSection>,
    pub lambdas: Option<LambdaSection>,
    #[serde(default)]
    pub feed: Option<FeedSection>,
    #[serde(default)]
    pub streams: Option<StreamsSection>,
    /// The headline figures, each with its baseline (see [`crate::summary`]).
    pub summary: Vec<SummaryRow>,
}

/// How and where the run was made.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Meta {
    /// `full` or `smoke`.
    pub mode: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub seconds: f64,
    pub git_commit: Option<String>,
    pub cpus: usize,
    pub memory_gib: f64,
    /// The scale the run used (users, articles, samples...), as given.
    pub scale: serde_json::Value,
    /// Anything the run could not measure, and why.
    pub notes: Vec<String>,
}

// -------------------------------------------------------------------------------------------
// 1. Baselines

/// The limits of this machine: raw emulator calls with the same SDK clients.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Baselines {
    /// `GetItem`, `PutItem`, `Query`, `BatchWriteItem`, each at several concurrencies.
    pub dynamodb: Vec<RawOp>,
    /// SNS `Publish` → SQS `ReceiveMessage` (long polling) round trip, through a subscription.
    pub sns_to_sqs: Vec<RawOp>,
}

/// One raw operation at one concurrency.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RawOp {
    /// `GetItem`, `PutItem`, `Query`, `BatchWriteItem`, `SNS→SQS`.
    pub op: String,
    pub concurrency: usize,
    /// Per request.
    pub latency: Latency,
    /// Requests per second (for `BatchWriteItem`: items per second, see `unit`).
    pub per_second: f64,
    /// `requests`, `items` or `messages`.
    pub unit: String,
    #[serde(skip)]
    pub samples: Vec<Duration>,
}

impl Baselines {
    /// The measurement of `op` at `concurrency`, if made.
    pub fn find(&self, op: &str, concurrency: usize) -> Option<&RawOp> {
        self.dynamodb
            .iter()
            .chain(&self.sns_to_sqs)
            .find(|raw| raw.op == op && raw.concurrency == concurrency)
    }

    /// The measurement of `op` at the concurrency nearest to `concurrency`.
    pub fn nearest(&self, op: &str, concurrency: usize) -> Option<&RawOp> {
        self.dynamodb
            .iter()
            .chain(&self.sns_to_sqs)
            .filter(|raw| raw.op == op)
            .min_by_key(|raw| raw.concurrency.abs_diff(concurrency))
    }
}

// -------------------------------------------------------------------------------------------
// 2. API

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ApiSection {
    pub users: usize,
    pub articles: usize,
    /// Time to load the data through the API and let every read model show it.
    pub load_seconds: f64,
    pub endpoints: Vec<EndpointRun>,
    pub mixed: Vec<MixedRun>,
}

/// One RealWorld endpoint at one concurrency.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EndpointRun {
    /// `GET /api/articles/{slug}` (the OpenAPI path).
    pub endpoint: String,
    pub concurrency: usize,
    pub latency: Latency,
    pub per_second: f64,
    /// Answers other than the expected status (they are not in `latency`).
    pub errors: usize,
    /// p50 beside the raw DynamoDB operation closest to what the endpoint does
    /// (`GetItem` for reads, `PutItem` for writes) at the same concurrency.
    pub vs: VsBaseline,
    #[serde(skip)]
    pub samples: Vec<Duration>,
}

/// The mixed workload (mostly reads, some favorites and comments, a few publishes).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MixedRun {
    pub concurrency: usize,
    pub seconds: f64,
    pub requests: usize,
    pub errors: usize,
    pub per_second: f64,
    pub latency: Latency,
    /// Requests per second beside raw `GetItem`s per second at the nearest concurrency.
    pub vs: VsBaseline,
}

// -------------------------------------------------------------------------------------------
// 3. Projection lag

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LagSection {
    pub runs: Vec<LagRun>,
}

/// From a write's response to its visibility in one read model, at one write rate.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LagRun {
    /// `users`, `articles`, `search` or `feed`.
    pub read_model: String,
    /// The rate asked for.
    pub target_per_second: f64,
    /// The rate the writes were actually sent at.
    pub achieved_per_second: f64,
    pub writes: usize,
    /// Writes seen in the read model before the deadline (the others are not in `latency`).
    pub visible: usize,
    pub latency: Latency,
    /// p50 beside the raw SNS→SQS round trip p50.
    pub vs: VsBaseline,
    #[serde(skip)]
    pub samples: Vec<Duration>,
}

// -------------------------------------------------------------------------------------------
// 4. Replay

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplaySection {
    /// Events in the log.
    pub events: usize,
    /// Workers the rebuilds ran on their full passes' units.
    #[serde(default)]
    pub workers: usize,
    /// A `rebuild all` killed half way through and resumed (`--kill-resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_resume: Option<KillResume>,
    /// Wall time of `replay rebuild all` (one read of the log for the four).
    pub seconds: f64,
    /// Wall time of the four rebuilt one after the other, each reading the log.
    #[serde(default)]
    pub one_by_one_seconds: f64,
    /// Events read from the log per second, all projections rebuilt.
    pub per_second: f64,
    /// Items the new versions hold, all projections.
    #[serde(default)]
    pub items: u64,
    /// How long raw `BatchWriteItem` takes to write that many items.
    #[serde(default)]
    pub raw_seconds: f64,
    pub projections: Vec<ReplayProjection>,
    /// The peak resident memory of the benchmark's process during `replay rebuild all` (the
    /// kernel's high-water mark reset just before it): the rebuild's own, plus whatever of
    /// `rss_before_bytes` is still resident.
    #[serde(default)]
    pub peak_rss_bytes: u64,
    /// What the process held resident just before that rebuild began.
    #[serde(default)]
    pub rss_before_bytes: u64,
    /// Raw `BatchWriteItem` items per second, in the same run and emulator.
    pub raw_batch_write_per_second: f64,
    /// Items written per second of rebuild beside `raw_batch_write_per_second`: the ratio is
    /// raw time for the items / rebuild wall time (1 = as fast as raw writes).
    pub vs: VsBaseline,
}

/// A `rebuild all` killed half way through its full pass, then resumed with `--verify`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KillResume {
    /// When it was killed, from its start.
    pub killed_after_seconds: f64,
    /// Wall time of the resumed run, to the last switch and its verification.
    pub resumed_seconds: f64,
    /// Units of the full pass, and those the resumed run did again (in flight at the kill).
    pub units: u64,
    pub redone: u64,
    /// Whether every new version equals the version it replaced.
    pub equal: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplayProjection {
    pub projection: String,
    /// Events applied (every pass).
    pub applied: u64,
    /// Wall time, from allocating the version to the switch.
    pub seconds: f64,
    pub per_second: f64,
    /// Items the new version holds (tables or index, and checkpoints).
    #[serde(default)]
    pub items: u64,
    /// How long raw `BatchWriteItem` takes to write `items`, in the same run.
    #[serde(default)]
    pub raw_seconds: f64,
    /// `raw_seconds / seconds`.
    #[serde(default)]
    pub ratio: Option<f64>,
    #[serde(default)]
    pub full_seconds: f64,
    #[serde(default)]
    pub catch_up_passes: usize,
    #[serde(default)]
    pub catch_up_seconds: f64,
    /// Records the catch-up passes read (stream records, or events scanned in a fallback).
    #[serde(default)]
    pub catch_up_read: u64,
    /// The last pass, while the live projector was frozen.
    #[serde(default)]
    pub last_seconds: f64,
    #[serde(default)]
    pub last_read: u64,
    /// DynamoDB requests of the whole rebuild, by operation (retries included).
    #[serde(default)]
    pub requests: std::collections::BTreeMap<String, u64>,
    /// Capacity units DynamoDB reported for them.
    #[serde(default)]
    pub read_units: f64,
    #[serde(default)]
    pub write_units: f64,
    /// Items of the version that are DynamoDB's (all of them but search's documents).
    #[serde(default)]
    pub own_items: u64,
    /// How long raw `BatchWriteItem` takes to write those very items into fresh tables of the
    /// same definitions (indexes included), in the same run.
    #[serde(default)]
    pub own_raw_seconds: f64,
    /// `own_raw_seconds / seconds`, when every item of the version is DynamoDB's.
    #[serde(default)]
    pub own_ratio: Option<f64>,
}

// -------------------------------------------------------------------------------------------
// 5. Cost

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CostSection {
    /// The public on-demand prices used (us-east-1), stated in the report.
    pub prices: Prices,
    pub calls: Vec<CostRow>,
}

/// Public on-demand prices, US East (N. Virginia), in dollars.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Prices {
    /// Where and when these were read.
    pub source: String,
    pub dynamodb_per_million_read_units: f64,
    pub dynamodb_per_million_write_units: f64,
    pub sns_per_million_publishes: f64,
    pub sqs_per_million_requests: f64,
    pub lambda_per_million_invocations: f64,
    pub lambda_per_gb_second: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            source: "aws.amazon.com/{dynamodb,sns,sqs,lambda}/pricing, on-demand, us-east-1, \
                     x86, no free tier"
                .to_owned(),
            dynamodb_per_million_read_units: 0.125,
            dynamodb_per_million_write_units: 0.625,
            sns_per_million_publishes: 0.50,
            sqs_per_million_requests: 0.40,
            lambda_per_million_invocations: 0.20,
            lambda_per_gb_second: 0.000_016_666_7,
        }
    }
}

/// What one API call costs, the whole pipeline included (command or query Lambda, stream
/// fan-out, SNS, SQS, projectors), averaged over `calls` calls.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CostRow {
    /// `POST /api/articles`...
    pub endpoint: String,
    pub calls: usize,
    /// Per call.
    pub read_units: f64,
    pub write_units: f64,
    pub sns_publishes: f64,
    /// SQS requests per call (receives, deletes, visibility changes).
    pub sqs_requests: f64,
    pub lambda_invocations: f64,
    /// Lambda GB-seconds per call (handler time × the function's memory size).
    pub lambda_gb_seconds: f64,
    pub dollars_per_million: f64,
    /// Beside the cheapest call of its kind: one eventually consistent `GetItem` of a small
    /// item for reads, one small `PutItem` for writes.
    pub vs: VsBaseline,
    /// For writes: what their wait for the read models adds (it is in the figures above).
    #[serde(default)]
    pub wait: Option<WaitCost>,
    /// The API's own DynamoDB requests per call, by operation (`BatchGetItem`, `Query`...);
    /// the projectors' are not in it.
    #[serde(default)]
    pub api_requests: BTreeMap<String, f64>,
}

/// What a write's wait for its read models costs per call: measured here, and modelled for
/// AWS at a stated projection lag.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WaitCost {
    /// Mean wait per call (`Server-Timing: wait`), ms.
    pub mean_ms: f64,
    /// The checkpoints each call waited on (the projections that apply its events but an
    /// article's fan-out into feeds).
    pub checkpoints: f64,
    /// Read units the API spent on the checkpoints table per call (the wait's looks; the
    /// registry cache's rare reads too).
    pub read_units: f64,
    /// The wait's share of the command function's GB-seconds per call.
    pub gb_seconds: f64,
    pub dollars_per_million: f64,
    /// The same on AWS if the read models apply a write `aws_lag_ms` after it commits.
    pub aws_lag_ms: f64,
    pub aws_read_units: f64,
    pub aws_gb_seconds: f64,
    pub aws_dollars_per_million: f64,
}

// -------------------------------------------------------------------------------------------
// 6. Lambda binaries

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LambdaSection {
    /// How the binaries were built (the same way for all, hello-world included).
    pub build: String,
    pub hello: Option<BinaryRun>,
    pub functions: Vec<BinaryRun>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BinaryRun {
    pub name: String,
    pub size_bytes: u64,
    /// Process start to its first `GET /runtime/invocation/next`, over several starts.
    pub ready: Latency,
    /// Peak resident memory (VmHWM) after its first event, KiB.
    pub peak_rss_kib: u64,
    pub vs_size: Option<VsBaseline>,
    pub vs_ready: Option<VsBaseline>,
    pub vs_memory: Option<VsBaseline>,
}

// -------------------------------------------------------------------------------------------
// Summary

/// One headline figure.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SummaryRow {
    pub what: String,
    pub value: f64,
    pub unit: String,
    pub vs: Option<VsBaseline>,
}

/// 7. The feed's fan-out on write, at the projector level (see [`crate::feed`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FeedSection {
    /// Followers of the author.
    pub followers: usize,
    /// Follow events applied at once.
    pub follow_concurrency: usize,
    /// Appending the follow events to the store.
    pub append_seconds: f64,
    /// Projecting them.
    pub follow_seconds: f64,
    pub follow_per_second: f64,
    /// How often follows were handed back, by reason.
    pub follow_redeliveries: String,
    /// The follows' DynamoDB requests and capacity, all of them.
    pub follow_requests: u64,
    pub follow_operations: String,
    pub follow_read_units: f64,
    pub follow_write_units: f64,
    /// The projector's limits: followers per `Query` page, `BatchWriteItem`s in flight, the
    /// author lease's life.
    pub page_size: usize,
    pub concurrent_batches: usize,
    pub lease_seconds: u64,
    pub fanouts: Vec<FeedFanout>,
}

/// One event fanned out to every follower's feed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FeedFanout {
    /// `ArticlePublished` or `ArticleDeleted`.
    pub event: String,
    /// The limits it ran with (the default, or a small budget).
    pub limits: String,
    /// Feed entries written or deleted.
    pub entries: usize,
    pub seconds: f64,
    pub per_second: f64,
    /// Times its budget ran out and it was handed back.
    pub pauses: u64,
    pub requests: u64,
    pub operations: String,
    pub read_units: f64,
    pub write_units: f64,
    /// Entries per second beside raw `BatchWriteItem` items per second at the projector's
    /// requests in flight.
    pub vs: VsBaseline,
}

/// 8. Commands against the length of their aggregate's stream (see [`crate::streams`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StreamsSection {
    /// Commands sent to each stream, one after another (each appends an event).
    pub samples: usize,
    /// Events per commit that lengthened the streams, and how many events after the last
    /// snapshot a commit writes a new one.
    pub commit_events: usize,
    pub snapshot_every: u64,
    /// Registering the users and publishing the articles through the API.
    pub register_seconds: f64,
    /// Events appended straight to the store, and how long that took.
    pub seeded_events: usize,
    pub seed_seconds: f64,
    /// From the last of them until the pipeline had projected everything.
    pub settle_seconds: f64,
    pub rows: Vec<StreamRow>,
}

/// One command, sent again and again to one stream.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StreamRow {
    /// `PUT /api/user` or `POST /api/articles/{slug}/comments`.
    pub command: String,
    /// The stream's aggregate and what its events are.
    pub stream: String,
    /// Events in the stream before the first command.
    pub length: usize,
    /// The commands answered with their success status (the others are not in it).
    pub latency: Latency,
    /// p50 of their wait for the read models (`Server-Timing`), part of `latency`, and p50
    /// of each command's time without its wait (loading, deciding, appending, answering).
    pub wait_p50_ms: f64,
    pub own_p50_ms: f64,
    pub errors: usize,
    #[serde(default)]
    pub first_error: Option<String>,
    /// The API's DynamoDB read units per command, every table.
    pub read_units: f64,
    /// Of which on the `events` and `snapshots` tables: loading the aggregates the command
    /// reads (a comment also loads its article and its author).
    pub load_read_units: f64,
    /// The API's DynamoDB requests per command, by operation.
    pub api_requests: BTreeMap<String, f64>,
    /// The stream's snapshot after the commands: the last event it covers and its size (the
    /// state's JSON); `None` if the stream has none.
    pub snapshot_sequence: Option<u64>,
    pub snapshot_bytes: Option<usize>,
    /// p50 and read units beside those of the same stream at the shortest length.
    pub p50_vs_shortest: VsBaseline,
    pub read_units_vs_shortest: VsBaseline,
}
