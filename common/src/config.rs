//! Configuration read once from the environment at start-up, failing fast with the variable's name.

use std::time::Duration;

/// A configuration problem, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The names of every DynamoDB table, all `{prefix}{name}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNames {
    pub prefix: String,
    pub events: String,
    pub uniques: String,
    pub snapshots: String,
    pub users: String,
    pub follows: String,
    pub articles: String,
    pub article_bodies: String,
    pub comments: String,
    pub favorites: String,
    pub feeds: String,
    pub feed_articles: String,
    pub feed_followers: String,
    pub checkpoints: String,
}

impl TableNames {
    pub fn with_prefix(prefix: &str) -> Self {
        let name = |table: &schema::TableDef| format!("{prefix}{}", table.name);
        Self {
            prefix: prefix.to_owned(),
            events: name(&schema::events::TABLE),
            uniques: name(&schema::uniques::TABLE),
            snapshots: name(&schema::snapshots::TABLE),
            users: name(&schema::users::TABLE),
            follows: name(&schema::follows::TABLE),
            articles: name(&schema::articles::TABLE),
            article_bodies: name(&schema::article_bodies::TABLE),
            comments: name(&schema::comments::TABLE),
            favorites: name(&schema::favorites::TABLE),
            feeds: name(&schema::feeds::TABLE),
            feed_articles: name(&schema::feed_articles::TABLE),
            feed_followers: name(&schema::feed_followers::TABLE),
            checkpoints: name(&schema::checkpoints::TABLE),
        }
    }
}

/// The default table prefix of the local stack.
pub const DEFAULT_TABLE_PREFIX: &str = "conduit-";

/// Reads `CONDUIT_TABLE_PREFIX` (default `conduit-`).
pub fn table_names_from_env() -> Result<TableNames, ConfigError> {
    let prefix =
        optional("CONDUIT_TABLE_PREFIX").unwrap_or_else(|| DEFAULT_TABLE_PREFIX.to_owned());
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ConfigError::Invalid {
            name: "CONDUIT_TABLE_PREFIX",
            reason: "only letters, digits, '-', '_' and '.' are allowed".into(),
        });
    }
    Ok(TableNames::with_prefix(&prefix))
}

/// How tokens are signed and how long they live.
#[derive(Clone)]
pub struct JwtSettings {
    pub secret: Vec<u8>,
    pub ttl: Duration,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("secret", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Default token lifetime: one day.
pub const DEFAULT_JWT_TTL_SECONDS: u64 = 86_400;
/// HS256 wants a key at least as long as its hash.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl JwtSettings {
    /// Reads `JWT_SECRET` (required, at least 32 bytes) and `JWT_TTL_SECONDS` (default one day).
    pub fn from_env() -> Result<Self, ConfigError> {
        let secret = optional("JWT_SECRET").ok_or(ConfigError::Missing("JWT_SECRET"))?;
        let ttl = match optional("JWT_TTL_SECONDS") {
            None => DEFAULT_JWT_TTL_SECONDS,
            Some(raw) => raw.parse().map_err(|_| ConfigError::Invalid {
                name: "JWT_TTL_SECONDS",
                reason: "must be a whole number of seconds".into(),
            })?,
        };
        Self::new(secret.into_bytes(), Duration::from_secs(ttl))
    }

    pub fn new(secret: Vec<u8>, ttl: Duration) -> Result<Self, ConfigError> {
        if secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                reason: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            });
        }
        if ttl.is_zero() {
            return Err(ConfigError::Invalid {
                name: "JWT_TTL_SECONDS",
                reason: "must be more than 0".into(),
            });
        }
        Ok(Self { secret, ttl })
    }
}

/// Reads a required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

/// Reads an optional variable; empty counts as unset.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A wait in whole milliseconds from variable `name`: `default` when unset, clamped to `max`.
pub fn wait_from_env(
    name: &'static str,
    default: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(raw) => parse_wait(&raw, max).ok_or_else(|| ConfigError::Invalid {
            name,
            reason: "must be a whole number of milliseconds".into(),
        }),
    }
}

/// `raw` as whole milliseconds, clamped to `max`; `None` if it is not a whole number.
pub fn parse_wait(raw: &str, max: Duration) -> Option<Duration> {
    let millis: u64 = raw.trim().parse().ok()?;
    Some(Duration::from_millis(millis).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_whole_milliseconds_clamped_to_its_maximum() {
        let max = Duration::from_secs(10);
        assert_eq!(parse_wait("1500", max), Some(Duration::from_millis(1500)));
        assert_eq!(parse_wait(" 0 ", max), Some(Duration::ZERO));
        assert_eq!(parse_wait("999999", max), Some(max));
        for bad in ["-1", "1.5", "soon", ""] {
            assert_eq!(parse_wait(bad, max), None, "{bad:?}");
        }
    }

    #[test]
    fn table_names_share_the_prefix() {
        let names = TableNames::with_prefix("x-");
        assert_eq!(names.events, "x-events");
        assert_eq!(names.follows, "x-follows");
        assert_eq!(names.article_bodies, "x-article-bodies");
        assert_eq!(names.checkpoints, "x-checkpoints");
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        let error = JwtSettings::new(b"short".to_vec(), Duration::from_secs(1)).unwrap_err();
        assert!(error.to_string().contains("JWT_SECRET"));
        let settings = JwtSettings::new(vec![b'k'; 32], Duration::from_secs(1)).expect("valid");
        assert!(!format!("{settings:?}").contains("kkkk"));
    }
}
