//! The store's value types: events in and out, payloads, expected versions,
//! durability and read direction.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The condition an append puts on the stream's current version.
///
/// A stream's version is the event number of its last event (0-based), so a
/// stream holding one event is at version 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedVersion {
    /// No condition.
    Any,
    /// The stream must not exist (it has no event).
    NoStream,
    /// The stream must exist (it has at least one event).
    StreamExists,
    /// The stream's last event number must be exactly this.
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `current` (`None`: no stream) satisfies this.
    pub fn accepts(self, current: Option<u64>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::StreamExists => current.is_some(),
            ExpectedVersion::Exact(n) => current == Some(n),
        }
    }
}

/// `any`, `no_stream`, `stream_exists` or the number itself.
impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::StreamExists => f.write_str("stream_exists"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

/// Parses the [`Display`](fmt::Display) form: `any`, `no_stream`,
/// `stream_exists` or a number.
impl FromStr for ExpectedVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(ExpectedVersion::Any),
            "no_stream" => Ok(ExpectedVersion::NoStream),
            "stream_exists" => Ok(ExpectedVersion::StreamExists),
            n => n.parse().map(ExpectedVersion::Exact).map_err(|_| {
                format!(
                    "expected version {s:?}: expected any, no_stream, stream_exists or a number"
                )
            }),
        }
    }
}

/// When a commit counts as done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Durability {
    /// Every commit is flushed to the disk (`fdatasync`) before it is
    /// acknowledged: an acknowledged append survives a process crash and an
    /// operating-system crash or power loss. The default.
    #[default]
    Immediate,
    /// Commits are written to the file but not flushed: an acknowledged
    /// append survives a crash of the process, but may be lost (or, worst
    /// case, the file damaged) on an operating-system crash or power loss.
    /// For tests, benchmarks and data that can be rebuilt.
    Relaxed,
}

/// Parses `immediate` or `relaxed`.
impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "immediate" => Ok(Durability::Immediate),
            "relaxed" => Ok(Durability::Relaxed),
            other => Err(format!(
                "durability {other:?}: expected immediate or relaxed"
            )),
        }
    }
}

/// The order of a read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Direction {
    /// Ascending event numbers / positions, starting at `from`.
    #[default]
    Forward,
    /// Descending event numbers / positions, starting at `from`
    /// (`u64::MAX`: from the end).
    Backward,
}

/// Parses `forward` or `backward`.
impl FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "forward" => Ok(Direction::Forward),
            "backward" => Ok(Direction::Backward),
            other => Err(format!("direction {other:?}: expected forward or backward")),
        }
    }
}

/// An event's data or metadata: JSON, or bytes with a content type.
///
/// Stored as a content type plus bytes: JSON as `application/json` and its
/// serde_json encoding. On reading, bytes whose content type is
/// `application/json` and that parse as JSON come back as [`Payload::Json`],
/// whichever variant they were appended as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// A JSON value.
    Json(serde_json::Value),
    /// Opaque bytes with a MIME content type.
    Bytes {
        /// The MIME type, e.g. `application/octet-stream`.
        content_type: String,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

impl Payload {
    /// The content type JSON payloads are stored with.
    pub const JSON_CONTENT_TYPE: &'static str = "application/json";

    /// No data: JSON `null`.
    pub fn empty() -> Self {
        Payload::Json(serde_json::Value::Null)
    }

    /// The payload's content type.
    pub fn content_type(&self) -> &str {
        match self {
            Payload::Json(_) => Self::JSON_CONTENT_TYPE,
            Payload::Bytes { content_type, .. } => content_type,
        }
    }

    /// The JSON value, if this is JSON.
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match self {
            Payload::Json(v) => Some(v),
            Payload::Bytes { .. } => None,
        }
    }

    /// The payload as stored: JSON encoded with serde_json, bytes as they are.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Payload::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
            Payload::Bytes { bytes, .. } => bytes.clone(),
        }
    }

    /// This payload as a read of the store gives it back: bytes with the
    /// JSON content type that parse read back as JSON.
    #[must_use]
    pub fn as_stored(self) -> Self {
        match self {
            Payload::Bytes {
                content_type,
                bytes,
            } if content_type == Self::JSON_CONTENT_TYPE => {
                Self::from_stored(&content_type, &bytes)
            }
            other => other,
        }
    }

    /// Rebuilds a payload from its stored form (see the type's docs).
    pub fn from_stored(content_type: &str, bytes: &[u8]) -> Self {
        if content_type == Self::JSON_CONTENT_TYPE {
            if let Ok(v) = serde_json::from_slice(bytes) {
                return Payload::Json(v);
            }
        }
        Payload::Bytes {
            content_type: content_type.to_owned(),
            bytes: bytes.to_vec(),
        }
    }
}

