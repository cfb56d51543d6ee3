//! The DynamoDB event store: append a commit in one transaction, load a stream, read a stream from a sequence.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::envelope::{stream_key, EventSchema, Metadata, NewEvent, StoredEvent, UniqueChange};
use crate::snapshot::{self, Snapshot, Snapshotted};
use crate::time_format;

/// DynamoDB allows at most 100 actions in one transaction.
pub const MAX_ACTIONS_PER_COMMIT: usize = 100;

/// The names of the write-side tables.
#[derive(Clone, Debug)]
pub struct Tables {
    pub events: String,
    pub uniques: String,
    pub snapshots: String,
}

impl Tables {
    /// `{prefix}events`, `{prefix}uniques` and `{prefix}snapshots`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self::of(&common::config::TableNames::with_prefix(prefix))
    }

    /// The write-side tables among every table's names.
    pub fn of(names: &common::config::TableNames) -> Self {
        Self {
            events: names.events.clone(),
            uniques: names.uniques.clone(),
            snapshots: names.snapshots.clone(),
        }
    }
}

/// New events for one aggregate, appended atomically with the uniqueness changes they imply.
#[derive(Clone, Debug)]
pub struct Commit {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The sequence of the last event the decision was based on (0 for a new aggregate).
    pub expected_sequence: u64,
    pub events: Vec<NewEvent>,
    pub unique_changes: Vec<UniqueChange>,
    /// The aggregate's state after these events, written in the same transaction (see
    /// [`crate::snapshot`]); its sequence must be that of the commit's last event.
    pub snapshot: Option<Snapshot>,
}

impl Commit {
    /// `events` as the next events of one aggregate after `expected_sequence`, each with a new
    /// id and `metadata`, with the uniqueness changes they imply.
    pub fn of<E: EventSchema>(
        aggregate_type: &str,
        aggregate_id: &str,
        expected_sequence: u64,
        events: &[E],
        metadata: &Metadata,
    ) -> Self {
        Self {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            expected_sequence,
            events: events
                .iter()
                .map(|event| {
                    let (event_type, event_version, payload) = event.to_stored();
                    NewEvent {
                        event_id: Uuid::new_v4(),
                        event_type,
                        event_version,
                        payload,
                        metadata: metadata.clone(),
                    }
                })
                .collect(),
            unique_changes: events.iter().flat_map(E::unique_changes).collect(),
            snapshot: None,
        }
    }

    /// The sequence of the commit's last event.
    pub fn last_sequence(&self) -> u64 {
        self.expected_sequence + self.events.len() as u64
    }

    /// The commit with a snapshot of `state` (the aggregate after the commit's events) if one
    /// is due: the state the decision started from covered `covered` events.
    pub fn with_snapshot<A: Snapshotted>(mut self, state: &A, covered: u64) -> Self {
        let sequence = self.last_sequence();
        if snapshot::due(covered, sequence) {
            self.snapshot = Snapshot::of(state, sequence);
        }
        self
    }
}

/// Why an append or a read failed. The HTTP status each usually becomes is noted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 409 after retries: another writer appended to the aggregate first (optimistic lock lost).
    #[error("{stream} was changed concurrently (expected sequence {expected})")]
    Conflict { stream: String, expected: u64 },
    /// 422: a unique key (email, username, slug) is held by another aggregate.
    #[error("{key} is already taken")]
    UniqueTaken { key: String },
    /// 500: the commit itself is malformed (too large, empty).
    #[error("invalid commit: {0}")]
    InvalidCommit(String),
    /// 500: a stored item could not be read back.
    #[error("corrupt event item: {0}")]
    Corrupt(String),
    /// 503: DynamoDB could not be reached or refused the request.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    fn unavailable<E: std::error::Error>(error: E) -> Self {
        // The SDK's Display is terse ("service error"): its cause chain names the cause, in one
        // line and without the debug dump of the raw response.
        StoreError::Unavailable(common::error::one_line(&error))
    }
}

