//! Snapshots bound what a command loads: the aggregate's state after sequence `n`, kept in the
//! `snapshots` table (one item per stream, the latest) and written in the same
//! `TransactWriteItems` as the events it covers.
//!
//! Why so, and not the alternatives:
//! * **An item beside the events, in the append's transaction** (chosen): no extra round trip
//!   and no extra request on any write; a snapshot exists only if the events it covers were
//!   appended (their puts are conditional on free positions, and the transaction is all or
//!   nothing), so it can never be ahead of the log, and it only moves forward (a later
//!   transaction covers a later sequence, or fails).
//! * **A separate snapshot store written after the append** (cqrs-es): a second request, and a
//!   crash between the two leaves it behind (harmless, but it costs the next loads).
//! * **State in the stream's tip** (Equinox): one read instead of two, but the tip would be an
//!   item of `events`, which is the stream the fan-out publishes and replay scans: every
//!   reader of the log would have to skip it, and every snapshot would be a stream record.
//!
//! A load reads the snapshot (strongly consistent), then the events after it (strongly
//! consistent): an event appended between the two reads is in the second one, so nothing is
//! hidden. A snapshot whose shape is not the aggregate's [`Snapshotted::SHAPE`], or that does
//! not parse, is ignored: the state is folded from the first event, and the next append
//! writes a new snapshot (the tail is long then).

use cqrs_es::Aggregate;

/// A snapshot is written with an append that leaves at least this many events after the
/// current one (or after the start, with none): a load then reads at most this many events
/// before its command, plus the snapshot. 50: a user's or comment thread's events are about
/// 0.3 KB, so the tail stays within a few 4 KB read units, and a snapshot's write (twice its
/// size in write units, transactional) is paid once per 50 events.
pub const SNAPSHOT_EVERY: u64 = 50;

/// The largest state written as a snapshot (an item may hold 400 KB): a larger state is not
/// snapshotted, and its loads fold the whole stream again (logged once per skipped write).
pub const MAX_STATE_BYTES: usize = 300 * 1024;

/// An aggregate whose state can be snapshotted: its serde form is the snapshot, and `SHAPE`
/// names that form. Change the state's fields (or their meaning) and bump `SHAPE`: snapshots
/// of the old shape are then ignored rather than misread. Each aggregate's tests pin its
/// serialized form, so a change of shape fails them until `SHAPE` is looked at.
pub trait Snapshotted: Aggregate {
    const SHAPE: u32;
}

/// An aggregate's state after `sequence`, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The last event the state covers.
    pub sequence: u64,
    /// The shape the state was written in.
    pub shape: u32,
    /// The aggregate's serde form, JSON.
    pub state: String,
}

impl Snapshot {
    /// `state` after `sequence`; `None` if it is larger than [`MAX_STATE_BYTES`].
    pub fn of<A: Snapshotted>(state: &A, sequence: u64) -> Option<Self> {
        let text = match serde_json::to_string(state) {
            Ok(text) => text,
            Err(error) => {
                tracing::warn!(aggregate = A::TYPE, %error, "state cannot be serialized; no snapshot");
                return None;
            }
        };
        if text.len() > MAX_STATE_BYTES {
            tracing::warn!(
                aggregate = A::TYPE,
                sequence,
                bytes = text.len(),
                "state too large for a snapshot; loads fold the whole stream"
            );
            return None;
        }
        Some(Self {
            sequence,
            shape: A::SHAPE,
            state: text,
        })
    }

    /// The state, if the snapshot is of `A`'s current shape and reads as one.
    pub fn restore<A: Snapshotted>(&self) -> Option<A> {
        if self.shape != A::SHAPE {
            tracing::info!(
                aggregate = A::TYPE,
                shape = self.shape,
                current = A::SHAPE,
                "snapshot of another shape ignored"
            );
            return None;
        }
        match serde_json::from_str(&self.state) {
            Ok(state) => Some(state),
            Err(error) => {
                tracing::warn!(aggregate = A::TYPE, %error, "unreadable snapshot ignored");
                None
            }
        }
    }
}

/// Whether an append ending at `sequence` writes a snapshot, when the state it starts from
/// covers `covered` (the restored snapshot's sequence, 0 without one).
pub fn due(covered: u64, sequence: u64) -> bool {
    sequence.saturating_sub(covered) >= SNAPSHOT_EVERY
}

#[cfg(test)]
mod randomized;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::User;

    #[test]
    fn a_snapshot_is_due_every_so_many_events_after_the_last() {
        assert!(!due(0, 1));
        assert!(!due(0, SNAPSHOT_EVERY - 1));
        assert!(due(0, SNAPSHOT_EVERY));
        assert!(!due(SNAPSHOT_EVERY, 2 * SNAPSHOT_EVERY - 1));
        assert!(due(SNAPSHOT_EVERY, 2 * SNAPSHOT_EVERY + 3));
    }

    #[test]
    fn a_snapshot_of_another_shape_or_garbage_is_not_restored() {
        let user = User {
            id: Some("u".into()),
            bio: "b".into(),
            ..User::default()
        };
        let snapshot = Snapshot::of(&user, 7).expect("small");
        assert_eq!(snapshot.restore::<User>(), Some(user));
        let other = Snapshot {
            shape: User::SHAPE + 1,
            ..snapshot.clone()
        };
        assert_eq!(other.restore::<User>(), None);
        let garbage = Snapshot {
            state: "{\"id\": 5".into(),
            ..snapshot
        };
        assert_eq!(garbage.restore::<User>(), None);
    }

    #[test]
    fn a_state_too_large_is_not_snapshotted() {
        let user = User {
            bio: "b".repeat(MAX_STATE_BYTES),
            ..User::default()
        };
        assert_eq!(Snapshot::of(&user, 1), None);
    }
}
