//! `GET /api/openapi.json`: the OpenAPI 3.1 document of everything the API serves.
//!
//! The document is `common/openapi.json` ([`common::openapi::DOCUMENT`]), compiled in: the RealWorld contract
//! (`docs/realworld-openapi.yml`, converted once) plus this project's own endpoints and the
//! read-your-writes headers. Tests hold it to the contract (`tests/it/openapi.rs`) and to the
//! routers (`local-stack/tests/it/openapi_routes.rs`).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

/// The served document, as written in the repository.
pub use common::openapi::DOCUMENT;

/// The document changes only with a deployment: caches may keep it a few minutes.
const CACHE_FOR: &str = "public, max-age=300";

pub async fn get() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, CACHE_FOR),
        ],
        DOCUMENT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_document_is_an_openapi_3_1_json_object() {
        let document: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["title"], "Conduit-ES API");
        assert_eq!(document["servers"][0]["url"], "/api");
        assert!(document["paths"]["/openapi.json"]["get"].is_object());
    }

    #[tokio::test]
    async fn it_is_served_as_json_that_caches_may_keep() {
        let response = get().await.into_response();
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[CACHE_CONTROL], CACHE_FOR);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(body, DOCUMENT.as_bytes());
    }

    /// A type with upcasters has had several versions: each has its schema in the document,
    /// named `<type>V<version>`, up to the current one.
    #[test]
    fn every_version_of_an_upcast_type_has_its_schema() {
        use events::EventSchema;
        let document: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        let upcasters = [
            events::user::UserEvent::UPCASTERS,
            events::article::ArticleEvent::UPCASTERS,
            events::comment::CommentEvent::UPCASTERS,
            events::favorite::FavoriteEvent::UPCASTERS,
        ]
        .concat();
        assert!(!upcasters.is_empty());
        for upcaster in upcasters {
            for version in [upcaster.from, upcaster.from + 1] {
                let name = format!("{}V{version}", upcaster.event_type);
                assert!(
                    document["components"]["schemas"][&name].is_object(),
                    "no schema {name} in the document"
                );
            }
        }
    }

    /// Each view is documented as its own two paths, from what the code says of it: its
    /// filter is a parameter of its page and of no other view's, a private view needs a token,
    /// and only `feeds` pages its items.
    #[test]
    fn each_view_is_documented_as_the_code_defines_it() {
        use crate::views::View;
        let document: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        let names = |operation: &Value| -> Vec<String> {
            operation["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        };
        let filters: Vec<&str> = View::ALL.iter().filter_map(|v| v.filter()).collect();
        for view in View::ALL {
            let page = &document["paths"][format!("/views/{}", view.name())]["get"];
            let item = &document["paths"][format!("/views/{}/{{id}}", view.name())]["get"];
            assert!(page.is_object() && item.is_object(), "{}", view.name());
            let page_parameters = names(page);
            for filter in &filters {
                assert_eq!(
                    page_parameters.iter().any(|p| p == filter),
                    view.filter() == Some(*filter),
                    "{}: {filter}",
                    view.name()
                );
            }
            assert!(page_parameters.contains(&"cursor".to_owned()));
            assert_eq!(
                names(item).contains(&"cursor".to_owned()),
                view == View::Feeds,
                "{}",
                view.name()
            );
            let open = serde_json::json!([{}, {"Token": []}]);
            for operation in [page, item] {
                assert_eq!(
                    operation["security"] != open,
                    view.private(),
                    "{}",
                    view.name()
                );
            }
            let listed = &document["components"]["schemas"]["ViewName"]["enum"];
            assert!(listed
                .as_array()
                .is_some_and(|names| names.contains(&Value::from(view.name()))));
        }
    }

    #[test]
    fn every_local_reference_resolves() {
        let document: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        let mut references = Vec::new();
        collect_references(&document, &mut references);
        assert!(!references.is_empty());
        for reference in references {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{reference} is not a local reference"));
            assert!(
                document.pointer(pointer).is_some(),
                "{reference} points at nothing"
            );
        }
    }

    fn collect_references(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    into.push(reference.clone());
                }
                map.values().for_each(|v| collect_references(v, into));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_references(v, into)),
            _ => {}
        }
    }
}
