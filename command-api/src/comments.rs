//! `POST /articles/{slug}/comments` and `DELETE /articles/{slug}/comments/{id}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use common::auth::AuthUser;
use common::error::{ApiError, JsonBody};
use common::responses::{CommentBody as CommentResponseBody, SingleCommentResponse};
use events::comment::{ArticleComments, CommentBody, CommentCommand, CommentEvent};
use events::EventSchema;
use serde::Deserialize;

use crate::articles::{article_id_of, live_article, now, profile, registered_user};
use crate::errors::{comment_error, FieldErrorList};
use crate::users::metadata;
use crate::written::Written;
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub comment: T,
}

#[derive(Debug, Deserialize)]
pub struct NewComment {
    body: Option<String>,
}

fn parse_new(input: NewComment) -> Result<CommentBody, ApiError> {
    CommentBody::parse(input.body.as_deref().unwrap_or(""))
        .map_err(|field| FieldErrorList(vec![field]).into())
}

/// A comment id as the path spells it: decimal digits only. Anything else names no comment.
fn comment_id(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    Path(slug): Path<String>,
    JsonBody(Envelope { comment: input }): JsonBody<Envelope<NewComment>>,
) -> Result<Written<Json<SingleCommentResponse>>, ApiError> {
    let body = parse_new(input)?;
    let ((article_id, article), author) = tokio::try_join!(
        live_article(&state, &slug),
        registered_user(&state, &caller.user_id),
    )?;
    let executed = state
        .repository
        .execute::<ArticleComments>(
            &article_id,
            CommentCommand::Add {
                article_id: article_id.clone(),
                author_id: caller.user_id.clone(),
                body,
                article_exists: article.is_live(),
                at: now(),
            },
            metadata(&headers, Some(&caller.user_id)),
        )
        .await
        .map_err(comment_error)?;
    let added = executed.events.iter().find_map(|stored| {
        match CommentEvent::from_stored(&stored.event_type, stored.event_version, &stored.payload) {
            Ok(CommentEvent::CommentAdded {
                comment_id,
                body,
                created_at,
                ..
            }) => Some((comment_id, body, created_at)),
            _ => None,
        }
    });
    let Some((id, body, created_at)) = added else {
        return Err(ApiError::internal(
            "adding a comment appended no CommentAdded",
        ));
    };
    let response = Json(SingleCommentResponse {
        comment: CommentResponseBody {
            id,
            updated_at: created_at.clone(),
            created_at,
            body,
            author: profile(&author, false),
        },
    });
    Ok(Written::after(&article_id, &executed, response))
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn delete(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Written<StatusCode>, ApiError> {
    let article_id = article_id_of(&state, &slug).await?;
    let comment_id = comment_id(&id).ok_or(ApiError::NotFound("comment"))?;
    let executed = state
        .repository
        .execute::<ArticleComments>(
            &article_id,
            CommentCommand::Remove {
                comment_id,
                actor_id: caller.user_id.clone(),
                at: now(),
            },
            metadata(&headers, Some(&caller.user_id)),
        )
        .await
        .map_err(comment_error)?;
    Ok(Written::after(
        &article_id,
        &executed,
        StatusCode::NO_CONTENT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_comment(json: serde_json::Value) -> NewComment {
        serde_json::from_value(json).expect("NewComment shape")
    }

    #[test]
    fn a_comment_body_is_trimmed() {
        let body = parse_new(new_comment(serde_json::json!({"body": " Nice!\n"}))).expect("valid");
        assert_eq!(body.as_str(), "Nice!");
    }

    #[test]
    fn a_blank_missing_or_overlong_body_is_refused() {
        for json in [
            serde_json::json!({"body": "  "}),
            serde_json::json!({}),
            serde_json::json!({"body": null}),
            serde_json::json!({"body": "b".repeat(events::comment::MAX_COMMENT_BODY_CHARS + 1)}),
        ] {
            match parse_new(new_comment(json.clone())) {
                Err(ApiError::Unprocessable(fields)) => assert!(fields.contains_key("body")),
                other => panic!("{json}: expected a 422, got {other:?}"),
            }
        }
    }

    #[test]
    fn comment_ids_are_decimal_numbers() {
        assert_eq!(comment_id("1"), Some(1));
        assert_eq!(comment_id("42"), Some(42));
        assert_eq!(comment_id("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "abc", "-1", "+1", "1.0", " 1", "18446744073709551616"] {
            assert_eq!(comment_id(bad), None, "{bad:?}");
        }
    }
}
