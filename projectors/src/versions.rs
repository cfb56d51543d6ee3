//! Live projection into the active version: each queue batch is applied to the version the registry names, and handed back whole while a replay switches versions.
//!
//! Per batch: read the projection's registry item (strongly consistent). While it is frozen (a
//! replay's final catch-up), wait a little for the switch, then give up and fail the whole
//! batch unapplied: the queue redelivers it later. Otherwise apply the batch with the runtime
//! of the active version, then read the registry again: if the active version changed or a
//! freeze began meanwhile, fail the whole batch too, so that it is applied again to the new
//! version (what it did to the old one no longer matters). A replay's final pass therefore
//! misses nothing: every event it may not have seen comes back through the queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use common::clock::now_ms;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use common::projections::{Projection, VersionState};
use search::VersionedSearch;

use crate::failures::{self, EventRef, Failed};
use crate::runtime::{
    parse_message, receive_count, response_of, CatchUp, ProjectionError, Projector,
    ProjectorRuntime,
};
use crate::{heads, metrics};
use crate::{ArticlesProjector, FeedProjector, SearchProjector, UsersProjector};

/// Registry attribute: until when (Unix ms) a freeze holds. A replay that died while the
/// projection was frozen must not stop it for good: past this time the freeze is ignored, and
/// the replay's switch (which requires the freeze to hold well past its own clock) fails.
pub const FROZEN_UNTIL: &str = "frozenUntil";

/// How long a batch waits for a freeze to end before it is handed back to the queue: well
/// inside the projector functions' 10 s timeout, so that a short switch costs no receive
/// (a message that fails `maxReceiveCount` times goes to the dead-letter queue).
pub const DEFAULT_FREEZE_WAIT: Duration = Duration::from_secs(5);

const FREEZE_POLL: Duration = Duration::from_millis(100);

/// A projection's registry item as the projectors read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    pub state: VersionState,
    /// [`FROZEN_UNTIL`], if set.
    pub frozen_until: Option<u64>,
}

impl Registry {
    /// Whether the freeze holds at `now_ms`: set, and not past its deadline.
    pub fn frozen_at(&self, now_ms: u64) -> bool {
        self.state.frozen && self.frozen_until.is_none_or(|until| now_ms < until)
    }
}

/// Reads `projection`'s registry item from the base checkpoints table, strongly consistent.
pub async fn read_registry(
    client: &Client,
    base_checkpoints_table: &str,
    projection: Projection,
) -> Result<Registry, ProjectionError> {
    let item = common::projections::read_registry_item(client, base_checkpoints_table, projection)
        .await
        .map_err(ProjectionError::Unavailable)?;
    let item = &item;
    Ok(Registry {
        state: VersionState::from_item(item),
        frozen_until: events::views::number(item, FROZEN_UNTIL),
    })
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds the runtime of one version of a projection.
pub type RuntimeFactory<P> =
    Arc<dyn Fn(u32) -> BoxFuture<Result<ProjectorRuntime<P>, ProjectionError>> + Send + Sync>;

/// A projector that follows the registry: see the module documentation.
pub struct VersionedProjector<P> {
    projection: Projection,
    client: Client,
    registry_table: String,
    factory: RuntimeFactory<P>,
    /// The runtime of the version last used; one at a time, so an old version's resources
    /// (an embedded search index's writer) are let go after a switch.
    current: tokio::sync::Mutex<Option<(u32, Arc<ProjectorRuntime<P>>)>>,
    freeze_wait: Duration,
}

impl<P> std::fmt::Debug for VersionedProjector<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedProjector")
            .field("projection", &self.projection)
            .field("registry_table", &self.registry_table)
            .finish_non_exhaustive()
    }
}

