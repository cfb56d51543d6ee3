//! Replay (section 4): events/s rebuilding every projection from a log of
//! `scale.replay_events` events, beside raw `BatchWriteItem` items/s in the same run.
//!
//! The steps ([`crate::history`]): a fresh prefix provisioned (no
//! pollers, so nothing but the replay works the database), a synthetic valid history written
//! straight into its events table; every projection rebuilt into a new version through a
//! metering client (requests and capacity, not timed), then again, timed, then all four with
//! `replay rebuild all` (timed); then as many small items written with `BatchWriteItem` (25
//! per request, as many requests in flight as the rebuild has), and each version's own items
//! written the same way into tables like its own. All of it on a DynamoDB Local of its own (see
//! [`measure`]); moto's topic and queues under the prefix are deleted afterwards.

use std::time::{Duration, Instant};

use crate::history::rate;
use anyhow::Context;
use common::config::TableNames;
use common::projections::Projection;
use local_aws::testkit::OwnDynamoDbLocal;
use local_aws::{Clients, LocalEndpoints};
use replay::{Progress, RebuildOptions, RebuildReport, Replay};

use crate::report::{ReplayProjection, ReplaySection};
use crate::stats::VsBaseline;
use crate::Scale;

/// How often a progress line is printed while the projections are rebuilt.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Measures on a DynamoDB Local of its own, started for this section and stopped after it.
/// DynamoDB Local keeps the stream records of deleted tables, and every write into a table
/// with a stream looks its stream up among them: behind the API section's 23,000 writes, the
/// history's `BatchWriteItem`s into the events table kept its one SQLite thread busy for over
/// 15 minutes before the first replayed event.
pub async fn measure(endpoints: &LocalEndpoints, scale: &Scale) -> anyhow::Result<ReplaySection> {
    let prefix = local_aws::testkit::unique_prefix("benchreplay");
    let log = local_aws::testkit::log_dir().join(format!("{prefix}-dynamodb-local.log"));
    let dynamodb = tokio::task::spawn_blocking(move || OwnDynamoDbLocal::start(log))
        .await
        .context("the task starting DynamoDB Local for the replay failed")?
        .context("starting DynamoDB Local for the replay")?;
    let own = LocalEndpoints {
        dynamodb: dynamodb.endpoint.clone(),
        moto: endpoints.moto.clone(),
    };
    let clients = Clients::local(&own).await;
    local_aws::provision::provision(&clients, &prefix)
        .await
        .with_context(|| format!("provisioning {prefix}"))?;
    let measured = measure_on(&clients, &prefix, scale).await;
    let cleaned = crate::clean_up(&clients, &prefix).await;
    drop(dynamodb);
    let section = measured?;
    cleaned.with_context(|| format!("deleting what {prefix} holds"))?;
    Ok(section)
}

