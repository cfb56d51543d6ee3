//! The articles projector Lambda: SQS batches of article, comment and favorite events, applied to the articles, comments and favorites read models.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init();
    let dynamodb = common::aws::dynamodb_from_env().await;
    let tables = common::config::table_names_from_env()?;
    // Applies each batch to the projection's active version (a replay may switch it).
    let projector = projectors::VersionedProjector::articles(&dynamodb, &tables);
    let projector = &projector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(projector.handle_sqs(event.payload).await)
    }))
    .await
}
