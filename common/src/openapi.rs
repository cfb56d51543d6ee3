//! The OpenAPI 3.1 document of everything the API serves (`common/openapi.json`, served by the
//! query side at `GET /api/openapi.json`), and what both routers answer to a request no route
//! of theirs takes: `405` with `Allow` for a documented path and another method, else `404`.
//!
//! Both sides need the whole document for that: the gateway sends a method to one side only,
//! so the command side alone cannot tell that `PUT /api/tags` names a resource read elsewhere.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The document, as written in the repository.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// A documented path under `/api` as its segments (`None`: a parameter), with its methods.
type Documented = (Vec<Option<String>>, Vec<Method>);

/// Every documented path.
static PATHS: LazyLock<Vec<Documented>> = LazyLock::new(|| {
    let document: Value = serde_json::from_str(DOCUMENT).unwrap_or_default();
    let base = document["servers"][0]["url"].as_str().unwrap_or("/api");
    let Some(paths) = document["paths"].as_object() else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|(path, item)| {
            let segments = format!("{base}{path}")
                .split('/')
                .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
                .collect();
            let mut methods: Vec<Method> = item
                .as_object()
                .into_iter()
                .flat_map(|operations| operations.keys())
                .filter_map(|m| Method::from_bytes(m.to_uppercase().as_bytes()).ok())
                .collect();
            // A GET route answers HEAD too (axum, and the gateway sends both to the query side).
            if methods.contains(&Method::GET) {
                methods.push(Method::HEAD);
            }
            // One fixed order (GET and HEAD first), whatever order the document's keys came in.
            let order = [
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ];
            methods.sort_by_key(|m| order.iter().position(|o| o == m).unwrap_or(order.len()));
            (segments, methods)
        })
        .collect()
});

/// The methods documented for `path` (a request path, `/api/...`), or `None` if no documented
/// path matches it. A literal segment outranks a parameter, as in routing.
pub fn methods_of(path: &str) -> Option<&'static [Method]> {
    let segments: Vec<&str> = path.split('/').collect();
    PATHS
        .iter()
        .filter(|(template, _)| {
            template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| match t {
                    Some(literal) => literal == s,
                    None => !s.is_empty(),
                })
        })
        .max_by_key(|(template, _)| template.iter().filter(|t| t.is_some()).count())
        .map(|(_, methods)| methods.as_slice())
}

/// The fallback of both routers: `405` with `Allow` when the path is documented with other
/// methods, `404` when it is not documented at all. Bodies are RealWorld errors.
pub async fn unrouted(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    match methods_of(path) {
        Some(methods) if !methods.contains(&method) => {
            let allow = methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let body = serde_json::json!({ "errors": {
                "method": [format!("{method} is not allowed here; allowed: {allow}")]
            }});
            let mut response = (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response();
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
        _ => {
            let body = serde_json::json!({ "errors": { "path": ["no such resource"] } });
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_paths_match_with_their_parameters() {
        assert_eq!(
            methods_of("/api/tags"),
            Some([Method::GET, Method::HEAD].as_slice())
        );
        assert_eq!(
            methods_of("/api/articles/some-slug"),
            Some([Method::GET, Method::HEAD, Method::PUT, Method::DELETE].as_slice())
        );
        // The literal `feed` wins over `{slug}`.
        assert_eq!(
            methods_of("/api/articles/feed"),
            Some([Method::GET, Method::HEAD].as_slice())
        );
        assert_eq!(methods_of("/api/nothing"), None);
        assert_eq!(methods_of("/api/articles//comments"), None);
        assert_eq!(methods_of("/tags"), None);
    }

    #[tokio::test]
    async fn another_method_is_405_with_allow_and_an_unknown_path_404() {
        let response = unrouted(Method::TRACE, Uri::from_static("/api/tags")).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert!(body["errors"]["method"][0]
            .as_str()
            .is_some_and(|m| m.starts_with("TRACE is not allowed")));
        let response = unrouted(Method::GET, Uri::from_static("/api/nope")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    /// The `pattern` of `conduit-min-position` is the grammar `Position::parse_list` parses:
    /// a client (or a fuzzer) that follows the document is never refused, and one that does
    /// not is.
    #[test]
    fn the_min_position_pattern_is_what_the_parser_accepts() {
        let document: Value = serde_json::from_str(DOCUMENT).expect("json");
        let pattern = document["components"]["parameters"]["MinPosition"]["schema"]["pattern"]
            .as_str()
            .expect("a pattern");
        let pattern = regex::Regex::new(pattern).expect("a regex");
        let twenty = vec!["User#a@1"; 20].join(", ");
        let twenty_one = vec!["User#a@1"; 21].join(",");
        let long_id = format!("A#{}@1", "x".repeat(200));
        let too_long_id = format!("A#{}@1", "x".repeat(201));
        for sample in [
            "Article#9b2f6c1e-54a8-4c0e-8d47-2f1f6b1f0a11@3",
            "User#a@1,Article#b_c:d.e@9999999999999999999",
            "User#a@1 ,\tUser#b@2",
            twenty.as_str(),
            long_id.as_str(),
            "",
            " ",
            "User#a@0",
            "User#a@01",
            "User#a@+1",
            "User#a@12345678901234567890",
            "User#a@1,",
            "User#a@1,,User#b@2",
            " User#a@1",
            "Us er#a@1",
            "User#a b@1",
            "User#@1",
            "#a@1",
            "User#a",
            "i\"AJ(4<ie",
            twenty_one.as_str(),
            too_long_id.as_str(),
        ] {
            assert_eq!(
                pattern.is_match(sample),
                crate::projections::Position::parse_list(sample).is_ok(),
                "{sample:?}"
            );
        }
    }
}
