//! Where a stream mapping remembers, per shard, the sequence number of the last record it is
//! done with (processed, or handed to the on-failure destination).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use aws_sdk_dynamodb::types::AttributeValue;

use super::BoxFuture;

/// A per-shard checkpoint. `load` gives the last saved sequence number (reading resumes
/// *after* it); `save` records a new one. Errors are retried by the mapping with backoff.
///
/// One store instance (or one key prefix) per mapping: shard ids are only unique within
/// one stream.
pub trait CheckpointStore: Send + Sync {
    fn load<'a>(&'a self, shard_id: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>>;
    fn save<'a>(
        &'a self,
        shard_id: &'a str,
        sequence_number: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Checkpoints kept in memory: lost with the process (a restart reads from TRIM_HORIZON).
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    saved: Mutex<HashMap<String, String>>,
}

impl MemoryCheckpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence number saved for `shard_id`, if any.
    pub fn get(&self, shard_id: &str) -> Option<String> {
        self.lock().get(shard_id).cloned()
    }

    /// Every saved checkpoint, by shard id.
    pub fn snapshot(&self) -> HashMap<String, String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.saved.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CheckpointStore for MemoryCheckpoints {
    fn load<'a>(&'a self, shard_id: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        let value = self.get(shard_id);
        Box::pin(async move { Ok(value) })
    }

    fn save<'a>(
        &'a self,
        shard_id: &'a str,
        sequence_number: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.lock()
            .insert(shard_id.to_owned(), sequence_number.to_owned());
        Box::pin(async { Ok(()) })
    }
}

/// Checkpoints in a DynamoDB table with hash key `pk` (S): item
/// `{ pk: "{key_prefix}{shard_id}", sequenceNumber: S, updatedAt: S (RFC 3339) }`.
#[derive(Debug, Clone)]
pub struct DynamoCheckpoints {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub key_prefix: String,
}

/// The attribute holding the sequence number.
pub const SEQUENCE_NUMBER_ATTRIBUTE: &str = "sequenceNumber";

impl DynamoCheckpoints {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        key_prefix: impl Into<String>,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            key_prefix: key_prefix.into(),
        }
    }

    /// The item key for a shard.
    pub fn key(&self, shard_id: &str) -> String {
        format!("{}{}", self.key_prefix, shard_id)
    }
}

impl CheckpointStore for DynamoCheckpoints {
    fn load<'a>(&'a self, shard_id: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        Box::pin(async move {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(self.key(shard_id)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "loading checkpoint {}: {}",
                        self.key(shard_id),
                        super::util::aws_error_text(&e)
                    )
                })?;
            Ok(output
                .item()
                .and_then(|item| item.get(SEQUENCE_NUMBER_ATTRIBUTE))
                .and_then(|value| value.as_s().ok())
                .cloned())
        })
    }

    fn save<'a>(
        &'a self,
        shard_id: &'a str,
        sequence_number: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(self.key(shard_id)))
                .item(
                    SEQUENCE_NUMBER_ATTRIBUTE,
                    AttributeValue::S(sequence_number.to_owned()),
                )
                .item("updatedAt", AttributeValue::S(now))
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "saving checkpoint {}: {}",
                        self.key(shard_id),
                        super::util::aws_error_text(&e)
                    )
                })?;
            Ok(())
        })
    }
}
