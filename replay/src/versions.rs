//! The resources of one projection version (its tables, checkpoints table or search index): created for a rebuild, listed by `status`, dropped by `remove`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use common::projections::Projection;
use events::views::checkpoints;
use schema::TableDef;

use crate::progress::format_count;
use crate::progress_item::ProgressItem;
use crate::{registry, store_error, Replay, ReplayError};

/// `projection`'s own tables at `version`, each with its definition, in the order of
/// [`Projection::tables`]; without the checkpoints table.
pub fn own_tables(
    replay: &Replay,
    projection: Projection,
    version: u32,
) -> Vec<(String, &'static TableDef)> {
    let defs: &[&'static TableDef] = match projection {
        Projection::Users => &[&schema::users::TABLE, &schema::follows::TABLE],
        Projection::Articles => &[
            &schema::articles::TABLE,
            &schema::article_bodies::TABLE,
            &schema::comments::TABLE,
            &schema::favorites::TABLE,
        ],
        Projection::Feed => &[
            &schema::feeds::TABLE,
            &schema::feed_articles::TABLE,
            &schema::feed_followers::TABLE,
        ],
        Projection::Search => &[],
    };
    projection
        .tables(&replay.tables(projection, version))
        .into_iter()
        .zip(defs.iter().copied())
        .collect()
}

/// Whether `key` (of a checkpoints table) is a checkpoint of `projection`'s streams: a
/// lease or the registry are not.
pub fn is_checkpoint_of(projection: Projection, key: &str) -> bool {
    key.strip_prefix(projection.name())
        .and_then(|rest| rest.strip_prefix('#'))
        .is_some_and(|stream| !stream.starts_with("lease#"))
}

/// Creates version `version` of `projection` (tables, checkpoints table, search index) if
/// missing, and waits until it can be written.
pub async fn create(
    replay: &Replay,
    projection: Projection,
    version: u32,
) -> Result<(), ReplayError> {
    let mut tables = own_tables(replay, projection, version);
    if version > 1 {
        tables.push((
            replay.tables(projection, version).checkpoints,
            &schema::checkpoints::TABLE,
        ));
    }
    futures::future::try_join_all(tables.iter().map(|(name, def)| async move {
        common::tables::ensure(&replay.client, name, def)
            .await
            .map_err(|e| ReplayError::Store(format!("creating table {name}: {e:#}")))
    }))
    .await?;
    if projection == Projection::Search {
        replay.search.index(version).await?;
    }
    Ok(())
}

/// Empties version `version` of `projection`, which is being built: its tables and checkpoints
/// table are dropped and created again (faster and cheaper than deleting item by item). The
/// search index is left as it is: a bulk full pass writes every article again.
pub async fn truncate(
    replay: &Replay,
    projection: Projection,
    version: u32,
) -> Result<(), ReplayError> {
    if version <= 1 {
        return Err(ReplayError::Refused(format!(
            "{projection} version {version} shares the base checkpoints table: it is never emptied"
        )));
    }
    let mut tables: Vec<String> = own_tables(replay, projection, version)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    tables.push(replay.tables(projection, version).checkpoints);
    for name in &tables {
        common::tables::delete(&replay.client, name)
            .await
            .map_err(|e| ReplayError::Store(format!("{e:#}")))?;
        common::tables::wait_deleted(&replay.client, name)
            .await
            .map_err(|e| ReplayError::Store(format!("{e:#}")))?;
    }
    create(replay, projection, version).await
}

