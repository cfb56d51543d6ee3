//! 5. Cost per call, in dollars per million calls.
//!
//! Capacity units, SNS publishes, SQS requests and Lambda invocations of the whole pipeline per
//! API call.
//!
//! Each call is run `scale.cost_calls` times alone on an idle stack; after the pipeline is
//! idle again, the meters of the stack (see [`local_stack::PipelineMeter`]) give what the
//! calls and everything they set off cost: the API's and the projectors' DynamoDB capacity
//! (as `ReturnConsumedCapacity` reports it), the fan-out's SNS publishes, the projector
//! mappings' SQS requests, and the invocations and handler time of every function.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::report::{CostRow, CostSection, Prices, WaitCost};
use crate::stack::{credentials, send, wait_idle, Answer, Call, Loaded, Stack};
use crate::stats::VsBaseline;
use crate::Scale;

/// Longest wait for the pipeline to settle around one measured call.
const IDLE_LIMIT: Duration = Duration::from_secs(300);

/// The projection lag the AWS figures of the write wait assume: a write's events reach the
/// read models "a few hundred milliseconds" after it commits there (a stream poll about four
/// times a second, SNS, SQS and a projector invocation).
const AWS_LAG: Duration = Duration::from_millis(300);

/// The cost of the representative calls, with notes on what is counted.
pub(crate) async fn measure(
    stack: &Stack,
    loaded: &Loaded,
    scale: &Scale,
) -> anyhow::Result<(CostSection, Vec<String>)> {
    let prices = Prices::default();
    let n = scale.cost_calls.max(1);
    let n_users = loaded.users.len();
    let user = |k: usize| loaded.user(k);
    let mut rows = Vec::new();
    let mut notes = vec![notes()];
    let meter = Meter::new(stack).await?;

    // Reads set nothing off: no wait after them.
    let reads: Vec<(&str, Vec<Call>)> = vec![
        (
            "GET /api/user",
            (0..n)
                .map(|k| Call::get("/user".into(), Some(user(k))))
                .collect(),
        ),
        (
            "GET /api/profiles/{username}",
            (0..n)
                .map(|k| {
                    let other = user(k * 3 + 1);
                    Call::get(format!("/profiles/{}", other.username), Some(user(k)))
                })
                .collect(),
        ),
        (
            "GET /api/articles",
            (0..n)
                .map(|k| Call::get("/articles".into(), Some(user(k))))
                .collect(),
        ),
        (
            "GET /api/articles/feed",
            (0..n)
                .map(|k| Call::get("/articles/feed".into(), Some(user(k))))
                .collect(),
        ),
        (
            "GET /api/articles/{slug}",
            (0..n)
                .map(|k| Call::get(format!("/articles/{}", loaded.slug(k * 11)), Some(user(k))))
                .collect(),
        ),
        (
            "GET /api/articles/{slug}/comments",
            (0..n)
                .map(|k| {
                    let slug = loaded.slug(k * 13 + 5);
                    Call::get(format!("/articles/{slug}/comments"), Some(user(k)))
                })
                .collect(),
        ),
        (
            "GET /api/tags",
            (0..n).map(|_| Call::get("/tags".into(), None)).collect(),
        ),
    ];
    for (endpoint, calls) in reads {
        let (row, _) = meter
            .row(endpoint, calls, false, &prices, &mut notes)
            .await?;
        rows.push(row);
    }

    let register = (0..n)
        .map(|_| {
            let name = format!("b{}c{}", stack.run, stack.next());
            Call::new(
                Method::POST,
                "/users".into(),
                None,
                Some(json!({"user": {
                    "username": name,
                    "email": format!("{name}@bench.example"),
                    "password": format!("pw-{name}-secret"),
                }})),
                201,
            )
        })
        .collect();
    let login = (0..n)
        .map(|k| {
            Call::new(
                Method::POST,
                "/users/login".into(),
                None,
                Some(credentials(user(k))),
                200,
            )
        })
        .collect();
    let update_user = (0..n)
        .map(|k| {
            Call::new(
                Method::PUT,
                "/user".into(),
                Some(user(k)),
                Some(json!({"user": {"bio": format!("Costed, call {k}.")}})),
                200,
            )
        })
        .collect();
    // A pair the load did not follow (see `Loaded`); the API section unfollowed it again.
    let follow = |method: Method| -> Vec<Call> {
        (0..n)
            .map(|k| {
                let d = loaded.follows_per_user
                    + 1
                    + (k / n_users) % (n_users - 1 - loaded.follows_per_user);
                Call::new(
                    method.clone(),
                    format!("/profiles/{}/follow", user(k + d).username),
                    Some(user(k)),
                    None,
                    200,
                )
            })
            .collect()
    };
    let mut writes: Vec<(&str, Vec<Call>)> = vec![
        ("POST /api/users", register),
        ("POST /api/users/login", login),
        ("PUT /api/user", update_user),
        ("POST /api/profiles/{username}/follow", follow(Method::POST)),
        (
            "DELETE /api/profiles/{username}/follow",
            follow(Method::DELETE),
        ),
    ];
    for (endpoint, calls) in writes.drain(..) {
        let (row, _) = meter
            .row(endpoint, calls, true, &prices, &mut notes)
            .await?;
        rows.push(row);
    }

    // New articles: nobody favorited or commented them yet; deleted at the end.
    let create = (0..n)
        .map(|k| {
            Call::new(
                Method::POST,
                "/articles".into(),
                Some(user(k)),
                Some(json!({"article": {
                    "title": format!("Costed article {} of run {}", stack.next(), stack.run),
                    "description": "Written to count its cost",
                    "body": "Lorem ipsum dolor sit amet. ".repeat(20),
                    "tagList": [format!("tag{}", k % crate::stack::TAG_POOL), "costed"],
                }})),
                201,
            )
        })
        .collect();
    let (row, answers) = meter
        .row("POST /api/articles", create, true, &prices, &mut notes)
        .await?;
    rows.push(row);
    // (author index, slug) of the articles written.
    let created: Vec<(usize, String)> = answers
        .iter()
        .enumerate()
        .filter_map(|(k, a)| {
            a.body["article"]["slug"]
                .as_str()
                .filter(|_| a.error.is_none())
                .map(|slug| (k, slug.to_owned()))
        })
        .collect();
    let on_created = |method: Method,
                      path: &str,
                      by_other: bool,
                      body: Option<serde_json::Value>,
                      expected: u16|
     -> Vec<Call> {
        created
            .iter()
            .map(|(k, slug)| {
                let caller = if by_other { user(k + 1) } else { user(*k) };
                Call::new(
                    method.clone(),
                    format!("/articles/{slug}{path}"),
                    Some(caller),
                    body.clone(),
                    expected,
                )
            })
            .collect()
    };
    let edit = Some(json!({"article": {"body": "Edited to count its cost."}}));
    let comment = Some(json!({"comment": {"body": "Costed comment."}}));
    let mut writes: Vec<(&str, Vec<Call>)> = vec![
        (
            "PUT /api/articles/{slug}",
            on_created(Method::PUT, "", false, edit, 200),
        ),
        (
            "POST /api/articles/{slug}/favorite",
            on_created(Method::POST, "/favorite", true, None, 200),
        ),
        (
            "DELETE /api/articles/{slug}/favorite",
            on_created(Method::DELETE, "/favorite", true, None, 200),
        ),
    ];
    for (endpoint, calls) in writes.drain(..) {
        let (row, _) = meter
            .row(endpoint, calls, true, &prices, &mut notes)
            .await?;
        rows.push(row);
    }
    let (row, answers) = meter
        .row(
            "POST /api/articles/{slug}/comments",
            on_created(Method::POST, "/comments", true, comment, 200),
            true,
            &prices,
            &mut notes,
        )
        .await?;
    rows.push(row);
    let uncomment: Vec<Call> = created
        .iter()
        .zip(&answers)
        .filter_map(|((k, slug), answer)| {
            let id = answer.body["comment"]["id"].as_u64()?;
            Some(Call::new(
                Method::DELETE,
                format!("/articles/{slug}/comments/{id}"),
                Some(user(k + 1)),
                None,
                204,
            ))
        })
        .collect();
    let (row, _) = meter
        .row(
            "DELETE /api/articles/{slug}/comments/{id}",
            uncomment,
            true,
            &prices,
            &mut notes,
        )
        .await?;
    rows.push(row);
    let (row, _) = meter
        .row(
            "DELETE /api/articles/{slug}",
            on_created(Method::DELETE, "", false, None, 204),
            true,
            &prices,
            &mut notes,
        )
        .await?;
    rows.push(row);

    Ok((
        CostSection {
            prices,
            calls: rows,
        },
        notes,
    ))
}

