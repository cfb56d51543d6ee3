//! `replay status`: for each projector, its queue (visible and in flight), the age of the
//! oldest message in it, its dead-letter queue, the projection's active version and its lag.
//!
//! The lag is read off the projection's head ([`projectors::heads`]): 0 when the projector's
//! queue holds nothing, else how old the newest event the projection has applied is. A call
//! costs, per projector, two `GetQueueAttributes` and two strongly consistent `GetItem`s (the
//! registry item and the head): on AWS, 4 × 1 read unit and 8 SQS requests in all; plus, where
//! CloudWatch is, one `GetMetricData` of 4 metrics for the ages ([`crate::oldest`]).

use std::time::SystemTime;

use aws_sdk_sqs::Client as Sqs;
use common::projections::Projection;
use projectors::heads::{self, Head};

use crate::dlq::Dlq;
use crate::{registry, Replay, ReplayError};

/// One projector's state.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectorStatus {
    pub projection: Projection,
    pub active: u32,
    pub building: Option<u32>,
    /// Messages waiting in the projector's queue.
    pub queued: u64,
    /// Messages received and not yet deleted or handed back.
    pub in_flight: u64,
    /// The age of the oldest message in the queue in seconds, as CloudWatch last measured it
    /// (`None`: not read, or no datapoint in the last 10 minutes).
    pub oldest_s: Option<f64>,
    /// Messages in the dead-letter queue.
    pub dead: u64,
    pub head: Option<Head>,
    /// `None`: events are queued and none was ever applied.
    pub lag_ms: Option<u64>,
}

/// The lag of a projection with `pending` messages queued or in flight and `head`, at `now_ms`.
pub fn lag_ms(pending: u64, head: Option<&Head>, now_ms: u64) -> Option<u64> {
    if pending == 0 {
        return Some(0);
    }
    let recorded = events::time_format::parse(&head?.recorded_at)?;
    let recorded_ms = u64::try_from(recorded.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some(now_ms.saturating_sub(recorded_ms))
}

/// What `status` found, and why the queues' ages are missing if they are.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub projectors: Vec<ProjectorStatus>,
    /// Set when the ages could not be read: CloudWatch is not where the queues are, or the
    /// read failed (the reason, in one line). The rest of the status stands either way.
    pub ages_missing: Option<String>,
}

/// The state of every projector; the queues' ages from `cloudwatch` when given (see
/// [`crate::oldest::readable`]).
pub async fn status(
    replay: &Replay,
    sqs: &Sqs,
    cloudwatch: Option<&aws_sdk_cloudwatch::Client>,
) -> Result<Status, ReplayError> {
    let queues: Vec<String> = Projection::ALL
        .iter()
        .map(|p| crate::dlq::queue_names(&replay.base, *p).0)
        .collect();
    let (ages, ages_missing) = match cloudwatch {
        None => (
            Default::default(),
            Some("no CloudWatch here (the local stack has none)".to_owned()),
        ),
        Some(cloudwatch) => match crate::oldest::ages(cloudwatch, &queues, SystemTime::now()).await
        {
            Ok(ages) => (ages, None),
            Err(why) => (Default::default(), Some(format!("CloudWatch: {why}"))),
        },
    };
    let mut all = Vec::new();
    for (projection, queue) in Projection::ALL.into_iter().zip(&queues) {
        let state = registry::read(replay, projection).await?.state;
        let queues = Dlq::resolve(sqs, &replay.client, &replay.base, projection).await?;
        let (queued, in_flight, dead) = queues.depths().await?;
        let head = heads::read(&replay.client, &replay.base.checkpoints, projection)
            .await
            .map_err(|e| ReplayError::Store(format!("reading {projection}'s head: {e}")))?;
        all.push(ProjectorStatus {
            projection,
            active: state.active,
            building: state.building,
            queued,
            in_flight,
            oldest_s: ages.get(queue).copied(),
            dead,
            lag_ms: lag_ms(queued + in_flight, head.as_ref(), common::clock::now_ms()),
            head,
        });
    }
    Ok(Status {
        projectors: all,
        ages_missing,
    })
}

/// `status` as a table, one line a projector.
pub fn render(status: &Status) -> String {
    let statuses = &status.projectors;
    let mut out = format!(
        "{:<9} {:>6} {:>8} {:>7} {:>9} {:>8} {:>4}  {:<10} {}\n",
        "projector",
        "active",
        "building",
        "queued",
        "in flight",
        "oldest",
        "dlq",
        "lag",
        "newest applied"
    );
    for s in statuses {
        let oldest = match s.oldest_s {
            Some(secs) => format!("{secs:.0} s"),
            None => "-".to_owned(),
        };
        let lag = match s.lag_ms {
            Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
            None => "unknown".to_owned(),
        };
        out.push_str(&format!(
            "{:<9} {:>6} {:>8} {:>7} {:>9} {:>8} {:>4}  {:<10} {}\n",
            s.projection.name(),
            s.active,
            s.building.map_or("-".to_owned(), |v| v.to_string()),
            s.queued,
            s.in_flight,
            oldest,
            s.dead,
            lag,
            s.head
                .as_ref()
                .map_or("nothing yet", |h| h.recorded_at.as_str())
        ));
    }
    match &status.ages_missing {
        Some(why) => out.push_str(&format!("oldest: not shown: {why}\n")),
        None => out.push_str(
            "oldest: SQS's age of the oldest message, from CloudWatch (about a minute behind)\n",
        ),
    }
    for s in statuses.iter().filter(|s| s.dead > 0) {
        out.push_str(&format!(
            "{}: {} dead letter(s): `replay dlq list {}` shows them and why\n",
            s.projection.name(),
            s.dead,
            s.projection.name()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(recorded_at: &str) -> Head {
        Head {
            recorded_at: recorded_at.into(),
            applied_at_ms: 0,
        }
    }

    #[test]
    fn an_empty_queue_is_no_lag_else_the_age_of_the_newest_applied_event() {
        let at = head("2026-12-03T10:00:00.000Z");
        let then = 1_796_292_000_000; // 2026-12-03T10:00:00Z
        assert_eq!(lag_ms(0, Some(&at), then + 90_000), Some(0));
        assert_eq!(lag_ms(0, None, then), Some(0));
        assert_eq!(lag_ms(3, Some(&at), then + 90_000), Some(90_000));
        assert_eq!(lag_ms(3, Some(&at), then - 5), Some(0), "a clock behind");
        assert_eq!(
            lag_ms(1, None, then),
            None,
            "queued and nothing ever applied"
        );
    }
}