async fn measure_on(
    clients: &Clients,
    prefix: &str,
    scale: &Scale,
) -> anyhow::Result<ReplaySection> {
    let client = &clients.dynamodb;
    let tables = TableNames::with_prefix(prefix);
    let options = RebuildOptions {
        workers: scale.replay_workers,
        ..RebuildOptions::default()
    };
    let in_flight = crate::history::in_flight(&options);

    let loaded = crate::history::load_history(client, &tables, scale.replay_events, in_flight)
        .await
        .context("writing the history into the events table")?;
    eprintln!(
        "bench:   replay: {} events written into the events table in {:.1} s",
        loaded.events,
        loaded.took.as_secs_f64()
    );

    let mut replay = Replay::in_process(
        client.clone(),
        clients.streams.clone(),
        tables,
        local_stack::search_versions(prefix, None),
    );
    replay.progress = Progress::silent();
    // Requests and capacity first, in a round of its own that is not timed. The meter asks
    // DynamoDB for the capacity of every request and rewrites the request's body, which
    // slowed the rebuilds it measured and not the raw writes they are set beside (users'
    // writes: 3.4-5.3 s metered, 2.4 s not, where its own items take 2.3 s raw).
    let tallies = if scale.replay_metered {
        let ticker = tokio::spawn(report_progress(replay.progress.clone(), Instant::now()));
        let metered = crate::history::rebuild_every_projection(&replay, &options, true).await;
        ticker.abort();
        let metered = metered.context("rebuilding every projection, metered")?;
        eprintln!(
            "bench:   replay: every projection rebuilt with its requests counted in {:.1} s (not timed)",
            metered.took.as_secs_f64()
        );
        metered.tallies
    } else {
        vec![local_aws::meter::Tally::default(); 4]
    };

    let ticker = tokio::spawn(report_progress(replay.progress.clone(), Instant::now()));
    let rebuilt = crate::history::rebuild_every_projection(&replay, &options, false).await;
    ticker.abort();
    let rebuilt = rebuilt.context("rebuilding every projection")?;
    for report in &rebuilt.reports {
        eprintln!("bench:   replay: {}", report.summary());
    }
    let items: u64 = rebuilt.reports.iter().map(|r| r.items).sum();
    eprintln!(
        "bench:   replay: every projection rebuilt, one after the other, in {:.1} s: {items} items written",
        rebuilt.took.as_secs_f64()
    );
    // `all`: the four again, as `replay rebuild all` does it (one read of the log).
    let ticker = tokio::spawn(report_progress(replay.progress.clone(), Instant::now()));
    let memory = crate::memory::PeakOfThisProcess::start()?;
    let together = crate::history::rebuild_all_together(&replay, &options).await;
    let peak_kib = memory.peak_kib()?;
    ticker.abort();
    let (together, took) = together.context("rebuilding all projections together")?;
    eprintln!(
        "bench:   replay: all: peak resident memory {:.0} MiB ({:.0} MiB resident before)",
        peak_kib as f64 / 1024.0,
        memory.before_kib as f64 / 1024.0
    );
    for report in &together {
        eprintln!("bench:   replay: all: {}", report.summary());
    }
    let per_second = rate(loaded.events, took);
    let all_items: u64 = together.iter().map(|r| r.items).sum();
    eprintln!(
        "bench:   replay: all projections rebuilt together in {:.1} s: {per_second:.0} log events/s, {all_items} items written",
        took.as_secs_f64()
    );

    let kill_resume = if scale.replay_kill_resume {
        let measured = match kill_and_resume(&replay, &options, took / 2).await {
            Ok(measured) => measured,
            Err(error) => {
                eprintln!("bench:   replay: the kill and resume failed: {error:#}");
                crate::report::KillResume::default()
            }
        };
        eprintln!(
            "bench:   replay: all, killed after {:.1} s and resumed: {:.1} s more, {} of {} units done again, {}",
            measured.killed_after_seconds,
            measured.resumed_seconds,
            measured.redone,
            measured.units,
            if measured.equal { "every version equal to the one it replaced" } else { "DIFFERENCES" }
        );
        Some(measured)
    } else {
        None
    };

    // As many items as the versions hold, written the way the rebuild writes them.
    let raw = crate::history::raw_batch_writes(client, prefix, items.max(1), in_flight)
        .await
        .context("measuring raw BatchWriteItem")?;
    eprintln!(
        "bench:   replay: raw BatchWriteItem {:.0} items/s ({} items, {in_flight} requests in flight)",
        raw.per_second, raw.items
    );

    // The second yardstick: each version's own items, written raw into tables like its own.
    let mut projections = Vec::new();
    for (report, tally) in rebuilt.reports.iter().zip(&tallies) {
        let mut row = projection_row(report, tally, raw.per_second);
        let (own_items, took) = crate::history::raw_own_items(
            &replay,
            report.projection,
            report.version,
            prefix,
            in_flight,
        )
        .await
        .with_context(|| format!("writing {}'s own items raw", report.projection))?;
        row.own_items = own_items;
        row.own_raw_seconds = took.as_secs_f64();
        row.own_ratio = (own_items == report.items && row.seconds > 0.0)
            .then(|| row.own_raw_seconds / row.seconds);
        eprintln!(
            "bench:   replay: {}: its own {own_items} items written raw into tables like its own in {:.1} s",
            report.projection,
            row.own_raw_seconds
        );
        projections.push(row);
    }
    Ok(ReplaySection {
        events: loaded.events as usize,
        workers: scale.replay_workers,
        kill_resume,
        seconds: took.as_secs_f64(),
        one_by_one_seconds: rebuilt.took.as_secs_f64(),
        per_second,
        items: all_items,
        raw_seconds: all_items as f64 / raw.per_second.max(1e-9),
        projections,
        peak_rss_bytes: peak_kib * 1024,
        rss_before_bytes: memory.before_kib * 1024,
        raw_batch_write_per_second: raw.per_second,
        // Items written a second beside raw items a second: raw time / rebuild time.
        vs: VsBaseline::new(
            rate(all_items, took),
            "DynamoDB Local BatchWriteItem items/s",
            raw.per_second,
        ),
    })
}

