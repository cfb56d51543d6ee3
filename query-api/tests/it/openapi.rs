//! The served OpenAPI document against the RealWorld contract it extends: every path, method,
//! status, schema and security requirement of the contract is in it, unchanged, and the
//! read-your-writes headers are documented where they are sent.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// What `GET /api/openapi.json` serves (the same file `query-api/src/openapi.rs` compiles in).
const SERVED: &str = include_str!("../../../common/openapi.json");
/// The vendored RealWorld contract.
const CONTRACT: &str = include_str!("../../../docs/realworld-openapi.yml");

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn served() -> Value {
    serde_json::from_str(SERVED).expect("common/openapi.json is JSON")
}

fn contract() -> Value {
    yaml_serde::from_str(CONTRACT).expect("docs/realworld-openapi.yml is YAML")
}

/// `value` with every local `$ref` replaced by what it points at in `document`.
fn resolved(value: &Value, document: &Value) -> Value {
    fn go(value: &Value, document: &Value, depth: usize) -> Value {
        assert!(depth < 64, "reference cycle at {value}");
        match value {
            Value::Object(map) => match map.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let target = reference
                        .strip_prefix('#')
                        .and_then(|pointer| document.pointer(pointer))
                        .unwrap_or_else(|| panic!("{reference} points at nothing"));
                    go(target, document, depth + 1)
                }
                None => Value::Object(
                    map.iter()
                        .map(|(k, v)| (k.clone(), go(v, document, depth + 1)))
                        .collect(),
                ),
            },
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| go(v, document, depth + 1)).collect())
            }
            other => other.clone(),
        }
    }
    go(value, document, 0)
}

/// Every `(path, method, operation)` of a document.
fn operations(document: &Value) -> Vec<(String, String, Map<String, Value>)> {
    let paths = document["paths"].as_object().expect("paths");
    let mut found = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                let operation = operation.as_object().expect("operation").clone();
                found.push((path.clone(), method.clone(), operation));
            }
        }
    }
    found
}

#[test]
fn the_vendored_contract_is_the_shared_one() {
    let shared =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/realworld/openapi.yml");
    match std::fs::read_to_string(&shared) {
        Ok(text) => assert!(
            text == CONTRACT,
            "docs/realworld-openapi.yml differs from {}: copy it again",
            shared.display()
        ),
        Err(e) => eprintln!("{} not compared: {e}", shared.display()),
    }
}

#[test]
fn every_path_method_and_status_of_the_contract_is_served() {
    let contract = contract();
    let served = served();
    let operations = operations(&contract);
    assert_eq!(
        operations.len(),
        19,
        "the RealWorld contract has 19 operations"
    );
    for (path, method, operation) in operations {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{method} {path}");
        for status in responses.keys() {
            assert!(
                served["paths"][&path][&method]["responses"][status].is_object(),
                "{} {path} {status} is not in the served document",
                method.to_uppercase()
            );
        }
    }
}

/// Every part of each contract operation is in the served one unchanged, references resolved;
/// the served one only adds parameters, statuses and response headers.
#[test]
fn every_contract_operation_is_served_unchanged() {
    let contract = contract();
    let served = served();
    for (path, method, operation) in operations(&contract) {
        let at = format!("{} {path}", method.to_uppercase());
        let ours = served["paths"][&path][&method]
            .as_object()
            .unwrap_or_else(|| panic!("{at} is not served"));
        for (key, theirs) in &operation {
            match key.as_str() {
                "parameters" => {
                    let ours = resolved(&ours["parameters"], &served);
                    let ours = ours.as_array().expect("parameters");
                    for parameter in resolved(theirs, &contract).as_array().expect("parameters") {
                        assert!(
                            ours.contains(parameter),
                            "{at}: parameter {parameter} missing"
                        );
                    }
                }
                "responses" => {
                    for (status, response) in theirs.as_object().expect("responses") {
                        let theirs = resolved(response, &contract);
                        let ours = resolved(&ours["responses"][status], &served);
                        for part in ["description", "content"] {
                            assert_eq!(ours[part], theirs[part], "{at} {status}: {part} differs");
                        }
                    }
                }
                _ => assert_eq!(
                    resolved(&ours[key], &served),
                    resolved(theirs, &contract),
                    "{at}: {key} differs"
                ),
            }
        }
        // An operation the contract leaves open to anyone stays open.
        if operation.get("security").is_none() {
            assert!(ours.get("security").is_none(), "{at} requires a token");
        }
    }
}

