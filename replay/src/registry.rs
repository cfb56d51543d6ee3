//! The write side of the projection registry (`projection#<name>` in the base checkpoints table): allocating, freezing, switching and forgetting versions, each one conditional update.

use aws_sdk_dynamodb::types::AttributeValue;
use common::projections::{registry, Projection};
use projectors::versions::{read_registry, Registry, FROZEN_UNTIL};

use crate::{store_error, Replay, ReplayError};
use events::views::n;

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(error: &E) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

/// The registry item of `projection`.
pub async fn read(replay: &Replay, projection: Projection) -> Result<Registry, ReplayError> {
    Ok(read_registry(&replay.client, &replay.base.checkpoints, projection).await?)
}

impl Replay {
    /// An update of the registry item; `names` are the `#name`s its expressions use (DynamoDB
    /// refuses unused ones).
    fn registry_update(
        &self,
        projection: Projection,
        names: &[&str],
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.base.checkpoints)
            .key("pk", AttributeValue::S(projection.registry_key()));
        for name in names {
            let attribute = match *name {
                "#active" => registry::ACTIVE,
                "#building" => registry::BUILDING,
                "#frozen" => registry::FROZEN,
                "#versions" => registry::VERSIONS,
                _ => FROZEN_UNTIL,
            };
            update = update.expression_attribute_names(*name, attribute);
        }
        update
    }
}

/// Allocates the next version of `projection` for a rebuild: `building = max(versions) + 1`.
/// Returns it and the active version. Fails if a rebuild is in progress.
pub async fn allocate(replay: &Replay, projection: Projection) -> Result<(u32, u32), ReplayError> {
    let current = read(replay, projection).await?;
    if let Some(building) = current.state.building {
        return Err(busy(projection, building));
    }
    let active = current.state.active;
    let version = current.state.versions.iter().copied().max().unwrap_or(1) + 1;
    let result = replay
        .registry_update(
            projection,
            &["#active", "#building", "#frozen", "#versions"],
        )
        .update_expression(
            "SET #active = if_not_exists(#active, :active), #building = :n, #frozen = :false \
             ADD #versions :both",
        )
        .condition_expression(
            "attribute_not_exists(#building) AND \
             (attribute_not_exists(#versions) OR NOT contains(#versions, :n))",
        )
        .expression_attribute_values(":active", n(active))
        .expression_attribute_values(":n", n(version))
        .expression_attribute_values(":false", AttributeValue::Bool(false))
        .expression_attribute_values(
            ":both",
            AttributeValue::Ns(vec![active.to_string(), version.to_string()]),
        )
        .send()
        .await;
    match result {
        Ok(_) => Ok((version, active)),
        Err(e) if is_condition_failure(&e) => {
            let now = read(replay, projection).await?;
            Err(match now.state.building {
                Some(building) => busy(projection, building),
                None => ReplayError::Busy(format!(
                    "the registry of {projection} changed while allocating version {version}; try again"
                )),
            })
        }
        Err(e) => Err(store_error("allocating a version")(e)),
    }
}

fn busy(projection: Projection, building: u32) -> ReplayError {
    ReplayError::Busy(format!(
        "a rebuild of {projection} into version {building} is in progress: continue it with \
         `replay rebuild {projection} --resume`, or give it up with `replay abort {projection}`"
    ))
}

/// Freezes the live projector of `projection` until `until_ms` (Unix ms), only while
/// `version` is being built; with `extend`, only a freeze still in place is extended (one
/// ended meanwhile stays ended).
pub async fn freeze(
    replay: &Replay,
    projection: Projection,
    version: u32,
    until_ms: u64,
    extend: bool,
) -> Result<(), ReplayError> {
    let result = replay
        .registry_update(projection, &["#building", "#frozen", "#until"])
        .update_expression("SET #frozen = :true, #until = :until")
        .condition_expression(if extend {
            "#building = :n AND #frozen = :true"
        } else {
            "#building = :n"
        })
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .expression_attribute_values(":until", n(until_ms))
        .expression_attribute_values(":n", n(version))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_condition_failure(&e) => Err(ReplayError::Busy(format!(
            "{projection}: version {version} is no longer being built (aborted?)"
        ))),
        Err(e) => Err(store_error("freezing the projection")(e)),
    }
}

