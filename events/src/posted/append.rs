//! Appends a post: replays answer from the id claims, new events are checked by their aggregate
//! and appended with their id claims in the transaction of the events.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::try_join_all;

use super::{check, event_id_key, Fact, Facts, Post, Postable, PostedEvent, Refusal};
use crate::article::Article;
use crate::envelope::UniqueChange;
use crate::envelope::{stream_key, EventSchema, Metadata, NewEvent, SchemaError, StoredEvent};
use crate::repository::{backoff, Repository, RepositoryError, CONFLICT_RETRIES};
use crate::store::{Commit, StoreError};
use crate::user::User;

/// The claim attribute holding a posted event's content hash.
const CONTENT_HASH: &str = "contentHash";
/// The claim attribute holding the sequence the event got.
const SEQUENCE: &str = "sequence";

/// What a post did.
#[derive(Clone, Debug, PartialEq)]
pub enum PostOutcome {
    /// 201: the events were appended now.
    Appended(Vec<StoredEvent>),
    /// 200: every event had been appended by an earlier post with the same content; nothing
    /// was appended. The events as stored then.
    Replayed(Vec<StoredEvent>),
}

/// Why a post appended nothing. The HTTP status each becomes is noted.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// 409: `expectedSequence` is not the sequence of the aggregate's last event.
    #[error("expected sequence {expected}, but the aggregate is at {actual}")]
    SequenceMismatch { expected: u64, actual: u64 },
    /// 409: the event at `index` reuses the id of an event posted with other content (or to
    /// another aggregate).
    #[error("event {index} reuses the id of another event")]
    EventIdReused { index: usize },
    /// 409: the events at `appended` were appended by an earlier post, the others were not.
    #[error("events {appended:?} were appended before, the others not")]
    PartlyAppended { appended: Vec<usize> },
    /// 403, 409 or 422: the aggregate refused the event at `index`.
    #[error("event {index} refused: {refusal:?}")]
    Refused { index: usize, refusal: Refusal },
    /// 409: the event at `index` claims a unique key (email, username, slug) held by another
    /// aggregate; `field` is the event's field holding it (`data.email`).
    #[error("{key} is already taken")]
    Taken {
        index: usize,
        field: String,
        key: String,
    },
    /// 409: other writers kept appending to the aggregate while this post was decided.
    #[error("the aggregate kept changing concurrently")]
    Conflict,
    /// 500 or 503: the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 500: a stored event could not be read.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

impl<E: std::error::Error> From<RepositoryError<E>> for PostError {
    fn from(error: RepositoryError<E>) -> Self {
        match error {
            RepositoryError::Store(error) => PostError::Store(error),
            RepositoryError::Schema(error) => PostError::Schema(error),
            // Only loads go through here, and a load decides nothing.
            RepositoryError::Domain(error) => {
                PostError::Store(StoreError::Corrupt(format!("a load refused: {error}")))
            }
        }
    }
}

/// What the id claims say about a post's events.
enum Earlier {
    /// None of them was posted before.
    None,
    /// All of them were, with the same content: their sequences, in the post's order.
    All { stream: String, sequences: Vec<u64> },
}

