//! Exponential backoff, the one schedule every retry loop here uses: the pause after the
//! `n`-th failure is at most `base * 2^(n-1)`, capped, and with [`Backoff::jittered`] a
//! random share of it ("full jitter"), so that writers who failed together do not retry
//! together.

use std::time::Duration;

/// A doubling pause from `base`, at most `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// The pause after `failures` failures: `base * 2^(failures-1)`, capped; zero for none.
    pub fn ceiling(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).min(16);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random pause between zero and [`Backoff::ceiling`].
    pub fn jittered(&self, failures: u32) -> Duration {
        self.ceiling(failures).mul_f64(rand::random::<f64>())
    }
}

/// The pause after consecutive failures, for a loop that retries until it succeeds: each
/// [`Retries::fail`] doubles it, [`Retries::reset`] (a success) starts again from the base.
#[derive(Clone, Debug)]
pub struct Retries {
    backoff: Backoff,
    failures: u32,
}

impl Retries {
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            failures: 0,
        }
    }

    /// The pause to wait after one more failure.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.backoff.ceiling(self.failures)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let backoff = Backoff::new(10 * MS, 1_000 * MS);
        assert_eq!(backoff.ceiling(0), Duration::ZERO);
        assert_eq!(backoff.ceiling(1), 10 * MS);
        assert_eq!(backoff.ceiling(3), 40 * MS);
        assert_eq!(backoff.ceiling(40), 1_000 * MS);
        assert_eq!(backoff.ceiling(u32::MAX), 1_000 * MS);
    }

    #[test]
    fn jitter_stays_under_the_ceiling() {
        let backoff = Backoff::new(25 * MS, 1_000 * MS);
        for failures in 0..10 {
            let ceiling = backoff.ceiling(failures);
            assert!((0..50).all(|_| backoff.jittered(failures) <= ceiling));
        }
    }

    #[test]
    fn retries_double_until_reset() {
        let mut retries = Retries::new(Backoff::new(100 * MS, 250 * MS));
        assert_eq!(retries.fail(), 100 * MS);
        assert_eq!(retries.fail(), 200 * MS);
        assert_eq!(retries.fail(), 250 * MS);
        retries.reset();
        assert_eq!(retries.fail(), 100 * MS);
    }
}
