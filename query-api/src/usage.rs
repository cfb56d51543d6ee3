//! What reads cost: DynamoDB requests sent and read capacity consumed, per process and per request.

use std::future::Future;
use std::ops::Sub;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::types::ConsumedCapacity;

/// DynamoDB requests sent and read capacity units they consumed (as DynamoDB reports them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub requests: u64,
    pub read_capacity_units: f64,
}

impl Sub for Usage {
    type Output = Usage;

    /// The usage between two snapshots of [`crate::Readers::usage`].
    fn sub(self, earlier: Usage) -> Usage {
        Usage {
            requests: self.requests - earlier.requests,
            read_capacity_units: self.read_capacity_units - earlier.read_capacity_units,
        }
    }
}

/// Capacity is kept in thousandths of a unit so that it fits an atomic integer.
const MILLI: f64 = 1000.0;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    milli_units: AtomicU64,
    /// The enclosing [`measure`] scope, which counts everything its inner scopes count.
    parent: Option<Arc<Counters>>,
}

impl Counters {
    fn add(&self, units: f64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let milli = (units * MILLI).round().max(0.0) as u64;
        self.milli_units.fetch_add(milli, Ordering::Relaxed);
        if let Some(parent) = &self.parent {
            parent.add(units);
        }
    }

    pub(crate) fn snapshot(&self) -> Usage {
        Usage {
            requests: self.requests.load(Ordering::Relaxed),
            read_capacity_units: self.milli_units.load(Ordering::Relaxed) as f64 / MILLI,
        }
    }

    /// Counts one request sent, with the capacity its answer reported, here and in the
    /// enclosing [`measure`] scope if any.
    pub(crate) fn record<'a>(&self, consumed: impl IntoIterator<Item = &'a ConsumedCapacity>) {
        let units = consumed
            .into_iter()
            .filter_map(ConsumedCapacity::capacity_units)
            .sum::<f64>();
        self.add(units);
        let _ = SCOPE.try_with(|scope| scope.add(units));
    }
}

tokio::task_local! {
    static SCOPE: Arc<Counters>;
}

/// Runs `work` and returns what the DynamoDB reads made inside it cost, whatever else runs
/// concurrently. Reads count when they run in the same task (the handlers never spawn).
pub async fn measure<F: Future>(work: F) -> (F::Output, Usage) {
    let counters = Arc::new(Counters {
        parent: SCOPE.try_with(Arc::clone).ok(),
        ..Counters::default()
    });
    let output = SCOPE.scope(counters.clone(), work).await;
    (output, counters.snapshot())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(units: f64) -> ConsumedCapacity {
        ConsumedCapacity::builder().capacity_units(units).build()
    }

    #[tokio::test]
    async fn a_scope_counts_only_its_own_requests() {
        let counters = Counters::default();
        counters.record([&capacity(1.5)]);
        let ((), inside) = measure(async {
            counters.record([&capacity(0.5), &capacity(1.0)]);
            counters.record([]);
        })
        .await;
        assert_eq!(
            inside,
            Usage {
                requests: 2,
                read_capacity_units: 1.5
            }
        );
        assert_eq!(
            counters.snapshot(),
            Usage {
                requests: 3,
                read_capacity_units: 3.0
            }
        );
        assert_eq!(
            counters.snapshot() - inside,
            Usage {
                requests: 1,
                read_capacity_units: 1.5
            }
        );
    }

    #[tokio::test]
    async fn an_outer_scope_counts_its_inner_scopes() {
        let counters = Counters::default();
        let (inner, outer) = measure(async {
            counters.record([&capacity(1.0)]);
            measure(async { counters.record([&capacity(0.5)]) }).await.1
        })
        .await;
        assert_eq!(inner.requests, 1);
        assert_eq!(outer.requests, 2);
        assert_eq!(outer.read_capacity_units, 1.5);
    }
}
