//! The fan-out against moto: stream records in, filtered SNS messages out, secrets stripped, failures reported.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use infra::resources::USERS_PROJECTOR_QUEUE;
use projectors::FanOut;

fn record(sequence: &str, name: &str, image: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "eventID": format!("id-{sequence}"),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/events/stream/2024",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_700_000_000,
            "Keys": {"pk": image["pk"].clone(), "sk": image["sk"].clone()},
            "NewImage": image,
            "SequenceNumber": sequence,
            "SizeBytes": 100,
            "StreamViewType": "NEW_IMAGE"
        }
    })
}

fn image(
    aggregate_type: &str,
    id: &str,
    sequence: u64,
    event_type: &str,
    payload: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "pk": {"S": format!("{aggregate_type}#{id}")},
        "sk": {"N": sequence.to_string()},
        "aggregateType": {"S": aggregate_type},
        "aggregateId": {"S": id},
        "eventId": {"S": uuid::Uuid::new_v4().to_string()},
        "eventType": {"S": event_type},
        "eventVersion": {"N": "1"},
        "payload": {"S": payload.to_string()},
        "metadata": {"M": {"actor": {"S": id}}},
        "recordedAt": {"S": "2024-01-01T00:00:00.000Z"}
    })
}

#[tokio::test]
async fn new_events_reach_the_subscribed_queue_without_secrets() {
    let prefix = local_aws::testkit::unique_prefix("fanout");
    let (clients, provisioned) = local_aws::testkit::provisioned(&prefix).await;
    let queue = provisioned
        .queue(USERS_PROJECTOR_QUEUE.name)
        .expect("queue")
        .clone();
    let fan_out = FanOut::new(clients.sns.clone(), provisioned.topic_arn.clone());

    let registered = image(
        "User",
        "u1",
        1,
        "UserRegistered",
        serde_json::json!({"userId": "u1", "email": "a@b.io", "username": "a", "passwordHash": "$argon2id$SECRET"}),
    );
    let other = image("Other", "x1", 1, "OtherHappened", serde_json::json!({}));
    let mut corrupt = image("User", "u2", 1, "UserRegistered", serde_json::json!({}));
    corrupt["payload"] = serde_json::json!({"S": "{broken"});
    let batch: Event = serde_json::from_value(serde_json::json!({"Records": [
        record("100", "INSERT", registered.clone()),
        record("200", "MODIFY", registered),
        record("300", "INSERT", other),
        record("400", "INSERT", corrupt),
    ]}))
    .expect("stream event");

    let response = fan_out.handle(batch).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        vec![Some("400".to_owned())],
        "the unreadable record is reported"
    );

    // Only the User event passes the users queue's filter policy.
    let bodies =
        crate::support::receive_bodies(&clients.sqs, &queue.url, Duration::from_secs(20)).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(
        !bodies[0].contains("SECRET"),
        "no password hash leaves the write side"
    );
    let event =
        projectors::runtime::parse_message(&bodies[0]).expect("an event in an SNS envelope");
    assert_eq!(event.event_type, "UserRegistered");
    assert_eq!(event.payload["email"], "a@b.io");
    let envelope: serde_json::Value = serde_json::from_str(&bodies[0]).expect("json");
    assert_eq!(
        envelope["MessageAttributes"]["aggregateType"]["Value"],
        "User"
    );
    assert_eq!(
        envelope["MessageAttributes"]["eventType"]["Value"],
        "UserRegistered"
    );
}
