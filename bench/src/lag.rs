//! 3. Projection lag: from a write's response to its visibility, per read model, per rate.
//!
//! Writes are sent open loop at the rate asked for (one every `1 / rate` seconds, whether the
//! ones before answered or not). After each write's answer, plain reads (no read-your-writes
//! header) poll the read model until they show the write:
//! * `users`: `PUT /api/user` with a new bio, seen in `GET /api/profiles/{username}`;
//! * `articles`, `search`, `feed`: one `POST /api/articles` with a tag of its own, seen in
//!   `GET /api/articles/{slug}`, in `GET /api/articles?tag=<its tag>` and in the first page of
//!   `GET /api/articles/feed` of a follower of its author.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::Api;
use anyhow::{ensure, Context};
use reqwest::Method;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::report::{Baselines, LagRun, LagSection};
use crate::stack::{send, settle, Answer, Call, Loaded, Stack};
use crate::stats::{Latency, VsBaseline};
use crate::Scale;

/// How long a write may take to show before it counts as not visible.
const DEADLINE: Duration = Duration::from_secs(60);
/// The pause between two reads of one write is a fifth of the write's age, between these two:
/// a lag is measured within about 20 % whatever its size, and a backlog of unseen writes does
/// not flood the API (and the emulator the pipeline needs) with reads. With a fixed pause of
/// 100 ms, 1,000 writes 30 s behind sent 10,000 reads a second and slowed the pipeline they
/// were measuring.
const MIN_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_secs(2);
const PAUSE_PER_AGE: u32 = 5;
/// Most visibility reads in flight at once, all writes together.
const POLLS_IN_FLIGHT: usize = 16;

/// The lag of every read model at each of `scale.lag_rates`, with notes on how it went.
pub(crate) async fn measure(
    stack: &Stack,
    loaded: &Loaded,
    scale: &Scale,
    baselines: &Baselines,
) -> anyhow::Result<(LagSection, Vec<String>)> {
    let mut runs = Vec::new();
    let mut notes = vec![format!(
        "Lag: writes sent open loop at the rate for {} s; after each answer, plain GETs (no \
         read-your-writes header) until the read model shows the write (deadline {} s), the \
         pause between two a fifth of the time since the answer (at least {} ms, at most {} \
         s: within about 20 %), at most {POLLS_IN_FLIGHT} in flight; the lag is from the \
         write's answer to the answer that shows it. `articles`, `search` \
         and `feed` share the same publishes. The local fan-out waits while a projector queue \
         holds more than {} messages (moto slows down with its backlog; AWS does not need \
         this), so at high rates the backlog stays in the stream and the lag grows.",
        scale.lag_seconds,
        DEADLINE.as_secs(),
        MIN_PAUSE.as_millis(),
        MAX_PAUSE.as_secs(),
        local_stack::MAX_LOCAL_QUEUE_BACKLOG
    )];
    let round_trip = baselines
        .find("SNS→SQS", 1)
        .or_else(|| baselines.nearest("SNS→SQS", 1));
    let vs = |p50: f64| match round_trip {
        Some(raw) => VsBaseline::new(
            p50,
            format!("SNS→SQS round trip p50 (c={})", raw.concurrency),
            raw.latency.p50_ms,
        ),
        None => VsBaseline::new(p50, "SNS→SQS round trip p50 (not measured)", 0.0),
    };
    let polls = Arc::new(Semaphore::new(POLLS_IN_FLIGHT));
    for &rate in &scale.lag_rates {
        ensure!(
            rate > 0.0 && rate.is_finite(),
            "a lag rate must be positive, not {rate}"
        );
        let writes = ((rate * scale.lag_seconds).round() as usize).max(1);

        settle(
            stack,
            Duration::from_secs(900),
            &format!("lag users {rate}/s"),
        )
        .await?;
        let bios = paced(rate, writes, |k| bio_write(stack, loaded, polls.clone(), k)).await?;
        runs.push(lag_run("users", rate, &bios, 0, &vs));

        settle(
            stack,
            Duration::from_secs(900),
            &format!("lag publishes {rate}/s"),
        )
        .await?;
        let publishes = paced(rate, writes, |k| publish(stack, loaded, polls.clone(), k)).await?;
        for (i, model) in ["articles", "search", "feed"].into_iter().enumerate() {
            runs.push(lag_run(model, rate, &publishes, i, &vs));
        }
    }
    for run in &runs {
        if run.visible < run.writes {
            notes.push(format!(
                "Lag of {} at {} writes/s: {} of {} writes were not visible within {} s.",
                run.read_model,
                run.target_per_second,
                run.writes - run.visible,
                run.writes,
                DEADLINE.as_secs()
            ));
        }
        if run.achieved_per_second < 0.9 * run.target_per_second {
            notes.push(format!(
                "Lag of {} at {} writes/s: the writes were answered at {:.1}/s only.",
                run.read_model, run.target_per_second, run.achieved_per_second
            ));
        }
    }
    Ok((LagSection { runs }, notes))
}