/// The `events` table (and the `uniques` table its commits claim keys in).
#[derive(Clone, Debug)]
pub struct EventStore {
    client: Client,
    tables: Tables,
}

impl EventStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Appends a commit in one `TransactWriteItems`: each event put only if its position is
    /// free, each unique key claimed only if free or already ours. Retrying a commit whose first
    /// attempt succeeded returns the stored events and appends nothing.
    #[tracing::instrument(skip_all, fields(stream = %stream_key(&commit.aggregate_type, &commit.aggregate_id), events = commit.events.len()))]
    pub async fn append(&self, commit: Commit) -> Result<Vec<StoredEvent>, StoreError> {
        let stream = stream_key(&commit.aggregate_type, &commit.aggregate_id);
        let uniques = net_unique_changes(&commit.unique_changes);
        if commit.events.is_empty() {
            return Err(StoreError::InvalidCommit(
                "a commit needs at least one event".into(),
            ));
        }
        let snapshots = usize::from(commit.snapshot.is_some());
        if commit.events.len() + uniques.len() + snapshots > MAX_ACTIONS_PER_COMMIT {
            return Err(StoreError::InvalidCommit(format!(
                "{} events, {} unique changes and {snapshots} snapshot exceed {MAX_ACTIONS_PER_COMMIT} actions",
                commit.events.len(),
                uniques.len()
            )));
        }
        if let Some(snapshot) = &commit.snapshot {
            if snapshot.sequence != commit.last_sequence() {
                return Err(StoreError::InvalidCommit(format!(
                    "a snapshot at {} in a commit ending at {}",
                    snapshot.sequence,
                    commit.last_sequence()
                )));
            }
        }
        let recorded_at = time_format::format_millis(time_format::now_millis());
        let stored: Vec<StoredEvent> = commit
            .events
            .iter()
            .enumerate()
            .map(|(i, event)| StoredEvent {
                aggregate_type: commit.aggregate_type.clone(),
                aggregate_id: commit.aggregate_id.clone(),
                sequence: commit.expected_sequence + 1 + i as u64,
                event_id: event.event_id,
                event_type: event.event_type.clone(),
                event_version: event.event_version,
                payload: event.payload.clone(),
                metadata: event.metadata.clone(),
                recorded_at: recorded_at.clone(),
            })
            .collect();

        let mut actions = Vec::with_capacity(stored.len() + uniques.len());
        for event in &stored {
            let put = Put::builder()
                .table_name(&self.tables.events)
                .set_item(Some(event_to_item(event)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::InvalidCommit(e.to_string()))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        for (key, change) in &uniques {
            let owner = AttributeValue::S(stream.clone());
            let action = if let NetChange::ClaimOnce(attributes) = change {
                let mut put = Put::builder()
                    .table_name(&self.tables.uniques)
                    .item(schema::uniques::PK, AttributeValue::S(key.clone()))
                    .item("owner", owner)
                    .item("claimedAt", AttributeValue::S(recorded_at.clone()))
                    .condition_expression("attribute_not_exists(pk)");
                for (name, value) in attributes {
                    put = put.item(name, AttributeValue::S(value.clone()));
                }
                let put = put
                    .build()
                    .map_err(|e| StoreError::InvalidCommit(e.to_string()))?;
                TransactWriteItem::builder().put(put).build()
            } else if let NetChange::Claim = change {
                let put = Put::builder()
                    .table_name(&self.tables.uniques)
                    .item(schema::uniques::PK, AttributeValue::S(key.clone()))
                    .item("owner", owner.clone())
                    .item("claimedAt", AttributeValue::S(recorded_at.clone()))
                    .condition_expression("attribute_not_exists(pk) OR #owner = :owner")
                    .expression_attribute_names("#owner", "owner")
                    .expression_attribute_values(":owner", owner)
                    .build()
                    .map_err(|e| StoreError::InvalidCommit(e.to_string()))?;
                TransactWriteItem::builder().put(put).build()
            } else {
                let delete = Delete::builder()
                    .table_name(&self.tables.uniques)
                    .key(schema::uniques::PK, AttributeValue::S(key.clone()))
                    .condition_expression("attribute_not_exists(pk) OR #owner = :owner")
                    .expression_attribute_names("#owner", "owner")
                    .expression_attribute_values(":owner", owner)
                    .build()
                    .map_err(|e| StoreError::InvalidCommit(e.to_string()))?;
                TransactWriteItem::builder().delete(delete).build()
            };
            actions.push(action);
        }
        // Unconditional: the event puts before it decide. If they go through, no stored
        // snapshot can be newer (it would cover one of their positions, which were free).
        if let Some(snapshot) = &commit.snapshot {
            let put = Put::builder()
                .table_name(&self.tables.snapshots)
                .set_item(Some(snapshot_to_item(&stream, snapshot, &recorded_at)))
                .build()
                .map_err(|e| StoreError::InvalidCommit(e.to_string()))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }

        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .client_request_token(request_token(&stream, commit.expected_sequence, &stored))
            .send()
            .await;
        match result {
            Ok(_) => Ok(stored),
            Err(error) => {
                let failed = cancelled_actions(&error);
                // Same request token with other parameters: a retry of this commit (its
                // recordedAt differs), so look at what is stored like after a lost race.
                let retried = matches!(
                    error.as_service_error(),
                    Some(TransactWriteItemsError::IdempotentParameterMismatchException(_))
                );
                if failed.is_empty() && !retried {
                    return Err(StoreError::unavailable(error));
                }
                let claims = stored.len()..stored.len() + uniques.len();
                if let Some(index) = failed.iter().find(|i| claims.contains(i)) {
                    // A claim failed. If the events are in place already this was a retry of a
                    // commit that succeeded (the claims are ours then, so that cannot happen):
                    // report the key.
                    let key = uniques
                        .get(index - stored.len())
                        .map(|(key, _)| key.clone())
                        .unwrap_or_default();
                    return Err(StoreError::UniqueTaken { key });
                }
                // An event position was taken: either our own earlier attempt, or a rival.
                let existing = self
                    .read_range(
                        &commit.aggregate_type,
                        &commit.aggregate_id,
                        commit.expected_sequence + 1,
                        Some(commit.expected_sequence + stored.len() as u64),
                    )
                    .await?;
                let ours = existing.len() == stored.len()
                    && existing
                        .iter()
                        .zip(&stored)
                        .all(|(a, b)| a.event_id == b.event_id);
                if ours {
                    tracing::info!("commit was already appended; returning the stored events");
                    Ok(existing)
                } else {
                    Err(StoreError::Conflict {
                        stream,
                        expected: commit.expected_sequence,
                    })
                }
            }
        }
    }

    /// The latest snapshot of one aggregate, strongly consistent.
    pub async fn snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let stream = stream_key(aggregate_type, aggregate_id);
        let item = self
            .client
            .get_item()
            .table_name(&self.tables.snapshots)
            .key(schema::snapshots::PK, AttributeValue::S(stream.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(item.item().and_then(|item| {
            let snapshot = snapshot_from_item(item);
            if snapshot.is_none() {
                tracing::warn!(%stream, "snapshot item without sequence, shape or state ignored");
            }
            snapshot
        }))
    }

    /// Every event of one aggregate, in order, strongly consistent, paging past 1 MB.
    pub async fn load(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_range(aggregate_type, aggregate_id, 1, None).await
    }

    /// The events of one aggregate from `from` to `to` (inclusive; `None` = to the end).
    #[tracing::instrument(skip(self))]
    pub async fn read_range(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.events)
            .consistent_read(true)
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(stream_key(aggregate_type, aggregate_id)),
            )
            .expression_attribute_values(":from", AttributeValue::N(from.to_string()));
        query = match to {
            Some(to) => query
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":to", AttributeValue::N(to.to_string())),
            None => query.key_condition_expression("pk = :pk AND sk >= :from"),
        };
        let mut events = Vec::new();
        let mut pages = query.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(StoreError::unavailable)?;
            for item in page.items() {
                events.push(event_from_item(item)?);
            }
        }
        Ok(events)
    }

    /// The claim on a unique key, read strongly consistent: its owner and the attributes a
    /// [`UniqueChange::ClaimOnce`] stored with it.
    pub async fn claim(&self, unique_key: &str) -> Result<Option<Claim>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.tables.uniques)
            .key(
                schema::uniques::PK,
                AttributeValue::S(unique_key.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let Some(item) = item.item() else {
            return Ok(None);
        };
        let owner = item
            .get("owner")
            .and_then(|owner| owner.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("claim {unique_key} has no owner")))?;
        let attributes = item
            .iter()
            .filter(|(name, _)| {
                !matches!(name.as_str(), schema::uniques::PK | "owner" | "claimedAt")
            })
            .filter_map(|(name, value)| Some((name.clone(), value.as_s().ok()?.clone())))
            .collect();
        Ok(Some(Claim { owner, attributes }))
    }

    /// The stream key of the aggregate holding a unique key, read strongly consistent.
    pub async fn owner_of(&self, unique_key: &str) -> Result<Option<String>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.tables.uniques)
            .key(
                schema::uniques::PK,
                AttributeValue::S(unique_key.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(item
            .item()
            .and_then(|item| item.get("owner"))
            .and_then(|owner| owner.as_s().ok())
            .cloned())
    }
}

