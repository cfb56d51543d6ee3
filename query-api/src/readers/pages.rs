//! Pages of one read-model table in its key order, and single items by key: what the projected
//! views read (`Scan` of a whole table, `Query` of one partition, `GetItem`).

use aws_sdk_dynamodb::types::AttributeValue;
use common::error::ApiError;
use events::views::Item;

use super::{unavailable, Readers};

/// Most requests one page takes. A filter can drop every item a request read (a run of article
/// tombstones): the page then ends short, with its cursor, instead of reading on.
pub const MAX_REQUESTS_PER_PAGE: usize = 8;

/// Which items a page reads.
#[derive(Clone, Debug, PartialEq)]
pub struct PageQuery<'a> {
    pub table: &'a str,
    /// Only this partition (attribute, value), with a `Query`; `None` scans the whole table.
    pub partition: Option<(&'a str, AttributeValue)>,
    /// `false` reads the partition from its last sort key down (ignored by a `Scan`).
    pub forward: bool,
    /// The key of the item the previous page ended with (exclusive).
    pub after: Option<Item>,
    /// Most items kept.
    pub limit: usize,
    /// Strongly consistent reads (after a read-your-writes wait).
    pub consistent: bool,
}

/// The items of one page, and the key to continue after (`None`: the end).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Item>,
}

impl Readers {
    /// Up to `query.limit` items that `keep` accepts. Each request asks for as many items as the
    /// page still lacks, so the page ends exactly at the last item read and `next` is that
    /// item's key: no item is skipped or repeated from one page to the next. A page may still
    /// be short, even empty, with a `next` (DynamoDB does not always know the end was reached).
    #[tracing::instrument(skip(self, keep), fields(table = query.table, limit = query.limit))]
    pub async fn page(
        &self,
        query: &PageQuery<'_>,
        keep: impl Fn(&Item) -> bool,
    ) -> Result<Page, ApiError> {
        let mut items = Vec::new();
        let mut start = query.after.clone();
        for _ in 0..MAX_REQUESTS_PER_PAGE {
            let wanted =
                i32::try_from(query.limit.saturating_sub(items.len()).max(1)).unwrap_or(i32::MAX);
            let (read, last) = match &query.partition {
                None => {
                    let output = self
                        .client
                        .scan()
                        .table_name(query.table)
                        .limit(wanted)
                        .consistent_read(query.consistent)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(unavailable)?;
                    (output.items, output.last_evaluated_key)
                }
                Some((name, value)) => {
                    let output = self
                        .client
                        .query()
                        .table_name(query.table)
                        .key_condition_expression("#p = :p")
                        .expression_attribute_names("#p", *name)
                        .expression_attribute_values(":p", value.clone())
                        .scan_index_forward(query.forward)
                        .limit(wanted)
                        .consistent_read(query.consistent)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(unavailable)?;
                    (output.items, output.last_evaluated_key)
                }
            };
            items.extend(
                read.unwrap_or_default()
                    .into_iter()
                    .filter(|item| keep(item)),
            );
            match last {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(Page { items, next: None }),
            }
            if items.len() >= query.limit {
                break;
            }
        }
        Ok(Page { items, next: start })
    }

    /// One item by its full key.
    #[tracing::instrument(skip(self, key))]
    pub async fn item(
        &self,
        table: &str,
        key: Item,
        consistent: bool,
    ) -> Result<Option<Item>, ApiError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item)
    }
}
