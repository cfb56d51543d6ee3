//! The one definition of every AWS resource of Conduit-ES: tables, the topic, the projector
//! queues with their dead-letter queues and subscriptions, and the settings of the event
//! source mappings.
//!
//! Everything here is plain data (`const`s of simple structs) so that the deployment template
//! can be generated from it and the local stack can provision exactly the same thing with
//! [`provision`]. Physical names are `{prefix}{name}`, e.g. `conduit-events`; see [`Names`].

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context as _};
use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::types as ddb;
use aws_sdk_sqs::types::QueueAttributeName;
use common::aws::Clients;

// ---------------------------------------------------------------------------------------------
// Declarations
// ---------------------------------------------------------------------------------------------

/// The DynamoDB scalar type of a key attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrType {
    /// String (`S`).
    S,
    /// Number (`N`).
    N,
    /// Binary (`B`).
    B,
}

impl AttrType {
    /// The CloudFormation / DynamoDB spelling: `S`, `N` or `B`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AttrType::S => "S",
            AttrType::N => "N",
            AttrType::B => "B",
        }
    }
}

/// One key attribute: its name and scalar type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAttr {
    /// Attribute name, e.g. `pk`.
    pub name: &'static str,
    /// Scalar type of the attribute.
    pub ty: AttrType,
}

/// A primary key or index key: a hash (partition) key and an optional range (sort) key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySchema {
    /// The partition key.
    pub hash: KeyAttr,
    /// The sort key, if any.
    pub range: Option<KeyAttr>,
}

/// What a global secondary index projects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectionType {
    /// Every attribute (`ALL`).
    All,
    /// Only the table and index keys (`KEYS_ONLY`).
    KeysOnly,
}

impl ProjectionType {
    /// The CloudFormation / DynamoDB spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProjectionType::All => "ALL",
            ProjectionType::KeysOnly => "KEYS_ONLY",
        }
    }
}

/// A global secondary index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GsiDef {
    /// Index name (not prefixed), e.g. `byUsername`.
    pub name: &'static str,
    /// The index key.
    pub key: KeySchema,
    /// What the index projects.
    pub projection: ProjectionType,
}

/// What a DynamoDB stream record carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamViewType {
    /// The item as it is after the change (`NEW_IMAGE`).
    NewImage,
    /// The item before and after the change (`NEW_AND_OLD_IMAGES`).
    NewAndOldImages,
}

impl StreamViewType {
    /// The CloudFormation / DynamoDB spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            StreamViewType::NewImage => "NEW_IMAGE",
            StreamViewType::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }
}

/// How a table is billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingMode {
    /// On-demand (`PAY_PER_REQUEST`).
    PayPerRequest,
}

impl BillingMode {
    /// The CloudFormation / DynamoDB spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            BillingMode::PayPerRequest => "PAY_PER_REQUEST",
        }
    }
}

/// A DynamoDB table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableDef {
    /// Logical name (the physical name is `{prefix}{name}`), e.g. `events`.
    pub name: &'static str,
    /// The primary key.
    pub key: KeySchema,
    /// Global secondary indexes.
    pub gsis: &'static [GsiDef],
    /// The stream, if the table has one.
    pub stream: Option<StreamViewType>,
    /// Billing mode.
    pub billing: BillingMode,
}

impl TableDef {
    /// Every attribute used in a key of the table or one of its indexes, each once, in order
    /// of first appearance (what `AttributeDefinitions` must list).
    pub fn key_attributes(&self) -> Vec<KeyAttr> {
        let mut out: Vec<KeyAttr> = Vec::new();
        let keys = std::iter::once(&self.key).chain(self.gsis.iter().map(|g| &g.key));
        for key in keys {
            for attr in std::iter::once(key.hash).chain(key.range) {
                if !out.iter().any(|a| a.name == attr.name) {
                    out.push(attr);
                }
            }
        }
        out
    }
}

const fn s(name: &'static str) -> KeyAttr {
    KeyAttr {
        name,
        ty: AttrType::S,
    }
}