/// A claim on a unique key, as [`EventStore::claim`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The stream key of the aggregate holding the key.
    pub owner: String,
    /// What a [`UniqueChange::ClaimOnce`] stored with the claim.
    pub attributes: BTreeMap<String, String>,
}

/// What a commit does to one unique key in the end.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NetChange {
    Claim,
    ClaimOnce(BTreeMap<String, String>),
    Release,
}

/// Collapses a commit's unique changes to one action per key (the last one wins), because a
/// transaction may touch an item only once. Ordered by key for a stable request.
fn net_unique_changes(changes: &[UniqueChange]) -> Vec<(String, NetChange)> {
    let mut net = BTreeMap::new();
    for change in changes {
        match change {
            UniqueChange::Claim { key } => net.insert(key.clone(), NetChange::Claim),
            UniqueChange::Release { key } => net.insert(key.clone(), NetChange::Release),
            UniqueChange::ClaimOnce { key, attributes } => {
                net.insert(key.clone(), NetChange::ClaimOnce(attributes.clone()))
            }
        };
    }
    net.into_iter().collect()
}

/// Indexes of the transaction actions whose condition failed or that conflicted.
fn cancelled_actions(error: &SdkError<TransactWriteItemsError>) -> Vec<usize> {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    else {
        return Vec::new();
    };
    cancelled
        .cancellation_reasons()
        .iter()
        .enumerate()
        .filter(|(_, reason)| {
            matches!(
                reason.code(),
                Some("ConditionalCheckFailed") | Some("TransactionConflict")
            )
        })
        .map(|(i, _)| i)
        .collect()
}

