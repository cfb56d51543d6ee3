//! The query API Lambda: build clients once, serve the router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    common::telemetry::init();
    let clients = common::aws::Clients::from_env().await;
    let state = query_api::AppState::from_env(&clients).await?;
    lambda_http::run(query_api::router(state)).await
}
