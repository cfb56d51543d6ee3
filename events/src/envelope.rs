//! The stored schema of an event, kept apart from the domain event types so old versions can be upcast.
//!
//! Every stored event keeps the version it was written with, forever. Reading goes through
//! [`EventSchema::from_stored`], which first lifts an older payload to today's shape with the
//! enum's chain of [`Upcaster`]s (version n to n + 1, one step at a time), then deserializes
//! it. Aggregate loads, the projectors, replay and the events API all read this way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Who caused an event and in answer to what; stored with every event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The user id of the caller, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Shared by every event that one user request caused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The event or command this event answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// The request id of the HTTP request or Lambda invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An event about to be appended: everything but its position.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: u32,
    pub payload: Value,
    pub metadata: Metadata,
}

/// An event as it is stored in the `events` table and published to the topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// `User`, `Article`, ...
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Position in the aggregate's own stream, from 1.
    pub sequence: u64,
    pub event_id: Uuid,
    /// Past tense: `UserRegistered`.
    pub event_type: String,
    pub event_version: u32,
    pub payload: Value,
    #[serde(default)]
    pub metadata: Metadata,
    /// ISO 8601 with milliseconds.
    pub recorded_at: String,
}

impl StoredEvent {
    /// The partition key of the aggregate: `<AggregateType>#<id>`.
    pub fn stream_key(&self) -> String {
        stream_key(&self.aggregate_type, &self.aggregate_id)
    }

    /// The event with every secret field (password hashes) removed: what may leave the write side.
    pub fn without_secrets(&self) -> StoredEvent {
        let mut event = self.clone();
        if let Value::Object(fields) = &mut event.payload {
            for secret in SECRET_FIELDS {
                fields.remove(*secret);
            }
        }
        event
    }
}

/// Payload fields that never leave the write side.
pub const SECRET_FIELDS: &[&str] = &["passwordHash"];

/// The partition key of an aggregate's stream.
pub fn stream_key(aggregate_type: &str, aggregate_id: &str) -> String {
    format!("{aggregate_type}#{aggregate_id}")
}

/// A change to the `uniques` table made in the same transaction as the events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UniqueChange {
    /// Take `key` for the aggregate; fails the commit if someone else holds it.
    Claim { key: String },
    /// Give `key` back; only its holder can.
    Release { key: String },
    /// Take `key` for good, storing `attributes` beside its owner (names other than `pk`,
    /// `owner` and `claimedAt`); fails the commit if anyone holds the key, the aggregate itself
    /// included. A posted event's id is claimed so: a second use is a replay, never a new claim.
    ClaimOnce {
        key: String,
        attributes: BTreeMap<String, String>,
    },
}

/// Why a stored event could not be read back as a domain event.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("unknown event type {event_type} version {version}")]
    Unknown { event_type: String, version: u32 },
    #[error("event {event_type} v{version} has an invalid payload: {source}")]
    Payload {
        event_type: String,
        version: u32,
        #[source]
        source: serde_json::Error,
    },
}

/// One step of an event type's stored schema: turns a payload of version `from` into one of
/// version `from + 1`. It sees the payload only, never the envelope, so that an event reads
/// the same wherever it is read.
#[derive(Clone, Copy, Debug)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from: u32,
    pub step: fn(Value) -> Value,
}

/// How a domain event enum maps to and from its stored form.
///
/// Domain enums are serialized by serde in the externally tagged form
/// (`{"UserRegistered": {...}}`): the tag becomes `eventType`, the content `payload`.
pub trait EventSchema: Sized + Serialize + for<'de> Deserialize<'de> {
    /// The steps from every older version of this enum's event types to the current one.
    /// An event type's current version is one more than its number of steps: adding a step is
    /// what makes a new version, and new events are written in it.
    const UPCASTERS: &'static [Upcaster] = &[];

    /// The version events of `event_type` are written with today (1 for a type with no
    /// upcaster, and for a type this enum does not know).
    fn current_version(event_type: &str) -> u32 {
        let steps = Self::UPCASTERS
            .iter()
            .filter(|upcaster| upcaster.event_type == event_type)
            .count();
        1 + u32::try_from(steps).unwrap_or(u32::MAX - 1)
    }

    /// The uniqueness claims and releases this event implies for its aggregate.
    fn unique_changes(&self) -> Vec<UniqueChange> {
        Vec::new()
    }

    /// Splits the event into its stored type name, current version and payload.
    fn to_stored(&self) -> (String, u32, Value) {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) if map.len() == 1 => {
                let (event_type, payload) = map.into_iter().next().unwrap_or_default();
                let version = Self::current_version(&event_type);
                (event_type, version, payload)
            }
            // Unit variants serialize as a bare string.
            Ok(Value::String(event_type)) => {
                let version = Self::current_version(&event_type);
                (event_type, version, Value::Null)
            }
            _ => unreachable_shape(),
        }
    }

    /// Whether `event_type` names an event of this enum (in any version).
    fn knows_type(event_type: &str) -> bool {
        // Every variant carries fields, so an empty payload reads as a payload error for a
        // known type and as an unknown variant for any other name.
        !matches!(
            Self::from_stored(
                event_type,
                Self::current_version(event_type),
                &Value::Object(Default::default())
            ),
            Err(SchemaError::Unknown { .. })
        )
    }

    /// `payload`, stored as `version` of `event_type`, in the current version's shape: every
    /// step from `version` on applied in turn. A version from the future, 0, or a gap in the
    /// chain is [`SchemaError::Unknown`].
    fn upcast(event_type: &str, version: u32, payload: Value) -> Result<Value, SchemaError> {
        let current = Self::current_version(event_type);
        let unknown = || SchemaError::Unknown {
            event_type: event_type.to_owned(),
            version,
        };
        if version == 0 || version > current {
            return Err(unknown());
        }
        let mut payload = payload;
        for from in version..current {
            let upcaster = Self::UPCASTERS
                .iter()
                .find(|u| u.event_type == event_type && u.from == from)
                .ok_or_else(unknown)?;
            payload = (upcaster.step)(payload);
        }
        Ok(payload)
    }

    /// Reads a stored event back, upcasting older versions.
    fn from_stored(event_type: &str, version: u32, payload: &Value) -> Result<Self, SchemaError> {
        let payload = Self::upcast(event_type, version, payload.clone())?;
        let tagged = if payload.is_null() {
            Value::String(event_type.to_owned())
        } else {
            serde_json::json!({ event_type: payload })
        };
        serde_json::from_value(tagged).map_err(|source| {
            if source.to_string().contains("unknown variant") {
                SchemaError::Unknown {
                    event_type: event_type.to_owned(),
                    version,
                }
            } else {
                SchemaError::Payload {
                    event_type: event_type.to_owned(),
                    version,
                    source,
                }
            }
        })
    }
}

#[cold]
fn unreachable_shape() -> (String, u32, Value) {
    // Only reachable if a domain event enum stops being a serde enum, which the
    // round-trip tests of every event catch.
    (String::from("Invalid"), 0, Value::Null)
}
