//! `GET /openapi.json`: the document is served as written, and every operation it lists is
//! routed through the gateway (what no route takes gets the routers' fallback: a 405 for another
//! method of a documented path, else a 404 whose error names the `path`).

use reqwest::Method;
use serde_json::{json, Value};
use tests::Api;

/// The document as written in the repository.
const DOCUMENT: &str = include_str!("../../../common/openapi.json");

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("common/openapi.json is JSON")
}

#[tokio::test]
async fn the_document_is_served_as_written() {
    let api = Api::new();

    let reply = api.get("/openapi.json", None).await;

    assert_eq!(reply.expect(200), &document());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(
        reply.header("cache-control").is_some(),
        "{:?}",
        reply.headers
    );
}

/// A value for a path parameter that names nothing that exists.
fn placeholder(name: &str) -> &'static str {
    match name {
        "aggregateType" => "User",
        "id" => "1",
        _ => "openapi-nothing-by-this-name",
    }
}

/// `/profiles/{username}` with each parameter replaced by a placeholder.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => placeholder(name).to_owned(),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Without a token and with an empty body, nothing is changed: every write is refused (401 or
/// 422), or changes nothing; the handler that answers is the operation's, not the fallback.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let api = Api::new();
    let document = document();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let mut request = api.request(method.clone(), &concrete(path), None);
            if matches!(method, Method::POST | Method::PUT) {
                request = request.json(&json!({}));
            }

            let reply = api.send(request).await;

            assert!(
                reply.body.is_object() && reply.body["errors"].get("path").is_none(),
                "{method} {path}: {} with {}: not routed?",
                reply.status,
                reply.shown_body()
            );
            assert_ne!(reply.status.as_u16(), 405, "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked > 19, "only {checked} operations in the document");
}

/// What no route takes: another method of a documented path is a 405 that lists the path's
/// methods in `Allow` (on whichever side the gateway sends it to), an undocumented path a 404.
#[tokio::test]
async fn an_undocumented_method_is_405_with_allow_and_an_unknown_path_404() {
    let api = Api::new();
    for (method, path, allow) in [
        (Method::TRACE, "/tags", "GET, HEAD"),
        (Method::PUT, "/tags", "GET, HEAD"),
        (
            Method::PATCH,
            "/articles/some-slug",
            "GET, HEAD, PUT, DELETE",
        ),
        (Method::GET, "/users", "POST"),
        (Method::DELETE, "/user", "GET, HEAD, PUT"),
    ] {
        let reply = api.send(api.request(method.clone(), path, None)).await;
        assert_eq!(
            reply.status.as_u16(),
            405,
            "{method} {path}: {}",
            reply.shown_body()
        );
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
        assert!(reply.body["errors"]["method"].is_array(), "{method} {path}");
    }
    let reply = api.get("/no-such-thing", None).await;
    assert_eq!(reply.status.as_u16(), 404);
    assert!(reply.body["errors"]["path"].is_array());
}
