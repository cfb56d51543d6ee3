//! Which command a posted favorite event stands for: users favor articles in their own name.

use super::{check_timestamp, Fact, Facts, Postable, Refusal};
use crate::favorite::{favorite_id, Favorite, FavoriteCommand, FavoriteError, FavoriteEvent};

impl Postable for Favorite {
    fn authorize(aggregate_id: &str, event: &FavoriteEvent, actor: &str) -> Result<(), Refusal> {
        let (FavoriteEvent::ArticleFavorited {
            article_id,
            user_id,
            ..
        }
        | FavoriteEvent::ArticleUnfavorited {
            article_id,
            user_id,
            ..
        }) = event;
        if aggregate_id != favorite_id(article_id, user_id) {
            return Err(Refusal::invalid(
                "aggregateId",
                "must be <articleId>:<userId> of the event's data",
            ));
        }
        if user_id == actor {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    }

    fn needs(event: &FavoriteEvent, actor: &str) -> Vec<Fact> {
        match event {
            FavoriteEvent::ArticleFavorited { article_id, .. } => vec![
                Fact::UserRegistered(actor.to_owned()),
                Fact::ArticleLive(article_id.clone()),
            ],
            FavoriteEvent::ArticleUnfavorited { .. } => Vec::new(),
        }
    }

    fn command_for(
        &self,
        event: &FavoriteEvent,
        actor: &str,
        facts: &Facts,
    ) -> Result<FavoriteCommand, Refusal> {
        match event {
            FavoriteEvent::ArticleFavorited {
                article_id,
                user_id,
                favorited_at,
            } => {
                if !facts.holds(&Fact::UserRegistered(actor.to_owned())) {
                    return Err(Refusal::Forbidden);
                }
                check_timestamp("favoritedAt", favorited_at)?;
                Ok(FavoriteCommand::Favorite {
                    article_id: article_id.clone(),
                    user_id: user_id.clone(),
                    article_exists: facts.holds(&Fact::ArticleLive(article_id.clone())),
                    at: favorited_at.clone(),
                })
            }
            FavoriteEvent::ArticleUnfavorited {
                article_id,
                user_id,
                unfavorited_at,
            } => {
                check_timestamp("unfavoritedAt", unfavorited_at)?;
                Ok(FavoriteCommand::Unfavorite {
                    article_id: article_id.clone(),
                    user_id: user_id.clone(),
                    at: unfavorited_at.clone(),
                })
            }
        }
    }

    fn refusal(error: FavoriteError) -> Refusal {
        match error {
            FavoriteError::ArticleNotFound => {
                Refusal::invalid("data.articleId", "names no live article")
            }
        }
    }
}
