//! Events posted from outside (`POST /api/events`): the request's schema, the content hash that
//! makes a post idempotent, and each aggregate's own `handle` deciding whether it would have
//! appended them.
//!
//! A posted event is accepted when the aggregate, given the command the event stands for,
//! decides exactly that event in its current state: the rules are the aggregate's, written
//! once, for commands and posted events alike.

mod append;
mod article;
mod comment;
mod favorite;
mod user;

use std::collections::{BTreeMap, BTreeSet};

use cqrs_es::event_sink::EventSink;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::envelope::{EventSchema, SchemaError, StoredEvent, SECRET_FIELDS};
use crate::snapshot::Snapshotted;
use crate::time_format;
use crate::user::FieldError;

pub use append::{PostError, PostOutcome};

/// Most events one post may carry: with an id claim each and the uniqueness claims they imply,
/// a post stays one DynamoDB transaction (at most 100 actions).
pub const MAX_EVENTS_PER_POST: usize = 30;

/// Longest event type name read.
const MAX_TYPE_CHARS: usize = 100;

/// A rejected field of a post, as RealWorld reports it: `{"errors": {field: [message]}}`. The
/// field is a path into the request body (`events[0].data.title`) or, inside a [`Refusal`],
/// into one event (`data.title`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same problem under `events[index].`.
    pub fn of_event(self, index: usize) -> Self {
        Self::new(format!("events[{index}].{}", self.field), self.message)
    }
}

/// The aggregate types events can be posted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateKind {
    User,
    Article,
    ArticleComments,
    Favorite,
}

impl AggregateKind {
    pub const ALL: [AggregateKind; 4] = [
        AggregateKind::User,
        AggregateKind::Article,
        AggregateKind::ArticleComments,
        AggregateKind::Favorite,
    ];

    /// The aggregate type name, as in stream keys.
    pub fn name(self) -> &'static str {
        match self {
            AggregateKind::User => crate::user::AGGREGATE_TYPE,
            AggregateKind::Article => crate::article::AGGREGATE_TYPE,
            AggregateKind::ArticleComments => crate::comment::AGGREGATE_TYPE,
            AggregateKind::Favorite => crate::favorite::AGGREGATE_TYPE,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// `event` (of this kind) in its type's current version: the payload upcast, the version
    /// set to the current one. Event types the kind does not know come back unchanged.
    pub fn in_current_version(self, event: StoredEvent) -> Result<StoredEvent, SchemaError> {
        fn lift<E: EventSchema>(mut event: StoredEvent) -> Result<StoredEvent, SchemaError> {
            let payload = std::mem::take(&mut event.payload);
            event.payload = E::upcast(&event.event_type, event.event_version, payload)?;
            event.event_version = E::current_version(&event.event_type);
            Ok(event)
        }
        match self {
            AggregateKind::User => lift::<crate::user::UserEvent>(event),
            AggregateKind::Article => lift::<crate::article::ArticleEvent>(event),
            AggregateKind::ArticleComments => lift::<crate::comment::CommentEvent>(event),
            AggregateKind::Favorite => lift::<crate::favorite::FavoriteEvent>(event),
        }
    }
}

/// Whether `id` can name an aggregate: 1 to 200 ASCII letters, digits, `-`, `_`, `:` or `.`
/// (what a stream position may hold).
pub fn valid_aggregate_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
}

/// Refuses the id of a new user or article unless it is 1 to 64 ASCII letters, digits, `-` or
/// `_` (a UUID is): other ids are built from these with `:`.
pub fn check_new_id(id: &str) -> Result<(), Refusal> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(Refusal::invalid(
            "aggregateId",
            "must be 1 to 64 letters, digits, '-' or '_' for a new aggregate",
        ))
    }
}

/// Refuses a timestamp that is not `YYYY-MM-DDTHH:MM:SS.mmmZ`, as every event writes them.
pub fn check_timestamp(field: &str, value: &str) -> Result<(), Refusal> {
    match time_format::parse(value) {
        Some(at) if time_format::format_millis(at) == value => Ok(()),
        _ => Err(Refusal::invalid(
            format!("data.{field}"),
            "must be a UTC timestamp with milliseconds (2024-01-31T12:00:00.000Z)",
        )),
    }
}

/// The key an event id claims in the `uniques` table.
pub fn event_id_key(event_id: &Uuid) -> String {
    format!("event#{event_id}")
}

