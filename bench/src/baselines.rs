//! Baselines (section 1): raw DynamoDB Local `GetItem`, `PutItem`, `Query`, `BatchWriteItem`
//! and the SNS → SQS round trip, with the same SDK clients the services use.
//!
//! Everything runs on resources of its own (a fresh prefix: one table, one topic, one queue),
//! deleted at the end. Items are about the size of a real article item (~1 KB); a `Query`
//! reads a partition of 10 items of ~300 bytes, like a page of comments.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_sqs::types::QueueAttributeName;
use local_aws::{Clients, LocalEndpoints};
use schema::{AttrType, BillingMode, KeyAttr, KeySchema, TableDef};

use crate::report::{Baselines, RawOp};
use crate::stats::{per_second, Latency};
use crate::Scale;
use events::views::s;

/// The raw table: a string partition key and sort key.
const RAW_TABLE: TableDef = TableDef {
    name: "raw",
    key: KeySchema {
        hash: KeyAttr {
            name: "pk",
            ty: AttrType::S,
        },
        range: Some(KeyAttr {
            name: "sk",
            ty: AttrType::S,
        }),
    },
    gsis: &[],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// Items a `Query` partition holds, and how many such partitions there are.
const QUERY_PAGE: usize = 10;
const QUERY_PARTITIONS: usize = 20;
/// Items per `BatchWriteItem`: DynamoDB's limit.
const BATCH: usize = 25;
/// Keys written by `PutItem` and `BatchWriteItem` cycle over this many slots, so that the
/// in-memory emulator does not grow with the number of samples.
const WRITE_SLOTS: usize = 1_000;
/// Bound on one SNS → SQS round trip.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(60);

/// The raw DynamoDB operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    GetItem,
    PutItem,
    Query,
    BatchWriteItem,
}

impl Op {
    const ALL: [Op; 4] = [Op::GetItem, Op::PutItem, Op::Query, Op::BatchWriteItem];

    fn name(self) -> &'static str {
        match self {
            Op::GetItem => "GetItem",
            Op::PutItem => "PutItem",
            Op::Query => "Query",
            Op::BatchWriteItem => "BatchWriteItem",
        }
    }

    /// Items one request carries.
    fn items(self) -> usize {
        match self {
            Op::BatchWriteItem => BATCH,
            _ => 1,
        }
    }
}

/// What the workers share.
struct Target {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Articles `GetItem` reads (keys `article#0..articles`).
    articles: usize,
}

/// Measures every baseline; see the module docs.
pub async fn measure(endpoints: &LocalEndpoints, scale: &Scale) -> anyhow::Result<Baselines> {
    let clients = Clients::local(endpoints).await;
    let prefix = local_aws::testkit::unique_prefix("benchraw");
    let table = format!("{prefix}{}", RAW_TABLE.name);
    common::tables::ensure(&clients.dynamodb, &table, &RAW_TABLE)
        .await
        .with_context(|| format!("creating the table {table}"))?;
    let dynamodb = measure_dynamodb(&clients, &table, scale).await;
    let deleted = common::tables::delete(&clients.dynamodb, &table).await;
    let dynamodb = dynamodb?;
    deleted.with_context(|| format!("deleting the table {table}"))?;

    let sns_to_sqs = measure_sns_to_sqs(&clients, &prefix, round_trips(scale)).await?;
    Ok(Baselines {
        dynamodb,
        sns_to_sqs: vec![sns_to_sqs],
    })
}

/// SNS → SQS round trips: a tenth of the DynamoDB samples, at least 5.
fn round_trips(scale: &Scale) -> usize {
    (scale.baseline_samples / 10).max(5)
}

