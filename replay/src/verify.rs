//! Comparing two versions of a projection item by item (every table, and the checkpoints), or for search the answers to a fixed set of queries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use aws_sdk_dynamodb::types::AttributeValue;
use common::projections::Projection;
use events::views::checkpoints;
use search::{ArticleQuery, SearchIndex, MAX_LIMIT, MAX_OFFSET};

use crate::progress::format_count;
use crate::{registry, store_error, versions, Replay, ReplayError};

/// Differences a report shows in full; the others are only counted.
pub const SHOWN: usize = 20;
/// Longest attribute text a difference shows.
const SHOWN_TEXT: usize = 60;

pub type Item = HashMap<String, AttributeValue>;

/// How one table (or the search answers) of the two versions compares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// `<old name> vs <new name>`, or `search`.
    pub what: String,
    pub old_items: usize,
    pub new_items: usize,
    /// In the old version only.
    pub missing: usize,
    /// In the new version only.
    pub extra: usize,
    /// In both, with different attributes.
    pub changed: usize,
}

impl Comparison {
    pub fn differences(&self) -> usize {
        self.missing + self.extra + self.changed
    }
}

/// The outcome of comparing two versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub projection: Projection,
    /// The version compared against (usually the one replaced).
    pub old: u32,
    pub new: u32,
    pub comparisons: Vec<Comparison>,
    /// The first [`SHOWN`] differences, described.
    pub shown: Vec<String>,
}

impl VerifyReport {
    pub fn differences(&self) -> usize {
        self.comparisons.iter().map(Comparison::differences).sum()
    }

    pub fn is_equal(&self) -> bool {
        self.differences() == 0
    }

    /// What a person reads: one line per table, then the first differences.
    pub fn render(&self) -> String {
        let mut out = format!(
            "verify {}: version {} against version {}: {}\n",
            self.projection,
            self.new,
            self.old,
            if self.is_equal() {
                "no difference".to_owned()
            } else {
                format!("{} differences", format_count(self.differences() as u64))
            }
        );
        for c in &self.comparisons {
            let _ = writeln!(
                out,
                "  {}: {} / {} items, {} missing, {} extra, {} changed",
                c.what,
                format_count(c.old_items as u64),
                format_count(c.new_items as u64),
                c.missing,
                c.extra,
                c.changed
            );
        }
        for line in &self.shown {
            let _ = writeln!(out, "  - {line}");
        }
        let hidden = self.differences().saturating_sub(self.shown.len());
        if hidden > 0 {
            let _ = writeln!(out, "  ... and {} more", format_count(hidden as u64));
        }
        out
    }
}

/// Compares `new` with `old` of `projection`: every table by primary key, and the
/// checkpoints of the projection's streams (their `lastSeq`); for search, the answers of a
/// fixed set of queries.
pub async fn verify(
    replay: &Replay,
    projection: Projection,
    old: u32,
    new: u32,
) -> Result<VerifyReport, ReplayError> {
    let mut report = VerifyReport {
        projection,
        old,
        new,
        comparisons: Vec::new(),
        shown: Vec::new(),
    };
    let old_tables = versions::own_tables(replay, projection, old);
    let new_tables = versions::own_tables(replay, projection, new);
    for ((old_name, def), (new_name, _)) in old_tables.iter().zip(&new_tables) {
        let key: Vec<&str> = std::iter::once(def.key.hash.name)
            .chain(def.key.range.map(|r| r.name))
            .collect();
        let (old_items, new_items) =
            futures::future::try_join(scan_all(replay, old_name), scan_all(replay, new_name))
                .await?;
        let label = format!("{old_name} vs {new_name}");
        let (comparison, shown) = diff(&label, old_items, new_items, &key, SHOWN);
        report.add(comparison, shown);
    }
    let checkpoint_items = |items: Vec<Item>| -> Vec<Item> {
        items
            .into_iter()
            .filter(|item| {
                events::views::text(item, checkpoints::PK)
                    .is_some_and(|key| versions::is_checkpoint_of(projection, &key))
            })
            .map(|item| {
                item.into_iter()
                    .filter(|(name, _)| name == checkpoints::PK || name == checkpoints::LAST_SEQ)
                    .collect()
            })
            .collect()
    };
    let (old_checkpoints, new_checkpoints) = (
        replay.tables(projection, old).checkpoints,
        replay.tables(projection, new).checkpoints,
    );
    let (old_items, new_items) = futures::future::try_join(
        scan_all(replay, &old_checkpoints),
        scan_all(replay, &new_checkpoints),
    )
    .await?;
    let (comparison, shown) = diff(
        &format!("checkpoints {old_checkpoints} vs {new_checkpoints}"),
        checkpoint_items(old_items),
        checkpoint_items(new_items),
        &[checkpoints::PK],
        SHOWN,
    );
    report.add(comparison, shown);
    if projection == Projection::Search {
        let (old_index, new_index) =
            futures::future::try_join(replay.search.reader(old), replay.search.reader(new)).await?;
        let (comparison, shown) = compare_search(&old_index, &new_index).await?;
        report.add(comparison, shown);
    }
    Ok(report)
}

