//! The one definition of every AWS resource of Conduit-ES besides the tables (those are in
//! [`schema`]): the topic, the projector queues with their dead-letter queues and
//! subscriptions, and the settings of the event source mappings.
//!
//! Everything here is plain data (`const`s of simple structs) so that the deployment template
//! can be generated from it and the local stack can provision exactly the same thing
//! (`local_aws::provision`). Physical names are `{prefix}{name}`, e.g. `conduit-events`; see
//! [`Names`].

use anyhow::bail;
use schema::{TableDef, TABLES};

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

/// Logical name of the queue receiving the descriptions of stream batches the fan-out gave
/// up on (the stream mapping's on-failure destination).
pub const FAN_OUT_FAILURES_QUEUE: &str = "fan-out-failures";

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
    table: schema::events::TABLE.name,
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

    /// Physical name of the queue of the stream batches the fan-out gave up on.
    pub fn fan_out_failures(&self) -> String {
        format!("{}{}", self.prefix, FAN_OUT_FAILURES_QUEUE)
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
    fn names_are_prefixed_and_validated() {
        let n = Names::new("conduit-");
        assert_eq!(n.table(&schema::events::TABLE), "conduit-events");
        assert_eq!(n.table_name("users"), "conduit-users");
        assert_eq!(n.domain_events_topic(), "conduit-domain-events");
        assert_eq!(n.queue(&USERS_PROJECTOR_QUEUE), "conduit-users-projector");
        assert_eq!(n.dlq(&USERS_PROJECTOR_QUEUE), "conduit-users-projector-dlq");
        assert!(n.validate().is_ok());
        assert!(Names::new("bad.prefix-").validate().is_err());
        assert!(Names::new("x".repeat(80)).validate().is_err());
    }
}
