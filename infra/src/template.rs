//! The AWS deployment: an AWS SAM template generated from [`crate::resources`], so the
//! cloud and the local stack are built from one definition.
//!
//! `cargo run -p infra --bin gen-template` writes it to `infra/template.json`;
//! `--check` fails when the checked-in file is stale, and `infra/tests/it/template.rs` holds it to
//! the definitions, to least privilege, and to `cfn-lint` / `sam validate --lint`.
//!
//! Physical names are `${AWS::StackName}-<name>`, so `CONDUIT_TABLE_PREFIX` is
//! `${AWS::StackName}-` and the code's `{prefix}{name}` naming holds in AWS as it does locally.
//! Each function gets its own role whose statements are written here from what its code calls
//! (see [`FUNCTIONS`]); SAM's event sources add nothing because every role is explicit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use schema::{KeySchema, TableDef, TABLES};

use crate::resources::{
    QueueDef, StreamMappingDef, TopicDef, ARTICLES_PROJECTOR_QUEUE, DLQ_RETENTION_SECS,
    DOMAIN_EVENTS_TOPIC, EVENTS_STREAM_MAPPING, FEED_PROJECTOR_QUEUE, PROJECTOR_QUEUES,
    SEARCH_PROJECTOR_QUEUE, USERS_PROJECTOR_QUEUE,
};

// ---------------------------------------------------------------------------------------------
// What the deployment adds to the resource definitions: the functions and their rights
// ---------------------------------------------------------------------------------------------

/// What invokes a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Routes `<method> /api/{proxy+}` of the HTTP API, one per method (`ANY`: every method no
    /// other route names).
    Http(&'static [&'static str]),
    /// The event source mapping [`EVENTS_STREAM_MAPPING`] on the events table's stream.
    Stream(&'static StreamMappingDef),
    /// The event source mapping on a projector queue.
    Queue(&'static QueueDef),
}

/// DynamoDB actions a function may perform on one table (and on the named indexes of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableAccess {
    /// The table.
    pub table: &'static TableDef,
    /// Indexes the function queries (their ARNs are added to the statement's resources).
    pub indexes: &'static [&'static str],
    /// IAM actions, e.g. `dynamodb:Query`. A `TransactWriteItems` needs the action of each of
    /// its parts (`PutItem`, `UpdateItem`, `DeleteItem`, `ConditionCheckItem`) on each table.
    pub actions: &'static [&'static str],
}

/// What a function may do on the OpenSearch domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchAccess {
    /// Nothing: it gets no endpoint and is not in the domain's access policy.
    None,
    /// Search and aggregate ([`SEARCH_READ_ACTIONS`]).
    Read,
    /// Create the index and alias, index and delete documents ([`SEARCH_WRITE_ACTIONS`]).
    Write,
}

impl SearchAccess {
    /// The `es:` actions it grants.
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            SearchAccess::None => &[],
            SearchAccess::Read => SEARCH_READ_ACTIONS,
            SearchAccess::Write => SEARCH_WRITE_ACTIONS,
        }
    }
}

/// A Lambda function of the deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionDef {
    /// The binary (built by cargo-lambda into `target/lambda/<bin>/`); also the name suffix of
    /// the function (`${AWS::StackName}-<bin>`).
    pub bin: &'static str,
    /// The Cargo package of the binary.
    pub package: &'static str,
    /// Function description.
    pub description: &'static str,
    /// Memory in MB (CPU grows with it).
    pub memory_mb: u32,
    /// Timeout in seconds.
    pub timeout_secs: u32,
    /// What invokes it.
    pub trigger: Trigger,
    /// Whether it reads `JWT_SECRET` and `JWT_TTL_SECONDS`.
    pub jwt: bool,
    /// Whether it publishes to [`DOMAIN_EVENTS_TOPIC`] (`CONDUIT_TOPIC_ARN`).
    pub publishes_events: bool,
    /// What it does on the search domain (`CONDUIT_SEARCH=opensearch`, `OPENSEARCH_URL`;
    /// granted by the domain's access policy).
    pub search: SearchAccess,
    /// What it does to each table.
    pub tables: &'static [TableAccess],
}

/// The write side. `EventStore::append` is one `TransactWriteItems` of conditional `Put`s on
/// events, `Put`/`Delete` claims on uniques and, every so many events, the `Put` of a
/// snapshot; a load gets the snapshot and queries the events after it; `owner_of` (login,
/// profiles) reads uniques.
pub const COMMAND_API: FunctionDef = FunctionDef {
    bin: "command-api",
    package: "command-api",
    description: "Conduit-ES write side: POST/PUT/DELETE /api/*, appends events",
    // Argon2 password hashing is CPU-bound and Lambda's CPU share grows with memory.
    memory_mb: 1024,
    timeout_secs: 10,
    // Every method but GET and HEAD (the more specific routes of the query side): the writes,
    // and any other method, which the router answers with 405 and `Allow` as locally.
    trigger: Trigger::Http(&["ANY"]),
    jwt: true,
    publishes_events: false,
    search: SearchAccess::None,
    tables: &[
        TableAccess {
            table: &schema::events::TABLE,
            indexes: &[],
            actions: &["dynamodb:PutItem", "dynamodb:Query"],
        },
        TableAccess {
            table: &schema::uniques::TABLE,
            indexes: &[],
            actions: &[
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
            ],
        },
        TableAccess {
            table: &schema::snapshots::TABLE,
            indexes: &[],
            actions: &["dynamodb:GetItem", "dynamodb:PutItem"],
        },
        // The write side's reads of read models: a favorite's response counts the caller's
        // own change by reading the count and its checkpoint in one TransactGetItems, and a
        // write waits for the checkpoints of its stream before it answers (write_wait).
        TableAccess {
            table: &schema::articles::TABLE,
            indexes: &[],
            actions: &["dynamodb:GetItem"],
        },
        TableAccess {
            table: &schema::checkpoints::TABLE,
            indexes: &[],
            actions: &["dynamodb:GetItem"],
        },
    ],
};

