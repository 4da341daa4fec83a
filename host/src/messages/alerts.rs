//! Payloads of the `alerts` channel (`:ex_esdb_alerts`): critical alerts,
//! their acknowledgement and their escalation.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::kind::message_kinds;

message_kinds! {
    SystemAlert => Alerts,
    AlertAck => Alerts,
    AlertEscalation => Alerts,
}

/// How serious an alert (or finding) is, ordered `info < warning < error < critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Severity {
    /// Informational; no action needed.
    Info,
    /// Something may need attention.
    Warning,
    /// Something failed and needs attention.
    Error,
    /// Service is at risk; immediate action needed.
    Critical,
}

impl Severity {
    /// The snake_case wire name (`"critical"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether an alert of this severity needs acknowledging when the sender
    /// does not say: `true` for `error` and `critical`.
    pub const fn requires_ack_by_default(self) -> bool {
        matches!(self, Severity::Error | Severity::Critical)
    }
}

/// The area an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum AlertCategory {
    /// Host or node problems.
    System,
    /// Slowness, saturation, backlog.
    Performance,
    /// Authentication, authorisation, intrusion.
    Security,
    /// Data integrity or consistency.
    Data,
    /// Connectivity between nodes or clients.
    Network,
}

impl AlertCategory {
    /// The snake_case wire name (`"performance"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Escalation tier of an alert, ordered `level1 < level2 < level3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum EscalationLevel {
    /// First responders (on-call).
    Level1,
    /// Second line (team leads, specialists).
    Level2,
    /// Top tier (management, incident command).
    Level3,
}

impl EscalationLevel {
    /// The snake_case wire name (`"level2"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The next tier up, or `None` from the top tier.
    pub const fn next(self) -> Option<EscalationLevel> {
        match self {
            EscalationLevel::Level1 => Some(EscalationLevel::Level2),
            EscalationLevel::Level2 => Some(EscalationLevel::Level3),
            EscalationLevel::Level3 => None,
        }
    }
}

/// An alert raised by a component.
///
/// When a payload omits `requires_ack`, it defaults to
/// [`Severity::requires_ack_by_default`]; a missing `metadata` is empty.
/// Fields this build does not know are ignored (`docs/compatibility.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemAlert {
    /// Unique id of the alert, referenced by [`AlertAck`] and [`AlertEscalation`].
    pub alert_id: String,
    /// How serious the alert is.
    pub severity: Severity,
    /// The area the alert is about.
    pub category: AlertCategory,
    /// One-line summary.
    pub title: String,
    /// Full description of the problem.
    pub description: String,
    /// The component that raised the alert.
    pub source: String,
    /// Alert-specific context.
    pub metadata: Map<String, Value>,
    /// Whether someone must acknowledge the alert with an [`AlertAck`].
    pub requires_ack: bool,
}

impl SystemAlert {
    /// An alert with empty metadata and `requires_ack` from the severity's default.
    pub fn new(
        alert_id: impl Into<String>,
        severity: Severity,
        category: AlertCategory,
        title: impl Into<String>,
        description: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        SystemAlert {
            alert_id: alert_id.into(),
            severity,
            category,
            title: title.into(),
            description: description.into(),
            source: source.into(),
            metadata: Map::new(),
            requires_ack: severity.requires_ack_by_default(),
        }
    }
}

/// Wire form of [`SystemAlert`], whose `requires_ack` may be missing.
#[derive(Debug, Deserialize)]
struct SystemAlertWire {
    alert_id: String,
    severity: Severity,
    category: AlertCategory,
    title: String,
    description: String,
    source: String,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default)]
    requires_ack: Option<bool>,
}

impl<'de> Deserialize<'de> for SystemAlert {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = SystemAlertWire::deserialize(deserializer)?;
        Ok(SystemAlert {
            requires_ack: w
                .requires_ack
                .unwrap_or(w.severity.requires_ack_by_default()),
            alert_id: w.alert_id,
            severity: w.severity,
            category: w.category,
            title: w.title,
            description: w.description,
            source: w.source,
            metadata: w.metadata,
        })
    }
}

