//! DynamoDB Streams → function, as Lambda's event source mapping does it.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt::{self, Display};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{Record, Shard, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use tracing::Instrument;

use super::checkpoint::CheckpointStore;
use super::failure::{
    LogOnFailure, OnFailure, StreamBatchFailure, RECORD_NOT_CONVERTIBLE, RETRY_ATTEMPTS_EXHAUSTED,
};
use super::json::{dynamodb_event, dynamodb_event_record};
use super::util::{aws_error_text, cmp_sequence_numbers, invoke, retries, retry_delay, Stop};
use common::backoff::Retries;

/// How often the shard list is described again while nothing else asks for it (a shard
/// ending asks for it at once).
const DESCRIBE_INTERVAL: Duration = Duration::from_secs(10);
/// GetRecords returns at most this many records per call.
const GET_RECORDS_LIMIT: usize = 1000;
/// First delay after a failed AWS call (doubles up to `util::MAX_BACKOFF`).
const AWS_BACKOFF: Duration = Duration::from_millis(100);

/// A DynamoDB stream → function mapping, with Lambda's semantics:
///
/// * Shards are found with DescribeStream (paged) every [`DESCRIBE_INTERVAL`] and whenever a
///   shard ends; a child shard is read only once its parent is finished. Each shard is read
///   from its checkpoint (`AFTER_SEQUENCE_NUMBER`) or from `TRIM_HORIZON`; a checkpoint the
///   stream rejects (trimmed data, or a stream that lost its data) falls back to
///   `TRIM_HORIZON` with a warning.
/// * One batch in flight per mapping (shards take turns, one batch each), records of a shard
///   strictly in order, batches of at most `batch_size` records (GetRecords is called with
///   `Limit <= 1000`, several times for bigger batches).
/// * Function error (`Err`, a panic, or a `batchItemFailures` entry that names no record of
///   the batch): the batch is retried. With `bisect_on_error` a failing batch of more than
///   one record is split in halves first (splits do not count as retries); a failing batch
///   of one record, or any failing batch without bisection, counts one attempt for each of
///   its records.
/// * `batchItemFailures`: the records before the lowest reported sequence number are done
///   (checkpointed); retrying starts at it. Each reported record counts one attempt.
/// * A record whose attempts exceed `max_retry_attempts` (so after `1 + max_retry_attempts`
///   failed deliveries) goes to `on_failure`, then the shard is checkpointed past it.
///   Retries wait `retry_backoff * 2^(attempts-1)`, capped at 5 s.
/// * Records are never skipped otherwise: AWS errors are logged and retried with a capped
///   backoff; the checkpoint is saved after every batch.
/// * Shutdown stops the mapping between batches (a batch in flight finishes and is
///   checkpointed first).
#[derive(Clone)]
pub struct StreamMapping {
    pub stream_arn: String,
    /// Most records per invocation (default 100).
    pub batch_size: usize,
    /// Retries of a failing record before it goes to `on_failure` (default 5).
    pub max_retry_attempts: u32,
    /// Split a failing batch in halves to isolate the bad record (default true).
    pub bisect_on_error: bool,
    /// Wait between polls of a shard that had nothing new (default 50 ms).
    pub poll_interval: Duration,
    /// First delay before retrying a failed record (default 20 ms, doubling, capped at 5 s).
    pub retry_backoff: Duration,
    /// `awsRegion` in the events; `None` = the streams client's region.
    pub aws_region: Option<String>,
    pub checkpoint: Arc<dyn CheckpointStore>,
    /// Where records go when their retries are exhausted (default: [`LogOnFailure`]).
    pub on_failure: Arc<dyn OnFailure>,
}

impl fmt::Debug for StreamMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamMapping")
            .field("stream_arn", &self.stream_arn)
            .field("batch_size", &self.batch_size)
            .field("max_retry_attempts", &self.max_retry_attempts)
            .field("bisect_on_error", &self.bisect_on_error)
            .field("poll_interval", &self.poll_interval)
            .field("retry_backoff", &self.retry_backoff)
            .field("aws_region", &self.aws_region)
            .finish_non_exhaustive()
    }
}