impl Default for Payload {
    fn default() -> Self {
        Payload::empty()
    }
}

/// An event to append. The store gives it its stream, event number, global
/// position and creation time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The event's id (a UUIDv7 from the constructors).
    pub event_id: Uuid,
    /// Its type, e.g. `OrderPlaced`: non-empty, no control characters.
    pub event_type: String,
    /// Its data.
    pub data: Payload,
    /// Its metadata.
    pub metadata: Payload,
}

impl NewEvent {
    /// A JSON event with a fresh UUIDv7 id and no metadata (JSON `null`).
    pub fn json(event_type: impl Into<String>, data: serde_json::Value) -> Self {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            data: Payload::Json(data),
            metadata: Payload::empty(),
        }
    }

    /// A bytes event with a fresh UUIDv7 id and no metadata (JSON `null`).
    pub fn bytes(
        event_type: impl Into<String>,
        content_type: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Self {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            data: Payload::Bytes {
                content_type: content_type.into(),
                bytes,
            },
            metadata: Payload::empty(),
        }
    }

    /// This event with `metadata`.
    pub fn with_metadata(mut self, metadata: Payload) -> Self {
        self.metadata = metadata;
        self
    }

    /// This event with the id `event_id`.
    pub fn with_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The event's id, as appended.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// Its data.
    pub data: Payload,
    /// Its metadata.
    pub metadata: Payload,
    /// The stream it belongs to.
    pub stream_id: String,
    /// Its number in the stream, 0-based and dense.
    pub event_number: u64,
    /// Its position in the store's `$all`, 0-based and dense.
    pub global_position: u64,
    /// When it was appended (one time for all events of an append).
    pub created: DateTime<Utc>,
}

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendResult {
    /// The first appended event's number in its stream.
    pub first_event_number: u64,
    /// The last appended event's number, now the stream's version.
    pub last_event_number: u64,
    /// The first appended event's global position.
    pub first_position: u64,
    /// The last appended event's global position, now the store's head.
    pub last_position: u64,
    /// The events were already in the stream with these ids (a retried
    /// append): nothing was written, and the positions are the original
    /// ones. Serialised only when `true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// When the events were appended (their `created`); for a replayed
    /// append, when the retry was answered. Not serialised.
    #[serde(skip)]
    pub created: DateTime<Utc>,
}

/// A stream, as listed by [`Store::list_streams`](super::Store::list_streams).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// Its last event number.
    pub version: u64,
    /// How many events it holds (streams are append-only, so `version + 1`).
    pub event_count: u64,
}

/// The result of [`Store::read_batch`](super::Store::read_batch).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadBatch {
    /// The matching events, in global order.
    pub events: Vec<RecordedEvent>,
    /// Where the next read should start: every event before this position has
    /// been considered (returned or found not to match). Never less than the
    /// `from_position` of the read.
    pub next_position: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_serde_name_and_parses_back() {
        for d in [Durability::Immediate, Durability::Relaxed] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.to_string());
            assert_eq!(d.to_string().parse::<Durability>().unwrap(), d);
        }
        for d in [Direction::Forward, Direction::Backward] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.to_string());
            assert_eq!(d.to_string().parse::<Direction>().unwrap(), d);
        }
        assert_eq!(Durability::Relaxed.to_string(), "relaxed");
        assert_eq!(Direction::Backward.to_string(), "backward");
    }
}
