//! The full pass of a rebuild as units of work that workers claim through leases, so that a kill loses only the units in flight and several workers, in one process or on several machines, share one pass.
//!
//! A pass (its plan, `fullpass#<id>` in the base checkpoints table) is made for one or more
//! builds (a projection and the version it builds) read together. Its units are the scan
//! segments of the events table, once per round ([`Projection::rounds`]), then one merge per
//! projection whose units moved counters of an earlier round's items
//! ([`projectors::bulk::merge_adds`]). A round begins when every unit of the one before is
//! done.
//!
//! Each unit has an item `fullpass#<id>#<round>#<segment>` (`...#merge#<projection>`), its
//! lease, as the Kinesis Client Library keeps them: a worker claims a unit with a conditional
//! update (not done, and no lease or an expired one), renews it every third of its length
//! while it works, and marks it done with what it did. A worker that stops leaves its lease to
//! expire; another then claims the unit and does it again ([`crate::bulk::unit`] with `again`:
//! the same items). Nothing else needs to know how many workers there are: the result is the
//! same whatever their number.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use common::clock::now_ms;
use common::projections::Projection;
use events::views::{n, number};
use futures::stream::{self, StreamExt, TryStreamExt};
use projectors::bulk::{merge_adds, sum_adds, Add, Foreign};
use schema::checkpoints::PK;

use crate::bulk::{FullPass, UnitDone};
use crate::progress_item::ProgressItem;
use crate::{store_error, Replay, ReplayError};

const PREFIX: &str = "fullpass#";

/// Adds kept per item (each about 100 bytes; an item holds 400 KB).
const ADDS_PER_ITEM: usize = 1500;

/// How the workers of a pass run.
#[derive(Clone, Debug)]
pub struct WorkOptions {
    /// Workers in this process, each with leases of its own.
    pub workers: usize,
    /// Units one worker does at once.
    pub units_in_flight: usize,
    /// `BatchWriteItem` requests in flight, for the whole process.
    pub in_flight: usize,
    /// How long a lease holds without renewal.
    pub lease: Duration,
    /// The process's memory budget: a quarter goes to the cache of earlier rounds' items, and
    /// units in flight are at most one per 32 MiB of it.
    pub memory_bytes: usize,
}

impl Default for WorkOptions {
    fn default() -> Self {
        Self {
            workers: 1,
            units_in_flight: 16,
            in_flight: 64,
            lease: Duration::from_secs(30),
            memory_bytes: 512 << 20,
        }
    }
}

impl WorkOptions {
    /// Units the whole process does at once.
    fn units_at_once(&self) -> usize {
        self.units_in_flight
            .min(self.memory_bytes / (32 << 20))
            .max(1)
    }
}

/// A unit of a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Segment { round: usize, segment: u32 },
    Merge(Projection),
}

/// What a pass is: the builds it makes and the segments it reads with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassPlan {
    pub id: String,
    pub builds: Vec<(Projection, u32)>,
    pub segments: u32,
}

fn build_name((projection, version): (Projection, u32)) -> String {
    format!("{projection}.v{version}")
}

impl PassPlan {
    pub fn new(builds: &[(Projection, u32)], segments: u32) -> Self {
        let mut builds = builds.to_vec();
        builds.sort();
        let id = builds
            .iter()
            .map(|b| build_name(*b))
            .collect::<Vec<_>>()
            .join("+");
        Self {
            id,
            builds,
            segments,
        }
    }

    fn key(&self) -> String {
        format!("{PREFIX}{}", self.id)
    }

    /// Rounds of segments (the merges come after them).
    pub fn rounds(&self) -> usize {
        self.builds
            .iter()
            .map(|(p, _)| p.rounds().len())
            .max()
            .unwrap_or(0)
    }

    fn round(&self, round: usize) -> Vec<Unit> {
        (0..self.segments)
            .map(|segment| Unit::Segment { round, segment })
            .collect()
    }

    fn merges(&self) -> Vec<Unit> {
        self.builds
            .iter()
            .filter(|(p, _)| p.rounds().len() > 1)
            .map(|(p, _)| Unit::Merge(*p))
            .collect()
    }

    /// Every unit, in the order they are done.
    fn units(&self) -> Vec<Unit> {
        let mut units: Vec<Unit> = (0..self.rounds()).flat_map(|r| self.round(r)).collect();
        units.extend(self.merges());
        units
    }

