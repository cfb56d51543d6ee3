//! Read-your-writes: a read that sends `conduit-min-position` waits, up to a bound, until the
//! projections it reads have applied those positions.
//!
//! Every write answers `conduit-position: <AggregateType>#<aggregateId>@<sequence>`, the last
//! event it appended. A read may send such positions back, comma-separated (at most 20, also
//! spread over repeated headers), in `conduit-min-position`. Each route of this API declares the
//! projections it reads ([`Reads`]); for every position and every one of those projections that
//! applies the position's aggregate type, the read waits until that projection's checkpoint of
//! the stream (`<projection>#<AggregateType>#<id>` in the checkpoints table of its active
//! version, attribute `lastSeq`, read strongly consistently) has reached the sequence, polling
//! every 10 ms, doubling to 100 ms ([`Applied`], the same wait a write makes before it
//! answers). Then it answers as usual, with
//! `conduit-consistency: current`; once the bound has passed, it answers with what it has and
//! `conduit-consistency: stale`. A position no projection of the route applies is trivially
//! current. Without the header nothing waits and no `conduit-consistency` is sent; a header
//! that does not parse is a 400 `{"errors":{"conduit-min-position":["..."]}}`.
//!
//! The bound is `CONDUIT_READ_WAIT_MS` (default 3000, clamped to 0..=5000), read at start-up.
//! After a wait the handler is told (see [`ReadMode`]) so that it reads its items strongly
//! consistently: what the checkpoint vouches for is then what it reads. (A read through a
//! global secondary index, never strongly consistent on AWS, may still trail by the index's
//! own lag there; DynamoDB Local has none.)

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::applied::Applied;
use common::config::{wait_from_env, ConfigError};
use common::error::ApiError;
use common::projections::{Position, Projection, CONSISTENCY_HEADER, MIN_POSITION_HEADER};

/// How long a read waits for its positions when `CONDUIT_READ_WAIT_MS` is not set.
pub const DEFAULT_READ_WAIT: Duration = Duration::from_millis(3_000);
/// The longest wait `CONDUIT_READ_WAIT_MS` may ask for: with the read itself, well inside the
/// function's 10 s timeout (a 10 s wait would time the read out instead of answering `stale`).
pub const MAX_READ_WAIT: Duration = Duration::from_millis(5_000);

/// Reads `CONDUIT_READ_WAIT_MS`: a whole number of milliseconds, clamped to 0..=5000.
pub fn read_wait_from_env() -> Result<Duration, ConfigError> {
    wait_from_env("CONDUIT_READ_WAIT_MS", DEFAULT_READ_WAIT, MAX_READ_WAIT)
}

/// The positions of a request's `conduit-min-position` header(s); `None` without one.
pub fn min_positions(headers: &HeaderMap) -> Result<Option<Vec<Position>>, String> {
    let mut values = Vec::new();
    for value in headers.get_all(MIN_POSITION_HEADER) {
        values.push(
            value
                .to_str()
                .map_err(|_| "is not text".to_owned())?
                .to_owned(),
        );
    }
    if values.is_empty() {
        return Ok(None);
    }
    Position::parse_list(&values.join(",")).map(Some)
}

/// Whether a read reflects the positions it was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Every position was applied by every projection read.
    Current,
    /// The bound passed first.
    Stale,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Current => "current",
            Consistency::Stale => "stale",
        }
    }
}

