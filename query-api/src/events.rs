//! `GET /events/{aggregateType}/{aggregateId}`: one aggregate's own event stream, for its owner
//! only, without secrets. The one endpoint that reads the event log instead of a read model.

use ::events::article::{self, ArticleEvent};
use ::events::favorite::FavoriteEvent;
use ::events::posted::{valid_aggregate_id, AggregateKind};
use ::events::{EventSchema, Metadata, StoredEvent};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use common::auth::AuthUser;
use common::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::readers::Readers;
use crate::AppState;

/// Events per page when `limit` is not given.
pub const DEFAULT_LIMIT: u64 = 100;
/// Most events one page may hold.
pub const MAX_LIMIT: u64 = 1_000;

#[derive(Debug, Deserialize)]
pub struct StreamParams {
    from: Option<String>,
    limit: Option<String>,
}

/// One event of the stream, in its type's current version, secrets removed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEvent {
    pub event_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: u32,
    pub recorded_at: String,
    pub data: Value,
    pub metadata: Metadata,
}

impl From<StoredEvent> for StreamEvent {
    fn from(event: StoredEvent) -> Self {
        let event = event.without_secrets();
        Self {
            event_id: event.event_id.to_string(),
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            version: event.event_version,
            recorded_at: event.recorded_at,
            data: event.payload,
            metadata: event.metadata,
        }
    }
}

/// `{"events": [...], "nextFrom": n|null}`: `nextFrom` is the `from` of the next page, `null`
/// after the last event.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamPage {
    pub events: Vec<StreamEvent>,
    pub next_from: Option<u64>,
}

/// `from` (default 1, at least 1) and `limit` (default [`DEFAULT_LIMIT`], 1 to [`MAX_LIMIT`]).
fn page(params: &StreamParams) -> Result<(u64, u64), ApiError> {
    let mut fields = std::collections::BTreeMap::new();
    let from = match params.from.as_deref() {
        None => Some(1),
        Some(raw) => raw.parse::<u64>().ok().filter(|from| *from >= 1),
    };
    if from.is_none() {
        fields.insert(
            "from".to_owned(),
            vec!["must be an integer from 1".to_owned()],
        );
    }
    let limit = match params.limit.as_deref() {
        None => Some(DEFAULT_LIMIT),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit)),
    };
    if limit.is_none() {
        fields.insert(
            "limit".to_owned(),
            vec![format!("must be an integer from 1 to {MAX_LIMIT}")],
        );
    }
    match (from, limit) {
        (Some(from), Some(limit)) => Ok((from, limit)),
        _ => Err(ApiError::Unprocessable(fields)),
    }
}

/// The first event of a stream, if it has any.
async fn first(
    readers: &Readers,
    aggregate_type: &str,
    id: &str,
) -> Result<Option<StoredEvent>, ApiError> {
    Ok(readers
        .stream(aggregate_type, id, 1, 1)
        .await?
        .into_iter()
        .next())
}