/// The event log: `pk` = `<AggregateType>#<id>`, `sk` = sequence; stream `NEW_IMAGE`.
pub const EVENTS: TableDef = TableDef {
    name: "events",
    key: KeySchema {
        hash: s("pk"),
        range: Some(KeyAttr {
            name: "sk",
            ty: AttrType::N,
        }),
    },
    gsis: &[],
    stream: Some(StreamViewType::NewImage),
    billing: BillingMode::PayPerRequest,
};

/// Uniqueness claims (email, username, slug, POSTed event ids).
pub const UNIQUES: TableDef = TableDef {
    name: "uniques",
    key: KeySchema {
        hash: s("pk"),
        range: None,
    },
    gsis: &[],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// Users read model, with the `byUsername` index.
pub const USERS: TableDef = TableDef {
    name: "users",
    key: KeySchema {
        hash: s("userId"),
        range: None,
    },
    gsis: &[GsiDef {
        name: "byUsername",
        key: KeySchema {
            hash: s("username"),
            range: None,
        },
        projection: ProjectionType::All,
    }],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// Follows read model (who follows whom), with the reverse `byFollowee` index.
pub const FOLLOWS: TableDef = TableDef {
    name: "follows",
    key: KeySchema {
        hash: s("followerId"),
        range: Some(s("followeeId")),
    },
    gsis: &[GsiDef {
        name: "byFollowee",
        key: KeySchema {
            hash: s("followeeId"),
            range: Some(s("followerId")),
        },
        projection: ProjectionType::All,
    }],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// Articles read model (one item per article; favorite counts; tombstones), with `bySlug`.
pub const ARTICLES: TableDef = TableDef {
    name: "articles",
    key: KeySchema {
        hash: s("articleId"),
        range: None,
    },
    gsis: &[GsiDef {
        name: "bySlug",
        key: KeySchema {
            hash: s("slug"),
            range: None,
        },
        projection: ProjectionType::All,
    }],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// Article bodies, one item per article under its id: apart from `articles` because DynamoDB
/// charges a read for the whole item, and list pages, which never show a body, read 20
/// `articles` items at a time.
pub const ARTICLE_BODIES: TableDef = TableDef {
    name: "article-bodies",
    key: KeySchema {
        hash: s("articleId"),
        range: None,
    },
    gsis: &[],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// Comments read model: an article's comments under its id, ordered by comment id.
pub const COMMENTS: TableDef = TableDef {
    name: "comments",
    key: KeySchema {
        hash: s("articleId"),
        range: Some(KeyAttr {
            name: "commentId",
            ty: AttrType::N,
        }),
    },
    gsis: &[],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// Favorites read model (who favorites what), with the per-user `byUser` index.
pub const FAVORITES: TableDef = TableDef {
    name: "favorites",
    key: KeySchema {
        hash: s("articleId"),
        range: Some(s("userId")),
    },
    gsis: &[GsiDef {
        name: "byUser",
        key: KeySchema {
            hash: s("userId"),
            range: Some(s("articleId")),
        },
        projection: ProjectionType::KeysOnly,
    }],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// Feeds: one small entry per (reader, followed author's article), newest last by `feedKey`
/// (`<creation ms>#<articleId>`), so a backwards `Query` pages a feed newest first.
pub const FEEDS: TableDef = TableDef {
    name: "feeds",
    key: KeySchema {
        hash: s("userId"),
        range: Some(s("feedKey")),
    },
    gsis: &[],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// The feed projector's copy of each author's live articles (what a feed entry shows).
pub const FEED_ARTICLES: TableDef = TableDef {
    name: "feed-articles",
    key: KeySchema {
        hash: s("authorId"),
        range: Some(s("articleId")),
    },
    gsis: &[],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// The feed projector's own follower lists, keyed by the followed author.
pub const FEED_FOLLOWERS: TableDef = TableDef {
    name: "feed-followers",
    key: KeySchema {
        hash: s("authorId"),
        range: Some(s("followerId")),
    },
    gsis: &[],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// Checkpoints (stream positions, replay progress).
pub const CHECKPOINTS: TableDef = TableDef {
    name: "checkpoints",
    key: KeySchema {
        hash: s("pk"),
        range: None,
    },
    gsis: &[],
    stream: None,
    billing: BillingMode::PayPerRequest,
};

/// Every table.
pub const TABLES: &[TableDef] = &[
    EVENTS,
    UNIQUES,
    USERS,
    FOLLOWS,
    ARTICLES,
    ARTICLE_BODIES,
    COMMENTS,
    FAVORITES,
    FEEDS,
    FEED_ARTICLES,
    FEED_FOLLOWERS,
    CHECKPOINTS,
];

/// An SNS topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicDef {
    /// Logical name (the physical name is `{prefix}{name}`).
    pub name: &'static str,
    /// FIFO topic or standard topic.
    pub fifo: bool,
}

/// The topic every domain event is published to by the fan-out.
pub const DOMAIN_EVENTS_TOPIC: TopicDef = TopicDef {
    name: "domain-events",
    fifo: false,
};

/// One condition of a subscription filter policy (applied to message attributes): the
/// attribute must equal one of `values`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterCondition {
    /// Message attribute name, e.g. `aggregateType`.
    pub attribute: &'static str,
    /// Accepted string values.
    pub values: &'static [&'static str],
}

/// The timeout of a projector function; queue visibility timeouts are derived from it.
pub const PROJECTOR_FUNCTION_TIMEOUT_SECS: u32 = 10;

/// Fourteen days, the longest SQS retention: how long dead letters are kept.
pub const DLQ_RETENTION_SECS: u32 = 14 * 24 * 60 * 60;

/// A projector's queue, subscribed to [`DOMAIN_EVENTS_TOPIC`], with its dead-letter queue
/// `{name}-dlq` and the settings of the event source mapping that feeds the projector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueDef {
    /// Logical name (the physical name is `{prefix}{name}`), e.g. `users-projector`.
    pub name: &'static str,
    /// Subscription filter policy on message attributes; all conditions must hold.
    pub filter_policy: &'static [FilterCondition],
    /// Whether the subscription delivers the raw message instead of the SNS envelope JSON.
    pub raw_message_delivery: bool,
    /// Receives after which a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    /// Queue visibility timeout (AWS advises six times the function timeout).
    pub visibility_timeout_secs: u32,
    /// Timeout of the function the queue feeds.
    pub function_timeout_secs: u32,
    /// Event source mapping batch size.
    pub batch_size: u32,
    /// Whether the function reports partial batch failures (`ReportBatchItemFailures`).
    pub report_batch_item_failures: bool,
    /// Retention of the dead-letter queue.
    pub dlq_retention_secs: u32,
}

impl QueueDef {
    /// Logical name of the dead-letter queue: `{name}-dlq`.
    pub fn dlq_name(&self) -> String {
        format!("{}-dlq", self.name)
    }

    /// The filter policy as the JSON SNS expects, e.g. `{"aggregateType":["User"]}`.
    pub fn filter_policy_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .filter_policy
            .iter()
            .map(|c| {
                (
                    c.attribute.to_owned(),
                    serde_json::Value::from(c.values.to_vec()),
                )
            })
            .collect();
        serde_json::Value::Object(map).to_string()
    }
}

/// The users projector's queue: `User` events only.
pub const USERS_PROJECTOR_QUEUE: QueueDef = QueueDef {
    name: "users-projector",
    filter_policy: &[FilterCondition {
        attribute: "aggregateType",
        values: &["User"],
    }],
    raw_message_delivery: false,
    max_receive_count: 5,
    visibility_timeout_secs: 6 * PROJECTOR_FUNCTION_TIMEOUT_SECS,
    function_timeout_secs: PROJECTOR_FUNCTION_TIMEOUT_SECS,
    batch_size: 10,
    report_batch_item_failures: true,
    dlq_retention_secs: DLQ_RETENTION_SECS,
};

/// The articles projector's queue: article, comment-thread and favorite events.
pub const ARTICLES_PROJECTOR_QUEUE: QueueDef = QueueDef {
    name: "articles-projector",
    filter_policy: &[FilterCondition {
        attribute: "aggregateType",
        values: &["Article", "ArticleComments", "Favorite"],
    }],
    ..USERS_PROJECTOR_QUEUE
};

/// The search projector's queue: article events only.
pub const SEARCH_PROJECTOR_QUEUE: QueueDef = QueueDef {
    name: "search-projector",
    filter_policy: &[FilterCondition {
        attribute: "aggregateType",
        values: &["Article"],
    }],
    ..USERS_PROJECTOR_QUEUE
};

/// The timeout of the feed projector: one publish may fan out to many thousand feeds (it
/// pauses after [`FEED_FANOUT_BUDGET_SECS`] and continues from its progress item).
pub const FEED_PROJECTOR_FUNCTION_TIMEOUT_SECS: u32 = 60;
/// How long one invocation fans out before it saves its progress and hands the message back.
pub const FEED_FANOUT_BUDGET_SECS: u32 = 15;

/// The feed projector's queue: follows (in `User` streams) and article events.
pub const FEED_PROJECTOR_QUEUE: QueueDef = QueueDef {
    name: "feed-projector",
    filter_policy: &[FilterCondition {
        attribute: "aggregateType",
        values: &["User", "Article"],
    }],
    visibility_timeout_secs: 6 * FEED_PROJECTOR_FUNCTION_TIMEOUT_SECS,
    function_timeout_secs: FEED_PROJECTOR_FUNCTION_TIMEOUT_SECS,
    ..USERS_PROJECTOR_QUEUE
};

/// Every projector queue (add a projector by adding its queue here).
pub const PROJECTOR_QUEUES: &[QueueDef] = &[
    USERS_PROJECTOR_QUEUE,
    ARTICLES_PROJECTOR_QUEUE,
    FEED_PROJECTOR_QUEUE,
    SEARCH_PROJECTOR_QUEUE,
];

/// Where a stream event source mapping starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record still in the stream.
    TrimHorizon,
    /// Only records written after the mapping starts.
    Latest,
}

impl StartingPosition {
    /// The CloudFormation / Lambda spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            StartingPosition::TrimHorizon => "TRIM_HORIZON",
            StartingPosition::Latest => "LATEST",
        }
    }
}

/// The event source mapping from a table's stream to a function (the fan-out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamMappingDef {
    /// Logical name of the table whose stream is read.
    pub table: &'static str,
    /// Records per invocation.
    pub batch_size: u32,
    /// Retries of a failing batch before it is skipped.
    pub maximum_retry_attempts: u32,
    /// Split a failing batch in two and retry the halves.
    pub bisect_batch_on_function_error: bool,
    /// Where reading starts.
    pub starting_position: StartingPosition,
    /// Whether the function reports partial batch failures (`ReportBatchItemFailures`).
    pub report_batch_item_failures: bool,
}

/// The fan-out's mapping on the events stream.
pub const EVENTS_STREAM_MAPPING: StreamMappingDef = StreamMappingDef {
    table: EVENTS.name,
    batch_size: 100,
    maximum_retry_attempts: 5,
    bisect_batch_on_function_error: true,
    starting_position: StartingPosition::TrimHorizon,
    report_batch_item_failures: true,
};

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// Physical names of the resources for one prefix (`{prefix}{name}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The prefix, e.g. `conduit-`.
    pub prefix: String,
}