/// The projections a route reads.
#[derive(Clone, Copy, Debug)]
pub enum Reads {
    /// Always these.
    These(&'static [Projection]),
    /// Those the request's path names (`/api/views/{view}`).
    ByPath(fn(&Uri) -> &'static [Projection]),
}

impl Reads {
    fn of(self, uri: &Uri) -> &'static [Projection] {
        match self {
            Reads::These(projections) => projections,
            Reads::ByPath(find) => find(uri),
        }
    }
}

/// What the middleware needs: where the checkpoints are, how long to wait, what the route reads.
#[derive(Clone, Debug)]
pub struct ReadWait {
    pub applied: Applied,
    pub bound: Duration,
    pub reads: Reads,
}

/// Put in the request's extensions once its positions were waited for.
#[derive(Clone, Copy, Debug)]
struct Waited;

/// How a handler should read: strongly consistently after a read-your-writes wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadMode {
    pub consistent: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for ReadMode {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ReadMode {
            consistent: parts.extensions.get::<Waited>().is_some(),
        })
    }
}

/// The middleware of every read route: parse the header, wait, answer, say how current.
pub async fn wait_for_positions(
    State(wait): State<ReadWait>,
    mut request: Request,
    next: Next,
) -> Response {
    let positions = match min_positions(request.headers()) {
        Ok(None) => return next.run(request).await,
        Ok(Some(positions)) => positions,
        Err(message) => {
            return crate::field_error(StatusCode::BAD_REQUEST, MIN_POSITION_HEADER, message)
        }
    };
    let projections = wait.reads.of(request.uri());
    let consistency = match wait.until_applied(&positions, projections).await {
        Ok(consistency) => consistency,
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(Waited);
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        CONSISTENCY_HEADER,
        HeaderValue::from_static(consistency.as_str()),
    );
    response
}

impl ReadWait {
    /// Waits until every projection of `projections` that applies a position's aggregate type
    /// has applied that position, or the bound passes.
    pub async fn until_applied(
        &self,
        positions: &[Position],
        projections: &[Projection],
    ) -> Result<Consistency, ApiError> {
        let behind = self
            .applied
            .wait(positions, projections, self.bound)
            .await
            .map_err(ApiError::Unavailable)?;
        if behind.is_empty() {
            return Ok(Consistency::Current);
        }
        tracing::info!(?behind, bound = ?self.bound, "read is stale");
        Ok(Consistency::Stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                MIN_POSITION_HEADER,
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        headers
    }

    #[test]
    fn no_header_is_no_wait() {
        assert_eq!(min_positions(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn positions_come_from_every_header_and_every_comma() {
        let positions = min_positions(&headers(&["User#u1@3, Article#a-1@7", "Favorite#a:u@1"]))
            .expect("valid")
            .expect("some");
        let shown: Vec<String> = positions.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["User#u1@3", "Article#a-1@7", "Favorite#a:u@1"]);
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            " , ",
            "User",
            "User#u1",
            "User#u1@",
            "User#u1@0",
            "User#u1@x",
            "User#u1@-3",
            "#u1@3",
            "User#@3",
            "Us er#u1@3",
            "User#u1@3;Article#a@1",
            "User#u1@99999999999999999999999",
        ] {
            assert!(min_positions(&headers(&[bad])).is_err(), "{bad:?}");
        }
        let many = vec!["User#u@1"; 21].join(",");
        assert!(min_positions(&headers(&[&many])).is_err());
        let mut binary = HeaderMap::new();
        binary.insert(
            MIN_POSITION_HEADER,
            HeaderValue::from_bytes(b"User#u\xff@1").expect("opaque bytes"),
        );
        assert_eq!(min_positions(&binary), Err("is not text".to_owned()));
    }

    #[test]
    fn fixed_and_path_reads() {
        fn by_path(uri: &Uri) -> &'static [Projection] {
            if uri.path().ends_with("/feeds") {
                &[Projection::Feed]
            } else {
                &[]
            }
        }
        let uri: Uri = "/api/views/feeds".parse().expect("uri");
        assert_eq!(
            Reads::These(&[Projection::Users]).of(&uri),
            &[Projection::Users]
        );
        assert_eq!(Reads::ByPath(by_path).of(&uri), &[Projection::Feed]);
        let other: Uri = "/api/views/tags".parse().expect("uri");
        assert!(Reads::ByPath(by_path).of(&other).is_empty());
    }
}
