//! The one HTTP error type of both APIs, with its one mapping to status codes and RealWorld bodies.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// Everything an endpoint can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 with `WWW-Authenticate: Token`: missing, malformed, tampered or expired token, or a
    /// wrong login.
    #[error("unauthorized")]
    Unauthorized {
        field: &'static str,
        message: &'static str,
    },
    /// 403: acting on someone else's resource.
    #[error("forbidden")]
    Forbidden,
    /// 404: the named resource does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: a concurrent change won; the client may retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 400: the body is not JSON at all.
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// 413: the body is larger than the gateway accepts.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415: the body is not declared as JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 422: invalid input, field by field.
    #[error("unprocessable: {0:?}")]
    Unprocessable(BTreeMap<String, Vec<String>>),
    /// 503: a dependency (DynamoDB) is unavailable; logged, not shown.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug or corrupt data; logged with its sources in one line, not shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 500 that keeps what caused it: an error (its sources are logged with it) or a text.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(cause.into())
    }

    /// A 422 for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Unprocessable(BTreeMap::from([(field.into(), vec![message.into()])]))
    }

    /// The 401 for a request without a usable token.
    pub fn missing_token() -> Self {
        ApiError::Unauthorized {
            field: "token",
            message: "is missing or invalid",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> BTreeMap<String, Vec<String>> {
        let one =
            |field: &str, message: String| BTreeMap::from([(field.to_owned(), vec![message])]);
        match self {
            ApiError::Unauthorized { field, message } => one(field, (*message).to_owned()),
            ApiError::Forbidden => one("body", "you may not change what someone else owns".into()),
            ApiError::NotFound(what) => one(what, "not found".into()),
            ApiError::Conflict(_) => one("body", "changed concurrently, try again".into()),
            ApiError::BadRequest(reason) => one("body", reason.clone()),
            ApiError::PayloadTooLarge => one("body", "request body is too large".into()),
            ApiError::UnsupportedMediaType => {
                one("body", "expected Content-Type: application/json".into())
            }
            ApiError::Unprocessable(fields) => fields.clone(),
            ApiError::Unavailable(_) => one("body", "service temporarily unavailable".into()),
            ApiError::Internal(_) => one("body", "internal error".into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Unavailable(detail) => tracing::error!(%detail, "dependency unavailable"),
            ApiError::Internal(_) => tracing::error!(error = %one_line(&self), "internal error"),
            other => tracing::debug!(error = %other, "request refused"),
        }
        let body = serde_json::json!({ "errors": self.body() });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized { .. }) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        response
    }
}

/// A JSON request body whose rejections are RealWorld errors: 400 for bytes that are not
/// JSON, 422 for JSON of the wrong shape, 415 for another content type.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::field("body", shape_error(&e.body_text())))
            }
            Err(JsonRejection::JsonSyntaxError(_)) => Err(ApiError::BadRequest(
                "request body is not valid JSON".into(),
            )),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(other) if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// serde's message without the "Failed to deserialize the JSON body into the target type" preamble.
fn shape_error(text: &str) -> String {
    text.rsplit_once(": ")
        .map(|(_, detail)| detail.to_owned())
        .unwrap_or_else(|| text.to_owned())
}

/// An error and its sources in one line, each text said once: what a log line or an error
/// message carries, never the SDK's debug dump of the raw response (headers and body).
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let told = cause.to_string();
        // The SDK's wrappers repeat their source's text.
        if !text.contains(&told) {
            text.push_str(": ");
            text.push_str(&told);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_cause_for_the_log_only() {
        let error = ApiError::internal(std::io::Error::other("stored hash unreadable"));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(one_line(&error), "internal error: stored hash unreadable");
        assert_eq!(
            error.body(),
            BTreeMap::from([("body".to_owned(), vec!["internal error".to_owned()])])
        );
    }

    #[test]
    fn each_error_has_one_status() {
        assert_eq!(ApiError::missing_token().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ApiError::Forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ApiError::NotFound("profile").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::field("email", "x").status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    async fn post_json(
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        use tower::ServiceExt;
        async fn echo(
            JsonBody(value): JsonBody<serde_json::Value>,
        ) -> axum::Json<serde_json::Value> {
            axum::Json(value)
        }
        let app = axum::Router::new().route("/", axum::routing::post(echo));
        let mut request = axum::http::Request::post("/");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = app
            .oneshot(request.body(axum::body::Body::from(body)).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn body_rejections_are_realworld_errors() {
        let json = Some("application/json");
        let (status, body) = post_json(b"{not json".to_vec(), json).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["errors"]["body"].is_array());
        let (status, _) = post_json(b"{}".to_vec(), None).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // Over axum's default 2 MB body limit.
        let huge = format!("{{\"p\":\"{}\"}}", "p".repeat(3_000_000)).into_bytes();
        let (status, body) = post_json(huge, json).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body["errors"]["body"].is_array());
    }

    #[test]
    fn internal_details_stay_out_of_the_body() {
        let error = ApiError::internal("table conduit-users: secret detail");
        let body = serde_json::to_string(&error.body()).expect("json");
        assert!(!body.contains("secret detail"));
    }
}
