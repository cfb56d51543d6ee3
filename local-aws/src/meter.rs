//! A DynamoDB meter: counts the requests a client sends and the capacity they consume.
//!
//! It is an SDK interceptor, so the code it measures stays as it is: before signing, it adds
//! `"ReturnConsumedCapacity": "TOTAL"` to every request that accepts it (unless the request
//! already asks for capacity), and after each response it adds up the `ConsumedCapacity` the
//! response reports. Benchmarks attach it to the API's clients to report what each endpoint
//! costs; tests use it to count requests.
//!
//! [`RequestMeter`] does the same for the SNS and SQS clients: requests per operation, with
//! the entries of batch requests and the messages receives returned.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

/// What a metered client sent and consumed since the last [`DynamoMeter::take`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Requests per operation (`GetItem`, `Query`, `BatchGetItem`...), retries included.
    pub requests: BTreeMap<String, u64>,
    /// Read capacity units consumed (as DynamoDB reports them).
    pub read_units: f64,
    /// Write capacity units consumed.
    pub write_units: f64,
    /// The same units, per table (as each response's `ConsumedCapacity` names it).
    pub by_table: BTreeMap<String, Units>,
}

/// Read and write capacity units.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Units {
    pub read: f64,
    pub write: f64,
}

impl Tally {
    /// All requests, whatever the operation.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// `GetItem×1 Query×2`-style summary, operations in name order.
    pub fn operations(&self) -> String {
        self.requests
            .iter()
            .map(|(op, n)| format!("{op}×{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Shared by the clients it is attached to; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct DynamoMeter {
    tally: Arc<Mutex<Tally>>,
}

/// Operations whose request accepts `ReturnConsumedCapacity`.
const CAPACITY_OPERATIONS: &[&str] = &[
    "BatchGetItem",
    "BatchWriteItem",
    "DeleteItem",
    "GetItem",
    "PutItem",
    "Query",
    "Scan",
    "TransactGetItems",
    "TransactWriteItems",
    "UpdateItem",
];

impl DynamoMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// What was counted so far; the meter starts again from zero.
    pub fn take(&self) -> Tally {
        std::mem::take(&mut *self.lock())
    }

    /// What was counted so far, without resetting it.
    pub fn snapshot(&self) -> Tally {
        self.lock().clone()
    }

    /// A copy of `client` whose requests this meter counts.
    pub fn attach(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(MeterInterceptor {
                meter: self.clone(),
            })
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, operation: &str, response: Option<&Value>) {
        let mut tally = self.lock();
        *tally.requests.entry(operation.to_owned()).or_default() += 1;
        let Some(response) = response else { return };
        for (table, units) in consumed(response) {
            tally.read_units += units.read;
            tally.write_units += units.write;
            let of_table = tally.by_table.entry(table).or_default();
            of_table.read += units.read;
            of_table.write += units.write;
        }
    }
}

/// The read and write units a response reports: `ConsumedCapacity` is one object (single-item
/// operations, `Query`) or a list of them, one per table (batch and transaction operations).
/// Each gives `ReadCapacityUnits` / `WriteCapacityUnits`, or only `CapacityUnits` (what
/// `TOTAL` returns), counted here as reads. One entry per table named (`""` if none is).
fn consumed(response: &Value) -> Vec<(String, Units)> {
    let entries: Vec<&Value> = match response.get("ConsumedCapacity") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    entries
        .into_iter()
        .map(|entry| {
            let number = |key: &str| entry.get(key).and_then(Value::as_f64);
            let units = match (number("ReadCapacityUnits"), number("WriteCapacityUnits")) {
                // Only the total: a read's (a write's total is relabelled before, see
                // `relabel_as_writes`).
                (None, None) => Units {
                    read: number("CapacityUnits").unwrap_or(0.0),
                    write: 0.0,
                },
                (read, write) => Units {
                    read: read.unwrap_or(0.0),
                    write: write.unwrap_or(0.0),
                },
            };
            let table = entry.get("TableName").and_then(Value::as_str);
            (table.unwrap_or_default().to_owned(), units)
        })
        .collect()
}

/// Whether an operation writes (its bare `CapacityUnits` are write units).
fn writes(operation: &str) -> bool {
    matches!(
        operation,
        "BatchWriteItem" | "DeleteItem" | "PutItem" | "TransactWriteItems" | "UpdateItem"
    )
}

/// The operation name of a DynamoDB request, from `X-Amz-Target: DynamoDB_20120810.GetItem`.
fn operation_of(target: Option<&str>) -> Option<String> {
    target
        .and_then(|t| t.rsplit_once('.'))
        .map(|(_, op)| op.to_owned())
}

#[derive(Debug)]
struct MeterInterceptor {
    meter: DynamoMeter,
}

/// The operation of the request being sent, kept for the response.
#[derive(Clone, Debug)]
struct Operation(String);

impl aws_smithy_types::config_bag::Storable for Operation {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl Intercept for MeterInterceptor {
    fn name(&self) -> &'static str {
        "DynamoMeter"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let Some(operation) = operation_of(request.headers().get("x-amz-target")) else {
            return Ok(());
        };
        cfg.interceptor_state()
            .store_put(Operation(operation.clone()));
        if !CAPACITY_OPERATIONS.contains(&operation.as_str()) {
            return Ok(());
        }
        let Some(mut body) = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Map<String, Value>>(b).ok())
        else {
            return Ok(());
        };
        if body.contains_key("ReturnConsumedCapacity") {
            return Ok(());
        }
        body.insert("ReturnConsumedCapacity".into(), Value::from("TOTAL"));
        let bytes = serde_json::to_vec(&body)?;
        request
            .headers_mut()
            .insert("content-length", bytes.len().to_string());
        *request.body_mut() = SdkBody::from(bytes);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Operation(operation)) = cfg.load::<Operation>().cloned() else {
            return Ok(());
        };
        let response = context
            .response()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok());
        if writes(&operation) {
            // A write's bare `CapacityUnits` are write units.
            let mut tally_response = response.clone();
            if let Some(value) = tally_response.as_mut() {
                relabel_as_writes(value);
            }
            self.meter.record(&operation, tally_response.as_ref());
        } else {
            self.meter.record(&operation, response.as_ref());
        }
        Ok(())
    }
}