async fn measure_dynamodb(
    clients: &Clients,
    table: &str,
    scale: &Scale,
) -> anyhow::Result<Vec<RawOp>> {
    let target = Arc::new(Target {
        client: clients.dynamodb.clone(),
        table: table.to_owned(),
        articles: scale.baseline_samples.clamp(BATCH, WRITE_SLOTS),
    });
    preload(&target).await.context("loading the raw table")?;
    let mut out = Vec::new();
    for op in Op::ALL {
        for &concurrency in &scale.baseline_concurrencies {
            let raw = run_op(&target, op, concurrency.max(1), scale.baseline_samples)
                .await
                .with_context(|| format!("{} at concurrency {concurrency}", op.name()))?;
            eprintln!(
                "bench:   {} c={}: p50 {:.2} ms, p99 {:.2} ms, {:.0} {}/s",
                raw.op,
                raw.concurrency,
                raw.latency.p50_ms,
                raw.latency.p99_ms,
                raw.per_second,
                raw.unit
            );
            out.push(raw);
        }
    }
    Ok(out)
}

/// `samples` requests of `op`, split across `concurrency` workers (each sends its share one
/// after the other).
async fn run_op(
    target: &Arc<Target>,
    op: Op,
    concurrency: usize,
    samples: usize,
) -> anyhow::Result<RawOp> {
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let target = Arc::clone(target);
        workers.spawn(async move {
            let mut latencies = Vec::new();
            // Requests worker, worker + concurrency, ...: every index below `samples` once.
            for request in (worker..samples).step_by(concurrency) {
                latencies.push(once(&target, op, request).await?);
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(samples);
    while let Some(joined) = workers.join_next().await {
        latencies.extend(joined.context("a worker panicked")??);
    }
    let wall = started.elapsed();
    Ok(RawOp {
        op: op.name().to_owned(),
        concurrency,
        latency: Latency::of(&latencies),
        per_second: per_second(latencies.len() * op.items(), wall),
        unit: if op.items() > 1 { "items" } else { "requests" }.to_owned(),
        samples: latencies,
    })
}

/// Sends request number `request` of `op`; its latency.
async fn once(target: &Target, op: Op, request: usize) -> anyhow::Result<Duration> {
    let client = &target.client;
    let table = target.table.as_str();
    match op {
        Op::GetItem => {
            let key = article_key(request % target.articles);
            let started = Instant::now();
            let out = client
                .get_item()
                .table_name(table)
                .set_key(Some(key))
                .send()
                .await
                .context("GetItem")?;
            let took = started.elapsed();
            if out.item.is_none() {
                bail!(
                    "GetItem found no item for article {}",
                    request % target.articles
                );
            }
            Ok(took)
        }
        Op::PutItem => {
            let item = article_item(&format!("put#{}", request % WRITE_SLOTS), request);
            let started = Instant::now();
            client
                .put_item()
                .table_name(table)
                .set_item(Some(item))
                .send()
                .await
                .context("PutItem")?;
            Ok(started.elapsed())
        }
        Op::Query => {
            let partition = comment_partition(request % QUERY_PARTITIONS);
            let started = Instant::now();
            let out = client
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(partition.clone()))
                .send()
                .await
                .context("Query")?;
            let took = started.elapsed();
            if out.count() as usize != QUERY_PAGE {
                bail!(
                    "Query of {partition} found {} items, not {QUERY_PAGE}",
                    out.count()
                );
            }
            Ok(took)
        }
        Op::BatchWriteItem => {
            let slot = request % (WRITE_SLOTS / BATCH).max(1);
            let requests = (0..BATCH)
                .map(|k| write_request(article_item(&format!("batch#{slot}#{k}"), request)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let started = Instant::now();
            batch_write(client, table, requests).await?;
            Ok(started.elapsed())
        }
    }
}

/// One `BatchWriteItem`, resending what DynamoDB leaves unprocessed (DynamoDB Local does not
/// throttle, so this is a safeguard).
async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> anyhow::Result<()> {
    let mut pending = HashMap::from([(table.to_owned(), requests)]);
    for _ in 0..10 {
        let out = client
            .batch_write_item()
            .set_request_items(Some(pending))
            .send()
            .await
            .context("BatchWriteItem")?;
        match out.unprocessed_items {
            Some(left) if left.values().any(|requests| !requests.is_empty()) => pending = left,
            _ => return Ok(()),
        }
    }
    bail!("BatchWriteItem left items unprocessed after 10 attempts")
}

/// Writes the articles `GetItem` reads and the partitions `Query` reads (untimed).
async fn preload(target: &Target) -> anyhow::Result<()> {
    let mut requests = Vec::new();
    for i in 0..target.articles {
        requests.push(write_request(article_item(&format!("article#{i}"), i))?);
    }
    for p in 0..QUERY_PARTITIONS {
        for c in 0..QUERY_PAGE {
            requests.push(write_request(comment_item(p, c))?);
        }
    }
    for chunk in requests.chunks(BATCH) {
        batch_write(&target.client, &target.table, chunk.to_vec()).await?;
    }
    Ok(())
}

fn write_request(item: HashMap<String, AttributeValue>) -> anyhow::Result<WriteRequest> {
    let put = PutRequest::builder().set_item(Some(item)).build()?;
    Ok(WriteRequest::builder().put_request(put).build())
}

fn article_key(i: usize) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), s(format!("article#{i}"))),
        ("sk".to_owned(), s("article")),
    ])
}