impl Names {
    /// Names under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// Physical name of a table.
    pub fn table(&self, def: &TableDef) -> String {
        self.table_name(def.name)
    }

    /// Physical name of the table with logical name `name`, e.g. `table_name("events")`.
    pub fn table_name(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Physical names of every table in [`TABLES`].
    pub fn tables(&self) -> Vec<String> {
        TABLES.iter().map(|t| self.table(t)).collect()
    }

    /// Physical name of a topic.
    pub fn topic(&self, def: &TopicDef) -> String {
        format!("{}{}", self.prefix, def.name)
    }

    /// Physical name of the domain events topic.
    pub fn domain_events_topic(&self) -> String {
        self.topic(&DOMAIN_EVENTS_TOPIC)
    }

    /// Physical name of a projector queue.
    pub fn queue(&self, def: &QueueDef) -> String {
        format!("{}{}", self.prefix, def.name)
    }

    /// Physical name of a projector queue's dead-letter queue.
    pub fn dlq(&self, def: &QueueDef) -> String {
        format!("{}{}", self.prefix, def.dlq_name())
    }

    /// Checks that every name this prefix yields is valid for DynamoDB, SNS and SQS.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self
            .prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "resource prefix {:?} may only contain ASCII letters, digits, '-' and '_'",
                self.prefix
            );
        }
        for q in PROJECTOR_QUEUES {
            let longest = self.dlq(q);
            if longest.len() > 80 {
                bail!(
                    "queue name {longest:?} is longer than SQS's 80 characters: shorten the prefix"
                );
            }
        }
        for t in TABLES {
            let name = self.table(t);
            if name.len() < 3 || name.len() > 255 {
                bail!("table name {name:?} must be 3 to 255 characters long");
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Provisioning
// ---------------------------------------------------------------------------------------------

/// A provisioned projector queue and its dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionedQueue {
    /// Logical name from [`QueueDef::name`], e.g. `users-projector` (not prefixed).
    pub name: String,
    /// Queue URL.
    pub url: String,
    /// Queue ARN.
    pub arn: String,
    /// Dead-letter queue URL.
    pub dlq_url: String,
    /// Dead-letter queue ARN.
    pub dlq_arn: String,
    /// Event source mapping batch size.
    pub batch_size: u32,
    /// Visibility timeout of the queue.
    pub visibility_timeout_secs: u32,
    /// Receives after which a message moves to the dead-letter queue.
    pub max_receive_count: u32,
}

/// What [`provision`] created or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioned {
    /// The prefix of every name.
    pub prefix: String,
    /// ARN of the events table's stream.
    pub events_stream_arn: String,
    /// ARN of the domain events topic.
    pub topic_arn: String,
    /// The projector queues, in the order of [`PROJECTOR_QUEUES`].
    pub queues: Vec<ProvisionedQueue>,
}