/// The read side: `Readers` gets users by id, queries `byUsername`, `bySlug`, comments and
/// `byUser` favorites, and fills pages and single articles (with the body) in with
/// multi-table `BatchGetItem`s. The projected views (`GET /api/views/...`) scan the users,
/// follows, articles, comments and favorites tables, query one partition of follows, and get
/// single items. The one read of the log: `GET /api/events/...` queries an
/// aggregate's own stream (`EventStore::read_range`).
pub const QUERY_API: FunctionDef = FunctionDef {
    bin: "query-api",
    package: "query-api",
    description: "Conduit-ES read side: GET /api/*, reads read models only",
    memory_mb: 256,
    timeout_secs: 10,
    trigger: Trigger::Http(&["GET", "HEAD"]),
    jwt: true,
    publishes_events: false,
    search: SearchAccess::Read,
    tables: &[
        TableAccess {
            table: &schema::events::TABLE,
            indexes: &[],
            actions: &["dynamodb:Query"],
        },
        TableAccess {
            table: &schema::users::TABLE,
            indexes: &["byUsername"],
            actions: &[
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
            ],
        },
        TableAccess {
            table: &schema::follows::TABLE,
            indexes: &[],
            actions: &[
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
            ],
        },
        TableAccess {
            table: &schema::articles::TABLE,
            indexes: &["bySlug"],
            // GetItem: a single article and the caller's favorite are one TransactGetItems.
            actions: &[
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
            ],
        },
        TableAccess {
            table: &schema::article_bodies::TABLE,
            indexes: &[],
            actions: &["dynamodb:BatchGetItem", "dynamodb:GetItem"],
        },
        TableAccess {
            table: &schema::comments::TABLE,
            indexes: &[],
            actions: &["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"],
        },
        TableAccess {
            table: &schema::favorites::TABLE,
            indexes: &["byUser"],
            actions: &[
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
            ],
        },
        TableAccess {
            table: &schema::feeds::TABLE,
            indexes: &[],
            actions: &["dynamodb:Query"],
        },
        TableAccess {
            table: &schema::feed_articles::TABLE,
            indexes: &[],
            actions: &["dynamodb:BatchGetItem"],
        },
        // The active version of each projection (registry items) and, for read-your-writes,
        // the projectors' checkpoints.
        TableAccess {
            table: &schema::checkpoints::TABLE,
            indexes: &[],
            actions: &["dynamodb:GetItem"],
        },
    ],
};

/// The fan-out: reads the stream (event source mapping), `PublishBatch`es to the topic (IAM
/// action `sns:Publish`), and its mapping sends failed batches' descriptions to a queue.
pub const FAN_OUT: FunctionDef = FunctionDef {
    bin: "fan-out",
    package: "projectors",
    description: "Conduit-ES fan-out: events table stream to the domain-events topic",
    memory_mb: 256,
    timeout_secs: 30,
    trigger: Trigger::Stream(&EVENTS_STREAM_MAPPING),
    jwt: false,
    publishes_events: true,
    search: SearchAccess::None,
    tables: &[],
};

/// The users projector: `ProjectorRuntime` fills gaps by querying events, reads and moves
/// checkpoints (`GetItem`, conditional `Update` in the transaction); `UsersProjector` puts and
/// updates users, puts and deletes follows, all inside that transaction.
pub const USERS_PROJECTOR: FunctionDef = FunctionDef {
    bin: "users-projector",
    package: "projectors",
    description: "Conduit-ES users projector: user events to the users and follows read models",
    memory_mb: 256,
    timeout_secs: USERS_PROJECTOR_QUEUE.function_timeout_secs,
    trigger: Trigger::Queue(&USERS_PROJECTOR_QUEUE),
    jwt: false,
    publishes_events: false,
    search: SearchAccess::None,
    tables: &[
        TableAccess {
            table: &schema::events::TABLE,
            indexes: &[],
            actions: &["dynamodb:Query"],
        },
        TableAccess {
            table: &schema::users::TABLE,
            indexes: &[],
            actions: &["dynamodb:PutItem", "dynamodb:UpdateItem"],
        },
        TableAccess {
            table: &schema::follows::TABLE,
            indexes: &[],
            actions: &["dynamodb:DeleteItem", "dynamodb:PutItem"],
        },
        TableAccess {
            table: &schema::checkpoints::TABLE,
            indexes: &[],
            actions: &["dynamodb:GetItem", "dynamodb:UpdateItem"],
        },
    ],
};

/// The articles projector: the runtime's gap reads and checkpoints as for users; article
/// events update the articles item and put the body item in one transaction (tombstone and
/// body delete on delete, after querying and batch-deleting the article's comments and
/// favorites); comment and favorite events first get the article item,
/// then put or delete their item with a `ConditionCheck` / conditional `ADD` on the article.
pub const ARTICLES_PROJECTOR: FunctionDef = FunctionDef {
    bin: "articles-projector",
    package: "projectors",
    description:
        "Conduit-ES articles projector: article, comment and favorite events to their read models",
    memory_mb: 256,
    timeout_secs: ARTICLES_PROJECTOR_QUEUE.function_timeout_secs,
    trigger: Trigger::Queue(&ARTICLES_PROJECTOR_QUEUE),
    jwt: false,
    publishes_events: false,
    search: SearchAccess::None,
    tables: &[
        TableAccess {
            table: &schema::events::TABLE,
            indexes: &[],
            actions: &["dynamodb:Query"],
        },
        TableAccess {
            table: &schema::articles::TABLE,
            indexes: &[],
            actions: &[
                "dynamodb:ConditionCheckItem",
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
            ],
        },
        TableAccess {
            table: &schema::article_bodies::TABLE,
            indexes: &[],
            actions: &["dynamodb:DeleteItem", "dynamodb:PutItem"],
        },
        TableAccess {
            table: &schema::comments::TABLE,
            indexes: &[],
            actions: &[
                "dynamodb:BatchWriteItem",
                "dynamodb:DeleteItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
            ],
        },
        TableAccess {
            table: &schema::favorites::TABLE,
            indexes: &[],
            actions: &[
                "dynamodb:BatchWriteItem",
                "dynamodb:DeleteItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
            ],
        },
        TableAccess {
            table: &schema::checkpoints::TABLE,
            indexes: &[],
            actions: &["dynamodb:GetItem", "dynamodb:UpdateItem"],
        },
    ],
};

