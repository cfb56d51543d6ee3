//! Creating and deleting a DynamoDB table from its definition in [`schema`]: local
//! provisioning makes every table this way, and `replay` makes a projection version's copies
//! (`<prefix>users-v2`) from the same definitions.

use anyhow::{bail, Context as _};
use aws_sdk_dynamodb::types as ddb;
use schema::{AttrType, BillingMode, KeySchema, ProjectionType, StreamViewType, TableDef};

/// The `CreateTable` input's parts for one definition.
fn key_schema_elements(key: &KeySchema) -> anyhow::Result<Vec<ddb::KeySchemaElement>> {
    let mut out = vec![ddb::KeySchemaElement::builder()
        .attribute_name(key.hash.name)
        .key_type(ddb::KeyType::Hash)
        .build()?];
    if let Some(range) = key.range {
        out.push(
            ddb::KeySchemaElement::builder()
                .attribute_name(range.name)
                .key_type(ddb::KeyType::Range)
                .build()?,
        );
    }
    Ok(out)
}

fn scalar_type(ty: AttrType) -> ddb::ScalarAttributeType {
    match ty {
        AttrType::S => ddb::ScalarAttributeType::S,
        AttrType::N => ddb::ScalarAttributeType::N,
        AttrType::B => ddb::ScalarAttributeType::B,
    }
}

async fn describe_table(
    ddb_client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> anyhow::Result<Option<ddb::TableDescription>> {
    match ddb_client.describe_table().table_name(name).send().await {
        Ok(out) => Ok(out.table),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("DescribeTable {name}")),
    }
}

fn is_active(desc: &ddb::TableDescription) -> bool {
    desc.table_status == Some(ddb::TableStatus::Active)
        && desc
            .global_secondary_indexes()
            .iter()
            .all(|g| g.index_status == Some(ddb::IndexStatus::Active))
}

/// Creates the table `name` as `def` defines it (keys, indexes, stream, billing) unless it
/// exists, and waits until it is `ACTIVE`: a projection version's copy of a read model table
/// (`<prefix>users-v2`) is made from the same definition as the original.
pub async fn ensure(
    ddb_client: &aws_sdk_dynamodb::Client,
    name: &str,
    def: &TableDef,
) -> anyhow::Result<ddb::TableDescription> {
    let name = name.to_owned();
    if describe_table(ddb_client, &name).await?.is_none() {
        let mut req = ddb_client
            .create_table()
            .table_name(&name)
            .billing_mode(match def.billing {
                BillingMode::PayPerRequest => ddb::BillingMode::PayPerRequest,
            })
            .set_key_schema(Some(key_schema_elements(&def.key)?));
        for attr in def.key_attributes() {
            req = req.attribute_definitions(
                ddb::AttributeDefinition::builder()
                    .attribute_name(attr.name)
                    .attribute_type(scalar_type(attr.ty))
                    .build()?,
            );
        }
        for gsi in def.gsis {
            req = req.global_secondary_indexes(
                ddb::GlobalSecondaryIndex::builder()
                    .index_name(gsi.name)
                    .set_key_schema(Some(key_schema_elements(&gsi.key)?))
                    .projection(
                        ddb::Projection::builder()
                            .projection_type(match gsi.projection {
                                ProjectionType::All => ddb::ProjectionType::All,
                                ProjectionType::KeysOnly => ddb::ProjectionType::KeysOnly,
                            })
                            .build(),
                    )
                    .build()?,
            );
        }
        if let Some(view) = def.stream {
            req = req.stream_specification(
                ddb::StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(match view {
                        StreamViewType::NewImage => ddb::StreamViewType::NewImage,
                        StreamViewType::NewAndOldImages => ddb::StreamViewType::NewAndOldImages,
                    })
                    .build()?,
            );
        }
        match req.send().await {
            Ok(_) => tracing::info!(table = %name, "created table"),
            // Someone else created it between our DescribeTable and CreateTable.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) => {}
            Err(e) => return Err(e).with_context(|| format!("CreateTable {name}")),
        }
    }
    wait_active(ddb_client, &name).await
}

