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

/// Checks a payload's JSON text against a kind's struct.
type Validator = fn(&str) -> Result<(), serde_json::Error>;

type KindRegistry = HashMap<&'static str, (Channel, Validator), foldhash::fast::RandomState>;

fn registry() -> &'static KindRegistry {
    static REGISTRY: OnceLock<KindRegistry> = OnceLock::new();
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
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
    })
}

/// Checks an envelope's kind against its channel, its payload against the
/// kind's schema, and the payload's encoded size against `max_payload_bytes`.
///
/// # Errors
/// The [`MessageError`] naming the kind and the cause.
pub fn validate(env: &Envelope, max_payload_bytes: usize) -> Result<(), MessageError> {
    let size = env.payload_text().len();
    if size > max_payload_bytes {
        return Err(MessageError::TooLarge {
            kind: env.kind.clone(),
            size,
            limit: max_payload_bytes,
        });
    }
    // No spec kind starts with `custom.`: settle custom kinds without a lookup.
    if is_custom(&env.kind) {
        return Ok(());
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
            validator(env.payload_text()).map_err(|e| MessageError::InvalidPayload {
                kind: env.kind.clone(),
                reason: e.to_string(),
            })
        }
        None if env.channel == Channel::Events && !env.kind.is_empty() => Ok(()),
        None => Err(MessageError::UnknownKind {
            kind: env.kind.clone(),
            channel: env.channel,
        }),
    }
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
            matches!(err, MessageError::TooLarge { size, limit: 1000, .. } if size == big.to_string().len()),
            "{err}"
        );
    }

    #[test]
    fn the_limit_measures_the_payload_text_exactly() {
        // Escapes count: the text is what plugins and the store receive.
        let v = json!({"data": "x\n\"".repeat(100)});
        let n = v.to_string().len();
        validate(&env(Channel::Events, "custom.x", v.clone()), n).unwrap();
        assert!(validate(&env(Channel::Events, "custom.x", v), n - 1).is_err());
        // A payload kept as it arrived is measured as it arrived.
        let text = "{ \"a\" : 1 }".to_owned();
        let e = Envelope::from_json_text(Channel::Events, "s:x", "custom.x", text.clone(), "n")
            .unwrap();
        assert_eq!(e.payload_text(), text);
        assert_eq!(e.payload(), &json!({"a": 1}));
        let err = Envelope::from_json_text(Channel::Events, "s:x", "custom.x", "{".into(), "n")
            .unwrap_err();
        assert!(
            err.to_string().contains("custom.x") && err.to_string().contains("not JSON"),
            "{err}"
        );
        validate(&e, text.len()).unwrap();
        assert!(validate(&e, text.len() - 1).is_err());
    }
}