impl Provisioned {
    /// The physical names for this prefix.
    pub fn names(&self) -> Names {
        Names::new(self.prefix.clone())
    }

    /// The queue with logical name `name` (e.g. `users-projector`).
    pub fn queue(&self, name: &str) -> Option<&ProvisionedQueue> {
        self.queues.iter().find(|q| q.name == name)
    }
}

/// Creates every table, the topic, the projector queues with their dead-letter queues and the
/// subscriptions, under `prefix`, if they do not exist yet; tables are created concurrently
/// and waited for until `ACTIVE`.
///
/// Idempotent: existing resources are kept. Queue attributes and subscription filter policies
/// that differ from the definitions are set to the definitions (so a changed definition reaches
/// a running local stack); when they already agree nothing is written. An existing table is
/// never altered.
pub async fn provision(clients: &Clients, prefix: &str) -> anyhow::Result<Provisioned> {
    let names = Names::new(prefix);
    names.validate()?;

    let tables = futures::future::try_join_all(
        TABLES
            .iter()
            .map(|def| ensure_table(&clients.dynamodb, &names, def)),
    );
    let topic_and_queues = async {
        let topic_arn = ensure_topic(&clients.sns, &names.topic(&DOMAIN_EVENTS_TOPIC)).await?;
        let queues = futures::future::try_join_all(
            PROJECTOR_QUEUES
                .iter()
                .map(|def| ensure_projector_queue(clients, &names, def, &topic_arn)),
        )
        .await?;
        anyhow::Ok((topic_arn, queues))
    };
    let (tables, (topic_arn, queues)) = futures::future::try_join(tables, topic_and_queues).await?;

    let events_stream_arn = TABLES
        .iter()
        .zip(tables)
        .find(|(def, _)| def.name == EVENTS.name)
        .and_then(|(_, desc)| desc.latest_stream_arn)
        .ok_or_else(|| {
            anyhow!(
                "table {} has no stream: it must have been created by hand without one; delete it",
                names.table(&EVENTS)
            )
        })?;

    Ok(Provisioned {
        prefix: prefix.to_owned(),
        events_stream_arn,
        topic_arn,
        queues,
    })
}

