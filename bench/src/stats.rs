//! Summaries of measured samples, and the ratio that sets each figure beside its baseline.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A latency distribution in milliseconds (nearest-rank percentiles).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub n: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// The summary of `samples` (in any order); all zero when there are none.
    pub fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let n = sorted.len();
        if n == 0 {
            return Self::default();
        }
        let total: Duration = sorted.iter().sum();
        Self {
            n,
            p50_ms: ms(percentile(&sorted, 0.50)),
            p95_ms: ms(percentile(&sorted, 0.95)),
            p99_ms: ms(percentile(&sorted, 0.99)),
            max_ms: ms(sorted[n - 1]),
            mean_ms: ms(total) / n as f64,
        }
    }
}

/// The `p`-quantile (0..=1) of sorted samples, nearest rank; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `count` per second of `elapsed`; zero for an empty duration.
pub fn per_second(count: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// A figure set beside its baseline from the same run: `ratio = value / baseline`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VsBaseline {
    /// What the baseline is, e.g. `DynamoDB GetItem p50 (c=1)`.
    pub baseline: String,
    pub baseline_value: f64,
    /// `value / baseline_value`; `None` when the baseline is zero or missing.
    pub ratio: Option<f64>,
}

impl VsBaseline {
    pub fn new(value: f64, baseline: impl Into<String>, baseline_value: f64) -> Self {
        let ratio = (baseline_value > 0.0 && value.is_finite()).then(|| value / baseline_value);
        Self {
            baseline: baseline.into(),
            baseline_value,
            ratio,
        }
    }

    /// `12.3×`, `0.031×` or `-`.
    pub fn ratio_text(&self) -> String {
        match self.ratio {
            Some(r) if r >= 10.0 => format!("{r:.0}×"),
            Some(r) if r >= 0.1 => format!("{r:.2}×"),
            Some(r) => format!("{r:.3}×"),
            None => "-".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let latency = Latency::of(&samples);
        assert_eq!(latency.n, 100);
        assert_eq!(latency.p50_ms, 50.0);
        assert_eq!(latency.p95_ms, 95.0);
        assert_eq!(latency.p99_ms, 99.0);
        assert_eq!(latency.max_ms, 100.0);
        assert_eq!(latency.mean_ms, 50.5);
        assert_eq!(Latency::of(&[]), Latency::default());
        let one = Latency::of(&[Duration::from_millis(7)]);
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
    }

    #[test]
    fn ratios_divide_by_the_baseline_and_refuse_a_zero_one() {
        let vs = VsBaseline::new(30.0, "GetItem p50", 2.0);
        assert_eq!(vs.ratio, Some(15.0));
        assert_eq!(vs.ratio_text(), "15×");
        assert_eq!(VsBaseline::new(172.0, "raw", 5569.0).ratio_text(), "0.031×");
        assert_eq!(VsBaseline::new(1.0, "zero", 0.0).ratio, None);
        assert_eq!(VsBaseline::new(1.0, "zero", 0.0).ratio_text(), "-");
        assert_eq!(per_second(10, Duration::from_millis(500)), 20.0);
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
    }
}
