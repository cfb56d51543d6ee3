//! The DynamoDB meter against DynamoDB Local: it counts each request and the capacity the
//! response reports, without the measured code asking for capacity itself.

use aws_sdk_dynamodb::types::AttributeValue;
use local_aws::meter::DynamoMeter;
use local_aws::testkit;

#[tokio::test]
async fn the_meter_counts_requests_and_consumed_capacity() {
    let prefix = testkit::unique_prefix("meter");
    let (clients, provisioned) = testkit::provisioned(&prefix).await;
    let table = provisioned.names().table_name("users");
    let meter = DynamoMeter::new();
    let metered = meter.attach(&clients.dynamodb);

    metered
        .put_item()
        .table_name(&table)
        .item("userId", AttributeValue::S("u1".into()))
        .item("username", AttributeValue::S("metered".into()))
        .send()
        .await
        .expect("PutItem");
    let written = meter.take();
    assert_eq!(written.operations(), "PutItem×1");
    // One unit for the item, one for its copy in the `byUsername` index.
    assert_eq!(written.write_units, 2.0);
    assert_eq!(written.read_units, 0.0);

    let got = metered
        .get_item()
        .table_name(&table)
        .key("userId", AttributeValue::S("u1".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    assert!(got.item().is_some(), "the rewritten request still works");
    metered
        .query()
        .table_name(&table)
        .index_name("byUsername")
        .key_condition_expression("username = :u")
        .expression_attribute_values(":u", AttributeValue::S("metered".into()))
        .send()
        .await
        .expect("Query");
    let read = meter.take();
    assert_eq!(read.operations(), "GetItem×1 Query×1");
    // A strongly consistent read of an item under 4 KB is one unit, an eventually consistent
    // query half a unit.
    assert_eq!(read.read_units, 1.5);
    assert_eq!(read.write_units, 0.0);

    // The unmetered client is not counted.
    clients
        .dynamodb
        .get_item()
        .table_name(&table)
        .key("userId", AttributeValue::S("u1".into()))
        .send()
        .await
        .expect("GetItem");
    assert_eq!(meter.take().total_requests(), 0);
}