/// The search projector: the runtime's gap reads and checkpoints; versioned writes to the
/// search domain.
pub const SEARCH_PROJECTOR: FunctionDef = FunctionDef {
    bin: "search-projector",
    package: "projectors",
    description: "Conduit-ES search projector: article events to the OpenSearch index",
    memory_mb: 256,
    timeout_secs: SEARCH_PROJECTOR_QUEUE.function_timeout_secs,
    trigger: Trigger::Queue(&SEARCH_PROJECTOR_QUEUE),
    jwt: false,
    publishes_events: false,
    search: SearchAccess::Write,
    tables: &[
        TableAccess {
            table: &schema::events::TABLE,
            indexes: &[],
            actions: &["dynamodb:Query"],
        },
        TableAccess {
            table: &schema::checkpoints::TABLE,
            indexes: &[],
            actions: &["dynamodb:GetItem", "dynamodb:UpdateItem"],
        },
    ],
};

/// The feed projector: the runtime's gap reads and checkpoints; a per-author lease and a
/// fan-out progress item in the checkpoints table (conditional put, delete in the commit
/// transaction); its own follower lists and article copies (queried in pages, written before
/// the fan-out); feed entries put and deleted 25 at a time with `BatchWriteItem`.
pub const FEED_PROJECTOR: FunctionDef = FunctionDef {
    bin: "feed-projector",
    package: "projectors",
    description: "Conduit-ES feed projector: follows and article events to every follower's feed",
    memory_mb: 256,
    timeout_secs: FEED_PROJECTOR_QUEUE.function_timeout_secs,
    trigger: Trigger::Queue(&FEED_PROJECTOR_QUEUE),
    jwt: false,
    publishes_events: false,
    search: SearchAccess::None,
    tables: &[
        TableAccess {
            table: &schema::events::TABLE,
            indexes: &[],
            actions: &["dynamodb:Query"],
        },
        TableAccess {
            table: &schema::feeds::TABLE,
            indexes: &[],
            actions: &["dynamodb:BatchWriteItem"],
        },
        TableAccess {
            table: &schema::feed_articles::TABLE,
            indexes: &[],
            actions: &[
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ],
        },
        TableAccess {
            table: &schema::feed_followers::TABLE,
            indexes: &[],
            actions: &["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Query"],
        },
        TableAccess {
            table: &schema::checkpoints::TABLE,
            indexes: &[],
            actions: &[
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ],
        },
    ],
};

/// Every Lambda function (a projector queue without a function here fails the tests).
pub const FUNCTIONS: &[FunctionDef] = &[
    COMMAND_API,
    QUERY_API,
    FAN_OUT,
    USERS_PROJECTOR,
    ARTICLES_PROJECTOR,
    FEED_PROJECTOR,
    SEARCH_PROJECTOR,
];

pub use crate::resources::FAN_OUT_FAILURES_QUEUE;

/// Tables that hold the source of truth: kept when the stack is deleted or the table replaced.
/// The read models can be rebuilt from the log by replay.
pub const RETAINED_TABLES: &[&str] = &[schema::events::TABLE.name, schema::uniques::TABLE.name];

/// Retention of a projector queue: SQS's default of four days, made explicit. A dead letter
/// keeps its first enqueue time, so its queue keeps messages longer ([`DLQ_RETENTION_SECS`]).
pub const PROJECTOR_QUEUE_RETENTION_SECS: u32 = 4 * 24 * 60 * 60;

/// Days of Lambda logs kept.
pub const LOG_RETENTION_DAYS: u32 = 14;

/// Alarm when the fan-out's oldest unread stream record is older than this.
pub const ITERATOR_AGE_ALARM_MS: u32 = 60_000;

/// The template parameter of the projections' lag alarms, and its default.
pub const LAG_ALARM_PARAMETER: &str = "ProjectionLagAlarmSeconds";
pub const DEFAULT_LAG_ALARM_SECONDS: u32 = 300;

/// The OpenSearch engine of the search domain.
pub const OPENSEARCH_ENGINE_VERSION: &str = "OpenSearch_2.19";

/// Actions the query function gets on the search domain (through its access policy).
pub const SEARCH_READ_ACTIONS: &[&str] = &["es:ESHttpGet", "es:ESHttpPost"];

/// Actions the search projector gets on the search domain: `ensure_index` (`HEAD`/`PUT` the
/// index, `GET`/`POST` aliases) and versioned `PUT`/`DELETE` of documents.
pub const SEARCH_WRITE_ACTIONS: &[&str] = &[
    "es:ESHttpDelete",
    "es:ESHttpGet",
    "es:ESHttpHead",
    "es:ESHttpPost",
    "es:ESHttpPut",
];

/// Where cargo-lambda puts a function's zip, relative to the template (in `infra/`).
pub fn code_uri(bin: &str) -> String {
    format!("../target/lambda/{bin}/bootstrap.zip")
}

