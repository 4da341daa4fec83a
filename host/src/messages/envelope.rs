//! The one envelope every message travels in.

use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MessageError, MessageKind};
use crate::bus::Channel;

/// Current schema version of the envelope and of the typed payloads.
pub const SCHEMA_VERSION: u32 = 1;

/// A message on the bus: routing data, provenance, and a JSON payload whose
/// shape is the typed struct named by `kind`.
///
/// Serialised, the timestamp is RFC 3339 in UTC with milliseconds
/// (`2025-07-27T11:30:00.000Z`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Time-ordered unique id (UUIDv7).
    pub id: Uuid,
    /// The channel it was published on.
    pub channel: Channel,
    /// `:`-separated topic.
    pub topic: String,
    /// The spec's type name (`NodeHealth`, …), a `custom.*` kind, or on
    /// `events` the store event's type.
    pub kind: String,
    /// When it was created, UTC (serialised with millisecond precision).
    #[serde(with = "rfc3339_ms")]
    pub timestamp: DateTime<Utc>,
    /// Name of the node that published it.
    pub node: String,
    /// Ties together all messages of one logical operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Id of the message that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// Version of the payload schema.
    pub schema_version: u32,
    /// The payload, fixed at construction (see [`Envelope::payload`] and
    /// [`Envelope::payload_text`]). Serialised as JSON.
    #[serde(with = "payload_json")]
    payload: Payload,
}

/// A payload kept as JSON text — the form plugins, the store and the size
/// limit need — and parsed into a [`serde_json::Value`] only on demand.
///
/// Text is the primary form: a message made from a `Value` renders it once
/// and drops it (on the publisher's thread), so a queued message holds one
/// allocation for its payload instead of a tree of them, and the subscriber
/// that finally drops it frees one.
#[derive(Clone)]
struct Payload {
    /// Valid JSON: every constructor guarantees it.
    text: String,
    parsed: OnceLock<serde_json::Value>,
}

