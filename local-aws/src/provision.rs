//! Provisioning: creates on the emulators (or any account the clients reach) exactly what
//! `infra` defines: every table of [`schema::TABLES`], the topic, the projector queues with
//! their dead-letter queues, and the subscriptions.

use std::collections::HashMap;

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_sqs::types::QueueAttributeName;
use infra::resources::{
    Names, QueueDef, DLQ_RETENTION_SECS, DOMAIN_EVENTS_TOPIC, PROJECTOR_QUEUES,
};
use schema::TABLES;

use crate::Clients;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionedQueue {
    /// Logical name from [`QueueDef::name`], e.g. `users-projector` (not prefixed).
    pub name: String,
    /// Queue URL.
    pub url: String,
    /// Queue ARN.
    pub arn: String,
    /// Dead-letter queue URL.
    pub dlq_url: String,
    /// Dead-letter queue ARN.
    pub dlq_arn: String,
    /// Event source mapping batch size.
    pub batch_size: u32,
    /// Visibility timeout of the queue.
    pub visibility_timeout_secs: u32,
    /// Receives after which a message moves to the dead-letter queue.
    pub max_receive_count: u32,
}

/// What [`provision`] created or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioned {
    /// The prefix of every name.
    pub prefix: String,
    /// ARN of the events table's stream.
    pub events_stream_arn: String,
    /// ARN of the domain events topic.
    pub topic_arn: String,
    /// The projector queues, in the order of [`PROJECTOR_QUEUES`].
    pub queues: Vec<ProvisionedQueue>,
    /// URL of the queue the fan-out's stream mapping sends the batches it gives up on to.
    pub fan_out_failures_url: String,
}

impl Provisioned {
    /// The physical names for this prefix.
    pub fn names(&self) -> Names {
        Names::new(self.prefix.clone())
    }

    /// The queue with logical name `name` (e.g. `users-projector`).
    pub fn queue(&self, name: &str) -> Option<&ProvisionedQueue> {
        self.queues.iter().find(|q| q.name == name)
    }
}

/// Creates every table, the topic, the projector queues with their dead-letter queues and the
/// subscriptions, under `prefix`, if they do not exist yet; tables are created concurrently
/// and waited for until `ACTIVE`.
///
/// Idempotent: existing resources are kept. Queue attributes and subscription filter policies
/// that differ from the definitions are set to the definitions (so a changed definition reaches
/// a running local stack); when they already agree nothing is written. An existing table is
/// never altered.
pub async fn provision(clients: &Clients, prefix: &str) -> anyhow::Result<Provisioned> {
    let names = Names::new(prefix);
    names.validate()?;

    let tables = futures::future::try_join_all(TABLES.iter().map(|def| async {
        common::tables::ensure(&clients.dynamodb, &names.table(def), def).await
    }));
    let topic_and_queues = async {
        let topic_arn = ensure_topic(&clients.sns, &names.topic(&DOMAIN_EVENTS_TOPIC)).await?;
        let queues = futures::future::try_join_all(
            PROJECTOR_QUEUES
                .iter()
                .map(|def| ensure_projector_queue(clients, &names, def, &topic_arn)),
        )
        .await?;
        let (failures_url, _) = ensure_queue(
            &clients.sqs,
            &names.fan_out_failures(),
            &[(
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION_SECS.to_string(),
            )],
        )
        .await?;
        anyhow::Ok((topic_arn, queues, failures_url))
    };
    let (tables, (topic_arn, queues, fan_out_failures_url)) =
        futures::future::try_join(tables, topic_and_queues).await?;

    let events_stream_arn = TABLES
        .iter()
        .zip(tables)
        .find(|(def, _)| def.name == schema::events::TABLE.name)
        .and_then(|(_, desc)| desc.latest_stream_arn)
        .ok_or_else(|| {
            anyhow!(
                "table {} has no stream: it must have been created by hand without one; delete it",
                names.table(&schema::events::TABLE)
            )
        })?;

    Ok(Provisioned {
        prefix: prefix.to_owned(),
        events_stream_arn,
        topic_arn,
        queues,
        fan_out_failures_url,
    })
}

/// Physical names of the tables under `prefix` that exist now.
pub async fn existing_table_names(clients: &Clients, prefix: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = clients
            .dynamodb
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .context("ListTables")?;
        out.extend(
            page.table_names()
                .iter()
                .filter(|n| n.starts_with(prefix))
                .cloned(),
        );
        match page.last_evaluated_table_name {
            Some(last) => start = Some(last),
            None => break,
        }
    }
    Ok(out)
}

