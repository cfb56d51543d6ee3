//! The wait before a write answers: until the read models its writer reads next have applied
//! the events it appended, so that any read sent after the answer, by any client, shows it.
//!
//! The command side still only appends. A successful write that appended events (its
//! `conduit-position`) waits, up to a bound, for the checkpoints of the projections that apply
//! them ([`Projection::awaited_by_writes_of`]: all of them but an article's fan-out into its
//! author's followers' feeds), the same wait a read sent with `conduit-min-position` makes
//! ([`Applied`]). Then it answers, and says what it got in `conduit-consistency`:
//!
//! * `current`: every one of those projections has applied the write;
//! * `behind`, with `conduit-behind: <projection>, ...`: the bound passed first, or the
//!   checkpoints could not be read. The write is committed all the same (never an error, never
//!   a hang); a read can still wait for it with `conduit-min-position`;
//! * `unchecked`: nothing waited (the bound is 0, or the client asked not to).
//!
//! The bound is `CONDUIT_WRITE_WAIT_MS` (default 3000, at most 5000, 0 turns the wait off).
//! A client lowers it per request with RFC 7240's `Prefer: wait=<seconds>`, or turns it off
//! with `Prefer: respond-async` (or `wait=0`); the answer then carries `Preference-Applied`.
//! A write that waited says for how long in `Server-Timing: wait;dur=<ms>` (W3C Server
//! Timing): what the wait adds to the write's latency and to the function's billed time.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use common::applied::Applied;
use common::config::{wait_from_env, ConfigError};
use common::projections::{Position, Projection, BEHIND_HEADER, CONSISTENCY_HEADER};

/// How long a write waits when `CONDUIT_WRITE_WAIT_MS` is not set.
pub const DEFAULT_WRITE_WAIT: Duration = Duration::from_millis(3_000);
/// The longest wait `CONDUIT_WRITE_WAIT_MS` may ask for: with the write itself, well inside
/// the function's 10 s timeout.
pub const MAX_WRITE_WAIT: Duration = Duration::from_millis(5_000);

/// RFC 7240's request header, and the response header that says which preference was honored.
pub const PREFER: HeaderName = HeaderName::from_static("prefer");
pub const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");
/// The W3C Server Timing header; the wait is its metric `wait`.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Reads `CONDUIT_WRITE_WAIT_MS`: a whole number of milliseconds, clamped to 0..=5000.
pub fn write_wait_from_env() -> Result<Duration, ConfigError> {
    wait_from_env("CONDUIT_WRITE_WAIT_MS", DEFAULT_WRITE_WAIT, MAX_WRITE_WAIT)
}

/// What the middleware needs: where the checkpoints are, and the bound.
#[derive(Clone, Debug)]
pub struct WriteWait {
    pub applied: Applied,
    pub bound: Duration,
}

/// What the client's `Prefer` asks of the wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Preference {
    /// Nothing (or nothing understood): the configured bound.
    None,
    /// `respond-async`: no wait.
    RespondAsync,
    /// `wait=<seconds>`: at most that long.
    Wait(u64),
}

impl Preference {
    /// The preference of every `Prefer` header; `respond-async` wins over `wait`, and
    /// preferences not understood are ignored, as RFC 7240 asks.
    fn of(headers: &HeaderMap) -> Self {
        let mut found = Preference::None;
        let values = headers.get_all(PREFER).into_iter();
        for value in values.filter_map(|v| v.to_str().ok()) {
            for preference in value.split(',') {
                // Parameters after `;` do not matter to either preference.
                let token = preference.split(';').next().unwrap_or_default();
                let (name, value) = match token.split_once('=') {
                    Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                    None => (token.trim(), None),
                };
                if name.eq_ignore_ascii_case("respond-async") {
                    return Preference::RespondAsync;
                }
                if name.eq_ignore_ascii_case("wait") {
                    if let Some(seconds) = value.and_then(|v| v.parse::<u64>().ok()) {
                        found = Preference::Wait(seconds);
                    }
                }
            }
        }
        found
    }

    /// The bound of this request's wait, under the configured one.
    fn bound(self, configured: Duration) -> Duration {
        match self {
            Preference::None => configured,
            Preference::RespondAsync => Duration::ZERO,
            Preference::Wait(seconds) => configured.min(Duration::from_secs(seconds)),
        }
    }

    /// What `Preference-Applied` says.
    fn applied(self) -> Option<String> {
        match self {
            Preference::None => None,
            Preference::RespondAsync => Some("respond-async".to_owned()),
            Preference::Wait(seconds) => Some(format!("wait={seconds}")),
        }
    }
}

/// What a write's answer says of the read models.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Current,
    Behind(BTreeSet<Projection>),
    Unchecked,
}

