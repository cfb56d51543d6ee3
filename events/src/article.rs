//! The `Article` aggregate: publishing, editing and deleting an article, and the slug it claims.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::envelope::{EventSchema, UniqueChange};
use crate::snapshot::Snapshotted;
use crate::user::FieldError;

/// The aggregate type name, the prefix of every article stream key.
pub const AGGREGATE_TYPE: &str = "Article";

/// The unique key a slug claims.
pub fn slug_key(slug: &str) -> String {
    format!("slug#{slug}")
}

/// Longest title accepted.
pub const MAX_TITLE_CHARS: usize = 256;
/// Longest description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 1_024;
/// Longest body accepted: with the other fields at their limits, an article event stays below
/// SNS's 256 KiB message limit (and DynamoDB's 400 KB item limit).
pub const MAX_BODY_CHARS: usize = 50_000;
/// Longest tag accepted.
pub const MAX_TAG_CHARS: usize = 64;
/// Most tags one article may carry.
pub const MAX_TAGS: usize = 20;
/// Longest slug [`slugify`] produces.
pub const MAX_SLUG_CHARS: usize = 96;
/// The slug of a title with no ASCII letter or digit in it.
pub const FALLBACK_SLUG: &str = "article";

/// Slugs that name a route under `/api/articles/` and so can never be an article's.
pub const RESERVED_SLUGS: &[&str] = &["feed"];
/// Longest slug accepted: [`MAX_SLUG_CHARS`] and room for a `-` and a short suffix that makes a
/// taken slug free.
pub const MAX_CLAIMED_SLUG_CHARS: usize = MAX_SLUG_CHARS + 16;

