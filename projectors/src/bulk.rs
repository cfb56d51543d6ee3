//! Bulk: a fresh version of a read model built from whole streams, with no live writer on it, one unit (a scan segment of one round) at a time: each aggregate's events folded in memory through the same plans the live runtime commits ([`crate::ops`]), then the unit's items written with `BatchWriteItem`, its checkpoints first.
//!
//! Nothing else writes the version until it is switched to, so there are no checkpoint
//! conditions, transactions or leases on items: the live path's convergence (every
//! projection ends the same whatever order aggregates are applied in) makes folding
//! aggregate after aggregate equal to the live build. A projection's aggregate types are
//! folded in rounds ([`common::projections::Projection::rounds`]); within a round each table
//! is written by that round alone, each item by one stream, so a unit needs in memory only
//! its own streams' items ([`UnitFold`]), reads what earlier rounds left through a bounded
//! cache ([`Foreign`]), and a unit folded again writes the same items. A counter that
//! streams of several units move on an earlier round's item is added up apart ([`Add`]) and
//! set once after the rounds ([`merge_adds`]).
//!
//! A unit done again after a crash folds each stream only up to the checkpoint its first
//! attempt wrote ([`Folded::with_cuts`]): checkpoints go first, so an attempt that wrote any
//! item had already fixed how far each of its streams goes, and the events appended since are
//! the catch-up's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use common::projections::Projection;
use events::views::{checkpoints, n, s, Item};
use events::StoredEvent;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::batch::BATCH_WRITE_LIMIT;
use crate::ops::{Key, Memory, Op, Plan, ReadModel, State};
use crate::runtime::{unavailable, ProjectionError};

/// The last sequence folded per stream: which of an aggregate's events a fold takes next, and
/// the checkpoints the version gets.
#[derive(Clone, Debug, Default)]
pub struct Folded {
    last: BTreeMap<String, u64>,
    events: u64,
    /// How far a stream may go at most (a unit folded again goes as far as its first attempt).
    cuts: HashMap<String, u64>,
}

impl Folded {
    /// A fold that takes no stream of `cuts` past its sequence there.
    pub fn with_cuts(cuts: HashMap<String, u64>) -> Self {
        Self {
            cuts,
            ..Self::default()
        }
    }

    /// Of `events` (one aggregate's, in sequence order), those that follow the last folded
    /// one, up to the stream's cut: earlier ones are skipped, and a gap ends the run (what
    /// follows it is left to the catch-up, which fills gaps from the log).
    pub fn next_run<'a>(&self, events: &'a [StoredEvent]) -> &'a [StoredEvent] {
        let Some(first) = events.first() else {
            return events;
        };
        let stream = first.stream_key();
        let last = self.last.get(&stream).copied().unwrap_or(0);
        let start = events.partition_point(|e| e.sequence <= last);
        let run = &events[start..];
        let end = run
            .iter()
            .enumerate()
            .position(|(i, e)| e.sequence != last + 1 + i as u64)
            .unwrap_or(run.len());
        if end < run.len() {
            tracing::warn!(%stream, last = last + end as u64, next = run[end].sequence, "a gap in a stream: the rest of it is left to the catch-up");
        }
        let run = &run[..end];
        match self.cuts.get(&stream) {
            Some(cut) => &run[..run.partition_point(|e| e.sequence <= *cut)],
            None => run,
        }
    }

    /// Records that `event` was folded.
    pub fn record(&mut self, event: &StoredEvent) {
        self.last.insert(event.stream_key(), event.sequence);
        self.events += 1;
    }

    /// Events folded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Streams folded: one checkpoint each.
    pub fn streams(&self) -> u64 {
        self.last.len() as u64
    }

    /// The checkpoint items of `projector`'s streams, for `table`.
    pub fn checkpoint_items(&self, projector: &str, table: &str) -> Vec<(String, Item)> {
        self.last
            .iter()
            .map(|(stream, last)| {
                let item = HashMap::from([
                    (
                        checkpoints::PK.to_owned(),
                        s(checkpoints::key(projector, stream)),
                    ),
                    (checkpoints::LAST_SEQ.to_owned(), n(*last)),
                ]);
                (table.to_owned(), item)
            })
            .collect()
    }
}

