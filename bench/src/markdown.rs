//! The report as Markdown: the summary, then one table per section, with the charts.

use std::fmt::Write as _;

use crate::charts::Chart;
use crate::report::{FeedSection, Report, StreamsSection, SummaryRow};
use crate::stats::{Latency, VsBaseline};

/// The whole report; `charts` are linked by file name (they sit in the same folder).
pub fn render(report: &Report, charts: &[Chart]) -> String {
    let mut md = String::new();
    let meta = &report.meta;
    let _ = writeln!(md, "# Conduit-ES benchmark ({})\n", meta.mode);
    let _ = writeln!(
        md,
        "Run {} at commit `{}`, {:.0} s, on {} CPUs and {:.1} GiB, against DynamoDB Local and \
         moto on the same machine. Every figure stands beside its baseline measured in the same \
         run; the ratio is figure ÷ baseline. Absolute times on a shared 2-core machine say \
         little alone.\n",
        meta.started_at,
        meta.git_commit.as_deref().unwrap_or("unknown"),
        meta.seconds,
        meta.cpus,
        meta.memory_gib
    );
    for note in &meta.notes {
        let _ = writeln!(md, "> {note}\n");
    }
    md.push_str("## Summary\n\n");
    md.push_str(&summary_table(&report.summary));
    md.push('\n');
    for chart in charts {
        let _ = writeln!(md, "![{}]({})\n", chart.title, chart.file);
    }

    md.push_str("## 1. Baselines: raw calls, same SDK clients\n\n");
    md.push_str("| operation | concurrency | n | p50 ms | p95 ms | p99 ms | per second |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    for raw in report
        .baselines
        .dynamodb
        .iter()
        .chain(&report.baselines.sns_to_sqs)
    {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.0} {} |",
            raw.op,
            raw.concurrency,
            raw.latency.n,
            latency_cells(&raw.latency),
            raw.per_second,
            raw.unit
        );
    }
    md.push('\n');

    if let Some(api) = &report.api {
        let _ = writeln!(
            md,
            "## 2. API: {} users, {} articles in the store (loaded in {:.0} s)\n",
            api.users, api.articles, api.load_seconds
        );
        md.push_str(
            "| endpoint | concurrency | n | p50 ms | p95 ms | p99 ms | req/s | errors | p50 vs baseline |\n",
        );
        md.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for run in &api.endpoints {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} | {:.1} | {} | {} |",
                run.endpoint,
                run.concurrency,
                run.latency.n,
                latency_cells(&run.latency),
                run.per_second,
                run.errors,
                vs_cell(&run.vs)
            );
        }
        md.push_str(
            "\nMixed workload (mostly reads, some favorites and comments, a few publishes):\n\n",
        );
        md.push_str("| concurrency | seconds | requests | errors | req/s | p50 ms | p95 ms | p99 ms | vs baseline |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for run in &api.mixed {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                run.concurrency,
                run.seconds,
                run.requests,
                run.errors,
                run.per_second,
                run.latency.p50_ms,
                run.latency.p95_ms,
                run.latency.p99_ms,
                vs_cell(&run.vs)
            );
        }
        md.push('\n');
    }

    if let Some(lag) = &report.lag {
        md.push_str("## 3. Projection lag: write response → visible in the read model\n\n");
        md.push_str("| read model | target writes/s | achieved | writes | visible | p50 ms | p95 ms | p99 ms | p50 vs baseline |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for run in &lag.runs {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
                run.read_model,
                run.target_per_second,
                run.achieved_per_second,
                run.writes,
                run.visible,
                run.latency.p50_ms,
                run.latency.p95_ms,
                run.latency.p99_ms,
                vs_cell(&run.vs)
            );
        }
        md.push('\n');
    }

    if let Some(replay) = &report.replay {
        let _ = writeln!(
            md,
            "## 4. Replay: {} events, every projection rebuilt ({} worker{})\n",
            replay.events,
            replay.workers.max(1),
            if replay.workers > 1 { "s" } else { "" }
        );
        md.push_str(
            "Each projection rebuilt into a new version (full pass, catch-up passes, freeze, last \
             pass, switch), beside the time raw `BatchWriteItem` takes to write as many items as \
             the version holds, in the same run (ratio: raw time / rebuild time).\n\n\
             The last two columns are a second yardstick: raw `BatchWriteItem` of the version's \
             own items into fresh tables of the same definitions, secondary indexes included \
             (search: its checkpoints only, so no ratio).\n\n\
             | projection | events | items | wall s | full pass s | raw `BatchWriteItem` s | ratio | catch-up passes (s, records read) | last pass (s, records read) | own items raw s | ratio to own items |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}×"));
        for p in &replay.projections {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} ({:.2} s, {}) | {:.2} s, {} | {:.1} | {} |",
                p.projection,
                p.applied,
                p.items,
                p.seconds,
                p.full_seconds,
                p.raw_seconds,
                ratio(p.ratio),
                p.catch_up_passes,
                p.catch_up_seconds,
                p.catch_up_read,
                p.last_seconds,
                p.last_read,
                p.own_raw_seconds,
                ratio(p.own_ratio)
            );
        }
        let _ = writeln!(
            md,
            "| **all** | {} | {} | {:.1} | | {:.1} | **{}** | | | | |\n\n**all** is `replay rebuild \
             all`, run after the four above: one read of the log for the four full passes ({:.1} s \
             for the four one after the other). Raw `BatchWriteItem` in the same run: {:.0} \
             items/s. Peak resident memory of the process during `rebuild all`: {:.0} MiB \
             ({:.0} MiB resident before it began).\n",
            replay.events,
            replay.items,
            replay.seconds,
            replay.raw_seconds,
            replay.vs.ratio_text(),
            replay.one_by_one_seconds,
            replay.raw_batch_write_per_second,
            replay.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            replay.rss_before_bytes as f64 / (1024.0 * 1024.0),
        );
        if let Some(k) = &replay.kill_resume {
            let _ = writeln!(
                md,
                "`rebuild all` killed after {:.1} s and resumed with `--verify`: {:.1} s more, {} of \
                 {} units done again, {}.\n",
                k.killed_after_seconds,
                k.resumed_seconds,
                k.redone,
                k.units,
                if k.equal {
                    "every version equal to the one it replaced"
                } else {
                    "**differences**"
                }
            );
        }
        md.push_str(
            "DynamoDB requests of each rebuild (the scan, the bulk writes, the catch-up and the \
             switch), with the capacity DynamoDB reported, counted in a round of rebuilds before \
             the timed ones (counting slows the requests):\n\n\
             | projection | requests | read units | write units |\n|---|---|---|---|\n",
        );
        for p in &replay.projections {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.0} |",
                p.projection,
                by_operation(
                    &p.requests
                        .iter()
                        .map(|(op, n)| (op.clone(), *n as f64))
                        .collect()
                ),
                p.read_units,
                p.write_units
            );
        }
        md.push('\n');
    }

    if let Some(cost) = &report.cost {
        md.push_str("## 5. Cost per call, whole pipeline\n\n");
        let p = &cost.prices;
        let _ = writeln!(
            md,
            "Prices ({}): DynamoDB ${}/M read units, ${}/M write units; SNS ${}/M publishes; \
             SQS ${}/M requests; Lambda ${}/M invocations and ${}/GB-s.\n",
            p.source,
            p.dynamodb_per_million_read_units,
            p.dynamodb_per_million_write_units,
            p.sns_per_million_publishes,
            p.sqs_per_million_requests,
            p.lambda_per_million_invocations,
            p.lambda_per_gb_second
        );
        md.push_str("| call | calls | read units | write units | SNS publishes | SQS requests | Lambda invocations | Lambda GB-s | $/million calls | vs baseline |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for row in &cost.calls {
            let _ = writeln!(
                md,
                "| `{}` | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.4} | {:.2} | {} |",
                row.endpoint,
                row.calls,
                row.read_units,
                row.write_units,
                row.sns_publishes,
                row.sqs_requests,
                row.lambda_invocations,
                row.lambda_gb_seconds,
                row.dollars_per_million,
                vs_cell(&row.vs)
            );
        }
        md.push('\n');
        md.push_str(
            "The API's own DynamoDB requests per call, by operation (the projectors' requests \
             that follow a write are in the units above, not here):\n\n",
        );
        md.push_str("| call | requests | operations |\n|---|---|---|\n");
        for row in &cost.calls {
            let total: f64 = row.api_requests.values().sum();
            let operations = by_operation(&row.api_requests);
            let _ = writeln!(
                md,
                "| `{}` | {} | {} |",
                row.endpoint,
                count(total),
                if operations.is_empty() {
                    "-"
                } else {
                    &operations
                }
            );
        }
        md.push('\n');
        let waits: Vec<_> = cost
            .calls
            .iter()
            .filter_map(|row| row.wait.as_ref().map(|wait| (&row.endpoint, wait)))
            .collect();
        if let Some((_, first)) = waits.first() {
            let _ = writeln!(
                md,
                "Of which the write's wait for its read models (its `Server-Timing`, and the \
                 API's strongly consistent reads of the checkpoints), here and on AWS if the \
                 read models apply a write {:.0} ms after it commits:\n",
                first.aws_lag_ms
            );
            md.push_str("| call | checkpoints | wait ms | read units | GB-s | $/million calls | AWS read units | AWS GB-s | AWS $/million calls |\n");
            md.push_str("|---|---|---|---|---|---|---|---|---|\n");
            for (endpoint, wait) in waits {
                let _ = writeln!(
                    md,
                    "| `{endpoint}` | {:.1} | {:.1} | {:.2} | {:.4} | {:.2} | {:.1} | {:.4} | {:.2} |",
                    wait.checkpoints,
                    wait.mean_ms,
                    wait.read_units,
                    wait.gb_seconds,
                    wait.dollars_per_million,
                    wait.aws_read_units,
                    wait.aws_gb_seconds,
                    wait.aws_dollars_per_million
                );
            }
            md.push('\n');
        }
    }

    if let Some(lambdas) = &report.lambdas {
        let _ = writeln!(md, "## 6. Lambda binaries ({})\n", lambdas.build);
        md.push_str("| binary | size MiB | vs hello | start → ready p50 ms | p95 ms | vs hello | peak memory MiB | vs hello |\n");
        md.push_str("|---|---|---|---|---|---|---|---|\n");
        for f in lambdas.hello.iter().chain(&lambdas.functions) {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {} | {:.1} | {:.1} | {} | {:.1} | {} |",
                f.name,
                f.size_bytes as f64 / 1_048_576.0,
                f.vs_size
                    .as_ref()
                    .map_or("-".into(), VsBaseline::ratio_text),
                f.ready.p50_ms,
                f.ready.p95_ms,
                f.vs_ready
                    .as_ref()
                    .map_or("-".into(), VsBaseline::ratio_text),
                f.peak_rss_kib as f64 / 1024.0,
                f.vs_memory
                    .as_ref()
                    .map_or("-".into(), VsBaseline::ratio_text),
            );
        }
        md.push('\n');
    }
    if let Some(feed) = &report.feed {
        md.push_str(&feed_section(feed));
    }
    if let Some(streams) = &report.streams {
        md.push_str(&streams_section(streams));
    }
    md
}

