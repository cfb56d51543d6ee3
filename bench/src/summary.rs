//! The headline figures of a report, each with its baseline.

use crate::report::{EndpointRun, Report, SummaryRow};
use crate::stats::VsBaseline;

/// The rows of the report's summary table, from what the run measured.
pub fn rows(report: &Report) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    let mut push = |what: String, value: f64, unit: &str, vs: Option<VsBaseline>| {
        rows.push(SummaryRow {
            what,
            value,
            unit: unit.to_owned(),
            vs,
        });
    };
    if let Some(api) = &report.api {
        let mut concurrencies: Vec<usize> = api.endpoints.iter().map(|e| e.concurrency).collect();
        concurrencies.sort_unstable();
        concurrencies.dedup();
        for c in concurrencies {
            let at: Vec<&EndpointRun> = api
                .endpoints
                .iter()
                .filter(|e| e.concurrency == c && e.latency.n > 0)
                .collect();
            for (kind, reads) in [("read", true), ("write", false)] {
                let mut runs: Vec<&&EndpointRun> = at
                    .iter()
                    .filter(|e| e.endpoint.starts_with("GET ") == reads)
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                runs.sort_by(|a, b| a.latency.p50_ms.total_cmp(&b.latency.p50_ms));
                let median = runs[runs.len() / 2];
                push(
                    format!(
                        "API {kind} endpoints, median p50, c={c} ({})",
                        median.endpoint
                    ),
                    median.latency.p50_ms,
                    "ms",
                    Some(median.vs.clone()),
                );
            }
            if let Some(slowest) = at
                .iter()
                .max_by(|a, b| a.latency.p99_ms.total_cmp(&b.latency.p99_ms))
            {
                let baseline = VsBaseline::new(
                    slowest.latency.p99_ms,
                    slowest.vs.baseline.replace("p50", "p99"),
                    baseline_p99(report, &slowest.vs.baseline, c),
                );
                push(
                    format!("API slowest p99, c={c}: {}", slowest.endpoint),
                    slowest.latency.p99_ms,
                    "ms",
                    Some(baseline),
                );
            }
        }
        for mixed in &api.mixed {
            push(
                format!("mixed workload, c={}", mixed.concurrency),
                mixed.per_second,
                "req/s",
                Some(mixed.vs.clone()),
            );
        }
    }
    if let Some(lag) = &report.lag {
        let lowest = lag
            .runs
            .iter()
            .map(|r| r.target_per_second)
            .fold(f64::INFINITY, f64::min);
        let highest = lag
            .runs
            .iter()
            .map(|r| r.target_per_second)
            .fold(0.0, f64::max);
        for run in &lag.runs {
            if run.target_per_second == lowest {
                push(
                    format!(
                        "{} lag p50 at {} writes/s",
                        run.read_model, run.target_per_second
                    ),
                    run.latency.p50_ms,
                    "ms",
                    Some(run.vs.clone()),
                );
            }
        }
        for run in &lag.runs {
            if run.target_per_second == highest {
                let raw = report
                    .baselines
                    .find("SNS→SQS", 1)
                    .map(|r| r.latency.p99_ms);
                push(
                    format!(
                        "{} lag p99 at {} writes/s ({}/{} visible)",
                        run.read_model, run.target_per_second, run.visible, run.writes
                    ),
                    run.latency.p99_ms,
                    "ms",
                    raw.map(|raw| VsBaseline::new(run.latency.p99_ms, "SNS→SQS p99", raw)),
                );
            }
        }
    }
    if let Some(replay) = &report.replay {
        push(
            format!(
                "rebuild of {} events into all projections, items written",
                replay.events
            ),
            replay
                .vs
                .ratio
                .map_or(0.0, |r| r * replay.vs.baseline_value),
            "items/s",
            Some(replay.vs.clone()),
        );
    }
    if let Some(cost) = &report.cost {
        // The whole table is in the report; here a list page, a single read and two writes.
        for call in cost
            .calls
            .iter()
            .filter(|call| SUMMARY_COSTS.contains(&call.endpoint.as_str()))
        {
            push(
                format!("cost of {}", call.endpoint),
                call.dollars_per_million,
                "$/million calls",
                Some(call.vs.clone()),
            );
        }
    }
    if let Some(streams) = &report.streams {
        // Each stream at its longest, beside itself at its shortest.
        let mut longest: Vec<&crate::report::StreamRow> = Vec::new();
        for row in &streams.rows {
            match longest.iter_mut().find(|kept| kept.stream == row.stream) {
                Some(kept) if kept.length < row.length => *kept = row,
                Some(_) => {}
                None => longest.push(row),
            }
        }
        for row in longest {
            let what = format!(
                "{} on a stream of {} events ({})",
                row.command, row.length, row.stream
            );
            push(
                format!("{what}: p50"),
                row.latency.p50_ms,
                "ms",
                Some(row.p50_vs_shortest.clone()),
            );
            push(
                format!("{what}: read units"),
                row.read_units,
                "per command",
                Some(row.read_units_vs_shortest.clone()),
            );
        }
    }
    if let Some(lambdas) = &report.lambdas {
        let hello = lambdas.hello.as_ref();
        let largest = lambdas.functions.iter().max_by_key(|f| f.size_bytes);
        if let Some(f) = largest {
            let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
            push(
                format!("largest Lambda binary: {}", f.name),
                mib(f.size_bytes),
                "MiB",
                hello.map(|h| {
                    VsBaseline::new(mib(f.size_bytes), "MiB hello-world", mib(h.size_bytes))
                }),
            );
        }
        let slowest = lambdas
            .functions
            .iter()
            .max_by(|a, b| a.ready.p50_ms.total_cmp(&b.ready.p50_ms));
        if let Some(f) = slowest {
            push(
                format!("slowest Lambda start to ready, p50: {}", f.name),
                f.ready.p50_ms,
                "ms",
                f.vs_ready.clone(),
            );
        }
        let hungriest = lambdas.functions.iter().max_by_key(|f| f.peak_rss_kib);
        if let Some(f) = hungriest {
            let mib = |kib: u64| kib as f64 / 1024.0;
            push(
                format!("highest Lambda peak memory: {}", f.name),
                mib(f.peak_rss_kib),
                "MiB",
                hello.map(|h| {
                    VsBaseline::new(mib(f.peak_rss_kib), "MiB hello-world", mib(h.peak_rss_kib))
                }),
            );
        }
    }
    rows
}

/// The calls whose cost the summary shows.
const SUMMARY_COSTS: [&str; 4] = [
    "GET /api/articles",
    "GET /api/articles/{slug}",
    "POST /api/articles",
    "POST /api/articles/{slug}/favorite",
];

/// The p99 of the raw operation named in an endpoint's baseline (`DynamoDB GetItem p50
/// (c=16)`), at concurrency `c`; zero if absent.
fn baseline_p99(report: &Report, baseline: &str, c: usize) -> f64 {
    ["GetItem", "PutItem", "Query", "BatchWriteItem"]
        .iter()
        .find(|op| baseline.contains(*op))
        .and_then(|op| report.baselines.nearest(op, c))
        .map_or(0.0, |raw| raw.latency.p99_ms)
}
