//! AWS on one machine: the emulators' processes (DynamoDB Local, moto), provisioning of what
//! `infra` defines, the event source mappings (stream → fan-out, queue → projector) and the
//! Lambda Runtime API that run the functions as Lambda does, a request meter for the SDK
//! clients, and the kit the integration tests start it all with. Never deployed: a dependency
//! of the local stack and the benchmark, and a dev-dependency of the services.

pub mod emulators;
pub mod esm;
pub mod meter;
pub mod provision;
pub mod runtime_api;
pub mod testkit;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// The four SDK clients the local stack and the tests use. Cheap to clone (each is an `Arc`
/// inside).
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
}

/// Where the local emulators listen.
#[derive(Clone, Debug)]
pub struct LocalEndpoints {
    /// DynamoDB Local (DynamoDB and DynamoDB Streams), e.g. `http://127.0.0.1:8100`.
    pub dynamodb: String,
    /// moto server (SNS and SQS), e.g. `http://127.0.0.1:8101`.
    pub moto: String,
}

/// Region and static credentials used for every local run: the emulators accept anything,
/// and static credentials keep the SDK from ever asking the instance metadata service.
pub const LOCAL_REGION: &str = "us-east-1";
pub const LOCAL_ACCESS_KEY_ID: &str = "conduitlocal";
pub const LOCAL_SECRET_ACCESS_KEY: &str = "conduitlocal";

impl Clients {
    /// Clients for the local emulators, with a fixed region and static credentials.
    pub async fn local(endpoints: &LocalEndpoints) -> Self {
        let ddb = local_config(&endpoints.dynamodb).await;
        let moto = local_config(&endpoints.moto).await;
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&ddb),
            streams: aws_sdk_dynamodbstreams::Client::new(&ddb),
            sns: aws_sdk_sns::Client::new(&moto),
            sqs: aws_sdk_sqs::Client::new(&moto),
        }
    }
}

/// The SDK configuration for one emulator: fixed region, static credentials, its endpoint.
pub async fn local_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(LOCAL_REGION))
        .credentials_provider(Credentials::from_keys(
            LOCAL_ACCESS_KEY_ID,
            LOCAL_SECRET_ACCESS_KEY,
            None,
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}