/// Deletes version `version` of `projection` and forgets it; refused for the active version
/// and the one being built.
pub async fn remove(
    replay: &Replay,
    projection: Projection,
    version: u32,
) -> Result<Vec<String>, ReplayError> {
    let state = registry::read(replay, projection).await?.state;
    if version == state.active {
        return Err(ReplayError::Refused(format!(
            "{projection} version {version} is the active version: it cannot be removed"
        )));
    }
    if state.building == Some(version) {
        return Err(ReplayError::Refused(format!(
            "{projection} version {version} is being built: `replay abort {projection}` first"
        )));
    }
    if !state.versions.contains(&version) {
        return Err(ReplayError::Invalid(format!(
            "{projection} has no version {version} (versions: {})",
            list(&state.versions)
        )));
    }
    let mut removed = Vec::new();
    for (name, _) in own_tables(replay, projection, version) {
        if common::tables::delete(&replay.client, &name)
            .await
            .map_err(|e| ReplayError::Store(format!("{e:#}")))?
        {
            removed.push(name);
        }
    }
    let checkpoints_table = replay.tables(projection, version).checkpoints;
    if version > 1 {
        if common::tables::delete(&replay.client, &checkpoints_table)
            .await
            .map_err(|e| ReplayError::Store(format!("{e:#}")))?
        {
            removed.push(checkpoints_table);
        }
    } else {
        // Version 1 keeps its checkpoints in the base table, beside everybody else's.
        let count = delete_checkpoints(replay, projection, &checkpoints_table).await?;
        removed.push(format!(
            "{} checkpoints of {projection} in {checkpoints_table}",
            format_count(count)
        ));
    }
    if projection == Projection::Search {
        replay.search.remove(version).await?;
        removed.push(replay.search.config(version).index);
    }
    ProgressItem::delete(replay, projection, version).await?;
    registry::forget(replay, projection, version).await?;
    Ok(removed)
}

/// Deletes `projection`'s checkpoint items (and leases) from `table`; how many.
async fn delete_checkpoints(
    replay: &Replay,
    projection: Projection,
    table: &str,
) -> Result<u64, ReplayError> {
    let prefix = format!("{}#", projection.name());
    let mut pages = replay
        .client
        .scan()
        .table_name(table)
        .projection_expression("#pk")
        .filter_expression("begins_with(#pk, :prefix)")
        .expression_attribute_names("#pk", checkpoints::PK)
        .expression_attribute_values(":prefix", AttributeValue::S(prefix))
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(store_error("scanning checkpoints"))?;
        let requests: Vec<WriteRequest> = page
            .items()
            .iter()
            .filter_map(|item| {
                DeleteRequest::builder()
                    .set_key(Some(item.clone()))
                    .build()
                    .ok()
                    .map(|delete| WriteRequest::builder().delete_request(delete).build())
            })
            .collect();
        count += requests.len() as u64;
        for chunk in requests.chunks(projectors::batch::BATCH_WRITE_LIMIT) {
            projectors::batch::write(
                &replay.client,
                HashMap::from([(table.to_owned(), chunk.to_vec())]),
            )
            .await?;
        }
    }
    Ok(count)
}

fn list(versions: &[u32]) -> String {
    versions
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line per projection (registry) and one per rebuild it remembers.
pub async fn status(replay: &Replay) -> Result<String, ReplayError> {
    let mut out = String::new();
    for projection in Projection::ALL {
        let registry = registry::read(replay, projection).await?;
        let state = &registry.state;
        out.push_str(&format!(
            "{:<9} active v{}  versions {}  building {}  frozen {}\n",
            projection.name(),
            state.active,
            list(&state.versions),
            state
                .building
                .map_or_else(|| "-".to_owned(), |v| format!("v{v}")),
            if registry.frozen_at(common::clock::now_ms()) {
                "yes"
            } else {
                "no"
            },
        ));
        for version in state.versions.iter().copied().filter(|v| *v > 1) {
            if let Some(item) = ProgressItem::read(replay, projection, version).await? {
                out.push_str(&format!(
                    "          rebuild of v{version}: {}\n",
                    item.summary()
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_told_from_leases_and_other_projections() {
        assert!(is_checkpoint_of(Projection::Feed, "feed#User#u1"));
        assert!(!is_checkpoint_of(Projection::Feed, "feed#lease#u1"));
        assert!(!is_checkpoint_of(Projection::Users, "feed#User#u1"));
        assert!(!is_checkpoint_of(Projection::Users, "users"));
        assert!(!is_checkpoint_of(Projection::Users, "projection#users"));
        assert!(is_checkpoint_of(Projection::Search, "search#Article#a1"));
    }
}
