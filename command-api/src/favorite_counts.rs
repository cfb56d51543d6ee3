//! The `favoritesCount` the write side answers with: its one read of a read model.
//!
//! Why a read model here: no aggregate holds the count. Each (article, user) pair is its own
//! `Favorite` stream, so that users favoring one article at once never contend; summing them
//! is what the articles projector does. Yet the RealWorld response to a favorite must show a
//! count that already includes the caller's own change, which the projector may not have
//! applied yet. So the handler reads the projected count together with how far the projector
//! got in the caller's own favorite stream, and adds what is missing of that one stream.
//! The read is never used to decide anything: commands still take only write-side facts.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Get, TransactGetItem};
use aws_sdk_dynamodb::Client;
use common::config::TableNames;
use common::error::ApiError;
use common::projections::{ActiveVersions, Projection, DEFAULT_VERSION_TTL};
use events::envelope::stream_key;
use events::views::{self, articles, checkpoints, Item};

/// The name the articles projector files its checkpoints under.
const ARTICLES_PROJECTOR: &str = "articles";

/// How often a snapshot read is retried when it collides with a projector's write.
const SNAPSHOT_ATTEMPTS: u32 = 3;

/// What the articles projection holds, read in one snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `favoritesCount` of the article's item (0 before anything was projected).
    pub favorites_count: u64,
    /// The last sequence of the caller's favorite stream counted in it (0 for none).
    pub applied_sequence: u64,
}

/// Whether a favorite stream counts as favoriting once its first `sequence` events are
/// applied. Its events alternate, starting with `ArticleFavorited` (the aggregate emits only
/// on a change), so an odd sequence means favorited.
fn favorited_at(sequence: u64) -> bool {
    sequence % 2 == 1
}

/// The count including the caller's own favorite, which is `favorited` now: the projected
/// count with the caller's stream counted as it is, not as far as the projector got. Equals
/// the projected count when the projector is up to date, adds 1 (or takes 1 away) when the
/// caller's last favorite (or unfavorite) is not applied yet, and stays exact when several
/// are pending or the command appended nothing. Never below 0.
pub fn count_with_own(snapshot: Snapshot, favorited: bool) -> u64 {
    let projected_own = u64::from(favorited_at(snapshot.applied_sequence));
    snapshot
        .favorites_count
        .saturating_add(u64::from(favorited))
        .saturating_sub(projected_own)
}

/// Reads favorite counts from the articles projection.
#[derive(Clone, Debug)]
pub struct FavoriteCounts {
    client: Client,
    /// Which version of the articles projection to read: a replay may switch it.
    active: ActiveVersions,
}

/// A DynamoDB failure, in one line (never the SDK's debug dump, which would reach the log).
fn unavailable<E: std::error::Error>(error: E) -> ApiError {
    ApiError::Unavailable(common::error::one_line(&error))
}

fn get(table: &str, key: &str, value: String) -> Result<TransactGetItem, ApiError> {
    let get = Get::builder()
        .table_name(table)
        .key(key, AttributeValue::S(value))
        .build()
        .map_err(ApiError::internal)?;
    Ok(TransactGetItem::builder().get(get).build())
}

fn favorites_count(item: Option<&Item>) -> u64 {
    item.and_then(|item| views::number(item, articles::FAVORITES_COUNT))
        .unwrap_or(0)
}

impl FavoriteCounts {
    pub fn new(client: Client, tables: &TableNames) -> Self {
        let active = ActiveVersions::new(client.clone(), tables.clone(), DEFAULT_VERSION_TTL);
        Self::with_versions(client, active)
    }

    /// The counts of `active`'s articles version, sharing its cache of the registry with the
    /// rest of the write side.
    pub fn with_versions(client: Client, active: ActiveVersions) -> Self {
        Self { active, client }
    }

    /// The articles table and the articles projector's checkpoints table of the active version.
    async fn tables(&self) -> Result<(String, String), ApiError> {
        let version = self
            .active
            .version(Projection::Articles)
            .await
            .map_err(ApiError::Unavailable)?;
        let tables = self.active.base().at_version(Projection::Articles, version);
        Ok((tables.articles, tables.checkpoints))
    }

