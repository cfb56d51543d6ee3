//! `visibility-bench`: how long after a write's HTTP response the query API shows it.
//!
//! Starts its own in-memory emulators and local stack (or uses `--api URL` of a running one),
//! registers a user, then N times changes the bio with `PUT /api/user` and polls `GET /api/user`
//! until the new bio shows. Prints p50/p90/p99/max of that delay and of the write itself.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use local_stack::bench::{own_stack, percentile};

struct Args {
    writes: usize,
    api: Option<String>,
    stream_poll_ms: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut parsed = Args {
        writes: 200,
        api: None,
        stream_poll_ms: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--writes" => parsed.writes = it.next().context("--writes needs a number")?.parse()?,
            "--api" => parsed.api = Some(it.next().context("--api needs a URL")?),
            "--stream-poll-ms" => {
                parsed.stream_poll_ms = it
                    .next()
                    .context("--stream-poll-ms needs a number")?
                    .parse()?
            }
            "-h" | "--help" => {
                println!(
                    "visibility-bench [--writes N (200)] [--stream-poll-ms N (20), own stack only] [--api http://127.0.0.1:3000/api]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if parsed.writes == 0 {
        bail!("--writes must be at least 1");
    }
    Ok(parsed)
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<28} n={:<5} p50={:>7.1} ms  p90={:>7.1} ms  p99={:>7.1} ms  max={:>7.1} ms",
        samples.len(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.90)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    );
}

async fn run(api: String, writes: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let name = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let registered: serde_json::Value = http
        .post(format!("{api}/users"))
        .json(&serde_json::json!({"user": {"username": name, "email": format!("{name}@bench.io"), "password": "benchmark-password"}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = registered["user"]["token"]
        .as_str()
        .context("no token")?
        .to_owned();
    let auth = format!("Token {token}");

    let mut write_times = Vec::with_capacity(writes);
    let mut visible_after = Vec::with_capacity(writes);
    let bound = Duration::from_secs(30);
    for i in 0..writes {
        let bio = format!("bio number {i}");
        let started = Instant::now();
        http.put(format!("{api}/user"))
            .header("Authorization", &auth)
            .json(&serde_json::json!({"user": {"bio": bio}}))
            .send()
            .await?
            .error_for_status()?;
        let written = Instant::now();
        write_times.push(written - started);
        loop {
            let response = http
                .get(format!("{api}/user"))
                .header("Authorization", &auth)
                .send()
                .await?;
            if response.status().is_success() {
                let body: serde_json::Value = response.json().await?;
                if body["user"]["bio"] == bio.as_str() {
                    break;
                }
            }
            if written.elapsed() > bound {
                bail!("write {i} was not visible after {bound:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        visible_after.push(written.elapsed());
        if (i + 1) % 50 == 0 {
            eprintln!("visibility-bench: {}/{writes} writes", i + 1);
        }
    }
    println!("visibility-bench: {writes} writes through {api}");
    summary("PUT /api/user response", write_times);
    summary("response -> visible in GET", visible_after);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let args = args()?;
    if let Some(api) = args.api {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return runtime.block_on(run(api, args.writes));
    }
    // Emulators start from a thread that lives as long as the process (see infra::testkit).
    eprintln!("visibility-bench: starting in-memory emulators and a local stack");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let stack = own_stack(Duration::from_millis(args.stream_poll_ms), None).await?;
        let result = run(stack.api_url(), args.writes).await;
        stack.stop().await;
        result
    })
}