/// Section 8, commands against the length of their aggregate's stream.
fn streams_section(streams: &StreamsSection) -> String {
    let mut md = String::from("## 8. Command latency against stream length\n\n");
    let _ = writeln!(
        md,
        "{} commands one after another on each stream, through the API. The streams were \
         lengthened straight in the event store ({} events in {:.1} s, commits of up to {} \
         events with the snapshot a command would write: one once {} events followed the \
         last), then projected ({:.1} s). Each command appends an event: a stream holds its \
         length plus the commands before. Read units are the API's (every table), and of \
         them the loads' (`events` and `snapshots`: a comment also loads its article and its \
         author); the ratios are to the same stream at the shortest length.\n",
        streams.samples,
        streams.seeded_events,
        streams.seed_seconds,
        streams.commit_events,
        streams.snapshot_every,
        streams.settle_seconds
    );
    md.push_str("| command | stream | events before | n | errors | p50 ms | p99 ms | wait p50 ms | p50 less wait ms | p50 vs shortest | read units | of which loads | read units vs shortest | requests | snapshot at | snapshot bytes |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in &streams.rows {
        let requests = by_operation(&row.api_requests);
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.2} | {:.2} | {} | {} | {} | {} |",
            row.command,
            row.stream,
            row.length,
            row.latency.n,
            row.errors,
            row.latency.p50_ms,
            row.latency.p99_ms,
            row.wait_p50_ms,
            row.own_p50_ms,
            row.p50_vs_shortest.ratio_text(),
            row.read_units,
            row.load_read_units,
            row.read_units_vs_shortest.ratio_text(),
            if requests.is_empty() { "-" } else { &requests },
            row.snapshot_sequence
                .map_or("-".to_owned(), |sequence| sequence.to_string()),
            row.snapshot_bytes.map_or("-".to_owned(), |bytes| bytes.to_string()),
        );
    }
    md.push('\n');
    for row in streams.rows.iter().filter(|row| row.first_error.is_some()) {
        let _ = writeln!(
            md,
            "> {} on {} events, first error: {}\n",
            row.command,
            row.length,
            row.first_error.as_deref().unwrap_or_default()
        );
    }
    md
}