/// Deletes every resource [`provision`] creates under `prefix` that exists (tables, topic and
/// its subscriptions, queues and dead-letter queues). Missing resources are skipped.
pub async fn teardown(clients: &Clients, prefix: &str) -> anyhow::Result<()> {
    let names = Names::new(prefix);
    names.validate()?;
    let existing = existing_table_names(clients, prefix).await?;
    for name in names.tables() {
        if existing.contains(&name) {
            match clients
                .dynamodb
                .delete_table()
                .table_name(&name)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == Some("ResourceNotFoundException") => {}
                Err(e) => return Err(e).with_context(|| format!("DeleteTable {name}")),
            }
        }
    }
    // CreateTopic is idempotent and returns the ARN of an existing topic; we delete it anyway.
    let topic_arn = ensure_topic(&clients.sns, &names.domain_events_topic()).await?;
    for sub in list_subscriptions(&clients.sns, &topic_arn).await? {
        if let Some(arn) = sub.subscription_arn() {
            if arn.starts_with("arn:") {
                clients
                    .sns
                    .unsubscribe()
                    .subscription_arn(arn)
                    .send()
                    .await
                    .with_context(|| format!("Unsubscribe {arn}"))?;
            }
        }
    }
    clients
        .sns
        .delete_topic()
        .topic_arn(&topic_arn)
        .send()
        .await
        .with_context(|| format!("DeleteTopic {topic_arn}"))?;
    let queues = PROJECTOR_QUEUES
        .iter()
        .flat_map(|def| [names.queue(def), names.dlq(def)])
        .chain([names.fan_out_failures()]);
    {
        for name in queues {
            if let Some(url) = queue_url(&clients.sqs, &name).await? {
                clients
                    .sqs
                    .delete_queue()
                    .queue_url(&url)
                    .send()
                    .await
                    .with_context(|| format!("DeleteQueue {name}"))?;
            }
        }
    }
    Ok(())
}

async fn ensure_topic(sns: &aws_sdk_sns::Client, name: &str) -> anyhow::Result<String> {
    // CreateTopic is idempotent: it returns the ARN of the topic if it exists.
    let out = sns
        .create_topic()
        .name(name)
        .send()
        .await
        .with_context(|| format!("CreateTopic {name}"))?;
    out.topic_arn
        .ok_or_else(|| anyhow!("CreateTopic {name} returned no ARN"))
}

fn is_missing_queue<E>(e: &aws_sdk_sqs::error::SdkError<E>) -> bool
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata,
{
    // AWS says `QueueDoesNotExist` with the JSON protocol; moto and the query-compatible
    // header may say `AWS.SimpleQueueService.NonExistentQueue`.
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c.contains("QueueDoesNotExist") || c.contains("NonExistentQueue"))
}

async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<Option<String>> {
    match sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => Ok(out.queue_url),
        Err(e) if is_missing_queue(&e) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("GetQueueUrl {name}")),
    }
}

async fn queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> anyhow::Result<HashMap<QueueAttributeName, String>> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .with_context(|| format!("GetQueueAttributes {url}"))?;
    Ok(out.attributes.unwrap_or_default())
}

/// Whether an attribute value we want equals the one the queue has: numbers compare as
/// numbers, JSON documents (redrive policies) as JSON values with numbers-as-strings
/// normalised.
fn same_attribute(want: &str, have: &str) -> bool {
    if want == have {
        return true;
    }
    fn norm(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::String(s) => match s.parse::<i64>() {
                Ok(n) => serde_json::Value::from(n),
                Err(_) => serde_json::Value::String(s),
            },
            serde_json::Value::Object(m) => m.into_iter().map(|(k, v)| (k, norm(v))).collect(),
            serde_json::Value::Array(a) => a.into_iter().map(norm).collect(),
            other => other,
        }
    }
    match (
        serde_json::from_str::<serde_json::Value>(want),
        serde_json::from_str::<serde_json::Value>(have),
    ) {
        (Ok(w), Ok(h)) => norm(w) == norm(h),
        _ => false,
    }
}

