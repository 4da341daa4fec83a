//! The one envelope every message travels in.

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
    /// The payload; fixed at construction (see [`Envelope::payload`]).
    payload: serde_json::Value,
    /// The payload's JSON text (see [`Envelope::payload_text`]).
    #[serde(skip)]
    payload_text: PayloadText,
}

/// The payload's JSON text: set at construction, or rendered on first use
/// for a deserialised envelope. It never takes part in equality.
#[derive(Default, Clone)]
struct PayloadText(std::sync::OnceLock<String>);

impl PayloadText {
    fn of(text: String) -> PayloadText {
        PayloadText(std::sync::OnceLock::from(text))
    }
}

impl PartialEq for PayloadText {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for PayloadText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

impl Envelope {
    /// A new envelope with a fresh id and the current time. Not validated:
    /// the bus validates on publish. The payload's JSON text is rendered
    /// here, once, where the message is made.
    pub fn new(
        channel: Channel,
        topic: impl Into<String>,
        kind: impl Into<String>,
        payload: serde_json::Value,
        node: impl Into<String>,
    ) -> Envelope {
        let text = payload.to_string();
        Envelope::with_payload_text(channel, topic, kind, payload, text, node)
    }

    /// Like [`new`](Self::new) for a payload that arrived as JSON text
    /// (published by a plugin, read from the store): `text` is kept as the
    /// payload's text instead of rendering `payload` again. `text` must be
    /// the JSON that `payload` was parsed from.
    pub fn with_payload_text(
        channel: Channel,
        topic: impl Into<String>,
        kind: impl Into<String>,
        payload: serde_json::Value,
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
            payload,
            payload_text: PayloadText::of(text),
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
        let value = serde_json::to_value(payload).map_err(|e| MessageError::InvalidPayload {
            kind: K::KIND.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Envelope::new(K::CHANNEL, topic, K::KIND, value, node))
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
        K::deserialize(&self.payload).map_err(|e| MessageError::InvalidPayload {
            kind: self.kind.clone(),
            reason: e.to_string(),
        })
    }

    /// The payload. It cannot change after construction, so its text
    /// ([`payload_text`](Self::payload_text)) always matches it.
    pub fn payload(&self) -> &serde_json::Value {
        &self.payload
    }

    /// The payload as JSON text: what plugins receive, what the bus's size
    /// limit measures. Made once per message and shared by every plugin
    /// receiving it.
    pub fn payload_text(&self) -> &str {
        self.payload_text.0.get_or_init(|| self.payload.to_string())
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
