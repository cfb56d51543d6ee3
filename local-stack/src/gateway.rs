//! The local HTTP gateway: what API Gateway does in AWS, reads to the query router and writes to the command router, with CORS.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, Method};
use axum::Router;
use tower::ServiceExt;
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;

/// One router serving both sides under `/api`: `GET` and `HEAD` go to the query side, every
/// other method to the command side, as the HTTP API routes do in AWS.
pub fn gateway(command: Router, query: Router) -> Router {
    let dispatch = tower::service_fn(move |request: Request| {
        let side = if matches!(*request.method(), Method::GET | Method::HEAD) {
            query.clone()
        } else {
            command.clone()
        };
        async move { Ok::<_, Infallible>(side.oneshot(request).await.unwrap_or_else(|e| match e {})) }
    });
    Router::new()
        .fallback_service(dispatch)
        .layer(cors())
        .layer(TraceLayer::new_for_http())
}

/// Browsers call the API cross-origin; the same policy is set on the HTTP API in AWS.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static(common::projections::MIN_POSITION_HEADER),
            command_api::write_wait::PREFER,
        ])
        // Read-your-writes: a browser client must see the position a write answers with, and
        // whether a read reflects it; views page with a cursor header.
        .expose_headers([
            header::HeaderName::from_static(common::projections::POSITION_HEADER),
            header::HeaderName::from_static(common::projections::CONSISTENCY_HEADER),
            header::HeaderName::from_static(common::projections::BEHIND_HEADER),
            command_api::write_wait::PREFERENCE_APPLIED,
            command_api::write_wait::SERVER_TIMING,
            header::HeaderName::from_static(query_api::views::NEXT_CURSOR_HEADER),
        ])
        .max_age(Duration::from_secs(86_400))
}