/// `infra/template.json`.
pub fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("template.json")
}

// ---------------------------------------------------------------------------------------------
// Logical ids
// ---------------------------------------------------------------------------------------------

/// `users-projector` → `UsersProjector`.
pub fn pascal(name: &str) -> String {
    name.split(['-', '_', '.'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Logical ids of the template's resources.
pub mod ids {
    use super::pascal;
    use crate::resources::{QueueDef, TopicDef};
    use schema::TableDef;

    /// The HTTP API.
    pub const HTTP_API: &str = "HttpApi";
    /// The OpenSearch domain.
    pub const SEARCH_DOMAIN: &str = "SearchDomain";
    /// The topic alarms notify.
    pub const ALARM_TOPIC: &str = "AlarmTopic";
    /// The optional e-mail subscription to the alarm topic.
    pub const ALARM_EMAIL_SUBSCRIPTION: &str = "AlarmEmailSubscription";
    /// The fan-out's iterator age alarm.
    pub const ITERATOR_AGE_ALARM: &str = "FanOutIteratorAgeAlarm";

    /// `EventsTable`.
    pub fn table(def: &TableDef) -> String {
        format!("{}Table", pascal(def.name))
    }
    /// `DomainEventsTopic`.
    pub fn topic(def: &TopicDef) -> String {
        format!("{}Topic", pascal(def.name))
    }
    /// `UsersProjectorQueue`.
    pub fn queue(def: &QueueDef) -> String {
        queue_named(def.name)
    }
    /// `<Name>Queue` for a queue of logical name `name`.
    pub fn queue_named(name: &str) -> String {
        format!("{}Queue", pascal(name))
    }
    /// `UsersProjectorDeadLetterQueue`.
    pub fn dlq(def: &QueueDef) -> String {
        format!("{}DeadLetterQueue", pascal(def.name))
    }
    /// `UsersProjectorQueuePolicy`.
    pub fn queue_policy(def: &QueueDef) -> String {
        format!("{}QueuePolicy", pascal(def.name))
    }
    /// `UsersProjectorSubscription`.
    pub fn subscription(def: &QueueDef) -> String {
        format!("{}Subscription", pascal(def.name))
    }
    /// `<Queue id>Alarm`, e.g. `UsersProjectorDeadLetterQueueAlarm`.
    pub fn queue_alarm(queue_id: &str) -> String {
        format!("{queue_id}Alarm")
    }
    /// `UsersProjectorLagAlarm`.
    pub fn lag_alarm(def: &QueueDef) -> String {
        format!("{}LagAlarm", pascal(def.name))
    }
    /// `CommandApiFunction`.
    pub fn function(bin: &str) -> String {
        format!("{}Function", pascal(bin))
    }
    /// `CommandApiRole`.
    pub fn role(bin: &str) -> String {
        format!("{}Role", pascal(bin))
    }
    /// `CommandApiLogGroup`.
    pub fn log_group(bin: &str) -> String {
        format!("{}LogGroup", pascal(bin))
    }
}

// ---------------------------------------------------------------------------------------------
// Intrinsics
// ---------------------------------------------------------------------------------------------

fn sub(text: impl Into<String>) -> Value {
    json!({ "Fn::Sub": text.into() })
}

fn get_att(id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attribute] })
}

fn reference(id: &str) -> Value {
    json!({ "Ref": id })
}

/// `${AWS::StackName}-<name>`: the physical name of everything, as `{prefix}{name}`.
fn stack_name(name: &str) -> Value {
    sub(format!("${{AWS::StackName}}-{name}"))
}

fn policy_document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

fn key_schema(key: &KeySchema) -> Value {
    let mut out = vec![json!({ "AttributeName": key.hash.name, "KeyType": "HASH" })];
    if let Some(range) = key.range {
        out.push(json!({ "AttributeName": range.name, "KeyType": "RANGE" }));
    }
    Value::from(out)
}

fn table(def: &TableDef) -> Value {
    let mut props = Map::new();
    props.insert("TableName".into(), stack_name(def.name));
    props.insert("BillingMode".into(), def.billing.as_str().into());
    props.insert(
        "AttributeDefinitions".into(),
        def.key_attributes()
            .iter()
            .map(|a| json!({ "AttributeName": a.name, "AttributeType": a.ty.as_str() }))
            .collect(),
    );
    props.insert("KeySchema".into(), key_schema(&def.key));
    if !def.gsis.is_empty() {
        props.insert(
            "GlobalSecondaryIndexes".into(),
            def.gsis
                .iter()
                .map(|g| {
                    json!({
                        "IndexName": g.name,
                        "KeySchema": key_schema(&g.key),
                        "Projection": { "ProjectionType": g.projection.as_str() },
                    })
                })
                .collect(),
        );
    }
    if let Some(view) = def.stream {
        props.insert(
            "StreamSpecification".into(),
            json!({ "StreamViewType": view.as_str() }),
        );
    }
    props.insert(
        "PointInTimeRecoverySpecification".into(),
        json!({ "PointInTimeRecoveryEnabled": true }),
    );
    let policy = if RETAINED_TABLES.contains(&def.name) {
        "Retain"
    } else {
        "Delete"
    };
    json!({
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": policy,
        "UpdateReplacePolicy": policy,
        "Properties": props,
    })
}

fn topic(def: &TopicDef) -> Value {
    let mut props = Map::new();
    if def.fifo {
        props.insert(
            "TopicName".into(),
            stack_name(&format!("{}.fifo", def.name)),
        );
        props.insert("FifoTopic".into(), true.into());
    } else {
        props.insert("TopicName".into(), stack_name(def.name));
    }
    json!({ "Type": "AWS::SNS::Topic", "Properties": props })
}