/// One write and what became of it.
struct Written {
    /// When its answer came (`None`: it failed).
    answered: Option<Instant>,
    /// Why it failed.
    error: Option<String>,
    /// Per read model: how long after the answer it showed (`None`: not before the deadline).
    lags: Vec<Option<Duration>>,
}

impl Written {
    fn failed(error: String) -> Self {
        Self {
            answered: None,
            error: Some(error),
            lags: Vec::new(),
        }
    }
}

/// The writes of one run, and when the first was sent.
struct Paced {
    started: Instant,
    interval: Duration,
    written: Vec<Written>,
}

/// Sends `writes` writes at `rate` per second, open loop: write `k` starts at `k / rate`
/// seconds, whatever became of the ones before.
async fn paced<F, Fut>(rate: f64, writes: usize, mut write: F) -> anyhow::Result<Paced>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Written> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writes);
    for k in 0..writes {
        let at = started + interval.mul_f64(k as f64);
        tokio::time::sleep_until(at.into()).await;
        tasks.push(tokio::spawn(write(k)));
    }
    let mut written = Vec::with_capacity(writes);
    for task in tasks {
        written.push(task.await.context("a lag write panicked")?);
    }
    Ok(Paced {
        started,
        interval,
        written,
    })
}

/// The run of read model `model` (the `index`th lag of each write) at `rate`.
fn lag_run(
    model: &str,
    rate: f64,
    paced: &Paced,
    index: usize,
    vs: &impl Fn(f64) -> VsBaseline,
) -> LagRun {
    let writes = paced.written.len();
    let samples: Vec<Duration> = paced
        .written
        .iter()
        .filter_map(|w| w.lags.get(index).copied().flatten())
        .collect();
    let answered: Vec<Instant> = paced.written.iter().filter_map(|w| w.answered).collect();
    // Answers per second over the run, the fence post counted: n writes take n intervals.
    let achieved = answered.iter().max().map_or(0.0, |last| {
        answered.len() as f64 / (last.duration_since(paced.started) + paced.interval).as_secs_f64()
    });
    let failed: Vec<&String> = paced
        .written
        .iter()
        .filter_map(|w| w.error.as_ref())
        .collect();
    if let Some(first) = failed.first() {
        eprintln!(
            "bench: ERROR lag of {model} at {rate}/s: {} of {writes} writes failed; first: {first}",
            failed.len()
        );
    }
    let latency = Latency::of(&samples);
    let run = LagRun {
        read_model: model.to_owned(),
        target_per_second: rate,
        achieved_per_second: achieved,
        writes,
        visible: samples.len(),
        vs: vs(latency.p50_ms),
        latency,
        samples,
    };
    eprintln!(
        "bench:   lag of {model} at {rate}/s (answered {:.1}/s): p50 {:.1} ms, p99 {:.1} ms, \
         {}/{} visible ({} vs {})",
        run.achieved_per_second,
        run.latency.p50_ms,
        run.latency.p99_ms,
        run.visible,
        run.writes,
        run.vs.ratio_text(),
        run.vs.baseline
    );
    if run.visible < run.writes {
        eprintln!(
            "bench: WARNING lag of {model} at {rate}/s: {} of {} writes not visible within {} s",
            run.writes - run.visible,
            run.writes,
            DEADLINE.as_secs()
        );
    }
    run
}

/// Reads `call` until `seen` holds for a successful answer; the time from `from` to that
/// answer, or `None` after the deadline.
async fn first_seen(
    client: Api,
    polls: Arc<Semaphore>,
    call: Call,
    from: Instant,
    seen: impl Fn(&Answer) -> bool,
) -> Option<Duration> {
    loop {
        let answer = {
            let _permit = polls.acquire().await.ok()?;
            send(&client, &call).await
        };
        // An answer that shows the write after the deadline (it waited for a permit behind
        // a backlog of reads) counts as not visible, like one that never shows it.
        let lag = from.elapsed();
        if lag > DEADLINE {
            return None;
        }
        if answer.error.is_none() && seen(&answer) {
            return Some(lag);
        }
        tokio::time::sleep(pause_after(lag)).await;
    }
}

