//! Which command a posted comment event stands for: a comment is posted and deleted by its
//! author only.

use super::{check_timestamp, Fact, Facts, Postable, Refusal};
use crate::comment::{ArticleComments, CommentBody, CommentCommand, CommentError, CommentEvent};

impl Postable for ArticleComments {
    fn authorize(aggregate_id: &str, event: &CommentEvent, actor: &str) -> Result<(), Refusal> {
        let (CommentEvent::CommentAdded {
            article_id,
            author_id,
            ..
        }
        | CommentEvent::CommentDeleted {
            article_id,
            author_id,
            ..
        }) = event;
        if article_id != aggregate_id {
            return Err(Refusal::invalid("data.articleId", "must equal aggregateId"));
        }
        if author_id == actor {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    }

    fn needs(event: &CommentEvent, actor: &str) -> Vec<Fact> {
        match event {
            CommentEvent::CommentAdded { article_id, .. } => vec![
                Fact::UserRegistered(actor.to_owned()),
                Fact::ArticleLive(article_id.clone()),
            ],
            CommentEvent::CommentDeleted { .. } => Vec::new(),
        }
    }

    fn command_for(
        &self,
        event: &CommentEvent,
        actor: &str,
        facts: &Facts,
    ) -> Result<CommentCommand, Refusal> {
        match event {
            CommentEvent::CommentAdded {
                article_id,
                author_id,
                body,
                created_at,
                ..
            } => {
                if !facts.holds(&Fact::UserRegistered(actor.to_owned())) {
                    return Err(Refusal::Forbidden);
                }
                check_timestamp("createdAt", created_at)?;
                Ok(CommentCommand::Add {
                    article_id: article_id.clone(),
                    author_id: author_id.clone(),
                    body: CommentBody::parse(body).map_err(Refusal::field)?,
                    article_exists: facts.holds(&Fact::ArticleLive(article_id.clone())),
                    at: created_at.clone(),
                })
            }
            CommentEvent::CommentDeleted {
                comment_id,
                deleted_at,
                ..
            } => {
                check_timestamp("deletedAt", deleted_at)?;
                Ok(CommentCommand::Remove {
                    comment_id: *comment_id,
                    actor_id: actor.to_owned(),
                    at: deleted_at.clone(),
                })
            }
        }
    }

    fn refusal(error: CommentError) -> Refusal {
        match error {
            CommentError::ArticleNotFound => {
                Refusal::invalid("data.articleId", "names no live article")
            }
            CommentError::CommentNotFound => {
                Refusal::invalid("data.commentId", "names no comment of this article")
            }
            CommentError::Forbidden => Refusal::Forbidden,
        }
    }
}