impl<P: Projector + 'static> VersionedProjector<P> {
    /// `projection` with runtimes from `factory`; the registry is in `base`'s checkpoints table.
    pub fn new(
        projection: Projection,
        client: &Client,
        base: &TableNames,
        factory: RuntimeFactory<P>,
    ) -> Self {
        Self {
            projection,
            client: client.clone(),
            registry_table: base.checkpoints.clone(),
            factory,
            current: tokio::sync::Mutex::new(None),
            freeze_wait: DEFAULT_FREEZE_WAIT,
        }
    }

    /// How long a batch waits for a freeze to end before it is handed back.
    pub fn with_freeze_wait(mut self, wait: Duration) -> Self {
        self.freeze_wait = wait;
        self
    }

    pub fn projection(&self) -> Projection {
        self.projection
    }

    pub async fn registry(&self) -> Result<Registry, ProjectionError> {
        read_registry(&self.client, &self.registry_table, self.projection).await
    }

    /// The runtime of `version` (built on first use, kept until another version is asked for).
    pub async fn runtime(&self, version: u32) -> Result<Arc<ProjectorRuntime<P>>, ProjectionError> {
        let mut current = self.current.lock().await;
        if let Some((v, runtime)) = current.as_ref() {
            if *v == version {
                return Ok(runtime.clone());
            }
        }
        // Let go of the old version first (an embedded index's directory lock).
        *current = None;
        let runtime = Arc::new((self.factory)(version).await?);
        *current = Some((version, runtime.clone()));
        Ok(runtime)
    }

    /// Brings the active version up to the end of the log (see [`ProjectorRuntime::catch_up`]).
    pub async fn catch_up(&self) -> Result<(u32, CatchUp), ProjectionError> {
        let active = self.registry().await?.state.active;
        let runtime = self.runtime(active).await?;
        Ok((active, runtime.catch_up().await?))
    }

    /// Waits up to the freeze wait while the projection is frozen; the registry as it is then.
    async fn unfrozen(&self) -> Result<Registry, ProjectionError> {
        let started = tokio::time::Instant::now();
        loop {
            let registry = self.registry().await?;
            if !registry.frozen_at(now_ms()) || started.elapsed() >= self.freeze_wait {
                return Ok(registry);
            }
            tokio::time::sleep(FREEZE_POLL).await;
        }
    }

    /// Applies one SQS batch to the active version (see the module documentation), records
    /// why each message it hands back failed ([`crate::failures`]), moves the projection's
    /// head ([`crate::heads`]) and emits the batch's metrics ([`crate::metrics`]).
    pub async fn handle_sqs(&self, batch: SqsEvent) -> SqsBatchResponse {
        // Boxed: the future of a whole batch is deep enough to overflow the compiler's limit in
        // the Lambda binaries' handlers otherwise.
        let delivered: Vec<(String, String)> = batch
            .records
            .iter()
            .filter_map(|record| {
                let event = parse_message(record.body.as_deref()?).ok()?;
                Some((record.message_id.clone()?, event.recorded_at))
            })
            .collect();
        let failed = Box::pin(self.project_batch(batch)).await;
        if !failed.is_empty() {
            failures::record(&self.client, &self.registry_table, self.projection, &failed).await;
        }
        let applied: Vec<&String> = delivered
            .iter()
            .filter(|(id, _)| !failed.iter().any(|f| &f.message_id == id))
            .map(|(_, recorded_at)| recorded_at)
            .collect();
        if let Some(newest) = applied.iter().max() {
            heads::advance(&self.client, &self.registry_table, self.projection, newest).await;
        }
        let now = now_ms();
        let lag = applied
            .iter()
            .min()
            .and_then(|oldest| events::time_format::parse(oldest))
            .map(|recorded| {
                let recorded_ms = (recorded.unix_timestamp_nanos() / 1_000_000) as f64;
                ((now as f64 - recorded_ms) / 1000.0).max(0.0)
            });
        metrics::emit(self.projection, lag, failed.len(), now);
        response_of(&failed)
    }

    async fn project_batch(&self, batch: SqsEvent) -> Vec<Failed> {
        let name = self.projection.name();
        let before = match self.unfrozen().await {
            Ok(registry) => registry,
            Err(error) => {
                tracing::error!(projection = name, %error, "registry unreadable; batch handed back");
                return all_failed(&batch, &format!("registry unreadable: {error}"));
            }
        };
        if before.frozen_at(now_ms()) {
            tracing::info!(
                projection = name,
                messages = batch.records.len(),
                "frozen for a version switch; batch handed back"
            );
            return all_failed(&batch, "frozen for a version switch");
        }
        let active = before.state.active;
        let runtime = match self.runtime(active).await {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(projection = name, version = active, %error, "cannot open the active version; batch handed back");
                return all_failed(&batch, &format!("cannot open version {active}: {error}"));
            }
        };
        let every = all_failed(&batch, "");
        let failed = runtime.project_batch(batch).await;
        match self.registry().await {
            Ok(after) if after.state.active == active && !after.frozen_at(now_ms()) => failed,
            Ok(after) => {
                tracing::info!(
                    projection = name,
                    applied_to = active,
                    active = after.state.active,
                    frozen = after.state.frozen,
                    "the version changed during the batch; handed back for the new version"
                );
                with_reason(every, "the version changed during the batch")
            }
            Err(error) => {
                tracing::error!(projection = name, %error, "registry unreadable after the batch; handed back");
                with_reason(every, &format!("registry unreadable: {error}"))
            }
        }
    }
}

