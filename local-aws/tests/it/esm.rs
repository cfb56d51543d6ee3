//! The event source mapping emulation against the real emulators (DynamoDB Local, moto):
//! order, batch sizes, partial batch failures, retries, bisection, the on-failure destination,
//! checkpoints across restarts, SQS deletes, redelivery and redrive to a DLQ.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};
use local_aws::esm::{
    CheckpointStore, DynamoCheckpoints, MemoryCheckpoints, MemoryOnFailure, QueueMapping,
    StreamMapping, RETRY_ATTEMPTS_EXHAUSTED, SEQUENCE_NUMBER_ATTRIBUTE,
};
use local_aws::testkit;
use local_aws::Clients;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Polls `check` every 20 ms until it holds; panics with `what` after `deadline`.
async fn eventually(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A mapping running in its own task, stopped through its shutdown future.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    fn spawn<F>(run: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, rx) = oneshot::channel::<()>();
        let shutdown = Box::pin(async move {
            let _ = rx.await;
        });
        Self {
            stop: Some(stop),
            task: tokio::spawn(run(shutdown)),
        }
    }

    /// Completes the shutdown future.
    fn request_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Requests shutdown and waits for the mapping to return; returns how long it took.
    async fn stop(mut self) -> Duration {
        let start = Instant::now();
        self.request_stop();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the mapping stops within 10 s of shutdown")
            .expect("the mapping task does not panic");
        start.elapsed()
    }
}

async fn clients() -> Clients {
    testkit::clients().await
}

/// A table `pk` (S) with a NEW_IMAGE stream; returns (table name, stream ARN).
async fn stream_table(clients: &Clients, tag: &str) -> (String, String) {
    let name = format!("{}items", testkit::unique_prefix(tag));
    let output = clients
        .dynamodb
        .create_table()
        .table_name(&name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .expect("stream specification"),
        )
        .send()
        .await
        .expect("CreateTable");
    let arn = output
        .table_description()
        .and_then(|t| t.latest_stream_arn())
        .expect("the table has a stream")
        .to_owned();
    (name, arn)
}

fn item_key(i: usize) -> String {
    format!("item-{i:04}")
}

/// Puts items `item-NNNN` (with `n` = N) one after the other, so the stream has them in order.
async fn put_items(clients: &Clients, table: &str, range: std::ops::Range<usize>) {
    for i in range {
        clients
            .dynamodb
            .put_item()
            .table_name(table)
            .item("pk", AttributeValue::S(item_key(i)))
            .item("n", AttributeValue::N(i.to_string()))
            .item(
                "payload",
                AttributeValue::M(HashMap::from([(
                    "text".to_owned(),
                    AttributeValue::S(format!("hello {i}")),
                )])),
            )
            .send()
            .await
            .expect("PutItem");
    }
}

fn s_value(item: &serde_dynamo::Item, name: &str) -> Option<String> {
    match item.inner().get(name)? {
        serde_dynamo::AttributeValue::S(s) => Some(s.clone()),
        _ => None,
    }
}

fn pk_of(record: &EventRecord) -> String {
    s_value(&record.change.keys, "pk").expect("Keys.pk")
}

fn seq_of(record: &EventRecord) -> String {
    record
        .change
        .sequence_number
        .clone()
        .expect("SequenceNumber")
}

fn failure_response(sequence_numbers: &[String]) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for seq in sequence_numbers {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(seq.clone());
        response.batch_item_failures.push(failure);
    }
    response
}

/// One delivered batch: (`pk`, sequence number) of each record.
type Batch = Vec<(String, String)>;

/// Every batch a stream handler saw, in delivery order.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<Batch>>>);

impl Seen {
    fn record(&self, event: &Event) {
        let batch = event
            .records
            .iter()
            .map(|r| (pk_of(r), seq_of(r)))
            .collect();
        self.0.lock().expect("lock").push(batch);
    }
    fn batches(&self) -> Vec<Batch> {
        self.0.lock().expect("lock").clone()
    }
    fn pks(&self) -> Vec<String> {
        self.batches()
            .into_iter()
            .flatten()
            .map(|(pk, _)| pk)
            .collect()
    }
}

fn fast_stream_mapping(arn: &str, checkpoint: Arc<dyn CheckpointStore>) -> StreamMapping {
    let mut mapping = StreamMapping::new(arn, checkpoint);
    mapping.poll_interval = Duration::from_millis(20);
    mapping.retry_backoff = Duration::from_millis(5);
    mapping
}

// ---------------------------------------------------------------------------------------------
// Pure: the event JSON
// ---------------------------------------------------------------------------------------------

