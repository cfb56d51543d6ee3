//! One table of queries drives both adapters: the embedded index must return the expected ids,
//! and the OpenSearch body builder must send the expected filter for the same query.

use serde_json::{json, Value};

use crate::opensearch_adapter::search_body;
use crate::{ArticleDoc, ArticleQuery, EmbeddedIndex, Written};

fn article(id: &str, author: &str, tags: &[&str], day: u32) -> ArticleDoc {
    let created_at = format!("2024-01-{day:02}T00:00:00.000Z");
    ArticleDoc {
        article_id: id.into(),
        author_id: author.into(),
        slug: format!("slug-{id}"),
        title: format!("Title {id}"),
        description: format!("About {id}"),
        tag_list: tags.iter().map(|t| t.to_string()).collect(),
        updated_at: created_at.clone(),
        created_at,
    }
}

/// a7 is indexed, then deleted: no query may see it.
fn fixture() -> Vec<ArticleDoc> {
    vec![
        article("a1", "u1", &["dragons", "rust"], 1),
        article("a2", "u2", &["rust"], 2),
        article("a3", "u1", &["Rust"], 3),
        article("a4", "u2", &["dragons"], 4),
        article("a5", "u1", &[], 5),
        article("a6", "u3", &["rust", "zebra"], 6),
        article("a7", "u1", &["rust"], 7),
    ]
}

struct Case {
    name: &'static str,
    query: ArticleQuery,
    /// The page, newest first.
    ids: &'static [&'static str],
    total: u64,
    /// `query.bool.filter` of the OpenSearch body.
    filter: Value,
}

fn query(
    tag: Option<&str>,
    author: Option<&str>,
    ids: Option<&[&str]>,
    limit: usize,
    offset: usize,
) -> ArticleQuery {
    ArticleQuery {
        tag: tag.map(String::from),
        author_id: author.map(String::from),
        article_ids: ids.map(|ids| ids.iter().map(|id| id.to_string()).collect()),
        limit,
        offset,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "everything",
            query: query(None, None, None, 20, 0),
            ids: &["a6", "a5", "a4", "a3", "a2", "a1"],
            total: 6,
            filter: json!([]),
        },
        Case {
            name: "tag",
            query: query(Some("rust"), None, None, 20, 0),
            ids: &["a6", "a2", "a1"],
            total: 3,
            filter: json!([{"term": {"tagList": "rust"}}]),
        },
        Case {
            name: "tag is case-sensitive",
            query: query(Some("Rust"), None, None, 20, 0),
            ids: &["a3"],
            total: 1,
            filter: json!([{"term": {"tagList": "Rust"}}]),
        },
        Case {
            name: "tag is not a prefix",
            query: query(Some("rus"), None, None, 20, 0),
            ids: &[],
            total: 0,
            filter: json!([{"term": {"tagList": "rus"}}]),
        },
        Case {
            name: "author",
            query: query(None, Some("u1"), None, 20, 0),
            ids: &["a5", "a3", "a1"],
            total: 3,
            filter: json!([{"term": {"authorId": "u1"}}]),
        },
        Case {
            name: "ids, some unknown or deleted",
            query: query(None, None, Some(&["a1", "a4", "a7", "zz"]), 20, 0),
            ids: &["a4", "a1"],
            total: 2,
            filter: json!([{"terms": {"articleId": ["a1", "a4", "a7", "zz"]}}]),
        },
        Case {
            name: "no ids",
            query: query(None, None, Some(&[]), 20, 0),
            ids: &[],
            total: 0,
            filter: json!([{"terms": {"articleId": []}}]),
        },
        Case {
            name: "tag and author",
            query: query(Some("rust"), Some("u1"), None, 20, 0),
            ids: &["a1"],
            total: 1,
            filter: json!([{"term": {"tagList": "rust"}}, {"term": {"authorId": "u1"}}]),
        },
        Case {
            name: "tag, author and ids",
            query: query(
                Some("dragons"),
                Some("u2"),
                Some(&["a4", "a2", "a1"]),
                20,
                0,
            ),
            ids: &["a4"],
            total: 1,
            filter: json!([{"term": {"tagList": "dragons"}}, {"term": {"authorId": "u2"}},
                {"terms": {"articleId": ["a4", "a2", "a1"]}}]),
        },
        Case {
            name: "tag, author and no ids",
            query: query(Some("rust"), Some("u3"), Some(&[]), 20, 0),
            ids: &[],
            total: 0,
            filter: json!([{"term": {"tagList": "rust"}}, {"term": {"authorId": "u3"}},
                {"terms": {"articleId": []}}]),
        },
        Case {
            name: "a middle page",
            query: query(None, None, None, 2, 1),
            ids: &["a5", "a4"],
            total: 6,
            filter: json!([]),
        },
        Case {
            name: "past the end",
            query: query(None, None, None, 20, 6),
            ids: &[],
            total: 6,
            filter: json!([]),
        },
        Case {
            name: "count only",
            query: query(None, None, None, 0, 0),
            ids: &[],
            total: 6,
            filter: json!([]),
        },
        Case {
            name: "filtered last page",
            query: query(None, Some("u1"), None, 1, 2),
            ids: &["a1"],
            total: 3,
            filter: json!([{"term": {"authorId": "u1"}}]),
        },
    ]
}

#[tokio::test]
async fn the_embedded_index_returns_the_expected_ids() {
    let index = EmbeddedIndex::in_ram().unwrap();
    for doc in fixture() {
        assert_eq!(index.upsert(&doc, 1).await.unwrap(), Written::Applied);
    }
    assert_eq!(index.delete("a7", 2).await.unwrap(), Written::Applied);
    for case in cases() {
        let page = index.search(&case.query).await.unwrap();
        let ids: Vec<&str> = page.hits.iter().map(|h| h.article_id.as_str()).collect();
        assert_eq!(ids, case.ids, "{}", case.name);
        assert_eq!(page.total, case.total, "{}", case.name);
        for hit in &page.hits {
            let author = fixture()
                .into_iter()
                .find(|doc| doc.article_id == hit.article_id)
                .unwrap()
                .author_id;
            assert_eq!(hit.author_id, author, "{}", case.name);
        }
    }
}

#[test]
fn the_opensearch_body_sends_the_same_filters_and_window() {
    for case in cases() {
        let body = search_body(&case.query);
        assert_eq!(
            body["query"]["bool"]["filter"], case.filter,
            "{}",
            case.name
        );
        assert_eq!(body["from"], json!(case.query.offset), "{}", case.name);
        assert_eq!(body["size"], json!(case.query.limit), "{}", case.name);
        assert_eq!(body["sort"], json!([{"sortKey": "desc"}]), "{}", case.name);
    }
}
