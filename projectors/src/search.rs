//! The search projector: the search read model (one document per live article), from `Article` events.
//!
//! Exactly once without a transaction: the index takes each write with the article's event
//! sequence as an external version, so a write is idempotent (the same or an older version is
//! [`Written::Stale`] and changes nothing); the checkpoint, moved only after the write
//! succeeded, skips duplicates cheaply and fills gaps in order. A crash between the write and
//! the checkpoint just repeats a write the index then calls stale.

use aws_sdk_dynamodb::types::TransactWriteItem;
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use events::article::{ArticleEvent, AGGREGATE_TYPE};
use events::{EventSchema, StoredEvent};
use std::collections::BTreeMap;

use search::{ArticleDoc, BulkWrite, SearchError, SearchIndex, Written};

use crate::bulk::Folded;
use crate::runtime::{ProjectionError, Projector, ProjectorRuntime};

/// Keeps the search index in step with the articles.
#[derive(Clone, Debug)]
pub struct SearchProjector {
    index: SearchIndex,
}

/// What one article event does to the index.
#[derive(Clone, Debug, PartialEq, Eq)]
enum IndexChange {
    Upsert(ArticleDoc),
    Delete { article_id: String },
}

impl IndexChange {
    fn of(event: &StoredEvent) -> Result<Self, ProjectionError> {
        let domain =
            ArticleEvent::from_stored(&event.event_type, event.event_version, &event.payload)
                .map_err(|e| unsupported(event, e.to_string()))?;
        let article_id = event.aggregate_id.clone();
        Ok(match domain {
            ArticleEvent::ArticlePublished {
                author_id,
                slug,
                title,
                description,
                tag_list,
                created_at,
                ..
            } => IndexChange::Upsert(ArticleDoc {
                article_id,
                author_id,
                slug,
                title,
                description,
                tag_list,
                updated_at: created_at.clone(),
                created_at,
            }),
            ArticleEvent::ArticleEdited {
                slug,
                author_id,
                title,
                description,
                tag_list,
                created_at,
                updated_at,
                ..
            } => IndexChange::Upsert(ArticleDoc {
                article_id,
                author_id,
                slug,
                title,
                description,
                tag_list,
                created_at,
                updated_at,
            }),
            ArticleEvent::ArticleDeleted { .. } => IndexChange::Delete { article_id },
        })
    }
}

fn unsupported(event: &StoredEvent, reason: String) -> ProjectionError {
    ProjectionError::Unsupported {
        event_type: event.event_type.clone(),
        version: event.event_version,
        reason,
    }
}

impl SearchProjector {
    pub fn new(index: SearchIndex) -> Self {
        Self { index }
    }

    /// The projector with its runtime: checkpoints and gap filling over the tables named by
    /// `tables`, writes to `index`.
    pub fn runtime(
        client: &Client,
        tables: &TableNames,
        index: SearchIndex,
    ) -> ProjectorRuntime<Self> {
        ProjectorRuntime::over_tables(Self::new(index), client, tables)
    }

    pub fn index(&self) -> &SearchIndex {
        &self.index
    }
}

/// The search read model folded in memory for a fresh index version (see [`crate::bulk`]):
/// each article's last write, at its sequence; the checkpoints, then one bulk request to the
/// index.
#[derive(Clone, Debug, Default)]
pub struct SearchBulk {
    /// Each article's last write.
    writes: BTreeMap<String, BulkWrite>,
    folded: Folded,
}

impl SearchBulk {
    /// A fold that takes no stream past its cut ([`Folded::with_cuts`]).
    pub fn new(folded: Folded) -> Self {
        Self {
            writes: BTreeMap::new(),
            folded,
        }
    }

    /// Folds events of one aggregate in sequence order ([`Folded::next_run`]). Returns the
    /// events folded.
    pub fn fold(&mut self, events: &[StoredEvent]) -> Result<u64, ProjectionError> {
        let mut folded = 0;
        for event in self.folded.next_run(events) {
            if event.aggregate_type != AGGREGATE_TYPE {
                continue;
            }
            let write = match IndexChange::of(event)? {
                IndexChange::Upsert(doc) => BulkWrite::Upsert {
                    doc,
                    version: event.sequence,
                },
                IndexChange::Delete { article_id } => BulkWrite::Delete {
                    article_id,
                    version: event.sequence,
                },
            };
            self.writes.insert(event.aggregate_id.clone(), write);
            self.folded.record(event);
            folded += 1;
        }
        Ok(folded)
    }

    pub fn folded(&self) -> u64 {
        self.folded.events()
    }

    /// Documents the index will hold, and checkpoints.
    pub fn items(&self) -> u64 {
        let docs = self
            .writes
            .values()
            .filter(|w| matches!(w, BulkWrite::Upsert { .. }))
            .count();
        docs as u64 + self.folded.streams()
    }

