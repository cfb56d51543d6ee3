//! The benchmark's client of the API, a stack of its own on in-memory emulators, and the
//! Markdown rows the feed benchmark prints.

use std::time::Duration;

use common::config::JwtSettings;
use local_aws::meter::DynamoMeter;

use local_stack::{RunningStack, StackConfig};

use crate::stats::{ms, percentile};

/// Starts in-memory emulators (once per process) and a local stack on them with a fresh
/// prefix, the given stream poll pause and, optionally, a meter on the API's DynamoDB client.
pub async fn own_stack(
    stream_poll: Duration,
    api_meter: Option<DynamoMeter>,
) -> anyhow::Result<RunningStack> {
    let endpoints = local_aws::testkit::emulators().clone();
    let secret = uuid::Uuid::new_v4().simple().to_string().repeat(2);
    local_stack::start(StackConfig {
        endpoints,
        prefix: local_aws::testkit::unique_prefix("bench"),
        jwt: JwtSettings::new(secret.into_bytes(), Duration::from_secs(3600))?,
        listen: ([127, 0, 0, 1], 0).into(),
        retry_delay: Some(Duration::from_secs(1)),
        stream_poll_interval: stream_poll,
        search: local_stack::SearchBackend::Embedded { dir: None },
        api_meter,
        pipeline_meter: None,
    })
    .await
}

/// One line: `name n=.. p50=.. p90=.. p99=.. max=..`.
pub fn summary(name: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.90)),
        ms(percentile(&samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default()),
    )
}

/// The header of [`summary`] rows.
pub const SUMMARY_HEADER: &str =
    "| what | n | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|";

/// One Markdown row `| name | requests | operations | read units | write units |` of what a
/// [`DynamoMeter`] counted; see [`TALLY_HEADER`].
pub fn tally_row(name: &str, tally: &local_aws::meter::Tally) -> String {
    format!(
        "| {name} | {} | {} | {:.1} | {:.1} |",
        tally.total_requests(),
        if tally.requests.is_empty() {
            "-".to_owned()
        } else {
            tally.operations()
        },
        tally.read_units,
        tally.write_units
    )
}

/// The header of [`tally_row`] rows.
pub const TALLY_HEADER: &str =
    "| what | requests | operations | read units | write units |\n|---|---|---|---|---|";

/// A JSON client of the API of a stack (`base` is `http://host:port/api`).
#[derive(Clone, Debug)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

/// A user registered through [`Api::register`].
#[derive(Clone, Debug)]
pub struct ApiUser {
    pub username: String,
    pub token: String,
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            base,
        }
    }

    /// Sends `method path` (with `Authorization: Token` when given a token, and a JSON body);
    /// the status and the JSON answer (`Null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        use anyhow::Context as _;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("{method} {path}: {status} {text}"))?
        };
        Ok((status, value))
    }

    /// [`Api::call`], insisting on the status `expected`.
    pub async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
        expected: u16,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, value) = self.call(method.clone(), path, token, body).await?;
        anyhow::ensure!(
            status.as_u16() == expected,
            "{method} {path}: {status} {value}"
        );
        Ok(value)
    }

    /// Registers `name` (email `name@bench.example`) with `POST /users`.
    pub async fn register(&self, name: &str) -> anyhow::Result<ApiUser> {
        use anyhow::Context as _;
        let body = serde_json::json!({"user": {
            "username": name,
            "email": format!("{name}@bench.example"),
            "password": format!("pw-{name}-secret"),
        }});
        let reply = self
            .ok(reqwest::Method::POST, "/users", None, Some(body), 201)
            .await?;
        Ok(ApiUser {
            username: name.to_owned(),
            token: reply["user"]["token"]
                .as_str()
                .context("no token")?
                .to_owned(),
        })
    }
}