/// The checkpoints `projector` has in `table` for `streams`, as cuts ([`Folded::with_cuts`]):
/// what a unit folded again reads first. `BatchGetItem`, 100 keys a request.
pub async fn read_cuts(
    client: &Client,
    projector: &str,
    table: &str,
    streams: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, u64>, ProjectionError> {
    let streams: Vec<String> = streams.into_iter().collect();
    let mut cuts = HashMap::new();
    for chunk in streams.chunks(100) {
        let mut keys: Vec<Item> = chunk
            .iter()
            .map(|stream| {
                HashMap::from([(
                    checkpoints::PK.to_owned(),
                    s(checkpoints::key(projector, stream)),
                )])
            })
            .collect();
        while !keys.is_empty() {
            let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .build()
                .map_err(|e| ProjectionError::Unavailable(format!("a checkpoint read: {e}")))?;
            let output = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(unavailable)?;
            for item in output
                .responses()
                .and_then(|r| r.get(table))
                .into_iter()
                .flatten()
            {
                let key = events::views::text(item, checkpoints::PK).unwrap_or_default();
                let stream = key
                    .strip_prefix(projector)
                    .and_then(|rest| rest.strip_prefix('#'));
                if let (Some(stream), Some(last)) =
                    (stream, events::views::number(item, checkpoints::LAST_SEQ))
                {
                    cuts.insert(stream.to_owned(), last);
                }
            }
            if let Some(unprocessed) = output.unprocessed_keys().and_then(|u| u.get(table)) {
                keys = unprocessed.keys().to_vec();
            }
        }
    }
    Ok(cuts)
}

/// The tables of one round of a projection's bulk pass, as a unit of it sees them: its own
/// (in the unit's memory: no one else writes them), and those of earlier rounds (done: read
/// through [`Foreign`]). Any other table is a later round's, empty for now.
#[derive(Clone, Debug, Default)]
pub struct RoundTables {
    own: HashSet<String>,
    earlier: HashSet<String>,
}

impl RoundTables {
    /// Round `round` of `projection`, over `tables` (the version's).
    pub fn of(projection: Projection, round: usize, tables: &TableNames) -> Self {
        Self {
            own: projection.round_tables(round, tables).into_iter().collect(),
            earlier: (0..round)
                .flat_map(|earlier| projection.round_tables(earlier, tables))
                .collect(),
        }
    }
}

/// What units read of the tables of earlier rounds: DynamoDB, strongly consistent, through
/// a least-recently-used cache of at most `budget` bytes (those tables do not change while
/// the units that read them run).
#[derive(Debug)]
pub struct Foreign {
    client: Client,
    cache: Mutex<Cache>,
    /// Requests made (cache misses).
    reads: AtomicU64,
}

#[derive(Debug)]
struct Cache {
    entries: lru::LruCache<(String, String), Arc<Vec<Item>>>,
    bytes: usize,
    budget: usize,
}

/// About what an item takes in memory.
fn item_bytes(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        32 + match v {
            AttributeValue::S(text) | AttributeValue::N(text) => text.len(),
            AttributeValue::L(list) => list.iter().map(value).sum(),
            AttributeValue::M(map) => map.iter().map(|(k, v)| k.len() + value(v)).sum(),
            _ => 8,
        }
    }
    64 + item
        .iter()
        .map(|(name, v)| 32 + name.len() + value(v))
        .sum::<usize>()
}

impl Foreign {
    pub fn new(client: &Client, budget_bytes: usize) -> Self {
        Self {
            client: client.clone(),
            cache: Mutex::new(Cache {
                entries: lru::LruCache::unbounded(),
                bytes: 0,
                budget: budget_bytes,
            }),
            reads: AtomicU64::new(0),
        }
    }

    /// Puts an item in the cache, as if read from DynamoDB.
    #[cfg(test)]
    fn prime(&self, table: &str, key: &Key, item: Option<Item>) {
        let cache_key = (table.to_owned(), format!("i{:?}", key.memory()));
        self.keep(cache_key, Arc::new(item.into_iter().collect()));
    }

