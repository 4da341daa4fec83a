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
//!
//! # Schema evolution
//! Every spec kind has a [`SchemaVersion`] (`major.minor`, `1.0` for every
//! kind today; [`schema_of`]), stamped on each envelope (`schema_version` =
//! major, `schema_minor` = minor). Decoding is tolerant, so a kind can grow
//! without breaking older readers:
//! - fields a reader does not know are ignored (the payload text itself
//!   travels unchanged, so a plugin or subscriber that knows them still
//!   reads them);
//! - optional fields a payload leaves out take their defaults (`None`, an
//!   empty map or list, or the documented default such as
//!   `SystemAlert::requires_ack`);
//! - required fields must be present and every field must have its type:
//!   a payload that does not fit is still [`MessageError::InvalidPayload`];
//! - a payload of a newer **major** version than this build's is
//!   [`MessageError::UnsupportedSchemaVersion`], naming the kind and both
//!   versions, both at publish ([`validate`]) and at [`Envelope::decode`].
//!
//! The policy (what a minor and a major bump may change) is
//! `docs/compatibility.md`.

mod channel;
mod envelope;
mod kind;
mod schema;

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

pub use channel::{Channel, UnknownChannel};
pub use envelope::Envelope;
pub use kind::MessageKind;
pub use schema::{SchemaVersion, SCHEMA_VERSION};

use kind::KindEntry;

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
    /// The payload's schema has a newer major version than this build reads.
    #[error("message kind `{kind}` has schema version {found}, newer than version {supported} known to this build: a newer major version is a breaking change; upgrade this reader to read it")]
    UnsupportedSchemaVersion {
        /// The kind given.
        kind: String,
        /// The version stamped on the message.
        found: SchemaVersion,
        /// The kind's version in this build.
        supported: SchemaVersion,
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

type KindRegistry = HashMap<&'static str, KindEntry, foldhash::fast::RandomState>;

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
        .map(|entry| (entry.kind, *entry))
        .collect()
    })
}

/// The channel a spec kind belongs to, or `None` for other kinds.
pub fn channel_of(kind: &str) -> Option<Channel> {
    registry().get(kind).map(|e| e.channel)
}

/// The schema version this build knows of a spec kind, or `None` for other
/// kinds (`custom.*` and store-event kinds have no host schema).
pub fn schema_of(kind: &str) -> Option<SchemaVersion> {
    if is_custom(kind) {
        return None;
    }
    registry().get(kind).map(|e| e.schema)
}

