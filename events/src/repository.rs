//! Loads cqrs-es aggregates from the event store, runs commands on them and appends what they decide.

use std::time::Duration;

use common::backoff::Backoff;
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use crate::envelope::{EventSchema, Metadata, SchemaError, StoredEvent};
use crate::snapshot::Snapshotted;
use crate::store::{Commit, EventStore, StoreError};

/// How often a command is re-run on a fresh load after losing an optimistic-lock race.
pub const CONFLICT_RETRIES: usize = 5;

/// Why executing a command failed.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError<E: std::error::Error> {
    /// The aggregate refused the command (its own error says which status).
    #[error(transparent)]
    Domain(E),
    /// The store refused the append or could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be read as a domain event.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// An aggregate as loaded: its state and the sequence of its last event (0 if it has none).
#[derive(Debug)]
pub struct Loaded<A> {
    pub state: A,
    pub sequence: u64,
    /// The sequence the snapshot it started from covers (0: folded from the first event).
    pub snapshot_sequence: u64,
}

/// The outcome of a command: the state after it and the events it appended (maybe none).
#[derive(Debug)]
pub struct Executed<A> {
    pub state: A,
    pub events: Vec<StoredEvent>,
    /// The sequence of the aggregate's last event after the command: the last one appended, or
    /// the one the decision was based on when nothing was appended (0 for no event at all).
    pub sequence: u64,
}

/// Runs commands against aggregates stored in an [`EventStore`].
#[derive(Clone, Debug)]
pub struct Repository {
    store: EventStore,
}

impl Repository {
    pub fn new(store: EventStore) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The aggregate's state, strongly consistent: its latest snapshot, if usable, and the
    /// events after it (two requests, whatever the stream's length).
    pub async fn load<A>(&self, id: &str) -> Result<Loaded<A>, RepositoryError<A::Error>>
    where
        A: Snapshotted,
        A::Event: EventSchema,
    {
        let restored = self
            .store
            .snapshot(A::TYPE, id)
            .await?
            .and_then(|snapshot| Some((snapshot.restore::<A>()?, snapshot.sequence)));
        let (state, covered) = restored.unwrap_or_default();
        let events = self
            .store
            .read_range(A::TYPE, id, covered + 1, None)
            .await?;
        let (state, sequence) = fold(state, covered, events)?;
        Ok(Loaded {
            state,
            sequence,
            snapshot_sequence: covered,
        })
    }

    /// The aggregate folded from its first event, ignoring any snapshot: what [`Self::load`]
    /// must always equal.
    pub async fn load_from_events<A>(
        &self,
        id: &str,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>>
    where
        A: Aggregate,
        A::Event: EventSchema,
    {
        let events = self.store.load(A::TYPE, id).await?;
        let (state, sequence) = fold(A::default(), 0, events)?;
        Ok(Loaded {
            state,
            sequence,
            snapshot_sequence: 0,
        })
    }

    /// Loads the aggregate, lets it decide, and appends its events with the unique claims they
    /// imply. A lost race re-runs the command on a fresh load, up to [`CONFLICT_RETRIES`] times.
    #[tracing::instrument(skip(self, command, metadata), fields(aggregate = A::TYPE))]
    pub async fn execute<A>(
        &self,
        id: &str,
        command: A::Command,
        metadata: Metadata,
    ) -> Result<Executed<A>, RepositoryError<A::Error>>
    where
        A: Snapshotted<Services = ()>,
        A::Command: Clone,
        A::Event: EventSchema,
    {
        let mut attempt = 0;
        loop {
            let Loaded {
                mut state,
                sequence,
                snapshot_sequence,
            } = self.load::<A>(id).await?;
            let sink = EventSink::<A>::default();
            state
                .handle(command.clone(), &(), &sink)
                .await
                .map_err(RepositoryError::Domain)?;
            let decided = sink.collect().await;
            if decided.is_empty() {
                return Ok(Executed {
                    state,
                    events: Vec::new(),
                    sequence,
                });
            }
            // `handle` applied the decided events: `state` is the state after them.
            let commit = Commit::of(A::TYPE, id, sequence, &decided, &metadata)
                .with_snapshot(&state, snapshot_sequence);
            match self.store.append(commit).await {
                Ok(events) => {
                    let sequence = events.last().map_or(sequence, |event| event.sequence);
                    return Ok(Executed {
                        state,
                        events,
                        sequence,
                    });
                }
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, "lost an optimistic-lock race; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// `state` after `sequence`, with `events` (the ones after it, in order) applied.
fn fold<A>(
    mut state: A,
    mut sequence: u64,
    events: Vec<StoredEvent>,
) -> Result<(A, u64), SchemaError>
where
    A: Aggregate,
    A::Event: EventSchema,
{
    for stored in events {
        let event =
            A::Event::from_stored(&stored.event_type, stored.event_version, &stored.payload)?;
        state.apply(event);
        sequence = stored.sequence;
    }
    Ok((state, sequence))
}

/// The pause before a writer that lost a race decides again: 10 ms doubling to 320 ms.
const CONFLICT_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(10), Duration::from_millis(320));

/// A short pause, plus as much again at random, so that racing writers spread out.
pub(crate) fn backoff(attempt: usize) -> Duration {
    let failures = u32::try_from(attempt).unwrap_or(u32::MAX);
    CONFLICT_BACKOFF.ceiling(failures) + CONFLICT_BACKOFF.jittered(failures)
}