/// A token that makes DynamoDB treat a retried identical commit as the same request.
fn request_token(stream: &str, expected: u64, events: &[StoredEvent]) -> String {
    let mut hash = Sha256::new();
    hash.update(stream.as_bytes());
    hash.update(expected.to_be_bytes());
    for event in events {
        hash.update(event.event_id.as_bytes());
    }
    hex::encode(hash.finalize())[..36].to_owned()
}

/// The `events` table item of a stored event. The payload is JSON text: readable, and exact
/// for every JSON value (DynamoDB maps refuse empty sets and lose number formatting). Empty
/// metadata is left out rather than stored as an empty map: the Rust SDK cannot read an empty
/// map in a DynamoDB Streams record (`GetRecords` fails to parse the whole batch), which
/// would stop the local stream poller on that record for good.
pub fn event_to_item(event: &StoredEvent) -> HashMap<String, AttributeValue> {
    let mut metadata = HashMap::new();
    let Metadata {
        actor,
        correlation_id,
        causation_id,
        request_id,
    } = &event.metadata;
    for (name, value) in [
        ("actor", actor),
        ("correlationId", correlation_id),
        ("causationId", causation_id),
        ("requestId", request_id),
    ] {
        if let Some(value) = value {
            metadata.insert(name.to_owned(), AttributeValue::S(value.clone()));
        }
    }
    let mut item = HashMap::from([
        (
            schema::events::PK.to_owned(),
            AttributeValue::S(event.stream_key()),
        ),
        (
            schema::events::SK.to_owned(),
            AttributeValue::N(event.sequence.to_string()),
        ),
        (
            "aggregateType".to_owned(),
            AttributeValue::S(event.aggregate_type.clone()),
        ),
        (
            "aggregateId".to_owned(),
            AttributeValue::S(event.aggregate_id.clone()),
        ),
        (
            "eventId".to_owned(),
            AttributeValue::S(event.event_id.to_string()),
        ),
        (
            "eventType".to_owned(),
            AttributeValue::S(event.event_type.clone()),
        ),
        (
            "eventVersion".to_owned(),
            AttributeValue::N(event.event_version.to_string()),
        ),
        (
            "payload".to_owned(),
            AttributeValue::S(event.payload.to_string()),
        ),
        (
            "recordedAt".to_owned(),
            AttributeValue::S(event.recorded_at.clone()),
        ),
    ]);
    if !metadata.is_empty() {
        item.insert("metadata".to_owned(), AttributeValue::M(metadata));
    }
    item
}

