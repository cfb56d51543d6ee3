//! The query API Lambda: build its one client (DynamoDB) once, serve the router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    common::telemetry::init();
    let dynamodb = common::aws::dynamodb_from_env().await;
    let state = query_api::AppState::from_env(&dynamodb).await?;
    lambda_http::run(query_api::router(state)).await
}
