//! What an event does to a DynamoDB read model, as data: the one definition of a projection that two drivers run, live (the runtime's transaction with the checkpoint, [`crate::runtime`]) and bulk (folded in memory, written in batches, [`crate::bulk`]).
//!
//! A projector turns an event into a [`Plan`] ([`ReadModel::plan`]), reading what it needs
//! through [`State`]: DynamoDB, strongly consistent, when live; the fold's memory in bulk. A
//! plan is a few writes ([`Op`]) in three steps: `first` (written before the fan-outs, outside
//! the transaction, idempotent), `for_each` (one write per item of a partition: a feed's
//! fan-out, a deleted article's purge) and `commit` (written with the checkpoint).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, Put, PutRequest, TransactWriteItem,
    Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use events::views::Item;
use events::StoredEvent;

use crate::runtime::{unavailable, ProjectionError, Projector};

/// The key of one item: its partition key and, for tables that have one, its sort key.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub partition: (&'static str, AttributeValue),
    pub sort: Option<(&'static str, AttributeValue)>,
}

impl Key {
    pub fn new(name: &'static str, value: AttributeValue) -> Self {
        Self {
            partition: (name, value),
            sort: None,
        }
    }

    pub fn with_sort(mut self, name: &'static str, value: AttributeValue) -> Self {
        self.sort = Some((name, value));
        self
    }

    /// The key as DynamoDB takes it.
    pub fn item(&self) -> Item {
        let mut item = HashMap::from([(self.partition.0.to_owned(), self.partition.1.clone())]);
        if let Some((name, value)) = &self.sort {
            item.insert((*name).to_owned(), value.clone());
        }
        item
    }

    /// The key of `item` in a table keyed like `self`.
    pub fn of_item(&self, item: &Item) -> Option<Key> {
        let partition = (self.partition.0, item.get(self.partition.0)?.clone());
        let sort = match &self.sort {
            Some((name, _)) => Some((*name, item.get(*name)?.clone())),
            None => None,
        };
        Some(Key { partition, sort })
    }

    pub(crate) fn memory(&self) -> (String, String) {
        (
            scalar(&self.partition.1),
            self.sort
                .as_ref()
                .map(|(_, value)| scalar(value))
                .unwrap_or_default(),
        )
    }
}

/// A key attribute as text (keys are strings or numbers).
pub(crate) fn scalar(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(text) => format!("S{text}"),
        AttributeValue::N(number) => format!("N{number}"),
        other => format!("{other:?}"),
    }
}

/// A condition on one attribute of the item an [`Op`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Exists(&'static str),
    NotExists(&'static str),
}

impl Condition {
    pub(crate) fn holds(self, item: Option<&Item>) -> bool {
        match self {
            Condition::Exists(name) => item.is_some_and(|item| item.contains_key(name)),
            Condition::NotExists(name) => !item.is_some_and(|item| item.contains_key(name)),
        }
    }

    /// The condition expression, with its one name placeholder `#c`.
    fn expression(self) -> (&'static str, &'static str) {
        match self {
            Condition::Exists(name) => ("attribute_exists(#c)", name),
            Condition::NotExists(name) => ("attribute_not_exists(#c)", name),
        }
    }
}

