//! The `ArticleComments` aggregate: the comment thread of one article, which numbers its comments.

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::envelope::EventSchema;
use crate::snapshot::Snapshotted;
use crate::user::FieldError;

/// The aggregate type name, the prefix of every comment thread's stream key. A thread's id is
/// its article's id: RealWorld wants integer comment ids, and one stream per article numbers
/// them without any shared counter.
pub const AGGREGATE_TYPE: &str = "ArticleComments";

/// Longest comment body accepted.
pub const MAX_COMMENT_BODY_CHARS: usize = 10_000;

/// A comment body (Markdown): trimmed, not blank, at most [`MAX_COMMENT_BODY_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentBody(String);

impl CommentBody {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        if value.is_empty() {
            Err(FieldError::blank("body"))
        } else if value.chars().count() > MAX_COMMENT_BODY_CHARS {
            Err(FieldError::too_long("body"))
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a comment thread is asked to do. Facts (whether the article exists, the time) are
/// looked up before.
#[derive(Clone, Debug, PartialEq)]
pub enum CommentCommand {
    /// `POST /articles/{slug}/comments`.
    Add {
        article_id: String,
        author_id: String,
        body: CommentBody,
        /// Whether the article is published and not deleted.
        article_exists: bool,
        /// ISO 8601 with milliseconds.
        at: String,
    },
    /// `DELETE /articles/{slug}/comments/{id}`.
    Remove {
        comment_id: u64,
        actor_id: String,
        /// ISO 8601 with milliseconds.
        at: String,
    },
}

/// What happened in a comment thread. Stored as `eventType` = the variant name, `payload` = its fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommentEvent {
    /// `comment_id` is 1 for the first comment of the article, then 2, 3...; never reused.
    #[serde(rename_all = "camelCase")]
    CommentAdded {
        article_id: String,
        comment_id: u64,
        author_id: String,
        body: String,
        created_at: String,
    },
    #[serde(rename_all = "camelCase")]
    CommentDeleted {
        article_id: String,
        comment_id: u64,
        author_id: String,
        deleted_at: String,
    },
}

impl DomainEvent for CommentEvent {
    fn event_type(&self) -> String {
        self.to_stored().0
    }

    fn event_version(&self) -> String {
        self.to_stored().1.to_string()
    }
}

impl EventSchema for CommentEvent {}

/// Why a comment thread refused a command. The HTTP status each becomes is noted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommentError {
    /// 404: the article does not exist or was deleted.
    #[error("article not found")]
    ArticleNotFound,
    /// 404: no comment with this id, or it was deleted.
    #[error("comment not found")]
    CommentNotFound,
    /// 403: only the author may delete a comment.
    #[error("only the author may delete this comment")]
    Forbidden,
}

/// What the thread remembers of one comment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentEntry {
    pub author_id: String,
    pub deleted: bool,
}

/// The state of one article's comment thread, folded from its events. Its serde form (the
/// snapshot) is [`CompactComments`]: a thread of 10,000 comments is then a few hundred bytes
/// when few people wrote them, and about 10 bytes a comment at worst.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CompactComments", into = "CompactComments")]
pub struct ArticleComments {
    /// Known once the first comment is added.
    pub article_id: Option<String>,
    /// The id the next comment gets: one more than the highest id ever given.
    pub next_id: u64,
    pub comments: BTreeMap<u64, CommentEntry>,
}

/// [`ArticleComments`] with every author named once and consecutive comments of one author
/// (and one deleted flag) as one run `[first id, count, author index, deleted]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactComments {
    article_id: Option<String>,
    next_id: u64,
    authors: Vec<String>,
    runs: Vec<(u64, u64, usize, bool)>,
}

impl From<ArticleComments> for CompactComments {
    fn from(thread: ArticleComments) -> Self {
        let mut authors: Vec<String> = Vec::new();
        let mut index_of: BTreeMap<String, usize> = BTreeMap::new();
        let mut runs: Vec<(u64, u64, usize, bool)> = Vec::new();
        for (id, entry) in thread.comments {
            let author = *index_of.entry(entry.author_id.clone()).or_insert_with(|| {
                authors.push(entry.author_id);
                authors.len() - 1
            });
            match runs.last_mut() {
                Some((first, count, a, deleted))
                    if *first + *count == id && *a == author && *deleted == entry.deleted =>
                {
                    *count += 1
                }
                _ => runs.push((id, 1, author, entry.deleted)),
            }
        }
        Self {
            article_id: thread.article_id,
            next_id: thread.next_id,
            authors,
            runs,
        }
    }
}

impl TryFrom<CompactComments> for ArticleComments {
    type Error = String;

