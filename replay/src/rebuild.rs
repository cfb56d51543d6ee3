//! Rebuilding one projection into a new version: full pass, catch-up passes, freeze, last pass, switch; resumable from the progress item `replay#<name>#v<n>`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::clock::now_ms;
use common::projections::Projection;
use tokio::sync::Mutex;

use crate::progress::format_count;
use crate::progress_item::{Phase, ProgressItem};
use crate::scan::{self, AnyRuntime};
use crate::tail::{self, TailError, TailHandle, TailPositions};
use crate::units::{PassPlan, WorkOptions};
use crate::verify::{self, VerifyReport};
use crate::{registry, versions, Replay, ReplayError};

/// How a rebuild runs.
#[derive(Clone, Debug)]
pub struct RebuildOptions {
    /// Parallel scan segments (fixed when a rebuild starts; a resumed one keeps its own);
    /// `None`: one per [`common::tables::SEGMENT_BYTES`] of the events table.
    /// A segment reads one page after another, so segments are what makes the read fast: on
    /// DynamoDB Local, 100,000 items take 7.3 s with 4 and 1.6 s with 32 (`Select=COUNT`).
    pub segments: Option<u32>,
    /// Continue the rebuild in progress instead of starting one.
    pub resume: bool,
    /// Compare the new version with the one it replaces after the switch.
    pub verify: bool,
    /// Aggregates of one page applied at once.
    pub concurrency: usize,
    /// Catch-up passes before the switch, at most (each one applies what the stream tail read
    /// since the previous one; they stop early when one applies nothing).
    pub max_catch_up_passes: u32,
    /// Subtracted from a pass's start to get the next pass's `recordedAt` bound, which a
    /// pass scans from when the stream tail does not reach back far enough: covers the time
    /// between an event's timestamp and its commit (and its stream record), and clock
    /// differences.
    pub margin: Duration,
    /// How long one freeze extension holds; renewed every third of it while the last pass runs.
    pub freeze_lease: Duration,
    /// `BatchWriteItem` requests in flight while the full pass writes the version.
    pub in_flight: usize,
    /// Workers this process runs on the full pass's units (`replay worker` processes can
    /// join them).
    pub workers: usize,
    /// How long a worker's lease on a unit holds without renewal: a unit whose worker was
    /// killed is taken up again by another after this.
    pub lease: Duration,
    /// The memory the full pass may use, in bytes: a quarter caches what earlier rounds wrote,
    /// and it sets how many units are done at once (one per 32 MiB, at most 16).
    pub memory_bytes: usize,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            segments: None,
            resume: false,
            verify: false,
            concurrency: 16,
            max_catch_up_passes: 5,
            margin: Duration::from_secs(5 * 60),
            freeze_lease: Duration::from_secs(15),
            in_flight: 64,
            workers: 1,
            lease: Duration::from_secs(30),
            memory_bytes: 512 << 20,
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Items the scan read; for a pass over the stream, the stream records it read (plus
    /// the items of the scan it fell back to, if it did).
    pub scanned: u64,
    pub applied: u64,
    /// `GetRecords` calls of a pass over the stream (what DynamoDB Streams bills).
    pub get_records: u64,
    pub elapsed: Duration,
}

/// What a rebuild did.
#[derive(Clone, Debug)]
pub struct RebuildReport {
    pub projection: Projection,
    pub version: u32,
    /// The version it replaced.
    pub previous: u32,
    pub resumed: bool,
    /// The full pass (in this run: a resumed one starts it again).
    pub full: PassReport,
    /// Items the full pass wrote into the version (its tables or index, and checkpoints).
    pub items: u64,
    /// The full pass's steps, when this run made one.
    pub bulk: Option<crate::bulk::FullPass>,
    pub catch_up: Vec<PassReport>,
    /// The last pass, while the live projector was frozen.
    pub last: PassReport,
    pub elapsed: Duration,
    pub verify: Option<VerifyReport>,
}

impl RebuildReport {
    /// Events applied in this run.
    pub fn applied(&self) -> u64 {
        self.full.applied + self.catch_up.iter().map(|p| p.applied).sum::<u64>() + self.last.applied
    }