/// The `snapshots` item of a stream's snapshot.
fn snapshot_to_item(
    stream: &str,
    snapshot: &Snapshot,
    taken_at: &str,
) -> HashMap<String, AttributeValue> {
    use schema::snapshots::{PK, SEQUENCE, SHAPE, STATE, TAKEN_AT};
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(stream.to_owned())),
        (
            SEQUENCE.to_owned(),
            AttributeValue::N(snapshot.sequence.to_string()),
        ),
        (
            SHAPE.to_owned(),
            AttributeValue::N(snapshot.shape.to_string()),
        ),
        (STATE.to_owned(), AttributeValue::S(snapshot.state.clone())),
        (TAKEN_AT.to_owned(), AttributeValue::S(taken_at.to_owned())),
    ])
}

/// A `snapshots` item read back; `None` if it lacks a part (it is then ignored).
fn snapshot_from_item(item: &HashMap<String, AttributeValue>) -> Option<Snapshot> {
    use schema::snapshots::{SEQUENCE, SHAPE, STATE};
    let number = |name: &str| item.get(name)?.as_n().ok()?.parse::<u64>().ok();
    Some(Snapshot {
        sequence: number(SEQUENCE)?,
        shape: u32::try_from(number(SHAPE)?).ok()?,
        state: item.get(STATE)?.as_s().ok()?.clone(),
    })
}