    /// Writes the checkpoints (first, as every unit of a bulk pass does: see
    /// [`crate::bulk`]), then every article's last write to `index` in one bulk (deletes too,
    /// so that a document written by an earlier, killed attempt goes).
    pub async fn write(
        self,
        index: &SearchIndex,
        client: &Client,
        checkpoints_table: &str,
        in_flight: usize,
        written: impl Fn(u64) + Sync,
    ) -> Result<u64, ProjectionError> {
        let docs = self.items() - self.folded.streams();
        let checkpoints = self.folded.checkpoint_items("search", checkpoints_table);
        let written_checkpoints =
            crate::bulk::write_items(client, checkpoints, in_flight, &written).await?;
        index
            .bulk(self.writes.into_values().collect())
            .await
            .map_err(|e| match e {
                SearchError::Unavailable(reason) => ProjectionError::Unavailable(reason),
                other => ProjectionError::Unavailable(format!("search bulk: {other}")),
            })?;
        written(docs);
        Ok(docs + written_checkpoints)
    }
}

impl Projector for SearchProjector {
    fn name(&self) -> &'static str {
        "search"
    }

    fn accepts(&self, aggregate_type: &str) -> bool {
        aggregate_type == AGGREGATE_TYPE
    }

    /// Writes to the index here and returns no DynamoDB action: the runtime then moves only
    /// the checkpoint.
    async fn effects(
        &self,
        event: &StoredEvent,
    ) -> Result<Vec<TransactWriteItem>, ProjectionError> {
        let written = match IndexChange::of(event)? {
            IndexChange::Upsert(doc) => self.index.upsert(&doc, event.sequence).await,
            IndexChange::Delete { article_id } => {
                self.index.delete(&article_id, event.sequence).await
            }
        };
        match written {
            Ok(Written::Applied) => {}
            Ok(Written::Stale) => {
                tracing::info!("the index already holds this version or a newer one");
            }
            // The same request will fail again: say so, the message ends in the DLQ.
            Err(e @ (SearchError::Rejected(_) | SearchError::InvalidDocument(_))) => {
                return Err(unsupported(event, e.to_string()));
            }
            Err(e @ SearchError::Unavailable(_)) => {
                return Err(ProjectionError::Unavailable(e.to_string()));
            }
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: &str = "2024-01-01T00:00:00.000Z";
    const LATER: &str = "2024-01-02T00:00:00.000Z";

    fn stored(sequence: u64, event: ArticleEvent) -> StoredEvent {
        let (event_type, event_version, payload) = event.to_stored();
        StoredEvent {
            aggregate_type: AGGREGATE_TYPE.into(),
            aggregate_id: "a1".into(),
            sequence,
            event_id: uuid::Uuid::new_v4(),
            event_type,
            event_version,
            payload,
            metadata: events::Metadata::default(),
            recorded_at: AT.into(),
        }
    }

    #[test]
    fn article_events_become_documents_and_deletions() {
        let published = stored(
            1,
            ArticleEvent::ArticlePublished {
                article_id: "a1".into(),
                author_id: "u1".into(),
                slug: "s".into(),
                title: "T".into(),
                description: "D".into(),
                body: "B".into(),
                tag_list: vec!["t".into()],
                created_at: AT.into(),
            },
        );
        let doc = ArticleDoc {
            article_id: "a1".into(),
            author_id: "u1".into(),
            slug: "s".into(),
            title: "T".into(),
            description: "D".into(),
            tag_list: vec!["t".into()],
            created_at: AT.into(),
            updated_at: AT.into(),
        };
        assert_eq!(
            IndexChange::of(&published).expect("decodes"),
            IndexChange::Upsert(doc.clone())
        );
        let edited = stored(
            2,
            ArticleEvent::ArticleEdited {
                slug: "s2".into(),
                previous_slug: "s".into(),
                author_id: "u1".into(),
                title: "T2".into(),
                description: "D".into(),
                body: "B".into(),
                tag_list: Vec::new(),
                created_at: AT.into(),
                updated_at: LATER.into(),
            },
        );
        assert_eq!(
            IndexChange::of(&edited).expect("decodes"),
            IndexChange::Upsert(ArticleDoc {
                slug: "s2".into(),
                title: "T2".into(),
                tag_list: Vec::new(),
                updated_at: LATER.into(),
                ..doc
            })
        );
        let deleted = stored(
            3,
            ArticleEvent::ArticleDeleted {
                author_id: "u1".into(),
                slug: "s2".into(),
                deleted_at: LATER.into(),
            },
        );
        assert_eq!(
            IndexChange::of(&deleted).expect("decodes"),
            IndexChange::Delete {
                article_id: "a1".into()
            }
        );
        let mut unknown = deleted;
        unknown.event_type = "ArticleVanished".into();
        assert!(matches!(
            IndexChange::of(&unknown),
            Err(ProjectionError::Unsupported { .. })
        ));
    }
}