fn plain_queue(name: &str, retention_secs: u32) -> Value {
    json!({
        "Type": "AWS::SQS::Queue",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "QueueName": stack_name(name),
            "MessageRetentionPeriod": retention_secs,
            "SqsManagedSseEnabled": true,
        },
    })
}

fn projector_queue(def: &QueueDef) -> Value {
    json!({
        "Type": "AWS::SQS::Queue",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "QueueName": stack_name(def.name),
            "MessageRetentionPeriod": PROJECTOR_QUEUE_RETENTION_SECS,
            "VisibilityTimeout": def.visibility_timeout_secs,
            "RedrivePolicy": {
                "deadLetterTargetArn": get_att(&ids::dlq(def), "Arn"),
                "maxReceiveCount": def.max_receive_count,
            },
            "SqsManagedSseEnabled": true,
        },
    })
}

/// Lets the topic (and nothing else) send to the queue.
fn queue_policy(def: &QueueDef) -> Value {
    let topic_id = ids::topic(&DOMAIN_EVENTS_TOPIC);
    json!({
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {
            "Queues": [reference(&ids::queue(def))],
            "PolicyDocument": policy_document(vec![json!({
                "Sid": "DomainEventsTopicSends",
                "Effect": "Allow",
                "Principal": { "Service": "sns.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": get_att(&ids::queue(def), "Arn"),
                "Condition": { "ArnEquals": { "aws:SourceArn": reference(&topic_id) } },
            })]),
        },
    })
}

fn filter_policy(def: &QueueDef) -> Value {
    serde_json::from_str(&def.filter_policy_json()).unwrap_or(Value::Null)
}

fn subscription(def: &QueueDef) -> Value {
    json!({
        "Type": "AWS::SNS::Subscription",
        // SNS checks on Subscribe that it may send to the queue.
        "DependsOn": [ids::queue_policy(def)],
        "Properties": {
            "TopicArn": reference(&ids::topic(&DOMAIN_EVENTS_TOPIC)),
            "Protocol": "sqs",
            "Endpoint": get_att(&ids::queue(def), "Arn"),
            "FilterPolicyScope": "MessageAttributes",
            "FilterPolicy": filter_policy(def),
            "RawMessageDelivery": def.raw_message_delivery,
        },
    })
}

fn queue_alarm(queue_id: &str, what: &str) -> Value {
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": format!("{what}: messages are waiting in {queue_id}; look at them and redrive"),
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{ "Name": "QueueName", "Value": get_att(queue_id, "QueueName") }],
            "Statistic": "Maximum",
            // SQS sends its metrics every five minutes.
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [reference(ids::ALARM_TOPIC)],
            "OKActions": [reference(ids::ALARM_TOPIC)],
        },
    })
}

/// The projection a projector queue feeds: `users-projector` → `users`.
pub fn projection_of(def: &QueueDef) -> &'static str {
    def.name.strip_suffix("-projector").unwrap_or(def.name)
}

/// Alarms when the projection's lag (the metric its projector emits each batch, see
/// `projectors::metrics`) stays above the `ProjectionLagAlarmSeconds` parameter for a minute.
fn lag_alarm(def: &QueueDef) -> Value {
    let projection = projection_of(def);
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": format!("The {projection} projection applies events later than the threshold after they were recorded; `replay status` shows its queue and dead letters"),
            "Namespace": schema::metrics::NAMESPACE,
            "MetricName": schema::metrics::LAG_SECONDS,
            "Dimensions": [{ "Name": schema::metrics::PROJECTION, "Value": projection }],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": reference(LAG_ALARM_PARAMETER),
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [reference(ids::ALARM_TOPIC)],
            "OKActions": [reference(ids::ALARM_TOPIC)],
        },
    })
}

fn iterator_age_alarm() -> Value {
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": "The fan-out lags behind the events table's stream by more than a minute",
            "Namespace": "AWS/Lambda",
            "MetricName": "IteratorAge",
            "Dimensions": [{ "Name": "FunctionName", "Value": reference(&ids::function(FAN_OUT.bin)) }],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": ITERATOR_AGE_ALARM_MS,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [reference(ids::ALARM_TOPIC)],
            "OKActions": [reference(ids::ALARM_TOPIC)],
        },
    })
}

fn log_group(def: &FunctionDef) -> Value {
    json!({
        "Type": "AWS::Logs::LogGroup",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "LogGroupName": sub(format!("/aws/lambda/${{AWS::StackName}}-{}", def.bin)),
            "RetentionInDays": LOG_RETENTION_DAYS,
        },
    })
}

fn sorted(actions: &[&str]) -> Vec<String> {
    let set: BTreeSet<String> = actions.iter().map(|a| (*a).to_owned()).collect();
    set.into_iter().collect()
}

/// The suffix pattern of the versions a replay creates of `table`, if it has versions: the
/// read models' own tables and the checkpoints; never the write side's tables (events,
/// uniques, snapshots).
fn versioned_pattern(table: &TableDef) -> Option<&'static str> {
    if table.name == schema::checkpoints::TABLE.name {
        Some("-*-v*")
    } else if [
        schema::events::TABLE.name,
        schema::uniques::TABLE.name,
        schema::snapshots::TABLE.name,
    ]
    .contains(&table.name)
    {
        None
    } else {
        Some("-v*")
    }
}

