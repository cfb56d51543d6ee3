//! Which command a posted article event stands for: only the author may post them.

use super::{check_new_id, check_timestamp, Fact, Facts, Fields, Postable, Refusal};
use crate::article::{
    check_slug, Article, ArticleCommand, ArticleError, ArticleEvent, Body, Description, Title,
};

impl Postable for Article {
    fn authorize(aggregate_id: &str, event: &ArticleEvent, actor: &str) -> Result<(), Refusal> {
        let author_id = match event {
            ArticleEvent::ArticlePublished {
                article_id,
                author_id,
                ..
            } => {
                if article_id != aggregate_id {
                    return Err(Refusal::invalid("data.articleId", "must equal aggregateId"));
                }
                check_new_id(aggregate_id)?;
                author_id
            }
            ArticleEvent::ArticleEdited { author_id, .. }
            | ArticleEvent::ArticleDeleted { author_id, .. } => author_id,
        };
        if author_id == actor {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    }

    fn needs(event: &ArticleEvent, actor: &str) -> Vec<Fact> {
        match event {
            ArticleEvent::ArticlePublished { .. } => vec![Fact::UserRegistered(actor.to_owned())],
            _ => Vec::new(),
        }
    }

    fn command_for(
        &self,
        event: &ArticleEvent,
        actor: &str,
        facts: &Facts,
    ) -> Result<ArticleCommand, Refusal> {
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
                if !facts.holds(&Fact::UserRegistered(actor.to_owned())) {
                    return Err(Refusal::Forbidden);
                }
                let mut fields = Fields::default();
                fields.check(check_slug(slug));
                fields.check_refusal(check_timestamp("createdAt", created_at));
                let title = fields.check(Title::parse(title));
                let description = fields.check(Description::parse(description));
                let body = fields.check(Body::parse(body));
                let (title, (description, body)) = fields.done(title.zip(description.zip(body)))?;
                Ok(ArticleCommand::Publish {
                    article_id: article_id.clone(),
                    author_id: author_id.clone(),
                    slug: slug.clone(),
                    title,
                    description,
                    body,
                    tag_list: tag_list.clone(),
                    at: created_at.clone(),
                })
            }
            ArticleEvent::ArticleEdited {
                slug,
                title,
                description,
                body,
                updated_at,
                ..
            } => {
                let mut fields = Fields::default();
                fields.check(check_slug(slug));
                fields.check_refusal(check_timestamp("updatedAt", updated_at));
                let title = fields.check(Title::parse(title));
                let description = fields.check(Description::parse(description));
                let body = fields.check(Body::parse(body));
                let (title, (description, body)) = fields.done(title.zip(description.zip(body)))?;
                Ok(ArticleCommand::Edit {
                    actor_id: actor.to_owned(),
                    title: Some(title),
                    description: Some(description),
                    body: Some(body),
                    slug: Some(slug.clone()),
                    at: updated_at.clone(),
                })
            }
            ArticleEvent::ArticleDeleted { deleted_at, .. } => {
                check_timestamp("deletedAt", deleted_at)?;
                Ok(ArticleCommand::Delete {
                    actor_id: actor.to_owned(),
                    at: deleted_at.clone(),
                })
            }
        }
    }

    fn refusal(error: ArticleError) -> Refusal {
        match error {
            ArticleError::AlreadyPublished => Refusal::Exists(error.to_string()),
            ArticleError::NotFound => Refusal::invalid("aggregateId", "names no live article"),
            ArticleError::Forbidden => Refusal::Forbidden,
            ArticleError::Field(field) => Refusal::field(field),
        }
    }
}
