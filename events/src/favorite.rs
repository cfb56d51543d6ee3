//! The `Favorite` aggregate: whether one user favors one article.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::envelope::EventSchema;
use crate::snapshot::Snapshotted;

/// The aggregate type name, the prefix of every favorite stream key. There is one stream per
/// (article, user) pair: users favoring the same article at once never contend, and each
/// stream's events say exactly how the article's count changes.
pub const AGGREGATE_TYPE: &str = "Favorite";

/// The id of the stream of `user_id`'s favorite of `article_id`: `<articleId>:<userId>`.
pub fn favorite_id(article_id: &str, user_id: &str) -> String {
    format!("{article_id}:{user_id}")
}

/// What a favorite is asked to do. Facts (whether the article exists, the time) are looked up
/// before.
#[derive(Clone, Debug, PartialEq)]
pub enum FavoriteCommand {
    /// `POST /articles/{slug}/favorite`; does nothing if already favorited.
    Favorite {
        article_id: String,
        user_id: String,
        /// Whether the article is published and not deleted.
        article_exists: bool,
        /// ISO 8601 with milliseconds.
        at: String,
    },
    /// `DELETE /articles/{slug}/favorite`; does nothing if not favorited.
    Unfavorite {
        article_id: String,
        user_id: String,
        /// ISO 8601 with milliseconds.
        at: String,
    },
}

/// What happened to a favorite. Stored as `eventType` = the variant name, `payload` = its fields.
/// Favorited and unfavorited alternate in every stream, so each one moves the count by one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FavoriteEvent {
    #[serde(rename_all = "camelCase")]
    ArticleFavorited {
        article_id: String,
        user_id: String,
        favorited_at: String,
    },
    #[serde(rename_all = "camelCase")]
    ArticleUnfavorited {
        article_id: String,
        user_id: String,
        unfavorited_at: String,
    },
}

impl DomainEvent for FavoriteEvent {
    fn event_type(&self) -> String {
        self.to_stored().0
    }

    fn event_version(&self) -> String {
        self.to_stored().1.to_string()
    }
}

impl EventSchema for FavoriteEvent {}

/// Why a favorite refused a command. The HTTP status each becomes is noted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FavoriteError {
    /// 404: the article does not exist or was deleted.
    #[error("article not found")]
    ArticleNotFound,
}

/// The state of one user's favorite of one article, folded from its events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Favorite {
    pub favorited: bool,
}

/// Version 1: the serde form of the fields above.
impl Snapshotted for Favorite {
    const SHAPE: u32 = 1;
}

impl Aggregate for Favorite {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = FavoriteCommand;
    type Event = FavoriteEvent;
    type Error = FavoriteError;
    type Services = ();

