//! Dead letters on the emulators: an event the articles projector cannot apply (an earlier
//! event of its stream is missing from the log: the fault, switched on by deleting it and off
//! by putting it back) reaches the dead-letter queue after the queue's receive limit; `replay
//! dlq` lists it with its reason, and its redrive, whole or interrupted between the send and
//! the delete, applies it exactly once: the read model then equals a fresh rebuild.
//!
//! Each test has its own prefix and drives the projector's queue with the local event source
//! mapping (failed messages come back at once), without the rest of the stack.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use common::config::TableNames;
use common::projections::Projection;
use events::article::{Article, ArticleCommand, Body, Description, Title};
use events::favorite::{favorite_id, Favorite, FavoriteCommand};
use events::{EventStore, Metadata, Repository, StoredEvent, Tables};
use local_aws::esm::QueueMapping;
use local_aws::provision::ProvisionedQueue;
use local_aws::Clients;
use projectors::VersionedProjector;
use replay::dlq::{self, Dlq};
use replay::{RebuildOptions, Replay};
use tokio::sync::oneshot;

const AUTHOR: &str = "author-1";
const READER: &str = "reader-1";
/// How long the queue may take to move the message to its dead-letter queue, or to drain.
const BOUND: Duration = Duration::from_secs(60);

struct Fixture {
    clients: Clients,
    prefix: String,
    base: TableNames,
    queue: ProvisionedQueue,
    store: EventStore,
    /// The favorite's stream: favorited, unfavorited, favorited again.
    favorite: Vec<StoredEvent>,
    dlq: Dlq,
}

/// The articles projector on its queue, until the returned sender is used.
fn run_projector(f: &Fixture) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let projector = std::sync::Arc::new(VersionedProjector::articles(&f.clients.dynamodb, &f.base));
    let mapping = QueueMapping {
        wait_time: Duration::ZERO,
        visibility_timeout: Some(Duration::from_secs(30)),
        retry_delay: Some(Duration::ZERO),
        ..QueueMapping::new(&f.queue.url, &f.queue.arn)
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let sqs = f.clients.sqs.clone();
    let task = tokio::spawn(async move {
        mapping
            .run(
                sqs,
                move |batch| {
                    let projector = projector.clone();
                    async move { Ok::<_, std::convert::Infallible>(projector.handle_sqs(batch).await) }
                },
                async {
                    let _ = stopped.await;
                },
            )
            .await;
    });
    (stop, task)
}

async fn send(f: &Fixture, event: &StoredEvent) {
    f.clients
        .sqs
        .send_message()
        .queue_url(&f.queue.url)
        .message_body(serde_json::to_string(event).expect("event JSON"))
        .send()
        .await
        .expect("SendMessage");
}

/// Messages in `url`, visible and in flight.
async fn depth(f: &Fixture, url: &str) -> u64 {
    let attributes = f
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default();
    attributes
        .values()
        .map(|n| n.parse::<u64>().expect("a count"))
        .sum()
}

