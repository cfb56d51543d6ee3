//! `replay-bench`: replay throughput on 100,000 events against DynamoDB Local, next to DynamoDB Local's raw `BatchWriteItem` throughput measured in the same run.
//!
//! Starts its own in-memory emulators and provisions a fresh prefix (tables only: no pollers,
//! so nothing but the replay works the database), writes a synthetic but valid history
//! straight into the events table (`BatchWriteItem` of the items the event store writes:
//! users, profiles, follows and unfollows, articles, edits, comments and their deletion,
//! favorites and unfavorites, deleted articles), rebuilds every projection, then writes
//! 100,000 small items with `BatchWriteItem` (25 per request, as many requests in flight as
//! the replay had aggregates in flight) and prints both rates and their ratio. The steps are
//! [`replay::bench`]'s, which the `bench` crate's replay section runs too.
//!
//! `cargo run --release -p replay --bin replay-bench [-- EVENTS [SEGMENTS [CONCURRENCY]]]`

use anyhow::Context;
use common::config::TableNames;
use replay::bench::rate;
use replay::{Progress, RebuildOptions, Replay};

const DEFAULT_EVENTS: usize = 100_000;
const RAW_ITEMS: u64 = 100_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: usize| -> anyhow::Result<usize> {
        match std::env::args().nth(i) {
            Some(n) => n
                .parse()
                .with_context(|| format!("argument {i} must be a number, not {n:?}")),
            None => Ok(default),
        }
    };
    let target = arg(1, DEFAULT_EVENTS)?;
    let defaults = RebuildOptions::default();
    let options = RebuildOptions {
        segments: arg(2, defaults.segments as usize)? as u32,
        concurrency: arg(3, defaults.concurrency)?,
        ..defaults
    };
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let prefix = infra::testkit::unique_prefix("replaybench");
    let (clients, _) = infra::testkit::provisioned(&prefix).await;
    let client = clients.dynamodb.clone();
    let tables = TableNames::with_prefix(&prefix);
    let in_flight = replay::bench::in_flight(&options);

    let loaded = replay::bench::load_history(&client, &tables, target, in_flight).await?;
    let events = loaded.events;
    println!(
        "loaded {events} events straight into the events table in {:.1} s ({:.0} items/s)",
        loaded.took.as_secs_f64(),
        rate(events, loaded.took)
    );

    let mut replay = Replay::in_process(
        client.clone(),
        tables.clone(),
        local_stack::search_versions(&prefix, None),
    );
    replay.progress = Progress::new(true);
    let drawing = replay.progress.spawn_drawing();
    let rebuilt = replay::bench::rebuild_every_projection(&replay, &options).await;
    replay.progress.stop();
    if let Some(drawing) = drawing {
        let _ = drawing.join();
    }
    let rebuilt = rebuilt?;
    let all = rebuilt.took;

    let raw = replay::bench::raw_batch_writes(&client, &prefix, RAW_ITEMS, in_flight).await?;

    println!(
        "\n| projection | events read | events applied | full pass s | applied ev/s | read ev/s |"
    );
    println!("|---|---|---|---|---|---|");
    for report in &rebuilt.reports {
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {:.0} |",
            report.projection,
            report.full.scanned,
            report.full.applied,
            report.full.elapsed.as_secs_f64(),
            rate(report.full.applied, report.full.elapsed),
            rate(report.full.scanned, report.full.elapsed),
        );
    }
    let applied = rebuilt.applied();
    let replay_rate = rate(applied, all);
    println!(
        "\nreplay of every projection: {applied} events applied in {:.1} s = {replay_rate:.0} events/s \
         ({:.0} log events/s over the four rebuilds)",
        all.as_secs_f64(),
        rate(events, all)
    );
    println!(
        "DynamoDB Local raw BatchWriteItem: {} items in {:.1} s = {:.0} items/s \
         (25 per request, {in_flight} requests in flight)",
        raw.items,
        raw.took.as_secs_f64(),
        raw.per_second
    );
    println!(
        "ratio replay events/s : raw items/s = {:.3}",
        replay_rate / raw.per_second
    );
    Ok(())
}