    async fn handle(
        &mut self,
        command: FavoriteCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), FavoriteError> {
        let event = match command {
            FavoriteCommand::Favorite {
                article_id,
                user_id,
                article_exists,
                at,
            } => {
                if !article_exists {
                    return Err(FavoriteError::ArticleNotFound);
                }
                (!self.favorited).then_some(FavoriteEvent::ArticleFavorited {
                    article_id,
                    user_id,
                    favorited_at: at,
                })
            }
            FavoriteCommand::Unfavorite {
                article_id,
                user_id,
                at,
            } => self.favorited.then_some(FavoriteEvent::ArticleUnfavorited {
                article_id,
                user_id,
                unfavorited_at: at,
            }),
        };
        if let Some(event) = event {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: FavoriteEvent) {
        self.favorited = matches!(event, FavoriteEvent::ArticleFavorited { .. });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::UniqueChange;
    use cqrs_es::test::TestFramework;

    type FavoriteTest = TestFramework<Favorite>;

    const AT: &str = "2024-01-01T00:00:00.000Z";
    const LATER: &str = "2024-01-02T03:04:05.678Z";

    fn favorite(article_exists: bool) -> FavoriteCommand {
        FavoriteCommand::Favorite {
            article_id: "a1".into(),
            user_id: "u1".into(),
            article_exists,
            at: AT.into(),
        }
    }

    fn unfavorite() -> FavoriteCommand {
        FavoriteCommand::Unfavorite {
            article_id: "a1".into(),
            user_id: "u1".into(),
            at: LATER.into(),
        }
    }

    fn favorited() -> FavoriteEvent {
        FavoriteEvent::ArticleFavorited {
            article_id: "a1".into(),
            user_id: "u1".into(),
            favorited_at: AT.into(),
        }
    }

    fn unfavorited() -> FavoriteEvent {
        FavoriteEvent::ArticleUnfavorited {
            article_id: "a1".into(),
            user_id: "u1".into(),
            unfavorited_at: LATER.into(),
        }
    }

    #[test]
    fn the_id_names_article_and_user() {
        assert_eq!(
            favorite_id("9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d", "u1"),
            "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d:u1"
        );
    }

    #[test]
    fn favorite_an_article() {
        FavoriteTest::with(())
            .given_no_previous_events()
            .when(favorite(true))
            .then_expect_events(vec![favorited()]);
    }

    #[test]
    fn favorite_again_after_unfavoriting() {
        FavoriteTest::with(())
            .given(vec![favorited(), unfavorited()])
            .when(favorite(true))
            .then_expect_events(vec![favorited()]);
    }

    #[test]
    fn favorite_when_favorited_emits_nothing() {
        FavoriteTest::with(())
            .given(vec![favorited()])
            .when(favorite(true))
            .then_expect_events(vec![]);
    }

    #[test]
    fn favorite_of_a_missing_or_deleted_article_is_refused() {
        FavoriteTest::with(())
            .given_no_previous_events()
            .when(favorite(false))
            .then_expect_error(FavoriteError::ArticleNotFound);
        // Existence is checked first: a deleted article answers 404 even to its favoriters.
        FavoriteTest::with(())
            .given(vec![favorited()])
            .when(favorite(false))
            .then_expect_error(FavoriteError::ArticleNotFound);
    }

    #[test]
    fn unfavorite_a_favorited_article() {
        FavoriteTest::with(())
            .given(vec![favorited()])
            .when(unfavorite())
            .then_expect_events(vec![unfavorited()]);
    }

    #[test]
    fn unfavorite_when_not_favorited_emits_nothing() {
        FavoriteTest::with(())
            .given_no_previous_events()
            .when(unfavorite())
            .then_expect_events(vec![]);
        FavoriteTest::with(())
            .given(vec![favorited(), unfavorited()])
            .when(unfavorite())
            .then_expect_events(vec![]);
    }

    #[test]
    fn events_fold_into_the_state() {
        let mut state = Favorite::default();
        assert!(!state.favorited);
        state.apply(favorited());
        assert!(state.favorited);
        state.apply(unfavorited());
        assert!(!state.favorited);
    }

    #[test]
    fn favorites_claim_nothing_unique() {
        assert_eq!(favorited().unique_changes(), Vec::<UniqueChange>::new());
        assert_eq!(unfavorited().unique_changes(), Vec::<UniqueChange>::new());
    }

    #[test]
    fn every_event_round_trips_through_its_stored_form() {
        for event in [favorited(), unfavorited()] {
            let (event_type, version, payload) = event.to_stored();
            assert_eq!(event_type, event.event_type());
            assert!(payload.is_object(), "{event_type} payload is a map");
            let back =
                FavoriteEvent::from_stored(&event_type, version, &payload).expect("round trip");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn stored_payload_is_readable_camel_case() {
        let (event_type, version, payload) = favorited().to_stored();
        assert_eq!(event_type, "ArticleFavorited");
        assert_eq!(version, 1);
        assert_eq!(
            payload,
            serde_json::json!({"articleId": "a1", "userId": "u1", "favoritedAt": AT})
        );
        let (event_type, _, payload) = unfavorited().to_stored();
        assert_eq!(event_type, "ArticleUnfavorited");
        assert_eq!(
            payload,
            serde_json::json!({"articleId": "a1", "userId": "u1", "unfavoritedAt": LATER})
        );
    }
}