/// Someone acknowledged an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAck {
    /// The acknowledged alert's id.
    pub alert_id: String,
    /// Who acknowledged it (user or plugin id).
    pub ack_by: String,
    /// Free-text note left with the acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_note: Option<String>,
    /// How the underlying problem was resolved, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// An alert was escalated to a higher tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEscalation {
    /// The escalated alert's id.
    pub alert_id: String,
    /// The previous tier; `None` on first escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_level: Option<EscalationLevel>,
    /// The new tier.
    pub to_level: EscalationLevel,
    /// Why it was escalated, e.g. `"unacknowledged for 15 minutes"`.
    pub escalation_reason: String,
    /// Who escalated it (user, plugin id or `"system"`).
    pub escalated_by: String,
    /// Contacts to notify at the new tier.
    #[serde(default)]
    pub notify_contacts: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert_json(severity: &str) -> Value {
        json!({
            "alert_id": "a1", "severity": severity, "category": "data",
            "title": "t", "description": "d", "source": "store"
        })
    }

    fn parse(json: Value) -> SystemAlert {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn system_alert_round_trips() {
        let mut msg = SystemAlert::new(
            "a1",
            Severity::Critical,
            AlertCategory::Network,
            "t",
            "d",
            "",
        );
        msg.metadata.insert("peer".to_owned(), json!("node2"));
        assert!(msg.requires_ack);
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["severity"], "critical");
        assert_eq!(json["category"], "network");
        assert_eq!(json["requires_ack"], true);
        assert_eq!(parse(json), msg);
    }

    #[test]
    fn requires_ack_defaults_by_severity() {
        let cases = [
            ("info", false),
            ("warning", false),
            ("error", true),
            ("critical", true),
        ];
        for (sev, expected) in cases {
            let alert = parse(alert_json(sev));
            assert_eq!(alert.requires_ack, expected, "{sev}");
            assert!(alert.metadata.is_empty());
        }
        let mut explicit = alert_json("critical");
        explicit["requires_ack"] = json!(false);
        assert!(!parse(explicit).requires_ack);
        let mut explicit = alert_json("info");
        explicit["requires_ack"] = json!(true);
        assert!(parse(explicit).requires_ack);
        assert!(Severity::Info < Severity::Warning && Severity::Error < Severity::Critical);
    }

    #[test]
    fn escalation_levels_step_up() {
        use super::EscalationLevel::{Level1, Level2, Level3};
        assert_eq!(Level1.next(), Some(Level2));
        assert_eq!(Level2.next(), Some(Level3));
        assert_eq!(Level3.next(), None);
        assert!(Level1 < Level3);
        let msg = AlertEscalation {
            alert_id: "a1".to_owned(),
            from_level: Some(Level1),
            to_level: Level2,
            escalation_reason: "unacknowledged".to_owned(),
            escalated_by: "system".to_owned(),
            notify_contacts: vec!["ops@example.com".to_owned()],
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["to_level"], "level2");
        let back: AlertEscalation = serde_json::from_value(json).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn unknown_fields_are_ignored_and_required_ones_still_required() {
        // A newer publisher's extra field is ignored; everything else reads.
        let mut newer = alert_json("error");
        newer["priority"] = json!(1);
        newer["metadata"] = json!({"disk": "sda"});
        let alert = parse(newer);
        assert_eq!(alert.alert_id, "a1");
        assert_eq!(alert.metadata["disk"], "sda");
        assert!(alert.requires_ack, "defaulted from the severity");
        let mut ack = json!({"alert_id": "a1", "ack_by": "u1", "ack_note": "on it"});
        let parsed: AlertAck = serde_json::from_value(ack.clone()).unwrap();
        assert_eq!(parsed.ack_note.as_deref(), Some("on it"));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), ack);
        ack["acked"] = json!(true);
        let with_extra: AlertAck = serde_json::from_value(ack).unwrap();
        assert_eq!(with_extra, parsed);
        assert_eq!(with_extra.resolution, None);

        let mut missing = alert_json("info");
        missing.as_object_mut().unwrap().remove("source");
        let err = serde_json::from_value::<SystemAlert>(missing).unwrap_err();
        assert!(err.to_string().contains("missing field `source`"), "{err}");
        let mut wrong = alert_json("info");
        wrong["requires_ack"] = json!("yes");
        assert!(serde_json::from_value::<SystemAlert>(wrong).is_err());
    }
}
