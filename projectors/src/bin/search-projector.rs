//! The search projector Lambda: SQS batches of article events, applied to the search index.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init();
    let dynamodb = common::aws::dynamodb_from_env().await;
    let tables = common::config::table_names_from_env()?;
    let search = search::VersionedSearch::from_env(&tables.prefix)?;
    let projector = projectors::VersionedProjector::search(&dynamodb, &tables, search.clone());
    // A fresh deployment: the alias readers use, on the active version's index.
    let active = projector.registry().await?.state.active;
    search.ensure_alias(active).await?;
    // Applies each batch to the active version's index (a replay may switch it).
    let projector = &projector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(projector.handle_sqs(event.payload).await)
    }))
    .await
}