/// An item shaped like an article of the read model, about 1 KB.
fn article_item(pk: &str, i: usize) -> HashMap<String, AttributeValue> {
    let body = format!(
        "Article {i} explains how an event-sourced backend keeps its read models apart from \
         its log. "
    )
    .repeat(7);
    HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s("article")),
        (
            "articleId".to_owned(),
            s(format!("a0000000-0000-4000-8000-{i:012}")),
        ),
        (
            "slug".to_owned(),
            s(format!("how-to-train-your-dragon-{i}")),
        ),
        (
            "title".to_owned(),
            s(format!("How to train your dragon {i}")),
        ),
        (
            "description".to_owned(),
            s("Ever wonder how? A short answer, and then a long one."),
        ),
        ("body".to_owned(), s(body)),
        (
            "tagList".to_owned(),
            AttributeValue::L(vec![s("dragons"), s("training"), s("rust")]),
        ),
        (
            "authorId".to_owned(),
            s(format!("00000000-0000-4000-8000-{:012}", i % 97)),
        ),
        ("createdAt".to_owned(), s("2024-01-12T19:03:58.412Z")),
        ("updatedAt".to_owned(), s("2024-01-12T19:03:58.412Z")),
        (
            "favoritesCount".to_owned(),
            AttributeValue::N((i % 50).to_string()),
        ),
        ("lastSeq".to_owned(), AttributeValue::N("3".to_owned())),
    ])
}

fn comment_partition(p: usize) -> String {
    format!("comments#{p}")
}

/// An item shaped like a comment, about 300 bytes.
fn comment_item(p: usize, c: usize) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), s(comment_partition(p))),
        ("sk".to_owned(), s(format!("{c:04}"))),
        (
            "authorId".to_owned(),
            s(format!("00000000-0000-4000-8000-{c:012}")),
        ),
        (
            "body".to_owned(),
            s(format!(
                "Comment {c} on article {p}: thank you, this explains a lot about how the \
                 projections catch up with the log; one question about the feed, though. \
                 How does it scale to authors with many followers?"
            )),
        ),
        ("createdAt".to_owned(), s("2024-01-12T19:03:58.412Z")),
        ("updatedAt".to_owned(), s("2024-01-12T19:03:58.412Z")),
    ])
}

// -------------------------------------------------------------------------------------------
// SNS → SQS

