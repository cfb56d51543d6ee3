//! The benchmark's smoke run: every section at a tiny scale, end to end, so that the benchmark
//! never rots. It checks that the report is complete and coherent, not how fast anything is.

use std::path::PathBuf;

use bench::{Config, Scale};
use serde_json::Value;

/// The RealWorld operations every API run must have measured, at each concurrency.
const REALWORLD: [&str; 19] = [
    "POST /api/users/login",
    "POST /api/users",
    "GET /api/user",
    "PUT /api/user",
    "GET /api/profiles/{username}",
    "POST /api/profiles/{username}/follow",
    "DELETE /api/profiles/{username}/follow",
    "GET /api/articles/feed",
    "GET /api/articles",
    "POST /api/articles",
    "GET /api/articles/{slug}",
    "PUT /api/articles/{slug}",
    "DELETE /api/articles/{slug}",
    "GET /api/articles/{slug}/comments",
    "POST /api/articles/{slug}/comments",
    "DELETE /api/articles/{slug}/comments/{id}",
    "POST /api/articles/{slug}/favorite",
    "DELETE /api/articles/{slug}/favorite",
    "GET /api/tags",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_smoke_run_measures_every_section_and_writes_the_report() {
    let lambda_dir = std::env::var_os("CONDUIT_LAMBDA_DIR")
        .map(PathBuf::from)
        .expect(
            "CONDUIT_LAMBDA_DIR must name the cargo lambda output (./dev test sets it and builds \
         the Lambda binaries)",
        );
    let out = std::env::temp_dir().join(format!("conduit-bench-smoke-{}", uuid::Uuid::new_v4()));
    let config = Config {
        mode: "smoke".to_owned(),
        scale: Scale::smoke(),
        out: out.clone(),
        lambda_dir: lambda_dir.clone(),
        lambda_bins: infra::template::FUNCTIONS
            .iter()
            .map(|f| f.bin.to_owned())
            .collect(),
        hello: lambda_dir.join("hello-lambda").join("bootstrap"),
    };
    let report = bench::run(&config).await.expect("the smoke run");

    // The files, as written.
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    let markdown = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for section in [
        "baselines",
        "api",
        "lag",
        "replay",
        "cost",
        "lambdas",
        "feed",
        "streams",
        "summary",
    ] {
        assert!(
            !json[section].is_null(),
            "report.json has no {section}: {json}"
        );
    }
    for chart in ["latency.svg", "throughput.svg", "lag.svg", "replay.svg"] {
        let svg = std::fs::read_to_string(out.join(chart)).expect(chart);
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{chart}");
        assert!(
            markdown.contains(&format!("]({chart})")),
            "report.md links {chart}"
        );
    }

    // 1. Every raw operation, at every concurrency.
    let scale = Scale::smoke();
    for op in ["GetItem", "PutItem", "Query", "BatchWriteItem"] {
        for c in &scale.baseline_concurrencies {
            let raw = report
                .baselines
                .find(op, *c)
                .unwrap_or_else(|| panic!("no baseline {op} at concurrency {c}"));
            assert!(raw.latency.n > 0 && raw.per_second > 0.0, "{raw:?}");
        }
    }
    let round_trip = report.baselines.find("SNS→SQS", 1).expect("SNS→SQS");
    assert!(round_trip.latency.p50_ms > 0.0);

    // 2. Every RealWorld endpoint at every concurrency, without an error.
    let api = report.api.as_ref().expect("api");
    for endpoint in REALWORLD {
        for c in &scale.endpoint_concurrencies {
            let run = api
                .endpoints
                .iter()
                .find(|run| run.endpoint == endpoint && run.concurrency == *c)
                .unwrap_or_else(|| panic!("{endpoint} was not measured at concurrency {c}"));
            assert_eq!(run.errors, 0, "{endpoint} c={c} answered errors");
            assert_eq!(run.latency.n, scale.endpoint_samples, "{endpoint} c={c}");
            assert!(run.vs.ratio.is_some(), "{endpoint} has no baseline");
        }
    }
    assert_eq!(api.mixed.len(), scale.mixed_concurrencies.len());
    for mixed in &api.mixed {
        assert!(mixed.requests > 0 && mixed.errors == 0, "{mixed:?}");
    }

    // 3. Every read model at every rate, every write seen.
    let lag = report.lag.as_ref().expect("lag");
    for model in ["users", "articles", "search", "feed"] {
        for rate in &scale.lag_rates {
            let run = lag
                .runs
                .iter()
                .find(|run| run.read_model == model && run.target_per_second == *rate)
                .unwrap_or_else(|| panic!("no lag of {model} at {rate} writes/s"));
            assert!(run.writes > 0, "{run:?}");
            assert_eq!(run.visible, run.writes, "{model} at {rate}/s lost writes");
            assert!(run.vs.ratio.is_some());
        }
    }

    // 4. The whole log replayed into every projection.
    let replay = report.replay.as_ref().expect("replay");
    assert!(replay.events >= scale.replay_events, "{replay:?}");
    assert_eq!(replay.projections.len(), 4, "{replay:?}");
    assert!(replay.projections.iter().all(|p| p.applied > 0));
    assert!(replay.vs.ratio.is_some());

    // 5. Writes cost write units and a publish; every call costs something.
    let cost = report.cost.as_ref().expect("cost");
    let publish = cost
        .calls
        .iter()
        .find(|row| row.endpoint == "POST /api/articles")
        .expect("the cost of a publish");
    assert!(
        publish.write_units > 0.0 && publish.sns_publishes > 0.0,
        "{publish:?}"
    );
    assert!(
        publish.lambda_invocations > 1.0,
        "a publish runs the pipeline: {publish:?}"
    );
    assert!(cost.calls.iter().all(|row| row.dollars_per_million > 0.0));
    // The publish waited for the articles and search read models (not the feeds), and read
    // their checkpoints to know; a login appended nothing and waited for nothing.
    let wait = publish.wait.as_ref().expect("the publish's wait");
    assert_eq!(wait.checkpoints, 2.0, "{wait:?}");
    assert!(wait.read_units >= 2.0 && wait.gb_seconds > 0.0, "{wait:?}");
    assert!(wait.aws_read_units > wait.checkpoints, "{wait:?}");
    let login = cost
        .calls
        .iter()
        .find(|row| row.endpoint == "POST /api/users/login")
        .expect("the cost of a login");
    assert!(login.wait.is_none(), "{login:?}");
    // The API's own requests, by operation: a publish commits in one transaction.
    assert!(
        publish.api_requests.get("TransactWriteItems") >= Some(&1.0),
        "{publish:?}"
    );

    // 6. Every function of the template beside hello-world.
    let lambdas = report.lambdas.as_ref().expect("lambdas");
    assert!(lambdas.hello.is_some());
    assert_eq!(lambdas.functions.len(), infra::template::FUNCTIONS.len());
    for f in &lambdas.functions {
        assert!(f.size_bytes > 0 && f.peak_rss_kib > 0, "{f:?}");
        assert_eq!(f.ready.n, scale.lambda_starts, "{f:?}");
        assert!(f.vs_size.is_some() && f.vs_ready.is_some() && f.vs_memory.is_some());
    }

    // 7. Every follower's feed got the publish and lost it with the delete (checked inside),
    // one write unit or more per entry, beside raw BatchWriteItem.
    let feed = report.feed.as_ref().expect("feed");
    assert_eq!(feed.followers, scale.feed_followers);
    assert_eq!(feed.fanouts.len(), 2, "{feed:?}");
    for fanout in &feed.fanouts {
        assert_eq!(fanout.entries, scale.feed_followers, "{fanout:?}");
        assert!(
            fanout.write_units >= scale.feed_followers as f64,
            "{fanout:?}"
        );
        assert!(fanout.vs.ratio.is_some(), "{fanout:?}");
    }

    // 8. Every command on every stream length, each answered; snapshots keep what the longest
    // streams' commands read near what the shortest ones' read.
    let streams = report.streams.as_ref().expect("streams");
    let mut kinds: Vec<(&str, &str)> = streams
        .rows
        .iter()
        .map(|row| (row.command.as_str(), row.stream.as_str()))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let commands: Vec<&str> = kinds.iter().map(|(command, _)| *command).collect();
    assert_eq!(
        commands,
        [
            "POST /api/articles/{slug}/comments",
            "POST /api/articles/{slug}/comments",
            "PUT /api/user"
        ],
        "{kinds:?}"
    );
    let shortest = scale.stream_lengths.iter().min().expect("lengths");
    let longest = scale.stream_lengths.iter().max().expect("lengths");
    for (command, stream) in kinds {
        let at = |length: usize| {
            streams
                .rows
                .iter()
                .find(|row| row.command == command && row.stream == stream && row.length == length)
                .unwrap_or_else(|| panic!("{command} on {stream} was not measured at {length}"))
        };
        for &length in &scale.stream_lengths {
            let row = at(length);
            assert_eq!(row.errors, 0, "{row:?}");
            assert_eq!(row.latency.n, scale.stream_samples, "{row:?}");
            assert!(
                row.load_read_units > 0.0 && row.read_units >= row.load_read_units,
                "{row:?}"
            );
            assert!(row.p50_vs_shortest.ratio.is_some(), "{row:?}");
            assert!(row.read_units_vs_shortest.ratio.is_some(), "{row:?}");
        }
        let (short, long) = (at(*shortest), at(*longest));
        assert!(long.snapshot_sequence.is_some(), "{long:?}");
        assert!(
            long.read_units <= 3.0 * short.read_units
                && long.load_read_units <= 3.0 * short.load_read_units,
            "{command} on {stream}: {longest} events cost more than 3× {shortest}: {long:?} \
             against {short:?}"
        );
    }

    // The summary sets its figures beside their baselines.
    assert!(report.summary.len() >= 10, "{:?}", report.summary);
    assert!(markdown.contains("## Summary"));
    assert!(
        markdown.contains("Of which the write's wait for its read models"),
        "report.md shows the write wait's cost"
    );
    assert!(
        markdown.contains("## 7. Feed fan-out to"),
        "report.md has the feed section"
    );
    assert!(
        markdown.contains("## 8. Command latency against stream length"),
        "report.md has the stream-length section"
    );
    assert!(
        markdown.contains("The API's own DynamoDB requests per call, by operation"),
        "report.md shows each call's DynamoDB operations"
    );

    // `--render` redraws the same report and charts from report.json alone.
    for file in [
        "report.md",
        "latency.svg",
        "throughput.svg",
        "lag.svg",
        "replay.svg",
    ] {
        std::fs::remove_file(out.join(file)).expect(file);
    }
    bench::render(&out).expect("redrawing from report.json");
    assert_eq!(
        std::fs::read_to_string(out.join("report.md")).expect("the redrawn report.md"),
        markdown
    );
    for chart in ["latency.svg", "throughput.svg", "lag.svg", "replay.svg"] {
        assert!(out.join(chart).is_file(), "{chart} redrawn");
    }
    let _ = std::fs::remove_dir_all(&out);
}