    pub fn summary(&self) -> String {
        let rate = |p: &PassReport| {
            let secs = p.elapsed.as_secs_f64();
            if secs > 0.0 {
                p.scanned as f64 / secs
            } else {
                0.0
            }
        };
        let catch_up: Vec<String> = self
            .catch_up
            .iter()
            .map(|p| {
                format!(
                    "{} read, {} applied",
                    format_count(p.scanned),
                    format_count(p.applied)
                )
            })
            .collect();
        let steps = self.bulk.map_or_else(String::new, |b| {
            format!(
                " ({} units in {} round{}{}{}, {} items written)",
                format_count(b.units),
                b.rounds,
                if b.rounds == 1 { "" } else { "s" },
                if b.shared_by > 1 {
                    format!(", read for {} projections", b.shared_by)
                } else {
                    String::new()
                },
                if b.redone > 0 {
                    format!(", {} done again", format_count(b.redone))
                } else {
                    String::new()
                },
                format_count(b.items),
            )
        });
        format!(
            "{}: version {} replaces {}{}: full pass {} events read, {} applied in {:.1} s ({} ev/s){steps}; catch-up passes [{}]; last pass {} read, {} applied; {:.1} s in all",
            self.projection,
            self.version,
            self.previous,
            if self.resumed { " (resumed)" } else { "" },
            format_count(self.full.scanned),
            format_count(self.full.applied),
            self.full.elapsed.as_secs_f64(),
            format_count(rate(&self.full).round() as u64),
            catch_up.join(", "),
            format_count(self.last.scanned),
            format_count(self.last.applied),
            self.elapsed.as_secs_f64()
        )
    }
}

/// `ms` as the events table writes `recordedAt`.
pub fn iso_millis(ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    events::time_format::format_millis(at)
}

/// Rebuilds several projections one after the other. Without `resume`, a version of each is
/// allocated first (nothing is, if one of them is being rebuilt already), so that after a
/// kill `--resume` goes on with every one that is not finished; with `resume`, every one of
/// them with a rebuild in progress is resumed.
pub async fn rebuild_all(
    replay: &Replay,
    projections: &[Projection],
    options: &RebuildOptions,
) -> Result<Vec<RebuildReport>, ReplayError> {
    for projection in projections {
        replay.check_can_build(*projection)?;
    }
    let mut todo = Vec::new();
    if options.resume {
        for projection in projections {
            if registry::read(replay, *projection)
                .await?
                .state
                .building
                .is_some()
            {
                todo.push(*projection);
            }
        }
        if todo.is_empty() {
            return Err(ReplayError::Busy(
                "no rebuild is in progress: nothing to resume".into(),
            ));
        }
    } else {
        let mut busy = Vec::new();
        for projection in projections {
            if let Some(version) = registry::read(replay, *projection).await?.state.building {
                busy.push(format!("{projection} (version {version})"));
            }
        }
        if !busy.is_empty() {
            return Err(ReplayError::Busy(format!(
                "rebuilds in progress: {}; continue them with --resume, or `replay abort <projection>`",
                busy.join(", ")
            )));
        }
        for projection in projections {
            registry::allocate(replay, *projection).await?;
            todo.push(*projection);
        }
    }
    let resume = RebuildOptions {
        resume: true,
        ..options.clone()
    };
    // Every version begun, then one read of the log for all their full passes, then each
    // one's catch-up and switch in turn.
    let mut begun = Vec::new();
    for projection in todo {
        let mut run = begin(replay, projection, &resume).await?;
        run.report.resumed = options.resume;
        begun.push(run);
    }
    full_passes(replay, &mut begun, options).await?;
    let mut reports = Vec::new();
    for run in begun {
        reports.push(finish(replay, run, options).await?);
    }
    Ok(reports)
}

/// Rebuilds `projection` into a new version (or resumes the rebuild in progress), switches
/// the read side to it and, with `verify`, compares it with the version it replaced.
pub async fn rebuild(
    replay: &Replay,
    projection: Projection,
    options: &RebuildOptions,
) -> Result<RebuildReport, ReplayError> {
    let mut begun = [begin(replay, projection, options).await?];
    full_passes(replay, &mut begun, options).await?;
    let [run] = begun;
    finish(replay, run, options).await
}

/// A rebuild begun: its version allocated (or the one in progress), its tables there and its
/// progress item saved.
struct Begun {
    item: ProgressItem,
    report: RebuildReport,
    started: Instant,
    /// The stream tail its full pass started, in this run.
    tail: Option<TailHandle>,
    /// Why its first catch-up pass must also scan the table (its full pass was resumed: the
    /// tail started in this run misses what came before).
    scan_first: Option<String>,
}

/// Begins a rebuild of `projection` (or resumes the one in progress, with `resume`).
async fn begin(
    replay: &Replay,
    projection: Projection,
    options: &RebuildOptions,
) -> Result<Begun, ReplayError> {
    replay.check_can_build(projection)?;
    let started = Instant::now();
    let (version, item, resumed) = if options.resume {
        let state = registry::read(replay, projection).await?.state;
        let Some(version) = state.building else {
            return Err(ReplayError::Busy(format!(
                "no rebuild of {projection} is in progress: nothing to resume"
            )));
        };
        let item = ProgressItem::read(replay, projection, version).await?;
        let item = match item {
            Some(item) => item,
            None => {
                let segments = segments(replay, options).await;
                ProgressItem::new(projection, version, segments, state.active)
            }
        };
        (version, item, true)
    } else {
        let (version, active) = registry::allocate(replay, projection).await?;
        let segments = segments(replay, options).await;
        let item = ProgressItem::new(projection, version, segments, active);
        (version, item, false)
    };
    if item.phase == Phase::Done {
        return Err(ReplayError::Busy(format!(
            "the rebuild of {projection} into version {version} is done but the registry still \
             says it is being built: `replay abort {projection}`"
        )));
    }
    replay.progress.note(&format!(
        "{projection}: {} version {version} (replacing version {})",
        if resumed { "resuming" } else { "building" },
        item.previous
    ));
    versions::create(replay, projection, version).await?;
    item.save(replay).await?;
    let report = RebuildReport {
        projection,
        version,
        previous: item.previous,
        resumed,
        full: PassReport::default(),
        items: 0,
        bulk: None,
        catch_up: Vec::new(),
        last: PassReport::default(),
        elapsed: Duration::ZERO,
        verify: None,
    };
    Ok(Begun {
        item,
        report,
        started,
        tail: None,
        scan_first: None,
    })
}

/// Finishes a rebuild begun: catch-up passes, freeze, last pass, switch, and the verify if
/// asked.
async fn finish(
    replay: &Replay,
    run: Begun,
    options: &RebuildOptions,
) -> Result<RebuildReport, ReplayError> {
    let Begun {
        item,
        mut report,
        started,
        tail,
        scan_first,
    } = run;
    let (projection, version, previous) = (item.projection, item.version, item.previous);
    build(replay, item, tail, scan_first, options, &mut report).await?;
    report.elapsed = started.elapsed();
    if options.verify {
        replay.progress.note(&format!(
            "{projection}: verifying version {version} against version {previous}"
        ));
        report.verify = Some(verify::verify(replay, projection, previous, version).await?);
    }
    Ok(report)
}

/// The segments a new rebuild scans with: as asked, or as many as the events table's size
/// calls for.
async fn segments(replay: &Replay, options: &RebuildOptions) -> u32 {
    match options.segments {
        Some(segments) => segments.clamp(1, common::tables::MAX_TOTAL_SEGMENTS),
        None => common::tables::unit_segments_for(
            scan::describe_events(replay)
                .await
                .map_or(0, |(_, bytes)| bytes),
        ),
    }
}

/// The full passes of the rebuilds in `begun` that have one to make, in one pass of units
/// ([`crate::units`]) read for all of them: each one's stream tail is started before it, and
/// each one goes on to its catch-up passes afterwards. Rebuilds whose pass began in an
/// earlier run go on with it: its units done stay done.
async fn full_passes(
    replay: &Replay,
    begun: &mut [Begun],
    options: &RebuildOptions,
) -> Result<(), ReplayError> {
    let margin = options.margin.as_millis() as u64;
    // The pass they share, if it began in an earlier run and its plan is there.
    let mut plan = None;
    for run in begun.iter().filter(|run| run.item.phase == Phase::Full) {
        if let Some(id) = &run.item.full_pass {
            if let Some(found) = PassPlan::read(replay, id).await? {
                plan = Some(found);
                break;
            }
        }
    }
    let resumed = plan.is_some();
    let mut builds = Vec::new();
    let mut segments = 1;
    for run in begun.iter_mut().filter(|run| run.item.phase == Phase::Full) {
        let item = &mut run.item;
        let (projection, version) = (item.projection, item.version);
        let in_plan = plan
            .as_ref()
            .is_some_and(|p| p.builds.contains(&(projection, version)));
        if in_plan {
            replay.progress.note(&format!(
                "{projection}: going on with the full pass of version {version}: its units done stay done"
            ));
            // What came before this run's tail is scanned for by the first catch-up pass.
            run.scan_first = Some(format!(
                "the full pass was resumed: its stream tail started in this run, after {}",
                iso_millis(item.full_started_at)
            ));
        } else {
            if item.full_pass_started {
                // A pass of which nothing says what was done: start again from nothing.
                replay.progress.note(&format!(
                    "{projection}: the full pass of version {version} did not finish: emptying the version and starting it again"
                ));
                versions::truncate(replay, projection, version).await?;
            }
            item.full_started_at = now_ms();
        }
        item.full_pass_started = true;
        segments = segments.max(item.segments);
        builds.push((projection, version));
    }
    if builds.is_empty() {
        return Ok(());
    }
    let plan = match plan {
        Some(plan) if resumed && builds.iter().all(|b| plan.builds.contains(b)) => plan,
        _ => PassPlan::new(&builds, segments),
    };
    plan.save(replay).await?;
    for run in begun.iter_mut().filter(|run| run.item.phase == Phase::Full) {
        run.item.full_pass = Some(plan.id.clone());
        run.item.save(replay).await?;
        // Every event committed from here on is the tail's; every one before, the scan's.
        run.tail = Some(TailHandle::start(replay, run.item.projection).await?);
    }
    let names: Vec<String> = plan
        .builds
        .iter()
        .map(|(p, v)| format!("{p} v{v}"))
        .collect();
    replay.progress.start(
        &format!(
            "{} full pass: {} units a round, {} round{}",
            names.join(", "),
            plan.segments,
            plan.rounds(),
            if plan.rounds() == 1 { "" } else { "s" }
        ),
        0,
        scan::describe_events(replay)
            .await
            .map(|(count, _)| count * plan.rounds() as u64),
    );
    let work = WorkOptions {
        workers: options.workers,
        in_flight: options.in_flight,
        lease: options.lease,
        memory_bytes: options.memory_bytes,
        ..WorkOptions::default()
    };
    let passes = crate::units::run(replay, &plan, &work).await?;
    replay.progress.finish();
    for (build, full) in plan.builds.iter().zip(passes) {
        let Some(run) = begun
            .iter_mut()
            .find(|run| (run.item.projection, run.item.version) == *build)
        else {
            continue;
        };
        let (item, report) = (&mut run.item, &mut run.report);
        replay.progress.note(&format!(
            "{}: full pass: {} events read, {} folded, {} items written in {:.1} s ({} units in {} round{}{}{})",
            item.projection,
            format_count(full.scanned),
            format_count(full.folded),
            format_count(full.items),
            full.elapsed.as_secs_f64(),
            format_count(full.units),
            full.rounds,
            if full.rounds == 1 { "" } else { "s" },
            if full.shared_by > 1 {
                format!(", read for {} projections", full.shared_by)
            } else {
                String::new()
            },
            if full.redone > 0 {
                format!(", {} done again", format_count(full.redone))
            } else {
                String::new()
            },
        ));
        report.full = PassReport {
            scanned: full.scanned,
            applied: full.folded,
            elapsed: full.elapsed,
            ..PassReport::default()
        };
        report.items = full.items;
        report.bulk = Some(full);
        item.total = Some(full.scanned);
        item.scanned = full.scanned;
        item.applied = full.folded;
        item.phase = Phase::CatchUp;
        item.pass = 1;
        item.pass_since = Some(item.full_started_at.saturating_sub(margin));
        item.pass_started_at = None;
        item.save(replay).await?;
    }
    plan.forget(replay).await?;
    Ok(())
}

async fn build(
    replay: &Replay,
    mut item: ProgressItem,
    started_tail: Option<TailHandle>,
    scan_first: Option<String>,
    options: &RebuildOptions,
    report: &mut RebuildReport,
) -> Result<(), ReplayError> {
    let (projection, version) = (item.projection, item.version);
    let runtime = AnyRuntime::open(replay, projection, version).await?;
    let margin = options.margin.as_millis() as u64;
    let label = |what: &str| format!("{projection} v{version} {what}");

    // The stream tail, and why the next pass must also scan the table if it must (the tail
    // does not reach back to where the last pass, or the full pass, left off).
    let (mut tail, mut fallback) = match started_tail {
        Some(started) => (started, scan_first),
        None => resume_tail(replay, &item).await?,
    };

    // A rebuild stopped while switching goes straight to switching again, unless its tail
    // was lost: a pass that scans the table runs before the freeze, not during it.
    while fallback.is_some()
        || (item.phase != Phase::Switch && item.pass <= options.max_catch_up_passes)
    {
        let pass_started = item.pass_started_at.unwrap_or_else(now_ms);
        item.phase = Phase::CatchUp;
        item.pass_started_at = Some(pass_started);
        item.save(replay).await?;
        replay
            .progress
            .start(&label(&format!("catch-up {}", item.pass)), 0, None);
        let (pass, positions) = stream_pass(
            replay,
            &item,
            &runtime,
            &mut tail,
            &mut fallback,
            1,
            options,
        )
        .await?;
        replay.progress.finish();
        report.catch_up.push(pass);
        item.scanned += pass.scanned;
        item.applied += pass.applied;
        item.pass += 1;
        item.pass_since = Some(pass_started.saturating_sub(margin));
        item.pass_started_at = None;
        // Only now that what the tail read is applied: `--resume` goes on after it.
        item.tail = Some(positions);
        item.save(replay).await?;
        if pass.applied == 0 {
            break;
        }
    }
    item.phase = Phase::Switch;
    item.save(replay).await?;

    // Freeze the live projector, take what the passes may have missed, switch.
    let lease = options.freeze_lease.as_millis() as u64;
    registry::freeze(replay, projection, version, now_ms() + lease, false).await?;
    let lapsed = Arc::new(AtomicBool::new(false));
    let heartbeat = tokio::spawn({
        let (replay, lapsed) = (replay.clone(), lapsed.clone());
        let every = options.freeze_lease / 3;
        async move {
            loop {
                tokio::time::sleep(every).await;
                let until = now_ms() + lease;
                if let Err(error) =
                    registry::freeze(&replay, projection, version, until, true).await
                {
                    tracing::error!(%error, "the freeze could not be extended");
                    lapsed.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    });
    let mut alias_moved = false;
    let switched = async {
        // Every shard to its end, read after the freeze began: see `tail` for why that is
        // enough.
        replay
            .progress
            .start(&label("switch: last pass, frozen"), 0, None);
        let (last, _) =
            stream_pass(replay, &item, &runtime, &mut tail, &mut fallback, 2, options).await?;
        report.last = last;
        replay.progress.finish();
        // Let go of the new version before the live projector takes it: an embedded index
        // has one writer per directory.
        drop(runtime);
        if projection == Projection::Search {
            replay.search.close(version);
            replay.search.point_alias(version).await?;
            alias_moved = true;
        }
        heartbeat.abort();
        if lapsed.load(Ordering::Relaxed) {
            return Err(ReplayError::Busy(format!(
                "{projection}: the freeze could not be kept up; `replay rebuild {projection} --resume` catches up again"
            )));
        }
        // The freeze must still hold for a while: the live projector's clock may differ a bit.
        registry::switch(replay, projection, version, now_ms() + lease / 3).await
    }
    .await;
    heartbeat.abort();
    if let Err(error) = switched {
        if alias_moved {
            if let Err(e) = replay.search.point_alias(item.previous).await {
                tracing::error!(error = %e, "the search alias could not be moved back");
            }
        }
        if let Err(e) = registry::unfreeze(replay, projection, version).await {
            tracing::error!(error = %e, "the projection could not be unfrozen; its freeze lapses by itself");
        }
        return Err(error);
    }
    item.phase = Phase::Done;
    item.scanned += report.last.scanned;
    item.applied += report.last.applied;
    item.save(replay).await?;
    replay.progress.note(&format!(
        "{projection}: version {version} is active (version {} stays until `replay remove {projection} --version {}`)",
        item.previous, item.previous
    ));
    Ok(())
}

/// The stream tail of a rebuild past its full pass: after the positions saved by its last
/// catch-up pass, or, when there are none or they cannot be used, a new one at the stream's
/// end with the reason why the next pass must also scan.
async fn resume_tail(
    replay: &Replay,
    item: &ProgressItem,
) -> Result<(TailHandle, Option<String>), ReplayError> {
    let why = match &item.tail {
        None => "no stream position was saved yet".to_owned(),
        Some(positions) => match TailHandle::resume(replay, item.projection, positions).await {
            Ok(tail) => return Ok((tail, None)),
            Err(TailError::Lost(why)) => why,
            Err(error) => return Err(error.into()),
        },
    };
    Ok((TailHandle::start(replay, item.projection).await?, Some(why)))
}

/// A catch-up pass, or the last pass with `ends = 2`: what the stream tail read since the
/// previous pass, up to every shard's current end (`ends` empty reads in a row), applied; its
/// report counts stream records as read. With a `fallback` reason (the tail does not reach
/// back far enough), the table is first scanned for the events recorded since the pass's
/// bound ([`filtered_pass`]): the tail was started before that scan, so the two leave no gap.
/// Returns the tail's positions after what was applied.
async fn stream_pass(
    replay: &Replay,
    item: &ProgressItem,
    runtime: &AnyRuntime,
    tail: &mut TailHandle,
    fallback: &mut Option<String>,
    ends: u32,
    options: &RebuildOptions,
) -> Result<(PassReport, TailPositions), ReplayError> {
    let started = Instant::now();
    let mut report = PassReport::default();
    let since = item.pass_since.unwrap_or(
        item.full_started_at
            .saturating_sub(options.margin.as_millis() as u64),
    );
    loop {
        if let Some(why) = fallback.take() {
            let projection = item.projection;
            tracing::warn!(%projection, %why, "the stream tail does not reach back far enough; scanning the events table");
            replay.progress.note(&format!(
                "{projection} v{}: the stream tail does not reach back far enough ({why}); this pass also scans the events table for events recorded since {}",
                item.version,
                iso_millis(since)
            ));
            let scanned = filtered_pass(replay, item, runtime, since, options).await?;
            report.scanned += scanned.scanned;
            report.applied += scanned.applied;
        }
        match tail.take(ends).await {
            Ok(taken) => {
                let applied = scan::apply(runtime, taken.events, options.concurrency).await?;
                replay.progress.add(taken.records, applied);
                report.scanned += taken.records;
                report.applied += applied;
                report.get_records += taken.get_records;
                if taken.overflowed {
                    *fallback = Some(format!(
                        "more than {} events came between two passes and were not kept",
                        tail::MAX_BUFFERED
                    ));
                    continue;
                }
                report.elapsed = started.elapsed();
                return Ok((report, taken.positions));
            }
            Err(TailError::Lost(why)) => {
                *tail = TailHandle::start(replay, item.projection).await?;
                *fallback = Some(why);
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// The time-filtered scan: the whole table again, but only events recorded since `since_ms`.
/// Only for a pass whose stream tail does not reach back far enough ([`stream_pass`]).
async fn filtered_pass(
    replay: &Replay,
    item: &ProgressItem,
    runtime: &AnyRuntime,
    since_ms: u64,
    options: &RebuildOptions,
) -> Result<PassReport, ReplayError> {
    let started = Instant::now();
    let since = iso_millis(since_ms);
    let segments = item.segments;
    let totals = Mutex::new(PassReport::default());
    common::tables::each_segment::<ReplayError, _, _>(segments, |segment| {
        let (totals, since) = (&totals, since.as_str());
        async move {
            let mut start = None;
            loop {
                let page = scan::page(
                    replay,
                    &[item.projection],
                    segment,
                    segments,
                    start.take(),
                    Some(since),
                )
                .await?;
                let applied = scan::apply(runtime, page.events, options.concurrency).await?;
                replay.progress.add(page.scanned, applied);
                {
                    let mut totals = totals.lock().await;
                    totals.scanned += page.scanned;
                    totals.applied += applied;
                }
                match page.next {
                    Some(key) => start = Some(key),
                    None => return Ok(()),
                }
            }
        }
    })
    .await?;
    let mut report = totals.into_inner();
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_at_bounds_are_written_like_the_events_table() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_704_067_200_123), "2024-01-01T00:00:00.123Z");
        // Text order is time order, which the `recordedAt >= :since` filter relies on.
        assert!(iso_millis(1_704_067_200_123) < iso_millis(1_704_067_201_000));
    }
}