/// Reads an `events` table item (from a query, a scan or a stream image) back.
pub fn event_from_item(item: &HashMap<String, AttributeValue>) -> Result<StoredEvent, StoreError> {
    let text = |name: &str| -> Result<String, StoreError> {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("missing string attribute {name}")))
    };
    let number = |name: &str| -> Result<u64, StoreError> {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("missing number attribute {name}")))
    };
    let metadata_text = |name: &str| -> Option<String> {
        item.get("metadata")
            .and_then(|m| m.as_m().ok())
            .and_then(|m| m.get(name))
            .and_then(|v| v.as_s().ok())
            .cloned()
    };
    let event_id = Uuid::parse_str(&text("eventId")?)
        .map_err(|e| StoreError::Corrupt(format!("eventId: {e}")))?;
    let payload = serde_json::from_str(&text("payload")?)
        .map_err(|e| StoreError::Corrupt(format!("payload: {e}")))?;
    let event_version = u32::try_from(number("eventVersion")?)
        .map_err(|e| StoreError::Corrupt(format!("eventVersion: {e}")))?;
    Ok(StoredEvent {
        aggregate_type: text("aggregateType")?,
        aggregate_id: text("aggregateId")?,
        sequence: number(schema::events::SK)?,
        event_id,
        event_type: text("eventType")?,
        event_version,
        payload,
        metadata: Metadata {
            actor: metadata_text("actor"),
            correlation_id: metadata_text("correlationId"),
            causation_id: metadata_text("causationId"),
            request_id: metadata_text("requestId"),
        },
        recorded_at: text("recordedAt")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredEvent {
        StoredEvent {
            aggregate_type: "User".into(),
            aggregate_id: "u1".into(),
            sequence: 3,
            event_id: Uuid::new_v4(),
            event_type: "UserFollowed".into(),
            event_version: 1,
            payload: serde_json::json!({"followeeId": "u2"}),
            metadata: Metadata {
                actor: Some("u1".into()),
                correlation_id: Some("c".into()),
                causation_id: None,
                request_id: Some("r".into()),
            },
            recorded_at: "2024-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn items_round_trip() {
        let event = sample();
        let item = event_to_item(&event);
        assert_eq!(item["pk"], AttributeValue::S("User#u1".into()));
        assert_eq!(item["sk"], AttributeValue::N("3".into()));
        assert_eq!(event_from_item(&item).expect("readable"), event);
    }

    #[test]
    fn empty_metadata_is_left_out_of_the_item() {
        let event = StoredEvent {
            metadata: Metadata::default(),
            ..sample()
        };
        let item = event_to_item(&event);
        assert!(!item.contains_key("metadata"), "{item:?}");
        assert_eq!(event_from_item(&item).expect("readable"), event);
        assert!(event_to_item(&sample()).contains_key("metadata"));
    }

    #[test]
    fn a_damaged_item_is_corrupt_not_a_panic() {
        let mut item = event_to_item(&sample());
        item.insert("payload".into(), AttributeValue::S("{not json".into()));
        assert!(matches!(
            event_from_item(&item),
            Err(StoreError::Corrupt(_))
        ));
        item.remove("sk");
        assert!(matches!(
            event_from_item(&item),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn unique_changes_net_to_the_last_per_key() {
        let attributes = BTreeMap::from([("contentHash".to_owned(), "h".to_owned())]);
        let changes = vec![
            UniqueChange::Release { key: "a".into() },
            UniqueChange::Claim { key: "b".into() },
            UniqueChange::Release { key: "b".into() },
            UniqueChange::Claim { key: "a".into() },
            UniqueChange::ClaimOnce {
                key: "event#1".into(),
                attributes: attributes.clone(),
            },
        ];
        assert_eq!(
            net_unique_changes(&changes),
            vec![
                ("a".to_owned(), NetChange::Claim),
                ("b".to_owned(), NetChange::Release),
                ("event#1".to_owned(), NetChange::ClaimOnce(attributes)),
            ]
        );
    }

    #[test]
    fn request_tokens_fit_dynamodb_and_depend_on_the_events() {
        let a = vec![sample()];
        let b = vec![sample()];
        let token = request_token("User#u1", 2, &a);
        assert_eq!(token.len(), 36);
        assert_eq!(token, request_token("User#u1", 2, &a));
        assert_ne!(token, request_token("User#u1", 2, &b));
        assert_ne!(token, request_token("User#u1", 3, &a));
    }
}
