//! The embedded search read model: tantivy in the process, in RAM or in a directory.
//!
//! One document per article id: the article, or a tombstone that remembers the version of its
//! deletion (so an older upsert arriving later is stale, as OpenSearch's external versioning
//! does). Writes go through a single writer behind a mutex and are committed in groups: a
//! write queues itself, and whoever holds the writer applies every queued write, commits once
//! and reloads the reader, so a write is visible to the next search once it returns. A commit
//! costs about 15 ms whatever it holds, so concurrent writers (the search projector applies
//! up to 8 articles at once) share one instead of queueing for one each. A bulk (a replay's
//! whole index) holds the writer for its length, commits every `BULK_COMMIT_DOCS` (10,000)
//! documents and at the end, and reloads the reader once. Both follow one rule for versions:
//! `Inner::apply`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};

use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, FAST, STORED, STRING};
use tantivy::{
    doc, DocSet, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument,
    Term, TERMINATED,
};

use crate::{
    ArticleDoc, ArticleQuery, BulkOutcome, BulkWrite, Filter, Hit, SearchError, SearchPage,
    Written, MAX_TAGS,
};

const KIND_ARTICLE: &str = "article";
const KIND_TOMBSTONE: &str = "tombstone";
const SORT_KEY: &str = "sortKey";
/// tantivy's minimum indexing arena for one thread; articles are small.
const WRITER_MEMORY_BYTES: usize = 15_000_000;
/// How many documents a bulk adds between two commits. A commit costs the same whatever it
/// holds, and the writer flushes its arena into segments by itself in between; the commits
/// only bound what a failure would roll back.
const BULK_COMMIT_DOCS: usize = 10_000;

/// The fields of the tantivy schema.
#[derive(Clone, Copy)]
struct Fields {
    article_id: Field,
    author_id: Field,
    tags: Field,
    sort_key: Field,
    version: Field,
    kind: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let fields = Fields {
            article_id: builder.add_text_field("articleId", STRING | STORED),
            author_id: builder.add_text_field("authorId", STRING | STORED),
            // Tags are counted from their postings, skipping deleted docs: no fast column needed.
            tags: builder.add_text_field("tags", STRING),
            sort_key: builder.add_i64_field(SORT_KEY, FAST),
            version: builder.add_u64_field("version", STORED),
            kind: builder.add_text_field("kind", STRING),
        };
        (builder.build(), fields)
    }
}

/// One write ready for the writer: the article's document, or its tombstone.
struct Write {
    article_id: String,
    version: u64,
    document: TantivyDocument,
}

/// A write waiting for the next group commit.
struct Pending {
    write: Write,
    done: mpsc::Sender<Result<Written, SearchError>>,
}

/// Writes made with one writer since the reader was last reloaded. The searcher does not see
/// them, so the version each of their articles got is kept here.
struct Batch {
    searcher: Searcher,
    latest: HashMap<String, u64>,
}

struct Inner {
    index: Index,
    fields: Fields,
    /// Writes queued for the next group commit.
    pending: Mutex<Vec<Pending>>,
    /// `None` for an index opened read-only (another process may be writing it).
    writer: Mutex<Option<IndexWriter<TantivyDocument>>>,
    reader: IndexReader,
}

/// The embedded adapter. Cheap to clone (an `Arc` inside); one per process and directory
/// (the directory is locked while open).
#[derive(Clone)]
pub struct EmbeddedIndex {
    inner: Arc<Inner>,
}

impl fmt::Debug for EmbeddedIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedIndex")
            .field("index", &self.inner.index)
            .finish_non_exhaustive()
    }
}

fn engine(context: &str) -> impl FnOnce(tantivy::TantivyError) -> SearchError + '_ {
    move |e| SearchError::Unavailable(format!("tantivy, {context}: {e}"))
}

impl EmbeddedIndex {
    /// An empty index in RAM, gone with the process.
    pub fn in_ram() -> Result<Self, SearchError> {
        let (schema, fields) = Fields::schema();
        Self::with_index(Index::create_in_ram(schema), fields)
    }