/// What the cost figures count and assume.
fn notes() -> String {
    use infra::template::{COMMAND_API, FUNCTIONS, QUERY_API};
    let others: Vec<String> = FUNCTIONS
        .iter()
        .filter(|f| f.bin != COMMAND_API.bin && f.bin != QUERY_API.bin)
        .map(|f| format!("{} {} MB", f.bin, f.memory_mb))
        .collect();
    format!(
        "Cost: each call run alone on an idle stack, everything it sets off counted until the \
         pipeline is idle again, divided by the calls. DynamoDB units as DynamoDB Local reports \
         them (ReturnConsumedCapacity) for the API and the projectors; stream reads by the \
         event source mapping are free on AWS and not counted. SNS: each PublishBatch entry \
         is one publish; deliveries to SQS are free. SQS: every request of the projectors' \
         queue mappings that received, deleted or released messages; the empty long polls of \
         idle mappings (a fixed cost per queue, whatever the traffic) are left out. Lambda: one \
         invocation per API request, per stream batch of the fan-out and per SQS batch of a \
         projector (calls one at a time make small batches: under load they grow and the cost \
         per call falls); GB-seconds are the handler time measured here times the template's \
         memory ({} {} MB, {} {} MB, {}). The search read model's OpenSearch domain is billed \
         by the hour, not by the call, and is left out.",
        COMMAND_API.bin,
        COMMAND_API.memory_mb,
        QUERY_API.bin,
        QUERY_API.memory_mb,
        others.join(", ")
    )
}