/// The statements of a function's role, each scoped to the exact ARNs it needs.
fn role_statements(def: &FunctionDef) -> Vec<Value> {
    let mut out = vec![json!({
        "Sid": "WriteOwnLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": get_att(&ids::log_group(def.bin), "Arn"),
    })];
    for access in def.tables {
        let table_id = ids::table(access.table);
        let mut resources = vec![get_att(&table_id, "Arn")];
        for index in access.indexes {
            resources.push(sub(format!("${{{table_id}.Arn}}/index/{index}")));
        }
        // The versions a replay builds beside the table (`replay`, `common::projections`):
        // `<table>-v<n>` for a read model, `checkpoints-<projection>-v<n>` for checkpoints.
        if let Some(pattern) = versioned_pattern(access.table) {
            resources.push(sub(format!("${{{table_id}.Arn}}{pattern}")));
            for index in access.indexes {
                resources.push(sub(format!("${{{table_id}.Arn}}{pattern}/index/{index}")));
            }
        }
        out.push(json!({
            "Sid": format!("{}Table", pascal(access.table.name)),
            "Effect": "Allow",
            "Action": sorted(access.actions),
            "Resource": resources,
        }));
    }
    match def.trigger {
        Trigger::Http(_) => {}
        Trigger::Stream(mapping) => {
            let table_id = ids::table(table_def(mapping.table));
            out.push(json!({
                "Sid": "ReadEventsStream",
                "Effect": "Allow",
                "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                "Resource": get_att(&table_id, "StreamArn"),
            }));
            out.push(json!({
                "Sid": "ListEventsStreams",
                "Effect": "Allow",
                "Action": ["dynamodb:ListStreams"],
                "Resource": sub(format!("${{{table_id}.Arn}}/stream/*")),
            }));
            out.push(json!({
                "Sid": "ReportFailedBatches",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": get_att(&ids::queue_named(FAN_OUT_FAILURES_QUEUE), "Arn"),
            }));
        }
        Trigger::Queue(queue) => {
            out.push(json!({
                "Sid": format!("Consume{}Queue", pascal(queue.name)),
                "Effect": "Allow",
                "Action": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
                "Resource": get_att(&ids::queue(queue), "Arn"),
            }));
        }
    }
    if def.publishes_events {
        out.push(json!({
            "Sid": "PublishDomainEvents",
            "Effect": "Allow",
            // PublishBatch is authorised as sns:Publish.
            "Action": ["sns:Publish"],
            "Resource": reference(&ids::topic(&DOMAIN_EVENTS_TOPIC)),
        }));
    }
    out
}

fn role(def: &FunctionDef) -> Value {
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": format!("Execution role of the {} function (least privilege)", def.bin),
            "AssumeRolePolicyDocument": policy_document(vec![json!({
                "Effect": "Allow",
                "Principal": { "Service": "lambda.amazonaws.com" },
                "Action": "sts:AssumeRole",
            })]),
            "Policies": [{
                "PolicyName": def.bin,
                "PolicyDocument": policy_document(role_statements(def)),
            }],
        },
    })
}

fn table_def(name: &str) -> &'static TableDef {
    TABLES
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no table named {name} in resources::TABLES"))
}

fn function(def: &FunctionDef) -> Value {
    let mut env = Map::new();
    env.insert(
        "CONDUIT_TABLE_PREFIX".into(),
        sub("${AWS::StackName}-".to_owned()),
    );
    env.insert("RUST_LOG".into(), reference("LogLevel"));
    if def.jwt {
        // Resolved by CloudFormation at deploy time: the template never holds the secret.
        env.insert(
            "JWT_SECRET".into(),
            sub("{{resolve:secretsmanager:${JwtSecretArn}:SecretString}}".to_owned()),
        );
        env.insert("JWT_TTL_SECONDS".into(), reference("JwtTtlSeconds"));
    }
    if def.publishes_events {
        env.insert(
            "CONDUIT_TOPIC_ARN".into(),
            reference(&ids::topic(&DOMAIN_EVENTS_TOPIC)),
        );
    }
    if def.search != SearchAccess::None {
        env.insert("CONDUIT_SEARCH".into(), json!("opensearch"));
        env.insert(
            "OPENSEARCH_URL".into(),
            sub(format!(
                "https://${{{}.DomainEndpoint}}",
                ids::SEARCH_DOMAIN
            )),
        );
    }

    let mut events = Map::new();
    match def.trigger {
        Trigger::Http(methods) => {
            for method in methods {
                events.insert(
                    pascal(&method.to_ascii_lowercase()),
                    json!({
                        "Type": "HttpApi",
                        "Properties": {
                            "ApiId": reference(ids::HTTP_API),
                            "Method": method,
                            "Path": "/api/{proxy+}",
                            "PayloadFormatVersion": "2.0",
                        },
                    }),
                );
            }
        }
        Trigger::Stream(mapping) => {
            let mut props = Map::new();
            props.insert(
                "Stream".into(),
                get_att(&ids::table(table_def(mapping.table)), "StreamArn"),
            );
            props.insert(
                "StartingPosition".into(),
                mapping.starting_position.as_str().into(),
            );
            props.insert("BatchSize".into(), mapping.batch_size.into());
            props.insert(
                "BisectBatchOnFunctionError".into(),
                mapping.bisect_batch_on_function_error.into(),
            );
            props.insert(
                "MaximumRetryAttempts".into(),
                mapping.maximum_retry_attempts.into(),
            );
            props.insert(
                "DestinationConfig".into(),
                json!({ "OnFailure": {
                    "Destination": get_att(&ids::queue_named(FAN_OUT_FAILURES_QUEUE), "Arn"),
                } }),
            );
            if mapping.report_batch_item_failures {
                props.insert(
                    "FunctionResponseTypes".into(),
                    json!(["ReportBatchItemFailures"]),
                );
            }
            events.insert(
                format!("{}Stream", pascal(mapping.table)),
                json!({ "Type": "DynamoDB", "Properties": props }),
            );
        }
        Trigger::Queue(queue) => {
            let mut props = Map::new();
            props.insert("Queue".into(), get_att(&ids::queue(queue), "Arn"));
            props.insert("BatchSize".into(), queue.batch_size.into());
            if queue.report_batch_item_failures {
                props.insert(
                    "FunctionResponseTypes".into(),
                    json!(["ReportBatchItemFailures"]),
                );
            }
            events.insert(
                pascal(queue.name) + "Queue",
                json!({ "Type": "SQS", "Properties": props }),
            );
        }
    }

    json!({
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "FunctionName": stack_name(def.bin),
            "Description": def.description,
            "CodeUri": code_uri(def.bin),
            "Handler": "bootstrap",
            "Runtime": "provided.al2023",
            "Architectures": ["x86_64"],
            "MemorySize": def.memory_mb,
            "Timeout": def.timeout_secs,
            "Role": get_att(&ids::role(def.bin), "Arn"),
            "LoggingConfig": { "LogGroup": reference(&ids::log_group(def.bin)) },
            "Environment": { "Variables": env },
            "Events": events,
        },
    })
}