/// `rebuild all` killed after `after` (its task aborted: its leases stay held until they
/// lapse, as after a kill), then resumed with `--verify`.
async fn kill_and_resume(
    replay: &Replay,
    options: &RebuildOptions,
    after: std::time::Duration,
) -> anyhow::Result<crate::report::KillResume> {
    let started = Instant::now();
    let run = tokio::spawn({
        let (replay, options) = (replay.clone(), options.clone());
        async move { replay::rebuild_all(&replay, &Projection::ALL, &options).await }
    });
    tokio::time::sleep(after).await;
    anyhow::ensure!(
        !run.is_finished(),
        "the rebuild finished before it was killed"
    );
    run.abort();
    let _ = run.await;
    let killed_after_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let resume = RebuildOptions {
        resume: true,
        verify: true,
        ..options.clone()
    };
    let reports = replay::rebuild_all(replay, &Projection::ALL, &resume)
        .await
        .context("resuming the killed rebuild")?;
    // The articles' units: every segment of its two rounds, and its merge.
    for report in &reports {
        if let Some(verify) = report.verify.as_ref().filter(|v| !v.is_equal()) {
            eprintln!(
                "bench:   replay: {} after the resume:\n{}",
                report.projection,
                verify.render()
            );
        }
    }
    let bulk = reports
        .iter()
        .filter_map(|r| r.bulk)
        .max_by_key(|b| b.units);
    Ok(crate::report::KillResume {
        killed_after_seconds,
        resumed_seconds: started.elapsed().as_secs_f64(),
        units: bulk.map_or(0, |b| b.units),
        redone: bulk.map_or(0, |b| b.redone),
        equal: reports
            .iter()
            .all(|r| r.verify.as_ref().is_some_and(|v| v.is_equal())),
    })
}

/// One projection's row: its rebuild's wall time beside the time raw `BatchWriteItem` takes
/// (at `raw_per_second`) to write the items its version holds.
fn projection_row(
    report: &RebuildReport,
    tally: &local_aws::meter::Tally,
    raw_per_second: f64,
) -> ReplayProjection {
    let seconds = report.elapsed.as_secs_f64();
    let raw_seconds = report.items as f64 / raw_per_second.max(1e-9);
    ReplayProjection {
        projection: report.projection.to_string(),
        applied: report.applied(),
        seconds,
        per_second: rate(report.applied(), report.elapsed),
        items: report.items,
        raw_seconds,
        ratio: (seconds > 0.0).then(|| raw_seconds / seconds),
        full_seconds: report.full.elapsed.as_secs_f64(),
        catch_up_passes: report.catch_up.len(),
        catch_up_seconds: report
            .catch_up
            .iter()
            .map(|p| p.elapsed.as_secs_f64())
            .sum(),
        catch_up_read: report.catch_up.iter().map(|p| p.scanned).sum(),
        last_seconds: report.last.elapsed.as_secs_f64(),
        last_read: report.last.scanned,
        requests: tally.requests.clone(),
        read_units: tally.read_units,
        write_units: tally.write_units,
        ..ReplayProjection::default()
    }
}

/// A line on stderr every [`PROGRESS_EVERY`] until aborted (the counters move page by page).
async fn report_progress(progress: Progress, started: Instant) {
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        eprintln!(
            "bench:   replay: rebuilding for {:.0} s; the current pass has read {} events and \
             applied {}",
            started.elapsed().as_secs_f64(),
            progress.done(),
            progress.applied()
        );
    }
}