/// The stack's meters, read around each measured call.
struct Meter<'a> {
    stack: &'a Stack,
}

impl<'a> Meter<'a> {
    /// Waits for an idle pipeline and zeroes the meters.
    async fn new(stack: &'a Stack) -> anyhow::Result<Self> {
        let meter = Self { stack };
        meter.idle("cost").await?;
        meter.take();
        Ok(meter)
    }

    async fn idle(&self, what: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            wait_idle(self.stack, IDLE_LIMIT, what).await?,
            "{what}: the pipeline did not settle within {} s, so its cost cannot be told apart",
            IDLE_LIMIT.as_secs()
        );
        Ok(())
    }

    /// Everything counted since the last take, the meters zeroed.
    fn take(&self) -> Counted {
        let pipeline = &self.stack.pipeline;
        Counted {
            api: self.stack.api_meter.take(),
            projectors: pipeline.projectors_dynamodb.take(),
            sns: pipeline.sns.take(),
            sqs: pipeline.sqs.take(),
            functions: pipeline.functions.take(),
        }
    }

    /// Runs `calls` one after another (then, for writes, waits until the pipeline is idle)
    /// and turns what was counted into the row of `endpoint`.
    async fn row(
        &self,
        endpoint: &str,
        calls: Vec<Call>,
        writes: bool,
        prices: &Prices,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<(CostRow, Vec<Answer>)> {
        anyhow::ensure!(
            !calls.is_empty(),
            "{endpoint}: nothing to call (an earlier call failed)"
        );
        self.take();
        let mut answers = Vec::with_capacity(calls.len());
        for call in &calls {
            answers.push(send(&self.stack.client, call).await);
        }
        if writes {
            self.idle(endpoint).await?;
        }
        let counted = self.take();
        let failed: Vec<&String> = answers.iter().filter_map(|a| a.error.as_ref()).collect();
        if let Some(first) = failed.first() {
            eprintln!(
                "bench: ERROR cost of {endpoint}: {} of {} calls failed; first: {first}",
                failed.len(),
                calls.len()
            );
            notes.push(format!(
                "Cost of {endpoint}: {} of {} calls failed; their cost is in the figures.",
                failed.len(),
                calls.len()
            ));
        }
        let mut row = counted.row(endpoint, calls.len(), writes, prices);
        if writes {
            row.wait = wait_cost(&answers, &counted, &self.stack.running.tables, prices);
        }
        eprintln!(
            "bench:   cost of {endpoint}: {:.2} RRU, {:.2} WRU, {:.2} publishes, {:.2} SQS \
             requests, {:.2} invocations ({}), ${:.3} per million ({} vs {})",
            row.read_units,
            row.write_units,
            row.sns_publishes,
            row.sqs_requests,
            row.lambda_invocations,
            counted.invocations(),
            row.dollars_per_million,
            row.vs.ratio_text(),
            row.vs.baseline,
        );
        Ok((row, answers))
    }
}

/// What the meters counted around one measured call.
struct Counted {
    api: local_aws::meter::Tally,
    projectors: local_aws::meter::Tally,
    sns: local_aws::meter::RequestTally,
    sqs: local_aws::meter::RequestTally,
    functions: BTreeMap<&'static str, local_stack::FunctionTally>,
}