    /// Refuses a form no thread could have (runs out of order or past `nextId`, an author
    /// index out of range): such a snapshot is ignored and the thread folded from its events.
    fn try_from(compact: CompactComments) -> Result<Self, String> {
        let mut comments = BTreeMap::new();
        let mut free = 1;
        for (first, count, author, deleted) in compact.runs {
            let end = first
                .checked_add(count)
                .filter(|end| first >= free && count > 0 && *end <= compact.next_id);
            let (Some(end), Some(author_id)) = (end, compact.authors.get(author)) else {
                return Err(format!("run {first}+{count} by {author} does not fit"));
            };
            for id in first..end {
                let entry = CommentEntry {
                    author_id: author_id.clone(),
                    deleted,
                };
                comments.insert(id, entry);
            }
            free = end;
        }
        Ok(Self {
            article_id: compact.article_id,
            next_id: compact.next_id,
            comments,
        })
    }
}

impl Default for ArticleComments {
    fn default() -> Self {
        Self {
            article_id: None,
            next_id: 1,
            comments: BTreeMap::new(),
        }
    }
}

/// Version 1: the serde form of the fields above.
impl Snapshotted for ArticleComments {
    const SHAPE: u32 = 1;
}

impl Aggregate for ArticleComments {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = CommentCommand;
    type Event = CommentEvent;
    type Error = CommentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CommentCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), CommentError> {
        let event = match command {
            CommentCommand::Add {
                article_id,
                author_id,
                body,
                article_exists,
                at,
            } => {
                if !article_exists {
                    return Err(CommentError::ArticleNotFound);
                }
                CommentEvent::CommentAdded {
                    article_id,
                    comment_id: self.next_id,
                    author_id,
                    body: body.as_str().to_owned(),
                    created_at: at,
                }
            }
            CommentCommand::Remove {
                comment_id,
                actor_id,
                at,
            } => {
                let comment = self
                    .comments
                    .get(&comment_id)
                    .filter(|c| !c.deleted)
                    .ok_or(CommentError::CommentNotFound)?;
                if comment.author_id != actor_id {
                    return Err(CommentError::Forbidden);
                }
                CommentEvent::CommentDeleted {
                    article_id: self.article_id.clone().unwrap_or_default(),
                    comment_id,
                    author_id: comment.author_id.clone(),
                    deleted_at: at,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: CommentEvent) {
        match event {
            CommentEvent::CommentAdded {
                article_id,
                comment_id,
                author_id,
                ..
            } => {
                self.article_id = Some(article_id);
                self.next_id = self.next_id.max(comment_id.saturating_add(1));
                self.comments.insert(
                    comment_id,
                    CommentEntry {
                        author_id,
                        deleted: false,
                    },
                );
            }
            CommentEvent::CommentDeleted { comment_id, .. } => {
                if let Some(comment) = self.comments.get_mut(&comment_id) {
                    comment.deleted = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::UniqueChange;
    use cqrs_es::test::TestFramework;

    type CommentTest = TestFramework<ArticleComments>;

    const AT: &str = "2024-01-01T00:00:00.000Z";
    const LATER: &str = "2024-01-02T03:04:05.678Z";

    fn body(raw: &str) -> CommentBody {
        CommentBody::parse(raw).expect("valid comment body in test")
    }

    fn added(comment_id: u64, author_id: &str) -> CommentEvent {
        CommentEvent::CommentAdded {
            article_id: "a1".into(),
            comment_id,
            author_id: author_id.into(),
            body: "It takes a Jacobian".into(),
            created_at: AT.into(),
        }
    }

    fn deleted(comment_id: u64, author_id: &str) -> CommentEvent {
        CommentEvent::CommentDeleted {
            article_id: "a1".into(),
            comment_id,
            author_id: author_id.into(),
            deleted_at: LATER.into(),
        }
    }

    fn add_by(author_id: &str) -> CommentCommand {
        CommentCommand::Add {
            article_id: "a1".into(),
            author_id: author_id.into(),
            body: body(" It takes a Jacobian\n"),
            article_exists: true,
            at: AT.into(),
        }
    }

    fn remove(comment_id: u64, actor_id: &str) -> CommentCommand {
        CommentCommand::Remove {
            comment_id,
            actor_id: actor_id.into(),
            at: LATER.into(),
        }
    }

    #[test]
    fn the_first_comment_gets_id_1() {
        CommentTest::with(())
            .given_no_previous_events()
            .when(add_by("u1"))
            .then_expect_events(vec![added(1, "u1")]);
    }

    #[test]
    fn comments_are_numbered_in_order() {
        CommentTest::with(())
            .given(vec![added(1, "u1"), added(2, "u2")])
            .when(add_by("u1"))
            .then_expect_events(vec![added(3, "u1")]);
    }

    #[test]
    fn ids_of_deleted_comments_are_never_reused() {
        CommentTest::with(())
            .given(vec![added(1, "u1"), added(2, "u1"), deleted(2, "u1")])
            .when(add_by("u2"))
            .then_expect_events(vec![added(3, "u2")]);
        CommentTest::with(())
            .given(vec![added(1, "u1"), deleted(1, "u1")])
            .when(add_by("u1"))
            .then_expect_events(vec![added(2, "u1")]);
    }

    #[test]
    fn add_to_an_article_that_does_not_exist_is_refused() {
        CommentTest::with(())
            .given_no_previous_events()
            .when(CommentCommand::Add {
                article_id: "a1".into(),
                author_id: "u1".into(),
                body: body("Hello"),
                article_exists: false,
                at: AT.into(),
            })
            .then_expect_error(CommentError::ArticleNotFound);
        // Also once the article is deleted, even though its thread has comments.
        CommentTest::with(())
            .given(vec![added(1, "u1")])
            .when(CommentCommand::Add {
                article_id: "a1".into(),
                author_id: "u1".into(),
                body: body("Hello"),
                article_exists: false,
                at: AT.into(),
            })
            .then_expect_error(CommentError::ArticleNotFound);
    }

    #[test]
    fn the_author_removes_a_comment() {
        CommentTest::with(())
            .given(vec![added(1, "u1"), added(2, "u2")])
            .when(remove(2, "u2"))
            .then_expect_events(vec![deleted(2, "u2")]);
    }

    #[test]
    fn remove_of_an_unknown_comment_is_not_found() {
        CommentTest::with(())
            .given_no_previous_events()
            .when(remove(1, "u1"))
            .then_expect_error(CommentError::CommentNotFound);
        CommentTest::with(())
            .given(vec![added(1, "u1")])
            .when(remove(2, "u1"))
            .then_expect_error(CommentError::CommentNotFound);
        CommentTest::with(())
            .given(vec![added(1, "u1")])
            .when(remove(0, "u1"))
            .then_expect_error(CommentError::CommentNotFound);
    }

    #[test]
    fn remove_of_a_deleted_comment_is_not_found() {
        CommentTest::with(())
            .given(vec![added(1, "u1"), deleted(1, "u1")])
            .when(remove(1, "u1"))
            .then_expect_error(CommentError::CommentNotFound);
    }

    #[test]
    fn remove_by_someone_else_is_forbidden() {
        CommentTest::with(())
            .given(vec![added(1, "u1")])
            .when(remove(1, "u2"))
            .then_expect_error(CommentError::Forbidden);
    }

    #[test]
    fn events_fold_into_the_state() {
        let mut thread = ArticleComments::default();
        assert_eq!(thread.next_id, 1);
        thread.apply(added(1, "u1"));
        thread.apply(added(2, "u2"));
        thread.apply(deleted(1, "u1"));
        assert_eq!(thread.article_id.as_deref(), Some("a1"));
        assert_eq!(thread.next_id, 3);
        assert_eq!(
            thread.comments,
            BTreeMap::from([
                (
                    1,
                    CommentEntry {
                        author_id: "u1".into(),
                        deleted: true
                    }
                ),
                (
                    2,
                    CommentEntry {
                        author_id: "u2".into(),
                        deleted: false
                    }
                ),
            ])
        );
    }

    #[test]
    fn comment_bodies_are_trimmed_and_bounded() {
        assert_eq!(body("  Nice!\n").as_str(), "Nice!");
        assert_eq!(CommentBody::parse(" \n\t"), Err(FieldError::blank("body")));
        assert!(CommentBody::parse(&"é".repeat(MAX_COMMENT_BODY_CHARS)).is_ok());
        assert_eq!(
            CommentBody::parse(&"b".repeat(MAX_COMMENT_BODY_CHARS + 1)),
            Err(FieldError::too_long("body"))
        );
    }

    #[test]
    fn comments_claim_nothing_unique() {
        assert_eq!(added(1, "u1").unique_changes(), Vec::<UniqueChange>::new());
        assert_eq!(
            deleted(1, "u1").unique_changes(),
            Vec::<UniqueChange>::new()
        );
    }

    #[test]
    fn every_event_round_trips_through_its_stored_form() {
        for event in [added(1, "u1"), deleted(u64::MAX, "u2")] {
            let (event_type, version, payload) = event.to_stored();
            assert_eq!(event_type, event.event_type());
            assert!(payload.is_object(), "{event_type} payload is a map");
            let back =
                CommentEvent::from_stored(&event_type, version, &payload).expect("round trip");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn stored_payload_is_readable_camel_case() {
        let (event_type, version, payload) = added(7, "u1").to_stored();
        assert_eq!(event_type, "CommentAdded");
        assert_eq!(version, 1);
        assert_eq!(
            payload,
            serde_json::json!({"articleId": "a1", "commentId": 7, "authorId": "u1", "body": "It takes a Jacobian", "createdAt": AT})
        );
        let (event_type, _, payload) = deleted(7, "u1").to_stored();
        assert_eq!(event_type, "CommentDeleted");
        assert_eq!(
            payload,
            serde_json::json!({"articleId": "a1", "commentId": 7, "authorId": "u1", "deletedAt": LATER})
        );
    }
}
