//! `BatchGetItem` over several tables: deduplicated keys, 100 per request, unprocessed keys
//! retried with jittered exponential backoff, a bounded number of times, then 503.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use common::error::ApiError;
use events::views::Item;

use super::{unavailable, Readers};

/// DynamoDB's limit on the keys of one `BatchGetItem`.
pub const MAX_BATCH_KEYS: usize = 100;

/// The key of one item to get, and its table.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchKey {
    pub table: String,
    pub key: Item,
}

impl BatchKey {
    pub fn new<const N: usize>(table: &str, key: [(&str, AttributeValue); N]) -> Self {
        Self {
            table: table.to_owned(),
            key: key
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
        }
    }

    /// The same text for the same table and key whatever the map's order, so that duplicate
    /// keys (which DynamoDB refuses within one request) can be dropped.
    fn identity(&self) -> String {
        let sorted: BTreeMap<_, _> = self.key.iter().collect();
        format!("{}\u{0}{sorted:?}", self.table)
    }
}

/// How unprocessed keys are retried.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    /// Requests that may come back with unprocessed keys before the read gives up (503).
    pub retries: u32,
    pub schedule: common::backoff::Backoff,
}

impl Backoff {
    /// About 3 s of waiting at most, well inside the Lambda's 10 s.
    pub const DEFAULT: Backoff = Backoff {
        retries: 8,
        schedule: common::backoff::Backoff::new(Duration::from_millis(25), Duration::from_secs(1)),
    };

    /// Full jitter: a random pause up to `base * 2^(retry-1)`, capped.
    pub(crate) fn pause(&self, retry: u32) -> Duration {
        self.schedule.jittered(retry)
    }
}

/// What one `BatchGetItem` answered: items by table, and the keys left unprocessed.
type Answer = (HashMap<String, Vec<Item>>, Vec<BatchKey>);

/// Gets every key through `send` (one call per request), at most [`MAX_BATCH_KEYS`] per
/// request, unprocessed keys first in the next one.
pub(crate) async fn get_all<F, Fut>(
    keys: Vec<BatchKey>,
    backoff: Backoff,
    mut send: F,
) -> Result<HashMap<String, Vec<Item>>, ApiError>
where
    F: FnMut(Vec<BatchKey>) -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let mut seen = HashSet::new();
    let mut pending: VecDeque<BatchKey> = keys
        .into_iter()
        .filter(|key| seen.insert(key.identity()))
        .collect();
    let mut found: HashMap<String, Vec<Item>> = HashMap::new();
    let mut retries = 0;
    while !pending.is_empty() {
        let chunk: Vec<BatchKey> = pending.drain(..pending.len().min(MAX_BATCH_KEYS)).collect();
        let (items, unprocessed) = send(chunk).await?;
        for (table, items) in items {
            found.entry(table).or_default().extend(items);
        }
        if !unprocessed.is_empty() {
            retries += 1;
            if retries > backoff.retries {
                return Err(ApiError::Unavailable(format!(
                    "BatchGetItem left {} keys unprocessed after {} retries",
                    unprocessed.len(),
                    backoff.retries
                )));
            }
            tracing::debug!(
                unprocessed = unprocessed.len(),
                retries,
                "BatchGetItem throttled"
            );
            tokio::time::sleep(backoff.pause(retries)).await;
            for key in unprocessed.into_iter().rev() {
                pending.push_front(key);
            }
        }
    }
    Ok(found)
}

impl Readers {
    /// Every item of `keys` that exists, by table name (duplicate keys are asked once).
    #[tracing::instrument(skip_all, fields(keys = keys.len()))]
    pub async fn batch_get(
        &self,
        keys: Vec<BatchKey>,
    ) -> Result<HashMap<String, Vec<Item>>, ApiError> {
        get_all(keys, Backoff::DEFAULT, |chunk| self.batch_get_once(chunk)).await
    }

    async fn batch_get_once(&self, chunk: Vec<BatchKey>) -> Result<Answer, ApiError> {
        let mut by_table: HashMap<String, Vec<Item>> = HashMap::new();
        for BatchKey { table, key } in chunk {
            by_table.entry(table).or_default().push(key);
        }
        let mut request_items = HashMap::new();
        for (table, keys) in by_table {
            let keys = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(|e| ApiError::internal(format!("BatchGetItem request: {e}")))?;
            request_items.insert(table, keys);
        }
        let output = self
            .client
            .batch_get_item()
            .set_request_items(Some(request_items))
            .send()
            .await
            .map_err(unavailable)?;
        let unprocessed = output
            .unprocessed_keys
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(table, keys)| {
                keys.keys.into_iter().map(move |key| BatchKey {
                    table: table.clone(),
                    key,
                })
            })
            .collect();
        Ok((output.responses.unwrap_or_default(), unprocessed))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const NO_WAIT: Backoff = Backoff {
        retries: 3,
        schedule: common::backoff::Backoff::new(Duration::ZERO, Duration::ZERO),
    };

    fn key(table: &str, id: usize) -> BatchKey {
        BatchKey::new(table, [("id", AttributeValue::S(id.to_string()))])
    }

    /// A fake DynamoDB that answers every key with an item equal to the key, leaving the last
    /// key of a request unprocessed as long as `throttle` says so; it records every request.
    async fn run(
        keys: Vec<BatchKey>,
        throttle: impl Fn(usize) -> bool,
    ) -> (
        Result<HashMap<String, Vec<Item>>, ApiError>,
        Vec<Vec<BatchKey>>,
    ) {
        let sent = Mutex::new(Vec::new());
        let result = get_all(keys, NO_WAIT, |chunk: Vec<BatchKey>| {
            let request = {
                let mut sent = sent.lock().expect("lock");
                sent.push(chunk.clone());
                sent.len()
            };
            let mut chunk = chunk;
            let unprocessed = if throttle(request) {
                chunk.pop().into_iter().collect()
            } else {
                Vec::new()
            };
            let mut items: HashMap<String, Vec<Item>> = HashMap::new();
            for BatchKey { table, key } in chunk {
                items.entry(table).or_default().push(key);
            }
            std::future::ready(Ok((items, unprocessed)))
        })
        .await;
        (result, sent.into_inner().expect("lock"))
    }

    #[tokio::test]
    async fn keys_are_deduplicated_and_sent_100_at_a_time() {
        let mut keys: Vec<BatchKey> = (0..150).map(|i| key("a", i)).collect();
        keys.extend((0..60).map(|i| key("b", i)));
        keys.extend((0..60).map(|i| key("a", i)));
        let (result, sent) = run(keys, |_| false).await;
        let found = result.expect("found");
        assert_eq!(found["a"].len(), 150);
        assert_eq!(found["b"].len(), 60);
        let sizes: Vec<usize> = sent.iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 10]);
    }

    #[tokio::test]
    async fn unprocessed_keys_are_retried_first() {
        let keys: Vec<BatchKey> = (0..120).map(|i| key("a", i)).collect();
        let (result, sent) = run(keys, |request| request == 1).await;
        assert_eq!(result.expect("found")["a"].len(), 120);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].len(), 21);
        assert_eq!(sent[1][0], key("a", 99), "the unprocessed key leads");
    }

    #[tokio::test]
    async fn endless_throttling_becomes_a_503_after_bounded_retries() {
        let (result, sent) = run(vec![key("a", 1)], |_| true).await;
        assert!(
            matches!(result, Err(ApiError::Unavailable(_))),
            "{result:?}"
        );
        assert_eq!(sent.len(), 1 + NO_WAIT.retries as usize);
    }
}