/// Ends the freeze without switching (the rebuild failed); nothing if not frozen by it.
pub async fn unfreeze(
    replay: &Replay,
    projection: Projection,
    version: u32,
) -> Result<(), ReplayError> {
    let result = replay
        .registry_update(projection, &["#building", "#frozen", "#until"])
        .update_expression("SET #frozen = :false REMOVE #until")
        .condition_expression("#building = :n")
        .expression_attribute_values(":false", AttributeValue::Bool(false))
        .expression_attribute_values(":n", n(version))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_condition_failure(&e) => Ok(()),
        Err(e) => Err(store_error("unfreezing the projection")(e)),
    }
}

/// Makes `version` active and ends the build and the freeze, in one update that requires the
/// freeze to hold past `deadline_ms` (a freeze that lapsed let the live projector write the
/// old version meanwhile: the build must catch up again).
pub async fn switch(
    replay: &Replay,
    projection: Projection,
    version: u32,
    deadline_ms: u64,
) -> Result<(), ReplayError> {
    let result = replay
        .registry_update(projection, &["#active", "#building", "#frozen", "#until"])
        .update_expression("SET #active = :n, #frozen = :false REMOVE #building, #until")
        .condition_expression("#building = :n AND #frozen = :true AND #until > :deadline")
        .expression_attribute_values(":n", n(version))
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .expression_attribute_values(":false", AttributeValue::Bool(false))
        .expression_attribute_values(":deadline", n(deadline_ms))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_condition_failure(&e) => Err(ReplayError::Busy(format!(
            "{projection}: the switch to version {version} was refused: the freeze lapsed or the \
             build was aborted; `replay rebuild {projection} --resume` catches up again"
        ))),
        Err(e) => Err(store_error("switching versions")(e)),
    }
}

/// Gives up the build in progress (its tables stay, listed in `versions`, for `remove`).
/// Returns the version given up, if any.
pub async fn abort(replay: &Replay, projection: Projection) -> Result<Option<u32>, ReplayError> {
    let current = read(replay, projection).await?;
    let Some(version) = current.state.building else {
        return Ok(None);
    };
    let result = replay
        .registry_update(projection, &["#building", "#frozen", "#until"])
        .update_expression("SET #frozen = :false REMOVE #building, #until")
        .condition_expression("#building = :n")
        .expression_attribute_values(":false", AttributeValue::Bool(false))
        .expression_attribute_values(":n", n(version))
        .send()
        .await;
    match result {
        Ok(_) => Ok(Some(version)),
        Err(e) if is_condition_failure(&e) => Ok(None),
        Err(e) => Err(store_error("aborting the build")(e)),
    }
}

/// Drops `version` from `versions`, unless it became active or is being built meanwhile.
pub async fn forget(
    replay: &Replay,
    projection: Projection,
    version: u32,
) -> Result<(), ReplayError> {
    let result = replay
        .registry_update(projection, &["#active", "#building", "#versions"])
        .update_expression("DELETE #versions :v")
        .condition_expression(
            "attribute_exists(#active) AND #active <> :n AND \
             (attribute_not_exists(#building) OR #building <> :n)",
        )
        .expression_attribute_values(":v", AttributeValue::Ns(vec![version.to_string()]))
        .expression_attribute_values(":n", n(version))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_condition_failure(&e) => Err(ReplayError::Refused(format!(
            "{projection} version {version} is active or being built"
        ))),
        Err(e) => Err(store_error("updating the registry")(e)),
    }
}