impl StreamMapping {
    /// A mapping with Lambda's defaults, logging records it gives up on.
    pub fn new(stream_arn: impl Into<String>, checkpoint: Arc<dyn CheckpointStore>) -> Self {
        Self {
            stream_arn: stream_arn.into(),
            batch_size: 100,
            max_retry_attempts: 5,
            bisect_on_error: true,
            poll_interval: Duration::from_millis(50),
            retry_backoff: Duration::from_millis(20),
            aws_region: None,
            checkpoint,
            on_failure: Arc::new(LogOnFailure),
        }
    }

    /// Polls the stream and calls `handler` with each batch until `shutdown` completes.
    pub async fn run<H, Fut, E>(self, streams: Client, handler: H, shutdown: impl Future)
    where
        H: Fn(Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, E>>,
        E: Display,
    {
        let region = self
            .aws_region
            .clone()
            .or_else(|| streams.config().region().map(|r| r.as_ref().to_owned()))
            .or_else(|| self.stream_arn.split(':').nth(3).map(str::to_owned))
            .unwrap_or_default();
        let mut runner = Runner {
            mapping: &self,
            client: &streams,
            handler: &handler,
            region,
            stop: Stop::new(shutdown),
            backoff: retries(AWS_BACKOFF),
        };
        tracing::info!(stream_arn = %self.stream_arn, batch_size = self.batch_size, "stream mapping started");
        runner.run().await;
        tracing::info!(stream_arn = %self.stream_arn, "stream mapping stopped");
    }

    fn batch_limit(&self) -> usize {
        self.batch_size.max(1)
    }
}

/// A record read from a shard and not yet done with.
struct Pending {
    sequence_number: String,
    raw: Record,
    event: Result<EventRecord, String>,
    /// Failed deliveries that count towards `max_retry_attempts`.
    attempts: u32,
    /// Every invocation that included this record.
    invocations: u32,
    last_error: Option<String>,
}

impl Pending {
    fn given_up(&self, max_retry_attempts: u32) -> Option<&'static str> {
        if self.event.is_err() {
            Some(RECORD_NOT_CONVERTIBLE)
        } else if self.attempts > max_retry_attempts {
            Some(RETRY_ATTEMPTS_EXHAUSTED)
        } else {
            None
        }
    }
}

struct ShardState {
    id: String,
    parent: Option<String>,
    starting_sequence_number: Option<String>,
    /// The checkpoint has been loaded into `last_read`.
    loaded: bool,
    /// Sequence number of the last record read into `pending` (or the checkpoint).
    last_read: Option<String>,
    iterator: Option<String>,
    /// GetRecords returned no next iterator: a closed shard read to its end.
    exhausted: bool,
    /// Records read and not yet done with, in order.
    pending: VecDeque<Pending>,
    /// Sizes of the next batches, when a failed batch was split or is being retried.
    plan: VecDeque<usize>,
    /// Earliest time of the next attempt after a failure.
    retry_at: Option<Instant>,
}

impl ShardState {
    fn new(shard: &Shard) -> Option<Self> {
        Some(Self {
            id: shard.shard_id()?.to_owned(),
            parent: shard.parent_shard_id().map(str::to_owned),
            starting_sequence_number: shard
                .sequence_number_range()
                .and_then(|r| r.starting_sequence_number())
                .map(str::to_owned),
            loaded: false,
            last_read: None,
            iterator: None,
            exhausted: false,
            pending: VecDeque::new(),
            plan: VecDeque::new(),
            retry_at: None,
        })
    }

    fn finished(&self) -> bool {
        self.exhausted && self.pending.is_empty()
    }

    /// `k` records left the front of `pending`: take them off the planned batch sizes.
    fn consume_plan(&mut self, mut k: usize) {
        while k > 0 {
            let Some(front) = self.plan.front_mut() else {
                return;
            };
            if *front > k {
                *front -= k;
                return;
            }
            k -= *front;
            self.plan.pop_front();
        }
    }
}

