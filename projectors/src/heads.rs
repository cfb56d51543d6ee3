//! How far each projection has got: the item `head#<projection>` in the base checkpoints
//! table holds the `recordedAt` of the newest event the projection has applied and when
//! (`appliedAt`, ms). It moves forward once per SQS batch (one conditional `UpdateItem`, a
//! write unit on AWS), never back: delivery order is not log order.
//!
//! `replay status` turns it into the projection's lag: 0 when the projector's queue holds
//! nothing, else how old the newest applied event is. Every queued event recorded after that
//! one has waited less than that; one delivered out of order, recorded before it, may have
//! waited longer.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use common::projections::Projection;

use common::clock::now_ms;

pub const RECORDED_AT: &str = "recordedAt";
pub const APPLIED_AT: &str = "appliedAt";

/// A projection's head item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// `recordedAt` of the newest event applied (ISO 8601, milliseconds).
    pub recorded_at: String,
    /// When it moved there, ms since the epoch.
    pub applied_at_ms: u64,
}

/// The key of `projection`'s head item.
pub fn key(projection: Projection) -> String {
    format!("head#{}", projection.name())
}

/// Moves `projection`'s head to `recorded_at` unless it is there or further already. Best
/// effort: a failure is logged.
pub async fn advance(client: &Client, table: &str, projection: Projection, recorded_at: &str) {
    let written = client
        .update_item()
        .table_name(table)
        .key(schema::checkpoints::PK, AttributeValue::S(key(projection)))
        .update_expression("SET #r = :r, #a = :a")
        .condition_expression("attribute_not_exists(#r) OR #r < :r")
        .expression_attribute_names("#r", RECORDED_AT)
        .expression_attribute_names("#a", APPLIED_AT)
        .expression_attribute_values(":r", AttributeValue::S(recorded_at.to_owned()))
        .expression_attribute_values(":a", AttributeValue::N(now_ms().to_string()))
        .send()
        .await;
    match written {
        Err(error) if error.code() != Some("ConditionalCheckFailedException") => {
            tracing::warn!(
                projection = projection.name(),
                error = %common::error::one_line(&error),
                "could not move the projection's head"
            );
        }
        _ => {}
    }
}

/// `projection`'s head, if it has applied anything.
pub async fn read(
    client: &Client,
    table: &str,
    projection: Projection,
) -> Result<Option<Head>, String> {
    let item = client
        .get_item()
        .table_name(table)
        .key(schema::checkpoints::PK, AttributeValue::S(key(projection)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| common::error::one_line(&e))?
        .item;
    Ok(item.and_then(|item| {
        Some(Head {
            recorded_at: item.get(RECORDED_AT)?.as_s().ok()?.clone(),
            applied_at_ms: events::views::number(&item, APPLIED_AT)?,
        })
    }))
}