/// Physical names of the tables under `prefix` that exist now.
pub async fn existing_table_names(clients: &Clients, prefix: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = clients
            .dynamodb
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .context("ListTables")?;
        out.extend(
            page.table_names()
                .iter()
                .filter(|n| n.starts_with(prefix))
                .cloned(),
        );
        match page.last_evaluated_table_name {
            Some(last) => start = Some(last),
            None => break,
        }
    }
    Ok(out)
}

/// Deletes every resource [`provision`] creates under `prefix` that exists (tables, topic and
/// its subscriptions, queues and dead-letter queues). Missing resources are skipped.
pub async fn teardown(clients: &Clients, prefix: &str) -> anyhow::Result<()> {
    let names = Names::new(prefix);
    names.validate()?;
    let existing = existing_table_names(clients, prefix).await?;
    for name in names.tables() {
        if existing.contains(&name) {
            match clients
                .dynamodb
                .delete_table()
                .table_name(&name)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == Some("ResourceNotFoundException") => {}
                Err(e) => return Err(e).with_context(|| format!("DeleteTable {name}")),
            }
        }
    }
    // CreateTopic is idempotent and returns the ARN of an existing topic; we delete it anyway.
    let topic_arn = ensure_topic(&clients.sns, &names.domain_events_topic()).await?;
    for sub in list_subscriptions(&clients.sns, &topic_arn).await? {
        if let Some(arn) = sub.subscription_arn() {
            if arn.starts_with("arn:") {
                clients
                    .sns
                    .unsubscribe()
                    .subscription_arn(arn)
                    .send()
                    .await
                    .with_context(|| format!("Unsubscribe {arn}"))?;
            }
        }
    }
    clients
        .sns
        .delete_topic()
        .topic_arn(&topic_arn)
        .send()
        .await
        .with_context(|| format!("DeleteTopic {topic_arn}"))?;
    for def in PROJECTOR_QUEUES {
        for name in [names.queue(def), names.dlq(def)] {
            if let Some(url) = queue_url(&clients.sqs, &name).await? {
                clients
                    .sqs
                    .delete_queue()
                    .queue_url(&url)
                    .send()
                    .await
                    .with_context(|| format!("DeleteQueue {name}"))?;
            }
        }
    }
    Ok(())
}

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

