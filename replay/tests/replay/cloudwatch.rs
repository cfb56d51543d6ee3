//! The age of the oldest message, at the wire: `GetMetricData` in CloudWatch's CBOR protocol
//! (what the SDK speaks; no emulator here does) against a loopback stub that checks the
//! request and answers as CloudWatch does.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use minicbor::data::Token;

/// Where the SDK sends `GetMetricData` (Smithy RPC v2 CBOR).
const OPERATION: &str = "/service/GraniteServiceVersion20100801/operation/GetMetricData";

/// A CloudWatch that answers `GetMetricData` with `ages` (query id → seconds) and keeps the
/// strings of each request it got. Its endpoint URL.
pub async fn stub(ages: Vec<(String, f64)>) -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().route(
        OPERATION,
        axum::routing::post(move |body: Bytes| {
            let kept = kept.clone();
            let ages = ages.clone();
            async move {
                let strings = minicbor::decode::Tokenizer::new(&body)
                    .filter_map(|token| match token {
                        Ok(Token::String(s)) => Some(s.to_owned()),
                        _ => None,
                    })
                    .collect();
                kept.lock().expect("lock").push(strings);
                (
                    StatusCode::OK,
                    [
                        (header::CONTENT_TYPE, "application/cbor"),
                        (
                            header::HeaderName::from_static("smithy-protocol"),
                            "rpc-v2-cbor",
                        ),
                    ],
                    answer(&ages),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the stub") });
    (url, seen)
}

/// `{"MetricDataResults": [{"Id", "StatusCode", "Values": [age]}, ...]}` in CBOR.
fn answer(ages: &[(String, f64)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = minicbor::Encoder::new(&mut out);
    e.map(1)
        .and_then(|e| e.str("MetricDataResults"))
        .expect("cbor");
    e.array(ages.len() as u64).expect("cbor");
    for (id, age) in ages {
        e.map(3)
            .and_then(|e| e.str("Id"))
            .and_then(|e| e.str(id))
            .and_then(|e| e.str("StatusCode"))
            .and_then(|e| e.str("Complete"))
            .and_then(|e| e.str("Values"))
            .and_then(|e| e.array(1))
            .and_then(|e| e.f64(*age))
            .expect("cbor");
    }
    out
}

pub fn client(endpoint: &str) -> aws_sdk_cloudwatch::Client {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "conduitlocal",
            "conduitlocal",
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

#[tokio::test]
async fn one_request_reads_each_queues_newest_age_and_a_queue_without_one_has_none() {
    let queues: Vec<String> = [
        "p-users-projector",
        "p-articles-projector",
        "p-feed-projector",
    ]
    .map(str::to_owned)
    .into();
    let (url, seen) = stub(vec![("q1".into(), 42.0), ("q0".into(), 7.0)]).await;

    let ages = replay::oldest::ages(&client(&url), &queues, SystemTime::now())
        .await
        .expect("the ages");

    assert_eq!(ages.get("p-users-projector"), Some(&7.0));
    assert_eq!(ages.get("p-articles-projector"), Some(&42.0));
    assert_eq!(ages.get("p-feed-projector"), None, "no datapoint");
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 1, "one request for every queue");
    for wanted in [
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        "QueueName",
        "Maximum",
    ] {
        assert!(
            seen[0].iter().any(|s| s == wanted),
            "{wanted}: {:?}",
            seen[0]
        );
    }
    for (i, queue) in queues.iter().enumerate() {
        assert!(seen[0].contains(queue), "{queue}");
        assert!(seen[0].contains(&format!("q{i}")));
    }
}

#[tokio::test]
async fn an_unreachable_cloudwatch_is_a_reason_in_one_line() {
    let queues = vec!["p-users-projector".to_owned()];
    let why = replay::oldest::ages(&client("http://127.0.0.1:9"), &queues, SystemTime::now())
        .await
        .expect_err("nothing listens there");
    assert!(!why.contains('\n'), "{why}");
}
