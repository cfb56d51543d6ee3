//! The projectors' CloudWatch metrics, as Embedded Metric Format lines on stdout: on Lambda
//! CloudWatch Logs turns each into metrics, with no API call. One line a batch, with the
//! projection as dimension: [`schema::metrics::LAG_SECONDS`] (how long the oldest event the
//! batch applied waited since it was recorded) and [`schema::metrics::FAILURES`] (messages
//! handed back). Printed only on Lambda (`AWS_LAMBDA_FUNCTION_NAME` set): locally nobody
//! reads them.

use std::sync::OnceLock;

use common::projections::Projection;
use schema::metrics;
use serde_json::json;

/// The EMF line of one batch at `timestamp_ms`; no lag if nothing was applied.
pub fn emf_line(
    projection: Projection,
    lag_seconds: Option<f64>,
    failures: usize,
    timestamp_ms: u64,
) -> String {
    let mut names = vec![json!({ "Name": metrics::FAILURES, "Unit": "Count" })];
    let mut line = json!({
        metrics::PROJECTION: projection.name(),
        metrics::FAILURES: failures,
    });
    if let Some(lag) = lag_seconds {
        names.push(json!({ "Name": metrics::LAG_SECONDS, "Unit": "Seconds" }));
        line[metrics::LAG_SECONDS] = json!(lag);
    }
    line["_aws"] = json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": metrics::NAMESPACE,
            "Dimensions": [[metrics::PROJECTION]],
            "Metrics": names,
        }],
    });
    line.to_string()
}

/// Prints the batch's line when running on Lambda.
pub fn emit(projection: Projection, lag_seconds: Option<f64>, failures: usize, now_ms: u64) {
    static ON_LAMBDA: OnceLock<bool> = OnceLock::new();
    if *ON_LAMBDA.get_or_init(|| std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()) {
        println!("{}", emf_line(projection, lag_seconds, failures, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_batch_is_one_emf_object_naming_its_metrics_and_dimension() {
        let line: Value =
            serde_json::from_str(&emf_line(Projection::Feed, Some(1.5), 2, 1_000)).expect("JSON");
        assert_eq!(line["Projection"], "feed");
        assert_eq!(line["ProjectionLagSeconds"], 1.5);
        assert_eq!(line["ProjectionFailures"], 2);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_000);
        assert_eq!(directive["Namespace"], "ConduitES");
        assert_eq!(directive["Dimensions"], json!([["Projection"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| m["Name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["ProjectionFailures", "ProjectionLagSeconds"]);
    }

    #[test]
    fn a_batch_that_applied_nothing_has_no_lag() {
        let line: Value =
            serde_json::from_str(&emf_line(Projection::Users, None, 3, 1)).expect("JSON");
        assert!(line.get("ProjectionLagSeconds").is_none());
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
}