#[test]
fn stream_record_json_deserializes_into_the_lambda_event() {
    use aws_sdk_dynamodbstreams::primitives::{Blob, DateTime};
    use aws_sdk_dynamodbstreams::types::{
        AttributeValue as V, OperationType, Record, StreamRecord, StreamViewType as View,
    };
    let record = Record::builder()
        .event_id("5f3c8c0e-0000-4000-8000-000000000001")
        .event_name(OperationType::Insert)
        .event_version("1.1")
        .event_source("aws:dynamodb")
        .aws_region("ddblocal")
        .dynamodb(
            StreamRecord::builder()
                .approximate_creation_date_time(DateTime::from_secs(1_700_000_000))
                .keys("pk", V::S("Article#1".into()))
                .keys("sk", V::N("3".into()))
                .new_image("pk", V::S("Article#1".into()))
                .new_image("sk", V::N("3".into()))
                .new_image("eventType", V::S("ArticlePublished".into()))
                .new_image("blob", V::B(Blob::new(b"foobar".to_vec())))
                .new_image("flag", V::Bool(true))
                .new_image("nothing", V::Null(true))
                .new_image("tags", V::Ss(vec!["a".into(), "b".into()]))
                .new_image(
                    "payload",
                    V::M(HashMap::from([
                        ("title".to_owned(), V::S("Hello".into())),
                        (
                            "list".to_owned(),
                            V::L(vec![V::N("1".into()), V::S("two".into())]),
                        ),
                    ])),
                )
                .sequence_number("000000000000000000042")
                .size_bytes(123)
                .stream_view_type(View::NewImage)
                .build(),
        )
        .build();
    let arn = "arn:aws:dynamodb:ddblocal:000000000000:table/events/stream/2024-01-01T00:00:00.000";

    let json = local_aws::esm::dynamodb_record_json(&record, arn, "us-east-1").expect("converts");
    assert_eq!(json["eventID"], "5f3c8c0e-0000-4000-8000-000000000001");
    assert_eq!(json["eventName"], "INSERT");
    assert_eq!(json["eventVersion"], "1.1");
    assert_eq!(json["eventSource"], "aws:dynamodb");
    assert_eq!(json["awsRegion"], "us-east-1");
    assert_eq!(json["eventSourceARN"], arn);
    let d = &json["dynamodb"];
    assert_eq!(d["ApproximateCreationDateTime"], 1_700_000_000);
    assert_eq!(d["Keys"]["pk"]["S"], "Article#1");
    assert_eq!(d["Keys"]["sk"]["N"], "3");
    assert_eq!(d["NewImage"]["blob"]["B"], "Zm9vYmFy");
    assert_eq!(d["NewImage"]["flag"]["BOOL"], true);
    assert_eq!(d["NewImage"]["nothing"]["NULL"], true);
    assert_eq!(d["NewImage"]["tags"]["SS"][1], "b");
    assert_eq!(d["NewImage"]["payload"]["M"]["list"]["L"][1]["S"], "two");
    assert_eq!(d["SequenceNumber"], "000000000000000000042");
    assert_eq!(d["SizeBytes"], 123);
    assert_eq!(d["StreamViewType"], "NEW_IMAGE");
    assert!(d.get("OldImage").is_none());

    let event: Event = serde_json::from_value(serde_json::json!({ "Records": [json] }))
        .expect("deserializes into aws_lambda_events' Event");
    let r = &event.records[0];
    assert_eq!(r.event_name, "INSERT");
    assert_eq!(r.event_source.as_deref(), Some("aws:dynamodb"));
    assert_eq!(r.event_source_arn.as_deref(), Some(arn));
    assert_eq!(
        r.change.sequence_number.as_deref(),
        Some("000000000000000000042")
    );
    assert_eq!(r.change.size_bytes, 123);
    assert_eq!(
        r.change.approximate_creation_date_time.timestamp(),
        1_700_000_000
    );
    assert_eq!(
        s_value(&r.change.new_image, "eventType").as_deref(),
        Some("ArticlePublished")
    );
    let image = r.change.new_image.inner();
    assert_eq!(
        image.get("sk"),
        Some(&serde_dynamo::AttributeValue::N("3".into()))
    );
    assert_eq!(
        image.get("blob"),
        Some(&serde_dynamo::AttributeValue::B(b"foobar".to_vec()))
    );
    match image.get("payload") {
        Some(serde_dynamo::AttributeValue::M(m)) => {
            assert_eq!(
                m.get("title"),
                Some(&serde_dynamo::AttributeValue::S("Hello".into()))
            );
        }
        other => panic!("payload is a map, got {other:?}"),
    }
    assert!(r.change.old_image.inner().is_empty());

    // The same through the helper the mapping uses.
    let direct =
        local_aws::esm::dynamodb_event_record(&record, arn, "us-east-1").expect("converts");
    assert_eq!(&direct, r);
}

#[test]
fn sqs_message_json_deserializes_into_the_lambda_event() {
    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::{Message, MessageSystemAttributeName as A};
    let message = Message::builder()
        .message_id("059f36b4-87a3-44ab-83d2-661975830a7d")
        .receipt_handle("AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a")
        .body("{\"hello\":\"world\"}")
        .md5_of_body("e4e68fb7bd0e697a0ae8f1bb342846b3")
        .attributes(A::ApproximateReceiveCount, "2")
        .attributes(A::SentTimestamp, "1545082649183")
        .attributes(A::SenderId, "AIDAIENQZJOLO23YVJ4VO")
        .attributes(A::ApproximateFirstReceiveTimestamp, "1545082649185")
        .message_attributes(
            "eventType",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("UserRegistered")
                .build()
                .expect("attribute"),
        )
        .message_attributes(
            "raw",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(b"foo".to_vec()))
                .build()
                .expect("attribute"),
        )
        .build();
    let arn = "arn:aws:sqs:us-east-1:123456789012:users-projector";
    let json = local_aws::esm::sqs_message_json(&message, arn, "us-east-1");
    assert_eq!(json["eventSource"], "aws:sqs");
    assert_eq!(json["eventSourceARN"], arn);
    assert_eq!(json["awsRegion"], "us-east-1");
    assert_eq!(json["attributes"]["ApproximateReceiveCount"], "2");
    assert_eq!(
        json["messageAttributes"]["eventType"]["stringValue"],
        "UserRegistered"
    );
    assert_eq!(json["messageAttributes"]["eventType"]["dataType"], "String");
    assert_eq!(
        json["messageAttributes"]["eventType"]["stringListValues"],
        serde_json::json!([])
    );
    assert_eq!(json["messageAttributes"]["raw"]["binaryValue"], "Zm9v");

    let event: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": [json] }))
        .expect("deserializes into aws_lambda_events' SqsEvent");
    let m = &event.records[0];
    assert_eq!(
        m.message_id.as_deref(),
        Some("059f36b4-87a3-44ab-83d2-661975830a7d")
    );
    assert_eq!(
        m.receipt_handle.as_deref(),
        Some("AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a")
    );
    assert_eq!(m.body.as_deref(), Some("{\"hello\":\"world\"}"));
    assert_eq!(
        m.md5_of_body.as_deref(),
        Some("e4e68fb7bd0e697a0ae8f1bb342846b3")
    );
    assert_eq!(m.attributes["SentTimestamp"], "1545082649183");
    assert_eq!(m.attributes["SenderId"], "AIDAIENQZJOLO23YVJ4VO");
    assert_eq!(
        m.attributes["ApproximateFirstReceiveTimestamp"],
        "1545082649185"
    );
    assert_eq!(
        m.message_attributes["eventType"].string_value.as_deref(),
        Some("UserRegistered")
    );
    assert_eq!(
        m.message_attributes["raw"]
            .binary_value
            .as_ref()
            .map(|b| b.0.clone()),
        Some(b"foo".to_vec())
    );
    assert_eq!(m.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(m.event_source_arn.as_deref(), Some(arn));
}