/// Every spec kind with its channel, sorted by channel then kind.
pub fn spec_kinds() -> Vec<(&'static str, Channel)> {
    let mut all: Vec<_> = registry().iter().map(|(k, e)| (*k, e.channel)).collect();
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

/// The size check of [`validate`], for callers that can refuse a payload
/// before building its envelope (a plugin's `publish` does, so a payload
/// too large is never parsed): `size` bytes of JSON text of `kind` against
/// `max_payload_bytes`.
///
/// # Errors
/// [`MessageError::TooLarge`].
pub fn check_size(kind: &str, size: usize, max_payload_bytes: usize) -> Result<(), MessageError> {
    if size > max_payload_bytes {
        return Err(MessageError::TooLarge {
            kind: kind.to_owned(),
            size,
            limit: max_payload_bytes,
        });
    }
    Ok(())
}

/// Checks an envelope's kind against its channel, its schema version against
/// the kind's (a newer major is refused, any minor accepted), its payload
/// against the kind's schema (unknown fields ignored, missing optional
/// fields defaulted, missing required fields and wrong types refused), and
/// the payload's encoded size against `max_payload_bytes`.
///
/// # Errors
/// The [`MessageError`] naming the kind and the cause.
pub fn validate(env: &Envelope, max_payload_bytes: usize) -> Result<(), MessageError> {
    check_size(&env.kind, env.payload_text().len(), max_payload_bytes)?;
    // No spec kind starts with `custom.`: settle custom kinds without a lookup.
    if is_custom(&env.kind) {
        return Ok(());
    }
    match registry().get(env.kind.as_str()) {
        Some(entry) => {
            if entry.channel != env.channel {
                return Err(MessageError::WrongChannel {
                    kind: env.kind.clone(),
                    expected: entry.channel,
                    actual: env.channel,
                });
            }
            entry.schema.check(&env.kind, env.schema())?;
            (entry.validate)(env.payload_text()).map_err(|e| MessageError::InvalidPayload {
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

    /// Every variant's `as_str` and `Display` (strum's names) are its serde
    /// wire name, and that name parses back to it.
    fn names_are_the_wire_names<T>()
    where
        T: strum::VariantArray
            + Copy
            + std::fmt::Debug
            + std::fmt::Display
            + PartialEq
            + serde::Serialize
            + serde::de::DeserializeOwned
            + Into<&'static str>,
    {
        for &v in T::VARIANTS {
            let name: &'static str = v.into();
            assert_eq!(serde_json::to_value(v).unwrap(), json!(name), "{v:?}");
            assert_eq!(v.to_string(), name, "{v:?}");
            assert_eq!(serde_json::from_value::<T>(json!(name)).unwrap(), v);
        }
    }

    #[test]
    fn enum_names_are_serde_names() {
        use self::{alerts::*, audit::*, diagnostics::*, health::*, lifecycle::*};
        use self::{logging::*, metrics::*, security::*, system::*, tracking::*};
        names_are_the_wire_names::<Channel>();
        names_are_the_wire_names::<Severity>();
        names_are_the_wire_names::<AlertCategory>();
        names_are_the_wire_names::<EscalationLevel>();
        names_are_the_wire_names::<DataAction>();
        names_are_the_wire_names::<AnalysisType>();
        names_are_the_wire_names::<HealthStatus>();
        names_are_the_wire_names::<QuorumStatus>();
        names_are_the_wire_names::<CheckResult>();
        names_are_the_wire_names::<ProcessEvent>();
        names_are_the_wire_names::<NodeEvent>();
        names_are_the_wire_names::<MembershipEvent>();
        names_are_the_wire_names::<LogLevel>();
        names_are_the_wire_names::<Percentile>();
        names_are_the_wire_names::<AuthEventType>();
        names_are_the_wire_names::<LifecycleEvent>();
        names_are_the_wire_names::<SubscriptionStatus>();
        names_are_the_wire_names::<BreakerState>();
        names_are_the_wire_names::<HealthEventType>();
        assert_eq!(<Channel as strum::VariantArray>::VARIANTS, Channel::ALL);
        // Display pads like a `str` (the hand-written impls ignored widths).
        assert_eq!(format!("{:<9}|", HealthStatus::Degraded), "degraded |");
        assert_eq!(Percentile::P99.as_str(), "p99");
        assert_eq!(EscalationLevel::Level2.as_str(), "level2");
        assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
    }

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

    /// Every spec kind with exactly its required fields (a valid value for
    /// each). Everything else in its struct is optional.
    fn minimal_payloads() -> Vec<(&'static str, serde_json::Value)> {
        vec![
            (
                "SystemLifecycle",
                json!({"event": "started", "system_name": "s", "version": "1"}),
            ),
            ("SystemConfig", json!({"component": "c", "changed_by": "u"})),
            (
                "FeatureToggle",
                json!({"feature": "f", "enabled": true, "previous_state": false, "changed_by": "u"}),
            ),
            (
                "NodeHealth",
                json!({"node": "n", "status": "healthy", "load_avg": 0.5,
                       "memory_usage": 0.1, "disk_usage": 0.2}),
            ),
            (
                "ClusterHealth",
                json!({"status": "healthy", "healthy_nodes": 1, "total_nodes": 1,
                       "degraded_nodes": 0, "unhealthy_nodes": 0, "quorum_status": "available"}),
            ),
            (
                "ComponentHealth",
                json!({"component": "c", "status": "degraded", "last_check": "t"}),
            ),
            (
                "HealthCheck",
                json!({"check_name": "disk", "result": "pass", "duration_ms": 3}),
            ),
            (
                "PerformanceMetric",
                json!({"metric_name": "m", "value": 1.5, "unit": "ms", "component": "c"}),
            ),
            (
                "ThroughputMetric",
                json!({"operation": "o", "count": 1, "duration_ms": 1, "rate_per_sec": 1.0}),
            ),
            (
                "LatencyMetric",
                json!({"operation": "o", "latency_ms": 1.0, "percentile": "p99", "sample_count": 1}),
            ),
            (
                "ResourceUsage",
                json!({"component": "c", "cpu_percent": 1.0, "memory_bytes": 1,
                       "disk_bytes": 1, "open_handles": 1}),
            ),
            (
                "ProcessLifecycle",
                json!({"name": "p", "module": "m", "event": "crashed", "restart_count": 0}),
            ),
            ("NodeLifecycle", json!({"node": "n", "event": "joined"})),
            (
                "ClusterMembership",
                json!({"event": "node_added", "total_nodes": 1, "quorum_status": "lost"}),
            ),
            (
                "SystemAlert",
                json!({"alert_id": "a", "severity": "error", "category": "data",
                       "title": "t", "description": "d", "source": "s"}),
            ),
            ("AlertAck", json!({"alert_id": "a", "ack_by": "u"})),
            (
                "AlertEscalation",
                json!({"alert_id": "a", "to_level": "level1", "escalation_reason": "r",
                       "escalated_by": "e"}),
            ),
            (
                "DataChange",
                json!({"user_id": "u", "resource_type": "stream", "resource_id": "r",
                       "action": "create"}),
            ),
            (
                "AdminAction",
                json!({"admin_user_id": "u", "action_type": "a", "target_resource": "r"}),
            ),
            (
                "AccessLog",
                json!({"user_id": "u", "resource_type": "t", "resource_id": "r",
                       "action": "read", "success": true, "duration_ms": 1}),
            ),
            (
                "DebugTrace",
                json!({"trace_id": "t", "component": "c", "operation": "o"}),
            ),
            (
                "PerformanceAnalysis",
                json!({"analysis_id": "a", "component": "c", "analysis_type": "bottleneck",
                       "severity": "info"}),
            ),
            (
                "AuthEvent",
                json!({"user_id": "u", "event_type": "logout", "auth_method": "token"}),
            ),
            (
                "AccessViolation",
                json!({"user_id": "u", "violation_type": "v", "resource": "r",
                       "action": "publish", "severity": "warning"}),
            ),
            (
                "SecurityAlert",
                json!({"alert_type": "a", "severity": "critical", "description": "d"}),
            ),
            (
                "LogEntry",
                json!({"log_id": "l", "level": "info", "message": "m"}),
            ),
            (
                "LogSummary",
                json!({"summary_id": "s", "time_period": "1h", "error_rate": 0.0, "total_logs": 0}),
            ),
            (
                "LogRotation",
                json!({"rotation_id": "r", "log_type": "audit", "old_file": "a", "new_file": "b",
                       "file_size": 1, "entries_count": 1}),
            ),
            (
                "SubscriptionHealth",
                json!({"store": "s", "subscription": "p", "event": "heartbeat",
                       "status": "healthy", "breaker": "closed", "event_count": 0,
                       "error_count": 0, "consecutive_failures": 0}),
            ),
            (
                "HealthSummary",
                json!({"store": "s", "total": 0, "healthy": 0, "degraded": 0, "failed": 0,
                       "registering": 0, "unknown": 0}),
            ),
            (
                "MetricsSummary",
                json!({"store": "s", "events_per_second": 0.0, "total_events": 0,
                       "active_subscriptions": 0, "queue_depth": 0, "dropped": 0}),
            ),
        ]
    }

    /// The minimal payload of `kind`.
    fn minimal(kind: &str) -> serde_json::Value {
        minimal_payloads()
            .into_iter()
            .find_map(|(k, v)| (k == kind).then_some(v))
            .unwrap()
    }

    fn of_kind(kind: &str, payload: serde_json::Value) -> Envelope {
        env(channel_of(kind).unwrap(), kind, payload)
    }

    #[test]
    fn every_kind_accepts_unknown_fields_and_requires_its_required_ones() {
        let table = minimal_payloads();
        let mut covered: Vec<_> = table.iter().map(|(k, _)| *k).collect();
        covered.sort_unstable();
        let mut all: Vec<_> = spec_kinds().into_iter().map(|(k, _)| k).collect();
        all.sort_unstable();
        assert_eq!(covered, all, "the table must list every spec kind");

        for (kind, minimal) in table {
            // Only the required fields: valid; the optional ones default.
            validate(&of_kind(kind, minimal.clone()), 1 << 20)
                .unwrap_or_else(|e| panic!("{kind} minimal: {e}"));

            // A newer publisher's extra fields: valid, and the payload text
            // travels unchanged, so readers that know them still see them.
            let mut newer = minimal.clone();
            newer["added_in_a_later_minor"] = json!({"nested": [1, 2]});
            let e = of_kind(kind, newer);
            validate(&e, 1 << 20).unwrap_or_else(|e| panic!("{kind} + extra field: {e}"));
            assert_eq!(e.payload()["added_in_a_later_minor"]["nested"][1], 2);

            // Each required field: leaving it out, or giving it a wrong
            // type, is still an invalid payload.
            for field in minimal.as_object().unwrap().keys() {
                let mut missing = minimal.clone();
                missing.as_object_mut().unwrap().remove(field);
                let err = validate(&of_kind(kind, missing), 1 << 20).unwrap_err();
                assert!(
                    matches!(&err, MessageError::InvalidPayload { kind: k, reason }
                        if k == kind && reason.contains(&format!("missing field `{field}`"))),
                    "{kind} without {field}: {err}"
                );
                let mut wrong = minimal.clone();
                wrong[field] = json!([[]]);
                let err = validate(&of_kind(kind, wrong), 1 << 20).unwrap_err();
                assert!(
                    matches!(&err, MessageError::InvalidPayload { kind: k, .. } if k == kind),
                    "{kind} with a wrong-typed {field}: {err}"
                );
            }
        }
    }

    #[test]
    fn every_kind_is_stamped_with_its_schema_version() {
        for (kind, _) in spec_kinds() {
            let v = schema_of(kind).unwrap();
            assert_eq!(v, SchemaVersion::INITIAL, "{kind}");
            let e = of_kind(kind, json!({}));
            assert_eq!(e.schema(), v, "{kind}");
        }
        assert_eq!(schema_of("custom.thing"), None);
        assert_eq!(schema_of("OrderPlaced"), None);
        let custom = env(Channel::Events, "custom.thing", json!({}));
        assert_eq!(custom.schema(), SchemaVersion::new(SCHEMA_VERSION, 0));
    }

    #[test]
    fn a_newer_major_is_refused_at_publish_naming_kind_and_versions() {
        let (kind, payload) = ("SystemAlert", minimal("SystemAlert"));
        let e = of_kind(kind, payload.clone()).with_schema(SchemaVersion::new(2, 0));
        let err = validate(&e, 1 << 20).unwrap_err();
        assert_eq!(
            err,
            MessageError::UnsupportedSchemaVersion {
                kind: kind.into(),
                found: SchemaVersion::new(2, 0),
                supported: SchemaVersion::new(1, 0),
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("`SystemAlert`") && text.contains("2.0") && text.contains("1.0"),
            "{text}"
        );
        // A newer minor of the same major is accepted.
        validate(
            &of_kind(kind, payload).with_schema(SchemaVersion::new(1, 7)),
            1 << 20,
        )
        .unwrap();
        // Custom and store-event kinds have no host schema: not checked.
        for (channel, kind) in [
            (Channel::Audit, "custom.x"),
            (Channel::Events, "OrderPlaced"),
        ] {
            let e = env(channel, kind, json!({})).with_schema(SchemaVersion::new(9, 0));
            validate(&e, 1 << 20).unwrap();
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