/// Waits until `url` holds `expected` messages.
async fn until_depth(f: &Fixture, url: &str, expected: u64, what: &str) {
    let started = Instant::now();
    loop {
        let now = depth(f, url).await;
        if now == expected {
            return;
        }
        assert!(
            started.elapsed() < BOUND,
            "{what}: {now} messages, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The projector's checkpoint of the favorite's stream (active version 1).
async fn checkpoint(f: &Fixture) -> Option<u64> {
    let stream = f.favorite[0].stream_key();
    let item = f
        .clients
        .dynamodb
        .get_item()
        .table_name(&f.base.at_version(Projection::Articles, 1).checkpoints)
        .key(
            schema::checkpoints::PK,
            AttributeValue::S(events::views::checkpoints::key("articles", &stream)),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item?;
    events::views::number(&item, schema::checkpoints::LAST_SEQ)
}

/// An article and a favorite's three events in the log; the first two applied; the second
/// then deleted from the log, and the third sent: it fails every receive and ends in the
/// dead-letter queue.
async fn dead_letter(tag: &str) -> Fixture {
    common::telemetry::init();
    let prefix = local_aws::testkit::unique_prefix(tag);
    let (clients, provisioned) = local_aws::testkit::provisioned(&prefix).await;
    let queue = provisioned
        .queue("articles-projector")
        .expect("the articles queue")
        .clone();
    let base = TableNames::with_prefix(&prefix);
    let store = EventStore::new(clients.dynamodb.clone(), Tables::with_prefix(&prefix));
    let repository = Repository::new(store.clone());
    let article_id = "article-1";
    repository
        .execute::<Article>(
            article_id,
            ArticleCommand::Publish {
                article_id: article_id.into(),
                author_id: AUTHOR.into(),
                slug: "dead-letters".into(),
                title: Title::parse("Dead letters").expect("title"),
                description: Description::parse("and their redrive").expect("description"),
                body: Body::parse("Nothing lost, nothing doubled.").expect("body"),
                tag_list: vec![],
                at: "2026-12-03T10:00:00.000Z".into(),
            },
            Metadata::default(),
        )
        .await
        .expect("publish");
    let favorite = favorite_id(article_id, READER);
    for (second, favorited) in [(1, true), (2, false), (3, true)] {
        let at = format!("2026-12-03T10:00:0{second}.000Z");
        let command = if favorited {
            FavoriteCommand::Favorite {
                article_id: article_id.into(),
                user_id: READER.into(),
                article_exists: true,
                at,
            }
        } else {
            FavoriteCommand::Unfavorite {
                article_id: article_id.into(),
                user_id: READER.into(),
                at,
            }
        };
        repository
            .execute::<Favorite>(&favorite, command, Metadata::default())
            .await
            .expect("favorite or unfavorite");
    }
    let article = store.load("Article", article_id).await.expect("article");
    let favorite = store.load("Favorite", &favorite).await.expect("favorite");
    assert_eq!(favorite.len(), 3);
    let dlq = Dlq::resolve(&clients.sqs, &clients.dynamodb, &base, Projection::Articles)
        .await
        .expect("the queues");
    let f = Fixture {
        clients,
        prefix,
        base,
        queue,
        store,
        favorite,
        dlq,
    };

    let (stop, task) = run_projector(&f);
    send(&f, &article[0]).await;
    send(&f, &f.favorite[0]).await;
    until_depth(&f, &f.queue.url, 0, "the first events applied").await;
    assert_eq!(checkpoint(&f).await, Some(1));
    // The fault: the unfavorite is gone from the log, so the favorite after it cannot be
    // applied (the projector reads the gap from the log, and finds nothing).
    let key = events::store::event_to_item(&f.favorite[1])
        .into_iter()
        .filter(|(name, _)| name == schema::events::PK || name == schema::events::SK)
        .collect();
    f.clients
        .dynamodb
        .delete_item()
        .table_name(&f.store.tables().events)
        .set_key(Some(key))
        .send()
        .await
        .expect("deleting the unfavorite");
    send(&f, &f.favorite[2]).await;
    until_depth(&f, &f.dlq.dlq_url, 1, "the dead-letter queue").await;
    until_depth(&f, &f.queue.url, 0, "the projector's queue").await;
    let _ = stop.send(());
    task.await.expect("the mapping");
    assert_eq!(
        checkpoint(&f).await,
        Some(1),
        "nothing after the gap applied"
    );
    f
}

/// The fault switched off: the unfavorite back in the log.
async fn repair(f: &Fixture) {
    f.clients
        .dynamodb
        .put_item()
        .table_name(&f.store.tables().events)
        .set_item(Some(events::store::event_to_item(&f.favorite[1])))
        .send()
        .await
        .expect("putting the unfavorite back");
}

/// Runs the projector until its queue is empty.
async fn drain(f: &Fixture) {
    let (stop, task) = run_projector(f);
    until_depth(f, &f.queue.url, 0, "the redriven messages applied").await;
    let _ = stop.send(());
    task.await.expect("the mapping");
}

/// The live articles read model equals a fresh rebuild from the log.
async fn equals_a_rebuild(f: &Fixture) {
    let replay = Replay::in_process(
        f.clients.dynamodb.clone(),
        f.clients.streams.clone(),
        f.base.clone(),
        local_stack::search_versions(&f.prefix, None),
    );
    let options = RebuildOptions {
        verify: true,
        ..RebuildOptions::default()
    };
    let report = replay::rebuild(&replay, Projection::Articles, &options)
        .await
        .expect("rebuilding the articles");
    let verify = report.verify.expect("verified");
    assert!(verify.is_equal(), "{}", verify.render());
    assert!(verify.comparisons.iter().any(|c| c.old_items > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_with_its_reason_then_redriven_once() {
    let f = dead_letter("dlqlist").await;
    let letters = f.dlq.list().await.expect("dlq list");
    assert_eq!(
        letters.len(),
        1,
        "{}",
        dlq::render(Projection::Articles, &letters)
    );
    let letter = &letters[0];
    let event = letter.event.as_ref().expect("an event");
    assert_eq!(
        (
            event.stream.as_str(),
            event.sequence,
            event.event_type.as_str()
        ),
        (f.favorite[2].stream_key().as_str(), 3, "ArticleFavorited")
    );
    let failure = letter.failure.as_ref().expect("its failure recorded");
    assert!(
        failure.reason.contains("not all in the store yet"),
        "{}",
        failure.reason
    );
    assert_eq!(failure.receive_count, f.queue.max_receive_count);
    assert_eq!(failure.failures, u64::from(f.queue.max_receive_count));
    assert!(failure.first_failed_at_ms <= failure.last_failed_at_ms);
    assert!(letter.sent_at_ms.is_some());
    let shown = dlq::render(Projection::Articles, &letters);
    assert!(
        shown.contains(&letter.message_id) && shown.contains(&failure.reason),
        "{shown}"
    );
    // Listing takes nothing away.
    assert_eq!(f.dlq.list().await.expect("dlq list again").len(), 1);
    let unknown = f.dlq.redrive(Some("no-such-message")).await;
    assert!(unknown.is_err(), "an unknown message id is refused");
    assert_eq!(depth(&f, &f.dlq.dlq_url).await, 1, "and nothing moved");

    repair(&f).await;
    let redriven = f
        .dlq
        .redrive(Some(&letter.message_id))
        .await
        .expect("dlq redrive");
    assert_eq!(redriven.moved, vec![letter.message_id.clone()]);
    assert_eq!(depth(&f, &f.dlq.dlq_url).await, 0);
    drain(&f).await;
    assert_eq!(
        checkpoint(&f).await,
        Some(3),
        "the gap filled and the favorite applied"
    );
    assert!(
        f.dlq.list().await.expect("dlq list").is_empty(),
        "nothing failed again"
    );
    equals_a_rebuild(&f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_interrupted_between_send_and_delete_loses_and_doubles_nothing() {
    let f = dead_letter("dlqcrash").await;
    repair(&f).await;
    let letters = f.dlq.list().await.expect("dlq list");
    assert_eq!(letters.len(), 1);
    // The crash: sent back, never deleted from the dead-letter queue.
    f.dlq.send_back(&letters[0]).await.expect("send back");
    drain(&f).await;
    assert_eq!(checkpoint(&f).await, Some(3));
    assert_eq!(
        depth(&f, &f.dlq.dlq_url).await,
        1,
        "the copy is still there"
    );
    // The redrive run again: the copy is delivered once more and skipped as a duplicate.
    let redriven = f.dlq.redrive(None).await.expect("dlq redrive --all");
    assert_eq!(redriven.moved.len(), 1);
    drain(&f).await;
    assert_eq!(checkpoint(&f).await, Some(3));
    assert_eq!(depth(&f, &f.dlq.dlq_url).await, 0);
    equals_a_rebuild(&f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_deletes_every_dead_letter_and_its_reason() {
    let f = dead_letter("dlqpurge").await;
    assert_eq!(f.dlq.depth().await.expect("depth"), 1);
    let letters = f.dlq.list().await.expect("dlq list");
    assert!(letters[0].failure.is_some(), "its failure recorded");
    assert_eq!(f.dlq.purge().await.expect("purge"), 1);
    assert_eq!(depth(&f, &f.dlq.dlq_url).await, 0);
    let key = projectors::failures::key(
        Projection::Articles,
        letters[0].event.as_ref(),
        &letters[0].message_id,
    );
    let item = f
        .clients
        .dynamodb
        .get_item()
        .table_name(&f.base.checkpoints)
        .key(schema::checkpoints::PK, AttributeValue::S(key))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item;
    assert!(item.is_none(), "the failure item is gone: {item:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_dead_letter_and_a_lag_while_stopped_and_none_once_caught_up() {
    let f = dead_letter("dlqstatus").await;
    let replay = Replay::in_process(
        f.clients.dynamodb.clone(),
        f.clients.streams.clone(),
        f.base.clone(),
        local_stack::search_versions(&f.prefix, None),
    );
    let articles = |all: &replay::status::Status| {
        all.projectors
            .iter()
            .find(|s| s.projection == Projection::Articles)
            .expect("the articles projector")
            .clone()
    };
    // CloudWatch (a stub at the wire: no emulator has it) says the articles queue's oldest
    // message is 42 s old; the queues are asked for in `Projection::ALL` order.
    let articles_query = Projection::ALL
        .iter()
        .position(|p| *p == Projection::Articles)
        .expect("articles");
    let (url, _) = crate::cloudwatch::stub(vec![(format!("q{articles_query}"), 42.0)]).await;
    let cloudwatch = crate::cloudwatch::client(&url);
    // Stopped, with an event waiting (the favorite redelivered once more).
    send(&f, &f.favorite[0]).await;
    let status = replay::status::status(&replay, &f.clients.sqs, Some(&cloudwatch))
        .await
        .expect("status");
    assert_eq!(status.ages_missing, None);
    let stopped = articles(&status);
    assert_eq!(stopped.oldest_s, Some(42.0));
    assert_eq!((stopped.queued, stopped.dead, stopped.active), (1, 1, 1));
    let head = stopped.head.clone().expect("a head");
    assert_eq!(
        head.recorded_at, f.favorite[0].recorded_at,
        "the newest applied"
    );
    assert!(stopped.lag_ms.is_some_and(|lag| lag > 0), "{stopped:?}");
    let shown = replay::status::render(&status);
    assert!(shown.contains("replay dlq list articles"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("articles") && l.contains(" 42 s ")),
        "{shown}"
    );

    drain(&f).await;
    // Without CloudWatch (the local stack) the rest of the status stands, and says why.
    let status = replay::status::status(&replay, &f.clients.sqs, None)
        .await
        .expect("status");
    assert!(status.ages_missing.is_some());
    assert!(replay::status::render(&status).contains("oldest: not shown"));
    let caught_up = articles(&status);
    assert_eq!(caught_up.oldest_s, None);
    assert_eq!((caught_up.queued, caught_up.in_flight), (0, 0));
    assert_eq!(caught_up.lag_ms, Some(0));
    assert_eq!(caught_up.dead, 1, "the dead letter stays until redriven");
}

/// The fan-out gives up on a stream batch (its function fails every try): the batch's
/// description reaches `fan-out-failures`, `dlq list fan-out` shows it with the error, and
/// its redrive publishes the event again, read from the log, to the projectors' queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_batch_the_fan_out_gave_up_on_is_listed_and_published_again() {
    common::telemetry::init();
    let prefix = local_aws::testkit::unique_prefix("dlqfanout");
    let (clients, provisioned) = local_aws::testkit::provisioned(&prefix).await;
    let base = TableNames::with_prefix(&prefix);
    let repository = Repository::new(EventStore::new(
        clients.dynamodb.clone(),
        Tables::with_prefix(&prefix),
    ));
    let user = "fan-out-user";
    repository
        .execute::<events::user::User>(
            user,
            events::user::UserCommand::Register {
                user_id: user.into(),
                email: events::user::Email::parse("fo@example.com").expect("email"),
                username: events::user::Username::parse("fanout").expect("username"),
                password_hash: "hash".into(),
            },
            Metadata::default(),
        )
        .await
        .expect("register");

    let mut mapping = local_aws::esm::StreamMapping::new(
        provisioned.events_stream_arn.clone(),
        std::sync::Arc::new(local_aws::esm::MemoryCheckpoints::new()),
    );
    mapping.max_retry_attempts = 1;
    mapping.on_failure = std::sync::Arc::new(local_aws::esm::SqsOnFailure {
        sqs: clients.sqs.clone(),
        queue_url: provisioned.fan_out_failures_url.clone(),
        function_arn: "local:function:fan-out".into(),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let streams = clients.streams.clone();
    let task = tokio::spawn(mapping.run(
        streams,
        |_batch| async { Err::<_, &str>("the topic is down") },
        async {
            let _ = stopped.await;
        },
    ));
    let failures = replay::fan_out_failures::FanOutFailures::resolve(
        &replay::fan_out_failures::Clients {
            sqs: clients.sqs.clone(),
            sns: clients.sns.clone(),
            streams: clients.streams.clone(),
            dynamodb: clients.dynamodb.clone(),
        },
        &base,
    )
    .await
    .expect("the failures queue");
    let started = Instant::now();
    let listed = loop {
        let listed = failures.list().await.expect("dlq list fan-out");
        if !listed.is_empty() {
            break listed;
        }
        assert!(started.elapsed() < BOUND, "no failure reached the queue");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = stop.send(());
    task.await.expect("the stream mapping");
    assert_eq!(listed.len(), 1);
    let failure = &listed[0];
    assert_eq!(failure.condition, "RetryAttemptsExhausted");
    assert!(failure.error.contains("the topic is down"), "{failure:?}");
    assert_eq!(failure.batch_size, 1);
    assert_eq!(failure.start_sequence_number, failure.end_sequence_number);
    let shown = replay::fan_out_failures::render(&listed);
    assert!(shown.contains(&failure.shard_id), "{shown}");

    assert_eq!(failures.redrive().await.expect("dlq redrive fan-out"), 1);
    assert!(failures.list().await.expect("dlq list fan-out").is_empty());
    // The event is on the users projector's queue (its subscription takes User events).
    let users = provisioned.queue("users-projector").expect("users queue");
    let started = Instant::now();
    let message = loop {
        let received = clients
            .sqs
            .receive_message()
            .queue_url(&users.url)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage")
            .messages
            .unwrap_or_default();
        if let Some(message) = received.into_iter().next() {
            break message;
        }
        assert!(
            started.elapsed() < BOUND,
            "the event was not published again"
        );
    };
    let event =
        projectors::runtime::parse_message(message.body().unwrap_or_default()).expect("an event");
    assert_eq!(
        (
            event.aggregate_id.as_str(),
            event.sequence,
            event.event_type.as_str()
        ),
        (user, 1, "UserRegistered")
    );
    assert!(
        !message.body().unwrap_or_default().contains("\"hash\""),
        "published without secrets, as the fan-out does"
    );
}