/// One posted event whose envelope passed; its data is not yet read as a domain event.
#[derive(Clone, Debug, PartialEq)]
pub struct RawEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub version: u32,
    pub data: Value,
    /// SHA-256 of the event's canonical JSON: what "the same content" means for a replay.
    pub content_hash: String,
}

/// A post whose envelope passed: events of one aggregate.
#[derive(Clone, Debug, PartialEq)]
pub struct RawPost {
    pub kind: AggregateKind,
    pub aggregate_id: String,
    /// The sequence of the aggregate's last event the caller expects (0: a new aggregate).
    pub expected_sequence: Option<u64>,
    pub events: Vec<RawEvent>,
}

/// One posted event read as a domain event.
#[derive(Clone, Debug, PartialEq)]
pub struct PostedEvent<E> {
    pub event_id: Uuid,
    pub event: E,
    pub content_hash: String,
}

/// A post whose events all read as domain events of one aggregate.
#[derive(Clone, Debug, PartialEq)]
pub struct Post<E> {
    pub aggregate_id: String,
    pub expected_sequence: Option<u64>,
    pub events: Vec<PostedEvent<E>>,
}

impl RawPost {
    /// Reads a request body `{"events": [...], "expectedSequence": n}`, reporting every
    /// problem of the envelope at once. The events' data is read by [`RawPost::typed`].
    pub fn parse(body: &Value) -> Result<Self, Vec<Problem>> {
        let Some(body) = body.as_object() else {
            return Err(vec![Problem::new(
                "body",
                "must be an object with a list of events",
            )]);
        };
        let mut problems = Vec::new();
        let expected_sequence = match body.get("expectedSequence") {
            None | Some(Value::Null) => None,
            Some(value) => {
                if value.as_u64().is_none() {
                    problems.push(Problem::new(
                        "expectedSequence",
                        "must be an integer from 0 (a new aggregate)",
                    ));
                }
                value.as_u64()
            }
        };
        let events: &[Value] = match body.get("events") {
            None | Some(Value::Null) => {
                problems.push(Problem::new("events", "can't be blank"));
                &[]
            }
            Some(Value::Array(events)) if events.is_empty() => {
                problems.push(Problem::new("events", "must hold at least one event"));
                &[]
            }
            Some(Value::Array(events)) if events.len() > MAX_EVENTS_PER_POST => {
                problems.push(Problem::new(
                    "events",
                    format!("may hold at most {MAX_EVENTS_PER_POST} events"),
                ));
                &[]
            }
            Some(Value::Array(events)) => events,
            Some(_) => {
                problems.push(Problem::new("events", "must be a list of events"));
                &[]
            }
        };
        let mut parsed = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let mut own = Vec::new();
            let envelope = envelope(event, &mut own);
            problems.extend(own.into_iter().map(|p| p.of_event(index)));
            parsed.extend(envelope);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let Some((kind, aggregate_id, _)) = parsed.first().cloned() else {
            return Err(vec![Problem::new("events", "can't be blank")]);
        };
        if parsed
            .iter()
            .any(|(k, id, _)| *k != kind || *id != aggregate_id)
        {
            return Err(vec![Problem::new(
                "events",
                "must all belong to one aggregate (one aggregateType and aggregateId)",
            )]);
        }
        let mut seen = BTreeSet::new();
        for (index, (_, _, event)) in parsed.iter().enumerate() {
            if !seen.insert(event.event_id) {
                problems
                    .push(Problem::new("eventId", "appears twice in the request").of_event(index));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            kind,
            aggregate_id,
            expected_sequence,
            events: parsed.into_iter().map(|(_, _, event)| event).collect(),
        })
    }

    /// Reads every event's data as an event of `E`: type and version known, data of the
    /// schema (no missing, mistyped or unknown field).
    pub fn typed<E: EventSchema>(self) -> Result<Post<E>, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut events = Vec::with_capacity(self.events.len());
        for (index, raw) in self.events.into_iter().enumerate() {
            match read_event::<E>(self.kind, &raw.event_type, raw.version, &raw.data) {
                Ok(event) => events.push(PostedEvent {
                    event_id: raw.event_id,
                    event,
                    content_hash: raw.content_hash,
                }),
                Err(own) => problems.extend(own.into_iter().map(|p| p.of_event(index))),
            }
        }
        if problems.is_empty() {
            Ok(Post {
                aggregate_id: self.aggregate_id,
                expected_sequence: self.expected_sequence,
                events,
            })
        } else {
            Err(problems)
        }
    }
}