    /// The index in `path` (created, with the directory, if missing). Blocks: call it at
    /// start-up or from a blocking task.
    pub fn open_dir(path: impl AsRef<Path>) -> Result<Self, SearchError> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)
            .map_err(|e| SearchError::Unavailable(format!("creating {}: {e}", path.display())))?;
        let directory = MmapDirectory::open(path)
            .map_err(|e| SearchError::Unavailable(format!("opening {}: {e}", path.display())))?;
        let (schema, fields) = Fields::schema();
        let index =
            Index::open_or_create(directory, schema).map_err(engine("opening the index"))?;
        Self::with_index(index, fields)
    }

    /// The index in `path` for reading only: no writer, so no lock; another process may hold
    /// the writer. What it sees is the last commit before it was opened. Blocks.
    pub fn open_dir_read_only(path: impl AsRef<Path>) -> Result<Self, SearchError> {
        let path = path.as_ref();
        if !path.join("meta.json").exists() {
            return Err(SearchError::Unavailable(format!(
                "no search index in {}",
                path.display()
            )));
        }
        let directory = MmapDirectory::open(path)
            .map_err(|e| SearchError::Unavailable(format!("opening {}: {e}", path.display())))?;
        let index = Index::open(directory).map_err(engine("opening the index"))?;
        let (_, fields) = Fields::schema();
        Self::from_parts(index, fields, None)
    }

    /// The in-RAM index called `name` in this process, created empty on the first call: every
    /// caller in the process (the local stack, a replay run inside it) shares it.
    pub fn shared_in_ram(name: &str) -> Result<Self, SearchError> {
        let mut catalog = lock(&catalog().in_ram);
        if let Some(index) = catalog.get(name) {
            return Ok(index.clone());
        }
        let index = Self::in_ram()?;
        catalog.insert(name.to_owned(), index.clone());
        Ok(index)
    }

    /// The index in `path`, shared with every other holder in this process while any holds it
    /// (one writer per directory); opened, or created, when nobody does. Blocks.
    pub fn shared_dir(path: impl AsRef<Path>) -> Result<Self, SearchError> {
        let path = path.as_ref().to_path_buf();
        let mut catalog = lock(&catalog().on_disk);
        if let Some(inner) = catalog.get(&path).and_then(Weak::upgrade) {
            return Ok(Self { inner });
        }
        let index = Self::open_dir(&path)?;
        catalog.retain(|_, weak| weak.strong_count() > 0);
        catalog.insert(path, Arc::downgrade(&index.inner));
        Ok(index)
    }

    /// The index of this process's catalog with that in-RAM `name` or directory, if it is open.
    pub fn shared_if_open(name: &str, path: Option<&Path>) -> Option<Self> {
        match path {
            None => lock(&catalog().in_ram).get(name).cloned(),
            Some(path) => lock(&catalog().on_disk)
                .get(path)
                .and_then(Weak::upgrade)
                .map(|inner| Self { inner }),
        }
    }

    /// Forgets the in-RAM index `name` (its memory goes with the last holder).
    pub fn forget_in_ram(name: &str) {
        lock(&catalog().in_ram).remove(name);
    }

    /// Whether this handle can write (it was not opened read-only).
    pub fn writable(&self) -> bool {
        lock(&self.inner.writer).is_some()
    }

    fn with_index(index: Index, fields: Fields) -> Result<Self, SearchError> {
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY_BYTES)
            .map_err(engine("opening the writer"))?;
        Self::from_parts(index, fields, Some(writer))
    }

    fn from_parts(
        index: Index,
        fields: Fields,
        writer: Option<IndexWriter<TantivyDocument>>,
    ) -> Result<Self, SearchError> {
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(engine("opening the reader"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                index,
                fields,
                pending: Mutex::new(Vec::new()),
                writer: Mutex::new(writer),
                reader,
            }),
        })
    }

    /// Nothing to create: the schema is fixed when the index is opened.
    pub async fn ensure_index(&self) -> Result<(), SearchError> {
        Ok(())
    }

    /// See [`crate::SearchIndex::upsert`].
    pub async fn upsert(&self, doc: &ArticleDoc, version: u64) -> Result<Written, SearchError> {
        let write = self.inner.upsert(doc, version)?;
        self.write(write).await
    }

    /// See [`crate::SearchIndex::delete`]: the article is replaced by a tombstone.
    pub async fn delete(&self, article_id: &str, version: u64) -> Result<Written, SearchError> {
        self.write(self.inner.tombstone(article_id, version)).await
    }

    /// See [`crate::SearchIndex::bulk`]: one writer, a commit every `BULK_COMMIT_DOCS` (10,000)
    /// documents and one at the end, then one reload of the reader.
    pub async fn bulk(&self, writes: Vec<BulkWrite>) -> Result<BulkOutcome, SearchError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let writes = writes
                .into_iter()
                .map(|write| match write {
                    BulkWrite::Upsert { doc, version } => inner.upsert(&doc, version),
                    BulkWrite::Delete {
                        article_id,
                        version,
                    } => Ok(inner.tombstone(&article_id, version)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            inner.bulk(writes, BULK_COMMIT_DOCS)
        })
        .await
    }

    /// See [`crate::SearchIndex::search`].
    pub async fn search(&self, query: &ArticleQuery) -> Result<SearchPage, SearchError> {
        let inner = Arc::clone(&self.inner);
        let query = query.clone();
        blocking(move || inner.search(&query)).await
    }

    /// See [`crate::SearchIndex::tags`].
    pub async fn tags(&self) -> Result<Vec<String>, SearchError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.tags()).await
    }

    async fn write(&self, write: Write) -> Result<Written, SearchError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.write(write)).await
    }
}