/// Deletes the table `name`; `false` if there was none.
pub async fn delete(ddb_client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<bool> {
    match ddb_client.delete_table().table_name(name).send().await {
        Ok(_) => {
            tracing::info!(table = %name, "deleted table");
            Ok(true)
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(e).with_context(|| format!("DeleteTable {name}")),
    }
}

/// Waits until table `name` is gone (AWS takes a while to delete one; DynamoDB Local none).
pub async fn wait_deleted(ddb_client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(300);
    let mut delay = std::time::Duration::from_millis(20);
    while describe_table(ddb_client, name).await?.is_some() {
        if tokio::time::Instant::now() >= deadline {
            bail!("table {name} is still being deleted after 5 minutes");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
    }
    Ok(())
}

async fn wait_active(
    ddb_client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> anyhow::Result<ddb::TableDescription> {
    // DynamoDB Local creates tables ACTIVE at once; AWS takes seconds to a minute or so.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(300);
    let mut delay = std::time::Duration::from_millis(20);
    loop {
        match describe_table(ddb_client, name).await? {
            Some(desc) if is_active(&desc) => return Ok(desc),
            _ if tokio::time::Instant::now() >= deadline => {
                bail!("table {name} did not become ACTIVE within 300 s")
            }
            _ => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
        }
    }
}

/// A table's bytes per parallel scan segment that [`segments_for`] aims at: under one scan
/// page (1 MB), so that each segment is read in one request. DynamoDB Local reads a whole
/// segment for every page it returns of it (a scan in one segment reads the whole table for
/// each page): over 100,000 events (42.7 MB), 32 segments of two pages each were read in
/// 2.0–2.8 s, 64 of one page in 1.6–1.7 s, and 128 or more, with more requests, in 1.9–2.2 s.
pub const SEGMENT_BYTES: u64 = 768 * 1024;

/// The fewest segments [`segments_for`] gives: on AWS, where the size it goes by can be
/// hours old, a table that grew since is still read in parallel.
pub const MIN_SEGMENTS: u32 = 8;

/// The most segments [`segments_for`] gives (DynamoDB allows 1,000,000).
pub const MAX_SEGMENTS: u32 = 1000;

/// The most segments DynamoDB allows in one parallel scan: what a rebuild's full pass, whose
/// units are segments, may go up to (one per [`SEGMENT_BYTES`], so that a unit's memory stays
/// the same however large the table).
pub const MAX_TOTAL_SEGMENTS: u32 = 1_000_000;

/// Segments for a rebuild's full pass over a table of `bytes`: one per [`SEGMENT_BYTES`],
/// within [`MIN_SEGMENTS`]..=[`MAX_TOTAL_SEGMENTS`].
pub fn unit_segments_for(bytes: u64) -> u32 {
    bytes
        .div_ceil(SEGMENT_BYTES)
        .clamp(MIN_SEGMENTS.into(), MAX_TOTAL_SEGMENTS.into()) as u32
}

/// Segments read at once by [`each_segment`], however many there are.
pub const SEGMENTS_IN_FLIGHT: usize = 64;

/// The item count and size in bytes of table `name` as DynamoDB last computed them (every six
/// hours or so on AWS); `None` if there is no such table.
pub async fn size(
    ddb_client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> anyhow::Result<Option<(u64, u64)>> {
    Ok(describe_table(ddb_client, name).await?.map(|table| {
        (
            table.item_count.unwrap_or(0).max(0) as u64,
            table.table_size_bytes.unwrap_or(0).max(0) as u64,
        )
    }))
}

/// Parallel scan segments for a table of `bytes`: one per [`SEGMENT_BYTES`], within
/// [`MIN_SEGMENTS`]..=[`MAX_SEGMENTS`].
pub fn segments_for(bytes: u64) -> u32 {
    bytes
        .div_ceil(SEGMENT_BYTES)
        .clamp(MIN_SEGMENTS.into(), MAX_SEGMENTS.into()) as u32
}

/// Parallel scan segments for table `name` as it is now ([`segments_for`] its size; the
/// fewest if it cannot be described).
pub async fn scan_segments(ddb_client: &aws_sdk_dynamodb::Client, name: &str) -> u32 {
    match size(ddb_client, name).await {
        Ok(size) => segments_for(size.map_or(0, |(_, bytes)| bytes)),
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                table = name,
                "scanning with the fewest segments: the table's size is unknown"
            );
            MIN_SEGMENTS
        }
    }
}

/// Runs `read` for each of `segments`, [`SEGMENTS_IN_FLIGHT`] at once; the first error ends
/// it.
pub async fn each_segment<E, F, Fut>(segments: u32, read: F) -> Result<(), E>
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    use futures::stream::{self, StreamExt as _, TryStreamExt as _};
    stream::iter(0..segments)
        .map(read)
        .buffer_unordered(SEGMENTS_IN_FLIGHT)
        .try_collect::<()>()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_read_in_one_page() {
        // The benchmark's 100,000 events: 55 segments of about 776 KB, each under a page.
        assert_eq!(segments_for(42_690_429), 55);
        assert_eq!(segments_for(SEGMENT_BYTES * 20), 20);
        assert_eq!(segments_for(SEGMENT_BYTES * 20 + 1), 21);
        // A small or just created table (size 0 until DynamoDB computes it) is still read in
        // parallel; a huge one has as many segments as allowed.
        assert_eq!(segments_for(0), MIN_SEGMENTS);
        assert_eq!(segments_for(1_000_000), MIN_SEGMENTS);
        assert_eq!(segments_for(4_200_000_000_000), MAX_SEGMENTS);
    }
}
