//! The command API Lambda: build clients once, serve the router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    common::telemetry::init();
    let clients = common::aws::Clients::from_env().await;
    let state = command_api::AppState::from_env(&clients)?;
    lambda_http::run(command_api::router(state)).await
}