// ---------------------------------------------------------------------------------------------
// Stream mapping
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_delivers_every_record_once_in_order_in_bounded_batches() {
    const N: usize = 250;
    let clients = clients().await;
    let (table, arn) = stream_table(&clients, "order").await;
    let put_started = Instant::now();
    put_items(&clients, &table, 0..N).await;
    let put_elapsed = put_started.elapsed();

    let checkpoints = Arc::new(MemoryCheckpoints::new());
    let seen = Seen::default();
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let mapping = fast_stream_mapping(&arn, checkpoints.clone());
    assert_eq!(mapping.batch_size, 100);
    let started = Instant::now();
    let running = Running::spawn({
        let (seen, events) = (seen.clone(), events.clone());
        let streams = clients.streams.clone();
        move |shutdown| {
            mapping.run(
                streams,
                move |event: Event| {
                    let (seen, events) = (seen.clone(), events.clone());
                    async move {
                        seen.record(&event);
                        events.lock().expect("lock").push(event);
                        Ok::<_, String>(DynamoDbEventResponse::default())
                    }
                },
                shutdown,
            )
        }
    });
    eventually("250 records", DEADLINE, || seen.pks().len() >= N).await;
    let elapsed = started.elapsed();
    let expected: Vec<String> = (0..N).map(item_key).collect();
    // Nothing more arrives, and the checkpoint reaches the last record.
    let last_seq = seen
        .batches()
        .last()
        .and_then(|b| b.last().cloned())
        .expect("a batch")
        .1;
    eventually("checkpoint at the last record", DEADLINE, || {
        checkpoints.snapshot().values().any(|s| *s == last_seq)
    })
    .await;
    let stop_took = running.stop().await;

    assert_eq!(seen.pks(), expected, "each record exactly once, in order");
    let sizes: Vec<usize> = seen.batches().iter().map(Vec::len).collect();
    assert!(
        sizes.iter().all(|&s| (1..=100).contains(&s)),
        "batch sizes {sizes:?}"
    );
    assert!(
        sizes.iter().any(|&s| s > 1),
        "records are batched: {sizes:?}"
    );
    let seqs: Vec<String> = seen
        .batches()
        .into_iter()
        .flatten()
        .map(|(_, s)| s)
        .collect();
    assert!(
        seqs.windows(2)
            .all(|w| (w[0].len(), &w[0]) < (w[1].len(), &w[1])),
        "sequence numbers increase"
    );
    assert_eq!(
        checkpoints.snapshot().len(),
        1,
        "DynamoDB Local has one shard"
    );

    // The events carry what Lambda's would.
    let events = events.lock().expect("lock");
    let first = &events[0].records[0];
    assert_eq!(first.event_name, "INSERT");
    assert_eq!(first.event_source.as_deref(), Some("aws:dynamodb"));
    assert_eq!(first.event_version.as_deref(), Some("1.1"));
    assert_eq!(first.event_source_arn.as_deref(), Some(arn.as_str()));
    assert_eq!(first.aws_region, local_aws::LOCAL_REGION);
    assert!(!first.event_id.is_empty());
    assert!(first.change.size_bytes > 0);
    assert!(first.change.approximate_creation_date_time.timestamp() > 1_600_000_000);
    assert_eq!(
        first.change.new_image.inner().get("n"),
        Some(&serde_dynamo::AttributeValue::N("0".into()))
    );
    assert_eq!(
        first.change.stream_view_type,
        Some(aws_lambda_events::event::dynamodb::StreamViewType::NewImage)
    );

    eprintln!(
        "stream figures: {N} puts in {put_elapsed:?}; {N} records through the mapping in {elapsed:?} \
         ({:.0} records/s) in batches {sizes:?}; stop took {stop_took:?}",
        N as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_latency_of_one_record() {
    let clients = clients().await;
    let (table, arn) = stream_table(&clients, "latency").await;
    let seen = Seen::default();
    let mapping = fast_stream_mapping(&arn, Arc::new(MemoryCheckpoints::new()));
    let poll_interval = mapping.poll_interval;
    let running = Running::spawn({
        let seen = seen.clone();
        let streams = clients.streams.clone();
        move |shutdown| {
            mapping.run(
                streams,
                move |event: Event| {
                    let seen = seen.clone();
                    async move {
                        seen.record(&event);
                        Ok::<_, String>(DynamoDbEventResponse::default())
                    }
                },
                shutdown,
            )
        }
    });
    let mut latencies = Vec::new();
    for i in 0..10 {
        let start = Instant::now();
        put_items(&clients, &table, i..i + 1).await;
        eventually("the record", DEADLINE, || seen.pks().len() > i).await;
        latencies.push(start.elapsed());
    }
    running.stop().await;
    assert_eq!(seen.pks(), (0..10).map(item_key).collect::<Vec<_>>());
    latencies.sort();
    eprintln!(
        "stream figures: put → handler latency (poll interval {poll_interval:?}): median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_partial_failure_retries_from_the_failed_record() {
    const N: usize = 30;
    const FAIL: usize = 10;
    let clients = clients().await;
    let (table, arn) = stream_table(&clients, "partial").await;
    put_items(&clients, &table, 0..N).await;

    let checkpoints = Arc::new(MemoryCheckpoints::new());
    let seen = Seen::default();
    let failed_once = Arc::new(Mutex::new(false));
    let mapping = fast_stream_mapping(&arn, checkpoints.clone());
    let running = Running::spawn({
        let (seen, failed_once) = (seen.clone(), failed_once.clone());
        let streams = clients.streams.clone();
        move |shutdown| {
            mapping.run(
                streams,
                move |event: Event| {
                    let (seen, failed_once) = (seen.clone(), failed_once.clone());
                    async move {
                        seen.record(&event);
                        let mut failed = failed_once.lock().expect("lock");
                        let target = event
                            .records
                            .iter()
                            .find(|r| pk_of(r) == item_key(FAIL))
                            .map(seq_of);
                        match target {
                            Some(seq) if !*failed => {
                                *failed = true;
                                Ok::<_, String>(failure_response(&[seq]))
                            }
                            _ => Ok(DynamoDbEventResponse::default()),
                        }
                    }
                },
                shutdown,
            )
        }
    });
    eventually("the retried batch", DEADLINE, || {
        seen.pks()
            .iter()
            .filter(|pk| **pk == item_key(N - 1))
            .count()
            == 2
    })
    .await;
    let last_seq = seen
        .batches()
        .last()
        .and_then(|b| b.last().cloned())
        .expect("a batch")
        .1;
    eventually("checkpoint at the last record", DEADLINE, || {
        checkpoints.snapshot().values().any(|s| *s == last_seq)
    })
    .await;
    running.stop().await;

    let batches = seen.batches();
    let pks: Vec<Vec<String>> = batches
        .iter()
        .map(|b| b.iter().map(|(pk, _)| pk.clone()).collect())
        .collect();
    assert_eq!(pks.len(), 2, "one batch, then its retry: {pks:?}");
    assert_eq!(pks[0], (0..N).map(item_key).collect::<Vec<_>>());
    assert_eq!(
        pks[1],
        (FAIL..N).map(item_key).collect::<Vec<_>>(),
        "the retry starts at the failed record and holds nothing before it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_poison_record_goes_to_on_failure_after_retries_and_the_rest_flows() {
    const N: usize = 40;
    const POISON: usize = 17;
    let clients = clients().await;
    let (table, arn) = stream_table(&clients, "poison").await;
    put_items(&clients, &table, 0..N).await;

    let checkpoints = Arc::new(MemoryCheckpoints::new());
    let destination = Arc::new(MemoryOnFailure::new());
    let seen = Seen::default();
    let processed: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut mapping = fast_stream_mapping(&arn, checkpoints.clone());
    mapping.on_failure = destination.clone();
    assert_eq!(
        (mapping.max_retry_attempts, mapping.bisect_on_error),
        (5, true)
    );
    let running = Running::spawn({
        let (seen, processed) = (seen.clone(), processed.clone());
        let streams = clients.streams.clone();
        move |shutdown| {
            mapping.run(
                streams,
                move |event: Event| {
                    let (seen, processed) = (seen.clone(), processed.clone());
                    async move {
                        seen.record(&event);
                        if event.records.iter().any(|r| pk_of(r) == item_key(POISON)) {
                            return Err(format!("cannot handle {}", item_key(POISON)));
                        }
                        processed
                            .lock()
                            .expect("lock")
                            .extend(event.records.iter().map(pk_of));
                        Ok(DynamoDbEventResponse::default())
                    }
                },
                shutdown,
            )
        }
    });
    eventually("every other record processed", DEADLINE, || {
        processed.lock().expect("lock").len() >= N - 1
    })
    .await;
    let last_seq = seen
        .batches()
        .last()
        .and_then(|b| b.last().cloned())
        .expect("a batch")
        .1;
    eventually("checkpoint at the last record", DEADLINE, || {
        checkpoints.snapshot().values().any(|s| *s == last_seq)
    })
    .await;
    running.stop().await;

    let mut processed = processed.lock().expect("lock").clone();
    let expected: Vec<String> = (0..N).filter(|&i| i != POISON).map(item_key).collect();
    assert_eq!(processed, expected, "the rest, each once, in order");
    processed.dedup();

    let failures = destination.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure = &failures[0];
    assert_eq!(failure.condition, RETRY_ATTEMPTS_EXHAUSTED);
    assert_eq!(failure.batch_size, 1);
    assert_eq!(failure.stream_arn, arn);
    assert!(
        failure.last_error.contains("cannot handle"),
        "{}",
        failure.last_error
    );
    let failed_pk = failure.records[0]
        .dynamodb()
        .and_then(|d| d.keys())
        .and_then(|k| k.get("pk"))
        .and_then(|v| v.as_s().ok())
        .cloned();
    assert_eq!(failed_pk, Some(item_key(POISON)));
    assert_eq!(failure.start_sequence_number, failure.end_sequence_number);

    // Bisection isolated it, then it was tried alone 1 + max_retry_attempts times.
    let alone = seen
        .batches()
        .iter()
        .filter(|b| b.len() == 1 && b[0].0 == item_key(POISON))
        .count();
    assert_eq!(
        alone,
        6,
        "batches: {:?}",
        seen.batches().iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(failure.approximate_invoke_count >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_without_bisection_gives_up_on_the_whole_failing_batch() {
    let clients = clients().await;
    let (table, arn) = stream_table(&clients, "nobisect").await;
    put_items(&clients, &table, 0..12).await;

    let destination = Arc::new(MemoryOnFailure::new());
    let seen = Seen::default();
    let mut mapping = fast_stream_mapping(&arn, Arc::new(MemoryCheckpoints::new()));
    mapping.on_failure = destination.clone();
    mapping.bisect_on_error = false;
    mapping.max_retry_attempts = 2;
    mapping.batch_size = 5;
    let running = Running::spawn({
        let seen = seen.clone();
        let streams = clients.streams.clone();
        move |shutdown| {
            mapping.run(
                streams,
                move |event: Event| {
                    let seen = seen.clone();
                    async move {
                        seen.record(&event);
                        if event.records.iter().any(|r| pk_of(r) == item_key(6)) {
                            panic!("the handler crashes on item-0006");
                        }
                        Ok::<_, String>(DynamoDbEventResponse::default())
                    }
                },
                shutdown,
            )
        }
    });
    eventually("the last record", DEADLINE, || {
        seen.pks().contains(&item_key(11))
    })
    .await;
    running.stop().await;

    let sizes: Vec<Vec<String>> = seen
        .batches()
        .iter()
        .map(|b| b.iter().map(|(pk, _)| pk.clone()).collect())
        .collect();
    let second: Vec<String> = (5..10).map(item_key).collect();
    assert_eq!(
        sizes,
        vec![
            (0..5).map(item_key).collect::<Vec<_>>(),
            second.clone(),
            second.clone(),
            second.clone(),
            (10..12).map(item_key).collect::<Vec<_>>(),
        ],
        "a failing batch is retried whole, max_retry_attempts times"
    );
    let failures = destination.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].batch_size, 5);
    assert_eq!(failures[0].approximate_invoke_count, 3);
    assert!(
        failures[0].last_error.contains("panicked"),
        "{}",
        failures[0].last_error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_restart_resumes_after_the_dynamodb_checkpoint() {
    let prefix = testkit::unique_prefix("esmckpt");
    let (clients, provisioned) = testkit::provisioned(&prefix).await;
    let checkpoint_table = provisioned.names().table(&schema::checkpoints::TABLE);
    let (table, arn) = stream_table(&clients, "restart").await;
    let mapping = || {
        let mut mapping = fast_stream_mapping(
            &arn,
            Arc::new(DynamoCheckpoints::new(
                clients.dynamodb.clone(),
                checkpoint_table.clone(),
                "esm-test#",
            )),
        );
        mapping.batch_size = 10;
        mapping
    };
    put_items(&clients, &table, 0..50).await;

    // First run: shutdown arrives while the third batch is in the handler.
    let first = Seen::default();
    let entered = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut running = Running::spawn({
        let (seen, entered, gate) = (first.clone(), entered.clone(), gate.clone());
        let mapping = mapping();
        let streams = clients.streams.clone();
        move |shutdown| {
            mapping.run(
                streams,
                move |event: Event| {
                    let (seen, entered, gate) = (seen.clone(), entered.clone(), gate.clone());
                    async move {
                        seen.record(&event);
                        if seen.batches().len() == 3 {
                            entered.notify_one();
                            gate.acquire().await.map_err(|e| e.to_string())?.forget();
                        }
                        Ok::<_, String>(DynamoDbEventResponse::default())
                    }
                },
                shutdown,
            )
        }
    });
    tokio::time::timeout(DEADLINE, entered.notified())
        .await
        .expect("the third batch reaches the handler");
    running.request_stop();
    gate.add_permits(1);
    let stop_took = running.stop().await;
    assert_eq!(
        first.pks(),
        (0..30).map(item_key).collect::<Vec<_>>(),
        "the batch in flight at shutdown finished, nothing after it started"
    );
    let last_seq = first
        .batches()
        .last()
        .and_then(|b| b.last().cloned())
        .expect("a batch")
        .1;

    // The checkpoint item is where the brief says, at the last record of that batch.
    let shard_id = clients
        .streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("DescribeStream")
        .stream_description()
        .and_then(|d| {
            d.shards()
                .first()
                .and_then(|s| s.shard_id().map(str::to_owned))
        })
        .expect("a shard");
    let item = clients
        .dynamodb
        .get_item()
        .table_name(&checkpoint_table)
        .key("pk", AttributeValue::S(format!("esm-test#{shard_id}")))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the checkpoint item exists");
    assert_eq!(
        item.get(SEQUENCE_NUMBER_ATTRIBUTE)
            .and_then(|v| v.as_s().ok()),
        Some(&last_seq)
    );

    // Second run, with a new store instance: resumes right after the checkpoint.
    put_items(&clients, &table, 50..60).await;
    let second = Seen::default();
    let running = Running::spawn({
        let seen = second.clone();
        let mapping = mapping();
        let streams = clients.streams.clone();
        move |shutdown| {
            mapping.run(
                streams,
                move |event: Event| {
                    let seen = seen.clone();
                    async move {
                        seen.record(&event);
                        Ok::<_, String>(DynamoDbEventResponse::default())
                    }
                },
                shutdown,
            )
        }
    });
    // Reprocessed records would come first (records of a shard are delivered in order).
    eventually("the remaining 30", DEADLINE, || second.pks().len() >= 30).await;
    running.stop().await;
    assert_eq!(
        second.pks(),
        (30..60).map(item_key).collect::<Vec<_>>(),
        "resumes after the checkpoint, nothing reprocessed, nothing skipped"
    );
    eprintln!("stream figures: stop with a batch in flight took {stop_took:?} after release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_rejected_checkpoint_falls_back_to_trim_horizon() {
    let clients = clients().await;
    let (table, arn) = stream_table(&clients, "rejected").await;
    put_items(&clients, &table, 0..5).await;
    let shard_id = clients
        .streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("DescribeStream")
        .stream_description()
        .and_then(|d| {
            d.shards()
                .first()
                .and_then(|s| s.shard_id().map(str::to_owned))
        })
        .expect("a shard");
    let checkpoints = Arc::new(MemoryCheckpoints::new());
    // Not a sequence number this stream accepts (ValidationException).
    checkpoints.save(&shard_id, "garbage").await.expect("saves");
    let seen = Seen::default();
    let mapping = fast_stream_mapping(&arn, checkpoints.clone());
    let running = Running::spawn({
        let seen = seen.clone();
        let streams = clients.streams.clone();
        move |shutdown| {
            mapping.run(
                streams,
                move |event: Event| {
                    let seen = seen.clone();
                    async move {
                        seen.record(&event);
                        Ok::<_, String>(DynamoDbEventResponse::default())
                    }
                },
                shutdown,
            )
        }
    });
    eventually("all 5 from TRIM_HORIZON", DEADLINE, || {
        seen.pks().len() >= 5
    })
    .await;
    running.stop().await;
    assert_eq!(seen.pks(), (0..5).map(item_key).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Shard lineage, against a loopback stub of the DynamoDB Streams API (DynamoDB Local never
// splits or closes a shard)
// ---------------------------------------------------------------------------------------------

/// One shard of the stub: its parent, its records' sequence numbers, whether it is closed.
struct StubShard {
    id: &'static str,
    parent: Option<&'static str>,
    sequence_numbers: Vec<u64>,
    closed: bool,
}

/// A DynamoDB Streams stub on loopback: DescribeStream (one shard per page),
/// GetShardIterator (TRIM_HORIZON / AFTER_SEQUENCE_NUMBER), GetRecords; the first GetRecords
/// of `expire_once` fails with ExpiredIteratorException.
struct StreamsStub {
    shards: Vec<StubShard>,
    expire_once: Mutex<Option<&'static str>>,
    calls: Mutex<Vec<String>>,
}

fn seq_string(n: u64) -> String {
    format!("{n:021}")
}

impl StreamsStub {
    fn shard(&self, id: &str) -> Option<&StubShard> {
        self.shards.iter().find(|s| s.id == id)
    }

    fn respond(&self, target: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        use serde_json::json;
        self.calls.lock().expect("lock").push(target.to_owned());
        match target {
            "DescribeStream" => {
                let start = body["ExclusiveStartShardId"].as_str();
                let index = start
                    .and_then(|id| self.shards.iter().position(|s| s.id == id))
                    .map_or(0, |i| i + 1);
                let page: Vec<serde_json::Value> = self
                    .shards
                    .get(index)
                    .map(|s| {
                        let mut range =
                            json!({ "StartingSequenceNumber": seq_string(s.sequence_numbers[0]) });
                        if s.closed {
                            range["EndingSequenceNumber"] =
                                json!(seq_string(*s.sequence_numbers.last().expect("records")));
                        }
                        let mut shard = json!({ "ShardId": s.id, "SequenceNumberRange": range });
                        if let Some(parent) = s.parent {
                            shard["ParentShardId"] = json!(parent);
                        }
                        shard
                    })
                    .into_iter()
                    .collect();
                let mut description = json!({
                    "StreamArn": body["StreamArn"],
                    "StreamStatus": "ENABLED",
                    "StreamViewType": "NEW_IMAGE",
                    "Shards": page,
                });
                if index + 1 < self.shards.len() {
                    description["LastEvaluatedShardId"] = json!(self.shards[index].id);
                }
                (200, json!({ "StreamDescription": description }))
            }
            "GetShardIterator" => {
                let id = body["ShardId"].as_str().unwrap_or_default();
                let Some(shard) = self.shard(id) else {
                    return (
                        400,
                        json!({ "__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "message": "Shard does not exist" }),
                    );
                };
                let position = match body["ShardIteratorType"].as_str() {
                    Some("AFTER_SEQUENCE_NUMBER") => {
                        let after: u64 = body["SequenceNumber"]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        shard
                            .sequence_numbers
                            .iter()
                            .take_while(|&&n| n <= after)
                            .count()
                    }
                    _ => 0,
                };
                (200, json!({ "ShardIterator": format!("{id}|{position}") }))
            }
            "GetRecords" => {
                let iterator = body["ShardIterator"].as_str().unwrap_or_default();
                let (id, position) = iterator.split_once('|').unwrap_or_default();
                let position: usize = position.parse().unwrap_or(0);
                let mut expire = self.expire_once.lock().expect("lock");
                if *expire == Some(id) {
                    *expire = None;
                    return (
                        400,
                        json!({ "__type": "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException", "message": "Iterator expired" }),
                    );
                }
                let Some(shard) = self.shard(id) else {
                    return (
                        400,
                        json!({ "__type": "com.amazon.coral.validate#ValidationException", "message": "Invalid ShardIterator" }),
                    );
                };
                let limit = body["Limit"].as_u64().unwrap_or(1000) as usize;
                let end = (position + limit).min(shard.sequence_numbers.len());
                let records: Vec<serde_json::Value> = shard.sequence_numbers[position..end]
                    .iter()
                    .map(|&n| {
                        json!({
                            "eventID": format!("event-{n}"),
                            "eventName": "INSERT",
                            "eventVersion": "1.1",
                            "eventSource": "aws:dynamodb",
                            "awsRegion": "us-east-1",
                            "dynamodb": {
                                "ApproximateCreationDateTime": 1.7e9,
                                "Keys": { "pk": { "S": format!("{id}/{n}") } },
                                "NewImage": { "pk": { "S": format!("{id}/{n}") } },
                                "SequenceNumber": seq_string(n),
                                "SizeBytes": 20,
                                "StreamViewType": "NEW_IMAGE"
                            }
                        })
                    })
                    .collect();
                let mut out = json!({ "Records": records });
                if !(shard.closed && end == shard.sequence_numbers.len()) {
                    out["NextShardIterator"] = json!(format!("{id}|{end}"));
                }
                (200, out)
            }
            other => (
                400,
                json!({ "__type": "UnknownOperationException", "message": other }),
            ),
        }
    }

    /// Serves the stub on a loopback port; returns its endpoint.
    async fn serve(self: Arc<Self>) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let stub = self.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut reader = BufReader::new(read);
                    loop {
                        let (mut target, mut length) = (String::new(), 0usize);
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let header = line.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':') {
                                match name.trim().to_ascii_lowercase().as_str() {
                                    "x-amz-target" => {
                                        target = value
                                            .trim()
                                            .rsplit('.')
                                            .next()
                                            .unwrap_or_default()
                                            .to_owned();
                                    }
                                    "content-length" => length = value.trim().parse().unwrap_or(0),
                                    _ => {}
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let request: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let (status, response) = stub.respond(&target, &request);
                        let text = response.to_string();
                        let head = format!(
                            "HTTP/1.1 {status} {}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n",
                            if status == 200 { "OK" } else { "Bad Request" },
                            text.len()
                        );
                        if write.write_all(head.as_bytes()).await.is_err()
                            || write.write_all(text.as_bytes()).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        endpoint
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reads_children_only_after_their_closed_parent() {
    use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
    // Listed children first, one shard per DescribeStream page: order must come from lineage.
    let stub = Arc::new(StreamsStub {
        shards: vec![
            StubShard {
                id: "shardId-c1",
                parent: Some("shardId-p"),
                sequence_numbers: (200..207).collect(),
                closed: false,
            },
            StubShard {
                id: "shardId-c2",
                parent: Some("shardId-p"),
                sequence_numbers: (300..304).collect(),
                closed: false,
            },
            StubShard {
                id: "shardId-g",
                parent: Some("shardId-gp"),
                sequence_numbers: (50..53).collect(),
                closed: true,
            },
            StubShard {
                id: "shardId-p",
                parent: Some("shardId-g"),
                sequence_numbers: (100..112).collect(),
                closed: true,
            },
        ],
        expire_once: Mutex::new(Some("shardId-c1")),
        calls: Mutex::default(),
    });
    let endpoint = stub.clone().serve().await;
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("stub", "stub", None, None, "stub"))
        .endpoint_url(endpoint)
        .build();
    let client = aws_sdk_dynamodbstreams::Client::from_conf(config);

    let checkpoints = Arc::new(MemoryCheckpoints::new());
    // The first records of c1 were done in an earlier run.
    checkpoints
        .save("shardId-c1", &seq_string(201))
        .await
        .expect("saves");
    let seen = Seen::default();
    let mut mapping = fast_stream_mapping(
        "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000",
        checkpoints.clone(),
    );
    mapping.batch_size = 5;
    let running = Running::spawn({
        let seen = seen.clone();
        move |shutdown| {
            mapping.run(
                client,
                move |event: Event| {
                    let seen = seen.clone();
                    async move {
                        seen.record(&event);
                        Ok::<_, String>(DynamoDbEventResponse::default())
                    }
                },
                shutdown,
            )
        }
    });
    let total = 3 + 12 + 5 + 4;
    eventually("every record of every shard", DEADLINE, || {
        seen.pks().len() >= total
    })
    .await;
    eventually("checkpoints of every shard", DEADLINE, || {
        let saved = checkpoints.snapshot();
        saved.get("shardId-c1") == Some(&seq_string(206))
            && saved.get("shardId-c2") == Some(&seq_string(303))
    })
    .await;
    running.stop().await;

    let pks = seen.pks();
    assert_eq!(pks.len(), total, "each record once: {pks:?}");
    let position = |pk: &str| {
        pks.iter()
            .position(|p| p == pk)
            .unwrap_or_else(|| panic!("{pk} delivered"))
    };
    let of_shard = |shard: &str| -> Vec<String> {
        pks.iter()
            .filter(|p| p.starts_with(&format!("{shard}/")))
            .cloned()
            .collect()
    };
    assert_eq!(
        of_shard("shardId-g"),
        (50..53)
            .map(|n| format!("shardId-g/{n}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        of_shard("shardId-p"),
        (100..112)
            .map(|n| format!("shardId-p/{n}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        of_shard("shardId-c1"),
        (202..207)
            .map(|n| format!("shardId-c1/{n}"))
            .collect::<Vec<_>>(),
        "c1 resumes after its checkpoint, and an expired iterator loses nothing"
    );
    assert_eq!(
        of_shard("shardId-c2"),
        (300..304)
            .map(|n| format!("shardId-c2/{n}"))
            .collect::<Vec<_>>()
    );
    assert!(
        position("shardId-g/52") < position("shardId-p/100"),
        "parent after grandparent"
    );
    assert!(
        position("shardId-p/111") < position("shardId-c1/202"),
        "children after parent"
    );
    assert!(
        position("shardId-p/111") < position("shardId-c2/300"),
        "children after parent"
    );
    assert!(seen.batches().iter().all(|b| b.len() <= 5));
    let saved = checkpoints.snapshot();
    assert_eq!(saved.get("shardId-g"), Some(&seq_string(52)));
    assert_eq!(saved.get("shardId-p"), Some(&seq_string(111)));
    assert_eq!(
        *stub.expire_once.lock().expect("lock"),
        None,
        "the expired iterator was served"
    );
    let calls = stub.calls.lock().expect("lock");
    assert!(
        calls.iter().filter(|c| *c == "DescribeStream").count() >= 4,
        "paged: {calls:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Queue mapping
// ---------------------------------------------------------------------------------------------

/// A queue (and, with `max_receive_count`, its DLQ); returns (url, arn, dlq url).
async fn queue(
    clients: &Clients,
    tag: &str,
    max_receive_count: Option<u32>,
) -> (String, String, Option<String>) {
    let prefix = testkit::unique_prefix(tag);
    let mut create = clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}queue"))
        .attributes(QueueAttributeName::VisibilityTimeout, "30");
    let mut dlq_url = None;
    if let Some(max) = max_receive_count {
        let dlq = clients
            .sqs
            .create_queue()
            .queue_name(format!("{prefix}dlq"))
            .send()
            .await
            .expect("CreateQueue (DLQ)")
            .queue_url
            .expect("DLQ url");
        let dlq_arn = queue_arn(clients, &dlq).await;
        create = create.attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max })
                .to_string(),
        );
        dlq_url = Some(dlq);
    }
    let url = create
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("queue url");
    let arn = queue_arn(clients, &url).await;
    (url, arn, dlq_url)
}

async fn queue_arn(clients: &Clients, url: &str) -> String {
    clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("QueueArn")
}

/// Polls the queue depth until it is `expected` (deadline [`DEADLINE`]).
async fn wait_depth(clients: &Clients, url: &str, expected: usize, what: &str) {
    let start = Instant::now();
    loop {
        let depth = queue_depth(clients, url).await;
        if depth == expected {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what} (depth {depth}, want {expected})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Visible + in flight + delayed messages of a queue.
async fn queue_depth(clients: &Clients, url: &str) -> usize {
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default();
    attributes
        .values()
        .map(|v| v.parse::<usize>().unwrap_or(0))
        .sum()
}

async fn send_bodies(clients: &Clients, url: &str, bodies: &[String]) {
    for chunk in bodies.chunks(10) {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .message_attributes(
                        "eventType",
                        MessageAttributeValue::builder()
                            .data_type("String")
                            .string_value("TestHappened")
                            .build()
                            .expect("attribute"),
                    )
                    .build()
                    .expect("entry")
            })
            .collect();
        let output = clients
            .sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("SendMessageBatch");
        assert!(output.failed().is_empty(), "{:?}", output.failed());
    }
}

/// Every message a queue handler saw, by batch.
#[derive(Default, Clone)]
struct SeenMessages(Arc<Mutex<Vec<Vec<SqsMessage>>>>);

impl SeenMessages {
    fn record(&self, event: &SqsEvent) {
        self.0.lock().expect("lock").push(event.records.clone());
    }
    fn all(&self) -> Vec<SqsMessage> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .flatten()
            .cloned()
            .collect()
    }
    fn batch_sizes(&self) -> Vec<usize> {
        self.0.lock().expect("lock").iter().map(Vec::len).collect()
    }
    fn bodies(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for m in self.all() {
            *counts
                .entry(m.body.clone().unwrap_or_default())
                .or_insert(0) += 1;
        }
        counts
    }
}

fn body_of(m: &SqsMessage) -> &str {
    m.body.as_deref().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delivers_and_deletes_every_message() {
    let clients = clients().await;
    let (url, arn, _) = queue(&clients, "all", None).await;
    let bodies: Vec<String> = (0..25).map(|i| format!("message-{i:02}")).collect();
    send_bodies(&clients, &url, &bodies).await;

    let seen = SeenMessages::default();
    let mapping = QueueMapping::new(&url, &arn);
    assert_eq!(
        (mapping.batch_size, mapping.wait_time),
        (10, Duration::from_secs(1))
    );
    let started = Instant::now();
    let running = Running::spawn({
        let seen = seen.clone();
        let sqs = clients.sqs.clone();
        move |shutdown| {
            mapping.run(
                sqs,
                move |event: SqsEvent| {
                    let seen = seen.clone();
                    async move {
                        seen.record(&event);
                        Ok::<_, String>(SqsBatchResponse::default())
                    }
                },
                shutdown,
            )
        }
    });
    eventually("25 messages", DEADLINE, || seen.all().len() >= 25).await;
    let drain = started.elapsed();
    wait_depth(&clients, &url, 0, "an empty queue").await;

    // One more, to measure send → handler latency on an idle (long-polling) mapping.
    let mut latencies = Vec::new();
    for i in 0..5 {
        let sent = Instant::now();
        send_bodies(&clients, &url, &[format!("latency-{i}")]).await;
        eventually("the latency probe", DEADLINE, || seen.all().len() > 25 + i).await;
        latencies.push(sent.elapsed());
    }
    wait_depth(&clients, &url, 0, "an empty queue").await;
    let stop_took = running.stop().await;

    let counts = seen.bodies();
    for body in &bodies {
        assert_eq!(
            counts.get(body),
            Some(&1),
            "{body} delivered once: {counts:?}"
        );
    }
    assert!(
        seen.batch_sizes().iter().all(|&s| (1..=10).contains(&s)),
        "{:?}",
        seen.batch_sizes()
    );
    let m = &seen.all()[0];
    assert_eq!(m.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(m.event_source_arn.as_deref(), Some(arn.as_str()));
    assert_eq!(m.aws_region.as_deref(), Some(local_aws::LOCAL_REGION));
    assert!(m.message_id.is_some() && m.receipt_handle.is_some() && m.md5_of_body.is_some());
    assert_eq!(
        m.attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str),
        Some("1")
    );
    for attribute in [
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    ] {
        assert!(
            m.attributes.contains_key(attribute),
            "{attribute} in {:?}",
            m.attributes
        );
    }
    assert_eq!(
        m.message_attributes
            .get("eventType")
            .and_then(|a| a.string_value.as_deref()),
        Some("TestHappened")
    );
    latencies.sort();
    eprintln!(
        "queue figures: 25 messages drained in {drain:?} in batches {:?}; send → handler latency \
         median {:?}, max {:?}; stop took {stop_took:?}",
        seen.batch_sizes(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_partial_failure_redelivers_only_the_failed_message() {
    let clients = clients().await;
    let (url, arn, _) = queue(&clients, "partial", None).await;
    let bodies: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    send_bodies(&clients, &url, &bodies).await;

    let seen = SeenMessages::default();
    let mut mapping = QueueMapping::new(&url, &arn);
    mapping.retry_delay = Some(Duration::ZERO);
    let running = Running::spawn({
        let seen = seen.clone();
        let sqs = clients.sqs.clone();
        move |shutdown| {
            mapping.run(
                sqs,
                move |event: SqsEvent| {
                    let seen = seen.clone();
                    async move {
                        seen.record(&event);
                        let mut response = SqsBatchResponse::default();
                        for m in &event.records {
                            let first_time = m.attributes.get("ApproximateReceiveCount")
                                == Some(&"1".to_owned());
                            if body_of(m) == "m2" && first_time {
                                response.add_failure(m.message_id.clone().unwrap_or_default());
                            }
                        }
                        Ok::<_, String>(response)
                    }
                },
                shutdown,
            )
        }
    });
    eventually("m2 again", DEADLINE, || seen.bodies().get("m2") == Some(&2)).await;
    wait_depth(&clients, &url, 0, "an empty queue").await;
    running.stop().await;

    let counts = seen.bodies();
    assert_eq!(
        counts,
        bodies
            .iter()
            .map(|b| (b.clone(), if b == "m2" { 2 } else { 1 }))
            .collect::<BTreeMap<_, _>>()
    );
    let m2: Vec<SqsMessage> = seen
        .all()
        .into_iter()
        .filter(|m| body_of(m) == "m2")
        .collect();
    assert_eq!(m2[0].message_id, m2[1].message_id);
    assert_eq!(m2[1].attributes["ApproximateReceiveCount"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_poison_message_goes_to_the_dlq_and_the_rest_is_deleted() {
    let clients = clients().await;
    let (url, arn, dlq) = queue(&clients, "poison", Some(3)).await;
    let dlq = dlq.expect("a DLQ");
    let bodies: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    send_bodies(&clients, &url, &bodies).await;

    let seen = SeenMessages::default();
    let mut mapping = QueueMapping::new(&url, &arn);
    mapping.retry_delay = Some(Duration::ZERO);
    let running = Running::spawn({
        let seen = seen.clone();
        let sqs = clients.sqs.clone();
        move |shutdown| {
            mapping.run(
                sqs,
                move |event: SqsEvent| {
                    let seen = seen.clone();
                    async move {
                        seen.record(&event);
                        let mut response = SqsBatchResponse::default();
                        for m in event.records.iter().filter(|m| body_of(m) == "m3") {
                            response.add_failure(m.message_id.clone().unwrap_or_default());
                        }
                        Ok::<_, String>(response)
                    }
                },
                shutdown,
            )
        }
    });
    let started = Instant::now();
    wait_depth(&clients, &dlq, 1, "the poison message in the DLQ").await;
    let to_dlq = started.elapsed();
    wait_depth(&clients, &url, 0, "an empty queue").await;
    running.stop().await;

    let counts = seen.bodies();
    for body in bodies.iter().filter(|b| *b != "m3") {
        assert_eq!(
            counts.get(body),
            Some(&1),
            "{body} deleted after one delivery: {counts:?}"
        );
    }
    assert_eq!(
        counts.get("m3"),
        Some(&3),
        "maxReceiveCount deliveries: {counts:?}"
    );
    let receive_counts: Vec<String> = seen
        .all()
        .iter()
        .filter(|m| body_of(m) == "m3")
        .map(|m| m.attributes["ApproximateReceiveCount"].clone())
        .collect();
    assert_eq!(receive_counts, ["1", "2", "3"]);

    let in_dlq = clients
        .sqs
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("ReceiveMessage (DLQ)")
        .messages
        .unwrap_or_default();
    assert_eq!(
        in_dlq
            .iter()
            .map(|m| m.body().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["m3"]
    );
    eprintln!(
        "queue figures: poison message in the DLQ after {to_dlq:?} (3 receives, retry_delay 0)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_handler_error_deletes_nothing() {
    let clients = clients().await;
    let (url, arn, _) = queue(&clients, "error", None).await;
    let bodies: Vec<String> = (0..3).map(|i| format!("m{i}")).collect();
    send_bodies(&clients, &url, &bodies).await;

    let seen = SeenMessages::default();
    let mut mapping = QueueMapping::new(&url, &arn);
    mapping.retry_delay = Some(Duration::ZERO);
    let running = Running::spawn({
        let seen = seen.clone();
        let sqs = clients.sqs.clone();
        move |shutdown| {
            mapping.run(
                sqs,
                move |event: SqsEvent| {
                    let seen = seen.clone();
                    async move {
                        seen.record(&event);
                        // Fail every message's first delivery with a function error.
                        if event
                            .records
                            .iter()
                            .any(|m| m.attributes["ApproximateReceiveCount"] == "1")
                        {
                            return Err("function error".to_owned());
                        }
                        Ok(SqsBatchResponse::default())
                    }
                },
                shutdown,
            )
        }
    });
    eventually("every message twice", DEADLINE, || {
        let counts = seen.bodies();
        bodies.iter().all(|b| counts.get(b) == Some(&2))
    })
    .await;
    wait_depth(&clients, &url, 0, "an empty queue").await;
    running.stop().await;
    assert!(
        seen.bodies().values().all(|&c| c == 2),
        "{:?}",
        seen.bodies()
    );
}