/// The author an article's first event names.
fn author_of(published: &StoredEvent) -> Result<String, ApiError> {
    match ArticleEvent::from_stored(
        &published.event_type,
        published.event_version,
        &published.payload,
    ) {
        Ok(ArticleEvent::ArticlePublished { author_id, .. }) => Ok(author_id),
        Ok(_) => Err(ApiError::internal(format!(
            "{} does not start with its publication",
            published.stream_key()
        ))),
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// The user an aggregate belongs to: a user their own stream, an article its author, a comment
/// thread its article's author, a favorite its user. `NotFound` for an aggregate with no event.
async fn owner(readers: &Readers, kind: AggregateKind, id: &str) -> Result<String, ApiError> {
    let not_found = || ApiError::NotFound("aggregate");
    let first = first(readers, kind.name(), id)
        .await?
        .ok_or_else(not_found)?;
    match kind {
        AggregateKind::User => Ok(id.to_owned()),
        AggregateKind::Article => author_of(&first),
        AggregateKind::ArticleComments => {
            let published = self::first(readers, article::AGGREGATE_TYPE, id)
                .await?
                .ok_or_else(not_found)?;
            author_of(&published)
        }
        AggregateKind::Favorite => {
            match FavoriteEvent::from_stored(&first.event_type, first.event_version, &first.payload)
            {
                Ok(
                    FavoriteEvent::ArticleFavorited { user_id, .. }
                    | FavoriteEvent::ArticleUnfavorited { user_id, .. },
                ) => Ok(user_id),
                Err(error) => Err(ApiError::internal(error)),
            }
        }
    }
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id, aggregate = %aggregate_type, id = %aggregate_id))]
pub async fn stream(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
    params: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Json<StreamPage>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::field("query", e.body_text()))?;
    let (from, limit) = page(&params)?;
    let kind = AggregateKind::parse(&aggregate_type)
        .filter(|_| valid_aggregate_id(&aggregate_id))
        .ok_or(ApiError::NotFound("aggregate"))?;
    // Someone else's user stream is refused before anything is read: whether it exists is
    // none of the caller's business.
    if kind == AggregateKind::User && aggregate_id != caller.user_id {
        return Err(ApiError::Forbidden);
    }
    if owner(&state.readers, kind, &aggregate_id).await? != caller.user_id {
        return Err(ApiError::Forbidden);
    }
    // One more than a page: whether it is there says whether a next page is.
    let to = from.saturating_add(limit);
    let mut events = state
        .readers
        .stream(kind.name(), &aggregate_id, from, to)
        .await?;
    let next_from = (events.len() as u64 > limit).then_some(to);
    events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    // Served in each type's current version, whatever version the log holds.
    let events = events
        .into_iter()
        .map(|event| kind.in_current_version(event).map(StreamEvent::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(Json(StreamPage { events, next_from }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: Option<&str>, limit: Option<&str>) -> StreamParams {
        StreamParams {
            from: from.map(str::to_owned),
            limit: limit.map(str::to_owned),
        }
    }

    #[test]
    fn a_page_defaults_to_the_start_and_a_hundred_events() {
        assert_eq!(
            page(&params(None, None)).expect("valid"),
            (1, DEFAULT_LIMIT)
        );
        assert_eq!(
            page(&params(Some("7"), Some("1000"))).expect("valid"),
            (7, 1000)
        );
    }

    #[test]
    fn a_bad_page_names_each_bad_parameter() {
        for (from, limit, bad) in [
            (Some("0"), None, vec!["from"]),
            (Some("-1"), None, vec!["from"]),
            (Some("x"), Some("0"), vec!["from", "limit"]),
            (None, Some("1001"), vec!["limit"]),
            (None, Some("1.5"), vec!["limit"]),
        ] {
            match page(&params(from, limit)) {
                Err(ApiError::Unprocessable(fields)) => {
                    assert_eq!(fields.keys().collect::<Vec<_>>(), bad, "{from:?} {limit:?}")
                }
                other => panic!("{from:?} {limit:?}: expected a 422, got {other:?}"),
            }
        }
    }

    #[test]
    fn stream_events_leave_secrets_behind() {
        let stored = StoredEvent {
            aggregate_type: "User".into(),
            aggregate_id: "u1".into(),
            sequence: 1,
            event_id: "0b6c5d2e-1111-4222-8333-944445555666"
                .parse()
                .expect("uuid"),
            event_type: "UserRegistered".into(),
            event_version: 1,
            payload: serde_json::json!({"userId": "u1", "email": "a@b.io", "username": "a", "passwordHash": "$argon2id$secret"}),
            metadata: Metadata {
                actor: Some("u1".into()),
                ..Metadata::default()
            },
            recorded_at: "2024-01-01T00:00:00.000Z".into(),
        };
        let shown = serde_json::to_string(&StreamEvent::from(stored)).expect("json");
        assert!(
            !shown.contains("passwordHash") && !shown.contains("secret"),
            "{shown}"
        );
        assert!(shown.contains("\"type\":\"UserRegistered\""), "{shown}");
    }
}
