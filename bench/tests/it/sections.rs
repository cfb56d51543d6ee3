//! The baselines, replay and Lambda sections one by one, at the smoke scale, on the test
//! emulators: every figure is there and sensible (not how fast anything is).

use std::path::PathBuf;
use std::time::Instant;

use bench::{Config, Scale};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_baselines_measure_every_raw_operation_at_every_concurrency() {
    let scale = Scale::smoke();
    let started = Instant::now();
    let baselines = bench::baselines::measure(local_aws::testkit::emulators(), &scale)
        .await
        .expect("the baselines");
    eprintln!("baselines took {:.1} s", started.elapsed().as_secs_f64());

    assert_eq!(
        baselines.dynamodb.len(),
        4 * scale.baseline_concurrencies.len(),
        "{baselines:?}"
    );
    for (op, unit) in [
        ("GetItem", "requests"),
        ("PutItem", "requests"),
        ("Query", "requests"),
        ("BatchWriteItem", "items"),
    ] {
        for &c in &scale.baseline_concurrencies {
            let raw = baselines
                .find(op, c)
                .unwrap_or_else(|| panic!("no {op} at concurrency {c}"));
            assert_eq!(raw.latency.n, scale.baseline_samples, "{raw:?}");
            assert_eq!(raw.samples.len(), scale.baseline_samples, "{raw:?}");
            assert!(raw.per_second > 0.0, "{raw:?}");
            assert!(
                raw.latency.p50_ms > 0.0 && raw.latency.p50_ms <= raw.latency.max_ms,
                "{raw:?}"
            );
            assert_eq!(raw.unit, unit, "{raw:?}");
        }
    }
    // A batch carries 25 items: more items per second than requests per second.
    let batch = baselines.find("BatchWriteItem", 1).expect("BatchWriteItem");
    let batch_requests_per_second = batch.per_second / 25.0;
    assert!(
        (batch_requests_per_second * batch.latency.mean_ms / 1000.0 - 1.0).abs() < 0.5,
        "at concurrency 1, requests/s × mean latency is about 1: {batch:?}"
    );

    assert_eq!(baselines.sns_to_sqs.len(), 1, "{baselines:?}");
    let round_trip = &baselines.sns_to_sqs[0];
    assert_eq!(round_trip.op, "SNS→SQS");
    assert_eq!(round_trip.concurrency, 1);
    assert_eq!(round_trip.unit, "messages");
    assert_eq!(
        round_trip.latency.n,
        (scale.baseline_samples / 10).max(5),
        "{round_trip:?}"
    );
    assert!(
        round_trip.latency.p50_ms > 0.0 && round_trip.per_second > 0.0,
        "{round_trip:?}"
    );
    assert!(baselines.find("SNS→SQS", 1).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_replay_rebuilds_every_projection_from_the_whole_log() {
    let scale = Scale::smoke();
    let started = Instant::now();
    let replay = bench::replay_rate::measure(local_aws::testkit::emulators(), &scale)
        .await
        .expect("the replay section");
    eprintln!("replay took {:.1} s", started.elapsed().as_secs_f64());

    // The generator writes at least 11 users' worth of history (about 840 events).
    assert!(
        (scale.replay_events..3_000).contains(&replay.events),
        "{replay:?}"
    );
    assert!(
        replay.seconds > 0.0 && replay.per_second > 0.0,
        "{replay:?}"
    );
    let names: Vec<&str> = replay
        .projections
        .iter()
        .map(|p| p.projection.as_str())
        .collect();
    assert_eq!(names.len(), 4, "{replay:?}");
    for projection in &replay.projections {
        assert!(
            projection.applied > 0 && projection.applied <= replay.events as u64,
            "{projection:?}"
        );
        assert!(projection.per_second > 0.0, "{projection:?}");
    }
    // Together the projections apply a good part of the log (each event is some projection's).
    let applied: u64 = replay.projections.iter().map(|p| p.applied).sum();
    assert!(applied >= replay.events as u64 / 2, "{replay:?}");
    assert!(replay.raw_batch_write_per_second > 0.0, "{replay:?}");
    // Each rebuild beside raw BatchWriteItem writing as many items as its version holds.
    for projection in &replay.projections {
        assert!(projection.items > 0, "{projection:?}");
        let raw = projection.items as f64 / replay.raw_batch_write_per_second;
        assert!(
            (projection.raw_seconds - raw).abs() < 1e-9,
            "{projection:?}"
        );
        let ratio = projection.ratio.expect("a ratio");
        assert!(
            (ratio - raw / projection.seconds).abs() < 1e-9,
            "{projection:?}"
        );
        // Its requests were counted: the scan of the log and the bulk writes.
        for operation in ["Scan", "BatchWriteItem"] {
            assert!(
                projection.requests.get(operation).is_some_and(|n| *n > 0),
                "{operation}: {projection:?}"
            );
        }
        assert!(projection.write_units > 0.0, "{projection:?}");
        // The second yardstick: the version's own items, written raw into tables like its
        // own. All of them are DynamoDB's but search's documents.
        assert!(projection.own_raw_seconds > 0.0, "{projection:?}");
        if projection.projection == "search" {
            assert!(
                projection.own_items > 0 && projection.own_items < projection.items,
                "{projection:?}"
            );
            assert_eq!(projection.own_ratio, None, "{projection:?}");
        } else {
            assert_eq!(projection.own_items, projection.items, "{projection:?}");
            let own = projection.own_ratio.expect("a ratio to its own items");
            assert!(
                (own - projection.own_raw_seconds / projection.seconds).abs() < 1e-9,
                "{projection:?}"
            );
        }
    }
    // `all` is `replay rebuild all` (one read for the four), run after them: its versions
    // hold as many items as theirs together.
    let items: u64 = replay.projections.iter().map(|p| p.items).sum();
    assert_eq!(replay.items, items, "{replay:?}");
    // Its peak memory, measured over it alone.
    assert!(
        replay.rss_before_bytes > 0 && replay.peak_rss_bytes >= replay.rss_before_bytes,
        "{replay:?}"
    );
    assert!(replay.one_by_one_seconds > 0.0, "{replay:?}");
    let expected = (items as f64 / replay.seconds) / replay.raw_batch_write_per_second;
    let ratio = replay.vs.ratio.expect("a ratio");
    assert!(
        (ratio - expected).abs() < 1e-9 * expected.max(1.0),
        "{replay:?}"
    );
    assert_eq!(replay.vs.baseline, "DynamoDB Local BatchWriteItem items/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_lambda_binary_is_measured_beside_hello_world() {
    let lambda_dir = std::env::var_os("CONDUIT_LAMBDA_DIR")
        .map(PathBuf::from)
        .expect(
            "CONDUIT_LAMBDA_DIR must name the cargo lambda output, e.g. target/lambda \
             (./dev test sets it and builds the Lambda binaries)",
        );
    let scale = Scale::smoke();
    let config = Config {
        mode: "smoke".to_owned(),
        scale: scale.clone(),
        out: std::env::temp_dir(),
        lambda_dir: lambda_dir.clone(),
        lambda_bins: infra::template::FUNCTIONS
            .iter()
            .map(|f| f.bin.to_owned())
            .collect(),
        hello: lambda_dir.join("hello-lambda").join("bootstrap"),
    };
    let started = Instant::now();
    let section = bench::lambdas::measure(&config, local_aws::testkit::emulators())
        .await
        .expect("the Lambda section");
    eprintln!("lambdas took {:.1} s", started.elapsed().as_secs_f64());

    assert!(section.build.contains("cargo lambda"), "{}", section.build);
    let hello = section.hello.as_ref().expect("hello-world");
    assert_eq!(hello.name, "hello-lambda");
    let names: Vec<&str> = section.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, config.lambda_bins);
    for run in std::iter::once(hello).chain(&section.functions) {
        assert!(run.size_bytes > 0, "{run:?}");
        assert_eq!(run.ready.n, scale.lambda_starts, "{run:?}");
        assert!(run.ready.p50_ms > 0.0, "{run:?}");
        assert!(run.peak_rss_kib > 0, "{run:?}");
    }
    for run in &section.functions {
        for vs in [&run.vs_size, &run.vs_ready, &run.vs_memory] {
            let vs = vs.as_ref().unwrap_or_else(|| panic!("{run:?}"));
            assert!(vs.ratio.is_some_and(|r| r > 0.0), "{run:?}");
            assert!(vs.baseline.contains("hello-lambda"), "{run:?}");
        }
        assert_eq!(
            run.vs_size.as_ref().map(|vs| vs.baseline_value),
            Some(hello.size_bytes as f64)
        );
    }
}

#[tokio::test]
async fn a_missing_lambda_binary_is_named_with_how_to_build_it() {
    let dir = std::env::temp_dir().join(format!("conduit-no-lambdas-{}", uuid::Uuid::new_v4()));
    let config = Config {
        mode: "smoke".to_owned(),
        scale: Scale::smoke(),
        out: std::env::temp_dir(),
        lambda_dir: dir.clone(),
        lambda_bins: vec!["query-api".to_owned()],
        // Any file that exists: only the functions are missing.
        hello: std::env::current_exe().expect("the test binary"),
    };
    // No emulator is needed: the binaries are checked first.
    let endpoints = local_aws::LocalEndpoints {
        dynamodb: "http://127.0.0.1:9".to_owned(),
        moto: "http://127.0.0.1:9".to_owned(),
    };
    let error = bench::lambdas::measure(&config, &endpoints)
        .await
        .expect_err("no binaries");
    let message = format!("{error:#}");
    let missing = dir.join("query-api").join("bootstrap");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("./dev lambdas"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_of_some_sections_measures_those_and_says_which_it_left_out() {
    let out = std::env::temp_dir().join(format!("conduit-bench-only-{}", uuid::Uuid::new_v4()));
    let mut scale = Scale::smoke();
    scale.sections = vec![bench::Section::Replay];
    let config = Config {
        mode: "smoke".to_owned(),
        scale,
        out: out.clone(),
        lambda_dir: PathBuf::from("/nonexistent"),
        lambda_bins: Vec::new(),
        hello: PathBuf::from("/nonexistent"),
    };
    let report = bench::run(&config).await.expect("a replay-only run");

    let replay = report.replay.as_ref().expect("the replay section");
    assert!(replay.events > 0, "{replay:?}");
    assert!(report.baselines.dynamodb.is_empty() && report.baselines.sns_to_sqs.is_empty());
    assert!(report.api.is_none() && report.lag.is_none() && report.cost.is_none());
    assert!(report.lambdas.is_none() && report.feed.is_none() && report.streams.is_none());
    assert!(
        report
            .meta
            .notes
            .iter()
            .any(|n| n.contains("left out: baselines, api, lambdas, feed, streams")),
        "{:?}",
        report.meta.notes
    );
    let markdown = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(markdown.contains("left out: baselines, api, lambdas, feed, streams"));
    let _ = std::fs::remove_dir_all(&out);

    // The API section divides by the baselines: asking for it alone is refused.
    let mut scale = Scale::smoke();
    scale.sections = vec![bench::Section::Api];
    let refused = bench::run(&Config { scale, ..config })
        .await
        .expect_err("the API without its baselines");
    assert!(
        refused.to_string().contains("needs the baselines"),
        "{refused:#}"
    );
}