/// Reads one event's envelope, pushing a problem per bad field.
fn envelope(
    event: &Value,
    problems: &mut Vec<Problem>,
) -> Option<(AggregateKind, String, RawEvent)> {
    let Some(fields) = event.as_object() else {
        problems.push(Problem::new("event", "must be an object"));
        return None;
    };
    let text = |name: &str, problems: &mut Vec<Problem>| match fields.get(name) {
        None | Some(Value::Null) => {
            problems.push(Problem::new(name, "can't be blank"));
            None
        }
        Some(Value::String(text)) if text.is_empty() => {
            problems.push(Problem::new(name, "can't be blank"));
            None
        }
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            problems.push(Problem::new(name, "must be a string"));
            None
        }
    };
    let event_id = text("eventId", problems).and_then(|id| match Uuid::parse_str(&id) {
        Ok(id) => Some(id),
        Err(_) => {
            problems.push(Problem::new("eventId", "is not a UUID"));
            None
        }
    });
    let event_type = text("type", problems).filter(|t| {
        let ok = t.len() <= MAX_TYPE_CHARS;
        if !ok {
            problems.push(Problem::new("type", "is too long"));
        }
        ok
    });
    let version = match fields.get("version") {
        None | Some(Value::Null) => {
            problems.push(Problem::new("version", "can't be blank"));
            None
        }
        Some(value) => {
            let version = value
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v >= 1);
            if version.is_none() {
                problems.push(Problem::new("version", "must be an integer from 1"));
            }
            version
        }
    };
    let kind = text("aggregateType", problems).and_then(|name| {
        let kind = AggregateKind::parse(&name);
        if kind.is_none() {
            let known: Vec<&str> = AggregateKind::ALL.iter().map(|k| k.name()).collect();
            problems.push(Problem::new(
                "aggregateType",
                format!("is not one of {}", known.join(", ")),
            ));
        }
        kind
    });
    let aggregate_id = text("aggregateId", problems).filter(|id| {
        let ok = valid_aggregate_id(id);
        if !ok {
            problems.push(Problem::new(
                "aggregateId",
                "must be 1 to 200 letters, digits, '-', '_', ':' or '.'",
            ));
        }
        ok
    });
    let data = match fields.get("data") {
        Some(data @ Value::Object(_)) => Some(data.clone()),
        None | Some(Value::Null) => {
            problems.push(Problem::new("data", "can't be blank"));
            None
        }
        Some(_) => {
            problems.push(Problem::new("data", "must be an object"));
            None
        }
    };
    let (event_id, event_type, version, kind, aggregate_id, data) = (
        event_id?,
        event_type?,
        version?,
        kind?,
        aggregate_id?,
        data?,
    );
    let content_hash = content_hash(kind, &aggregate_id, &event_id, &event_type, version, &data);
    Some((
        kind,
        aggregate_id,
        RawEvent {
            event_id,
            event_type,
            version,
            data,
            content_hash,
        },
    ))
}