impl VerifyReport {
    fn add(&mut self, comparison: Comparison, shown: Vec<String>) {
        let room = SHOWN.saturating_sub(self.shown.len());
        self.shown.extend(shown.into_iter().take(room));
        self.comparisons.push(comparison);
    }
}

/// The version `verify` compares with the active one by default: the newest other version.
pub async fn default_version(
    replay: &Replay,
    projection: Projection,
) -> Result<(u32, u32), ReplayError> {
    let state = registry::read(replay, projection).await?.state;
    let other = state
        .versions
        .iter()
        .copied()
        .filter(|v| *v != state.active)
        .max()
        .ok_or_else(|| {
            ReplayError::Invalid(format!(
                "{projection} has only version {}: nothing to compare it with",
                state.active
            ))
        })?;
    Ok((other, state.active))
}

/// Every item of `table`, read with parallel segments ([`common::tables::scan_segments`]: one
/// page each, as the rebuild's full pass reads the log), strongly consistent.
pub async fn scan_all(replay: &Replay, table: &str) -> Result<Vec<Item>, ReplayError> {
    let segments = common::tables::scan_segments(&replay.client, table).await;
    let items = std::sync::Mutex::new(Vec::new());
    common::tables::each_segment::<ReplayError, _, _>(segments, |segment| {
        let items = &items;
        async move {
            let mut pages = replay
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .segment(segment as i32)
                .total_segments(segments as i32)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(store_error("scanning a table to compare"))?;
                items
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(page.items().iter().cloned());
            }
            Ok(())
        }
    })
    .await
    .map_err(|e| ReplayError::Store(format!("{table}: {e}")))?;
    Ok(items.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// The key attributes of `item`, whole: what tells it from every other item.
fn exact_key(item: &Item, key: &[&str]) -> String {
    key.iter()
        .map(|name| format!("{name}={:?}", item.get(*name)))
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// `name=value, name=value` of the key attributes.
fn key_of(item: &Item, key: &[&str]) -> String {
    key.iter()
        .map(|name| {
            format!(
                "{name}={}",
                item.get(*name).map_or_else(|| "?".to_owned(), render)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An attribute value, short: strings quoted and cut, numbers as they are, lists and maps
/// recursively, maps with their keys sorted.
pub fn render(value: &AttributeValue) -> String {
    fn text(s: &str) -> String {
        let mut chars = s.chars();
        let shown: String = chars.by_ref().take(SHOWN_TEXT).collect();
        if chars.next().is_some() {
            format!("{:?}...", shown)
        } else {
            format!("{shown:?}")
        }
    }
    match value {
        AttributeValue::S(s) => text(s),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null(_) => "null".to_owned(),
        AttributeValue::L(values) => format!(
            "[{}]",
            values.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        AttributeValue::M(map) => render_item(map),
        AttributeValue::Ss(values) => format!("<<{}>>", values.join(", ")),
        AttributeValue::Ns(values) => format!("<<{}>>", values.join(", ")),
        other => format!("{other:?}"),
    }
}

fn render_item(item: &Item) -> String {
    let sorted: BTreeMap<&String, &AttributeValue> = item.iter().collect();
    format!(
        "{{{}}}",
        sorted
            .into_iter()
            .map(|(name, value)| format!("{name}: {}", render(value)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Compares two tables' items by `key`; the comparison and up to `show` differences.
pub fn diff(
    what: &str,
    old: Vec<Item>,
    new: Vec<Item>,
    key: &[&str],
    show: usize,
) -> (Comparison, Vec<String>) {
    let mut comparison = Comparison {
        what: what.to_owned(),
        old_items: old.len(),
        new_items: new.len(),
        ..Comparison::default()
    };
    // By the whole key: `key_of` is for showing, and cuts long values short (two checkpoints
    // of streams whose keys differ only past that would be taken for one).
    let index = |items: Vec<Item>| -> BTreeMap<String, Item> {
        items
            .into_iter()
            .map(|item| (exact_key(&item, key), item))
            .collect()
    };
    let (old, mut new) = (index(old), index(new));
    let mut shown = Vec::new();
    let mut note = |line: String| {
        if shown.len() < show {
            shown.push(line);
        }
    };
    for (exact, old_item) in old {
        match new.remove(&exact) {
            None => {
                comparison.missing += 1;
                note(format!(
                    "{what}: missing in the new version: {}",
                    render_item(&old_item)
                ));
            }
            Some(new_item) if new_item != old_item => {
                comparison.changed += 1;
                let names: BTreeSet<&String> = old_item.keys().chain(new_item.keys()).collect();
                let changes: Vec<String> = names
                    .into_iter()
                    .filter(|name| old_item.get(*name) != new_item.get(*name))
                    .map(|name| {
                        let side = |item: &Item| {
                            item.get(name).map_or_else(|| "absent".to_owned(), render)
                        };
                        format!("{name}: {} -> {}", side(&old_item), side(&new_item))
                    })
                    .collect();
                note(format!(
                    "{what}: {}: {}",
                    key_of(&old_item, key),
                    changes.join("; ")
                ));
            }
            Some(_) => {}
        }
    }
    for item in new.into_values() {
        comparison.extra += 1;
        note(format!(
            "{what}: only in the new version: {}",
            render_item(&item)
        ));
    }
    (comparison, shown)
}

/// One query of the fixed set and its answer, as text.
async fn answer(index: &SearchIndex, query: &ArticleQuery) -> Result<String, ReplayError> {
    let page = index.search(query).await?;
    let ids: Vec<&str> = page.hits.iter().map(|h| h.article_id.as_str()).collect();
    Ok(format!("total {} [{}]", page.total, ids.join(", ")))
}

fn describe(query: &ArticleQuery) -> String {
    let mut parts = Vec::new();
    if let Some(tag) = &query.tag {
        parts.push(format!("tag={tag}"));
    }
    if let Some(author) = &query.author_id {
        parts.push(format!("author={author}"));
    }
    if let Some(ids) = &query.article_ids {
        parts.push(format!("ids={}", ids.join("|")));
    }
    parts.push(format!("offset={} limit={}", query.offset, query.limit));
    parts.join(" ")
}

/// The fixed set of queries, derived from what the old version holds: every page of all
/// articles, paged windows, the first tags, the first authors, a set of ids.
async fn queries(index: &SearchIndex) -> Result<Vec<ArticleQuery>, ReplayError> {
    let page = |offset, limit| ArticleQuery {
        offset,
        limit,
        ..ArticleQuery::default()
    };
    let mut queries = Vec::new();
    let first = index.search(&page(0, MAX_LIMIT)).await?;
    let total = (first.total as usize).min(MAX_OFFSET);
    let mut offset = 0;
    while offset < total.max(1) {
        queries.push(page(offset, MAX_LIMIT));
        offset += MAX_LIMIT;
    }
    for (offset, limit) in [(0, 7), (7, 7), (14, 7), (10, 3), (0, 1)] {
        queries.push(page(offset, limit));
    }
    for tag in index.tags().await?.into_iter().take(SHOWN) {
        queries.push(ArticleQuery {
            tag: Some(tag),
            limit: 20,
            ..ArticleQuery::default()
        });
    }
    let mut authors: Vec<String> = Vec::new();
    for hit in &first.hits {
        if !authors.contains(&hit.author_id) && authors.len() < SHOWN {
            authors.push(hit.author_id.clone());
        }
    }
    for author in authors {
        queries.push(ArticleQuery {
            author_id: Some(author),
            limit: 20,
            ..ArticleQuery::default()
        });
    }
    let ids: Vec<String> = first
        .hits
        .iter()
        .take(5)
        .map(|h| h.article_id.clone())
        .collect();
    queries.push(ArticleQuery {
        article_ids: Some(ids),
        limit: 20,
        ..ArticleQuery::default()
    });
    Ok(queries)
}

/// Runs the fixed set of queries (and the tags) on both versions.
pub async fn compare_search(
    old: &SearchIndex,
    new: &SearchIndex,
) -> Result<(Comparison, Vec<String>), ReplayError> {
    let queries = queries(old).await?;
    let mut comparison = Comparison {
        what: "search answers".to_owned(),
        old_items: queries.len() + 1,
        new_items: queries.len() + 1,
        ..Comparison::default()
    };
    let mut shown = Vec::new();
    for query in &queries {
        let (a, b) = (answer(old, query).await?, answer(new, query).await?);
        if a != b {
            comparison.changed += 1;
            if shown.len() < SHOWN {
                shown.push(format!("search {}: {a} -> {b}", describe(query)));
            }
        }
    }
    let (a, b) = (old.tags().await?, new.tags().await?);
    if a != b {
        comparison.changed += 1;
        shown.push(format!(
            "search tags: [{}] -> [{}]",
            a.join(", "),
            b.join(", ")
        ));
    }
    Ok((comparison, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    #[test]
    fn equal_tables_have_no_difference_whatever_the_order() {
        let a = item(&[("id", s("a")), ("count", n("1"))]);
        let b = item(&[("id", s("b")), ("tags", AttributeValue::L(vec![s("x")]))]);
        let (comparison, shown) = diff("t", vec![a.clone(), b.clone()], vec![b, a], &["id"], SHOWN);
        assert_eq!(comparison.differences(), 0);
        assert_eq!((comparison.old_items, comparison.new_items), (2, 2));
        assert!(shown.is_empty());
    }

    #[test]
    fn keys_that_differ_only_past_what_is_shown_are_told_apart() {
        let long = |last: &str| {
            s(&format!(
                "articles#ArticleComments#{}{last}",
                "a".repeat(80)
            ))
        };
        let old = vec![
            item(&[("pk", long("1")), ("lastSeq", n("4"))]),
            item(&[("pk", long("2")), ("lastSeq", n("5"))]),
        ];
        let new = vec![
            item(&[("pk", long("2")), ("lastSeq", n("5"))]),
            item(&[("pk", long("1")), ("lastSeq", n("4"))]),
        ];
        let (comparison, _) = diff("t", old.clone(), new, &["pk"], SHOWN);
        assert_eq!(comparison.differences(), 0);
        let (comparison, _) = diff("t", old, Vec::new(), &["pk"], SHOWN);
        assert_eq!(comparison.missing, 2, "each one missing, not one for both");
    }

    #[test]
    fn missing_extra_and_changed_items_are_counted_and_described() {
        let old = vec![
            item(&[("pk", s("a")), ("sk", n("1")), ("v", s("same"))]),
            item(&[("pk", s("a")), ("sk", n("2")), ("v", s("old"))]),
            item(&[("pk", s("gone")), ("sk", n("1"))]),
        ];
        let new = vec![
            item(&[("pk", s("a")), ("sk", n("1")), ("v", s("same"))]),
            item(&[
                ("pk", s("a")),
                ("sk", n("2")),
                ("v", s("new")),
                ("w", n("3")),
            ]),
            item(&[("pk", s("new")), ("sk", n("9"))]),
        ];
        let (comparison, shown) = diff("t", old, new, &["pk", "sk"], SHOWN);
        assert_eq!(
            (comparison.missing, comparison.extra, comparison.changed),
            (1, 1, 1)
        );
        assert_eq!(
            shown,
            vec![
                r#"t: pk="a", sk=2: v: "old" -> "new"; w: absent -> 3"#,
                r#"t: missing in the new version: {pk: "gone", sk: 1}"#,
                r#"t: only in the new version: {pk: "new", sk: 9}"#,
            ]
        );
    }

    #[test]
    fn only_the_first_differences_are_shown_but_all_are_counted() {
        let old: Vec<Item> = (0..50)
            .map(|i| item(&[("id", n(&i.to_string()))]))
            .collect();
        let (comparison, shown) = diff("t", old, Vec::new(), &["id"], SHOWN);
        assert_eq!(comparison.missing, 50);
        assert_eq!(shown.len(), SHOWN);
        let report = VerifyReport {
            projection: Projection::Users,
            old: 1,
            new: 2,
            comparisons: vec![comparison],
            shown,
        };
        let text = report.render();
        assert!(text.contains("50 differences"), "{text}");
        assert!(text.contains("... and 30 more"), "{text}");
        assert!(!report.is_equal());
    }

    #[test]
    fn long_texts_are_cut() {
        let long = "x".repeat(100);
        let shown = render(&s(&long));
        assert!(shown.len() < 70 && shown.ends_with("..."), "{shown}");
        assert_eq!(
            render(&AttributeValue::M(HashMap::from([
                ("b".to_owned(), n("2")),
                ("a".to_owned(), AttributeValue::Bool(true))
            ]))),
            "{a: true, b: 2}"
        );
    }
}
