//! Replay: rebuilds projections from the `events` table into new versions side by side, switches the read side to them, verifies and removes versions.
//!
//! A rebuild of projection `P` (see [`rebuild::rebuild`]):
//! 1. allocates version `n = max(versions) + 1` in `P`'s registry item (`building = n`);
//! 2. creates version `n`'s tables from the same definitions (or its search index);
//! 3. starts its own reader of the events table's stream at the stream's current end
//!    ([`tail::TailHandle::start`]), then runs the full pass in bulk, in units claimed through
//!    leases ([`units`]): each unit one scan segment of one round, its aggregates' events
//!    folded in memory through the projector's own plans ([`projectors::ops`]), its
//!    checkpoints then its items written with `BatchWriteItem` ([`bulk`]); meanwhile the tail
//!    keeps what is appended. A killed full pass goes on from the units done;
//! 4. catches up with the events appended meanwhile: each catch-up pass takes what the tail
//!    read since the previous one (`GetRecords` up to every shard's end: its cost follows
//!    what was appended, not the size of the log), applies it, and saves the tail's
//!    positions in the progress item (`--resume` goes on after them), until a pass applies
//!    nothing (at most 5 passes). A tail that cannot go on (no positions saved yet, positions
//!    older than the stream's 24 hours) is started again at the stream's
//!    end, and the next pass also scans the table for `recordedAt` since the previous pass
//!    started, less a margin, to cover the time before it;
//! 5. freezes the live projector, drains the tail to every shard's end (two empty reads in a
//!    row) and applies that, and switches `active` to `n` (and the OpenSearch alias) in one
//!    conditional update that also ends the freeze.
//!
//! The live projector follows the registry ([`projectors::VersionedProjector`]): an event it
//! applied to the old version had its stream record read before the freeze, so the last
//! drain has it, and whatever else comes back through its queue and lands in version `n`
//! (the argument is in [`tail`]).
//!
//! `rebuild all` ([`rebuild::rebuild_all`]) allocates every version first, then makes the
//! full passes of all of them in one pass of units (each segment read once a round for all
//! of them; each one's tail started before it), then catches up and switches each one in
//! turn.

pub mod bulk;
pub mod dlq;
pub mod fan_out_failures;
pub mod oldest;
pub mod progress;
pub mod progress_item;
pub mod rebuild;
pub mod registry;
pub mod scan;
pub mod status;
pub mod tail;
pub mod units;
pub mod verify;
pub mod versions;

use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use common::projections::Projection;
use projectors::ProjectionError;
use search::{SearchError, VersionedSearch};

pub use progress::Progress;
pub use rebuild::{rebuild, rebuild_all, RebuildOptions, RebuildReport};
pub use verify::{verify, VerifyReport};

/// Why a replay command failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Another rebuild holds the projection, or there is nothing to resume.
    #[error("{0}")]
    Busy(String),
    /// The command would break something (removing the active version...).
    #[error("{0}")]
    Refused(String),
    /// Bad input: an unknown version, a bad configuration.
    #[error("{0}")]
    Invalid(String),
    /// DynamoDB failed or could not be reached.
    #[error("DynamoDB: {0}")]
    Store(String),
    /// An event could not be applied.
    #[error("projection: {0}")]
    Projection(#[from] ProjectionError),
    /// The search engine failed.
    #[error("search: {0}")]
    Search(#[from] SearchError),
    /// SQS failed or could not be reached.
    #[error("SQS: {0}")]
    Queue(String),
}

/// A DynamoDB or provisioning failure, with what was being done.
pub(crate) fn store_error<E: std::error::Error>(
    context: &str,
) -> impl FnOnce(E) -> ReplayError + '_ {
    move |e| ReplayError::Store(format!("{context}: {}", common::error::one_line(&e)))
}

/// What every command works on.
#[derive(Clone, Debug)]
pub struct Replay {
    pub client: Client,
    /// The events table's stream: a rebuild reads what is appended during it from there.
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// The base (version 1) table names; the registry is in their checkpoints table.
    pub base: TableNames,
    /// The versions of the search read model.
    pub search: VersionedSearch,
    pub progress: Progress,
    /// Whether this process serves the read side too (tests, benchmarks): only then may an
    /// in-memory search index be built, since a separate process's memory is nobody's.
    pub in_process: bool,
}

impl Replay {
    /// A replay running inside the process that serves the read side, without a progress bar.
    pub fn in_process(
        client: Client,
        streams: aws_sdk_dynamodbstreams::Client,
        base: TableNames,
        search: VersionedSearch,
    ) -> Self {
        Self {
            client,
            streams,
            base,
            search,
            progress: Progress::silent(),
            in_process: true,
        }
    }

    /// The tables of `projection` at `version`.
    pub fn tables(&self, projection: Projection, version: u32) -> TableNames {
        self.base.at_version(projection, version)
    }

    /// Fails when this process cannot build `projection` (an in-memory search index of
    /// another process).
    pub fn check_can_build(&self, projection: Projection) -> Result<(), ReplayError> {
        if projection == Projection::Search && !self.in_process && !self.search.persistent() {
            return Err(ReplayError::Invalid(
                "the search read model is configured in memory (CONDUIT_SEARCH=embedded without \
                 CONDUIT_SEARCH_DIR): another process cannot build it. Set CONDUIT_SEARCH_DIR to \
                 the local stack's search directory (.local/data/search), or use OpenSearch"
                    .into(),
            ));
        }
        Ok(())
    }
}