/// SHA-256 (hex) of the canonical JSON of a posted event: object keys sorted, no spaces.
pub fn content_hash(
    kind: AggregateKind,
    aggregate_id: &str,
    event_id: &Uuid,
    event_type: &str,
    version: u32,
    data: &Value,
) -> String {
    let event = json!({
        "aggregateType": kind.name(),
        "aggregateId": aggregate_id,
        "eventId": event_id.to_string(),
        "type": event_type,
        "version": version,
        "data": data,
    });
    let mut text = String::new();
    canonical(&event, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Writes `value` as JSON with every object's keys sorted, whatever order the map keeps.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(fields) => {
            let sorted: BTreeMap<&String, &Value> = fields.iter().collect();
            out.push('{');
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Reads one event's data as an event of `E`, with a problem per bad field. Data of an older
/// version is upcast first, so that it is checked (and stored) as the current version; a field
/// the current version does not know is refused in every version, since upcasters carry
/// unknown fields through unchanged.
pub fn read_event<E: EventSchema>(
    kind: AggregateKind,
    event_type: &str,
    version: u32,
    data: &Value,
) -> Result<E, Vec<Problem>> {
    let current = E::current_version(event_type);
    let lifted = E::upcast(event_type, version, data.clone());
    match lifted
        .and_then(|lifted| E::from_stored(event_type, current, &lifted).map(|e| (e, lifted)))
    {
        Ok((event, lifted)) => {
            let (_, _, known) = event.to_stored();
            let unknown: Vec<Problem> = lifted
                .as_object()
                .into_iter()
                .flat_map(|fields| fields.keys())
                .filter(|name| known.get(name.as_str()).is_none())
                .map(|name| {
                    Problem::new(
                        format!("data.{name}"),
                        format!("is not a field of {event_type} version {version}"),
                    )
                })
                .collect();
            if unknown.is_empty() {
                Ok(event)
            } else {
                Err(unknown)
            }
        }
        Err(SchemaError::Unknown { .. }) if !E::knows_type(event_type) => Err(vec![Problem::new(
            "type",
            format!("is not an event type of {}", kind.name()),
        )]),
        Err(SchemaError::Unknown { .. }) => Err(vec![Problem::new(
            "version",
            format!("{event_type} has no version {version} (the current one is {current})"),
        )]),
        Err(SchemaError::Payload { source, .. }) => {
            let lifted = E::upcast(event_type, version, data.clone()).unwrap_or_default();
            Err(vec![payload_problem::<E>(event_type, &lifted, &source)])
        }
    }
}

/// The field a payload error is about, found by reading the data again with its path tracked.
fn payload_problem<E: EventSchema>(
    event_type: &str,
    data: &Value,
    source: &serde_json::Error,
) -> Problem {
    let fallback = || Problem::new("data", source.to_string());
    let tagged = json!({ event_type: data });
    let Err(error) = serde_path_to_error::deserialize::<_, E>(&tagged) else {
        return fallback();
    };
    // The first segment is the variant (the type); the rest is the path inside the data.
    let mut field = String::from("data");
    for segment in error.path().iter().skip(1) {
        match segment {
            serde_path_to_error::Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                field.push('.');
                field.push_str(key);
            }
            serde_path_to_error::Segment::Enum { variant } => {
                field.push('.');
                field.push_str(variant);
            }
            serde_path_to_error::Segment::Unknown => field.push_str(".?"),
        }
    }
    let message = error.inner().to_string();
    // "missing field `title`" is about the field, not the object holding it.
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return Problem::new(format!("{field}.{name}"), "can't be blank");
    }
    Problem::new(field, message)
}

/// Why an aggregate refuses a posted event. The HTTP status each becomes is noted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 403: the caller may not post this event: the aggregate, or the name it acts in, is
    /// someone else's.
    Forbidden,
    /// 409: the aggregate exists already (a second registration or publication).
    Exists(String),
    /// 422: the event is invalid in the aggregate's state; problems name fields of the event
    /// (`data.slug`), and for an event that is not what the aggregate decides, what they must be.
    Invalid(Vec<Problem>),
}

impl Refusal {
    /// A 422 about one field of the event.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Refusal::Invalid(vec![Problem::new(field, message)])
    }

    /// A 422 for a field the aggregate's own parsing refused.
    pub fn field(error: FieldError) -> Self {
        Refusal::invalid(format!("data.{}", error.field), error.message)
    }
}

/// Collects the problems of several fields into one refusal.
#[derive(Debug, Default)]
pub struct Fields(Vec<Problem>);

impl Fields {
    /// Keeps the value, or records why the aggregate's parsing refused it.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result
            .map_err(|e| {
                self.0
                    .push(Problem::new(format!("data.{}", e.field), e.message))
            })
            .ok()
    }

    /// Keeps a refusal's problems.
    pub fn check_refusal(&mut self, result: Result<(), Refusal>) {
        if let Err(Refusal::Invalid(problems)) = result {
            self.0.extend(problems);
        }
    }

    /// The values when no field was refused.
    pub fn done<T>(self, values: Option<T>) -> Result<T, Refusal> {
        match values {
            Some(values) if self.0.is_empty() => Ok(values),
            _ => Err(Refusal::Invalid(self.0)),
        }
    }
}

/// A fact about another aggregate that deciding a posted event needs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fact {
    /// The article is published and not deleted.
    ArticleLive(String),
    /// The user is registered.
    UserRegistered(String),
}