    fn unit_key(&self, unit: Unit) -> String {
        match unit {
            Unit::Segment { round, segment } => format!("{}#{round}#{segment}", self.key()),
            Unit::Merge(projection) => format!("{}#merge#{projection}", self.key()),
        }
    }

    fn adds_key(&self, unit: Unit, projection: Projection, chunk: u64) -> String {
        format!("{}#adds#{projection}#{chunk}", self.unit_key(unit))
    }

    pub async fn save(&self, replay: &Replay) -> Result<(), ReplayError> {
        let builds = self.builds.iter().map(|b| build_name(*b)).collect();
        replay
            .client
            .put_item()
            .table_name(&replay.base.checkpoints)
            .item(PK, AttributeValue::S(self.key()))
            .item("builds", AttributeValue::Ss(builds))
            .item("segments", n(self.segments))
            .send()
            .await
            .map_err(store_error("saving the full pass"))?;
        Ok(())
    }

    /// The plan of pass `id`, if there is one.
    pub async fn read(replay: &Replay, id: &str) -> Result<Option<Self>, ReplayError> {
        let output = replay
            .client
            .get_item()
            .table_name(&replay.base.checkpoints)
            .key(PK, AttributeValue::S(format!("{PREFIX}{id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("reading the full pass"))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let bad = || ReplayError::Invalid(format!("the full pass item {PREFIX}{id} is damaged"));
        let mut builds = Vec::new();
        for name in item
            .get("builds")
            .and_then(|v| v.as_ss().ok())
            .ok_or_else(bad)?
        {
            let (projection, version) = name.split_once(".v").ok_or_else(bad)?;
            builds.push((
                projection.parse().map_err(|_| bad())?,
                version.parse().map_err(|_| bad())?,
            ));
        }
        let segments = number(item, "segments").ok_or_else(bad)? as u32;
        let plan = Self::new(&builds, segments);
        if plan.id != id {
            return Err(bad());
        }
        Ok(Some(plan))
    }

    /// Deletes the plan and every item of its units (when its rebuilds are done or aborted).
    pub async fn forget(&self, replay: &Replay) -> Result<(), ReplayError> {
        let states = read_states(replay, self, &self.units()).await?;
        let mut keys = vec![self.key()];
        for (unit, state) in &states {
            keys.push(self.unit_key(*unit));
            for (projection, done) in &state.results {
                keys.extend((0..done.chunks).map(|c| self.adds_key(*unit, *projection, c)));
            }
        }
        stream::iter(keys)
            .map(|key| async move {
                replay
                    .client
                    .delete_item()
                    .table_name(&replay.base.checkpoints)
                    .key(PK, AttributeValue::S(key))
                    .send()
                    .await
                    .map_err(store_error("deleting the full pass"))
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }
}

/// What a unit's item says.
#[derive(Clone, Debug, Default)]
struct UnitState {
    done: bool,
    owner: Option<String>,
    expires_at: u64,
    attempts: u64,
    results: HashMap<Projection, Result1>,
}

/// A done unit's figures for one projection.
#[derive(Clone, Copy, Debug, Default)]
struct Result1 {
    scanned: u64,
    folded: u64,
    items: u64,
    /// Items of adds kept for the merge.
    chunks: u64,
}

impl UnitState {
    fn from_item(item: &HashMap<String, AttributeValue>) -> Self {
        let results = item
            .get("results")
            .and_then(|v| v.as_m().ok())
            .map(|results| {
                results
                    .iter()
                    .filter_map(|(name, value)| {
                        let projection: Projection = name.parse().ok()?;
                        let m = value.as_m().ok()?;
                        let get = |k: &str| number(m, k).unwrap_or(0);
                        Some((
                            projection,
                            Result1 {
                                scanned: get("scanned"),
                                folded: get("folded"),
                                items: get("items"),
                                chunks: get("chunks"),
                            },
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            done: item.get("done").and_then(|v| v.as_bool().ok()) == Some(&true),
            owner: events::views::text(item, "owner"),
            expires_at: number(item, "expiresAt").unwrap_or(0),
            attempts: number(item, "attempts").unwrap_or(0),
            results,
        }
    }
}

/// The items of `units` (`BatchGetItem`, strongly consistent); a unit without one has a
/// default state.
async fn read_states(
    replay: &Replay,
    plan: &PassPlan,
    units: &[Unit],
) -> Result<HashMap<Unit, UnitState>, ReplayError> {
    let by_key: HashMap<String, Unit> = units.iter().map(|u| (plan.unit_key(*u), *u)).collect();
    let mut states: HashMap<Unit, UnitState> =
        units.iter().map(|u| (*u, UnitState::default())).collect();
    let table = &replay.base.checkpoints;
    let keys: Vec<String> = by_key.keys().cloned().collect();
    for chunk in keys.chunks(100) {
        let mut pending: Vec<HashMap<String, AttributeValue>> = chunk
            .iter()
            .map(|k| HashMap::from([(PK.to_owned(), AttributeValue::S(k.clone()))]))
            .collect();
        while !pending.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| ReplayError::Store(format!("reading units: {e}")))?;
            let output = replay
                .client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(store_error("reading the units of the full pass"))?;
            for item in output
                .responses()
                .and_then(|r| r.get(table))
                .into_iter()
                .flatten()
            {
                if let Some(unit) = events::views::text(item, PK).and_then(|k| by_key.get(&k)) {
                    states.insert(*unit, UnitState::from_item(item));
                }
            }
            if let Some(unprocessed) = output.unprocessed_keys().and_then(|u| u.get(table)) {
                pending = unprocessed.keys().to_vec();
            }
        }
    }
    Ok(states)
}

/// Claims `unit` for `owner` until `lease` from now, if it is not done and no one holds it;
/// returns the attempt it is (1 for the first).
async fn claim(
    replay: &Replay,
    plan: &PassPlan,
    unit: Unit,
    owner: &str,
    lease: Duration,
) -> Result<Option<u64>, ReplayError> {
    let now = now_ms();
    let result = replay
        .client
        .update_item()
        .table_name(&replay.base.checkpoints)
        .key(PK, AttributeValue::S(plan.unit_key(unit)))
        .update_expression("SET #owner = :me, #expiresAt = :until ADD #attempts :one")
        .condition_expression(
            "attribute_not_exists(#done) AND (attribute_not_exists(#expiresAt) OR #expiresAt < :now)",
        )
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_names("#expiresAt", "expiresAt")
        .expression_attribute_names("#attempts", "attempts")
        .expression_attribute_names("#done", "done")
        .expression_attribute_values(":me", AttributeValue::S(owner.to_owned()))
        .expression_attribute_values(":until", n(now + lease.as_millis() as u64))
        .expression_attribute_values(":now", n(now))
        .expression_attribute_values(":one", n(1))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    match result {
        Ok(output) => Ok(Some(
            output
                .attributes()
                .and_then(|a| number(a, "attempts"))
                .unwrap_or(1),
        )),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(store_error("claiming a unit")(error)),
    }
}

/// Renews `owner`'s lease on `unit`; `false` if it is no longer `owner`'s.
async fn renew(
    replay: &Replay,
    plan: &PassPlan,
    unit: Unit,
    owner: &str,
    lease: Duration,
) -> Result<bool, ReplayError> {
    let result = replay
        .client
        .update_item()
        .table_name(&replay.base.checkpoints)
        .key(PK, AttributeValue::S(plan.unit_key(unit)))
        .update_expression("SET #expiresAt = :until")
        .condition_expression("#owner = :me AND attribute_not_exists(#done)")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_names("#expiresAt", "expiresAt")
        .expression_attribute_names("#done", "done")
        .expression_attribute_values(":me", AttributeValue::S(owner.to_owned()))
        .expression_attribute_values(":until", n(now_ms() + lease.as_millis() as u64))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(error) => Err(store_error("renewing a lease")(error)),
    }
}

/// Marks `unit` done with its figures. The unit's writes are the same whoever makes them, so
/// a worker whose lease lapsed meanwhile marks it done all the same.
async fn mark_done(
    replay: &Replay,
    plan: &PassPlan,
    unit: Unit,
    results: &[(Projection, Result1)],
) -> Result<(), ReplayError> {
    let results = results
        .iter()
        .map(|(projection, r)| {
            let m = HashMap::from([
                ("scanned".to_owned(), n(r.scanned)),
                ("folded".to_owned(), n(r.folded)),
                ("items".to_owned(), n(r.items)),
                ("chunks".to_owned(), n(r.chunks)),
            ]);
            (projection.name().to_owned(), AttributeValue::M(m))
        })
        .collect();
    replay
        .client
        .update_item()
        .table_name(&replay.base.checkpoints)
        .key(PK, AttributeValue::S(plan.unit_key(unit)))
        .update_expression("SET #done = :true, #results = :results REMOVE #expiresAt")
        .expression_attribute_names("#done", "done")
        .expression_attribute_names("#results", "results")
        .expression_attribute_names("#expiresAt", "expiresAt")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .expression_attribute_values(":results", AttributeValue::M(results))
        .send()
        .await
        .map_err(store_error("marking a unit done"))?;
    Ok(())
}

fn add_to_item(add: &Add) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("t".to_owned(), AttributeValue::S(add.table.clone())),
        ("k".to_owned(), AttributeValue::M(add.key.clone())),
        ("a".to_owned(), AttributeValue::S(add.attribute.clone())),
        ("n".to_owned(), n(add.by)),
    ]))
}

fn add_from_item(value: &AttributeValue) -> Option<Add> {
    let m = value.as_m().ok()?;
    Some(Add {
        table: m.get("t")?.as_s().ok()?.clone(),
        key: m.get("k")?.as_m().ok()?.clone(),
        attribute: m.get("a")?.as_s().ok()?.clone(),
        by: m.get("n")?.as_n().ok()?.parse().ok()?,
    })
}

/// Keeps a unit's adds of `projection` for the merge; returns the items they took.
async fn keep_adds(
    replay: &Replay,
    plan: &PassPlan,
    unit: Unit,
    projection: Projection,
    adds: &[Add],
) -> Result<u64, ReplayError> {
    let mut chunks = 0;
    for chunk in adds.chunks(ADDS_PER_ITEM) {
        replay
            .client
            .put_item()
            .table_name(&replay.base.checkpoints)
            .item(
                PK,
                AttributeValue::S(plan.adds_key(unit, projection, chunks)),
            )
            .item(
                "adds",
                AttributeValue::L(chunk.iter().map(add_to_item).collect()),
            )
            .send()
            .await
            .map_err(store_error("keeping a unit's counters"))?;
        chunks += 1;
    }
    Ok(chunks)
}

/// Does one unit; returns its figures per projection.
async fn do_unit(
    replay: &Replay,
    plan: &PassPlan,
    unit: Unit,
    again: bool,
    foreign: &Foreign,
    in_flight: usize,
) -> Result<Vec<(Projection, Result1)>, ReplayError> {
    match unit {
        Unit::Segment { round, segment } => {
            let done = crate::bulk::unit(
                replay,
                &plan.builds,
                (round, segment, plan.segments),
                foreign,
                again,
                in_flight,
            )
            .await?;
            let mut results = Vec::with_capacity(done.len());
            for (
                (projection, version),
                UnitDone {
                    scanned,
                    folded,
                    items,
                    adds,
                },
            ) in done
            {
                let chunks = keep_adds(replay, plan, unit, projection, &adds).await?;
                ProgressItem::count(replay, projection, version, scanned, folded).await?;
                results.push((
                    projection,
                    Result1 {
                        scanned,
                        folded,
                        items,
                        chunks,
                    },
                ));
            }
            Ok(results)
        }
        Unit::Merge(projection) => {
            let states = read_states(replay, plan, &plan.units()).await?;
            let mut adds = Vec::new();
            for (source, state) in &states {
                let chunks = state.results.get(&projection).map_or(0, |r| r.chunks);
                for chunk in 0..chunks {
                    let key = plan.adds_key(*source, projection, chunk);
                    let output = replay
                        .client
                        .get_item()
                        .table_name(&replay.base.checkpoints)
                        .key(PK, AttributeValue::S(key.clone()))
                        .consistent_read(true)
                        .send()
                        .await
                        .map_err(store_error("reading a unit's counters"))?;
                    let list = output
                        .item()
                        .and_then(|i| i.get("adds"))
                        .and_then(|v| v.as_l().ok())
                        .ok_or_else(|| {
                            ReplayError::Invalid(format!("the counters item {key} is missing"))
                        })?;
                    adds.extend(list.iter().filter_map(add_from_item));
                }
            }
            let items = merge_adds(&replay.client, sum_adds(adds), in_flight).await?;
            Ok(vec![(
                projection,
                Result1 {
                    items,
                    ..Result1::default()
                },
            )])
        }
    }
}

/// One worker: claims units of each round (then the merges) until every one is done, up to
/// `at_once` at a time, waiting for other workers' units at the end of a round. Returns the
/// units it did again.
async fn work(
    replay: &Replay,
    plan: &PassPlan,
    me: &str,
    foreign: &Foreign,
    at_once: usize,
    options: &WorkOptions,
) -> Result<u64, ReplayError> {
    let mut redone = 0;
    let stages: Vec<Vec<Unit>> = (0..plan.rounds())
        .map(|r| plan.round(r))
        .chain([plan.merges()])
        .collect();
    // Twice its share: a unit spends part of its time reading, when it writes nothing.
    let in_flight = (2 * options.in_flight / (options.workers.max(1) * at_once)).max(2);
    let mut waiting = false;
    for units in stages {
        loop {
            // A pass whose rebuild went on to catch up is forgotten: nothing is left to do.
            if PassPlan::read(replay, &plan.id).await?.is_none() {
                return Ok(redone);
            }
            let states = read_states(replay, plan, &units).await?;
            let now = now_ms();
            let pending: Vec<Unit> = units.iter().copied().filter(|u| !states[u].done).collect();
            if pending.is_empty() {
                break;
            }
            let mut claimable: Vec<Unit> = pending
                .iter()
                .copied()
                .filter(|u| states[u].owner.is_none() || states[u].expires_at < now)
                .collect();
            // Workers start at different places, so that they seldom race for one unit.
            let offset = me.bytes().map(usize::from).sum::<usize>() % claimable.len().max(1);
            claimable.rotate_left(offset);
            let did: Vec<(u64, u64)> = stream::iter(claimable)
                .map(|unit| async move {
                    let Some(attempt) = claim(replay, plan, unit, me, options.lease).await? else {
                        return Ok::<_, ReplayError>((0, 0));
                    };
                    // A merge runs alone: it takes every request in flight.
                    let in_flight = match unit {
                        Unit::Segment { .. } => in_flight,
                        Unit::Merge(_) => options.in_flight,
                    };
                    let work = do_unit(replay, plan, unit, attempt > 1, foreign, in_flight);
                    tokio::pin!(work);
                    let mut renewals = tokio::time::interval(options.lease / 3);
                    renewals.tick().await;
                    let results = loop {
                        tokio::select! {
                            results = &mut work => break results?,
                            _ = renewals.tick() => {
                                if !renew(replay, plan, unit, me, options.lease).await? {
                                    tracing::warn!(?unit, "a unit's lease lapsed; finishing it anyway (its writes are the same whoever makes them)");
                                }
                            }
                        }
                    };
                    mark_done(replay, plan, unit, &results).await?;
                    Ok((1, u64::from(attempt > 1)))
                })
                .buffer_unordered(at_once)
                .try_collect()
                .await?;
            redone += did.iter().map(|(_, r)| r).sum::<u64>();
            if did.iter().all(|(claimed, _)| *claimed == 0) {
                // Every pending unit is someone else's: wait for them (or their leases).
                if !waiting {
                    replay.progress.note(&format!(
                        "waiting for {} unit{} other workers hold (a stopped worker's lease lapses within {} s)",
                        pending.len(),
                        if pending.len() == 1 { "" } else { "s" },
                        options.lease.as_secs()
                    ));
                    waiting = true;
                }
                tokio::time::sleep((options.lease / 10).min(Duration::from_secs(1))).await;
            } else {
                waiting = false;
            }
        }
    }
    Ok(redone)
}

/// Runs `options.workers` workers in this process on `plan` until every unit is done, then
/// returns each build's figures (in the order of `plan.builds`).
pub async fn run(
    replay: &Replay,
    plan: &PassPlan,
    options: &WorkOptions,
) -> Result<Vec<FullPass>, ReplayError> {
    let started = Instant::now();
    let foreign = Foreign::new(
        &replay.client,
        projectors::bulk::foreign_budget(options.memory_bytes),
    );
    let workers = options.workers.max(1);
    let at_once = (options.units_at_once() / workers).max(1);
    let host = std::process::id();
    let redone: Vec<u64> = stream::iter(0..workers)
        .map(|i| {
            let (foreign, me) = (&foreign, format!("{host}-{i}-{}", now_ms()));
            async move { work(replay, plan, &me, foreign, at_once, options).await }
        })
        .buffer_unordered(workers)
        .try_collect()
        .await?;
    tracing::debug!(reads = foreign.reads(), "reads of earlier rounds' items");
    tracing::debug!(
        redone = redone.iter().sum::<u64>(),
        "units this process did again"
    );
    summarize(replay, plan, started.elapsed()).await
}

/// Each build's figures from its units' items.
async fn summarize(
    replay: &Replay,
    plan: &PassPlan,
    elapsed: Duration,
) -> Result<Vec<FullPass>, ReplayError> {
    let units = plan.units();
    let states = read_states(replay, plan, &units).await?;
    // By any worker, in any process.
    let redone = states.values().filter(|s| s.attempts > 1).count() as u64;
    Ok(plan
        .builds
        .iter()
        .map(|(projection, _)| {
            let mut pass = FullPass {
                rounds: projection.rounds().len(),
                shared_by: plan.builds.len(),
                redone,
                elapsed,
                ..FullPass::default()
            };
            for (unit, state) in &states {
                if let Some(r) = state.results.get(projection) {
                    pass.scanned += r.scanned;
                    pass.folded += r.folded;
                    match unit {
                        Unit::Segment { .. } => pass.items += r.items,
                        Unit::Merge(_) => pass.counters += r.items,
                    }
                    pass.units += 1;
                }
            }
            pass
        })
        .collect())
}

/// Passes in progress that `replay worker` can help: those of every rebuild whose progress
/// item says its full pass began.
pub async fn in_progress(replay: &Replay) -> Result<Vec<PassPlan>, ReplayError> {
    let mut plans: Vec<PassPlan> = Vec::new();
    for projection in Projection::ALL {
        let Some(version) = crate::registry::read(replay, projection)
            .await?
            .state
            .building
        else {
            continue;
        };
        let Some(item) = ProgressItem::read(replay, projection, version).await? else {
            continue;
        };
        if item.phase != crate::progress_item::Phase::Full {
            continue;
        }
        let Some(id) = item.full_pass else { continue };
        if plans.iter().any(|p| p.id == id) {
            continue;
        }
        if let Some(plan) = PassPlan::read(replay, &id).await? {
            plans.push(plan);
        }
    }
    Ok(plans)
}

/// `replay worker`: works on every full pass in progress until each one is done, waiting up
/// to `wait` for one to begin if none is. Returns the passes it helped.
pub async fn help(
    replay: &Replay,
    options: &WorkOptions,
    wait: Duration,
) -> Result<Vec<String>, ReplayError> {
    let until = Instant::now() + wait;
    let mut helped: Vec<String> = Vec::new();
    loop {
        let plans: Vec<PassPlan> = in_progress(replay)
            .await?
            .into_iter()
            .filter(|p| !helped.contains(&p.id))
            .collect();
        if plans.is_empty() {
            if !helped.is_empty() || Instant::now() >= until {
                return Ok(helped);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        for plan in plans {
            replay
                .progress
                .start(&format!("helping full pass {}", plan.id), 0, None);
            run(replay, &plan, options).await?;
            replay.progress.finish();
            helped.push(plan.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_names_its_builds_and_orders_its_units() {
        let plan = PassPlan::new(&[(Projection::Users, 3), (Projection::Articles, 2)], 3);
        assert_eq!(plan.id, "users.v3+articles.v2");
        assert_eq!(plan.rounds(), 2);
        assert_eq!(plan.units().len(), 3 * 2 + 1);
        assert_eq!(
            plan.unit_key(Unit::Segment {
                round: 1,
                segment: 2
            }),
            "fullpass#users.v3+articles.v2#1#2"
        );
        assert_eq!(
            plan.units().last(),
            Some(&Unit::Merge(Projection::Articles))
        );
        let add = Add {
            table: "t".into(),
            key: HashMap::from([("articleId".to_owned(), AttributeValue::S("a".into()))]),
            attribute: "favoritesCount".into(),
            by: -2,
        };
        assert_eq!(add_from_item(&add_to_item(&add)), Some(add));
    }
}