/// Refuses a slug that is not what [`slugify`] (and a suffix) makes: lower-case ASCII letters
/// and digits in words joined by single `-`s, at most [`MAX_CLAIMED_SLUG_CHARS`] characters,
/// not one of the [`RESERVED_SLUGS`].
pub fn check_slug(slug: &str) -> Result<(), FieldError> {
    if slug.is_empty() {
        return Err(FieldError::blank("slug"));
    }
    if slug.len() > MAX_CLAIMED_SLUG_CHARS {
        return Err(FieldError::too_long("slug"));
    }
    let words_ok = slug.split('-').all(|word| {
        !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if !words_ok || RESERVED_SLUGS.contains(&slug) {
        return Err(FieldError::invalid("slug"));
    }
    Ok(())
}

/// Trims `raw`, refusing it when blank or longer than `max` characters.
fn parse_text(raw: &str, field: &'static str, max: usize) -> Result<String, FieldError> {
    let value = raw.trim();
    if value.is_empty() {
        Err(FieldError::blank(field))
    } else if value.chars().count() > max {
        Err(FieldError::too_long(field))
    } else {
        Ok(value.to_owned())
    }
}

/// An article title: trimmed, not blank, at most [`MAX_TITLE_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_text(raw, "title", MAX_TITLE_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An article description: trimmed, not blank, at most [`MAX_DESCRIPTION_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_text(raw, "description", MAX_DESCRIPTION_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An article body (Markdown): trimmed, not blank, at most [`MAX_BODY_CHARS`] characters.
///
/// ASCII control characters other than tab, line feed and carriage return are refused as
/// invalid: JSON spells most of them as a six-byte `\u00XX`, so a body within
/// [`MAX_BODY_CHARS`] could still push its event over SNS's 256 KiB limit. Without them no
/// character takes more than four bytes in the stored event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body(String);

impl Body {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = parse_text(raw, "body", MAX_BODY_CHARS)?;
        if value
            .chars()
            .any(|c| c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(FieldError::invalid("body"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The refusal of a tag longer than [`MAX_TAG_CHARS`].
pub fn tag_too_long() -> FieldError {
    FieldError {
        field: "tagList",
        message: "has a tag that is too long",
    }
}

/// The refusal of more than [`MAX_TAGS`] distinct tags.
pub fn too_many_tags() -> FieldError {
    FieldError {
        field: "tagList",
        message: "has too many tags",
    }
}

/// Normalizes a tag list as RealWorld shows it: each tag trimmed, empty ones dropped,
/// duplicates removed, sorted alphabetically (by code point, so case-sensitively). Refuses a
/// tag longer than [`MAX_TAG_CHARS`] characters ([`tag_too_long`]) or more than [`MAX_TAGS`]
/// distinct tags ([`too_many_tags`]); duplicates and blanks do not count.
pub fn normalize_tags(tags: Vec<String>) -> Result<Vec<String>, FieldError> {
    let mut normalized = Vec::with_capacity(tags.len());
    for tag in &tags {
        let tag = tag.trim();
        if tag.is_empty() {
            continue;
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(tag_too_long());
        }
        normalized.push(tag.to_owned());
    }
    normalized.sort();
    normalized.dedup();
    if normalized.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    Ok(normalized)
}

/// The slug a title suggests: ASCII letters (lower-cased) and digits kept, every run of other
/// ASCII characters, whitespace or symbols turned into one `-`, no `-` at either end, at most
/// [`MAX_SLUG_CHARS`] characters (the cut may fall inside a word); [`FALLBACK_SLUG`] when
/// nothing is left.
///
/// Non-ASCII letters and digits are dropped without a separator (`Crème brûlée` gives
/// `crme-brle`): slugs stay plain ASCII, safe in URLs and keys, and a title in another script
/// gives the fallback. Uniqueness is not its business: the caller suffixes a taken slug.
pub fn slugify(title: &str) -> String {
    let mut slug = String::with_capacity(title.len().min(MAX_SLUG_CHARS));
    let mut separate = false;
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            if separate && !slug.is_empty() {
                slug.push('-');
            }
            separate = false;
            slug.push(c.to_ascii_lowercase());
        } else if !c.is_alphanumeric() {
            separate = true;
        }
        if slug.len() >= MAX_SLUG_CHARS {
            break;
        }
    }
    // Every character pushed is ASCII, so byte and character counts agree.
    slug.truncate(MAX_SLUG_CHARS);
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        FALLBACK_SLUG.to_owned()
    } else {
        slug.to_owned()
    }
}

/// What the article aggregate is asked to do. Facts (ids, slugs, the time) are looked up before.
#[derive(Clone, Debug, PartialEq)]
pub enum ArticleCommand {
    /// `POST /articles`. `slug` is the free slug the handler chose; `tag_list` is normalized here.
    Publish {
        article_id: String,
        author_id: String,
        slug: String,
        title: Title,
        description: Description,
        body: Body,
        tag_list: Vec<String>,
        /// ISO 8601 with milliseconds.
        at: String,
    },
    /// `PUT /articles/{slug}`: `None` leaves a field as it is.
    Edit {
        actor_id: String,
        title: Option<Title>,
        description: Option<Description>,
        body: Option<Body>,
        /// The new slug the handler computed from a changed title.
        slug: Option<String>,
        /// ISO 8601 with milliseconds.
        at: String,
    },
    /// `DELETE /articles/{slug}`.
    Delete {
        actor_id: String,
        /// ISO 8601 with milliseconds.
        at: String,
    },
}

/// What happened to an article. Stored as `eventType` = the variant name, `payload` = its fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ArticleEvent {
    /// Claims `slug`.
    #[serde(rename_all = "camelCase")]
    ArticlePublished {
        article_id: String,
        author_id: String,
        slug: String,
        title: String,
        description: String,
        body: String,
        /// Sorted, without duplicates.
        tag_list: Vec<String>,
        created_at: String,
    },
    /// Carries the complete article after the edit (the unchanged author, tags and creation
    /// time too), so a projection can write the whole article from this event alone.
    /// `previous_slug` equals `slug` when the slug is kept, otherwise the old slug is released
    /// and the new one claimed.
    #[serde(rename_all = "camelCase")]
    ArticleEdited {
        slug: String,
        previous_slug: String,
        author_id: String,
        title: String,
        description: String,
        body: String,
        /// Sorted, without duplicates (tags are not editable, but travel with every edit).
        tag_list: Vec<String>,
        created_at: String,
        updated_at: String,
    },
    /// Releases `slug`.
    #[serde(rename_all = "camelCase")]
    ArticleDeleted {
        author_id: String,
        slug: String,
        deleted_at: String,
    },
}

impl DomainEvent for ArticleEvent {
    fn event_type(&self) -> String {
        self.to_stored().0
    }

    fn event_version(&self) -> String {
        self.to_stored().1.to_string()
    }
}

impl EventSchema for ArticleEvent {
    fn unique_changes(&self) -> Vec<UniqueChange> {
        match self {
            ArticleEvent::ArticlePublished { slug, .. } => vec![UniqueChange::Claim {
                key: slug_key(slug),
            }],
            ArticleEvent::ArticleEdited {
                slug,
                previous_slug,
                ..
            } if slug != previous_slug => vec![
                UniqueChange::Release {
                    key: slug_key(previous_slug),
                },
                UniqueChange::Claim {
                    key: slug_key(slug),
                },
            ],
            ArticleEvent::ArticleEdited { .. } => Vec::new(),
            ArticleEvent::ArticleDeleted { slug, .. } => vec![UniqueChange::Release {
                key: slug_key(slug),
            }],
        }
    }
}

/// Why the article aggregate refused a command. The HTTP status each becomes is noted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArticleError {
    /// 409: the aggregate already holds a published (perhaps since deleted) article.
    #[error("article is already published")]
    AlreadyPublished,
    /// 404: no article with this id, or it was deleted.
    #[error("article not found")]
    NotFound,
    /// 403: only the author may edit or delete an article.
    #[error("only the author may change this article")]
    Forbidden,
    /// 422: an input field is invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// The state of one article, folded from its events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Article {
    pub id: Option<String>,
    pub author_id: String,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub body: String,
    pub tag_list: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted: bool,
}

impl Article {
    /// Whether the article was ever published (deleted or not).
    pub fn is_published(&self) -> bool {
        self.id.is_some()
    }

    /// Whether the article can be read and changed: published and not deleted.
    pub fn is_live(&self) -> bool {
        self.is_published() && !self.deleted
    }

    /// Refuses unless the article is live and `actor_id` wrote it.
    fn authored_by(&self, actor_id: &str) -> Result<(), ArticleError> {
        if !self.is_live() {
            Err(ArticleError::NotFound)
        } else if self.author_id != actor_id {
            Err(ArticleError::Forbidden)
        } else {
            Ok(())
        }
    }
}

/// Version 1: the serde form of the fields above.
impl Snapshotted for Article {
    const SHAPE: u32 = 1;
}

impl Aggregate for Article {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = ArticleCommand;
    type Event = ArticleEvent;
    type Error = ArticleError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ArticleCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ArticleError> {
        let events = match command {
            ArticleCommand::Publish {
                article_id,
                author_id,
                slug,
                title,
                description,
                body,
                tag_list,
                at,
            } => {
                if self.is_published() {
                    return Err(ArticleError::AlreadyPublished);
                }
                vec![ArticleEvent::ArticlePublished {
                    article_id,
                    author_id,
                    slug,
                    title: title.as_str().to_owned(),
                    description: description.as_str().to_owned(),
                    body: body.as_str().to_owned(),
                    tag_list: normalize_tags(tag_list)?,
                    created_at: at,
                }]
            }
            ArticleCommand::Edit {
                actor_id,
                title,
                description,
                body,
                slug,
                at,
            } => {
                self.authored_by(&actor_id)?;
                let slug = slug.unwrap_or_else(|| self.slug.clone());
                let title = title.map_or_else(|| self.title.clone(), |t| t.as_str().to_owned());
                let description =
                    description.map_or_else(|| self.description.clone(), |d| d.as_str().to_owned());
                let body = body.map_or_else(|| self.body.clone(), |b| b.as_str().to_owned());
                let changed = slug != self.slug
                    || title != self.title
                    || description != self.description
                    || body != self.body;
                if changed {
                    vec![ArticleEvent::ArticleEdited {
                        slug,
                        previous_slug: self.slug.clone(),
                        author_id: self.author_id.clone(),
                        title,
                        description,
                        body,
                        tag_list: self.tag_list.clone(),
                        created_at: self.created_at.clone(),
                        updated_at: at,
                    }]
                } else {
                    Vec::new()
                }
            }
            ArticleCommand::Delete { actor_id, at } => {
                self.authored_by(&actor_id)?;
                vec![ArticleEvent::ArticleDeleted {
                    author_id: self.author_id.clone(),
                    slug: self.slug.clone(),
                    deleted_at: at,
                }]
            }
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: ArticleEvent) {
        match event {
            ArticleEvent::ArticlePublished {
                article_id,
                author_id,
                slug,
                title,
                description,
                body,
                tag_list,
                created_at,
            } => {
                self.id = Some(article_id);
                self.author_id = author_id;
                self.slug = slug;
                self.title = title;
                self.description = description;
                self.body = body;
                self.tag_list = tag_list;
                self.updated_at = created_at.clone();
                self.created_at = created_at;
            }
            ArticleEvent::ArticleEdited {
                slug,
                title,
                description,
                body,
                updated_at,
                ..
            } => {
                self.slug = slug;
                self.title = title;
                self.description = description;
                self.body = body;
                self.updated_at = updated_at;
            }
            ArticleEvent::ArticleDeleted { .. } => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Metadata, StoredEvent};
    use cqrs_es::test::TestFramework;

    type ArticleTest = TestFramework<Article>;

    const CREATED: &str = "2024-01-01T00:00:00.000Z";
    const LATER: &str = "2024-01-02T03:04:05.678Z";

    fn title(raw: &str) -> Title {
        Title::parse(raw).expect("valid title in test")
    }

    fn description(raw: &str) -> Description {
        Description::parse(raw).expect("valid description in test")
    }

    fn body(raw: &str) -> Body {
        Body::parse(raw).expect("valid body in test")
    }

    fn tags(raw: &[&str]) -> Vec<String> {
        raw.iter().map(|t| t.to_string()).collect()
    }

    fn published() -> ArticleEvent {
        ArticleEvent::ArticlePublished {
            article_id: "a1".into(),
            author_id: "u1".into(),
            slug: "how-to-train-your-dragon".into(),
            title: "How to train your dragon".into(),
            description: "Ever wonder how?".into(),
            body: "You have to believe".into(),
            tag_list: tags(&["dragons", "training"]),
            created_at: CREATED.into(),
        }
    }

    fn deleted() -> ArticleEvent {
        ArticleEvent::ArticleDeleted {
            author_id: "u1".into(),
            slug: "how-to-train-your-dragon".into(),
            deleted_at: LATER.into(),
        }
    }

    fn edit_by(actor_id: &str) -> ArticleCommand {
        ArticleCommand::Edit {
            actor_id: actor_id.into(),
            title: None,
            description: None,
            body: Some(body("With all your heart")),
            slug: None,
            at: LATER.into(),
        }
    }

    fn delete_by(actor_id: &str) -> ArticleCommand {
        ArticleCommand::Delete {
            actor_id: actor_id.into(),
            at: LATER.into(),
        }
    }

    #[test]
    fn slugs_are_what_slugify_makes() {
        for good in [
            "dragons",
            "how-to-train-2-dragons",
            "dragons-a1b2c3",
            FALLBACK_SLUG,
        ] {
            assert_eq!(check_slug(good), Ok(()), "{good}");
        }
        assert_eq!(check_slug(""), Err(FieldError::blank("slug")));
        assert_eq!(
            check_slug(&"a".repeat(MAX_CLAIMED_SLUG_CHARS + 1)),
            Err(FieldError::too_long("slug"))
        );
        for bad in [
            "feed", "-a", "a-", "a--b", "A", "a b", "a/b", "crème", "a_b", ".",
        ] {
            assert_eq!(check_slug(bad), Err(FieldError::invalid("slug")), "{bad}");
        }
        let title = "  How to Train Your Dragon: 2nd édition!! ".repeat(5);
        assert_eq!(check_slug(&slugify(&title)), Ok(()));
    }

    #[test]
    fn publish_a_new_article_with_normalized_tags() {
        ArticleTest::with(())
            .given_no_previous_events()
            .when(ArticleCommand::Publish {
                article_id: "a1".into(),
                author_id: "u1".into(),
                slug: "how-to-train-your-dragon".into(),
                title: title("  How to train your dragon "),
                description: description("Ever wonder how?"),
                body: body("You have to believe"),
                tag_list: tags(&["training", " dragons", "", "training "]),
                at: CREATED.into(),
            })
            .then_expect_events(vec![published()]);
    }

    #[test]
    fn publish_twice_is_refused() {
        ArticleTest::with(())
            .given(vec![published()])
            .when(ArticleCommand::Publish {
                article_id: "a1".into(),
                author_id: "u2".into(),
                slug: "other".into(),
                title: title("Other"),
                description: description("d"),
                body: body("b"),
                tag_list: Vec::new(),
                at: LATER.into(),
            })
            .then_expect_error(ArticleError::AlreadyPublished);
    }

    #[test]
    fn publish_after_delete_is_still_refused() {
        ArticleTest::with(())
            .given(vec![published(), deleted()])
            .when(ArticleCommand::Publish {
                article_id: "a1".into(),
                author_id: "u1".into(),
                slug: "again".into(),
                title: title("Again"),
                description: description("d"),
                body: body("b"),
                tag_list: Vec::new(),
                at: LATER.into(),
            })
            .then_expect_error(ArticleError::AlreadyPublished);
    }

    #[test]
    fn publish_refuses_invalid_tags() {
        ArticleTest::with(())
            .given_no_previous_events()
            .when(ArticleCommand::Publish {
                article_id: "a1".into(),
                author_id: "u1".into(),
                slug: "s".into(),
                title: title("S"),
                description: description("d"),
                body: body("b"),
                tag_list: vec!["t".repeat(MAX_TAG_CHARS + 1)],
                at: CREATED.into(),
            })
            .then_expect_error(ArticleError::Field(tag_too_long()));
    }

    #[test]
    fn edit_with_a_new_title_and_slug_carries_every_new_value() {
        ArticleTest::with(())
            .given(vec![published()])
            .when(ArticleCommand::Edit {
                actor_id: "u1".into(),
                title: Some(title("Did you train your dragon?")),
                description: None,
                body: None,
                slug: Some("did-you-train-your-dragon".into()),
                at: LATER.into(),
            })
            .then_expect_events(vec![ArticleEvent::ArticleEdited {
                slug: "did-you-train-your-dragon".into(),
                previous_slug: "how-to-train-your-dragon".into(),
                author_id: "u1".into(),
                title: "Did you train your dragon?".into(),
                description: "Ever wonder how?".into(),
                body: "You have to believe".into(),
                tag_list: tags(&["dragons", "training"]),
                created_at: CREATED.into(),
                updated_at: LATER.into(),
            }]);
    }

    #[test]
    fn edit_keeping_the_slug_names_it_as_previous_too() {
        ArticleTest::with(())
            .given(vec![published()])
            .when(edit_by("u1"))
            .then_expect_events(vec![ArticleEvent::ArticleEdited {
                slug: "how-to-train-your-dragon".into(),
                previous_slug: "how-to-train-your-dragon".into(),
                author_id: "u1".into(),
                title: "How to train your dragon".into(),
                description: "Ever wonder how?".into(),
                body: "With all your heart".into(),
                tag_list: tags(&["dragons", "training"]),
                created_at: CREATED.into(),
                updated_at: LATER.into(),
            }]);
    }

    #[test]
    fn edit_of_only_the_slug_is_a_change() {
        ArticleTest::with(())
            .given(vec![published()])
            .when(ArticleCommand::Edit {
                actor_id: "u1".into(),
                title: None,
                description: None,
                body: None,
                slug: Some("how-to-train-your-dragon-2".into()),
                at: LATER.into(),
            })
            .then_expect_events(vec![ArticleEvent::ArticleEdited {
                slug: "how-to-train-your-dragon-2".into(),
                previous_slug: "how-to-train-your-dragon".into(),
                author_id: "u1".into(),
                title: "How to train your dragon".into(),
                description: "Ever wonder how?".into(),
                body: "You have to believe".into(),
                tag_list: tags(&["dragons", "training"]),
                created_at: CREATED.into(),
                updated_at: LATER.into(),
            }]);
    }

    #[test]
    fn edit_with_unchanged_values_emits_nothing() {
        ArticleTest::with(())
            .given(vec![published()])
            .when(ArticleCommand::Edit {
                actor_id: "u1".into(),
                title: Some(title("How to train your dragon")),
                description: Some(description(" Ever wonder how? ")),
                body: Some(body("You have to believe")),
                slug: Some("how-to-train-your-dragon".into()),
                at: LATER.into(),
            })
            .then_expect_events(vec![]);
        ArticleTest::with(())
            .given(vec![published()])
            .when(ArticleCommand::Edit {
                actor_id: "u1".into(),
                title: None,
                description: None,
                body: None,
                slug: None,
                at: LATER.into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn edit_compares_with_the_latest_values() {
        let edited = ArticleEvent::ArticleEdited {
            slug: "new-slug".into(),
            previous_slug: "how-to-train-your-dragon".into(),
            author_id: "u1".into(),
            title: "New slug".into(),
            description: "Ever wonder how?".into(),
            body: "You have to believe".into(),
            tag_list: tags(&["dragons", "training"]),
            created_at: CREATED.into(),
            updated_at: LATER.into(),
        };
        ArticleTest::with(())
            .given(vec![published(), edited])
            .when(ArticleCommand::Edit {
                actor_id: "u1".into(),
                title: Some(title("How to train your dragon")),
                description: None,
                body: None,
                slug: Some("how-to-train-your-dragon".into()),
                at: "2024-01-03T00:00:00.000Z".into(),
            })
            .then_expect_events(vec![ArticleEvent::ArticleEdited {
                slug: "how-to-train-your-dragon".into(),
                previous_slug: "new-slug".into(),
                author_id: "u1".into(),
                title: "How to train your dragon".into(),
                description: "Ever wonder how?".into(),
                body: "You have to believe".into(),
                tag_list: tags(&["dragons", "training"]),
                created_at: CREATED.into(),
                updated_at: "2024-01-03T00:00:00.000Z".into(),
            }]);
    }

    #[test]
    fn edit_of_an_unpublished_article_is_not_found() {
        ArticleTest::with(())
            .given_no_previous_events()
            .when(edit_by("u1"))
            .then_expect_error(ArticleError::NotFound);
    }

    #[test]
    fn edit_of_a_deleted_article_is_not_found() {
        ArticleTest::with(())
            .given(vec![published(), deleted()])
            .when(edit_by("u1"))
            .then_expect_error(ArticleError::NotFound);
    }

    #[test]
    fn edit_by_someone_else_is_forbidden() {
        ArticleTest::with(())
            .given(vec![published()])
            .when(edit_by("u2"))
            .then_expect_error(ArticleError::Forbidden);
    }

    #[test]
    fn delete_emits_one_event() {
        ArticleTest::with(())
            .given(vec![published()])
            .when(delete_by("u1"))
            .then_expect_events(vec![deleted()]);
    }

    #[test]
    fn delete_of_an_unpublished_article_is_not_found() {
        ArticleTest::with(())
            .given_no_previous_events()
            .when(delete_by("u1"))
            .then_expect_error(ArticleError::NotFound);
    }

    #[test]
    fn delete_twice_is_not_found() {
        ArticleTest::with(())
            .given(vec![published(), deleted()])
            .when(delete_by("u1"))
            .then_expect_error(ArticleError::NotFound);
    }

    #[test]
    fn delete_by_someone_else_is_forbidden() {
        ArticleTest::with(())
            .given(vec![published()])
            .when(delete_by("u2"))
            .then_expect_error(ArticleError::Forbidden);
    }

    #[test]
    fn events_fold_into_the_state() {
        let mut article = Article::default();
        assert!(!article.is_published());
        article.apply(published());
        assert!(article.is_live());
        assert_eq!(article.updated_at, CREATED);
        article.apply(ArticleEvent::ArticleEdited {
            slug: "s2".into(),
            previous_slug: "how-to-train-your-dragon".into(),
            author_id: "u1".into(),
            title: "T2".into(),
            description: "D2".into(),
            body: "B2".into(),
            tag_list: tags(&["dragons", "training"]),
            created_at: CREATED.into(),
            updated_at: LATER.into(),
        });
        assert_eq!(
            (
                article.slug.as_str(),
                article.title.as_str(),
                article.description.as_str(),
                article.body.as_str(),
                article.created_at.as_str(),
                article.updated_at.as_str(),
            ),
            ("s2", "T2", "D2", "B2", CREATED, LATER)
        );
        article.apply(deleted());
        assert!(article.is_published());
        assert!(!article.is_live());
    }

    #[test]
    fn publish_claims_the_slug() {
        assert_eq!(
            published().unique_changes(),
            vec![UniqueChange::Claim {
                key: "slug#how-to-train-your-dragon".into()
            }]
        );
    }

    #[test]
    fn edit_with_a_new_slug_moves_the_claim() {
        let edited = ArticleEvent::ArticleEdited {
            slug: "new".into(),
            previous_slug: "old".into(),
            author_id: "u1".into(),
            title: "New".into(),
            description: "d".into(),
            body: "b".into(),
            tag_list: tags(&["dragons", "training"]),
            created_at: CREATED.into(),
            updated_at: LATER.into(),
        };
        assert_eq!(
            edited.unique_changes(),
            vec![
                UniqueChange::Release {
                    key: "slug#old".into()
                },
                UniqueChange::Claim {
                    key: "slug#new".into()
                },
            ]
        );
    }

    #[test]
    fn edit_keeping_the_slug_changes_no_claim() {
        let edited = ArticleEvent::ArticleEdited {
            slug: "same".into(),
            previous_slug: "same".into(),
            author_id: "u1".into(),
            title: "Same".into(),
            description: "d".into(),
            body: "b2".into(),
            tag_list: tags(&["dragons", "training"]),
            created_at: CREATED.into(),
            updated_at: LATER.into(),
        };
        assert_eq!(edited.unique_changes(), vec![]);
    }

    #[test]
    fn delete_releases_the_slug() {
        assert_eq!(
            deleted().unique_changes(),
            vec![UniqueChange::Release {
                key: "slug#how-to-train-your-dragon".into()
            }]
        );
    }

    #[test]
    fn titles_descriptions_and_bodies_are_trimmed_and_bounded() {
        assert_eq!(title("  Dragons \n").as_str(), "Dragons");
        assert_eq!(description("\tHow? ").as_str(), "How?");
        assert_eq!(body(" # Believe\n\n").as_str(), "# Believe");
        assert_eq!(Title::parse(" \n"), Err(FieldError::blank("title")));
        assert_eq!(
            Description::parse(""),
            Err(FieldError::blank("description"))
        );
        assert_eq!(Body::parse("\t"), Err(FieldError::blank("body")));
        // Limits count characters, not bytes, and apply after trimming.
        assert!(Title::parse(&format!(" {} ", "é".repeat(MAX_TITLE_CHARS))).is_ok());
        assert_eq!(
            Title::parse(&"t".repeat(MAX_TITLE_CHARS + 1)),
            Err(FieldError::too_long("title"))
        );
        assert!(Description::parse(&"d".repeat(MAX_DESCRIPTION_CHARS)).is_ok());
        assert_eq!(
            Description::parse(&"d".repeat(MAX_DESCRIPTION_CHARS + 1)),
            Err(FieldError::too_long("description"))
        );
        assert!(Body::parse(&"b".repeat(MAX_BODY_CHARS)).is_ok());
        assert_eq!(
            Body::parse(&"b".repeat(MAX_BODY_CHARS + 1)),
            Err(FieldError::too_long("body"))
        );
    }

    #[test]
    fn bodies_keep_line_breaks_and_tabs_but_refuse_other_control_characters() {
        assert_eq!(body("a\r\n\tb").as_str(), "a\r\n\tb");
        for bad in ["a\u{0}b", "a\u{1}b", "a\u{8}b", "a\u{1b}b", "a\u{7f}b"] {
            assert_eq!(
                Body::parse(bad),
                Err(FieldError::invalid("body")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_article_at_every_limit_fits_in_one_sns_message() {
        // The widest characters JSON leaves as they are take four bytes in UTF-8.
        let wide = |n: usize| "😀".repeat(n);
        let event = ArticleEvent::ArticlePublished {
            article_id: uuid::Uuid::new_v4().to_string(),
            author_id: uuid::Uuid::new_v4().to_string(),
            // Room for a suffix the handler may add to a taken slug.
            slug: "s".repeat(MAX_SLUG_CHARS + 37),
            title: title(&wide(MAX_TITLE_CHARS)).as_str().to_owned(),
            description: description(&wide(MAX_DESCRIPTION_CHARS))
                .as_str()
                .to_owned(),
            body: body(&wide(MAX_BODY_CHARS)).as_str().to_owned(),
            tag_list: normalize_tags(
                (0..MAX_TAGS)
                    .map(|i| format!("{i:02}{}", wide(MAX_TAG_CHARS - 2)))
                    .collect(),
            )
            .expect("tags at the limits"),
            created_at: CREATED.into(),
        };
        let (event_type, event_version, payload) = event.to_stored();
        let stored = StoredEvent {
            aggregate_type: AGGREGATE_TYPE.into(),
            aggregate_id: uuid::Uuid::new_v4().to_string(),
            sequence: u64::MAX,
            event_id: uuid::Uuid::new_v4(),
            event_type,
            event_version,
            payload,
            metadata: Metadata {
                actor: Some(uuid::Uuid::new_v4().to_string()),
                correlation_id: Some(uuid::Uuid::new_v4().to_string()),
                causation_id: Some(uuid::Uuid::new_v4().to_string()),
                request_id: Some(uuid::Uuid::new_v4().to_string()),
            },
            recorded_at: CREATED.into(),
        };
        let message = serde_json::to_string(&stored.without_secrets()).expect("serializable");
        assert!(
            message.len() < 256 * 1024 - 1024,
            "{} bytes leave no room for attributes",
            message.len()
        );
    }

    #[test]
    fn slugs_are_lower_case_ascii_words_joined_by_dashes() {
        let cases = [
            ("How to train your dragon", "how-to-train-your-dragon"),
            ("  Hello,   World!  ", "hello-world"),
            ("C++ & Rust: 2024 edition?", "c-rust-2024-edition"),
            ("--already-a-slug--", "already-a-slug"),
            ("snake_case.and/slashes", "snake-case-and-slashes"),
            ("tab\tand\nnewline", "tab-and-newline"),
            ("Crème brûlée", "crme-brle"),
            ("Ünïcödé wörds", "ncd-wrds"),
            ("emoji 😀 in\u{a0}between", "emoji-in-between"),
            ("日本語のタイトル", FALLBACK_SLUG),
            ("", FALLBACK_SLUG),
            ("   ", FALLBACK_SLUG),
            ("?!...", FALLBACK_SLUG),
        ];
        for (title, slug) in cases {
            assert_eq!(slugify(title), slug, "{title:?}");
        }
    }

    #[test]
    fn long_slugs_are_cut_without_a_trailing_dash() {
        assert_eq!(slugify(&"a".repeat(500)), "a".repeat(MAX_SLUG_CHARS));
        // The cut falls right after a dash: it is trimmed away.
        let title = format!("{} {}", "a".repeat(MAX_SLUG_CHARS - 1), "b".repeat(10));
        assert_eq!(slugify(&title), "a".repeat(MAX_SLUG_CHARS - 1));
        // A cut may fall inside a word.
        assert_eq!(
            slugify(&"word ".repeat(100)),
            format!("{}w", "word-".repeat(19))
        );
    }

    #[test]
    fn tags_are_trimmed_deduplicated_and_sorted() {
        assert_eq!(
            normalize_tags(tags(&[
                " rust", "aws ", "", "  ", "rust", "Rust", "aws", "zebra"
            ])),
            Ok(tags(&["Rust", "aws", "rust", "zebra"]))
        );
        assert_eq!(normalize_tags(Vec::new()), Ok(Vec::new()));
    }

    #[test]
    fn tags_are_bounded_in_length_and_number() {
        let longest = "t".repeat(MAX_TAG_CHARS);
        assert_eq!(normalize_tags(vec![longest.clone()]), Ok(vec![longest]));
        assert_eq!(
            normalize_tags(vec!["t".repeat(MAX_TAG_CHARS + 1)]),
            Err(tag_too_long())
        );
        let distinct = |n: usize| (0..n).map(|i| format!("tag{i:02}")).collect::<Vec<_>>();
        assert_eq!(
            normalize_tags(distinct(MAX_TAGS)).map(|t| t.len()),
            Ok(MAX_TAGS)
        );
        assert_eq!(normalize_tags(distinct(MAX_TAGS + 1)), Err(too_many_tags()));
        // Duplicates and blanks do not count against the limit.
        let mut repeated = distinct(MAX_TAGS);
        repeated.extend(distinct(MAX_TAGS));
        repeated.push(" ".into());
        assert_eq!(normalize_tags(repeated).map(|t| t.len()), Ok(MAX_TAGS));
    }

    #[test]
    fn every_event_round_trips_through_its_stored_form() {
        let events = vec![
            published(),
            ArticleEvent::ArticleEdited {
                slug: "new".into(),
                previous_slug: "old".into(),
                author_id: "u1".into(),
                title: "New".into(),
                description: "d".into(),
                body: "b".into(),
                tag_list: tags(&["dragons", "training"]),
                created_at: CREATED.into(),
                updated_at: LATER.into(),
            },
            deleted(),
        ];
        for event in events {
            let (event_type, version, payload) = event.to_stored();
            assert_eq!(event_type, event.event_type());
            assert!(payload.is_object(), "{event_type} payload is a map");
            let back =
                ArticleEvent::from_stored(&event_type, version, &payload).expect("round trip");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn stored_payload_is_readable_camel_case() {
        let (event_type, version, payload) = published().to_stored();
        assert_eq!(event_type, "ArticlePublished");
        assert_eq!(version, 1);
        assert_eq!(
            payload,
            serde_json::json!({
                "articleId": "a1",
                "authorId": "u1",
                "slug": "how-to-train-your-dragon",
                "title": "How to train your dragon",
                "description": "Ever wonder how?",
                "body": "You have to believe",
                "tagList": ["dragons", "training"],
                "createdAt": CREATED,
            })
        );
        let (event_type, _, payload) = ArticleEvent::ArticleEdited {
            slug: "new".into(),
            previous_slug: "old".into(),
            author_id: "u1".into(),
            title: "New".into(),
            description: "d".into(),
            body: "b".into(),
            tag_list: tags(&["dragons", "training"]),
            created_at: CREATED.into(),
            updated_at: LATER.into(),
        }
        .to_stored();
        assert_eq!(event_type, "ArticleEdited");
        assert_eq!(
            payload,
            serde_json::json!({
                "slug": "new", "previousSlug": "old", "authorId": "u1", "title": "New",
                "description": "d", "body": "b", "tagList": ["dragons", "training"],
                "createdAt": CREATED, "updatedAt": LATER
            })
        );
        let (event_type, _, payload) = deleted().to_stored();
        assert_eq!(event_type, "ArticleDeleted");
        assert_eq!(
            payload,
            serde_json::json!({"authorId": "u1", "slug": "how-to-train-your-dragon", "deletedAt": LATER})
        );
    }
}