/// Rewrites bare `CapacityUnits` entries as `WriteCapacityUnits`.
fn relabel_as_writes(response: &mut Value) {
    let relabel = |entry: &mut Value| {
        if let Some(map) = entry.as_object_mut() {
            if !map.contains_key("ReadCapacityUnits") && !map.contains_key("WriteCapacityUnits") {
                if let Some(units) = map.get("CapacityUnits").cloned() {
                    map.insert("WriteCapacityUnits".into(), units);
                }
            }
        }
    };
    match response.get_mut("ConsumedCapacity") {
        Some(Value::Array(list)) => list.iter_mut().for_each(relabel),
        Some(one) => relabel(one),
        None => {}
    }
}

// -------------------------------------------------------------------------------------------
// Requests of any client (SNS, SQS), per operation

/// What a [`RequestMeter`] counted since the last [`RequestMeter::take`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestTally {
    /// Requests per operation (`Publish`, `ReceiveMessage`...), every attempt counted.
    pub requests: BTreeMap<String, u64>,
    /// Items per operation: the entries a batch request carried (`PublishBatch`,
    /// `DeleteMessageBatch`...), the messages a `ReceiveMessage` returned, one for any other
    /// request.
    pub items: BTreeMap<String, u64>,
    /// Requests per operation that carried or returned no item (an empty long poll).
    pub empty: BTreeMap<String, u64>,
}

impl RequestTally {
    /// All requests, whatever the operation.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests of `operation`.
    pub fn requests_of(&self, operation: &str) -> u64 {
        self.requests.get(operation).copied().unwrap_or(0)
    }

