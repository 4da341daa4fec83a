//! Messages: the envelope, the typed payload of every kind the spec defines,
//! and the rules that tie kinds to channels.
//!
//! # Kind rules
//! - A spec kind (`NodeHealth`, `SystemAlert`, …) belongs to one channel.
//!   Publishing it elsewhere is [`MessageError::WrongChannel`]; its payload must
//!   decode into the kind's struct ([`MessageError::InvalidPayload`]).
//! - A kind starting with `custom.` followed by a name (`custom.echo`) may be
//!   published on any channel with any JSON payload.
//! - On the `events` channel the kind is the store event's type, free-form,
//!   as long as it is not a spec kind of another channel.
//! - Any other kind is [`MessageError::UnknownKind`].
//! - A payload whose JSON encoding exceeds the bus's `max_payload_bytes`
//!   (default 1 MiB) is [`MessageError::TooLarge`].

mod envelope;
mod kind;

pub mod alerts;
pub mod audit;
pub mod diagnostics;
pub mod health;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod security;
pub mod system;
pub mod tracking;

use std::collections::HashMap;
use std::sync::OnceLock;

pub use envelope::{Envelope, SCHEMA_VERSION};
pub use kind::MessageKind;

use crate::bus::Channel;

/// Prefix of kinds that carry untyped payloads on any channel.
pub const CUSTOM_KIND_PREFIX: &str = "custom.";

/// Why a message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not a spec kind, not `custom.*`, and not on `events`.
    #[error("unknown message kind `{kind}` on channel `{channel}`: use a spec kind of that channel or a `custom.<name>` kind")]
    UnknownKind {
        /// The kind given.
        kind: String,
        /// The channel it was published on.
        channel: Channel,
    },
    /// A spec kind published on a channel it does not belong to.
    #[error("message kind `{kind}` belongs to channel `{expected}`, not `{actual}`")]
    WrongChannel {
        /// The kind given.
        kind: String,
        /// The kind's channel.
        expected: Channel,
        /// The channel it was published on.
        actual: Channel,
    },
    /// The payload does not decode into the kind's struct.
    #[error("invalid payload for kind `{kind}`: {reason}")]
    InvalidPayload {
        /// The kind given.
        kind: String,
        /// What is wrong.
        reason: String,
    },
    /// The payload is larger than allowed.
    #[error("payload of kind `{kind}` is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The kind given.
        kind: String,
        /// Encoded size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// `decode` was asked for another kind than the envelope holds.
    #[error("expected a `{expected}` message, got `{actual}`")]
    KindMismatch {
        /// The kind asked for.
        expected: String,
        /// The envelope's kind.
        actual: String,
    },
}

type Validator = fn(&serde_json::Value) -> Result<(), serde_json::Error>;

fn registry() -> &'static HashMap<&'static str, (Channel, Validator)> {
    static REGISTRY: OnceLock<HashMap<&'static str, (Channel, Validator)>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        [
            system::KINDS,
            health::KINDS,
            metrics::KINDS,
            lifecycle::KINDS,
            alerts::KINDS,
            audit::KINDS,
            diagnostics::KINDS,
            security::KINDS,
            logging::KINDS,
            tracking::KINDS,
        ]
        .into_iter()
        .flatten()
        .map(|(kind, channel, validate)| (*kind, (*channel, *validate)))
        .collect()
    })
}

/// The channel a spec kind belongs to, or `None` for other kinds.
pub fn channel_of(kind: &str) -> Option<Channel> {
    registry().get(kind).map(|(c, _)| *c)
}

/// Every spec kind with its channel, sorted by channel then kind.
pub fn spec_kinds() -> Vec<(&'static str, Channel)> {
    let mut all: Vec<_> = registry().iter().map(|(k, (c, _))| (*k, *c)).collect();
    all.sort_by_key(|(k, c)| (*c, *k));
    all
}

fn is_custom(kind: &str) -> bool {
    kind.strip_prefix(CUSTOM_KIND_PREFIX).is_some_and(|name| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    })
}