/// The indexes shared inside this process: in RAM by name (kept for the life of the process),
/// on disk by directory (kept while somebody holds them, so the directory's lock goes with
/// the last holder).
#[derive(Default)]
struct Catalog {
    in_ram: Mutex<HashMap<String, EmbeddedIndex>>,
    on_disk: Mutex<HashMap<PathBuf, Weak<Inner>>>,
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(Catalog::default)
}

/// Locks `mutex`. A panic while holding one of ours leaves nothing half-done that a rollback
/// would not discard, so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read_only() -> SearchError {
    SearchError::Rejected("the search index was opened read-only".into())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, SearchError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SearchError::Unavailable(format!("search task failed: {e}")))?
}

impl Inner {
    fn article_document(
        &self,
        doc: &ArticleDoc,
        version: u64,
    ) -> Result<TantivyDocument, SearchError> {
        let f = self.fields;
        let mut document = doc!(
            f.article_id => doc.article_id.as_str(),
            f.author_id => doc.author_id.as_str(),
            f.sort_key => doc.sort_key()?,
            f.version => version,
            f.kind => KIND_ARTICLE,
        );
        for tag in &doc.tag_list {
            document.add_text(f.tags, tag);
        }
        Ok(document)
    }

    /// The write of an upsert: the article's document. Fails on a document that cannot be
    /// indexed, before anything is written.
    fn upsert(&self, doc: &ArticleDoc, version: u64) -> Result<Write, SearchError> {
        Ok(Write {
            article_id: doc.article_id.clone(),
            version,
            document: self.article_document(doc, version)?,
        })
    }

    /// The write of a delete: a tombstone that keeps the version.
    fn tombstone(&self, article_id: &str, version: u64) -> Write {
        let f = self.fields;
        Write {
            article_id: article_id.to_owned(),
            version,
            document: doc!(
                f.article_id => article_id,
                f.version => version,
                f.kind => KIND_TOMBSTONE,
            ),
        }
    }

    /// Queues the write, then commits every queued write unless another writer already took
    /// this one into its commit; returns this write's outcome either way.
    fn write(&self, write: Write) -> Result<Written, SearchError> {
        let (done, outcome) = mpsc::channel();
        lock(&self.pending).push(Pending { write, done });
        {
            let mut writer = lock(&self.writer);
            let group = std::mem::take(&mut *lock(&self.pending));
            match writer.as_mut() {
                Some(writer) if !group.is_empty() => self.commit_group(writer, group),
                Some(_) => {}
                None => {
                    for pending in group {
                        let _ = pending.done.send(Err(read_only()));
                    }
                }
            }
        }
        // Our write was in the group above or in one committed while we waited for the writer.
        outcome
            .recv()
            .map_err(|_| SearchError::Unavailable("the search writer dropped a write".into()))?
    }