async fn ensure_table(
    ddb_client: &aws_sdk_dynamodb::Client,
    names: &Names,
    def: &TableDef,
) -> anyhow::Result<ddb::TableDescription> {
    ensure_table_named(ddb_client, &names.table(def), def).await
}

/// Creates the table `name` as `def` defines it (keys, indexes, stream, billing) unless it
/// exists, and waits until it is `ACTIVE`: a projection version's copy of a read model table
/// (`<prefix>users-v2`) is made from the same definition as the original.
pub async fn ensure_table_named(
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
pub async fn delete_table_named(
    ddb_client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> anyhow::Result<bool> {
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

async fn ensure_topic(sns: &aws_sdk_sns::Client, name: &str) -> anyhow::Result<String> {
    // CreateTopic is idempotent: it returns the ARN of the topic if it exists.
    let out = sns
        .create_topic()
        .name(name)
        .send()
        .await
        .with_context(|| format!("CreateTopic {name}"))?;
    out.topic_arn
        .ok_or_else(|| anyhow!("CreateTopic {name} returned no ARN"))
}

fn is_missing_queue<E>(e: &aws_sdk_sqs::error::SdkError<E>) -> bool
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata,
{
    // AWS says `QueueDoesNotExist` with the JSON protocol; moto and the query-compatible
    // header may say `AWS.SimpleQueueService.NonExistentQueue`.
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c.contains("QueueDoesNotExist") || c.contains("NonExistentQueue"))
}

async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<Option<String>> {
    match sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => Ok(out.queue_url),
        Err(e) if is_missing_queue(&e) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("GetQueueUrl {name}")),
    }
}