/// Write `k` of the users model: a new bio, numbered, seen once the profile shows that number
/// or a later one (a later write of the same user may overtake it).
fn bio_write(
    stack: &Stack,
    loaded: &Loaded,
    polls: Arc<Semaphore>,
    k: usize,
) -> impl Future<Output = Written> + Send + 'static {
    let client = stack.client.clone();
    let user = loaded.user(k).clone();
    let seq = stack.next();
    let prefix = format!("lag {} ", stack.run);
    async move {
        let write = Call::new(
            Method::PUT,
            "/user".into(),
            Some(&user),
            Some(json!({"user": {"bio": format!("{prefix}{seq}")}})),
            200,
        );
        let answer = send(&client, &write).await;
        if let Some(error) = answer.error {
            return Written::failed(error);
        }
        let answered = Instant::now();
        let read = Call::get(format!("/profiles/{}", user.username), None);
        let lag = first_seen(client, polls, read, answered, |a| {
            a.body["profile"]["bio"]
                .as_str()
                .and_then(|bio| bio.strip_prefix(&prefix))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= seq)
        })
        .await;
        Written {
            answered: Some(answered),
            error: None,
            lags: vec![lag],
        }
    }
}

/// Write `k` of the articles, search and feed models: an article with a tag of its own, by
/// user `k`, whom user `k - 1` follows (see [`Loaded`]).
fn publish(
    stack: &Stack,
    loaded: &Loaded,
    polls: Arc<Semaphore>,
    k: usize,
) -> impl Future<Output = Written> + Send + 'static {
    let client = stack.client.clone();
    let author = loaded.user(k).clone();
    let follower = loaded.user(k + loaded.users.len() - 1).clone();
    let seq = stack.next();
    let tag = format!("lag{}t{seq}", stack.run);
    let title = format!("Lag article {seq} of run {}", stack.run);
    async move {
        let write = Call::new(
            Method::POST,
            "/articles".into(),
            Some(&author),
            Some(json!({"article": {
                "title": title,
                "description": "Written to measure the lag",
                "body": "Lorem ipsum dolor sit amet.",
                "tagList": [tag],
            }})),
            201,
        );
        let answer = send(&client, &write).await;
        if let Some(error) = answer.error {
            return Written::failed(error);
        }
        let answered = Instant::now();
        let Some(slug) = answer.body["article"]["slug"].as_str().map(str::to_owned) else {
            return Written::failed(format!("POST /articles answered no slug: {}", answer.body));
        };
        let article = first_seen(
            client.clone(),
            polls.clone(),
            Call::get(format!("/articles/{slug}"), None),
            answered,
            |_| true,
        );
        let listed = first_seen(
            client.clone(),
            polls.clone(),
            Call::get(format!("/articles?tag={tag}"), None),
            answered,
            |a| a.body["articlesCount"].as_u64().is_some_and(|n| n >= 1),
        );
        let fed = first_seen(
            client,
            polls,
            Call::get("/articles/feed".into(), Some(&follower)),
            answered,
            |a| {
                a.body["articles"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|item| item["slug"] == slug.as_str()))
            },
        );
        let (article, listed, fed) = tokio::join!(article, listed, fed);
        Written {
            answered: Some(answered),
            error: None,
            lags: vec![article, listed, fed],
        }
    }
}

/// How long to wait before reading again a write that is `age` old and not seen yet.
fn pause_after(age: Duration) -> Duration {
    (age / PAUSE_PER_AGE).clamp(MIN_PAUSE, MAX_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_is_a_fifth_of_the_age_within_its_bounds() {
        assert_eq!(pause_after(Duration::ZERO), MIN_PAUSE);
        assert_eq!(pause_after(Duration::from_millis(20)), MIN_PAUSE);
        assert_eq!(
            pause_after(Duration::from_millis(500)),
            Duration::from_millis(100)
        );
        assert_eq!(pause_after(Duration::from_secs(30)), MAX_PAUSE);
    }

    #[test]
    fn a_write_thirty_seconds_behind_is_read_a_few_dozen_times_not_hundreds() {
        let (mut age, mut reads) = (Duration::ZERO, 0);
        while age < Duration::from_secs(30) {
            age += pause_after(age);
            reads += 1;
        }
        assert!((30..=60).contains(&reads), "{reads} reads");
    }
}