    /// Applies `group` in order (see [`Self::apply`]), commits once, reloads the reader, and
    /// tells each write its outcome.
    fn commit_group(&self, writer: &mut IndexWriter<TantivyDocument>, group: Vec<Pending>) {
        let mut batch = self.batch();
        let mut outcomes: Vec<(mpsc::Sender<_>, Result<Written, SearchError>)> = Vec::new();
        let mut applied = Vec::new();
        for pending in group {
            match self.apply(writer, &mut batch, pending.write) {
                Ok(Ok(Written::Applied)) => applied.push(pending.done),
                Ok(outcome) => outcomes.push((pending.done, outcome)),
                Err(error) => {
                    // Nothing is committed yet: drop the whole group's queued changes.
                    self.roll_back(writer);
                    for done in applied.into_iter().chain([pending.done]) {
                        let _ = done.send(Err(error.clone()));
                    }
                    for (done, outcome) in outcomes {
                        let _ = done.send(outcome);
                    }
                    return;
                }
            }
        }
        let committed = if applied.is_empty() {
            Ok(())
        } else {
            writer
                .commit()
                .and_then(|_| self.reader.reload())
                .map_err(engine("committing"))
        };
        if committed.is_err() {
            self.roll_back(writer);
        }
        for done in applied {
            let _ = done.send(committed.clone().map(|()| Written::Applied));
        }
        for (done, outcome) in outcomes {
            let _ = done.send(outcome);
        }
    }

    /// Applies `writes` in order (see [`Self::apply`]) with the writer held throughout,
    /// committing every `commit_every` added documents and at the end, and reloads the reader
    /// once. A failure rolls back what is not committed yet; what is stays, and the reader is
    /// reloaded all the same, so later writes see its versions.
    fn bulk(&self, writes: Vec<Write>, commit_every: usize) -> Result<BulkOutcome, SearchError> {
        let mut writer = lock(&self.writer);
        let writer = writer.as_mut().ok_or_else(read_only)?;
        let mut batch = self.batch();
        let mut outcome = BulkOutcome::default();
        let mut uncommitted = 0;
        let mut committed_any = false;
        let applied = (|| {
            for write in writes {
                let written = self.apply(writer, &mut batch, write)??;
                outcome.count(written);
                if written == Written::Applied {
                    uncommitted += 1;
                }
                if uncommitted >= commit_every {
                    writer.commit().map_err(engine("committing"))?;
                    committed_any = true;
                    uncommitted = 0;
                }
            }
            if uncommitted > 0 {
                writer.commit().map_err(engine("committing"))?;
                committed_any = true;
            }
            Ok(())
        })();
        if applied.is_err() {
            self.roll_back(writer);
        }
        let reloaded = if committed_any {
            self.reader.reload().map_err(engine("reloading the reader"))
        } else {
            Ok(())
        };
        // The first failure is the one worth reporting.
        applied.and(reloaded).map(|()| outcome)
    }

    /// A batch starting from what the reader sees now.
    fn batch(&self) -> Batch {
        Batch {
            searcher: self.reader.searcher(),
            latest: HashMap::new(),
        }
    }

    /// Adds `write` unless its article already has a version >= its own, in `batch` or else in
    /// the index: the versioning both a group commit and a bulk follow. The outer error is the
    /// writer's (its uncommitted changes must be rolled back); the inner one is this write's
    /// version lookup (nothing was written).
    fn apply(
        &self,
        writer: &mut IndexWriter<TantivyDocument>,
        batch: &mut Batch,
        write: Write,
    ) -> Result<Result<Written, SearchError>, SearchError> {
        let current = match batch.latest.get(&write.article_id) {
            Some(version) => Some(*version),
            None => match self.current_version(&batch.searcher, &write.article_id) {
                Ok(version) => version,
                Err(e) => return Ok(Err(e)),
            },
        };
        if current.is_some_and(|current| current >= write.version) {
            return Ok(Ok(Written::Stale));
        }
        // Deletes every earlier doc of the article, those added uncommitted before it included.
        writer.delete_term(Term::from_field_text(
            self.fields.article_id,
            &write.article_id,
        ));
        writer
            .add_document(write.document)
            .map_err(engine("writing"))?;
        batch.latest.insert(write.article_id, write.version);
        Ok(Ok(Written::Applied))
    }

