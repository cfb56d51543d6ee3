//! The event JSON Lambda builds from what the stream and the queue return, byte for byte the
//! shape a deployed function receives, then deserialized into the `aws_lambda_events` types
//! the handlers take.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, Record};
use serde_json::{json, Map, Value};

use super::util::base64;

/// A stream record that cannot be turned into Lambda's event shape.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    #[error("stream record has no `{0}`")]
    Missing(&'static str),
    #[error("attribute `{0}` has a type this SDK does not know")]
    UnknownAttributeType(String),
    #[error("event JSON does not deserialize: {0}")]
    Json(#[from] serde_json::Error),
}

/// One DynamoDB stream record as Lambda delivers it in `Records[]`:
/// `eventID`, `eventName`, `eventVersion`, `eventSource` (`aws:dynamodb`), `awsRegion`,
/// `eventSourceARN`, `dynamodb { ApproximateCreationDateTime (epoch seconds), Keys,
/// NewImage, OldImage, SequenceNumber, SizeBytes, StreamViewType }` with attribute values in
/// DynamoDB JSON (`{"S": ...}`, `{"N": ...}`, binary as base64), and `userIdentity` for TTL
/// deletions.
pub fn dynamodb_record_json(
    record: &Record,
    stream_arn: &str,
    aws_region: &str,
) -> Result<Value, ConversionError> {
    let change = record
        .dynamodb()
        .ok_or(ConversionError::Missing("dynamodb"))?;
    let mut dynamodb = Map::new();
    if let Some(created) = change.approximate_creation_date_time() {
        let seconds = if created.subsec_nanos() == 0 {
            json!(created.secs())
        } else {
            json!(created.as_secs_f64())
        };
        dynamodb.insert("ApproximateCreationDateTime".into(), seconds);
    }
    for (name, image) in [
        ("Keys", change.keys()),
        ("NewImage", change.new_image()),
        ("OldImage", change.old_image()),
    ] {
        if let Some(image) = image {
            dynamodb.insert(name.into(), item_json(image)?);
        }
    }
    let sequence_number = change
        .sequence_number()
        .ok_or(ConversionError::Missing("dynamodb.SequenceNumber"))?;
    dynamodb.insert("SequenceNumber".into(), json!(sequence_number));
    dynamodb.insert("SizeBytes".into(), json!(change.size_bytes().unwrap_or(0)));
    if let Some(view) = change.stream_view_type() {
        dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
    }

    let mut out = Map::new();
    out.insert(
        "eventID".into(),
        json!(record
            .event_id()
            .ok_or(ConversionError::Missing("eventID"))?),
    );
    out.insert(
        "eventName".into(),
        json!(record
            .event_name()
            .ok_or(ConversionError::Missing("eventName"))?
            .as_str()),
    );
    out.insert(
        "eventVersion".into(),
        json!(record.event_version().unwrap_or("1.1")),
    );
    out.insert("eventSource".into(), json!("aws:dynamodb"));
    out.insert("awsRegion".into(), json!(aws_region));
    out.insert("dynamodb".into(), Value::Object(dynamodb));
    out.insert("eventSourceARN".into(), json!(stream_arn));
    if let Some(identity) = record.user_identity() {
        out.insert(
            "userIdentity".into(),
            json!({
                "type": identity.r#type().unwrap_or_default(),
                "principalId": identity.principal_id().unwrap_or_default(),
            }),
        );
    }
    Ok(Value::Object(out))
}

/// [`dynamodb_record_json`] deserialized into the handler's record type.
pub fn dynamodb_event_record(
    record: &Record,
    stream_arn: &str,
    aws_region: &str,
) -> Result<EventRecord, ConversionError> {
    Ok(serde_json::from_value(dynamodb_record_json(
        record, stream_arn, aws_region,
    )?)?)
}

/// A DynamoDB stream event (`{"Records": [...]}`) from already converted records.
pub fn dynamodb_event(records: Vec<EventRecord>) -> Event {
    let mut event = Event::default();
    event.records = records;
    event
}

fn item_json(item: &HashMap<String, StreamValue>) -> Result<Value, ConversionError> {
    let mut out = Map::new();
    for (name, value) in item {
        out.insert(name.clone(), attribute_json(name, value)?);
    }
    Ok(Value::Object(out))
}

fn attribute_json(name: &str, value: &StreamValue) -> Result<Value, ConversionError> {
    Ok(match value {
        StreamValue::S(s) => json!({ "S": s }),
        StreamValue::N(n) => json!({ "N": n }),
        StreamValue::B(b) => json!({ "B": base64(b.as_ref()) }),
        StreamValue::Bool(b) => json!({ "BOOL": b }),
        StreamValue::Null(b) => json!({ "NULL": b }),
        StreamValue::Ss(values) => json!({ "SS": values }),
        StreamValue::Ns(values) => json!({ "NS": values }),
        StreamValue::Bs(values) => {
            json!({ "BS": values.iter().map(|b| base64(b.as_ref())).collect::<Vec<_>>() })
        }
        StreamValue::L(values) => json!({
            "L": values
                .iter()
                .map(|v| attribute_json(name, v))
                .collect::<Result<Vec<_>, _>>()?
        }),
        StreamValue::M(map) => json!({ "M": item_json(map)? }),
        _ => return Err(ConversionError::UnknownAttributeType(name.to_owned())),
    })
}

/// One SQS message as Lambda delivers it in `Records[]`: `messageId`, `receiptHandle`,
/// `body`, `attributes` (every system attribute the receive returned:
/// `ApproximateReceiveCount`, `SentTimestamp`, `SenderId`, `ApproximateFirstReceiveTimestamp`,
/// and for FIFO queues `MessageGroupId`, `SequenceNumber`, ...), `messageAttributes`
/// (`stringValue` / `binaryValue` (base64), `stringListValues`, `binaryListValues`,
/// `dataType`), `md5OfBody`, `md5OfMessageAttributes` when there are attributes,
/// `eventSource` (`aws:sqs`), `eventSourceARN` and `awsRegion`.
pub fn sqs_message_json(
    message: &aws_sdk_sqs::types::Message,
    queue_arn: &str,
    aws_region: &str,
) -> Value {
    let attributes: Map<String, Value> = message
        .attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_owned(), json!(value)))
        .collect();
    let message_attributes: Map<String, Value> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let mut attribute = Map::new();
            if let Some(s) = value.string_value() {
                attribute.insert("stringValue".into(), json!(s));
            }
            if let Some(b) = value.binary_value() {
                attribute.insert("binaryValue".into(), json!(base64(b.as_ref())));
            }
            attribute.insert("stringListValues".into(), json!(value.string_list_values()));
            attribute.insert(
                "binaryListValues".into(),
                json!(value
                    .binary_list_values()
                    .iter()
                    .map(|b| base64(b.as_ref()))
                    .collect::<Vec<_>>()),
            );
            attribute.insert("dataType".into(), json!(value.data_type()));
            (name.clone(), Value::Object(attribute))
        })
        .collect();

    let mut out = Map::new();
    out.insert("messageId".into(), json!(message.message_id()));
    out.insert("receiptHandle".into(), json!(message.receipt_handle()));
    out.insert("body".into(), json!(message.body().unwrap_or_default()));
    out.insert("attributes".into(), Value::Object(attributes));
    out.insert(
        "messageAttributes".into(),
        Value::Object(message_attributes),
    );
    out.insert("md5OfBody".into(), json!(message.md5_of_body()));
    if let Some(md5) = message.md5_of_message_attributes() {
        out.insert("md5OfMessageAttributes".into(), json!(md5));
    }
    out.insert("eventSource".into(), json!("aws:sqs"));
    out.insert("eventSourceARN".into(), json!(queue_arn));
    out.insert("awsRegion".into(), json!(aws_region));
    Value::Object(out)
}

/// [`sqs_message_json`] deserialized into the handler's message type.
pub fn sqs_event_message(
    message: &aws_sdk_sqs::types::Message,
    queue_arn: &str,
    aws_region: &str,
) -> Result<SqsMessage, serde_json::Error> {
    serde_json::from_value(sqs_message_json(message, queue_arn, aws_region))
}

/// An SQS event (`{"Records": [...]}`) from already converted messages.
pub fn sqs_event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
}