/// Every message of `batch`, failed for `reason`.
fn all_failed(batch: &SqsEvent, reason: &str) -> Vec<Failed> {
    batch
        .records
        .iter()
        .map(|record| Failed {
            message_id: record.message_id.clone().unwrap_or_default(),
            event: parse_message(record.body.as_deref().unwrap_or_default())
                .ok()
                .map(|event| EventRef {
                    stream: event.stream_key(),
                    sequence: event.sequence,
                    event_type: event.event_type,
                }),
            reason: reason.to_owned(),
            receive_count: receive_count(record),
        })
        .collect()
}

fn with_reason(failed: Vec<Failed>, reason: &str) -> Vec<Failed> {
    failed
        .into_iter()
        .map(|f| Failed {
            reason: reason.to_owned(),
            ..f
        })
        .collect()
}

impl VersionedProjector<UsersProjector> {
    /// The users projection over the versions of `base`'s tables.
    pub fn users(client: &Client, base: &TableNames) -> Self {
        let (c, b) = (client.clone(), base.clone());
        let factory: RuntimeFactory<UsersProjector> = Arc::new(move |version| {
            let runtime = UsersProjector::runtime(&c, &b.at_version(Projection::Users, version));
            Box::pin(async move { Ok(runtime) })
        });
        Self::new(Projection::Users, client, base, factory)
    }
}

impl VersionedProjector<ArticlesProjector> {
    /// The articles projection over the versions of `base`'s tables.
    pub fn articles(client: &Client, base: &TableNames) -> Self {
        let (c, b) = (client.clone(), base.clone());
        let factory: RuntimeFactory<ArticlesProjector> = Arc::new(move |version| {
            let runtime =
                ArticlesProjector::runtime(&c, &b.at_version(Projection::Articles, version));
            Box::pin(async move { Ok(runtime) })
        });
        Self::new(Projection::Articles, client, base, factory)
    }
}

impl VersionedProjector<FeedProjector> {
    /// The feed projection over the versions of `base`'s tables.
    pub fn feed(client: &Client, base: &TableNames) -> Self {
        let (c, b) = (client.clone(), base.clone());
        let factory: RuntimeFactory<FeedProjector> = Arc::new(move |version| {
            let runtime = FeedProjector::runtime(&c, &b.at_version(Projection::Feed, version));
            Box::pin(async move { Ok(runtime) })
        });
        Self::new(Projection::Feed, client, base, factory)
    }
}

impl VersionedProjector<SearchProjector> {
    /// The search projection: checkpoints over the versions of `base`'s tables, each version
    /// writing its own index of `search`.
    pub fn search(client: &Client, base: &TableNames, search: VersionedSearch) -> Self {
        let (c, b) = (client.clone(), base.clone());
        let factory: RuntimeFactory<SearchProjector> = Arc::new(move |version| {
            let (c, b, search) = (c.clone(), b.clone(), search.clone());
            Box::pin(async move {
                let index = search.index(version).await.map_err(|e| {
                    ProjectionError::Unavailable(format!("search index of version {version}: {e}"))
                })?;
                Ok(SearchProjector::runtime(
                    &c,
                    &b.at_version(Projection::Search, version),
                    index,
                ))
            })
        });
        Self::new(Projection::Search, client, base, factory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(frozen: bool, until: Option<u64>) -> Registry {
        Registry {
            state: VersionState {
                frozen,
                ..VersionState::default()
            },
            frozen_until: until,
        }
    }

    #[test]
    fn a_freeze_holds_until_its_deadline() {
        assert!(!registry(false, None).frozen_at(10));
        assert!(registry(true, None).frozen_at(10));
        assert!(registry(true, Some(11)).frozen_at(10));
        assert!(!registry(true, Some(10)).frozen_at(10));
        assert!(!registry(false, Some(11)).frozen_at(10));
    }

    #[test]
    fn failing_a_batch_names_every_message_once_with_the_reason() {
        let message = |id: &str, receives: &str| {
            let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
            record.message_id = Some(id.into());
            record.body = Some("not an event".into());
            record
                .attributes
                .insert("ApproximateReceiveCount".into(), receives.into());
            record
        };
        let mut batch = SqsEvent::default();
        batch.records = vec![message("a", "2"), message("b", "5"), message("a", "3")];
        let failed = all_failed(&batch, "frozen for a version switch");
        assert_eq!(failed.len(), 3);
        assert!(failed
            .iter()
            .all(|f| f.reason == "frozen for a version switch" && f.event.is_none()));
        assert_eq!(failed[1].receive_count, Some(5));
        let response = response_of(&failed);
        let mut ids: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a", "b"]);
        let renamed = with_reason(failed, "the version changed during the batch");
        assert!(renamed
            .iter()
            .all(|f| f.reason == "the version changed during the batch"));
    }
}