impl Repository {
    /// Appends posted events to their aggregate, as [`Postable`] and the aggregate's own rules
    /// allow, with `metadata` (its actor is `actor`). Idempotent on event ids: a post whose
    /// events were all appended before with the same content appends nothing and answers the
    /// stored events. A lost race is decided again on a fresh load unless the post names the
    /// sequence it expects.
    #[tracing::instrument(skip_all, fields(aggregate = A::TYPE, id = %post.aggregate_id, events = post.events.len()))]
    pub async fn post<A: Postable>(
        &self,
        post: Post<A::Event>,
        actor: &str,
        metadata: Metadata,
    ) -> Result<PostOutcome, PostError> {
        for (index, posted) in post.events.iter().enumerate() {
            A::authorize(&post.aggregate_id, &posted.event, actor)
                .map_err(|refusal| PostError::Refused { index, refusal })?;
        }
        let stream = stream_key(A::TYPE, &post.aggregate_id);
        let mut attempt = 0;
        loop {
            // The load before the claims: an event in the load has its claim visible (one
            // transaction), so a post appended meanwhile is never decided again as new.
            let loaded = self.load::<A>(&post.aggregate_id).await?;
            if let Earlier::All {
                stream: owner,
                sequences,
            } = self.earlier(&stream, &post.events).await?
            {
                return self.replayed(&owner, &post.events, &sequences, actor).await;
            }
            if let Some(expected) = post.expected_sequence {
                if expected != loaded.sequence {
                    return Err(PostError::SequenceMismatch {
                        expected,
                        actual: loaded.sequence,
                    });
                }
            }
            let needed: BTreeSet<Fact> = post
                .events
                .iter()
                .flat_map(|posted| A::needs(&posted.event, actor))
                .collect();
            let facts = self.facts(needed).await?;
            let events: Vec<A::Event> = post.events.iter().map(|p| p.event.clone()).collect();
            let after = check(loaded.state, &events, actor, &facts)
                .await
                .map_err(|(index, refusal)| PostError::Refused { index, refusal })?;

            let commit = commit::<A>(&post, loaded.sequence, &metadata)
                .with_snapshot(&after, loaded.snapshot_sequence);
            let intended = commit.events.clone();
            match self.store().append(commit).await {
                Ok(stored) => {
                    // A position taken by events with these ids is read back as ours: make
                    // sure they are these events, not others posted under the same ids.
                    if let Some(index) = stored
                        .iter()
                        .zip(&intended)
                        .position(|(s, i)| s.event_type != i.event_type || s.payload != i.payload)
                    {
                        return Err(PostError::EventIdReused { index });
                    }
                    return Ok(PostOutcome::Appended(stored));
                }
                // Someone appended first: with an expected sequence the next load reports the
                // mismatch, without one the post is decided again.
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => {}
                // An id claimed meanwhile: the next look at the claims says by what.
                Err(StoreError::UniqueTaken { key })
                    if key.starts_with("event#") && attempt < CONFLICT_RETRIES => {}
                Err(StoreError::Conflict { .. }) => return Err(PostError::Conflict),
                Err(StoreError::UniqueTaken { key }) => return Err(taken::<A>(&post.events, key)),
                Err(error) => return Err(error.into()),
            }
            attempt += 1;
            tracing::debug!(attempt, "lost a race to another writer; deciding again");
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    /// Reads the id claims of a post's events.
    async fn earlier<E>(
        &self,
        stream: &str,
        events: &[PostedEvent<E>],
    ) -> Result<Earlier, PostError> {
        let keys: Vec<String> = events
            .iter()
            .map(|posted| event_id_key(&posted.event_id))
            .collect();
        let claims = try_join_all(keys.iter().map(|key| self.store().claim(key))).await?;
        let mut appended = Vec::new();
        let mut sequences = Vec::new();
        let mut owner = stream.to_owned();
        for (index, (posted, claim)) in events.iter().zip(claims).enumerate() {
            let Some(claim) = claim else { continue };
            let same = claim.attributes.get(CONTENT_HASH) == Some(&posted.content_hash);
            let sequence = claim
                .attributes
                .get(SEQUENCE)
                .and_then(|s| s.parse::<u64>().ok());
            match sequence {
                Some(sequence) if same => {
                    appended.push(index);
                    sequences.push(sequence);
                    owner = claim.owner;
                }
                _ => return Err(PostError::EventIdReused { index }),
            }
        }
        if appended.is_empty() {
            Ok(Earlier::None)
        } else if appended.len() == events.len() {
            Ok(Earlier::All {
                stream: owner,
                sequences,
            })
        } else {
            Err(PostError::PartlyAppended { appended })
        }
    }

    /// The stored events of a post appended before, provided `actor` posted them.
    async fn replayed<E>(
        &self,
        stream: &str,
        events: &[PostedEvent<E>],
        sequences: &[u64],
        actor: &str,
    ) -> Result<PostOutcome, PostError> {
        let corrupt = |what: &str| {
            PostError::Store(StoreError::Corrupt(format!("claims of {stream}: {what}")))
        };
        let (aggregate_type, aggregate_id) =
            stream.split_once('#').ok_or_else(|| corrupt("owner"))?;
        let (Some(first), Some(last)) = (sequences.iter().min(), sequences.iter().max()) else {
            return Err(corrupt("no sequence"));
        };
        let mut stored: BTreeMap<u64, StoredEvent> = self
            .store()
            .read_range(aggregate_type, aggregate_id, *first, Some(*last))
            .await?
            .into_iter()
            .map(|event| (event.sequence, event))
            .collect();
        let mut out = Vec::with_capacity(events.len());
        for (index, (posted, sequence)) in events.iter().zip(sequences).enumerate() {
            let event = stored
                .remove(sequence)
                .filter(|event| event.event_id == posted.event_id)
                .ok_or_else(|| corrupt("claimed event missing"))?;
            if event.metadata.actor.as_deref() != Some(actor) {
                return Err(PostError::Refused {
                    index,
                    refusal: Refusal::Forbidden,
                });
            }
            out.push(event);
        }
        Ok(PostOutcome::Replayed(out))
    }

    /// Looks the facts up, strongly consistent, all at once.
    async fn facts(&self, needed: BTreeSet<Fact>) -> Result<Facts, PostError> {
        let lookups = needed.into_iter().map(|fact| async move {
            let holds = match &fact {
                Fact::ArticleLive(id) => self.load::<Article>(id).await?.state.is_live(),
                Fact::UserRegistered(id) => self.load::<User>(id).await?.state.is_registered(),
            };
            Ok::<_, PostError>((fact, holds))
        });
        Ok(try_join_all(lookups).await?.into_iter().collect())
    }
}

/// The commit of a post decided at `sequence`: its events with their ids, the uniqueness
/// changes they imply, and a claim on every event id.
fn commit<A: Postable>(post: &Post<A::Event>, sequence: u64, metadata: &Metadata) -> Commit {
    let mut unique_changes: Vec<UniqueChange> = post
        .events
        .iter()
        .flat_map(|posted| posted.event.unique_changes())
        .collect();
    let mut events = Vec::with_capacity(post.events.len());
    for (offset, posted) in (1..).zip(&post.events) {
        let (event_type, event_version, payload) = posted.event.to_stored();
        events.push(NewEvent {
            event_id: posted.event_id,
            event_type,
            event_version,
            payload,
            metadata: metadata.clone(),
        });
        unique_changes.push(UniqueChange::ClaimOnce {
            key: event_id_key(&posted.event_id),
            attributes: BTreeMap::from([
                (CONTENT_HASH.to_owned(), posted.content_hash.clone()),
                (SEQUENCE.to_owned(), (sequence + offset).to_string()),
            ]),
        });
    }
    Commit {
        aggregate_type: A::TYPE.to_owned(),
        aggregate_id: post.aggregate_id.clone(),
        expected_sequence: sequence,
        events,
        unique_changes,
        snapshot: None,
    }
}

/// A taken unique key as the refusal of the first event claiming it.
fn taken<A: Postable>(events: &[PostedEvent<A::Event>], key: String) -> PostError {
    let index = events
        .iter()
        .position(|posted| {
            posted
                .event
                .unique_changes()
                .iter()
                .any(|change| matches!(change, UniqueChange::Claim { key: k } if *k == key))
        })
        .unwrap_or(0);
    let field = match key.split_once('#') {
        Some((name @ ("email" | "username" | "slug"), _)) => format!("data.{name}"),
        _ => "data".to_owned(),
    };
    PostError::Taken { index, field, key }
}