fn http_api() -> Value {
    json!({
        "Type": "AWS::Serverless::HttpApi",
        "Properties": {
            "Description": "The RealWorld API under /api: GET to query-api, POST/PUT/DELETE to command-api",
            "FailOnWarnings": true,
            "CorsConfiguration": {
                "AllowOrigins": ["*"],
                "AllowMethods": ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                "AllowHeaders": [
                    "authorization",
                    "content-type",
                    schema::headers::MIN_POSITION_HEADER,
                    "prefer",
                ],
                "ExposeHeaders": [
                    schema::headers::POSITION_HEADER,
                    schema::headers::CONSISTENCY_HEADER,
                    schema::headers::BEHIND_HEADER,
                    "preference-applied",
                    "server-timing",
                    "conduit-next-cursor",
                ],
                "MaxAge": 600,
            },
        },
    })
}

fn search_domain() -> Value {
    let readers: Vec<Value> = FUNCTIONS
        .iter()
        .filter(|f| f.search != SearchAccess::None)
        .map(|f| json!({
            "Sid": format!("{}{}", pascal(f.bin), if f.search == SearchAccess::Write { "Writes" } else { "Reads" }),
            "Effect": "Allow",
            "Principal": { "AWS": get_att(&ids::role(f.bin), "Arn") },
            "Action": sorted(f.search.actions()),
            "Resource": sub("arn:${AWS::Partition}:es:${AWS::Region}:${AWS::AccountId}:domain/${SearchDomainName}/*"),
        }))
        .collect();
    json!({
        "Type": "AWS::OpenSearchService::Domain",
        // A projection: rebuilt from the events by replay.
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "DomainName": reference("SearchDomainName"),
            "EngineVersion": OPENSEARCH_ENGINE_VERSION,
            "ClusterConfig": {
                "InstanceType": reference("SearchInstanceType"),
                "InstanceCount": 1,
                "DedicatedMasterEnabled": false,
                "ZoneAwarenessEnabled": false,
            },
            "EBSOptions": { "EBSEnabled": true, "VolumeType": "gp3", "VolumeSize": 10 },
            "EncryptionAtRestOptions": { "Enabled": true },
            "NodeToNodeEncryptionOptions": { "Enabled": true },
            "DomainEndpointOptions": {
                "EnforceHTTPS": true,
                "TLSSecurityPolicy": "Policy-Min-TLS-1-2-2019-07",
            },
            "AccessPolicies": policy_document(readers),
        },
    })
}

fn parameters() -> Value {
    json!({
        "JwtSecretArn": {
            "Type": "String",
            "Description": "ARN of a Secrets Manager secret whose SecretString is the HS256 key of the API tokens (at least 32 bytes); create it before deploying (see the README, Deploy to AWS)",
            "AllowedPattern": "^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$",
            "ConstraintDescription": "the full ARN of a Secrets Manager secret",
        },
        "JwtTtlSeconds": {
            "Type": "Number",
            "Description": "Lifetime of API tokens in seconds",
            "Default": 86400,
            "MinValue": 60,
        },
        "LogLevel": {
            "Type": "String",
            "Description": "RUST_LOG of every function (tracing EnvFilter syntax)",
            "Default": "info",
        },
        "SearchDomainName": {
            "Type": "String",
            "Description": "Name of the OpenSearch domain (unique in the account and region)",
            "Default": "conduit-search",
            "AllowedPattern": "^[a-z][a-z0-9-]{2,27}$",
            "ConstraintDescription": "3 to 28 lowercase letters, digits or hyphens, starting with a letter",
        },
        "SearchInstanceType": {
            "Type": "String",
            "Description": "Instance type of the single OpenSearch data node (T2 types lack encryption at rest)",
            "Default": "t3.small.search",
            "AllowedValues": ["t3.small.search", "t3.medium.search", "m6g.large.search", "r6g.large.search"],
        },
        LAG_ALARM_PARAMETER: {
            "Type": "Number",
            "Description": "Seconds of projection lag (an event applied that long after it was recorded) above which a projection's lag alarm fires",
            "Default": DEFAULT_LAG_ALARM_SECONDS,
            "MinValue": 1,
        },
        "AlarmEmail": {
            "Type": "String",
            "Description": "E-mail address the alarms are sent to (empty: subscribe to the AlarmTopic output yourself)",
            "Default": "",
        },
    })
}