struct Runner<'a, H, F: Future> {
    mapping: &'a StreamMapping,
    client: &'a Client,
    handler: &'a H,
    region: String,
    stop: Stop<F>,
    backoff: Retries,
}

impl<H, Fut, E, F> Runner<'_, H, F>
where
    H: Fn(Event) -> Fut,
    Fut: Future<Output = Result<DynamoDbEventResponse, E>>,
    E: Display,
    F: Future,
{
    async fn run(&mut self) {
        let mut shards: BTreeMap<String, ShardState> = BTreeMap::new();
        let mut done: HashSet<String> = HashSet::new();
        let mut described_at: Option<Instant> = None;
        let mut rediscover = true;
        'poll: loop {
            if self.stop.requested() {
                break;
            }
            if rediscover || described_at.is_none_or(|at| at.elapsed() >= DESCRIBE_INTERVAL) {
                match self.describe().await {
                    Ok(listed) => {
                        merge_shards(&mut shards, &mut done, &listed);
                        described_at = Some(Instant::now());
                        rediscover = false;
                    }
                    Err(error) => {
                        tracing::warn!(stream_arn = %self.mapping.stream_arn, error = %error, "DescribeStream failed; retrying");
                        if self.stop.sleep(self.backoff.fail()).await {
                            break;
                        }
                        continue;
                    }
                }
            }

            let ready: Vec<String> = shards
                .values()
                .filter(|s| !done.contains(&s.id))
                .filter(|s| {
                    s.parent
                        .as_ref()
                        .is_none_or(|p| done.contains(p) || !shards.contains_key(p))
                })
                .map(|s| s.id.clone())
                .collect();
            let mut progressed = false;
            let mut failed = false;
            for id in ready {
                let Some(shard) = shards.get_mut(&id) else {
                    continue;
                };
                match self.step(shard).await {
                    Ok(p) => progressed |= p,
                    Err(error) => {
                        tracing::warn!(stream_arn = %self.mapping.stream_arn, shard_id = %id, error = %error, "reading the shard failed; retrying");
                        failed = true;
                        rediscover = true;
                    }
                }
                if shard.finished() {
                    tracing::info!(stream_arn = %self.mapping.stream_arn, shard_id = %id, "shard finished");
                    done.insert(id);
                    rediscover = true;
                }
                if self.stop.requested() {
                    break 'poll;
                }
            }
            let pause = if failed {
                self.backoff.fail()
            } else {
                self.backoff.reset();
                if progressed {
                    continue;
                }
                self.mapping.poll_interval
            };
            if self.stop.sleep(pause).await {
                break;
            }
        }
    }

    async fn describe(&mut self) -> anyhow::Result<Vec<Shard>> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let output = self
                .client
                .describe_stream()
                .stream_arn(&self.mapping.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("DescribeStream: {}", aws_error_text(&e)))?;
            let Some(description) = output.stream_description() else {
                return Ok(shards);
            };
            shards.extend(description.shards().iter().cloned());
            match description.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_owned()),
                None => return Ok(shards),
            }
        }
    }

    /// One turn of a shard: read if nothing is pending, then deliver one batch.
    /// Returns whether anything happened.
    async fn step(&mut self, shard: &mut ShardState) -> anyhow::Result<bool> {
        if shard.retry_at.is_some_and(|at| Instant::now() < at) {
            return Ok(false);
        }
        if shard.pending.is_empty() && !shard.exhausted {
            self.fetch(shard).await?;
        }
        if shard.pending.is_empty() {
            return Ok(false);
        }
        self.deliver_one(shard).await;
        Ok(true)
    }

    async fn fetch(&mut self, shard: &mut ShardState) -> anyhow::Result<()> {
        if !shard.loaded {
            shard.last_read = self.mapping.checkpoint.load(&shard.id).await?;
            shard.loaded = true;
            tracing::debug!(shard_id = %shard.id, checkpoint = ?shard.last_read, "checkpoint loaded");
        }
        let limit = self.mapping.batch_limit();
        let mut reopened = 0;
        loop {
            let Some(iterator) = shard.iterator.clone() else {
                match self.open_iterator(shard).await? {
                    Some(iterator) => shard.iterator = Some(iterator),
                    None => shard.exhausted = true,
                }
                if shard.exhausted {
                    return Ok(());
                }
                continue;
            };
            let want = (limit - shard.pending.len().min(limit)).clamp(1, GET_RECORDS_LIMIT);
            let result = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(i32::try_from(want).unwrap_or(1000))
                .send()
                .await;
            match result {
                Ok(output) => {
                    let got = output.records().len();
                    for record in output.records() {
                        self.push_record(shard, record);
                    }
                    shard.iterator = output.next_shard_iterator().map(str::to_owned);
                    if shard.iterator.is_none() {
                        shard.exhausted = true;
                    }
                    if got < want || shard.exhausted || shard.pending.len() >= limit {
                        return Ok(());
                    }
                }
                Err(error) if reopened < 3 => {
                    shard.iterator = None;
                    reopened += 1;
                    match error.code() {
                        Some("ExpiredIteratorException") => {
                            tracing::debug!(shard_id = %shard.id, "shard iterator expired; opening a new one");
                        }
                        Some("TrimmedDataAccessException") => {
                            tracing::warn!(shard_id = %shard.id, after = ?shard.last_read, "records were trimmed before they were read; continuing from TRIM_HORIZON");
                            shard.last_read = None;
                        }
                        _ => return Err(anyhow::anyhow!("GetRecords: {}", aws_error_text(&error))),
                    }
                }
                Err(error) => {
                    shard.iterator = None;
                    return Err(anyhow::anyhow!("GetRecords: {}", aws_error_text(&error)));
                }
            }
        }
    }

    fn push_record(&self, shard: &mut ShardState, record: &Record) {
        let sequence_number = record
            .dynamodb()
            .and_then(|d| d.sequence_number())
            .unwrap_or_default()
            .to_owned();
        let event = dynamodb_event_record(record, &self.mapping.stream_arn, &self.region)
            .map_err(|e| e.to_string());
        if let Err(error) = &event {
            tracing::error!(shard_id = %shard.id, sequence_number = %sequence_number, error = %error, "stream record cannot be converted to a Lambda event");
        }
        if !sequence_number.is_empty() {
            shard.last_read = Some(sequence_number.clone());
        }
        shard.pending.push_back(Pending {
            sequence_number,
            raw: record.clone(),
            event,
            attempts: 0,
            invocations: 0,
            last_error: None,
        });
    }

    /// A shard iterator after `last_read`, or at `TRIM_HORIZON`. `None`: nothing left to read.
    async fn open_iterator(&mut self, shard: &mut ShardState) -> anyhow::Result<Option<String>> {
        if let (Some(after), Some(start)) = (&shard.last_read, &shard.starting_sequence_number) {
            if cmp_sequence_numbers(after, start).is_lt() {
                tracing::warn!(shard_id = %shard.id, checkpoint = %after, shard_start = %start, "checkpoint is older than the shard's oldest record (trimmed); reading from TRIM_HORIZON");
                shard.last_read = None;
            }
        }
        if let Some(after) = shard.last_read.clone() {
            let result = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.mapping.stream_arn)
                .shard_id(&shard.id)
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(&after)
                .send()
                .await;
            match result {
                Ok(output) => return Ok(output.shard_iterator().map(str::to_owned)),
                Err(error)
                    if matches!(
                        error.code(),
                        Some("TrimmedDataAccessException" | "ValidationException")
                    ) =>
                {
                    tracing::warn!(shard_id = %shard.id, checkpoint = %after, error = %aws_error_text(&error), "the stream rejected the checkpoint; reading from TRIM_HORIZON");
                    shard.last_read = None;
                }
                Err(error) => {
                    return Err(anyhow::anyhow!(
                        "GetShardIterator: {}",
                        aws_error_text(&error)
                    ))
                }
            }
        }
        let output = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.mapping.stream_arn)
            .shard_id(&shard.id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetShardIterator: {}", aws_error_text(&e)))?;
        Ok(output.shard_iterator().map(str::to_owned))
    }

    /// Hands records given up on to the destination, or delivers the next batch.
    async fn deliver_one(&mut self, shard: &mut ShardState) {
        let max = self.mapping.max_retry_attempts;
        if let Some(condition) = shard.pending.front().and_then(|p| p.given_up(max)) {
            let k = shard
                .pending
                .iter()
                .take_while(|p| p.given_up(max) == Some(condition))
                .count();
            self.give_up(shard, k, condition).await;
            return;
        }

        let planned = shard
            .plan
            .front()
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(1, self.mapping.batch_limit());
        let n = shard
            .pending
            .iter()
            .take(planned)
            .take_while(|p| p.event.is_ok())
            .count();
        let records: Vec<EventRecord> = shard
            .pending
            .iter()
            .take(n)
            .filter_map(|p| p.event.as_ref().ok().cloned())
            .collect();
        let span = tracing::info_span!(
            "esm.stream.batch",
            stream_arn = %self.mapping.stream_arn,
            shard_id = %shard.id,
            size = n,
            first_sequence_number = %shard.pending[0].sequence_number,
            last_sequence_number = %shard.pending[n - 1].sequence_number,
            invocation = shard.pending[0].invocations + 1,
        );
        async {
            let started = Instant::now();
            let outcome = invoke(self.handler, dynamodb_event(records)).await;
            for pending in shard.pending.iter_mut().take(n) {
                pending.invocations += 1;
            }
            let outcome = match outcome {
                Ok(response) if response.batch_item_failures.is_empty() => Ok(None),
                Ok(response) => failed_positions(&response, &shard.pending, n).map(Some),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(None) => {
                    tracing::debug!(
                        elapsed_ms = started.elapsed().as_millis(),
                        "batch processed"
                    );
                    shard.retry_at = None;
                    self.complete(shard, n).await;
                }
                Ok(Some(failed)) => {
                    let first = failed[0];
                    for &i in &failed {
                        shard.pending[i].attempts += 1;
                        shard.pending[i].last_error =
                            Some("reported in batchItemFailures".to_owned());
                    }
                    tracing::warn!(
                        failed = failed.len(),
                        retry_from = %shard.pending[first].sequence_number,
                        "partial batch failure: retrying from the lowest failed record"
                    );
                    self.complete(shard, first).await;
                    self.schedule_retry(shard);
                }
                Err(error) => self.batch_failed(shard, n, error),
            }
        }
        .instrument(span)
        .await;
    }

    /// A failure of the whole batch (the first `n` pending records).
    fn batch_failed(&self, shard: &mut ShardState, n: usize, error: String) {
        for pending in shard.pending.iter_mut().take(n) {
            pending.last_error = Some(error.clone());
        }
        shard.consume_plan(n);
        if self.mapping.bisect_on_error && n > 1 {
            let first_half = n.div_ceil(2);
            shard.plan.push_front(n - first_half);
            shard.plan.push_front(first_half);
            shard.retry_at = None;
            tracing::warn!(error = %error, first_half, second_half = n - first_half, "function error: splitting the batch");
        } else {
            for pending in shard.pending.iter_mut().take(n) {
                pending.attempts += 1;
            }
            shard.plan.push_front(n);
            tracing::warn!(error = %error, attempts = shard.pending[0].attempts, "function error: retrying the batch");
            self.schedule_retry(shard);
        }
    }

    fn schedule_retry(&self, shard: &mut ShardState) {
        let attempts = shard.pending.front().map_or(0, |p| p.attempts);
        let delay = retry_delay(self.mapping.retry_backoff, attempts);
        shard.retry_at = Some(Instant::now() + delay);
    }

    /// The first `k` pending records are done: drop them and checkpoint the last one.
    async fn complete(&mut self, shard: &mut ShardState, k: usize) {
        if k == 0 {
            return;
        }
        let done: Vec<Pending> = shard.pending.drain(..k).collect();
        shard.consume_plan(k);
        if let Some(last) = done.iter().rev().find(|p| !p.sequence_number.is_empty()) {
            self.save_checkpoint(&shard.id, &last.sequence_number).await;
        }
    }

    async fn save_checkpoint(&mut self, shard_id: &str, sequence_number: &str) {
        let mut backoff = retries(AWS_BACKOFF);
        loop {
            match self
                .mapping
                .checkpoint
                .save(shard_id, sequence_number)
                .await
            {
                Ok(()) => return,
                Err(error) => {
                    tracing::error!(shard_id, sequence_number, error = %error, "saving the checkpoint failed; retrying");
                    if self.stop.sleep(backoff.fail()).await {
                        return;
                    }
                }
            }
        }
    }

    async fn give_up(&mut self, shard: &mut ShardState, k: usize, condition: &'static str) {
        let records: Vec<&Pending> = shard.pending.iter().take(k).collect();
        let last_error = records
            .iter()
            .rev()
            .find_map(|p| match &p.event {
                Err(error) => Some(error.clone()),
                Ok(_) => p.last_error.clone(),
            })
            .unwrap_or_default();
        let failure = StreamBatchFailure {
            condition,
            stream_arn: self.mapping.stream_arn.clone(),
            shard_id: shard.id.clone(),
            start_sequence_number: records[0].sequence_number.clone(),
            end_sequence_number: records[k - 1].sequence_number.clone(),
            batch_size: k,
            approximate_invoke_count: records.iter().map(|p| p.invocations).max().unwrap_or(0),
            last_error,
            records: records.iter().map(|p| p.raw.clone()).collect(),
        };
        let span = tracing::info_span!(
            "esm.stream.on_failure",
            stream_arn = %self.mapping.stream_arn,
            shard_id = %shard.id,
            size = k,
            condition,
        );
        async {
            let mut backoff = retries(AWS_BACKOFF);
            loop {
                match self.mapping.on_failure.on_failure(&failure).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::error!(error = %error, "on-failure destination failed; retrying");
                        if self.stop.sleep(backoff.fail()).await {
                            // Not handed over: keep the records (and no checkpoint).
                            return;
                        }
                    }
                }
            }
            shard.retry_at = None;
            self.complete(shard, k).await;
        }
        .instrument(span)
        .await;
    }
}