/// One write to one item.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The whole item: its key and attributes (see [`Op::put`]).
    Put {
        table: String,
        key: Key,
        item: Item,
    },
    /// Sets, removes and adds to attributes of the item, creating it if absent, if the
    /// condition holds.
    Update {
        table: String,
        key: Key,
        set: Vec<(&'static str, AttributeValue)>,
        remove: Vec<&'static str>,
        add: Option<(&'static str, i64)>,
        condition: Option<Condition>,
    },
    Delete {
        table: String,
        key: Key,
    },
    /// Writes nothing; fails the event's writes unless the condition holds.
    Check {
        table: String,
        key: Key,
        condition: Condition,
    },
}

/// Turns a visited item into its write, or skips it.
pub type ItemWrite = Box<dyn Fn(&Item) -> Option<Op> + Send + Sync>;

/// One write per item of a partition (a fan-out, a purge): `write` turns an item into its
/// write, or skips it.
pub struct ForEach {
    pub table: String,
    /// The partition key's name and value: every item with it is visited.
    pub partition: (&'static str, AttributeValue),
    /// The key shape of the visited table (values are ignored), to find the items' keys.
    pub key: Key,
    pub write: ItemWrite,
}

impl std::fmt::Debug for ForEach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForEach")
            .field("table", &self.table)
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

/// What one event does to a read model (see the module documentation).
#[derive(Debug, Default)]
pub struct Plan {
    pub first: Vec<Op>,
    pub for_each: Vec<ForEach>,
    pub commit: Vec<Op>,
}

impl Plan {
    /// A plan that only commits `ops`.
    pub fn commit(ops: Vec<Op>) -> Self {
        Self {
            commit: ops,
            ..Self::default()
        }
    }
}

/// What a plan may read of the read model before it decides.
pub trait State: Sync {
    /// The item at `key` of `table`, as it is now.
    fn get(
        &self,
        table: &str,
        key: &Key,
    ) -> impl Future<Output = Result<Option<Item>, ProjectionError>> + Send;
}

/// A read model whose effects are plans over DynamoDB tables: driven live by
/// [`crate::ProjectorRuntime`] and in bulk by [`crate::bulk::UnitFold`].
pub trait ReadModel: Projector {
    /// What `event` does, given the read model as `state` holds it.
    fn plan<S: State>(
        &self,
        event: &StoredEvent,
        state: &S,
    ) -> impl Future<Output = Result<Plan, ProjectionError>> + Send;
}

/// The read model in DynamoDB, read strongly consistent: the live [`State`].
#[derive(Clone, Debug)]
pub struct Live<'a>(pub &'a Client);

impl State for Live<'_> {
    async fn get(&self, table: &str, key: &Key) -> Result<Option<Item>, ProjectionError> {
        let output = self
            .0
            .get_item()
            .table_name(table)
            .set_key(Some(key.item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item().cloned())
    }
}

fn build_error<E: std::fmt::Debug>(error: E) -> ProjectionError {
    ProjectionError::Unavailable(format!("request could not be built: {error:?}"))
}

/// An update's expressions: update, condition, names, values.
struct Expressions {
    update: String,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

fn expressions(
    set: &[(&'static str, AttributeValue)],
    remove: &[&'static str],
    add: Option<(&'static str, i64)>,
    condition: Option<Condition>,
) -> Expressions {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut clauses = Vec::new();
    if !set.is_empty() {
        let assignments: Vec<String> = set
            .iter()
            .enumerate()
            .map(|(i, (name, value))| {
                names.insert(format!("#s{i}"), (*name).to_owned());
                values.insert(format!(":s{i}"), value.clone());
                format!("#s{i} = :s{i}")
            })
            .collect();
        clauses.push(format!("SET {}", assignments.join(", ")));
    }
    if !remove.is_empty() {
        let removed: Vec<String> = remove
            .iter()
            .enumerate()
            .map(|(i, name)| {
                names.insert(format!("#r{i}"), (*name).to_owned());
                format!("#r{i}")
            })
            .collect();
        clauses.push(format!("REMOVE {}", removed.join(", ")));
    }
    if let Some((name, by)) = add {
        names.insert("#a".to_owned(), name.to_owned());
        values.insert(":a".to_owned(), AttributeValue::N(by.to_string()));
        clauses.push("ADD #a :a".to_owned());
    }
    let condition = condition.map(|condition| {
        let (expression, name) = condition.expression();
        names.insert("#c".to_owned(), name.to_owned());
        expression.to_owned()
    });
    Expressions {
        update: clauses.join(" "),
        condition,
        names,
        values,
    }
}

impl Op {
    /// Puts the item made of `key` and `fields`.
    pub fn put(table: &str, key: Key, fields: Vec<(&'static str, AttributeValue)>) -> Op {
        let mut item = key.item();
        item.extend(
            fields
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        );
        Op::Put {
            table: table.to_owned(),
            key,
            item,
        }
    }

    /// The table the op writes (or checks).
    pub fn table(&self) -> &str {
        match self {
            Op::Put { table, .. }
            | Op::Update { table, .. }
            | Op::Delete { table, .. }
            | Op::Check { table, .. } => table,
        }
    }

    /// The op as an action of the live transaction.
    pub fn transact(&self) -> Result<TransactWriteItem, ProjectionError> {
        let action = TransactWriteItem::builder();
        Ok(match self {
            Op::Put { table, item, .. } => action
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(item.clone()))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
            Op::Update {
                table,
                key,
                set,
                remove,
                add,
                condition,
            } => {
                let e = expressions(set, remove, *add, *condition);
                let update = Update::builder()
                    .table_name(table)
                    .set_key(Some(key.item()))
                    .update_expression(e.update)
                    .set_condition_expression(e.condition)
                    .set_expression_attribute_names(Some(e.names))
                    .set_expression_attribute_values((!e.values.is_empty()).then_some(e.values))
                    .build()
                    .map_err(build_error)?;
                action.update(update).build()
            }
            Op::Delete { table, key } => action
                .delete(
                    Delete::builder()
                        .table_name(table)
                        .set_key(Some(key.item()))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
            Op::Check {
                table,
                key,
                condition,
            } => {
                let (expression, name) = condition.expression();
                let check = ConditionCheck::builder()
                    .table_name(table)
                    .set_key(Some(key.item()))
                    .condition_expression(expression)
                    .expression_attribute_names("#c", name)
                    .build()
                    .map_err(build_error)?;
                action.condition_check(check).build()
            }
        })
    }

    /// The op as a `BatchWriteItem` request, for the plain puts and deletes of a fan-out.
    fn batch_request(&self) -> Result<(String, WriteRequest), ProjectionError> {
        match self {
            Op::Put { table, item, .. } => {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .map_err(build_error)?;
                Ok((
                    table.clone(),
                    WriteRequest::builder().put_request(put).build(),
                ))
            }
            Op::Delete { table, key } => {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key.item()))
                    .build()
                    .map_err(build_error)?;
                Ok((
                    table.clone(),
                    WriteRequest::builder().delete_request(delete).build(),
                ))
            }
            other => Err(ProjectionError::Unavailable(format!(
                "only puts and deletes can be batched: {other:?}"
            ))),
        }
    }

    /// Writes the op alone, now (a `first` step of a live plan).
    pub async fn send(&self, client: &Client) -> Result<(), ProjectionError> {
        match self {
            Op::Put { table, item, .. } => {
                client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item.clone()))
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
            Op::Update {
                table,
                key,
                set,
                remove,
                add,
                condition,
            } => {
                let e = expressions(set, remove, *add, *condition);
                client
                    .update_item()
                    .table_name(table)
                    .set_key(Some(key.item()))
                    .update_expression(e.update)
                    .set_condition_expression(e.condition)
                    .set_expression_attribute_names(Some(e.names))
                    .set_expression_attribute_values((!e.values.is_empty()).then_some(e.values))
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
            Op::Delete { table, key } => {
                client
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(key.item()))
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
            Op::Check { .. } => {}
        }
        Ok(())
    }
}

/// How a live [`ForEach`] ended.
#[derive(Debug)]
pub enum Visited {
    /// Every item was visited; this many writes were made.
    Done(usize),
    /// The budget ran out: this many writes were made, and the visit goes on after `cursor`.
    Paused { written: usize, cursor: Item },
}

/// Live: visits the partition of `job` page by page (`page_size` items a `Query`,
/// strongly consistent, from `resume`), writing each page's writes with `BatchWriteItem`
/// (`concurrent_batches` requests in flight). With a `budget`, pauses after the page during
/// which it ran out.
pub async fn visit(
    client: &Client,
    job: &ForEach,
    page_size: i32,
    concurrent_batches: usize,
    resume: Option<Item>,
    budget: Option<std::time::Duration>,
) -> Result<Visited, ProjectionError> {
    let started = std::time::Instant::now();
    let mut cursor = resume;
    let mut written = 0;
    loop {
        let page = client
            .query()
            .table_name(&job.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", job.partition.0)
            .expression_attribute_values(":pk", job.partition.1.clone())
            .limit(page_size)
            .set_exclusive_start_key(cursor.take())
            .send()
            .await
            .map_err(unavailable)?;
        let mut requests: BTreeMap<String, Vec<WriteRequest>> = BTreeMap::new();
        for op in page.items().iter().filter_map(|item| (job.write)(item)) {
            let (table, request) = op.batch_request()?;
            requests.entry(table).or_default().push(request);
            written += 1;
        }
        for (table, requests) in requests {
            crate::batch::write_all(client, &table, requests, concurrent_batches).await?;
        }
        let Some(next) = page.last_evaluated_key().cloned() else {
            return Ok(Visited::Done(written));
        };
        if budget.is_some_and(|budget| started.elapsed() >= budget) {
            return Ok(Visited::Paused {
                written,
                cursor: next,
            });
        }
        cursor = Some(next);
    }
}

/// A condition that does not hold in bulk: an error of the event, as it is live.
pub(crate) fn failed(table: &str, condition: Condition) -> ProjectionError {
    ProjectionError::Unavailable(format!(
        "the condition {condition:?} does not hold on an item of {table}"
    ))
}

/// Tables held in memory: the bulk [`State`], and what [`Op`]s change there.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    tables: HashMap<String, BTreeMap<(String, String), Item>>,
}

impl State for Memory {
    async fn get(&self, table: &str, key: &Key) -> Result<Option<Item>, ProjectionError> {
        Ok(self.item(table, key).cloned())
    }
}

impl Memory {
    pub fn item(&self, table: &str, key: &Key) -> Option<&Item> {
        self.tables.get(table)?.get(&key.memory())
    }

    /// Every table with its items.
    pub fn tables(&self) -> impl Iterator<Item = (&String, impl Iterator<Item = &Item>)> {
        self.tables
            .iter()
            .map(|(name, items)| (name, items.values()))
    }

    /// Items in every table.
    pub fn len(&self) -> usize {
        self.tables.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies `op` as DynamoDB would; a condition that does not hold is an error of the
    /// event, as it is live.
    pub fn apply(&mut self, op: &Op) -> Result<(), ProjectionError> {
        match op {
            Op::Put { table, key, item } => {
                self.tables
                    .entry(table.clone())
                    .or_default()
                    .insert(key.memory(), item.clone());
            }
            Op::Update {
                table,
                key,
                set,
                remove,
                add,
                condition,
            } => {
                let items = self.tables.entry(table.clone()).or_default();
                let slot = key.memory();
                if let Some(condition) = condition {
                    if !condition.holds(items.get(&slot)) {
                        return Err(failed(table, *condition));
                    }
                }
                let item = items.entry(slot).or_insert_with(|| key.item());
                for (name, value) in set {
                    item.insert((*name).to_owned(), value.clone());
                }
                for name in remove {
                    item.remove(*name);
                }
                if let Some((name, by)) = add {
                    let now: i64 = item
                        .get(*name)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    item.insert(
                        (*name).to_owned(),
                        AttributeValue::N((now + by).to_string()),
                    );
                }
            }
            Op::Delete { table, key } => {
                if let Some(items) = self.tables.get_mut(table) {
                    items.remove(&key.memory());
                }
            }
            Op::Check {
                table,
                key,
                condition,
            } => {
                if !condition.holds(self.item(table, key)) {
                    return Err(failed(table, *condition));
                }
            }
        }
        Ok(())
    }

    /// Applies a plan: `first`, then every write of each `for_each`, then `commit`.
    pub fn apply_plan(&mut self, plan: &Plan) -> Result<(), ProjectionError> {
        for op in &plan.first {
            self.apply(op)?;
        }
        for job in &plan.for_each {
            let writes: Vec<Op> = self
                .partition(&job.table, &job.partition.1)
                .filter_map(|item| (job.write)(item))
                .collect();
            for op in &writes {
                self.apply(op)?;
            }
        }
        for op in &plan.commit {
            self.apply(op)?;
        }
        Ok(())
    }

    /// The items of `table` whose partition key is `value`.
    pub(crate) fn partition<'a>(
        &'a self,
        table: &str,
        value: &AttributeValue,
    ) -> impl Iterator<Item = &'a Item> + 'a {
        let partition = scalar(value);
        self.tables.get(table).into_iter().flat_map(move |items| {
            items
                .range((partition.clone(), String::new())..)
                .take_while({
                    let partition = partition.clone();
                    move |((p, _), _)| *p == partition
                })
                .map(|(_, item)| item)
        })
    }
}

impl ForEach {
    /// The key of a visited item.
    pub fn key_of(&self, item: &Item) -> Option<Key> {
        self.key.of_item(item)
    }
}

/// Live, without leases or budgets: reads through DynamoDB, writes the plan's `first` and
/// `for_each` now, and returns its `commit` as the actions of the runtime's transaction.
pub async fn live_effects<P: ReadModel>(
    projector: &P,
    client: &Client,
    event: &StoredEvent,
) -> Result<Vec<TransactWriteItem>, ProjectionError> {
    let plan = projector.plan(event, &Live(client)).await?;
    for op in &plan.first {
        op.send(client).await?;
    }
    for job in &plan.for_each {
        visit(client, job, LIVE_PAGE, LIVE_BATCHES, None, None).await?;
    }
    plan.commit.iter().map(Op::transact).collect()
}

/// Items a live [`ForEach`] reads per `Query` page, and its `BatchWriteItem`s in flight.
const LIVE_PAGE: i32 = 1000;
const LIVE_BATCHES: usize = 4;