/// The deployment template (AWS SAM, JSON).
pub fn sam_template() -> Value {
    let mut resources = Map::new();
    let mut put = |id: String, value: Value| {
        let previous = resources.insert(id.clone(), value);
        assert!(previous.is_none(), "two resources with logical id {id}");
    };

    for def in TABLES {
        put(ids::table(def), table(def));
    }
    put(
        ids::topic(&DOMAIN_EVENTS_TOPIC),
        topic(&DOMAIN_EVENTS_TOPIC),
    );
    for def in PROJECTOR_QUEUES {
        put(
            ids::dlq(def),
            plain_queue(&def.dlq_name(), def.dlq_retention_secs),
        );
        put(ids::queue(def), projector_queue(def));
        put(ids::queue_policy(def), queue_policy(def));
        put(ids::subscription(def), subscription(def));
        put(
            ids::queue_alarm(&ids::dlq(def)),
            queue_alarm(&ids::dlq(def), &format!("{} dead letters", def.name)),
        );
        put(ids::lag_alarm(def), lag_alarm(def));
    }
    let failures = ids::queue_named(FAN_OUT_FAILURES_QUEUE);
    put(
        failures.clone(),
        plain_queue(FAN_OUT_FAILURES_QUEUE, DLQ_RETENTION_SECS),
    );
    put(
        ids::queue_alarm(&failures),
        queue_alarm(&failures, "stream batches the fan-out gave up on"),
    );
    for def in FUNCTIONS {
        put(ids::log_group(def.bin), log_group(def));
        put(ids::role(def.bin), role(def));
        put(ids::function(def.bin), function(def));
    }
    put(ids::HTTP_API.to_owned(), http_api());
    put(ids::SEARCH_DOMAIN.to_owned(), search_domain());
    put(
        ids::ALARM_TOPIC.to_owned(),
        json!({
            "Type": "AWS::SNS::Topic",
            "Properties": { "TopicName": stack_name("alarms") },
        }),
    );
    put(
        ids::ALARM_EMAIL_SUBSCRIPTION.to_owned(),
        json!({
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Properties": {
                "TopicArn": reference(ids::ALARM_TOPIC),
                "Protocol": "email",
                "Endpoint": reference("AlarmEmail"),
            },
        }),
    );
    put(ids::ITERATOR_AGE_ALARM.to_owned(), iterator_age_alarm());

    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "Conduit-ES: the event-sourced RealWorld API (DynamoDB events table and stream, fan-out to SNS, one SQS queue with DLQ per projector, HTTP API). The OpenSearch domain is written by the search projector and read by query-api. GENERATED from schema/src/lib.rs and infra/src/ by `cargo run -p infra --bin gen-template`; do not edit.",
        "Parameters": parameters(),
        "Conditions": {
            "HasAlarmEmail": { "Fn::Not": [{ "Fn::Equals": [reference("AlarmEmail"), ""] }] },
        },
        "Resources": resources,
        "Outputs": {
            "ApiUrl": {
                "Description": "Base URL of the RealWorld API",
                "Value": sub(format!("https://${{{}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/api", ids::HTTP_API)),
            },
            "DomainEventsTopicArn": {
                "Description": "The topic every domain event is published to",
                "Value": reference(&ids::topic(&DOMAIN_EVENTS_TOPIC)),
            },
            "TablePrefix": {
                "Description": "CONDUIT_TABLE_PREFIX of this stack (tools such as replay need it)",
                "Value": sub("${AWS::StackName}-".to_owned()),
            },
            "SearchDomainEndpoint": {
                "Description": "HTTPS endpoint of the OpenSearch domain",
                "Value": sub(format!("https://${{{}.DomainEndpoint}}", ids::SEARCH_DOMAIN)),
            },
            "AlarmTopicArn": {
                "Description": "Subscribe to this topic to receive the alarms",
                "Value": reference(ids::ALARM_TOPIC),
            },
        },
    })
}

/// The template as written to `infra/template.json`: pretty JSON (keys sorted, as
/// `serde_json`'s map is without `preserve_order`) and a final newline.
pub fn render() -> String {
    let mut text = serde_json::to_string_pretty(&sam_template())
        .unwrap_or_else(|e| panic!("the template does not serialise: {e}"));
    text.push('\n');
    text
}

/// Every IAM action each function gets, sorted: its role's statements, plus what resource
/// policies (the search domain's) grant its role.
pub fn iam_actions() -> BTreeMap<&'static str, Vec<String>> {
    let template = sam_template();
    let resources = &template["Resources"];
    let mut out = BTreeMap::new();
    for def in FUNCTIONS {
        let role_id = ids::role(def.bin);
        let mut actions = BTreeSet::new();
        let policies = resources[&role_id]["Properties"]["Policies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for policy in &policies {
            collect_actions(&policy["PolicyDocument"], |_| true, &mut actions);
        }
        let role_arn = get_att(&role_id, "Arn");
        for resource in resources.as_object().into_iter().flat_map(|m| m.values()) {
            let document = &resource["Properties"]["AccessPolicies"];
            collect_actions(
                document,
                |statement| statement["Principal"]["AWS"] == role_arn,
                &mut actions,
            );
        }
        out.insert(def.bin, actions.into_iter().collect());
    }
    out
}

fn collect_actions(document: &Value, keep: impl Fn(&Value) -> bool, out: &mut BTreeSet<String>) {
    let statements = document["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for statement in statements
        .iter()
        .filter(|s| s["Effect"] == "Allow" && keep(s))
    {
        match &statement["Action"] {
            Value::String(action) => {
                out.insert(action.clone());
            }
            Value::Array(list) => {
                out.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_are_pascal_case() {
        assert_eq!(pascal("users-projector"), "UsersProjector");
        assert_eq!(pascal("events"), "Events");
        assert_eq!(
            ids::dlq(&USERS_PROJECTOR_QUEUE),
            "UsersProjectorDeadLetterQueue"
        );
        assert_eq!(ids::function("fan-out"), "FanOutFunction");
    }

    #[test]
    fn the_template_renders() {
        let text = render();
        assert!(text.ends_with("}\n"));
        assert!(text.contains("AWS::Serverless::Function"));
    }
}
