use aws_sdk_dynamodb::types::*;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;

#[tokio::test]
async fn explore() {
    let c = infra::testkit::clients().await;
    let name = infra::testkit::unique_prefix("x") + "t";
    let out = c.dynamodb.create_table().table_name(&name)
        .attribute_definitions(AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().unwrap())
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(StreamSpecification::builder().stream_enabled(true).stream_view_type(StreamViewType::NewImage).build().unwrap())
        .send().await.unwrap();
    let arn = out.table_description().unwrap().latest_stream_arn().unwrap().to_owned();
    println!("arn {arn}");
    for i in 0..3 { c.dynamodb.put_item().table_name(&name).item("pk", AttributeValue::S(format!("i{i}"))).item("b", AttributeValue::B(vec![1,2,3].into())).send().await.unwrap(); }
    let d = c.streams.describe_stream().stream_arn(&arn).send().await.unwrap();
    println!("{:#?}", d.stream_description().unwrap().shards());
    let shard = d.stream_description().unwrap().shards()[0].shard_id().unwrap().to_owned();
    let it = c.streams.get_shard_iterator().stream_arn(&arn).shard_id(&shard).shard_iterator_type(ShardIteratorType::TrimHorizon).send().await.unwrap();
    let recs = c.streams.get_records().shard_iterator(it.shard_iterator().unwrap()).limit(2).send().await.unwrap();
    println!("{:#?}", recs);
    for bogus in ["000000000000000000099", "000000000000000000002", "000000000000000000003"] {
        let r = c.streams.get_shard_iterator().stream_arn(&arn).shard_id(&shard).shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(bogus).send().await;
        match r {
            Ok(o) => { let recs = c.streams.get_records().shard_iterator(o.shard_iterator().unwrap()).send().await; println!("{bogus}: ok -> {:?}", recs.map(|r| r.records().len())); }
            Err(e) => println!("{bogus}: {}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)),
        }
    }
    let r = c.streams.get_shard_iterator().stream_arn(&arn).shard_id("shardId-bogus").shard_iterator_type(ShardIteratorType::TrimHorizon).send().await;
    println!("bogus shard: {:?}", r.err().map(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string()));
    let r = c.streams.get_records().shard_iterator("garbage").send().await;
    println!("bogus iterator: {:?}", r.err().map(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string()));
}