    /// Items of `operation`.
    pub fn items_of(&self, operation: &str) -> u64 {
        self.items.get(operation).copied().unwrap_or(0)
    }

    /// Requests that carried or returned at least one item.
    pub fn requests_with_items(&self) -> u64 {
        self.total_requests() - self.empty.values().sum::<u64>()
    }

    /// `Publish×1 PublishBatch×2`-style summary, operations in name order.
    pub fn operations(&self) -> String {
        self.requests
            .iter()
            .map(|(op, n)| format!("{op}×{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Counts the requests of the SNS and SQS clients it is attached to, per operation, with the
/// items each carried or returned (SNS bills each entry of a `PublishBatch` as one publish;
/// an empty `ReceiveMessage` is a poll, not a message). An SDK interceptor, like
/// [`DynamoMeter`]: the code it measures stays as it is. Shared; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct RequestMeter {
    tally: Arc<Mutex<RequestTally>>,
}

impl RequestMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// What was counted so far; the meter starts again from zero.
    pub fn take(&self) -> RequestTally {
        std::mem::take(&mut *self.lock())
    }

    /// What was counted so far, without resetting it.
    pub fn snapshot(&self) -> RequestTally {
        self.lock().clone()
    }

    /// A copy of `client` whose requests this meter counts.
    pub fn attach_sns(&self, client: &aws_sdk_sns::Client) -> aws_sdk_sns::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.interceptor())
            .build();
        aws_sdk_sns::Client::from_conf(config)
    }

    /// A copy of `client` whose requests this meter counts.
    pub fn attach_sqs(&self, client: &aws_sdk_sqs::Client) -> aws_sdk_sqs::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.interceptor())
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    fn interceptor(&self) -> RequestInterceptor {
        RequestInterceptor {
            meter: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RequestTally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, operation: &str, items: u64) {
        let mut tally = self.lock();
        *tally.requests.entry(operation.to_owned()).or_default() += 1;
        *tally.items.entry(operation.to_owned()).or_default() += items;
        if items == 0 {
            *tally.empty.entry(operation.to_owned()).or_default() += 1;
        }
    }
}

#[derive(Debug)]
struct RequestInterceptor {
    meter: RequestMeter,
}

/// The entries of the batch request being sent, kept for each attempt (`None`: not a batch).
#[derive(Clone, Copy, Debug)]
struct BatchEntries(Option<u64>);

impl aws_smithy_types::config_bag::Storable for BatchEntries {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// The entries of a batch request, if `input` is one.
fn batch_entries(
    input: &aws_smithy_runtime_api::client::interceptors::context::Input,
) -> Option<u64> {
    use aws_sdk_sns::operation::publish_batch::PublishBatchInput;
    use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchInput;
    use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchInput;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    if let Some(batch) = input.downcast_ref::<PublishBatchInput>() {
        return Some(count(batch.publish_batch_request_entries().len()));
    }
    if let Some(batch) = input.downcast_ref::<DeleteMessageBatchInput>() {
        return Some(count(batch.entries().len()));
    }
    if let Some(batch) = input.downcast_ref::<ChangeMessageVisibilityBatchInput>() {
        return Some(count(batch.entries().len()));
    }
    if let Some(batch) = input.downcast_ref::<SendMessageBatchInput>() {
        return Some(count(batch.entries().len()));
    }
    None
}

/// The name of the operation being run, as the SDK records it.
fn operation_name(cfg: &ConfigBag) -> String {
    cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
        .map_or_else(|| "unknown".to_owned(), |m| m.name().to_owned())
}

impl Intercept for RequestInterceptor {
    fn name(&self) -> &'static str {
        "RequestMeter"
    }

