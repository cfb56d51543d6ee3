//! `POST /events`: domain events posted by their actor, appended when their aggregate accepts
//! them in its current state.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::auth::AuthUser;
use common::error::{ApiError, JsonBody};
use events::article::Article;
use events::comment::ArticleComments;
use events::favorite::Favorite;
use events::posted::{AggregateKind, PostError, PostOutcome, Postable, Problem, RawPost, Refusal};
use events::user::User;
use events::{Metadata, StoredEvent};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::errors::store_error;
use crate::users::metadata;
use crate::written::{position, Written};
use crate::AppState;

/// One appended event, as the answer names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendedEvent {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: u32,
    pub recorded_at: String,
}

impl From<StoredEvent> for AppendedEvent {
    fn from(event: StoredEvent) -> Self {
        Self {
            event_id: event.event_id,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            version: event.event_version,
            recorded_at: event.recorded_at,
        }
    }
}

/// `{"events": [...]}`, in the order posted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppendedEvents {
    pub events: Vec<AppendedEvent>,
}

/// A refused post: an [`ApiError`], or a 409 that names the fields at fault (the shared
/// `Conflict` only says "changed concurrently").
#[derive(Debug)]
pub enum PostRefused {
    Api(ApiError),
    Conflict(BTreeMap<String, Vec<String>>),
}

impl From<ApiError> for PostRefused {
    fn from(error: ApiError) -> Self {
        PostRefused::Api(error)
    }
}

impl IntoResponse for PostRefused {
    fn into_response(self) -> Response {
        match self {
            PostRefused::Api(error) => error.into_response(),
            PostRefused::Conflict(fields) => {
                tracing::debug!(?fields, "post refused");
                let body = serde_json::json!({ "errors": fields });
                (StatusCode::CONFLICT, Json(body)).into_response()
            }
        }
    }
}

fn fields(problems: impl IntoIterator<Item = Problem>) -> BTreeMap<String, Vec<String>> {
    let mut fields = BTreeMap::<String, Vec<String>>::new();
    for problem in problems {
        fields
            .entry(problem.field)
            .or_default()
            .push(problem.message);
    }
    fields
}

fn unprocessable(problems: Vec<Problem>) -> PostRefused {
    PostRefused::Api(ApiError::Unprocessable(fields(problems)))
}

fn conflict(problems: impl IntoIterator<Item = Problem>) -> PostRefused {
    PostRefused::Conflict(fields(problems))
}

/// The one mapping of a refused post to its answer.
fn refused(error: PostError) -> PostRefused {
    match error {
        PostError::SequenceMismatch { expected, actual } => conflict([Problem::new(
            "expectedSequence",
            format!("is {expected}, but the aggregate's last event is {actual}"),
        )]),
        PostError::EventIdReused { index } => {
            conflict([Problem::new("eventId", "was used before for another event").of_event(index)])
        }
        PostError::PartlyAppended { appended } => conflict(
            appended
                .into_iter()
                .map(|index| {
                    Problem::new("eventId", "was appended by an earlier post").of_event(index)
                })
                .chain([Problem::new(
                    "events",
                    "mix events appended before with new ones; post the new ones alone",
                )]),
        ),
        PostError::Refused { index, refusal } => match refusal {
            Refusal::Forbidden => ApiError::Forbidden.into(),
            Refusal::Exists(message) => {
                conflict([Problem::new("aggregateId", message).of_event(index)])
            }
            Refusal::Invalid(problems) => {
                unprocessable(problems.into_iter().map(|p| p.of_event(index)).collect())
            }
        },
        PostError::Taken { index, field, .. } => {
            conflict([Problem::new(field, "has already been taken").of_event(index)])
        }
        PostError::Conflict => conflict([Problem::new(
            "events",
            "the aggregate kept changing concurrently; try again",
        )]),
        PostError::Store(error) => store_error(error).into(),
        PostError::Schema(error) => ApiError::internal(error).into(),
    }
}

async fn post_to<A: Postable>(
    state: &AppState,
    raw: RawPost,
    actor: &str,
    metadata: Metadata,
) -> Result<PostOutcome, PostRefused> {
    let post = raw.typed::<A::Event>().map_err(unprocessable)?;
    state
        .repository
        .post::<A>(post, actor, metadata)
        .await
        .map_err(refused)
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn append(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Written<(StatusCode, Json<AppendedEvents>)>, PostRefused> {
    let raw = RawPost::parse(&body).map_err(unprocessable)?;
    let actor = caller.user_id.as_str();
    let metadata = metadata(&headers, Some(actor));
    let outcome = match raw.kind {
        AggregateKind::User => post_to::<User>(&state, raw, actor, metadata).await,
        AggregateKind::Article => post_to::<Article>(&state, raw, actor, metadata).await,
        AggregateKind::ArticleComments => {
            post_to::<ArticleComments>(&state, raw, actor, metadata).await
        }
        AggregateKind::Favorite => post_to::<Favorite>(&state, raw, actor, metadata).await,
    }?;
    let (status, events) = match outcome {
        PostOutcome::Appended(events) => (StatusCode::CREATED, events),
        PostOutcome::Replayed(events) => (StatusCode::OK, events),
    };
    let last = events
        .last()
        .and_then(|e| position(&e.aggregate_type, &e.aggregate_id, e.sequence));
    let body = AppendedEvents {
        events: events.into_iter().map(AppendedEvent::from).collect(),
    };
    Ok(Written::at(last, (status, Json(body))))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(error: PostError) -> (StatusCode, Value) {
        let response = refused(error).into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn each_refusal_has_its_status_and_names_its_field() {
        let (status, body) = answer(PostError::SequenceMismatch {
            expected: 1,
            actual: 2,
        })
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["errors"]["expectedSequence"][0].is_string());

        let (status, body) = answer(PostError::EventIdReused { index: 2 }).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["errors"]["events[2].eventId"][0].is_string());

        let (status, body) = answer(PostError::PartlyAppended { appended: vec![0] }).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["errors"]["events[0].eventId"][0].is_string());
        assert!(body["errors"]["events"][0].is_string());

        let (status, _) = answer(PostError::Refused {
            index: 0,
            refusal: Refusal::Forbidden,
        })
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let (status, body) = answer(PostError::Refused {
            index: 1,
            refusal: Refusal::invalid("data.slug", "is invalid"),
        })
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"]["events[1].data.slug"][0], "is invalid");

        let (status, body) = answer(PostError::Refused {
            index: 0,
            refusal: Refusal::Exists("user is already registered".into()),
        })
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["errors"]["events[0].aggregateId"][0].is_string());

        let (status, body) = answer(PostError::Taken {
            index: 0,
            field: "data.email".into(),
            key: "email#a@b.io".into(),
        })
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            body["errors"]["events[0].data.email"][0],
            "has already been taken"
        );
        assert!(!body.to_string().contains("a@b.io"));
    }

    #[tokio::test]
    async fn store_failures_show_no_detail() {
        let (status, body) = answer(PostError::Store(events::StoreError::Unavailable(
            "table conduit-events: secret detail".into(),
        )))
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body.to_string().contains("secret detail"));
    }
}
