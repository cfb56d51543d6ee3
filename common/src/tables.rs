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