#[test]
fn the_contract_components_are_served_unchanged() {
    let contract = contract();
    let served = served();
    for kind in ["schemas", "requestBodies", "parameters", "securitySchemes"] {
        let theirs = contract["components"][kind].as_object().expect(kind);
        for (name, component) in theirs {
            assert_eq!(
                &served["components"][kind][name], component,
                "components.{kind}.{name} differs"
            );
        }
    }
    for (name, response) in contract["components"]["responses"]
        .as_object()
        .expect("responses")
    {
        let ours = &served["components"]["responses"][name];
        for part in ["description", "content"] {
            assert_eq!(
                &ours[part], &response[part],
                "components.responses.{name}.{part}"
            );
        }
    }
}

#[test]
fn the_served_document_says_where_it_is_served() {
    let served = served();
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(
        served["servers"],
        serde_json::json!([{
            "url": "/api",
            "description": served["servers"][0]["description"],
        }])
    );
    let description = served["info"]["description"].as_str().expect("description");
    for term in [
        "conduit-position",
        "conduit-min-position",
        "conduit-consistency",
        "stale",
        "CONDUIT_WRITE_WAIT_MS",
        "respond-async",
        "behind",
    ] {
        assert!(
            description.contains(term),
            "info.description does not explain {term}"
        );
    }
}

/// Success responses of writes name their position; reads of read models take a minimum
/// position and say how consistent they are.
#[test]
fn the_read_your_writes_headers_are_documented_where_they_apply() {
    let served = served();
    // Reads that do not go through the read-your-writes wait: the document itself, and the
    // event log, which is always current.
    let not_projected = ["/openapi.json", "/events/{aggregateType}/{aggregateId}"];
    let mut reads = 0;
    let mut writes = 0;
    for (path, method, operation) in operations(&served) {
        let at = format!("{} {path}", method.to_uppercase());
        let operation = resolved(&Value::Object(operation), &served);
        let successes: Vec<&Value> = operation["responses"]
            .as_object()
            .expect("responses")
            .iter()
            .filter(|(status, _)| status.starts_with('2'))
            .map(|(_, response)| response)
            .collect();
        assert!(!successes.is_empty(), "{at} has no success response");
        if method == "get" {
            if not_projected.contains(&path.as_str()) {
                continue;
            }
            reads += 1;
            let parameters = operation["parameters"].as_array().expect("parameters");
            assert!(
                parameters
                    .iter()
                    .any(|p| p["in"] == "header" && p["name"] == "conduit-min-position"),
                "{at} does not take conduit-min-position"
            );
            assert!(operation["responses"]["400"].is_object(), "{at}: no 400");
            for response in successes {
                assert!(
                    response["headers"]["conduit-consistency"].is_object(),
                    "{at} does not document conduit-consistency"
                );
            }
        } else if path != "/users/login" {
            writes += 1;
            let parameters = operation["parameters"].as_array().expect("parameters");
            assert!(
                parameters
                    .iter()
                    .any(|p| p["in"] == "header" && p["name"] == "Prefer"),
                "{at} does not take Prefer"
            );
            for response in successes {
                for header in [
                    "conduit-position",
                    "conduit-consistency",
                    "conduit-behind",
                    "preference-applied",
                    "server-timing",
                ] {
                    assert!(
                        response["headers"][header].is_object(),
                        "{at} does not document {header}"
                    );
                }
                let said = &response["headers"]["conduit-consistency"]["schema"]["enum"];
                for value in ["current", "behind", "unchecked"] {
                    assert!(
                        said.as_array()
                            .is_some_and(|v| v.contains(&Value::from(value))),
                        "{at}: conduit-consistency does not list {value}"
                    );
                }
            }
        }
    }
    // The RealWorld reads, the views' index, and a page and an item path for each view.
    let views = query_api::views::View::ALL.len();
    assert_eq!((reads, writes), (7 + 1 + 2 * views, 12));
}