async fn queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> anyhow::Result<HashMap<QueueAttributeName, String>> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .with_context(|| format!("GetQueueAttributes {url}"))?;
    Ok(out.attributes.unwrap_or_default())
}

/// Whether an attribute value we want equals the one the queue has: numbers compare as
/// numbers, JSON documents (redrive policies) as JSON values with numbers-as-strings
/// normalised.
fn same_attribute(want: &str, have: &str) -> bool {
    if want == have {
        return true;
    }
    fn norm(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::String(s) => match s.parse::<i64>() {
                Ok(n) => serde_json::Value::from(n),
                Err(_) => serde_json::Value::String(s),
            },
            serde_json::Value::Object(m) => m.into_iter().map(|(k, v)| (k, norm(v))).collect(),
            serde_json::Value::Array(a) => a.into_iter().map(norm).collect(),
            other => other,
        }
    }
    match (
        serde_json::from_str::<serde_json::Value>(want),
        serde_json::from_str::<serde_json::Value>(have),
    ) {
        (Ok(w), Ok(h)) => norm(w) == norm(h),
        _ => false,
    }
}

/// Creates the queue if missing; otherwise sets the attributes that differ. Returns (url, arn).
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> anyhow::Result<(String, String)> {
    let url = match queue_url(sqs, name).await? {
        Some(url) => {
            let have = queue_attributes(sqs, &url).await?;
            let mut update = sqs.set_queue_attributes().queue_url(&url);
            let mut changed = false;
            for (k, v) in attributes {
                if !have.get(k).is_some_and(|h| same_attribute(v, h)) {
                    tracing::info!(queue = %name, attribute = %k, value = %v, "updating queue attribute");
                    update = update.attributes(k.clone(), v.clone());
                    changed = true;
                }
            }
            if changed {
                update
                    .send()
                    .await
                    .with_context(|| format!("SetQueueAttributes {name}"))?;
            }
            url
        }
        None => {
            let mut req = sqs.create_queue().queue_name(name);
            for (k, v) in attributes {
                req = req.attributes(k.clone(), v.clone());
            }
            let out = req
                .send()
                .await
                .with_context(|| format!("CreateQueue {name}"))?;
            tracing::info!(queue = %name, "created queue");
            out.queue_url
                .ok_or_else(|| anyhow!("CreateQueue {name} returned no URL"))?
        }
    };
    let arn = queue_attributes(sqs, &url)
        .await?
        .remove(&QueueAttributeName::QueueArn)
        .ok_or_else(|| anyhow!("queue {name} has no QueueArn attribute"))?;
    Ok((url, arn))
}

async fn list_subscriptions(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
) -> anyhow::Result<Vec<aws_sdk_sns::types::Subscription>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(token.take())
            .send()
            .await
            .with_context(|| format!("ListSubscriptionsByTopic {topic_arn}"))?;
        out.extend(page.subscriptions.unwrap_or_default());
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok(out)
}

