//! The embedded (tantivy) adapter against a real index, in RAM and in a directory.

use std::path::PathBuf;

use crate::conformance::article;

use search::{
    fnv1a_64, sort_key, ArticleQuery, BulkOutcome, BulkWrite, EmbeddedIndex, SearchConfig,
    SearchError, SearchIndex, Written, MAX_TAGS,
};

fn in_ram() -> SearchIndex {
    SearchIndex::Embedded(EmbeddedIndex::in_ram().expect("an index in RAM"))
}

fn all(limit: usize) -> ArticleQuery {
    ArticleQuery {
        limit,
        ..ArticleQuery::default()
    }
}

async fn ids(index: &SearchIndex, query: &ArticleQuery) -> Vec<String> {
    let page = index.search(query).await.expect("search");
    page.hits.into_iter().map(|hit| hit.article_id).collect()
}

async fn authors(index: &SearchIndex) -> Vec<String> {
    let page = index.search(&all(100)).await.expect("search");
    page.hits.into_iter().map(|hit| hit.author_id).collect()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_nanos();
        TempDir(std::env::temp_dir().join(format!(
            "conduit-search-{name}-{}-{nanos}",
            std::process::id()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn newest_first_with_same_millisecond_ties_broken_by_the_sort_key() {
    let index = in_ram();
    let same_ms = "2024-03-01T12:00:00.000Z";
    for (id, created) in [
        ("old", "2023-12-31T23:59:59.999Z"),
        ("t1", same_ms),
        ("t2", same_ms),
        ("t3", same_ms),
        ("t4", same_ms),
        ("new", "2024-03-01T12:00:00.001Z"),
    ] {
        index
            .upsert(&article(id, "u1", &[], created), 1)
            .await
            .unwrap();
    }
    let mut ties = vec!["t1", "t2", "t3", "t4"];
    let millis = 1_709_294_400_000;
    ties.sort_by_key(|id| std::cmp::Reverse(sort_key(id, millis).unwrap()));
    let mut expected = vec!["new"];
    expected.extend(ties);
    expected.push("old");
    assert_eq!(ids(&index, &all(20)).await, expected);
    // Pages are slices of that one order.
    let page = ArticleQuery {
        limit: 2,
        offset: 2,
        ..ArticleQuery::default()
    };
    assert_eq!(ids(&index, &page).await, expected[2..4]);
}

#[tokio::test]
async fn pagination_counts_every_match_even_past_the_end() {
    let index = in_ram();
    for day in 1..=9 {
        let created = format!("2024-02-0{day}T00:00:00.000Z");
        let tags: &[&str] = if day % 3 == 0 { &["third"] } else { &[] };
        index
            .upsert(&article(&format!("a{day}"), "u1", tags, &created), 1)
            .await
            .unwrap();
    }
    let page = |limit, offset, tag: Option<&str>| ArticleQuery {
        tag: tag.map(String::from),
        limit,
        offset,
        ..ArticleQuery::default()
    };
    let first = index.search(&page(4, 0, None)).await.unwrap();
    assert_eq!(first.total, 9);
    assert_eq!(first.hits.len(), 4);
    assert_eq!(ids(&index, &page(4, 8, None)).await, ["a1"]);
    let past = index.search(&page(4, 50, None)).await.unwrap();
    assert_eq!((past.hits.len(), past.total), (0, 9));
    let tagged = index.search(&page(1, 1, Some("third"))).await.unwrap();
    assert_eq!(tagged.total, 3);
    assert_eq!(tagged.hits[0].article_id, "a6");
    // A limit above the maximum is served as the maximum, not refused.
    assert_eq!(
        index
            .search(&page(10_000, 0, None))
            .await
            .unwrap()
            .hits
            .len(),
        9
    );
}

#[tokio::test]
async fn an_older_or_repeated_version_is_stale_and_changes_nothing() {
    let index = in_ram();
    let v2 = article("a1", "u2", &["new"], "2024-01-01T00:00:00.000Z");
    let v1 = article("a1", "u1", &["old"], "2024-01-01T00:00:00.000Z");
    assert_eq!(index.upsert(&v2, 2).await.unwrap(), Written::Applied);
    assert_eq!(index.upsert(&v1, 1).await.unwrap(), Written::Stale);
    assert_eq!(index.upsert(&v2, 2).await.unwrap(), Written::Stale);
    assert_eq!(authors(&index).await, ["u2"]);
    assert_eq!(index.tags().await.unwrap(), ["new"]);

    let v3 = article("a1", "u3", &["newer"], "2024-01-01T00:00:00.000Z");
    assert_eq!(index.upsert(&v3, 3).await.unwrap(), Written::Applied);
    assert_eq!(authors(&index).await, ["u3"]);
    assert_eq!(index.search(&all(10)).await.unwrap().total, 1);
}

#[tokio::test]
async fn a_delete_remembers_its_version() {
    let index = in_ram();
    let doc = article("a1", "u1", &["t"], "2024-01-01T00:00:00.000Z");
    assert_eq!(index.upsert(&doc, 1).await.unwrap(), Written::Applied);
    assert_eq!(index.delete("a1", 3).await.unwrap(), Written::Applied);
    assert!(ids(&index, &all(10)).await.is_empty());
    // An upsert older than the delete, and the delete redelivered, change nothing.
    assert_eq!(index.upsert(&doc, 2).await.unwrap(), Written::Stale);
    assert_eq!(index.delete("a1", 3).await.unwrap(), Written::Stale);
    assert_eq!(index.search(&all(10)).await.unwrap().total, 0);
    assert!(index.tags().await.unwrap().is_empty());
    // A newer event brings it back.
    assert_eq!(index.upsert(&doc, 4).await.unwrap(), Written::Applied);
    assert_eq!(ids(&index, &all(10)).await, ["a1"]);
}

#[tokio::test]
async fn an_older_delete_is_stale_and_an_unknown_article_can_be_deleted() {
    let index = in_ram();
    let doc = article("a1", "u1", &[], "2024-01-01T00:00:00.000Z");
    index.upsert(&doc, 5).await.unwrap();
    assert_eq!(index.delete("a1", 4).await.unwrap(), Written::Stale);
    assert_eq!(ids(&index, &all(10)).await, ["a1"]);

    // A delete that overtook the article's creation.
    assert_eq!(index.delete("a2", 2).await.unwrap(), Written::Applied);
    let late = article("a2", "u1", &[], "2024-01-02T00:00:00.000Z");
    assert_eq!(index.upsert(&late, 1).await.unwrap(), Written::Stale);
    assert_eq!(ids(&index, &all(10)).await, ["a1"]);
}

#[tokio::test]
async fn tags_count_live_articles_only_most_used_first_then_by_name() {
    let index = in_ram();
    let created = "2024-01-01T00:00:00.000Z";
    for (id, tags) in [
        ("a1", &["rust", "dragons"][..]),
        ("a2", &["rust", "zebra"][..]),
        ("a3", &["go", "zebra"][..]),
        ("a4", &["alpha"][..]),
        ("a5", &["gone", "rust"][..]),
    ] {
        index
            .upsert(&article(id, "u1", tags, created), 1)
            .await
            .unwrap();
    }
    // a3 loses "go" and gains "alpha"; a5 is deleted: neither old doc may still count.
    index
        .upsert(&article("a3", "u1", &["alpha", "zebra"], created), 2)
        .await
        .unwrap();
    index.delete("a5", 2).await.unwrap();
    assert_eq!(
        index.tags().await.unwrap(),
        ["alpha", "rust", "zebra", "dragons"]
    );
}

#[tokio::test]
async fn at_most_max_tags_are_returned_keeping_the_most_used() {
    let index = in_ram();
    let many: Vec<String> = (0..MAX_TAGS + 5).map(|i| format!("t{i:04}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let created = "2024-01-01T00:00:00.000Z";
    index
        .upsert(&article("a1", "u1", &many, created), 1)
        .await
        .unwrap();
    index
        .upsert(&article("a2", "u1", &["t1004", "z"], created), 1)
        .await
        .unwrap();
    let tags = index.tags().await.unwrap();
    assert_eq!(tags.len(), MAX_TAGS);
    assert_eq!(tags[0], "t1004");
    assert_eq!(tags[1], "t0000");
    assert_eq!(tags[MAX_TAGS - 1], "t0998");
}

#[tokio::test]
async fn a_document_with_a_bad_date_is_refused_and_not_written() {
    let index = in_ram();
    let doc = article("a1", "u1", &["x"], "01/01/2024");
    let error = index.upsert(&doc, 1).await.unwrap_err();
    assert!(
        matches!(error, SearchError::InvalidDocument(_)),
        "{error:?}"
    );
    assert_eq!(index.search(&all(10)).await.unwrap().total, 0);
}

#[tokio::test]
async fn concurrent_writes_are_all_applied() {
    let index = in_ram();
    let writes = (0..16).map(|i| {
        let index = index.clone();
        tokio::spawn(async move {
            let doc = article(&format!("a{i}"), "u1", &["c"], "2024-01-01T00:00:00.000Z");
            index.upsert(&doc, 1).await.unwrap()
        })
    });
    for write in writes {
        assert_eq!(write.await.unwrap(), Written::Applied);
    }
    assert_eq!(index.search(&all(100)).await.unwrap().total, 16);
}

/// Racing versions of one article, committed in whatever groups they happen to share: the
/// newest wins, every older one is stale or overwritten, and an older write never lands last.
#[tokio::test]
async fn racing_versions_of_one_article_end_in_the_newest() {
    let index = in_ram();
    let writes = (1..=16u64).rev().map(|version| {
        let index = index.clone();
        tokio::spawn(async move {
            let tag = format!("v{version}");
            let doc = article("a1", "u1", &[&tag], "2024-01-01T00:00:00.000Z");
            (version, index.upsert(&doc, version).await.unwrap())
        })
    });
    let mut outcomes = Vec::new();
    for write in writes {
        outcomes.push(write.await.unwrap());
    }
    assert!(outcomes.contains(&(16, Written::Applied)), "{outcomes:?}");
    assert_eq!(index.search(&all(10)).await.unwrap().total, 1);
    let newest = ArticleQuery {
        tag: Some("v16".into()),
        ..all(10)
    };
    assert_eq!(index.search(&newest).await.unwrap().total, 1);
    assert_eq!(index.tags().await.unwrap(), ["v16"]);
    // Every version at or below the newest is stale from now on.
    let doc = article("a1", "u1", &["late"], "2024-01-01T00:00:00.000Z");
    assert_eq!(index.upsert(&doc, 16).await.unwrap(), Written::Stale);
}

#[tokio::test]
async fn a_directory_keeps_articles_tombstones_and_versions_across_reopening() {
    let dir = TempDir::new("reopen");
    {
        let index = SearchIndex::Embedded(EmbeddedIndex::open_dir(&dir.0).unwrap());
        index.ensure_index().await.unwrap();
        let created = "2024-01-01T00:00:00.000Z";
        index
            .upsert(&article("a1", "u1", &["kept"], created), 2)
            .await
            .unwrap();
        index
            .upsert(
                &article("a2", "u2", &["gone"], "2024-01-02T00:00:00.000Z"),
                1,
            )
            .await
            .unwrap();
        index.delete("a2", 2).await.unwrap();
        // The directory is locked while open.
        let second = EmbeddedIndex::open_dir(&dir.0).unwrap_err();
        assert!(matches!(second, SearchError::Unavailable(_)), "{second:?}");
    }
    let index = SearchIndex::Embedded(EmbeddedIndex::open_dir(&dir.0).unwrap());
    let page = index.search(&all(10)).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.hits[0].article_id, "a1");
    assert_eq!(page.hits[0].author_id, "u1");
    assert_eq!(index.tags().await.unwrap(), ["kept"]);
    let stale = article("a1", "u9", &[], "2024-01-01T00:00:00.000Z");
    assert_eq!(index.upsert(&stale, 1).await.unwrap(), Written::Stale);
    let resurrect = article("a2", "u2", &[], "2024-01-02T00:00:00.000Z");
    assert_eq!(index.upsert(&resurrect, 1).await.unwrap(), Written::Stale);
}

#[tokio::test]
async fn the_configuration_opens_an_index_per_prefix_under_the_directory() {
    let dir = TempDir::new("config");
    let config = SearchConfig {
        backend: search::SearchBackend::Embedded {
            dir: Some(dir.0.clone()),
        },
        alias: "p1-articles".into(),
        index: "p1-articles-v1".into(),
    };
    let index = config.open().await.unwrap();
    index.ensure_index().await.unwrap();
    index
        .upsert(&article("a1", "u1", &[], "2024-01-01T00:00:00.000Z"), 1)
        .await
        .unwrap();
    assert!(dir.0.join("p1-articles-v1").join("meta.json").exists());
}

/// Writes of 25 articles with versions out of order, ids repeated, deletes, and writes that
/// are stale against the index or against an earlier write of the same list. Each version
/// carries its own author and tags, so which one wins shows in every answer.
fn mixed_writes() -> Vec<BulkWrite> {
    let mut writes = Vec::new();
    for n in 0..240u64 {
        let hash = fnv1a_64(&n.to_le_bytes());
        let id = format!("a{}", hash % 25);
        let version = 1 + (hash >> 8) % 12;
        let write = if (hash >> 16) % 5 == 0 {
            BulkWrite::Delete {
                article_id: id,
                version,
            }
        } else {
            let tags = [format!("v{version}"), format!("t{}", (hash >> 24) % 4)];
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let created = format!("2024-01-{:02}T00:00:00.000Z", 1 + (hash >> 32) % 28);
            let doc = article(&id, &format!("u{version}"), &tags, &created);
            BulkWrite::Upsert { doc, version }
        };
        writes.push(write);
    }
    writes
}

/// What readers ask: the tags, and pages of all articles, per tag and per author.
async fn answers(index: &SearchIndex) -> Vec<String> {
    let mut answers = vec![format!("{:?}", index.tags().await.expect("tags"))];
    let mut queries = vec![all(100), all(0)];
    for tag in ["t0", "t1", "t2", "t3", "v12", "v1"] {
        queries.push(ArticleQuery {
            tag: Some(tag.into()),
            ..all(100)
        });
    }
    for author in ["u1", "u6", "u12"] {
        queries.push(ArticleQuery {
            author_id: Some(author.into()),
            ..all(100)
        });
    }
    for offset in [0, 5, 10, 20] {
        queries.push(ArticleQuery { offset, ..all(5) });
    }
    for query in queries {
        answers.push(format!(
            "{query:?} {:?}",
            index.search(&query).await.expect("search")
        ));
    }
    answers
}

async fn one_by_one(index: &SearchIndex, writes: &[BulkWrite]) -> BulkOutcome {
    let mut outcome = BulkOutcome::default();
    for write in writes {
        let written = match write {
            BulkWrite::Upsert { doc, version } => index.upsert(doc, *version).await,
            BulkWrite::Delete {
                article_id,
                version,
            } => index.delete(article_id, *version).await,
        };
        match written.expect("a single write") {
            Written::Applied => outcome.applied += 1,
            Written::Stale => outcome.stale += 1,
        }
    }
    outcome
}

#[tokio::test]
async fn a_bulk_leaves_what_the_same_writes_one_by_one_leave() {
    let (bulk, single) = (in_ram(), in_ram());
    // Both start from the same articles, so that some writes are stale against the index.
    let earlier: Vec<BulkWrite> = mixed_writes().into_iter().step_by(7).take(20).collect();
    one_by_one(&bulk, &earlier).await;
    one_by_one(&single, &earlier).await;

    let writes = mixed_writes();
    let expected = one_by_one(&single, &writes).await;
    let outcome = bulk.bulk(writes.clone()).await.unwrap();
    assert_eq!(outcome, expected);
    assert!(
        outcome.applied > 20 && outcome.stale > 100,
        "the sample exercises both outcomes: {outcome:?}"
    );
    let answers_of_bulk = answers(&bulk).await;
    assert_eq!(answers_of_bulk, answers(&single).await);
    assert!(
        answers_of_bulk[0].contains("v12"),
        "the sample ends with live articles: {answers_of_bulk:?}"
    );

    // The same bulk again is all stale and changes nothing.
    assert_eq!(
        bulk.bulk(writes.clone()).await.unwrap(),
        BulkOutcome {
            applied: 0,
            stale: writes.len() as u64
        }
    );
    assert_eq!(answers(&bulk).await, answers_of_bulk);
}

#[tokio::test]
async fn a_bulk_follows_the_order_of_its_writes() {
    let index = in_ram();
    let created = "2024-01-01T00:00:00.000Z";
    let outcome = index
        .bulk(vec![
            BulkWrite::Upsert {
                doc: article("a1", "u2", &["two"], created),
                version: 2,
            },
            // Older than the write before it: stale.
            BulkWrite::Upsert {
                doc: article("a1", "u1", &["one"], created),
                version: 1,
            },
            // A delete that overtook the article's creation, then the creation.
            BulkWrite::Delete {
                article_id: "a2".into(),
                version: 3,
            },
            BulkWrite::Upsert {
                doc: article("a2", "u1", &["late"], created),
                version: 1,
            },
            // Written, then deleted, in the same bulk.
            BulkWrite::Upsert {
                doc: article("a3", "u3", &["gone"], created),
                version: 1,
            },
            BulkWrite::Delete {
                article_id: "a3".into(),
                version: 2,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        outcome,
        BulkOutcome {
            applied: 4,
            stale: 2
        }
    );
    assert_eq!(ids(&index, &all(10)).await, ["a1"]);
    assert_eq!(authors(&index).await, ["u2"]);
    assert_eq!(index.tags().await.unwrap(), ["two"]);
    // The versions stay: a later single write older than them is stale.
    let old = article("a3", "u3", &["gone"], created);
    assert_eq!(index.upsert(&old, 1).await.unwrap(), Written::Stale);
}

#[tokio::test]
async fn a_bulk_with_a_document_that_cannot_be_indexed_writes_nothing() {
    let index = in_ram();
    let created = "2024-01-01T00:00:00.000Z";
    let error = index
        .bulk(vec![
            BulkWrite::Upsert {
                doc: article("a1", "u1", &["x"], created),
                version: 1,
            },
            BulkWrite::Upsert {
                doc: article("a2", "u1", &["x"], "yesterday"),
                version: 1,
            },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(error, SearchError::InvalidDocument(_)),
        "{error:?}"
    );
    assert_eq!(index.search(&all(10)).await.unwrap().total, 0);
    assert_eq!(
        index.bulk(vec![]).await.unwrap(),
        BulkOutcome::default(),
        "an empty bulk is fine"
    );
}

#[tokio::test]
async fn a_bulk_is_committed_to_its_directory_and_refused_read_only() {
    let dir = TempDir::new("bulk");
    let writes: Vec<BulkWrite> = (0..30)
        .map(|i| BulkWrite::Upsert {
            doc: article(
                &format!("a{i}"),
                "u1",
                &["bulk"],
                "2024-01-01T00:00:00.000Z",
            ),
            version: 1,
        })
        .collect();
    {
        let index = SearchIndex::Embedded(EmbeddedIndex::open_dir(&dir.0).unwrap());
        let outcome = index.bulk(writes.clone()).await.unwrap();
        assert_eq!((outcome.applied, outcome.stale), (30, 0));
        // Another process's view: the last commit.
        let read_only = SearchIndex::Embedded(EmbeddedIndex::open_dir_read_only(&dir.0).unwrap());
        assert_eq!(read_only.search(&all(0)).await.unwrap().total, 30);
        let error = read_only.bulk(writes.clone()).await.unwrap_err();
        assert!(matches!(error, SearchError::Rejected(_)), "{error:?}");
    }
    let index = SearchIndex::Embedded(EmbeddedIndex::open_dir(&dir.0).unwrap());
    assert_eq!(index.search(&all(0)).await.unwrap().total, 30);
    assert_eq!(index.bulk(writes).await.unwrap().stale, 30);
}