    /// Drops the queued deletes and adds, so a later commit cannot apply half of a group.
    fn roll_back(&self, writer: &mut IndexWriter<TantivyDocument>) {
        if let Err(rollback) = writer.rollback() {
            tracing::error!(error = %rollback, "rolling back the search index writer failed");
        }
    }

    /// The version of the article or tombstone with this id, if any.
    fn current_version(
        &self,
        searcher: &Searcher,
        article_id: &str,
    ) -> Result<Option<u64>, SearchError> {
        let by_id = TermQuery::new(
            Term::from_field_text(self.fields.article_id, article_id),
            IndexRecordOption::Basic,
        );
        let found = searcher
            .search(&by_id, &TopDocs::with_limit(1).order_by_score())
            .map_err(engine("looking up the current version"))?;
        let Some((_, address)) = found.first() else {
            return Ok(None);
        };
        let stored: TantivyDocument = searcher
            .doc(*address)
            .map_err(engine("reading the current version"))?;
        Ok(stored
            .get_first(self.fields.version)
            .and_then(|value| value.as_u64()))
    }

    fn query(&self, query: &ArticleQuery) -> BooleanQuery {
        let f = self.fields;
        let term = |field: Field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        let mut clauses = vec![(Occur::Must, term(f.kind, KIND_ARTICLE))];
        for filter in query.filters() {
            let clause = match filter {
                Filter::Tag(tag) => term(f.tags, tag),
                Filter::Author(author) => term(f.author_id, author),
                Filter::Ids(ids) => Box::new(TermSetQuery::new(
                    ids.iter().map(|id| Term::from_field_text(f.article_id, id)),
                )),
            };
            clauses.push((Occur::Must, clause));
        }
        BooleanQuery::new(clauses)
    }