async fn ensure_subscription(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    queue_arn: &str,
    def: &QueueDef,
) -> anyhow::Result<String> {
    let mut want = vec![("FilterPolicy", def.filter_policy_json())];
    if def.raw_message_delivery {
        want.push(("RawMessageDelivery", "true".to_owned()));
    }
    let existing = list_subscriptions(sns, topic_arn)
        .await?
        .into_iter()
        .find(|s| s.protocol() == Some("sqs") && s.endpoint() == Some(queue_arn))
        .and_then(|s| s.subscription_arn)
        .filter(|arn| arn.starts_with("arn:"));
    let Some(arn) = existing else {
        let mut req = sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .return_subscription_arn(true);
        for (k, v) in want {
            req = req.attributes(k, v);
        }
        let out = req
            .send()
            .await
            .with_context(|| format!("Subscribe {queue_arn} to {topic_arn}"))?;
        tracing::info!(queue = %queue_arn, "subscribed queue to topic");
        return out
            .subscription_arn
            .ok_or_else(|| anyhow!("Subscribe {queue_arn} returned no ARN"));
    };
    let have = sns
        .get_subscription_attributes()
        .subscription_arn(&arn)
        .send()
        .await
        .with_context(|| format!("GetSubscriptionAttributes {arn}"))?
        .attributes
        .unwrap_or_default();
    let raw = if def.raw_message_delivery {
        "true"
    } else {
        "false"
    };
    want.retain(|(k, _)| *k != "RawMessageDelivery");
    want.push(("RawMessageDelivery", raw.to_owned()));
    for (k, v) in want {
        let current = have.get(k).map(String::as_str);
        let same = match (k, current) {
            ("RawMessageDelivery", None) => v == "false",
            (_, Some(h)) => same_attribute(&v, h),
            (_, None) => false,
        };
        if !same {
            tracing::info!(subscription = %arn, attribute = k, value = %v, "updating subscription attribute");
            sns.set_subscription_attributes()
                .subscription_arn(&arn)
                .attribute_name(k)
                .attribute_value(v)
                .send()
                .await
                .with_context(|| format!("SetSubscriptionAttributes {arn} {k}"))?;
        }
    }
    Ok(arn)
}

async fn ensure_projector_queue(
    clients: &Clients,
    names: &Names,
    def: &QueueDef,
    topic_arn: &str,
) -> anyhow::Result<ProvisionedQueue> {
    let (dlq_url, dlq_arn) = ensure_queue(
        &clients.sqs,
        &names.dlq(def),
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            def.dlq_retention_secs.to_string(),
        )],
    )
    .await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": def.max_receive_count,
    })
    .to_string();
    let (url, arn) = ensure_queue(
        &clients.sqs,
        &names.queue(def),
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                def.visibility_timeout_secs.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive),
        ],
    )
    .await?;
    ensure_subscription(&clients.sns, topic_arn, &arn, def).await?;
    Ok(ProvisionedQueue {
        name: def.name.to_owned(),
        url,
        arn,
        dlq_url,
        dlq_arn,
        batch_size: def.batch_size,
        visibility_timeout_secs: def.visibility_timeout_secs,
        max_receive_count: def.max_receive_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_policy_json_is_what_sns_expects() {
        assert_eq!(
            USERS_PROJECTOR_QUEUE.filter_policy_json(),
            r#"{"aggregateType":["User"]}"#
        );
    }

    #[test]
    fn key_attributes_are_deduplicated() {
        let names: Vec<_> = FOLLOWS.key_attributes().iter().map(|a| a.name).collect();
        assert_eq!(names, ["followerId", "followeeId"]);
        let names: Vec<_> = USERS.key_attributes().iter().map(|a| a.name).collect();
        assert_eq!(names, ["userId", "username"]);
    }

    #[test]
    fn names_are_prefixed_and_validated() {
        let n = Names::new("conduit-");
        assert_eq!(n.table(&EVENTS), "conduit-events");
        assert_eq!(n.table_name("users"), "conduit-users");
        assert_eq!(n.domain_events_topic(), "conduit-domain-events");
        assert_eq!(n.queue(&USERS_PROJECTOR_QUEUE), "conduit-users-projector");
        assert_eq!(n.dlq(&USERS_PROJECTOR_QUEUE), "conduit-users-projector-dlq");
        assert!(n.validate().is_ok());
        assert!(Names::new("bad.prefix-").validate().is_err());
        assert!(Names::new("x".repeat(80)).validate().is_err());
    }

    #[test]
    fn attribute_comparison_normalises_numbers() {
        assert!(same_attribute("60", "60"));
        assert!(same_attribute(
            r#"{"deadLetterTargetArn":"a","maxReceiveCount":5}"#,
            r#"{"maxReceiveCount": "5", "deadLetterTargetArn": "a"}"#
        ));
        assert!(!same_attribute("60", "30"));
    }
}
