//! The answer of a successful write: its response plus the `conduit-position` header naming the
//! last event of the aggregate it wrote, so that a later read can ask to reflect it (and the
//! position itself in the response's extensions, for the wait before the answer).

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use common::projections::{Position, POSITION_HEADER};
use cqrs_es::Aggregate;
use events::repository::Executed;

/// A write's response with the position it leaves its aggregate at.
#[derive(Debug)]
pub struct Written<R> {
    position: Option<Position>,
    response: R,
}

impl<R> Written<R> {
    /// `response`, answered with `position` in the header when there is one.
    pub fn at(position: Option<Position>, response: R) -> Self {
        Self { position, response }
    }

    /// `response` to a command on `A`'s aggregate `aggregate_id`: the position of the last event
    /// the command appended or, when it appended none (favoriting twice), the aggregate's current
    /// last event.
    pub fn after<A: Aggregate>(aggregate_id: &str, executed: &Executed<A>, response: R) -> Self {
        Self::at(position(A::TYPE, aggregate_id, executed.sequence), response)
    }
}

/// The position of `sequence` in a stream; `None` for an empty stream (sequence 0).
pub fn position(aggregate_type: &str, aggregate_id: &str, sequence: u64) -> Option<Position> {
    (sequence > 0).then(|| Position {
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        sequence,
    })
}

impl<R: IntoResponse> IntoResponse for Written<R> {
    fn into_response(self) -> Response {
        let mut response = self.response.into_response();
        let Some(position) = self.position else {
            return response;
        };
        // Aggregate types and ids are ASCII (ids are UUIDs or made of them), so the value is
        // always a valid header; a position that is not is left out rather than failing a
        // write that has already happened.
        if let Ok(value) = HeaderValue::from_str(&position.to_string()) {
            response.headers_mut().insert(POSITION_HEADER, value);
        }
        // For the wait before the answer (crate::write_wait).
        response.extensions_mut().insert(position);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn the_header_names_the_position() {
        let response =
            Written::at(position("User", "u-1", 3), StatusCode::NO_CONTENT).into_response();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            response
                .headers()
                .get(POSITION_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("User#u-1@3")
        );
    }

    #[test]
    fn an_empty_stream_has_no_position() {
        let response = Written::at(position("User", "u-1", 0), StatusCode::OK).into_response();
        assert!(response.headers().get(POSITION_HEADER).is_none());
    }
}