/// Checks an envelope's kind against its channel, its payload against the
/// kind's schema, and the payload's encoded size against `max_payload_bytes`.
///
/// # Errors
/// The [`MessageError`] naming the kind and the cause.
pub fn validate(env: &Envelope, max_payload_bytes: usize) -> Result<(), MessageError> {
    // A cheap upper bound settles almost every message; only payloads near
    // the limit are measured exactly.
    if size_bound(&env.payload) > max_payload_bytes {
        let size = encoded_len(&env.payload);
        if size > max_payload_bytes {
            return Err(MessageError::TooLarge {
                kind: env.kind.clone(),
                size,
                limit: max_payload_bytes,
            });
        }
    }
    match registry().get(env.kind.as_str()) {
        Some((channel, validator)) => {
            if *channel != env.channel {
                return Err(MessageError::WrongChannel {
                    kind: env.kind.clone(),
                    expected: *channel,
                    actual: env.channel,
                });
            }
            validator(&env.payload).map_err(|e| MessageError::InvalidPayload {
                kind: env.kind.clone(),
                reason: e.to_string(),
            })
        }
        None if is_custom(&env.kind) => Ok(()),
        None if env.channel == Channel::Events && !env.kind.is_empty() => Ok(()),
        None => Err(MessageError::UnknownKind {
            kind: env.kind.clone(),
            channel: env.channel,
        }),
    }
}

/// An upper bound of the JSON encoding's length, without encoding: every
/// string byte may need a 6-byte escape, every number at most 24 bytes.
pub fn size_bound(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => 2 + 6 * s.len(),
        Value::Array(a) => 2 + a.iter().map(|v| size_bound(v) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, v)| 4 + 6 * k.len() + size_bound(v))
                .sum::<usize>()
        }
    }
}

/// Length of the JSON encoding of `value`, without allocating it.
pub fn encoded_len(value: &serde_json::Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    // Writing a Value into an infallible writer cannot fail.
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(channel: Channel, kind: &str, payload: serde_json::Value) -> Envelope {
        Envelope::new(channel, "t:x", kind, payload, "n")
    }

    #[test]
    fn every_spec_kind_is_registered_on_its_channel() {
        let kinds = spec_kinds();
        assert_eq!(kinds.len(), 31, "{kinds:?}");
        assert_eq!(channel_of("NodeHealth"), Some(Channel::Health));
        assert_eq!(channel_of("AlertEscalation"), Some(Channel::Alerts));
        assert_eq!(channel_of("LogRotation"), Some(Channel::Logging));
        for c in Channel::ALL.into_iter().filter(|c| *c != Channel::Events) {
            assert!(kinds.iter().any(|(_, k)| *k == c), "{c} has no kinds");
        }
    }

    #[test]
    fn wrong_channel_is_rejected() {
        let e = env(Channel::Alerts, "NodeHealth", json!({}));
        let err = validate(&e, 1 << 20).unwrap_err();
        assert_eq!(
            err,
            MessageError::WrongChannel {
                kind: "NodeHealth".into(),
                expected: Channel::Health,
                actual: Channel::Alerts
            }
        );
    }

    #[test]
    fn typed_payload_must_match_its_schema() {
        let e = env(Channel::Alerts, "AlertAck", json!({"alert_id": 5}));
        assert!(matches!(
            validate(&e, 1 << 20),
            Err(MessageError::InvalidPayload { .. })
        ));
        let ok = env(
            Channel::Alerts,
            "AlertAck",
            json!({"alert_id": "a", "ack_by": "ops"}),
        );
        validate(&ok, 1 << 20).unwrap();
    }

    #[test]
    fn custom_kinds_go_anywhere_and_unknown_kinds_nowhere_but_events() {
        validate(&env(Channel::Audit, "custom.thing", json!([1, 2])), 1024).unwrap();
        validate(&env(Channel::Events, "OrderPlaced", json!({"id": 1})), 1024).unwrap();
        for bad in ["custom.", "custom.a b", "Bogus"] {
            let err = validate(&env(Channel::Health, bad, json!({})), 1024).unwrap_err();
            assert!(
                matches!(err, MessageError::UnknownKind { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn oversized_payloads_are_rejected() {
        let big = json!({"data": "x".repeat(2000)});
        let err = validate(&env(Channel::Events, "custom.big", big.clone()), 1000).unwrap_err();
        assert!(
            matches!(err, MessageError::TooLarge { size, limit: 1000, .. } if size == encoded_len(&big))
        );
        assert_eq!(encoded_len(&json!({"a":1})), br#"{"a":1}"#.len());
    }

    #[test]
    fn size_bound_is_an_upper_bound() {
        for v in [
            json!(null),
            json!(-1.0e300),
            json!("\u{0}\"\\\n"),
            json!({"k\u{1}": [1, "x", {"y": true}], "": null}),
            json!([[], {}, 123456789012345678u64]),
        ] {
            assert!(size_bound(&v) >= encoded_len(&v), "{v}");
        }
        // Exactly at the limit is accepted, one byte over is not.
        let v = json!({"data": "x".repeat(500)});
        let n = encoded_len(&v);
        validate(&env(Channel::Events, "custom.x", v.clone()), n).unwrap();
        assert!(validate(&env(Channel::Events, "custom.x", v), n - 1).is_err());
    }
}