    /// The article's projected count and the articles projector's checkpoint of the favorite
    /// stream `favorite_id`, in one `TransactGetItems`: the projector moves both in one
    /// transaction, so they agree.
    #[tracing::instrument(skip(self))]
    pub async fn snapshot(
        &self,
        article_id: &str,
        favorite_id: &str,
    ) -> Result<Snapshot, ApiError> {
        let checkpoint = checkpoints::key(
            ARTICLES_PROJECTOR,
            &stream_key(events::favorite::AGGREGATE_TYPE, favorite_id),
        );
        let (articles_table, checkpoints_table) = self.tables().await?;
        let mut attempt = 1;
        loop {
            let result = self
                .client
                .transact_get_items()
                .transact_items(get(
                    &articles_table,
                    articles::ARTICLE_ID,
                    article_id.to_owned(),
                )?)
                .transact_items(get(
                    &checkpoints_table,
                    checkpoints::PK,
                    checkpoint.clone(),
                )?)
                .send()
                .await;
            match result {
                Ok(output) => {
                    let item = |i: usize| output.responses().get(i).and_then(|r| r.item());
                    return Ok(Snapshot {
                        favorites_count: favorites_count(item(0)),
                        applied_sequence: item(1)
                            .and_then(|item| views::number(item, checkpoints::LAST_SEQ))
                            .unwrap_or(0),
                    });
                }
                Err(error) if attempt < SNAPSHOT_ATTEMPTS && collided(&error) => {
                    tracing::debug!(attempt, "snapshot read met a write in flight; retrying");
                    tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                    attempt += 1;
                }
                Err(error) => return Err(unavailable(error)),
            }
        }
    }

    /// The article's projected count, for responses that changed no favorite.
    #[tracing::instrument(skip(self))]
    pub async fn projected(&self, article_id: &str) -> Result<u64, ApiError> {
        let (articles_table, _) = self.tables().await?;
        let output = self
            .client
            .get_item()
            .table_name(&articles_table)
            .key(
                articles::ARTICLE_ID,
                AttributeValue::S(article_id.to_owned()),
            )
            .consistent_read(true)
            .projection_expression("#count")
            .expression_attribute_names("#count", articles::FAVORITES_COUNT)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(favorites_count(output.item()))
    }
}

/// A transactional read is cancelled when it meets a transactional write on the same items.
fn collided(error: &SdkError<TransactGetItemsError>) -> bool {
    matches!(
        error.as_service_error(),
        Some(TransactGetItemsError::TransactionCanceledException(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(favorites_count: u64, applied_sequence: u64) -> Snapshot {
        Snapshot {
            favorites_count,
            applied_sequence,
        }
    }

    #[test]
    fn an_applied_change_is_counted_once() {
        // Favorited (sequence 1) and projected: 3 counts the caller already.
        assert_eq!(count_with_own(snapshot(3, 1), true), 3);
        // Unfavorited (sequence 2) and projected.
        assert_eq!(count_with_own(snapshot(2, 2), false), 2);
        // Favorited again (sequence 3) and projected.
        assert_eq!(count_with_own(snapshot(4, 3), true), 4);
    }

    #[test]
    fn a_pending_favorite_adds_one() {
        // First favorite (sequence 1) not projected yet.
        assert_eq!(count_with_own(snapshot(0, 0), true), 1);
        assert_eq!(count_with_own(snapshot(7, 0), true), 8);
        // Favorited again (sequence 3) after an applied unfavorite (2).
        assert_eq!(count_with_own(snapshot(5, 2), true), 6);
    }

    #[test]
    fn a_pending_unfavorite_takes_one_away() {
        // Unfavorited (sequence 2) while the projector counted the favorite (1).
        assert_eq!(count_with_own(snapshot(3, 1), false), 2);
        assert_eq!(count_with_own(snapshot(1, 3), false), 0);
    }

    #[test]
    fn a_command_that_changed_nothing_shows_the_state_it_found() {
        // Already favorited and projected: nothing to add.
        assert_eq!(count_with_own(snapshot(3, 1), true), 3);
        // Never favorited, unfavorite again: nothing to take away.
        assert_eq!(count_with_own(snapshot(3, 0), false), 3);
        // Already favorited a moment ago, not projected yet: the caller still counts.
        assert_eq!(count_with_own(snapshot(3, 0), true), 4);
    }

    #[test]
    fn several_pending_changes_count_only_where_they_ended() {
        // Favorite, unfavorite, favorite (sequence 3), none projected: one, not three.
        assert_eq!(count_with_own(snapshot(2, 0), true), 3);
        // Projected up to the first favorite, then unfavorite and favorite pending.
        assert_eq!(count_with_own(snapshot(2, 1), true), 2);
        // Favorite, unfavorite (sequence 2), none projected: no change.
        assert_eq!(count_with_own(snapshot(2, 0), false), 2);
    }

    #[test]
    fn the_count_never_goes_below_zero() {
        // An inconsistent read (a checkpoint without its count) cannot give a negative count.
        assert_eq!(count_with_own(snapshot(0, 1), false), 0);
        assert_eq!(count_with_own(snapshot(0, u64::MAX), false), 0);
    }

    #[test]
    fn checkpoint_key_names_the_projector_and_the_favorite_stream() {
        assert_eq!(
            checkpoints::key(
                ARTICLES_PROJECTOR,
                &stream_key(events::favorite::AGGREGATE_TYPE, "a1:u1")
            ),
            "articles#Favorite#a1:u1"
        );
    }
}
