//! The one envelope every message travels in.

use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Channel;
use super::{MessageError, MessageKind, SchemaVersion};

/// A message on the bus: routing data, provenance, and a JSON payload whose
/// shape is the typed struct named by `kind`.
///
/// Serialised, the timestamp is RFC 3339 in UTC with milliseconds
/// (`2025-07-27T11:30:00.000Z`). Deserialising ignores fields this build
/// does not know, so an envelope from a newer publisher still reads; see
/// [`Envelope::schema`] for the payload's version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Major version of the payload's schema for this kind (`1` today; see
    /// [`SchemaVersion`]). Plugins receive it as `message.schema-version`.
    pub schema_version: u32,
    /// Minor version of the payload's schema for this kind; serialised only
    /// when it is not 0, so a `1.0` envelope reads as it always has.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub schema_minor: u32,
    /// The payload, fixed at construction (see [`Envelope::payload`] and
    /// [`Envelope::payload_text`]). Serialised as JSON.
    #[serde(with = "payload_json")]
    payload: Payload,
    /// The envelope's JSON text, made on the first [`Envelope::json_text`]
    /// and kept, so a message sent to many clients is serialised once.
    #[serde(skip)]
    text: TextCache,
}

/// The cached JSON text of an envelope. A clone starts empty (the clone
/// may be changed), and it takes no part in equality.
#[derive(Default)]
struct TextCache(OnceLock<String>);

impl Clone for TextCache {
    fn clone(&self) -> Self {
        TextCache::default()
    }
}