/// Positions (sorted, distinct) of the records `batchItemFailures` names, or the reason the
/// response counts as a failure of the whole batch (an entry without an identifier, or one
/// that names no record of the batch, as Lambda treats them).
fn failed_positions(
    response: &DynamoDbEventResponse,
    pending: &VecDeque<Pending>,
    n: usize,
) -> Result<Vec<usize>, String> {
    let mut positions = Vec::with_capacity(response.batch_item_failures.len());
    for failure in &response.batch_item_failures {
        let Some(id) = failure.item_identifier.as_deref().filter(|s| !s.is_empty()) else {
            return Err("batchItemFailures entry without an itemIdentifier".to_owned());
        };
        match pending.iter().take(n).position(|p| p.sequence_number == id) {
            Some(position) => positions.push(position),
            None => {
                return Err(format!(
                    "batchItemFailures itemIdentifier {id:?} is not a sequence number of the batch"
                ))
            }
        }
    }
    positions.sort_unstable();
    positions.dedup();
    Ok(positions)
}

fn merge_shards(
    shards: &mut BTreeMap<String, ShardState>,
    done: &mut HashSet<String>,
    listed: &[Shard],
) {
    let mut ids = HashSet::new();
    for shard in listed {
        let Some(id) = shard.shard_id() else {
            continue;
        };
        ids.insert(id.to_owned());
        if !shards.contains_key(id) {
            if let Some(state) = ShardState::new(shard) {
                tracing::debug!(shard_id = %id, parent = ?state.parent, "shard discovered");
                shards.insert(id.to_owned(), state);
            }
        }
    }
    // A shard no longer listed has been trimmed away: forget it once nothing of it is pending.
    shards.retain(|id, state| ids.contains(id) || !state.pending.is_empty());
    done.retain(|id| shards.contains_key(id));
}