    fn read_before_execution(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let entries = batch_entries(context.input());
        cfg.interceptor_state().store_put(BatchEntries(entries));
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput;
        let operation = operation_name(cfg);
        let received = context
            .output_or_error()
            .ok()
            .and_then(|output| output.downcast_ref::<ReceiveMessageOutput>())
            .map(|output| u64::try_from(output.messages().len()).unwrap_or(u64::MAX));
        let items = match (received, cfg.load::<BatchEntries>()) {
            (Some(received), _) => received,
            (None, Some(BatchEntries(Some(entries)))) => *entries,
            // A failed receive returned nothing.
            (None, _) if operation == "ReceiveMessage" => 0,
            (None, _) => 1,
        };
        self.meter.record(&operation, items);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_operation_from_the_target_header() {
        assert_eq!(
            operation_of(Some("DynamoDB_20120810.BatchGetItem")).as_deref(),
            Some("BatchGetItem")
        );
        assert_eq!(operation_of(None), None);
    }

    fn units(read: f64, write: f64) -> Units {
        Units { read, write }
    }

    #[test]
    fn reads_single_and_per_table_capacity() {
        assert_eq!(
            consumed(&json!({"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}})),
            vec![("t".to_owned(), units(0.5, 0.0))]
        );
        assert_eq!(
            consumed(&json!({"ConsumedCapacity": [
                {"TableName": "a", "CapacityUnits": 1.5, "ReadCapacityUnits": 1.5},
                {"TableName": "b", "CapacityUnits": 2.0, "ReadCapacityUnits": 2.0}
            ]})),
            vec![
                ("a".to_owned(), units(1.5, 0.0)),
                ("b".to_owned(), units(2.0, 0.0))
            ]
        );
        let mut write = json!({"ConsumedCapacity": [{"TableName": "e", "CapacityUnits": 4.0}]});
        relabel_as_writes(&mut write);
        assert_eq!(consumed(&write), vec![("e".to_owned(), units(0.0, 4.0))]);
        assert_eq!(consumed(&json!({})), vec![]);
    }

    #[test]
    fn tallies_capacity_in_all_and_per_table() {
        let meter = DynamoMeter::new();
        meter.record(
            "TransactGetItems",
            Some(&json!({"ConsumedCapacity": [
                {"TableName": "a", "CapacityUnits": 2.0, "ReadCapacityUnits": 2.0},
                {"TableName": "b", "CapacityUnits": 1.0, "ReadCapacityUnits": 1.0}
            ]})),
        );
        meter.record(
            "GetItem",
            Some(&json!({"ConsumedCapacity": {"TableName": "a", "CapacityUnits": 0.5}})),
        );
        let tally = meter.take();
        assert_eq!(tally.read_units, 3.5);
        assert_eq!(tally.by_table["a"], units(2.5, 0.0));
        assert_eq!(tally.by_table["b"], units(1.0, 0.0));
    }

    #[test]
    fn request_tallies_count_items_and_empty_polls() {
        let meter = RequestMeter::new();
        meter.record("PublishBatch", 10);
        meter.record("PublishBatch", 3);
        meter.record("ReceiveMessage", 0);
        meter.record("ReceiveMessage", 4);
        let snapshot = meter.snapshot();
        assert_eq!(snapshot.requests_of("PublishBatch"), 2);
        assert_eq!(snapshot.items_of("PublishBatch"), 13);
        assert_eq!(snapshot.total_requests(), 4);
        assert_eq!(snapshot.requests_with_items(), 3);
        assert_eq!(snapshot.operations(), "PublishBatch×2 ReceiveMessage×2");
        assert_eq!(meter.take(), snapshot);
        assert_eq!(meter.take(), RequestTally::default());
    }

    #[test]
    fn take_resets_the_tally() {
        let meter = DynamoMeter::new();
        meter.record(
            "GetItem",
            Some(&json!({"ConsumedCapacity": {"CapacityUnits": 1.0}})),
        );
        meter.record("GetItem", None);
        let tally = meter.take();
        assert_eq!(tally.total_requests(), 2);
        assert_eq!(tally.operations(), "GetItem×2");
        assert_eq!(tally.read_units, 1.0);
        assert_eq!(meter.take(), Tally::default());
    }
}