/// The middleware of every write route: run the write, wait for its position, say what it got.
pub async fn wait_for_projections(
    State(wait): State<WriteWait>,
    request: Request,
    next: Next,
) -> Response {
    let preference = Preference::of(request.headers());
    let mut response = next.run(request).await;
    let Some(position) = response.extensions().get::<Position>().cloned() else {
        // Nothing appended (a refusal, an error, a login): nothing to wait for.
        return response;
    };
    let projections: Vec<Projection> =
        Projection::awaited_by_writes_of(&position.aggregate_type).collect();
    let bound = preference.bound(wait.bound);
    let started = std::time::Instant::now();
    let outcome = if bound.is_zero() {
        Outcome::Unchecked
    } else {
        match wait
            .applied
            .wait(std::slice::from_ref(&position), &projections, bound)
            .await
        {
            Ok(behind) if behind.is_empty() => Outcome::Current,
            Ok(behind) => {
                tracing::info!(%position, ?behind, ?bound, "write answers with read models behind");
                Outcome::Behind(behind)
            }
            Err(error) => {
                tracing::warn!(%position, %error, "write answers without knowing the read models");
                Outcome::Behind(projections.iter().copied().collect())
            }
        }
    };
    let waited = started.elapsed();
    let headers = response.headers_mut();
    if outcome != Outcome::Unchecked {
        if let Ok(value) = HeaderValue::from_str(&server_timing(waited)) {
            headers.append(SERVER_TIMING, value);
        }
    }
    match &outcome {
        Outcome::Current => {
            headers.insert(CONSISTENCY_HEADER, HeaderValue::from_static("current"));
        }
        Outcome::Unchecked => {
            headers.insert(CONSISTENCY_HEADER, HeaderValue::from_static("unchecked"));
        }
        Outcome::Behind(behind) => {
            headers.insert(CONSISTENCY_HEADER, HeaderValue::from_static("behind"));
            let names: Vec<&str> = behind.iter().map(|p| p.name()).collect();
            if let Ok(value) = HeaderValue::from_str(&names.join(", ")) {
                headers.insert(BEHIND_HEADER, value);
            }
        }
    }
    if let Some(value) = preference
        .applied()
        .and_then(|applied| HeaderValue::from_str(&applied).ok())
    {
        headers.insert(PREFERENCE_APPLIED, value);
    }
    response
}

/// `wait;dur=12.3`: the wait in milliseconds, to a tenth.
fn server_timing(waited: Duration) -> String {
    format!("wait;dur={:.1}", waited.as_secs_f64() * 1000.0)
}

/// The `wait` metric of a `Server-Timing` header (`wait;dur=12.3`): how long a write waited,
/// for clients that measure it (the benchmarks).
pub fn waited(server_timing: &str) -> Option<Duration> {
    server_timing.split(',').find_map(|metric| {
        let mut parts = metric.split(';').map(str::trim);
        (parts.next() == Some("wait")).then_some(())?;
        let ms: f64 = parts.find_map(|p| p.strip_prefix("dur="))?.parse().ok()?;
        (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefer(values: &[&str]) -> Preference {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(PREFER, HeaderValue::from_str(value).expect("header value"));
        }
        Preference::of(&headers)
    }

    #[test]
    fn prefer_lowers_or_turns_off_the_wait() {
        let configured = Duration::from_secs(3);
        assert_eq!(prefer(&[]).bound(configured), configured);
        assert_eq!(prefer(&["respond-async"]).bound(configured), Duration::ZERO);
        assert_eq!(prefer(&["wait=0"]).bound(configured), Duration::ZERO);
        assert_eq!(
            prefer(&["wait=1"]).bound(configured),
            Duration::from_secs(1)
        );
        assert_eq!(prefer(&["wait=60"]).bound(configured), configured);
        assert_eq!(prefer(&["Respond-Async; x=1"]), Preference::RespondAsync);
        assert_eq!(
            prefer(&["return=minimal", "wait=\"2\""]),
            Preference::Wait(2)
        );
        assert_eq!(prefer(&["wait=5, respond-async"]), Preference::RespondAsync);
    }

    #[test]
    fn server_timing_gives_the_wait_in_milliseconds() {
        assert_eq!(
            server_timing(Duration::from_micros(12_345)),
            "wait;dur=12.3"
        );
        assert_eq!(server_timing(Duration::ZERO), "wait;dur=0.0");
    }

    #[test]
    fn reads_the_wait_of_server_timing() {
        assert_eq!(waited("wait;dur=12.5"), Some(Duration::from_micros(12_500)));
        assert_eq!(
            waited("db;dur=3, wait;desc=\"x\";dur=1"),
            Some(Duration::from_millis(1))
        );
        for none in ["", "wait", "db;dur=3", "wait;dur=soon", "wait;dur=-1"] {
            assert_eq!(waited(none), None, "{none:?}");
        }
    }

    #[test]
    fn preferences_not_understood_are_ignored() {
        for value in ["", "wait", "wait=soon", "wait=-1", "handling=strict", ",,;"] {
            assert_eq!(prefer(&[value]), Preference::None, "{value:?}");
        }
        assert_eq!(Preference::None.applied(), None);
        assert_eq!(Preference::Wait(2).applied().as_deref(), Some("wait=2"));
    }
}
