//! What the benchmark binaries share: a stack of their own on in-memory emulators, and
//! latency summaries.

use std::time::Duration;

use common::config::JwtSettings;
use common::meter::DynamoMeter;

use crate::{RunningStack, StackConfig};

/// Starts in-memory emulators (once per process) and a local stack on them with a fresh
/// prefix, the given stream poll pause and, optionally, a meter on the API's DynamoDB client.
pub async fn own_stack(
    stream_poll: Duration,
    api_meter: Option<DynamoMeter>,
) -> anyhow::Result<RunningStack> {
    let endpoints = infra::testkit::emulators().clone();
    let secret = uuid::Uuid::new_v4().simple().to_string().repeat(2);
    crate::start(StackConfig {
        endpoints,
        prefix: infra::testkit::unique_prefix("bench"),
        jwt: JwtSettings::new(secret.into_bytes(), Duration::from_secs(3600))?,
        listen: ([127, 0, 0, 1], 0).into(),
        retry_delay: Some(Duration::from_secs(1)),
        stream_poll_interval: stream_poll,
        search_dir: None,
        api_meter,
    })
    .await
}

/// The `p`-quantile (0..=1) of sorted samples, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One line: `name n=.. p50=.. p90=.. p99=.. max=..`.
pub fn summary(name: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.90)),
        ms(percentile(&samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default()),
    )
}

/// The header of [`summary`] rows.
pub const SUMMARY_HEADER: &str =
    "| what | n | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&samples, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