    fn search(&self, query: &ArticleQuery) -> Result<SearchPage, SearchError> {
        let searcher = self.reader.searcher();
        let tantivy_query = self.query(query);
        let (offset, limit) = query.window();
        if limit == 0 {
            let total = searcher
                .search(&tantivy_query, &Count)
                .map_err(engine("counting"))?;
            return Ok(SearchPage {
                hits: vec![],
                total: total as u64,
            });
        }
        let page = TopDocs::with_limit(limit)
            .and_offset(offset)
            .order_by_fast_field::<i64>(SORT_KEY, Order::Desc);
        let (total, top) = searcher
            .search(&tantivy_query, &(Count, page))
            .map_err(engine("searching"))?;
        let hits = top
            .into_iter()
            .map(|(_, address)| {
                let stored: TantivyDocument =
                    searcher.doc(address).map_err(engine("reading a hit"))?;
                let text = |field: Field| {
                    stored
                        .get_first(field)
                        .and_then(|value| value.as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                Ok(Hit {
                    article_id: text(self.fields.article_id),
                    author_id: text(self.fields.author_id),
                })
            })
            .collect::<Result<Vec<_>, SearchError>>()?;
        Ok(SearchPage {
            hits,
            total: total as u64,
        })
    }

    /// Counts, per tag, the live docs holding it (tombstones hold none). tantivy's doc_freq
    /// would also count deleted docs until their segment is merged.
    fn tags(&self) -> Result<Vec<String>, SearchError> {
        let searcher = self.reader.searcher();
        let io =
            |e: std::io::Error| SearchError::Unavailable(format!("tantivy, reading tags: {e}"));
        let mut counts: HashMap<String, u64> = HashMap::new();
        for segment in searcher.segment_readers() {
            let postings_of_tags = segment
                .inverted_index(self.fields.tags)
                .map_err(engine("reading tags"))?;
            let mut terms = postings_of_tags.terms().stream().map_err(io)?;
            while terms.advance() {
                let mut postings = postings_of_tags
                    .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)
                    .map_err(io)?;
                let mut live = 0;
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if !segment.is_deleted(doc) {
                        live += 1;
                    }
                    doc = postings.advance();
                }
                if live > 0 {
                    let tag = String::from_utf8_lossy(terms.key()).into_owned();
                    *counts.entry(tag).or_default() += live;
                }
            }
        }
        let mut tags: Vec<(String, u64)> = counts.into_iter().collect();
        tags.sort_by(|(a, a_count), (b, b_count)| b_count.cmp(a_count).then_with(|| a.cmp(b)));
        Ok(tags
            .into_iter()
            .take(MAX_TAGS)
            .map(|(tag, _)| tag)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(id: &str, tags: &[&str]) -> ArticleDoc {
        ArticleDoc {
            article_id: id.into(),
            author_id: "u1".into(),
            slug: id.into(),
            title: id.into(),
            description: id.into(),
            tag_list: tags.iter().map(|t| t.to_string()).collect(),
            created_at: "2024-01-01T00:00:00.000Z".into(),
            updated_at: "2024-01-01T00:00:00.000Z".into(),
        }
    }

    fn segments(index: &EmbeddedIndex) -> Vec<(u32, u32)> {
        index
            .inner
            .reader
            .searcher()
            .segment_readers()
            .iter()
            .map(|segment| (segment.num_docs(), segment.num_deleted_docs()))
            .collect()
    }

    /// Each commit of the single writer makes one segment of what it adds (merges start at 8
    /// segments), so the segments show where a bulk committed.
    #[tokio::test]
    async fn a_bulk_commits_every_so_many_documents_and_at_the_end() {
        let index = EmbeddedIndex::in_ram().unwrap();
        let write = |id: &str, version| index.inner.upsert(&article(id, &["t"]), version).unwrap();
        let writes = vec![
            write("a1", 1),
            write("a2", 1),
            write("a1", 1), // stale: adds nothing, so counts towards no commit
            write("a3", 1),
            write("a1", 2), // replaces a1 of the first commit
            write("a4", 1),
        ];
        let outcome = index.inner.bulk(writes, 2).unwrap();
        assert_eq!(
            outcome,
            BulkOutcome {
                applied: 5,
                stale: 1
            }
        );
        let mut committed = segments(&index);
        committed.sort();
        // Commits after a1 a2, after a3 a1, and at the end after a4.
        assert_eq!(committed, [(1, 0), (1, 1), (2, 0)]);

        let small = EmbeddedIndex::in_ram().unwrap();
        let writes = (0..7).map(|i| write(&format!("b{i}"), 1)).collect();
        small.inner.bulk(writes, BULK_COMMIT_DOCS).unwrap();
        assert_eq!(segments(&small), [(7, 0)], "one commit for a small bulk");
    }

    /// Deletes inside a segment that keeps live docs: tantivy still has the deleted docs'
    /// postings (and counts them in doc_freq) until a merge. A segment whose docs are all
    /// deleted is dropped at commit, which is why this needs several docs in one commit.
    #[tokio::test]
    async fn tags_skip_docs_deleted_inside_a_live_segment() {
        let index = EmbeddedIndex::in_ram().unwrap();
        {
            let mut guard = index.inner.writer.lock().unwrap();
            let writer = guard.as_mut().unwrap();
            for (id, tags) in [
                ("a1", &["b"]),
                ("a2", &["b"]),
                ("a3", &["b"]),
                ("a4", &["a"]),
            ] {
                writer
                    .add_document(index.inner.article_document(&article(id, tags), 1).unwrap())
                    .unwrap();
            }
            writer.commit().unwrap();
            index.inner.reader.reload().unwrap();
        }
        assert_eq!(index.tags().await.unwrap(), ["b", "a"]);

        assert_eq!(index.delete("a1", 2).await.unwrap(), Written::Applied);
        assert_eq!(index.delete("a2", 2).await.unwrap(), Written::Applied);
        let searcher = index.inner.reader.searcher();
        let with_deletes = searcher
            .segment_readers()
            .iter()
            .filter(|segment| segment.num_deleted_docs() > 0)
            .count();
        assert_eq!(with_deletes, 1, "the first segment keeps its deleted docs");
        // Live counts: a 1, b 1 (a3). Counting the deleted docs would give b 3 first.
        assert_eq!(index.tags().await.unwrap(), ["a", "b"]);
        let page = index
            .search(&ArticleQuery {
                limit: 10,
                ..ArticleQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.total, 2);
    }
}
