//! One suite for both engines: every case writes the same articles into a fresh embedded
//! (tantivy) index and a fresh index on a real OpenSearch node, then asks both the same
//! questions. Each answer (ids in order, totals, tags, write outcomes) must be the expected
//! one on each engine, so the two cannot drift apart.
//!
//! The node is this test binary's own (`local_aws::testkit::opensearch`, started on first
//! use); every case gets indexes of its own under a unique prefix.

use std::future::Future;

use search::{
    ArticleDoc, ArticleQuery, BulkOutcome, BulkWrite, EmbeddedIndex, OpenSearchIndex, SearchIndex,
    Written, MAX_LIMIT, MAX_OFFSET,
};

/// A fresh, empty index of each engine, named after `case`.
pub async fn engines(case: &str) -> Vec<(&'static str, SearchIndex)> {
    let embedded = SearchIndex::Embedded(EmbeddedIndex::in_ram().expect("an index in RAM"));
    let prefix = local_aws::testkit::unique_prefix(case);
    let opensearch = SearchIndex::OpenSearch(
        OpenSearchIndex::new(
            local_aws::testkit::opensearch(),
            format!("{prefix}articles"),
            format!("{prefix}articles-v1"),
            None,
        )
        .expect("a client of the local node"),
    );
    let engines = vec![("embedded", embedded), ("opensearch", opensearch)];
    for (name, index) in &engines {
        index
            .ensure_index()
            .await
            .unwrap_or_else(|e| panic!("{case}: creating the {name} index: {e}"));
    }
    engines
}