/// Section 7, the feed's fan-out (also what `feed-bench --part fanout` prints).
pub fn feed_section(feed: &FeedSection) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## 7. Feed fan-out to {} followers (projector level)\n",
        feed.followers
    );
    let _ = writeln!(
        md,
        "Limits: {} followers per `Query` page, {} `BatchWriteItem` in flight, author lease {} s. \
         The follows: appended in {:.1} s, projected in {:.1} s ({:.0}/s, {} at once; {}), \
         {} requests ({}), {:.1} read units, {:.1} write units.\n",
        feed.page_size,
        feed.concurrent_batches,
        feed.lease_seconds,
        feed.append_seconds,
        feed.follow_seconds,
        feed.follow_per_second,
        feed.follow_concurrency,
        feed.follow_redeliveries,
        feed.follow_requests,
        feed.follow_operations,
        feed.follow_read_units,
        feed.follow_write_units
    );
    md.push_str("| event | limits | feed entries | wall s | entries/s | pauses | requests | operations | read units | write units | WCU/entry | vs baseline |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in &feed.fanouts {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {:.1} | {:.1} | {:.2} | {} |",
            row.event,
            row.limits,
            row.entries,
            row.seconds,
            row.per_second,
            row.pauses,
            row.requests,
            row.operations,
            row.read_units,
            row.write_units,
            row.write_units / row.entries.max(1) as f64,
            vs_cell(&row.vs)
        );
    }
    md.push_str(
        "\nEvery follower's feed was checked after each publish (exactly the one entry) and \
         after each delete (empty, no lease left).\n\n",
    );
    md
}

