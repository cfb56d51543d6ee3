//! A DynamoDB meter: counts the requests a client sends and the capacity they consume.
//!
//! It is an SDK interceptor, so the code it measures stays as it is: before signing, it adds
//! `"ReturnConsumedCapacity": "TOTAL"` to every request that accepts it (unless the request
//! already asks for capacity), and after each response it adds up the `ConsumedCapacity` the
//! response reports. Benchmarks attach it to the API's clients to report what each endpoint
//! costs; tests use it to count requests.

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
        let (read, write) = consumed(response);
        tally.read_units += read;
        tally.write_units += write;
    }
}

/// The read and write units a response reports: `ConsumedCapacity` is one object (single-item
/// operations, `Query`) or a list of them, one per table (batch and transaction operations).
/// Each gives `ReadCapacityUnits` / `WriteCapacityUnits`, or only `CapacityUnits` (what
/// `TOTAL` returns), counted here as reads.
fn consumed(response: &Value) -> (f64, f64) {
    let entries: Vec<&Value> = match response.get("ConsumedCapacity") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let mut read = 0.0;
    let mut write = 0.0;
    for entry in entries {
        let number = |key: &str| entry.get(key).and_then(Value::as_f64);
        match (number("ReadCapacityUnits"), number("WriteCapacityUnits")) {
            // Only the total: a read's (a write's total is relabelled before, see
            // `relabel_as_writes`).
            (None, None) => read += number("CapacityUnits").unwrap_or(0.0),
            (r, w) => {
                read += r.unwrap_or(0.0);
                write += w.unwrap_or(0.0);
            }
        }
    }
    (read, write)
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

    #[test]
    fn adds_up_single_and_per_table_capacity() {
        assert_eq!(
            consumed(&json!({"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}})),
            (0.5, 0.0)
        );
        assert_eq!(
            consumed(&json!({"ConsumedCapacity": [
                {"TableName": "a", "CapacityUnits": 1.5, "ReadCapacityUnits": 1.5},
                {"TableName": "b", "CapacityUnits": 2.0, "ReadCapacityUnits": 2.0}
            ]})),
            (3.5, 0.0)
        );
        let mut write = json!({"ConsumedCapacity": [{"TableName": "e", "CapacityUnits": 4.0}]});
        relabel_as_writes(&mut write);
        assert_eq!(consumed(&write), (0.0, 4.0));
        assert_eq!(consumed(&json!({})), (0.0, 0.0));
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