/// Runs `check` on a fresh index of each engine, naming the engine in its failures.
async fn on_both<F, Fut>(case: &str, check: F)
where
    F: Fn(&'static str, SearchIndex) -> Fut,
    Fut: Future<Output = ()>,
{
    for (name, index) in engines(case).await {
        check(name, index).await;
    }
}

pub fn article(id: &str, author: &str, tags: &[&str], created_at: &str) -> ArticleDoc {
    ArticleDoc {
        article_id: id.into(),
        author_id: author.into(),
        slug: format!("slug-{id}"),
        title: format!("Title {id}"),
        description: format!("About {id}"),
        tag_list: tags.iter().map(|t| t.to_string()).collect(),
        created_at: created_at.into(),
        updated_at: created_at.into(),
    }
}

fn on_day(id: &str, author: &str, tags: &[&str], day: u32) -> ArticleDoc {
    article(id, author, tags, &format!("2024-01-{day:02}T00:00:00.000Z"))
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

fn everything(limit: usize, offset: usize) -> ArticleQuery {
    query(None, None, None, limit, offset)
}

/// The page's ids, newest first, and the total.
async fn page(engine: &str, index: &SearchIndex, query: &ArticleQuery) -> (Vec<String>, u64) {
    let page = index
        .search(query)
        .await
        .unwrap_or_else(|e| panic!("{engine}: search {query:?}: {e}"));
    let ids = page.hits.into_iter().map(|hit| hit.article_id).collect();
    (ids, page.total)
}

async fn tags(engine: &str, index: &SearchIndex) -> Vec<String> {
    index
        .tags()
        .await
        .unwrap_or_else(|e| panic!("{engine}: tags: {e}"))
}

async fn upsert(engine: &str, index: &SearchIndex, doc: &ArticleDoc, version: u64) -> Written {
    index
        .upsert(doc, version)
        .await
        .unwrap_or_else(|e| panic!("{engine}: upsert {} v{version}: {e}", doc.article_id))
}

async fn delete(engine: &str, index: &SearchIndex, id: &str, version: u64) -> Written {
    index
        .delete(id, version)
        .await
        .unwrap_or_else(|e| panic!("{engine}: delete {id} v{version}: {e}"))
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

/// Seven articles; a7 is indexed, then deleted: no query may see it.
fn fixture() -> Vec<ArticleDoc> {
    vec![
        on_day("a1", "u1", &["dragons", "rust"], 1),
        on_day("a2", "u2", &["rust"], 2),
        on_day("a3", "u1", &["Rust"], 3),
        on_day("a4", "u2", &["dragons"], 4),
        on_day("a5", "u1", &[], 5),
        on_day("a6", "u3", &["rust", "zebra"], 6),
        on_day("a7", "u1", &["rust"], 7),
    ]
}

struct Case {
    name: &'static str,
    query: ArticleQuery,
    /// The page, newest first.
    ids: &'static [&'static str],
    total: u64,
}

/// Every kind of query the API makes (`GET /api/articles` with its filters, alone and
/// together, and its paging).
fn query_cases() -> Vec<Case> {
    vec![
        Case {
            name: "everything",
            query: everything(20, 0),
            ids: &["a6", "a5", "a4", "a3", "a2", "a1"],
            total: 6,
        },
        Case {
            name: "tag",
            query: query(Some("rust"), None, None, 20, 0),
            ids: &["a6", "a2", "a1"],
            total: 3,
        },
        Case {
            name: "tag is case-sensitive",
            query: query(Some("Rust"), None, None, 20, 0),
            ids: &["a3"],
            total: 1,
        },
        Case {
            name: "tag is not a prefix",
            query: query(Some("rus"), None, None, 20, 0),
            ids: &[],
            total: 0,
        },
        Case {
            name: "author",
            query: query(None, Some("u1"), None, 20, 0),
            ids: &["a5", "a3", "a1"],
            total: 3,
        },
        Case {
            name: "unknown author",
            query: query(None, Some("u9"), None, 20, 0),
            ids: &[],
            total: 0,
        },
        Case {
            name: "ids, some unknown or deleted",
            query: query(None, None, Some(&["a1", "a4", "a7", "zz"]), 20, 0),
            ids: &["a4", "a1"],
            total: 2,
        },
        Case {
            name: "no ids",
            query: query(None, None, Some(&[]), 20, 0),
            ids: &[],
            total: 0,
        },
        Case {
            name: "tag and author",
            query: query(Some("rust"), Some("u1"), None, 20, 0),
            ids: &["a1"],
            total: 1,
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
        },
        Case {
            name: "tag, author and no ids",
            query: query(Some("rust"), Some("u3"), Some(&[]), 20, 0),
            ids: &[],
            total: 0,
        },
        Case {
            name: "a middle page",
            query: everything(2, 1),
            ids: &["a5", "a4"],
            total: 6,
        },
        Case {
            name: "past the end",
            query: everything(20, 6),
            ids: &[],
            total: 6,
        },
        Case {
            name: "count only",
            query: everything(0, 0),
            ids: &[],
            total: 6,
        },
        Case {
            name: "filtered last page",
            query: query(None, Some("u1"), None, 1, 2),
            ids: &["a1"],
            total: 3,
        },
        Case {
            name: "a page far past the end",
            query: everything(20, 50_000),
            ids: &[],
            total: 6,
        },
    ]
}

#[tokio::test]
async fn every_query_gives_the_same_page_and_total() {
    on_both("queries", |engine, index| async move {
        for doc in fixture() {
            assert_eq!(
                upsert(engine, &index, &doc, 1).await,
                Written::Applied,
                "{engine}"
            );
        }
        assert_eq!(
            delete(engine, &index, "a7", 2).await,
            Written::Applied,
            "{engine}"
        );
        let authors: std::collections::HashMap<String, String> = fixture()
            .into_iter()
            .map(|doc| (doc.article_id, doc.author_id))
            .collect();
        for case in query_cases() {
            let found = index
                .search(&case.query)
                .await
                .unwrap_or_else(|e| panic!("{engine}, {}: {e}", case.name));
            let ids: Vec<&str> = found.hits.iter().map(|h| h.article_id.as_str()).collect();
            assert_eq!(ids, case.ids, "{engine}, {}", case.name);
            assert_eq!(found.total, case.total, "{engine}, {}", case.name);
            for hit in &found.hits {
                assert_eq!(
                    Some(&hit.author_id),
                    authors.get(&hit.article_id),
                    "{engine}, {}",
                    case.name
                );
            }
        }
        assert_eq!(
            tags(engine, &index).await,
            strings(&["rust", "dragons", "Rust", "zebra"]),
            "{engine}: most used first, then by name; a7's use of rust is gone"
        );
    })
    .await;
}

#[tokio::test]
async fn an_empty_index_has_no_articles_and_no_tags() {
    on_both("empty", |engine, index| async move {
        assert_eq!(page(engine, &index, &everything(20, 0)).await, (vec![], 0));
        assert_eq!(tags(engine, &index).await, Vec::<String>::new(), "{engine}");
        // Creating it again changes nothing.
        index
            .ensure_index()
            .await
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert_eq!(page(engine, &index, &everything(20, 0)).await, (vec![], 0));
    })
    .await;
}

#[tokio::test]
async fn a_write_is_searchable_as_soon_as_it_returns() {
    // The read-your-writes wait reports a write once the projector has applied it: the very
    // next search must see it, with no refresh interval in between.
    on_both("refresh", |engine, index| async move {
        for n in 0..5u32 {
            let doc = on_day(&format!("r{n}"), "u1", &["fresh"], n + 1);
            upsert(engine, &index, &doc, 1).await;
            let (ids, total) = page(engine, &index, &query(Some("fresh"), None, None, 1, 0)).await;
            assert_eq!(
                (ids, total),
                (vec![doc.article_id.clone()], u64::from(n) + 1),
                "{engine}"
            );
        }
        let mut edited = on_day("r0", "u2", &["edited"], 1);
        edited.title = "Edited".into();
        upsert(engine, &index, &edited, 2).await;
        assert_eq!(
            page(engine, &index, &query(None, Some("u2"), None, 20, 0)).await,
            (strings(&["r0"]), 1),
            "{engine}: the edit is seen at once"
        );
        delete(engine, &index, "r1", 2).await;
        assert_eq!(
            page(engine, &index, &query(Some("fresh"), None, None, 20, 0)).await,
            (strings(&["r4", "r3", "r2"]), 3),
            "{engine}: the delete is seen at once"
        );
        assert_eq!(
            tags(engine, &index).await,
            strings(&["fresh", "edited"]),
            "{engine}"
        );
    })
    .await;
}

#[tokio::test]
async fn external_versions_keep_the_newest_write() {
    on_both("versions", |engine, index| async move {
        let v1 = on_day("v", "u1", &["one"], 1);
        let v3 = on_day("v", "u1", &["three"], 1);
        let v2 = on_day("v", "u1", &["two"], 1);
        assert_eq!(
            upsert(engine, &index, &v1, 1).await,
            Written::Applied,
            "{engine}"
        );
        assert_eq!(
            upsert(engine, &index, &v3, 3).await,
            Written::Applied,
            "{engine}"
        );
        assert_eq!(
            upsert(engine, &index, &v2, 2).await,
            Written::Stale,
            "{engine}: older"
        );
        assert_eq!(
            upsert(engine, &index, &v3, 3).await,
            Written::Stale,
            "{engine}: redelivery"
        );
        assert_eq!(tags(engine, &index).await, strings(&["three"]), "{engine}");

        // A delete older than the document changes nothing; a newer one removes it, and an
        // older write arriving after it cannot bring it back.
        assert_eq!(
            delete(engine, &index, "v", 2).await,
            Written::Stale,
            "{engine}"
        );
        assert_eq!(
            page(engine, &index, &everything(20, 0)).await.1,
            1,
            "{engine}"
        );
        assert_eq!(
            delete(engine, &index, "v", 4).await,
            Written::Applied,
            "{engine}"
        );
        assert_eq!(
            delete(engine, &index, "v", 4).await,
            Written::Stale,
            "{engine}: redelivery"
        );
        assert_eq!(
            upsert(engine, &index, &v3, 3).await,
            Written::Stale,
            "{engine}: resurrection"
        );
        assert_eq!(
            page(engine, &index, &everything(20, 0)).await,
            (vec![], 0),
            "{engine}"
        );
        assert_eq!(tags(engine, &index).await, Vec::<String>::new(), "{engine}");

        // Deleting an article the index never saw is applied, and remembered.
        assert_eq!(
            delete(engine, &index, "ghost", 5).await,
            Written::Applied,
            "{engine}"
        );
        let ghost = on_day("ghost", "u1", &["boo"], 2);
        assert_eq!(
            upsert(engine, &index, &ghost, 4).await,
            Written::Stale,
            "{engine}"
        );
        assert_eq!(
            upsert(engine, &index, &ghost, 6).await,
            Written::Applied,
            "{engine}"
        );
        assert_eq!(
            page(engine, &index, &everything(20, 0)).await,
            (strings(&["ghost"]), 1),
            "{engine}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_bulk_applies_in_order_counts_outcomes_and_repeats_as_stale() {
    on_both("bulk", |engine, index| async move {
        // More than one `_bulk` request's worth of actions (1,000 a request).
        let mut writes: Vec<BulkWrite> = (0..1_500u32)
            .map(|n| BulkWrite::Upsert {
                doc: article(
                    &format!("b{n:04}"),
                    &format!("u{}", n % 7),
                    &[["even", "odd"][n as usize % 2], "bulk"],
                    &format!("2024-02-01T00:00:{:02}.{:03}Z", n / 1000, n % 1000),
                ),
                version: 1,
            })
            .collect();
        // Later in the same bulk: an edit, a stale edit, a delete, a delete of an unknown id.
        writes.push(BulkWrite::Upsert {
            doc: article("b0000", "u0", &["edited"], "2024-02-01T00:00:00.000Z"),
            version: 2,
        });
        writes.push(BulkWrite::Upsert {
            doc: article("b0001", "u1", &["stale"], "2024-02-01T00:00:00.001Z"),
            version: 1,
        });
        writes.push(BulkWrite::Delete {
            article_id: "b0002".into(),
            version: 2,
        });
        writes.push(BulkWrite::Delete {
            article_id: "never".into(),
            version: 1,
        });
        let outcome = index
            .bulk(writes.clone())
            .await
            .unwrap_or_else(|e| panic!("{engine}: bulk: {e}"));
        assert_eq!(
            outcome,
            BulkOutcome {
                applied: 1_503,
                stale: 1
            },
            "{engine}"
        );
        // The whole bulk is searchable once it returns.
        assert_eq!(
            page(engine, &index, &everything(0, 0)).await.1,
            1_499,
            "{engine}"
        );
        assert_eq!(
            page(engine, &index, &everything(3, 0)).await.0,
            strings(&["b1499", "b1498", "b1497"]),
            "{engine}"
        );
        assert_eq!(
            page(engine, &index, &everything(3, 1_496)).await,
            (strings(&["b0003", "b0001", "b0000"]), 1_499),
            "{engine}: the last page, b0002 deleted"
        );
        assert_eq!(
            tags(engine, &index).await,
            strings(&["bulk", "odd", "even", "edited"]),
            "{engine}: 1,498 bulk, 750 odd, 748 even, 1 edited"
        );
        // The same bulk again changes nothing.
        let again = index
            .bulk(writes)
            .await
            .unwrap_or_else(|e| panic!("{engine}: bulk again: {e}"));
        assert_eq!(
            again,
            BulkOutcome {
                applied: 0,
                stale: 1_504
            },
            "{engine}"
        );
        assert_eq!(
            page(engine, &index, &everything(0, 0)).await.1,
            1_499,
            "{engine}"
        );
    })
    .await;
}

#[tokio::test]
async fn deep_pages_are_clamped_and_ties_in_one_millisecond_order_alike() {
    on_both("paging", |engine, index| async move {
        // 130 articles in 13 milliseconds: ten share each one, so their order is the
        // tie-breaker's, which both engines must apply the same way.
        let writes: Vec<BulkWrite> = (0..130u32)
            .map(|n| BulkWrite::Upsert {
                doc: article(
                    &format!("p{n}"),
                    "u1",
                    &["paged"],
                    &format!("2024-03-01T00:00:00.{:03}Z", n / 10),
                ),
                version: 1,
            })
            .collect();
        let mut expected: Vec<(i64, String)> = writes
            .iter()
            .map(|write| match write {
                BulkWrite::Upsert { doc, .. } => {
                    (doc.sort_key().expect("a sort key"), doc.article_id.clone())
                }
                BulkWrite::Delete { .. } => unreachable!("only upserts"),
            })
            .collect();
        expected.sort_by(|a, b| b.cmp(a));
        let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
        index
            .bulk(writes)
            .await
            .unwrap_or_else(|e| panic!("{engine}: {e}"));

        let mut walked = Vec::new();
        for offset in (0..130).step_by(20) {
            let (ids, total) = page(engine, &index, &everything(20, offset)).await;
            assert_eq!(total, 130, "{engine}");
            walked.extend(ids);
        }
        assert_eq!(walked, expected, "{engine}: pages of 20, newest first");
        // A larger page than MAX_LIMIT is served as MAX_LIMIT.
        let (ids, _) = page(engine, &index, &everything(MAX_LIMIT + 400, 0)).await;
        assert_eq!(ids, expected[..MAX_LIMIT], "{engine}");
        let (ids, _) = page(engine, &index, &everything(MAX_LIMIT, 100)).await;
        assert_eq!(ids, expected[100..], "{engine}");
        // The deepest offset served is MAX_OFFSET: past the end here.
        let (ids, total) = page(engine, &index, &everything(20, MAX_OFFSET + 1)).await;
        assert_eq!((ids.len(), total), (0, 130), "{engine}");
    })
    .await;
}

/// Tags and ids at the API's limits, and characters that mean something in query syntax.
#[tokio::test]
async fn awkward_tags_and_ids_are_found_exactly() {
    let long: Vec<String> = (0..20)
        .map(|n| format!("{n:02}{}", "ä".repeat(62)))
        .collect();
    assert!(long.iter().all(|tag| tag.chars().count() == 64));
    let long64: Vec<String> = (0..20)
        .map(|n| format!("{n:02}{}", "x".repeat(62)))
        .collect();
    let awkward = [
        "\"quoted\"",
        "back\\slash",
        "star*",
        "*",
        "key:value",
        "a b",
        "(paren)",
        "OR",
        "-minus",
        "new\nline",
        "ünïcödé",
        "日本語",
        "emoji 🦀",
        "+plus && ||",
        "~tilde?",
    ];
    on_both("awkward", |engine, index| {
        let long = long.clone();
        let long64 = long64.clone();
        async move {
            let many: Vec<&str> = long64.iter().map(String::as_str).collect();
            upsert(
                engine,
                &index,
                &article("many", "u1", &many, "2024-04-01T00:00:00.000Z"),
                1,
            )
            .await;
            let umlauts: Vec<&str> = long.iter().map(String::as_str).collect();
            upsert(
                engine,
                &index,
                &article("umlauts", "u1", &umlauts, "2024-04-02T00:00:00.000Z"),
                1,
            )
            .await;
            for (n, tag) in awkward.iter().enumerate() {
                let id = format!("id \"{n}\" \\ * : ü");
                let author = format!("author:{tag}");
                let created = format!("2024-05-01T00:00:{n:02}.000Z");
                let mut doc = article(&id, &author, &[tag], &created);
                // A title and a description at the API's limits (256 and 1,024 characters),
                // of four-byte characters and query syntax.
                doc.title = format!("{tag} {}", "🦀".repeat(255 - tag.chars().count()));
                doc.description = "\"*:\\ OR (x) ".repeat(1_024 / 16);
                doc.slug = doc.title.clone();
                upsert(engine, &index, &doc, 1).await;
            }
            for (n, tag) in awkward.iter().enumerate() {
                let id = format!("id \"{n}\" \\ * : ü");
                assert_eq!(
                    page(engine, &index, &query(Some(tag), None, None, 20, 0)).await,
                    (vec![id.clone()], 1),
                    "{engine}: tag {tag:?}"
                );
                let author = format!("author:{tag}");
                assert_eq!(
                    page(engine, &index, &query(None, Some(&author), None, 20, 0)).await,
                    (vec![id.clone()], 1),
                    "{engine}: author {author:?}"
                );
                assert_eq!(
                    page(
                        engine,
                        &index,
                        &query(None, None, Some(&[&id, "many"]), 20, 0)
                    )
                    .await,
                    (vec![id.clone(), "many".into()], 2),
                    "{engine}: ids"
                );
            }
            assert_eq!(
                page(engine, &index, &query(Some(&long64[19]), None, None, 20, 0)).await,
                (strings(&["many"]), 1),
                "{engine}"
            );
            assert_eq!(
                page(engine, &index, &query(Some(&long[0]), None, None, 20, 0)).await,
                (strings(&["umlauts"]), 1),
                "{engine}"
            );
            // No tag is a prefix or a pattern of another.
            for probe in ["star", "key", "\"quoted", "x"] {
                assert_eq!(
                    page(engine, &index, &query(Some(probe), None, None, 20, 0))
                        .await
                        .1,
                    0,
                    "{engine}: {probe:?}"
                );
            }
            // Each used once: sorted by name, in UTF-8 byte order on both.
            let mut expected: Vec<String> = awkward.iter().map(|t| t.to_string()).collect();
            expected.extend(long64.iter().cloned());
            expected.extend(long.iter().cloned());
            expected.sort();
            assert_eq!(tags(engine, &index).await, expected, "{engine}");
        }
    })
    .await;
}
