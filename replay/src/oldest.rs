//! The age of the oldest message in each projector's queue, for `replay status`.
//!
//! SQS tells it only as the CloudWatch metric `ApproximateAgeOfOldestMessage` (namespace
//! `AWS/SQS`, dimension `QueueName`), published about once a minute for a queue in use. Finding
//! it by receiving from the queue is no option: every receive counts toward the receives that
//! send a message to the dead-letter queue. One `GetMetricData` reads the newest datapoint of
//! every queue at once (the last 10 minutes, 1-minute periods, the maximum): $0.01 per 1,000
//! metrics requested, so 4 metrics a call.
//!
//! The local stack has no CloudWatch (moto's does not speak the CBOR protocol of today's SDK),
//! so the metric is read only where CloudWatch is: on AWS, or at `AWS_ENDPOINT_URL_CLOUDWATCH`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};

/// How far back the newest datapoint is looked for.
const WINDOW: Duration = Duration::from_secs(600);

/// Whether the metric can be read, from the endpoint overrides in the environment: yes with a
/// CloudWatch endpoint of its own; no when SQS (or every service) is pointed elsewhere without
/// one (the local stack: the SDK would otherwise reach for the real CloudWatch); else yes, AWS.
pub fn readable(cloudwatch: Option<&str>, every: Option<&str>, sqs: Option<&str>) -> bool {
    let set = |value: Option<&str>| value.is_some_and(|v| !v.is_empty());
    set(cloudwatch) || !(set(every) || set(sqs))
}

/// [`readable`] for this process's environment.
pub fn readable_here() -> bool {
    let var = |name: &str| std::env::var(name).ok();
    readable(
        var("AWS_ENDPOINT_URL_CLOUDWATCH").as_deref(),
        var("AWS_ENDPOINT_URL").as_deref(),
        var("AWS_ENDPOINT_URL_SQS").as_deref(),
    )
}

/// The newest `ApproximateAgeOfOldestMessage` of each of `queues` (by name), in seconds, as of
/// `now`; a queue without a datapoint in the window is absent. `Err` says in one line why the
/// metric could not be read.
pub async fn ages(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    queues: &[String],
    now: SystemTime,
) -> Result<HashMap<String, f64>, String> {
    let mut request = cloudwatch
        .get_metric_data()
        .start_time(DateTime::from(now - WINDOW))
        .end_time(DateTime::from(now))
        .scan_by(ScanBy::TimestampDescending);
    for (i, queue) in queues.iter().enumerate() {
        let metric = Metric::builder()
            .namespace("AWS/SQS")
            .metric_name("ApproximateAgeOfOldestMessage")
            .dimensions(Dimension::builder().name("QueueName").value(queue).build())
            .build();
        let stat = MetricStat::builder()
            .metric(metric)
            .period(60)
            .stat("Maximum")
            .build();
        request = request.metric_data_queries(
            MetricDataQuery::builder()
                .id(format!("q{i}"))
                .metric_stat(stat)
                .return_data(true)
                .build(),
        );
    }
    let mut ages = HashMap::new();
    let mut pages = request.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| common::error::one_line(&e))?;
        for result in page.metric_data_results() {
            let queue = result
                .id()
                .and_then(|id| id.strip_prefix('q'))
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| queues.get(i));
            // Newest first: the first value of a queue is its age now.
            if let (Some(queue), Some(age)) = (queue, result.values().first()) {
                ages.entry(queue.clone()).or_insert(*age);
            }
        }
    }
    Ok(ages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_is_read_on_aws_or_where_cloudwatch_is_pointed_never_past_the_local_stack() {
        assert!(readable(None, None, None), "AWS");
        assert!(
            !readable(None, None, Some("http://127.0.0.1:8101")),
            "local"
        );
        assert!(
            !readable(None, Some("http://127.0.0.1:4566"), None),
            "local"
        );
        assert!(readable(
            Some("http://127.0.0.1:9"),
            None,
            Some("http://127.0.0.1:8101")
        ));
        assert!(readable(None, Some(""), Some("")), "empty is unset");
    }
}