impl Counted {
    /// `command-api×2 fan-out×1...`.
    fn invocations(&self) -> String {
        self.functions
            .iter()
            .map(|(name, f)| format!("{name}×{}", f.invocations))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn row(&self, endpoint: &str, calls: usize, writes: bool, prices: &Prices) -> CostRow {
        let per_call = |x: f64| x / calls as f64;
        let mut row = CostRow {
            endpoint: endpoint.to_owned(),
            calls,
            read_units: per_call(self.api.read_units + self.projectors.read_units),
            write_units: per_call(self.api.write_units + self.projectors.write_units),
            sns_publishes: per_call(
                (self.sns.items_of("Publish") + self.sns.items_of("PublishBatch")) as f64,
            ),
            sqs_requests: per_call(self.sqs.requests_with_items() as f64),
            lambda_invocations: per_call(
                self.functions.values().map(|f| f.invocations).sum::<u64>() as f64,
            ),
            lambda_gb_seconds: per_call(self.functions.values().map(|f| f.gb_seconds()).sum()),
            api_requests: self
                .api
                .requests
                .iter()
                .map(|(operation, n)| (operation.clone(), per_call(*n as f64)))
                .collect(),
            ..CostRow::default()
        };
        row.dollars_per_million = dollars_per_million(&row, prices);
        row.vs = if writes {
            VsBaseline::new(
                row.dollars_per_million,
                "one small PutItem (1 WRU), $ per million",
                prices.dynamodb_per_million_write_units,
            )
        } else {
            VsBaseline::new(
                row.dollars_per_million,
                "one small eventually consistent GetItem (0.5 RRU), $ per million",
                0.5 * prices.dynamodb_per_million_read_units,
            )
        };
        row
    }
}

/// What the writes' wait for their read models cost per call, from their `Server-Timing` and
/// the API's reads of the checkpoints tables; `None` if none of them waited (a login).
fn wait_cost(
    answers: &[Answer],
    counted: &Counted,
    tables: &common::config::TableNames,
    prices: &Prices,
) -> Option<WaitCost> {
    let waited: Vec<&Answer> = answers.iter().filter(|a| a.waited.is_some()).collect();
    if waited.is_empty() {
        return None;
    }
    let calls = answers.len() as f64;
    let memory_gb = f64::from(infra::template::COMMAND_API.memory_mb) / 1024.0;
    let waited_seconds: f64 = waited
        .iter()
        .filter_map(|a| a.waited)
        .map(|d| d.as_secs_f64())
        .sum();
    // Every projection's checkpoints table is named after the base one (`…-v2` and so on).
    let read_units: f64 = counted
        .api
        .by_table
        .iter()
        .filter(|(table, _)| table.starts_with(&tables.checkpoints))
        .map(|(_, units)| units.read)
        .sum();
    let checkpoints: f64 = waited
        .iter()
        .filter_map(|a| a.position.as_ref())
        .map(|p| common::projections::Projection::awaited_by_writes_of(&p.aggregate_type).count())
        .sum::<usize>() as f64
        / waited.len() as f64;
    let dollars = |read_units: f64, lambda_gb_seconds: f64| {
        let row = CostRow {
            read_units,
            lambda_gb_seconds,
            ..CostRow::default()
        };
        dollars_per_million(&row, prices)
    };
    let aws_read_units = checkpoints * f64::from(common::applied::looks_until(AWS_LAG));
    let aws_gb_seconds = AWS_LAG.as_secs_f64() * memory_gb;
    Some(WaitCost {
        mean_ms: waited_seconds * 1000.0 / waited.len() as f64,
        checkpoints,
        read_units: read_units / calls,
        gb_seconds: waited_seconds * memory_gb / calls,
        dollars_per_million: dollars(read_units / calls, waited_seconds * memory_gb / calls),
        aws_lag_ms: AWS_LAG.as_secs_f64() * 1000.0,
        aws_read_units,
        aws_gb_seconds,
        aws_dollars_per_million: dollars(aws_read_units, aws_gb_seconds),
    })
}

/// Dollars per million calls of what one call costs (the row's per-call figures).
pub fn dollars_per_million(row: &CostRow, prices: &Prices) -> f64 {
    row.read_units * prices.dynamodb_per_million_read_units
        + row.write_units * prices.dynamodb_per_million_write_units
        + row.sns_publishes * prices.sns_per_million_publishes
        + row.sqs_requests * prices.sqs_per_million_requests
        + row.lambda_invocations * prices.lambda_per_million_invocations
        + row.lambda_gb_seconds * prices.lambda_per_gb_second * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_calls_cost_each_unit_at_its_price() {
        let prices = Prices::default();
        let row = CostRow {
            read_units: 2.0,
            write_units: 3.0,
            sns_publishes: 1.0,
            sqs_requests: 4.0,
            lambda_invocations: 5.0,
            lambda_gb_seconds: 0.01,
            ..CostRow::default()
        };
        let expected = 2.0 * 0.125
            + 3.0 * 0.625
            + 0.5
            + 4.0 * 0.40
            + 5.0 * 0.20
            + 0.01 * 0.000_016_666_7 * 1e6;
        assert!((dollars_per_million(&row, &prices) - expected).abs() < 1e-9);
        assert_eq!(dollars_per_million(&CostRow::default(), &prices), 0.0);
    }
}