/// A topic, a queue subscribed to it (the SNS envelope delivered, as the stack's projector
/// queues get it), `round_trips` publishes each received with long polling and deleted.
/// The topic, subscription and queue are deleted afterwards.
async fn measure_sns_to_sqs(
    clients: &Clients,
    prefix: &str,
    round_trips: usize,
) -> anyhow::Result<RawOp> {
    let topic_arn = clients
        .sns
        .create_topic()
        .name(format!("{prefix}raw-topic"))
        .send()
        .await
        .context("CreateTopic")?
        .topic_arn
        .context("CreateTopic returned no ARN")?;
    let queue_url = clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}raw-queue"))
        .send()
        .await
        .context("CreateQueue")?
        .queue_url
        .context("CreateQueue returned no URL")?;
    let measured = subscribe_and_measure(clients, &topic_arn, &queue_url, round_trips).await;
    let topic_deleted = clients
        .sns
        .delete_topic()
        .topic_arn(&topic_arn)
        .send()
        .await
        .context("DeleteTopic");
    let queue_deleted = clients
        .sqs
        .delete_queue()
        .queue_url(&queue_url)
        .send()
        .await
        .context("DeleteQueue");
    let raw = measured?;
    topic_deleted?;
    queue_deleted?;
    eprintln!(
        "bench:   SNS→SQS c=1: p50 {:.2} ms, p99 {:.2} ms, {:.1} messages/s",
        raw.latency.p50_ms, raw.latency.p99_ms, raw.per_second
    );
    Ok(raw)
}

async fn subscribe_and_measure(
    clients: &Clients,
    topic_arn: &str,
    queue_url: &str,
    round_trips: usize,
) -> anyhow::Result<RawOp> {
    let queue_arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .context("GetQueueAttributes")?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .context("the queue has no QueueArn")?;
    let subscription = clients
        .sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .return_subscription_arn(true)
        .send()
        .await
        .context("Subscribe")?
        .subscription_arn;

    let started = Instant::now();
    let mut latencies = Vec::with_capacity(round_trips);
    let mut failure = None;
    for _ in 0..round_trips {
        match round_trip(clients, topic_arn, queue_url).await {
            Ok(took) => latencies.push(took),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let wall = started.elapsed();
    if let Some(arn) = subscription.filter(|arn| arn.starts_with("arn:")) {
        clients
            .sns
            .unsubscribe()
            .subscription_arn(arn)
            .send()
            .await
            .context("Unsubscribe")?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(RawOp {
        op: "SNS→SQS".to_owned(),
        concurrency: 1,
        latency: Latency::of(&latencies),
        per_second: per_second(latencies.len(), wall),
        unit: "messages".to_owned(),
        samples: latencies,
    })
}

/// Publishes one message and receives it (long polling); the time from publishing to
/// receiving it. The message is deleted afterwards (untimed).
async fn round_trip(
    clients: &Clients,
    topic_arn: &str,
    queue_url: &str,
) -> anyhow::Result<Duration> {
    let body = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    clients
        .sns
        .publish()
        .topic_arn(topic_arn)
        .message(&body)
        .send()
        .await
        .context("Publish")?;
    loop {
        let waited = started.elapsed();
        if waited > ROUND_TRIP_TIMEOUT {
            bail!("the published message did not reach the queue within {ROUND_TRIP_TIMEOUT:?}");
        }
        let wait_seconds = (ROUND_TRIP_TIMEOUT - waited).as_secs().clamp(1, 20) as i32;
        let out = clients
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_seconds)
            .send()
            .await
            .context("ReceiveMessage")?;
        let took = started.elapsed();
        let mut arrived = false;
        for message in out.messages.unwrap_or_default() {
            // The SNS envelope (JSON) holds the published text as `Message`.
            let envelope: serde_json::Value = message
                .body
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default();
            arrived |= envelope["Message"] == body.as_str();
            if let Some(receipt) = message.receipt_handle {
                clients
                    .sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .context("DeleteMessage")?;
            }
        }
        if arrived {
            return Ok(took);
        }
    }
}