/// The facts looked up for a post, each true or false.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts(BTreeMap<Fact, bool>);

impl Facts {
    pub fn insert(&mut self, fact: Fact, holds: bool) {
        self.0.insert(fact, holds);
    }

    /// Whether `fact` was looked up and holds.
    pub fn holds(&self, fact: &Fact) -> bool {
        self.0.get(fact).copied().unwrap_or(false)
    }
}

impl FromIterator<(Fact, bool)> for Facts {
    fn from_iter<I: IntoIterator<Item = (Fact, bool)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// An aggregate that accepts posted events: which command each event stands for, and who may
/// post it. Whether the event is right is decided by the aggregate's `handle`.
pub trait Postable: Snapshotted<Services = (), Event: EventSchema> + Clone {
    /// Refuses `event` on aggregate `aggregate_id` from `actor` before any state is read: the
    /// aggregate, or the name the event acts in, is someone else's (403), or the event's ids
    /// disagree with the aggregate's (422).
    fn authorize(aggregate_id: &str, event: &Self::Event, actor: &str) -> Result<(), Refusal>;

    /// The facts of other aggregates deciding `event` needs.
    fn needs(_event: &Self::Event, _actor: &str) -> Vec<Fact> {
        Vec::new()
    }

    /// The command that, in this state, should decide exactly `event` when `actor` posts it.
    fn command_for(
        &self,
        event: &Self::Event,
        actor: &str,
        facts: &Facts,
    ) -> Result<Self::Command, Refusal>;

    /// The aggregate's refusal of that command, as a refusal of the posted event.
    fn refusal(error: Self::Error) -> Refusal;
}

/// Checks posted events one after the other, each against the state the ones before it left:
/// the aggregate must decide exactly the posted event for the command it stands for. Returns
/// the state after all of them, or the index of the first refused event and why.
pub async fn check<A: Postable>(
    mut state: A,
    events: &[A::Event],
    actor: &str,
    facts: &Facts,
) -> Result<A, (usize, Refusal)> {
    for (index, event) in events.iter().enumerate() {
        state = check_one(state, event, actor, facts)
            .await
            .map_err(|refusal| (index, refusal))?;
    }
    Ok(state)
}

async fn check_one<A: Postable>(
    state: A,
    posted: &A::Event,
    actor: &str,
    facts: &Facts,
) -> Result<A, Refusal> {
    let command = state.command_for(posted, actor, facts)?;
    let mut after = state;
    let sink = EventSink::<A>::default();
    after
        .handle(command, &(), &sink)
        .await
        .map_err(A::refusal)?;
    match sink.collect().await.as_slice() {
        [decided] if decided == posted => Ok(after),
        [] => Err(Refusal::invalid(
            "type",
            "changes nothing in the aggregate's current state",
        )),
        [decided] => Err(Refusal::Invalid(differences(decided, posted))),
        _ => Err(Refusal::invalid(
            "type",
            "stands for more than one event in the aggregate's current state",
        )),
    }
}

/// The fields in which `posted` differs from what the aggregate `decided`, with what they must
/// be (secrets are not shown).
fn differences<E: EventSchema>(decided: &E, posted: &E) -> Vec<Problem> {
    let (decided_type, _, decided) = decided.to_stored();
    let (posted_type, _, posted) = posted.to_stored();
    if decided_type != posted_type {
        return vec![Problem::new("type", format!("must be {decided_type}"))];
    }
    let names: BTreeSet<&String> = decided
        .as_object()
        .into_iter()
        .chain(posted.as_object())
        .flat_map(|fields| fields.keys())
        .collect();
    let problems: Vec<Problem> = names
        .into_iter()
        .filter(|name| decided.get(name.as_str()) != posted.get(name.as_str()))
        .map(|name| {
            let message = match decided.get(name.as_str()) {
                _ if SECRET_FIELDS.contains(&name.as_str()) => {
                    "is not what the aggregate decides".to_owned()
                }
                Some(value) => format!("must be {value} in the aggregate's current state"),
                None => "must be absent".to_owned(),
            };
            Problem::new(format!("data.{name}"), message)
        })
        .collect();
    if problems.is_empty() {
        vec![Problem::new("data", "is not what the aggregate decides")]
    } else {
        problems
    }
}

#[cfg(test)]
mod tests;