    /// Requests made to DynamoDB so far (what the cache did not have).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn cached(&self, key: &(String, String)) -> Option<Arc<Vec<Item>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.entries.get(key).cloned()
    }

    fn keep(&self, key: (String, String), items: Arc<Vec<Item>>) {
        let size = key.0.len() + key.1.len() + items.iter().map(item_bytes).sum::<usize>();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if size > cache.budget {
            return;
        }
        if let Some(old) = cache.entries.put(key, items) {
            cache.bytes -= old.iter().map(item_bytes).sum::<usize>().min(cache.bytes);
        }
        cache.bytes += size;
        while cache.bytes > cache.budget {
            let Some((key, items)) = cache.entries.pop_lru() else {
                cache.bytes = 0;
                break;
            };
            let freed = key.0.len() + key.1.len() + items.iter().map(item_bytes).sum::<usize>();
            cache.bytes -= freed.min(cache.bytes);
        }
    }

    /// The item at `key` of `table`.
    pub async fn get(&self, table: &str, key: &Key) -> Result<Option<Item>, ProjectionError> {
        let cache_key = (table.to_owned(), format!("i{:?}", key.memory()));
        if let Some(items) = self.cached(&cache_key) {
            return Ok(items.first().cloned());
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        let output = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key.item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let items = Arc::new(output.item().cloned().into_iter().collect::<Vec<_>>());
        self.keep(cache_key, items.clone());
        Ok(items.first().cloned())
    }

    /// Reads the items at `keys` that the cache does not have, 100 a `BatchGetItem`, a few
    /// requests at once, into the cache (an absent item too).
    pub async fn fetch(&self, keys: Vec<(String, Key)>) -> Result<(), ProjectionError> {
        let missing: Vec<(String, Key)> = keys
            .into_iter()
            .filter(|(table, key)| {
                self.cached(&(table.clone(), format!("i{:?}", key.memory())))
                    .is_none()
            })
            .collect();
        let mut by_table: BTreeMap<String, Vec<Key>> = BTreeMap::new();
        for (table, key) in missing {
            by_table.entry(table).or_default().push(key);
        }
        let requests: Vec<(String, Vec<Key>)> = by_table
            .into_iter()
            .flat_map(|(table, keys)| {
                keys.chunks(100)
                    .map(|chunk| (table.clone(), chunk.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        // The futures made first, then run (a closure that returns one borrowing `self` would
        // make the caller's future not `Send` for every lifetime: rust-lang/rust#102211).
        let fetches: Vec<_> = requests
            .into_iter()
            .map(|(table, keys)| self.fetch_batch(table, keys))
            .collect();
        stream::iter(fetches)
            .buffer_unordered(FETCHES_AT_ONCE)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn fetch_batch(&self, table: String, keys: Vec<Key>) -> Result<(), ProjectionError> {
        let table = table.as_str();
        let mut found: HashMap<(String, String), Item> = HashMap::new();
        let mut pending: Vec<Item> = keys.iter().map(Key::item).collect();
        while !pending.is_empty() {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| ProjectionError::Unavailable(format!("a batch read: {e}")))?;
            let output = self
                .client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(unavailable)?;
            for item in output
                .responses()
                .and_then(|r| r.get(table))
                .into_iter()
                .flatten()
            {
                if let Some(key) = keys.iter().find_map(|k| k.of_item(item)) {
                    found.insert(key.memory(), item.clone());
                }
            }
            if let Some(unprocessed) = output.unprocessed_keys().and_then(|u| u.get(table)) {
                pending = unprocessed.keys().to_vec();
            }
        }
        for key in keys {
            let item = found.remove(&key.memory());
            self.keep(
                (table.to_owned(), format!("i{:?}", key.memory())),
                Arc::new(item.into_iter().collect()),
            );
        }
        Ok(())
    }

    /// Every item of `table` whose partition key `name` is `value`.
    pub async fn partition(
        &self,
        table: &str,
        (name, value): &(&'static str, AttributeValue),
    ) -> Result<Arc<Vec<Item>>, ProjectionError> {
        let cache_key = (table.to_owned(), format!("p{}", crate::ops::scalar(value)));
        if let Some(items) = self.cached(&cache_key) {
            return Ok(items);
        }
        let mut items = Vec::new();
        let mut start = None;
        loop {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let page = self
                .client
                .query()
                .table_name(table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", *name)
                .expression_attribute_values(":pk", value.clone())
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
            if start.is_none() {
                break;
            }
        }
        let items = Arc::new(items);
        self.keep(cache_key, items.clone());
        Ok(items)
    }
}

/// Requests [`Foreign::fetch`] and [`UnitFold::prefetch`] make at once.
const FETCHES_AT_ONCE: usize = 8;

/// A counter of an earlier round's item moved by the streams of one unit (an article's
/// favorites): `by` in all. The units' adds of one item are summed and set by [`merge_adds`].
#[derive(Clone, Debug, PartialEq)]
pub struct Add {
    pub table: String,
    /// The item's key attributes.
    pub key: Item,
    pub attribute: String,
    pub by: i64,
}

/// What tells the adds of one counter from those of another: table, attribute, key.
type Slot = (String, String, Vec<(String, String)>);

/// A unit's adds: by table, item and attribute, the item's key and the sum.
type UnitAdds = BTreeMap<(String, (String, String), &'static str), (Key, i64)>;

impl Add {
    /// What tells the adds of one counter from those of another.
    fn slot(&self) -> Slot {
        let mut key: Vec<(String, String)> = self
            .key
            .iter()
            .map(|(name, value)| (name.clone(), crate::ops::scalar(value)))
            .collect();
        key.sort();
        (self.table.clone(), self.attribute.clone(), key)
    }
}

/// Sums the adds of each counter.
pub fn sum_adds(adds: impl IntoIterator<Item = Add>) -> Vec<Add> {
    let mut sums: BTreeMap<Slot, Add> = BTreeMap::new();
    for add in adds {
        sums.entry(add.slot())
            .and_modify(|sum| sum.by += add.by)
            .or_insert(add);
    }
    sums.into_values().collect()
}

/// Sets each counter of `sums` (one per item, [`sum_adds`]) to its sum, `in_flight` requests
/// at once. On an item whose counter is there already with another value the earlier round
/// set (which no round does), it fails rather than add to it; set again to the same value (a
/// merge done again), it changes nothing.
pub async fn merge_adds(
    client: &Client,
    sums: Vec<Add>,
    in_flight: usize,
) -> Result<u64, ProjectionError> {
    let total = sums.len() as u64;
    stream::iter(sums)
        .map(|add| async move {
            client
                .update_item()
                .table_name(&add.table)
                .set_key(Some(add.key.clone()))
                .update_expression("SET #a = :sum")
                .condition_expression("attribute_not_exists(#a) OR #a = :sum")
                .expression_attribute_names("#a", &add.attribute)
                .expression_attribute_values(":sum", n(add.by))
                .send()
                .await
                .map_err(|e| {
                    ProjectionError::Unavailable(format!(
                        "setting {} of an item of {} to {}: {}",
                        add.attribute,
                        add.table,
                        add.by,
                        common::error::one_line(&e)
                    ))
                })
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    Ok(total)
}

/// What a unit's fold reads: its memory for its own tables, [`Foreign`] for earlier rounds'.
struct UnitView<'a> {
    round: &'a RoundTables,
    memory: &'a Memory,
    foreign: &'a Foreign,
}

impl State for UnitView<'_> {
    async fn get(&self, table: &str, key: &Key) -> Result<Option<Item>, ProjectionError> {
        if self.round.own.contains(table) {
            Ok(self.memory.item(table, key).cloned())
        } else if self.round.earlier.contains(table) {
            self.foreign.get(table, key).await
        } else {
            Ok(None)
        }
    }
}

/// What a unit's plans will read of earlier rounds, found by planning its events once
/// without any state ([`UnitFold::prefetch`]).
struct Wanted<'a> {
    round: &'a RoundTables,
    items: Mutex<Vec<(String, Key)>>,
}

impl State for Wanted<'_> {
    async fn get(&self, table: &str, key: &Key) -> Result<Option<Item>, ProjectionError> {
        if self.round.earlier.contains(table) {
            self.items
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((table.to_owned(), key.clone()));
        }
        Ok(None)
    }
}

/// One unit of one round of a read model's bulk pass, folded in memory, to be written into a
/// fresh version (see the module documentation).
pub struct UnitFold<'f, P> {
    projector: P,
    round: RoundTables,
    foreign: &'f Foreign,
    memory: Memory,
    folded: Folded,
    adds: UnitAdds,
}

impl<'f, P: ReadModel> UnitFold<'f, P> {
    pub fn new(projector: P, round: RoundTables, foreign: &'f Foreign, folded: Folded) -> Self {
        Self {
            projector,
            round,
            foreign,
            memory: Memory::default(),
            folded,
            adds: BTreeMap::new(),
        }
    }

    pub fn projector(&self) -> &P {
        &self.projector
    }

    /// Reads ahead, in batches, what folding `streams` (each one aggregate's events) will read
    /// of earlier rounds, so that the fold, one event after another, finds it in the cache:
    /// each event is planned once without state, and the earlier rounds' items and partitions
    /// its plan reads, checks, counts on or visits are fetched. Whatever this misses, the
    /// fold reads itself.
    pub async fn prefetch(&self, streams: &[&[StoredEvent]]) -> Result<(), ProjectionError> {
        if self.round.earlier.is_empty() {
            return Ok(());
        }
        let wanted = Wanted {
            round: &self.round,
            items: Mutex::new(Vec::new()),
        };
        let mut partitions: Vec<(String, (&'static str, AttributeValue))> = Vec::new();
        for events in streams {
            for event in self.folded.next_run(events) {
                if !self.projector.accepts(&event.aggregate_type) {
                    continue;
                }
                let plan = self.projector.plan(event, &wanted).await?;
                let mut items = wanted.items.lock().unwrap_or_else(|e| e.into_inner());
                for op in plan.first.iter().chain(&plan.commit) {
                    if let Op::Check { table, key, .. } | Op::Update { table, key, .. } = op {
                        if self.round.earlier.contains(table) {
                            items.push((table.clone(), key.clone()));
                        }
                    }
                }
                for job in &plan.for_each {
                    if self.round.earlier.contains(&job.table) {
                        partitions.push((job.table.clone(), job.partition.clone()));
                    }
                }
            }
        }
        let mut items = wanted.items.into_inner().unwrap_or_else(|e| e.into_inner());
        items.sort_by(|a, b| (&a.0, a.1.memory()).cmp(&(&b.0, b.1.memory())));
        items.dedup_by(|a, b| a.0 == b.0 && a.1.memory() == b.1.memory());
        self.foreign.fetch(items).await?;
        partitions.sort_by(|a, b| {
            (&a.0, crate::ops::scalar(&a.1 .1)).cmp(&(&b.0, crate::ops::scalar(&b.1 .1)))
        });
        partitions.dedup_by(|a, b| {
            a.0 == b.0 && crate::ops::scalar(&a.1 .1) == crate::ops::scalar(&b.1 .1)
        });
        let reads: Vec<_> = partitions
            .iter()
            .map(|(table, partition)| self.foreign.partition(table, partition))
            .collect();
        stream::iter(reads)
            .buffer_unordered(FETCHES_AT_ONCE)
            .map_ok(|_| ())
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Folds events of one aggregate in sequence order ([`Folded::next_run`]). Returns the
    /// events folded.
    pub async fn fold(&mut self, events: &[StoredEvent]) -> Result<u64, ProjectionError> {
        let mut folded = 0;
        for event in self.folded.next_run(events) {
            if !self.projector.accepts(&event.aggregate_type) {
                continue;
            }
            let view = UnitView {
                round: &self.round,
                memory: &self.memory,
                foreign: self.foreign,
            };
            let plan = self.projector.plan(&event.without_secrets(), &view).await?;
            self.apply_plan(&plan).await?;
            self.folded.record(event);
            folded += 1;
        }
        Ok(folded)
    }

    /// Applies a plan: `first`, then every write of each `for_each`, then `commit`.
    async fn apply_plan(&mut self, plan: &Plan) -> Result<(), ProjectionError> {
        for op in &plan.first {
            self.apply(op).await?;
        }
        for job in &plan.for_each {
            let items: Vec<Item> = if self.round.own.contains(&job.table) {
                self.memory
                    .partition(&job.table, &job.partition.1)
                    .cloned()
                    .collect()
            } else if self.round.earlier.contains(&job.table) {
                self.foreign
                    .partition(&job.table, &job.partition)
                    .await?
                    .to_vec()
            } else {
                Vec::new()
            };
            for item in &items {
                if let Some(op) = (job.write)(item) {
                    self.apply(&op).await?;
                }
            }
        }
        for op in &plan.commit {
            self.apply(op).await?;
        }
        Ok(())
    }

    /// Applies `op`: in memory on the round's own tables; on an earlier round's table, only
    /// checks and counters ([`Add`]) are possible.
    async fn apply(&mut self, op: &Op) -> Result<(), ProjectionError> {
        let table = op.table();
        if self.round.own.contains(table) {
            return self.memory.apply(op);
        }
        let refused = || {
            ProjectionError::Unavailable(format!(
                "a bulk round of {} writes {table}, which another round writes: {op:?}",
                self.projector.name()
            ))
        };
        if !self.round.earlier.contains(table) {
            return Err(refused());
        }
        match op {
            Op::Check { key, condition, .. } => {
                let item = self.foreign.get(table, key).await?;
                if !condition.holds(item.as_ref()) {
                    return Err(crate::ops::failed(table, *condition));
                }
            }
            Op::Update {
                key,
                set,
                remove,
                add: Some((attribute, by)),
                condition,
                ..
            } if set.is_empty() && remove.is_empty() => {
                if let Some(condition) = condition {
                    let item = self.foreign.get(table, key).await?;
                    if !condition.holds(item.as_ref()) {
                        return Err(crate::ops::failed(table, *condition));
                    }
                }
                self.adds
                    .entry((table.to_owned(), key.memory(), *attribute))
                    .or_insert_with(|| (key.clone(), 0))
                    .1 += by;
            }
            _ => return Err(refused()),
        }
        Ok(())
    }

    /// Events folded so far.
    pub fn folded(&self) -> u64 {
        self.folded.events()
    }

    /// Items the unit will write: the read model's and one checkpoint per stream.
    pub fn items(&self) -> u64 {
        self.memory.len() as u64 + self.folded.streams()
    }

    /// Writes the checkpoints into `checkpoints_table`, then every item into its table:
    /// [`BATCH_WRITE_LIMIT`] puts a `BatchWriteItem`, `in_flight` requests at once, what
    /// DynamoDB leaves unprocessed sent again with backoff ([`crate::batch::write`]).
    /// `written` is told each request's count. Returns the items written and the unit's
    /// counters of earlier rounds' items.
    pub async fn write(
        self,
        client: &Client,
        checkpoints_table: &str,
        in_flight: usize,
        written: impl Fn(u64) + Sync,
    ) -> Result<(u64, Vec<Add>), ProjectionError> {
        let checkpoints = self
            .folded
            .checkpoint_items(self.projector.name(), checkpoints_table);
        let mut total = write_items(client, checkpoints, in_flight, &written).await?;
        let mut items: Vec<(String, Item)> = Vec::with_capacity(self.memory.len());
        for (table, table_items) in self.memory.tables() {
            items.extend(table_items.map(|item| (table.clone(), item.clone())));
        }
        total += write_items(client, items, in_flight, &written).await?;
        let adds = self
            .adds
            .into_iter()
            .map(|((table, _, attribute), (key, by))| Add {
                table,
                key: key.item(),
                attribute: attribute.to_owned(),
                by,
            })
            .collect();
        Ok((total, adds))
    }
}

/// Puts `items` (table, item), [`BATCH_WRITE_LIMIT`] a request, `in_flight` requests at once.
pub async fn write_items(
    client: &Client,
    items: Vec<(String, Item)>,
    in_flight: usize,
    written: &(impl Fn(u64) + Sync),
) -> Result<u64, ProjectionError> {
    let total = items.len() as u64;
    let mut batches = Vec::with_capacity(items.len() / BATCH_WRITE_LIMIT + 1);
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let mut batch: HashMap<String, Vec<WriteRequest>> = HashMap::new();
        let mut count = 0u64;
        for (table, item) in items.by_ref().take(BATCH_WRITE_LIMIT) {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| ProjectionError::Unavailable(format!("a put request: {e}")))?;
            batch
                .entry(table)
                .or_default()
                .push(WriteRequest::builder().put_request(put).build());
            count += 1;
        }
        batches.push((batch, count));
    }
    stream::iter(batches)
        .map(|(batch, count)| async move {
            crate::batch::write(client, batch).await?;
            written(count);
            Ok::<(), ProjectionError>(())
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(total)
}

/// The cache budget for [`Foreign`] when a process may use `memory` bytes: a quarter.
pub fn foreign_budget(memory: usize) -> usize {
    memory / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sequence: u64) -> StoredEvent {
        StoredEvent {
            aggregate_type: "User".into(),
            aggregate_id: "u1".into(),
            sequence,
            event_id: uuid::Uuid::new_v4(),
            event_type: "UserRenamed".into(),
            event_version: 1,
            payload: serde_json::json!({}),
            metadata: Default::default(),
            recorded_at: "2024-01-01T00:00:00.000Z".into(),
        }
    }

    fn sequences(run: &[StoredEvent]) -> Vec<u64> {
        run.iter().map(|e| e.sequence).collect()
    }

    #[test]
    fn a_run_starts_after_the_last_folded_event_and_stops_at_a_gap() {
        let mut folded = Folded::default();
        let events: Vec<StoredEvent> = [1, 2, 3, 5, 6].into_iter().map(event).collect();
        assert_eq!(sequences(folded.next_run(&events)), [1, 2, 3]);
        for e in &events[..2] {
            folded.record(e);
        }
        assert_eq!(sequences(folded.next_run(&events)), [3]);
        folded.record(&events[2]);
        assert!(folded.next_run(&events).is_empty(), "5 does not follow 3");
        let later: Vec<StoredEvent> = [2, 3, 4, 5].into_iter().map(event).collect();
        assert_eq!(sequences(folded.next_run(&later)), [4, 5]);
        assert_eq!((folded.events(), folded.streams()), (3, 1));
        let checkpoints = folded.checkpoint_items("users", "p-checkpoints");
        assert_eq!(checkpoints.len(), 1);
        assert_eq!(checkpoints[0].1.get("lastSeq"), Some(&n(3)));
        assert_eq!(
            checkpoints[0]
                .1
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
            Some("users#User#u1")
        );
    }

    #[test]
    fn a_unit_folded_again_stops_each_stream_at_its_first_checkpoint() {
        let folded = Folded::with_cuts(HashMap::from([("User#u1".to_owned(), 2)]));
        let events: Vec<StoredEvent> = [1, 2, 3, 4].into_iter().map(event).collect();
        assert_eq!(sequences(folded.next_run(&events)), [1, 2]);
        let mut other = event(1);
        other.aggregate_id = "u2".into();
        assert_eq!(sequences(folded.next_run(&[other])), [1], "no cut: all");
    }

    mod articles {
        use super::*;
        use crate::ArticlesProjector;
        use events::article::ArticleEvent;
        use events::favorite::{favorite_id, FavoriteEvent};
        use events::EventSchema;

        const AT: &str = "2024-01-01T00:00:00.000Z";

        fn client() -> Client {
            let config = aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build();
            Client::from_conf(config)
        }

        fn stored(kind: &str, id: &str, sequence: u64, event: impl EventSchema) -> StoredEvent {
            let (event_type, event_version, payload) = event.to_stored();
            StoredEvent {
                aggregate_type: kind.into(),
                aggregate_id: id.into(),
                sequence,
                event_id: uuid::Uuid::new_v4(),
                event_type,
                event_version,
                payload,
                metadata: Default::default(),
                recorded_at: AT.into(),
            }
        }

        fn published(article: &str) -> StoredEvent {
            stored(
                "Article",
                article,
                1,
                ArticleEvent::ArticlePublished {
                    article_id: article.into(),
                    author_id: "u1".into(),
                    slug: article.into(),
                    title: "T".into(),
                    description: "D".into(),
                    body: "B".into(),
                    tag_list: Vec::new(),
                    created_at: AT.into(),
                },
            )
        }

        fn favorited(article: &str, user: &str) -> StoredEvent {
            stored(
                "Favorite",
                &favorite_id(article, user),
                1,
                FavoriteEvent::ArticleFavorited {
                    article_id: article.into(),
                    user_id: user.into(),
                    favorited_at: AT.into(),
                },
            )
        }

        fn article_key(article: &str) -> Key {
            Key::new("articleId", s(article))
        }

        #[tokio::test]
        async fn a_later_round_reads_the_earlier_one_and_counts_favorites_apart() {
            let tables = TableNames::with_prefix("p-");
            let client = client();
            let foreign = Foreign::new(&client, 1 << 20);
            // Round 1: the article, in the unit's memory.
            let round = RoundTables::of(Projection::Articles, 0, &tables);
            let mut first = UnitFold::new(
                ArticlesProjector::new(&client, &tables),
                round,
                &foreign,
                Folded::default(),
            );
            assert_eq!(first.fold(&[published("a1")]).await.expect("folds"), 1);
            assert_eq!(first.items(), 3, "article, body, checkpoint");
            let article = first
                .memory
                .item("p-articles", &article_key("a1"))
                .cloned()
                .expect("the article");
            // Round 2 reads it as round 1 left it (here from the cache, not DynamoDB).
            foreign.prime("p-articles", &article_key("a1"), Some(article));
            let tombstone = HashMap::from([
                ("articleId".to_owned(), s("a2")),
                ("deleted".to_owned(), AttributeValue::Bool(true)),
                ("lastSeq".to_owned(), n(2)),
            ]);
            foreign.prime("p-articles", &article_key("a2"), Some(tombstone));
            let round = RoundTables::of(Projection::Articles, 1, &tables);
            let mut second = UnitFold::new(
                ArticlesProjector::new(&client, &tables),
                round,
                &foreign,
                Folded::default(),
            );
            let streams: Vec<Vec<StoredEvent>> = [("a1", "u2"), ("a1", "u3"), ("a2", "u2")]
                .into_iter()
                .map(|(article, user)| vec![favorited(article, user)])
                .collect();
            // What the fold will read is cached already: nothing to fetch.
            let slices: Vec<&[StoredEvent]> = streams.iter().map(Vec::as_slice).collect();
            second.prefetch(&slices).await.expect("prefetches");
            for events in &streams {
                second.fold(events).await.expect("folds");
            }
            assert_eq!(foreign.reads(), 0, "every read came from the cache");
            // Two favorites of a1 (a2 is deleted: dropped), three checkpoints; a1's count
            // apart, never a write of the article itself.
            assert_eq!(second.items(), 2 + 3);
            let adds: Vec<(String, i64)> = second
                .adds
                .iter()
                .map(|((table, _, attribute), (_, by))| (format!("{table}.{attribute}"), *by))
                .collect();
            assert_eq!(adds, [("p-articles.favoritesCount".to_owned(), 2)]);
            // A round never writes another round's table.
            let put = Op::put("p-articles", article_key("a3"), Vec::new());
            let refused = second.apply(&put).await.expect_err("refused");
            assert!(refused.to_string().contains("p-articles"), "{refused}");
        }
    }

    #[test]
    fn adds_of_one_counter_sum_whatever_their_units() {
        let add = |article: &str, by: i64| Add {
            table: "articles".into(),
            key: HashMap::from([("articleId".to_owned(), s(article))]),
            attribute: "favoritesCount".into(),
            by,
        };
        let sums = sum_adds([add("a", 2), add("b", 1), add("a", -1), add("a", 3)]);
        assert_eq!(sums, vec![add("a", 4), add("b", 1)]);
    }
}
