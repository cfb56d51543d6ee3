//! The smallest `lambda_runtime` function: answers every event with itself. The baseline the
//! benchmark sets the Lambda binaries' size, start and memory beside.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