impl PartialEq for TextCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for TextCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
    /// A new envelope with a fresh id and the current time, stamped with the
    /// schema version this build knows of `kind` (1.0 for `custom.*` and
    /// store-event kinds). Not validated: the bus validates on publish. The
    /// payload is rendered to JSON text here, once, where the message is made.
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

    /// Like [`new`](Self::new) for any serialisable payload, rendered
    /// straight to the envelope's JSON text (no intermediate
    /// [`serde_json::Value`]): the form for payloads that are not spec kinds,
    /// such as a recorded store event announced on `events`.
    ///
    /// # Errors
    /// [`MessageError::InvalidPayload`] naming the kind if `payload` cannot
    /// be serialised.
    pub fn serialised<T: Serialize + ?Sized>(
        channel: Channel,
        topic: impl Into<String>,
        kind: impl Into<String>,
        payload: &T,
        node: impl Into<String>,
    ) -> Result<Envelope, MessageError> {
        let kind = kind.into();
        match serde_json::to_string(payload) {
            Ok(text) => Ok(Envelope::with_payload(channel, topic, kind, text, node)),
            Err(e) => Err(MessageError::InvalidPayload {
                reason: e.to_string(),
                kind,
            }),
        }
    }

    /// `text` must be valid JSON. Stamped with the kind's schema version.
    fn with_payload(
        channel: Channel,
        topic: impl Into<String>,
        kind: impl Into<String>,
        text: String,
        node: impl Into<String>,
    ) -> Envelope {
        let kind = kind.into();
        let schema = super::schema_of(&kind).unwrap_or_default();
        Envelope::stamped(channel, topic, kind, text, node, schema)
    }

    /// `text` must be valid JSON.
    fn stamped(
        channel: Channel,
        topic: impl Into<String>,
        kind: impl Into<String>,
        text: String,
        node: impl Into<String>,
        schema: SchemaVersion,
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
            schema_version: schema.major,
            schema_minor: schema.minor,
            payload: Payload {
                text,
                parsed: OnceLock::new(),
            },
            text: TextCache::default(),
        }
    }

    /// An envelope for a typed payload, on the kind's own channel, stamped
    /// with [`K::SCHEMA`](MessageKind::SCHEMA).
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
        Ok(Envelope::stamped(
            K::CHANNEL,
            topic,
            K::KIND,
            text,
            node,
            K::SCHEMA,
        ))
    }

    /// The envelope as JSON text (what `serde_json::to_string` gives),
    /// made on the first call and kept: a message the gateway streams to
    /// many clients is serialised once. Set its fields before the first
    /// call — a published envelope is shared and never changed, and a
    /// clone starts without the text.
    pub fn json_text(&self) -> &str {
        self.text
            .0
            .get_or_init(|| serde_json::to_string(self).unwrap_or_default())
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

    /// Sets the schema version stamped on the envelope (`schema_version`
    /// and `schema_minor`): for forwarding a message as its publisher
    /// stamped it.
    pub fn with_schema(mut self, version: SchemaVersion) -> Self {
        self.schema_version = version.major;
        self.schema_minor = version.minor;
        self
    }

    /// The payload's schema version, `schema_version.schema_minor`.
    pub fn schema(&self) -> SchemaVersion {
        SchemaVersion::new(self.schema_version, self.schema_minor)
    }

    /// Decodes the payload as `K`, tolerantly: fields `K` does not know are
    /// ignored and optional fields the payload leaves out take their
    /// defaults, so a payload of any minor version of `K`'s major decodes.
    ///
    /// # Errors
    /// [`MessageError::KindMismatch`] if the envelope holds another kind,
    /// [`MessageError::UnsupportedSchemaVersion`] if its schema's major is
    /// newer than [`K::SCHEMA`](MessageKind::SCHEMA)'s,
    /// [`MessageError::InvalidPayload`] if the payload does not fit `K`
    /// (a required field missing, a field of the wrong type).
    pub fn decode<K: MessageKind>(&self) -> Result<K, MessageError> {
        if self.kind != K::KIND {
            return Err(MessageError::KindMismatch {
                expected: K::KIND.to_owned(),
                actual: self.kind.clone(),
            });
        }
        K::SCHEMA.check(&self.kind, self.schema())?;
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
    use crate::messages::SCHEMA_VERSION;

    #[test]
    fn the_json_text_is_made_once_and_a_clone_makes_its_own() {
        let env = Envelope::new(
            Channel::Events,
            "a:b",
            "custom.t",
            serde_json::json!({"n": 1}),
            "node1",
        );
        let text = env.json_text();
        assert_eq!(text, serde_json::to_string(&env).unwrap());
        assert!(std::ptr::eq(text, env.json_text()), "kept, not made again");
        let mut changed = env.clone();
        changed.topic = "a:c".into();
        assert_eq!(
            changed.json_text(),
            serde_json::to_string(&changed).unwrap()
        );
        assert!(changed.json_text().contains("\"a:c\""));
        // The cache takes no part in equality.
        let fresh = env.clone();
        assert_eq!(fresh, env);
    }

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

    /// What a newer node (same major, minor 4) sends: an envelope with a
    /// field this build does not know, and a `SystemAlert` payload with an
    /// added optional field and without the optional ones it may omit.
    fn from_a_newer_publisher(major: u32, minor: u32) -> serde_json::Value {
        let alert = crate::messages::alerts::SystemAlert::new(
            "a-7",
            crate::messages::alerts::Severity::Critical,
            crate::messages::alerts::AlertCategory::Data,
            "disk full",
            "sda at 99%",
            "node2",
        );
        let env = Envelope::typed("system_alert:data", &alert, "node2").unwrap();
        let mut json = serde_json::to_value(&env).unwrap();
        json["schema_version"] = serde_json::json!(major);
        json["schema_minor"] = serde_json::json!(minor);
        json["trace_flags"] = serde_json::json!("01");
        let payload = json["payload"].as_object_mut().unwrap();
        payload.remove("metadata");
        payload.remove("requires_ack");
        payload.insert("runbook_url".into(), serde_json::json!("https://ops/disk"));
        json
    }

    #[test]
    fn a_newer_minor_from_a_newer_publisher_is_read() {
        use crate::messages::alerts::{AlertCategory, Severity, SystemAlert};
        let env: Envelope = serde_json::from_value(from_a_newer_publisher(1, 4)).unwrap();
        assert_eq!(env.schema(), SchemaVersion::new(1, 4));
        crate::messages::validate(&env, 1 << 20).unwrap();
        let alert = env.decode::<SystemAlert>().unwrap();
        assert_eq!(alert.alert_id, "a-7");
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.category, AlertCategory::Data);
        assert_eq!(
            (
                alert.title.as_str(),
                alert.description.as_str(),
                alert.source.as_str()
            ),
            ("disk full", "sda at 99%", "node2")
        );
        // Missing optional fields take their defaults.
        assert!(alert.metadata.is_empty());
        assert!(
            alert.requires_ack,
            "critical alerts default to requiring an ack"
        );
        // The field this build does not know is still in the payload for
        // readers that do.
        assert_eq!(env.payload()["runbook_url"], "https://ops/disk");
        // Re-serialised, the minor is kept.
        assert_eq!(serde_json::to_value(&env).unwrap()["schema_minor"], 4);
    }

    #[test]
    fn a_newer_major_is_refused_naming_the_kind_and_both_versions() {
        use crate::messages::alerts::SystemAlert;
        let env: Envelope = serde_json::from_value(from_a_newer_publisher(2, 1)).unwrap();
        let err = env.decode::<SystemAlert>().unwrap_err();
        assert_eq!(
            err,
            MessageError::UnsupportedSchemaVersion {
                kind: "SystemAlert".into(),
                found: SchemaVersion::new(2, 1),
                supported: SchemaVersion::new(1, 0),
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("`SystemAlert`") && text.contains("2.1") && text.contains("1.0"),
            "{text}"
        );
        assert_eq!(crate::messages::validate(&env, 1 << 20), Err(err));
    }

    #[test]
    fn a_one_point_zero_envelope_serialises_as_before_minors_existed() {
        let env = Envelope::typed(
            "system_lifecycle:x",
            &SystemLifecycle {
                event: LifecycleEvent::Started,
                system_name: "x".into(),
                version: "1".into(),
            },
            "n",
        )
        .unwrap();
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["schema_version"], 1);
        assert!(json.get("schema_minor").is_none(), "{json}");
        // And an envelope without `schema_minor` reads as minor 0.
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back.schema(), SchemaVersion::new(1, 0));
    }

    /// A kind at schema 1.2 whose `region` field was added in 1.1 and
    /// `priority` in 1.2, both optional.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Probe {
        name: String,
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        priority: u8,
    }

    mod probe {
        use super::Probe;
        crate::messages::kind::message_kinds! { Probe => Health @ (1, 2) }
    }

    #[test]
    fn a_kind_at_a_later_minor_reads_older_and_newer_minors_of_its_major() {
        assert_eq!(<Probe as MessageKind>::SCHEMA, SchemaVersion::new(1, 2));
        assert_eq!(probe::KINDS[0].schema, SchemaVersion::new(1, 2));
        let probe = |payload: serde_json::Value, v: SchemaVersion| {
            Envelope::new(Channel::Health, "probe", "Probe", payload, "n").with_schema(v)
        };
        // From a 1.0 publisher: the fields added since take their defaults.
        let old = probe(serde_json::json!({"name": "p"}), SchemaVersion::new(1, 0));
        assert_eq!(
            old.decode::<Probe>().unwrap(),
            Probe {
                name: "p".into(),
                region: None,
                priority: 0
            }
        );
        // From a 1.5 publisher: its extra field is ignored.
        let newer = probe(
            serde_json::json!({"name": "p", "region": "eu", "priority": 3, "zone": "b"}),
            SchemaVersion::new(1, 5),
        );
        assert_eq!(
            newer.decode::<Probe>().unwrap(),
            Probe {
                name: "p".into(),
                region: Some("eu".into()),
                priority: 3
            }
        );
        // From a 2.0 publisher: refused, with this reader's 1.2.
        let err = probe(serde_json::json!({"name": "p"}), SchemaVersion::new(2, 0))
            .decode::<Probe>()
            .unwrap_err();
        assert!(
            err.to_string().contains("`Probe`")
                && err.to_string().contains("2.0")
                && err.to_string().contains("1.2"),
            "{err}"
        );
        // Typed envelopes are stamped with the kind's version.
        let typed = Envelope::typed(
            "probe",
            &Probe {
                name: "p".into(),
                region: None,
                priority: 1,
            },
            "n",
        )
        .unwrap();
        assert_eq!(typed.schema(), SchemaVersion::new(1, 2));
        assert_eq!(serde_json::to_value(&typed).unwrap()["schema_minor"], 2);
        // A required field is still required.
        let err = probe(
            serde_json::json!({"region": "eu"}),
            SchemaVersion::new(1, 2),
        )
        .decode::<Probe>()
        .unwrap_err();
        assert!(matches!(err, MessageError::InvalidPayload { .. }), "{err}");
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
