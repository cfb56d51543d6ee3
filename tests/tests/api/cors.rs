//! What browsers and lost clients meet: CORS, and routes that do not exist.

use reqwest::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use reqwest::Method;
use serde_json::json;
use tests::{email_for, unique_name, Api};

const ORIGIN_URL: &str = "http://app.example.test:4100";

#[tokio::test]
async fn a_preflight_request_is_answered() {
    let api = Api::new();
    for (path, method) in [
        ("/users", "POST"),
        ("/user", "PUT"),
        ("/profiles/someone/follow", "DELETE"),
    ] {
        let reply = api
            .send(
                api.request(Method::OPTIONS, path, None)
                    .header(ORIGIN, ORIGIN_URL)
                    .header(ACCESS_CONTROL_REQUEST_METHOD, method)
                    .header(ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type"),
            )
            .await;

        assert!(reply.status.is_success(), "{path} {method}: {reply:#?}");
        let origin = reply.header(ACCESS_CONTROL_ALLOW_ORIGIN.as_str());
        assert!(
            origin == Some("*") || origin == Some(ORIGIN_URL),
            "{path} {method}: {reply:#?}"
        );
        let methods = reply
            .header(ACCESS_CONTROL_ALLOW_METHODS.as_str())
            .unwrap_or_default()
            .to_ascii_uppercase();
        assert!(methods.contains(method), "{path} {method}: {reply:#?}");
        let headers = reply
            .header(ACCESS_CONTROL_ALLOW_HEADERS.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            headers == "*"
                || (headers.contains("authorization") && headers.contains("content-type")),
            "{path} {method}: {reply:#?}"
        );
    }
}

#[tokio::test]
async fn answers_to_a_cross_origin_request_allow_the_origin() {
    let api = Api::new();
    let name = unique_name("cors");
    let allowed = |reply: &tests::Reply| {
        let origin = reply.header(ACCESS_CONTROL_ALLOW_ORIGIN.as_str());
        assert!(
            origin == Some("*") || origin == Some(ORIGIN_URL),
            "{reply:#?}"
        );
    };

    let created = api
        .send(
            api.request(Method::POST, "/users", None)
                .header(ORIGIN, ORIGIN_URL)
                .json(&json!({"user": {"username": name, "email": email_for(&name), "password": "p"}})),
        )
        .await;
    created.expect(201);
    allowed(&created);

    let missing = api
        .send(
            api.request(
                Method::GET,
                &format!("/profiles/{}", unique_name("nobody")),
                None,
            )
            .header(ORIGIN, ORIGIN_URL),
        )
        .await;
    missing.expect(404);
    allowed(&missing);

    let refused = api
        .send(
            api.request(Method::GET, "/user", None)
                .header(ORIGIN, ORIGIN_URL),
        )
        .await;
    refused.expect_unauthorized();
    allowed(&refused);
}

#[tokio::test]
async fn an_unknown_route_is_404() {
    let api = Api::new();
    for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
        let reply = api.send(api.request(method.clone(), "/nope", None)).await;
        assert_eq!(reply.status, 404, "{method} /api/nope: {reply:#?}");
    }
    let outside = api
        .send(
            api.request(Method::GET, "/users", None)
                .header(ORIGIN, ORIGIN_URL),
        )
        .await;
    assert!(
        outside.status.is_client_error(),
        "GET /api/users (only POST exists): {outside:#?}"
    );
}