/// Creates the queue if missing; otherwise sets the attributes that differ. Returns (url, arn).
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> anyhow::Result<(String, String)> {
    let url = match queue_url(sqs, name).await? {
        Some(url) => {
            let have = queue_attributes(sqs, &url).await?;
            let mut update = sqs.set_queue_attributes().queue_url(&url);
            let mut changed = false;
            for (k, v) in attributes {
                if !have.get(k).is_some_and(|h| same_attribute(v, h)) {
                    tracing::info!(queue = %name, attribute = %k, value = %v, "updating queue attribute");
                    update = update.attributes(k.clone(), v.clone());
                    changed = true;
                }
            }
            if changed {
                update
                    .send()
                    .await
                    .with_context(|| format!("SetQueueAttributes {name}"))?;
            }
            url
        }
        None => {
            let mut req = sqs.create_queue().queue_name(name);
            for (k, v) in attributes {
                req = req.attributes(k.clone(), v.clone());
            }
            let out = req
                .send()
                .await
                .with_context(|| format!("CreateQueue {name}"))?;
            tracing::info!(queue = %name, "created queue");
            out.queue_url
                .ok_or_else(|| anyhow!("CreateQueue {name} returned no URL"))?
        }
    };
    let arn = queue_attributes(sqs, &url)
        .await?
        .remove(&QueueAttributeName::QueueArn)
        .ok_or_else(|| anyhow!("queue {name} has no QueueArn attribute"))?;
    Ok((url, arn))
}

async fn list_subscriptions(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
) -> anyhow::Result<Vec<aws_sdk_sns::types::Subscription>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(token.take())
            .send()
            .await
            .with_context(|| format!("ListSubscriptionsByTopic {topic_arn}"))?;
        out.extend(page.subscriptions.unwrap_or_default());
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok(out)
}

async fn ensure_subscription(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    queue_arn: &str,
    def: &QueueDef,
) -> anyhow::Result<String> {
    let mut want = vec![("FilterPolicy", def.filter_policy_json())];
    if def.raw_message_delivery {
        want.push(("RawMessageDelivery", "true".to_owned()));
    }
    let existing = list_subscriptions(sns, topic_arn)
        .await?
        .into_iter()
        .find(|s| s.protocol() == Some("sqs") && s.endpoint() == Some(queue_arn))
        .and_then(|s| s.subscription_arn)
        .filter(|arn| arn.starts_with("arn:"));
    let Some(arn) = existing else {
        let mut req = sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .return_subscription_arn(true);
        for (k, v) in want {
            req = req.attributes(k, v);
        }
        let out = req
            .send()
            .await
            .with_context(|| format!("Subscribe {queue_arn} to {topic_arn}"))?;
        tracing::info!(queue = %queue_arn, "subscribed queue to topic");
        return out
            .subscription_arn
            .ok_or_else(|| anyhow!("Subscribe {queue_arn} returned no ARN"));
    };
    let have = sns
        .get_subscription_attributes()
        .subscription_arn(&arn)
        .send()
        .await
        .with_context(|| format!("GetSubscriptionAttributes {arn}"))?
        .attributes
        .unwrap_or_default();
    let raw = if def.raw_message_delivery {
        "true"
    } else {
        "false"
    };
    want.retain(|(k, _)| *k != "RawMessageDelivery");
    want.push(("RawMessageDelivery", raw.to_owned()));
    for (k, v) in want {
        let current = have.get(k).map(String::as_str);
        let same = match (k, current) {
            ("RawMessageDelivery", None) => v == "false",
            (_, Some(h)) => same_attribute(&v, h),
            (_, None) => false,
        };
        if !same {
            tracing::info!(subscription = %arn, attribute = k, value = %v, "updating subscription attribute");
            sns.set_subscription_attributes()
                .subscription_arn(&arn)
                .attribute_name(k)
                .attribute_value(v)
                .send()
                .await
                .with_context(|| format!("SetSubscriptionAttributes {arn} {k}"))?;
        }
    }
    Ok(arn)
}

async fn ensure_projector_queue(
    clients: &Clients,
    names: &Names,
    def: &QueueDef,
    topic_arn: &str,
) -> anyhow::Result<ProvisionedQueue> {
    let (dlq_url, dlq_arn) = ensure_queue(
        &clients.sqs,
        &names.dlq(def),
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            def.dlq_retention_secs.to_string(),
        )],
    )
    .await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": def.max_receive_count,
    })
    .to_string();
    let (url, arn) = ensure_queue(
        &clients.sqs,
        &names.queue(def),
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                def.visibility_timeout_secs.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive),
        ],
    )
    .await?;
    ensure_subscription(&clients.sns, topic_arn, &arn, def).await?;
    Ok(ProvisionedQueue {
        name: def.name.to_owned(),
        url,
        arn,
        dlq_url,
        dlq_arn,
        batch_size: def.batch_size,
        visibility_timeout_secs: def.visibility_timeout_secs,
        max_receive_count: def.max_receive_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_comparison_normalises_numbers() {
        assert!(same_attribute("60", "60"));
        assert!(same_attribute(
            r#"{"deadLetterTargetArn":"a","maxReceiveCount":5}"#,
            r#"{"maxReceiveCount": "5", "deadLetterTargetArn": "a"}"#
        ));
        assert!(!same_attribute("60", "30"));
    }
}