impl Payload {
    fn value(&self) -> &serde_json::Value {
        self.parsed.get_or_init(|| {
            // Cannot fail: `text` is valid JSON by construction.
            serde_json::from_str(&self.text).unwrap_or(serde_json::Value::Null)
        })
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text || self.value() == other.value()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Envelope {
    /// A new envelope with a fresh id and the current time. Not validated:
    /// the bus validates on publish. The payload is rendered to JSON text
    /// here, once, where the message is made.
    pub fn new(
        channel: Channel,
        topic: impl Into<String>,
        kind: impl Into<String>,
        payload: serde_json::Value,
        node: impl Into<String>,
    ) -> Envelope {
        Envelope::with_payload(channel, topic, kind, payload.to_string(), node)
    }

    /// Like [`new`](Self::new) for a payload that arrives as JSON text (a
    /// plugin's publish): the text is checked to be JSON and kept as it is.
    ///
    /// # Errors
    /// [`MessageError::InvalidPayload`] naming the kind when `text` is not JSON.
    pub fn from_json_text(
        channel: Channel,
        topic: impl Into<String>,
        kind: impl Into<String>,
        text: String,
        node: impl Into<String>,
    ) -> Result<Envelope, MessageError> {
        let kind = kind.into();
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
            return Err(MessageError::InvalidPayload {
                reason: format!("not JSON: {e}"),
                kind,
            });
        }
        Ok(Envelope::with_payload(channel, topic, kind, text, node))
    }

    /// `text` must be valid JSON.
    fn with_payload(
        channel: Channel,
        topic: impl Into<String>,
        kind: impl Into<String>,
        text: String,
        node: impl Into<String>,
    ) -> Envelope {
        let now = Utc::now();
        Envelope {
            id: Uuid::now_v7(),
            channel,
            topic: topic.into(),
            kind: kind.into(),
            timestamp: now,
            node: node.into(),
            correlation_id: None,
            causation_id: None,
            schema_version: SCHEMA_VERSION,
            payload: Payload {
                text,
                parsed: OnceLock::new(),
            },
        }
    }

    /// An envelope for a typed payload, on the kind's own channel.
    ///
    /// # Errors
    /// [`MessageError::InvalidPayload`] if the payload cannot be serialised.
    pub fn typed<K: MessageKind>(
        topic: impl Into<String>,
        payload: &K,
        node: impl Into<String>,
    ) -> Result<Envelope, MessageError> {
        let text = serde_json::to_string(payload).map_err(|e| MessageError::InvalidPayload {
            kind: K::KIND.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Envelope::with_payload(
            K::CHANNEL,
            topic,
            K::KIND,
            text,
            node,
        ))
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Decodes the payload as `K`.
    ///
    /// # Errors
    /// [`MessageError::KindMismatch`] if the envelope holds another kind,
    /// [`MessageError::InvalidPayload`] if the payload does not fit `K`.
    pub fn decode<K: MessageKind>(&self) -> Result<K, MessageError> {
        if self.kind != K::KIND {
            return Err(MessageError::KindMismatch {
                expected: K::KIND.to_owned(),
                actual: self.kind.clone(),
            });
        }
        serde_json::from_str(&self.payload.text).map_err(|e| MessageError::InvalidPayload {
            kind: self.kind.clone(),
            reason: e.to_string(),
        })
    }

    /// The payload as a JSON value, parsed from its text on first use and
    /// kept. It cannot change after construction.
    pub fn payload(&self) -> &serde_json::Value {
        self.payload.value()
    }

    /// The payload as JSON text: what plugins receive, what the bus's size
    /// limit measures. Made once per message and shared by every plugin
    /// receiving it.
    pub fn payload_text(&self) -> &str {
        &self.payload.text
    }

    /// Milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> u64 {
        u64::try_from(self.timestamp.timestamp_millis()).unwrap_or(0)
    }

    /// The timestamp as RFC 3339 with milliseconds.
    pub fn timestamp_rfc3339(&self) -> String {
        self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// A payload (de)serialises as the JSON value itself.
mod payload_json {
    use std::sync::OnceLock;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Payload;

    pub(super) fn serialize<S: Serializer>(p: &Payload, s: S) -> Result<S::Ok, S::Error> {
        p.value().serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(Payload {
            text: value.to_string(),
            parsed: OnceLock::from(value),
        })
    }
}

mod rfc3339_ms {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::system::{LifecycleEvent, SystemLifecycle};

    #[test]
    fn serialises_with_rfc3339_ms_and_round_trips() {
        let payload = SystemLifecycle {
            event: LifecycleEvent::Started,
            system_name: "exesdb".into(),
            version: "0.1.0".into(),
        };
        let env = Envelope::typed("system:lifecycle", &payload, "node1")
            .unwrap()
            .with_correlation_id("c1");
        let json = serde_json::to_value(&env).unwrap();
        let ts = json["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2025-07-27T11:30:00.000Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
        assert_eq!(json["channel"], "system");
        assert_eq!(json["kind"], "SystemLifecycle");
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        assert_eq!(json["id"].as_str().unwrap().as_bytes()[14], b'7', "UUIDv7");
        let back: Envelope = serde_json::from_value(json).unwrap();
        // Serialised timestamps keep milliseconds; in memory they are exact.
        assert_eq!(back.timestamp_ms(), env.timestamp_ms());
        let mut exact = back.clone();
        exact.timestamp = env.timestamp;
        assert_eq!(exact, env);
        assert_eq!(back.decode::<SystemLifecycle>().unwrap(), payload);
    }

    #[test]
    fn floats_survive_the_payload_text_exactly() {
        // The payload travels as text: every f64 must parse back to itself.
        let mut x = 0.1f64;
        for i in 0..10_000u32 {
            x = x * 1.000_123_7 + f64::from(i) / 7.0;
            let env = Envelope::new(
                Channel::Metrics,
                "m:x",
                "custom.f",
                serde_json::json!({ "v": x, "r": 1.0 / x }),
                "n",
            );
            assert_eq!(env.payload()["v"].as_f64(), Some(x), "{x:e}");
            assert_eq!(env.payload()["r"].as_f64(), Some(1.0 / x), "{x:e}");
        }
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = Envelope::new(
            Channel::Events,
            "s:x",
            "custom.a",
            serde_json::json!({}),
            "n",
        );
        let b = Envelope::new(
            Channel::Events,
            "s:x",
            "custom.a",
            serde_json::json!({}),
            "n",
        );
        assert!(a.id < b.id);
    }

    #[test]
    fn decode_checks_the_kind() {
        let env = Envelope::new(
            Channel::System,
            "t",
            "FeatureToggle",
            serde_json::json!({}),
            "n",
        );
        let err = env.decode::<SystemLifecycle>().unwrap_err();
        assert!(matches!(err, MessageError::KindMismatch { .. }), "{err}");
    }
}
