//! `bench`: the whole benchmark in one run; see the crate docs and the README's "Performance".
//!
//! `./dev bench` builds the Lambda binaries and the hello-world baseline with cargo lambda,
//! then runs this at full scale into `bench/results/latest/`.

use std::path::PathBuf;

use clap::Parser;

/// Measures the machine's limits, the API, projection lag, replay, cost per call, the Lambda
/// binaries, the feed's fan-out and commands against long streams, and writes report.md, report.json and SVG charts into one folder.
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Args {
    /// Every section, tiny (seconds): checks that the benchmark works, measures nothing worth
    /// reading.
    #[arg(long)]
    smoke: bool,
    /// Folder for the report and charts [default: bench/results/latest, or
    /// target/bench-smoke with --smoke].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where `cargo lambda build` put `<bin>/bootstrap` [default: $CONDUIT_LAMBDA_DIR, else
    /// target/lambda].
    #[arg(long)]
    lambda_dir: Option<PathBuf>,
    /// The hello-world Lambda binary [default: <lambda-dir>/hello-lambda/bootstrap].
    #[arg(long)]
    hello: Option<PathBuf>,
    /// Users in the store (overrides the scale).
    #[arg(long)]
    users: Option<usize>,
    /// Articles in the store (overrides the scale).
    #[arg(long)]
    articles: Option<usize>,
    /// Events in the replayed log (overrides the scale).
    #[arg(long)]
    replay_events: Option<usize>,
    /// Workers the replay section's rebuilds run (`replay rebuild --workers`) [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: Option<u32>,
    /// In the replay section, skip the round of rebuilds whose requests are counted (no
    /// request counts in the report; the timed rounds are the same).
    #[arg(long)]
    no_meter: bool,
    /// In the replay section, also kill a `rebuild all` half way through its full pass and
    /// resume it with `--verify`.
    #[arg(long)]
    kill_resume: bool,
    /// Commands sent to each stream of the stream-length section (overrides the scale).
    #[arg(long)]
    stream_samples: Option<usize>,
    /// Measure only these sections (comma-separated); `api` (API, lag and cost on one loaded
    /// stack) needs `baselines` [default: all].
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<bench::Section>,
    /// Measure nothing: redraw report.md and the charts of the folder given from its
    /// report.json (after a change to how the report looks).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["smoke", "out", "users", "articles", "replay_events", "workers", "stream_samples", "only"])]
    render: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(dir) = &args.render {
        bench::render(dir)?;
        eprintln!("bench: redrew {}", dir.join("report.md").display());
        return Ok(());
    }
    let mut scale = if args.smoke {
        bench::Scale::smoke()
    } else {
        bench::Scale::full()
    };
    if let Some(users) = args.users {
        scale.users = users;
    }
    if let Some(articles) = args.articles {
        scale.articles = articles;
    }
    if let Some(events) = args.replay_events {
        scale.replay_events = events;
    }
    scale.replay_kill_resume = args.kill_resume;
    scale.replay_metered = !args.no_meter;
    if let Some(workers) = args.workers {
        scale.replay_workers = workers as usize;
    }
    if let Some(samples) = args.stream_samples {
        scale.stream_samples = samples;
    }
    if !args.only.is_empty() {
        scale.sections = args.only.clone();
    }
    anyhow::ensure!(
        scale.users >= 2 && scale.articles >= 1 && scale.replay_events >= 100,
        "need at least 2 users, 1 article and 100 replayed events"
    );
    let lambda_dir = args
        .lambda_dir
        .or_else(|| std::env::var_os("CONDUIT_LAMBDA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/lambda"));
    // The functions are started from another working directory.
    let lambda_dir = std::path::absolute(&lambda_dir)?;
    let hello = std::path::absolute(
        args.hello
            .unwrap_or_else(|| lambda_dir.join("hello-lambda").join("bootstrap")),
    )?;
    let config = bench::Config {
        mode: if args.smoke { "smoke" } else { "full" }.to_owned(),
        scale,
        out: args.out.unwrap_or_else(|| {
            PathBuf::from(if args.smoke {
                "target/bench-smoke"
            } else {
                "bench/results/latest"
            })
        }),
        hello,
        // The functions of the deployment template.
        lambda_bins: infra::template::FUNCTIONS
            .iter()
            .map(|f| f.bin.to_owned())
            .collect(),
        lambda_dir,
    };
    let report = bench::run(&config).await?;
    eprintln!(
        "bench: done in {:.0} s; report in {}",
        report.meta.seconds,
        config.out.join("report.md").display()
    );
    println!("{}", bench::markdown::summary_table(&report.summary));
    Ok(())
}
