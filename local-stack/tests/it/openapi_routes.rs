//! The routers against the OpenAPI document: the two sides together serve exactly the documented
//! operations, each on the side the gateway sends its method to.

use std::collections::BTreeSet;

use axum::http::Method;
use serde_json::Value;

/// What `GET /api/openapi.json` serves.
const DOCUMENT: &str = include_str!("../../../common/openapi.json");

/// Every `(METHOD, /api/path)` the document lists.
fn documented() -> BTreeSet<(String, String)> {
    let document: Value = serde_json::from_str(DOCUMENT).expect("common/openapi.json is JSON");
    let base = document["servers"][0]["url"]
        .as_str()
        .expect("a server url");
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let method = method.to_uppercase();
            assert!(
                Method::from_bytes(method.as_bytes()).is_ok(),
                "{method} {path}: not a method"
            );
            operations.insert((method, shape(&format!("{base}{path}"))));
        }
    }
    operations
}

/// Every `(METHOD, /api/path)` of a router. The document lists each view as its own path
/// (`/views/tags`, `/views/tags/{id}`), each with its own parameters, where the router has one
/// route for all of them: its `{view}` stands for every view there is.
fn listed(operations: &[(Method, &'static str)]) -> BTreeSet<(String, String)> {
    operations
        .iter()
        .flat_map(|(method, path)| {
            let paths: Vec<String> = if path.contains("/views/{view}") {
                query_api::views::View::ALL
                    .iter()
                    .map(|view| path.replace("{view}", view.name()))
                    .collect()
            } else {
                vec![(*path).to_owned()]
            };
            paths
                .into_iter()
                .map(move |path| (method.as_str().to_owned(), shape(&path)))
        })
        .collect()
}

/// `path` with its parameters unnamed: the router and the document may name them differently
/// (`{aggregate_type}`, `{aggregateType}`), clients see only where they are.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The gateway (and the HTTP API in AWS) sends GET and HEAD to the query side.
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

#[test]
fn the_routers_serve_exactly_the_documented_operations() {
    let reads = query_api::operations();
    let writes = command_api::operations();
    let views = query_api::views::View::ALL.len();
    assert_eq!(
        reads.len() + 2 * (views - 1),
        listed(&reads).len(),
        "a read route twice"
    );
    assert_eq!(writes.len(), listed(&writes).len(), "a write route twice");
    for (method, path) in &reads {
        assert!(
            is_read(method),
            "{method} {path}: the gateway never sends it to the query side"
        );
    }
    for (method, path) in &writes {
        assert!(
            !is_read(method),
            "{method} {path}: the gateway never sends it to the command side"
        );
    }

    let served: BTreeSet<_> = listed(&reads).union(&listed(&writes)).cloned().collect();
    let documented = documented();

    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}
