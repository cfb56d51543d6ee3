//! The command API Lambda: build its one client (DynamoDB) once, serve the router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    common::telemetry::init();
    let dynamodb = common::aws::dynamodb_from_env().await;
    let state = command_api::AppState::from_env(&dynamodb)?;
    lambda_http::run(command_api::router(state)).await
}