/// The summary as a Markdown table.
pub fn summary_table(rows: &[SummaryRow]) -> String {
    let mut md = String::from("| what | figure | baseline | ratio |\n|---|---|---|---|\n");
    for row in rows {
        let (baseline, ratio) = match &row.vs {
            Some(vs) => (
                format!("{} {}", number(vs.baseline_value), vs.baseline),
                vs.ratio_text(),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            md,
            "| {} | {} {} | {} | {} |",
            row.what,
            number(row.value),
            row.unit,
            baseline,
            ratio
        );
    }
    md
}

/// `n | p50 | p95 | p99` cells without `n`: `p50 | p95 | p99`.
fn latency_cells(latency: &Latency) -> String {
    format!(
        "{:.1} | {:.1} | {:.1}",
        latency.p50_ms, latency.p95_ms, latency.p99_ms
    )
}

fn vs_cell(vs: &VsBaseline) -> String {
    format!(
        "{} ({} {})",
        vs.ratio_text(),
        number(vs.baseline_value),
        vs.baseline
    )
}

/// Three significant digits or so, without noise: 5569, 12.3, 0.031.
fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.1}")
    } else if magnitude >= 0.01 {
        format!("{value:.3}")
    } else if magnitude == 0.0 {
        "0".to_owned()
    } else {
        format!("{value:.5}")
    }
}

/// Requests per call by DynamoDB operation, as `Query ×2, BatchGetItem ×1`.
fn by_operation(requests: &std::collections::BTreeMap<String, f64>) -> String {
    requests
        .iter()
        .map(|(operation, n)| format!("{operation} ×{}", count(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A per-call count: whole numbers as they are, others with one decimal (`2`, `2.5`).
fn count(n: f64) -> String {
    if (n - n.round()).abs() < 0.05 {
        format!("{:.0}", n.round())
    } else {
        format!("{n:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_sets_each_figure_beside_its_baseline() {
        let rows = vec![
            SummaryRow {
                what: "replay".into(),
                value: 172.4,
                unit: "events/s".into(),
                vs: Some(VsBaseline::new(172.4, "BatchWriteItem items/s", 5569.0)),
            },
            SummaryRow {
                what: "bare".into(),
                value: 0.5,
                unit: "ms".into(),
                vs: None,
            },
        ];
        let table = summary_table(&rows);
        assert!(table.contains("| replay | 172 events/s | 5569 BatchWriteItem items/s | 0.031× |"));
        assert!(table.contains("| bare | 0.500 ms | - | - |"));
    }
}
