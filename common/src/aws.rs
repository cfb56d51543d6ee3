//! The AWS SDK configuration, loaded once per process from the standard environment (Lambda,
//! or `AWS_ENDPOINT_URL_*` overrides). Each function builds from it only the clients it uses.

use aws_config::{BehaviorVersion, SdkConfig};

/// The SDK configuration from the environment.
pub async fn config_from_env() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// A DynamoDB client from the environment: what every function but the fan-out needs.
pub async fn dynamodb_from_env() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&config_from_env().await)
}
