//! Payloads of the `system` channel (`:ex_esdb_system`): system lifecycle,
//! configuration changes and feature toggles.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::kind::message_kinds;

/// Name under which the host announces its lifecycle (and names itself as
/// the component of its own metrics).
pub const SYSTEM_NAME: &str = "exesdb_host";

message_kinds! {
    SystemLifecycle => System,
    SystemConfig => System,
    FeatureToggle => System,
}

/// A phase of the system's own lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum LifecycleEvent {
    /// The system has begun starting up.
    Starting,
    /// The system finished starting and is serving.
    Started,
    /// The system has begun an orderly shutdown.
    Stopping,
    /// The system has shut down.
    Stopped,
}

impl LifecycleEvent {
    /// The snake_case wire name (`"starting"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The system moved to a new lifecycle phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemLifecycle {
    /// The phase the system entered.
    pub event: LifecycleEvent,
    /// Name of the system (or store) whose lifecycle changed.
    pub system_name: String,
    /// Version of the running software, e.g. `"0.1.0"`.
    pub version: String,
}

/// A component's configuration was changed at runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemConfig {
    /// The component whose configuration changed.
    pub component: String,
    /// The changed settings, keyed by setting name, with their new values.
    #[serde(default)]
    pub changes: Map<String, Value>,
    /// The component's configuration before the change (may be partial).
    #[serde(default)]
    pub previous_config: Map<String, Value>,
    /// Who made the change: a user id, plugin id or `"system"`.
    pub changed_by: String,
}

/// A feature flag was switched on or off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureToggle {
    /// Name of the feature flag.
    pub feature: String,
    /// Whether the feature is enabled after the change.
    pub enabled: bool,
    /// Whether the feature was enabled before the change.
    pub previous_state: bool,
    /// Who made the change: a user id, plugin id or `"system"`.
    pub changed_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn system_lifecycle_round_trips() {
        let msg = SystemLifecycle {
            event: LifecycleEvent::Stopping,
            system_name: "reg_gh".to_owned(),
            version: "0.1.0".to_owned(),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["event"], "stopping");
        assert_eq!(json["system_name"], "reg_gh");
        let back: SystemLifecycle = serde_json::from_value(json).unwrap();
        assert_eq!(back, msg);
        assert_eq!(LifecycleEvent::Started.to_string(), "started");
    }

    #[test]
    fn system_config_round_trips_and_defaults_maps() {
        let mut changes = Map::new();
        changes.insert("pool_size".to_owned(), json!(20));
        let msg = SystemConfig {
            component: "store".to_owned(),
            changes,
            previous_config: Map::new(),
            changed_by: "admin".to_owned(),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["changes"]["pool_size"], 20);
        let back: SystemConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, msg);

        let sparse: SystemConfig =
            serde_json::from_value(json!({"component": "store", "changed_by": "admin"})).unwrap();
        assert!(sparse.changes.is_empty() && sparse.previous_config.is_empty());
    }

    #[test]
    fn feature_toggle_round_trips() {
        let msg = FeatureToggle {
            feature: "snapshots".to_owned(),
            enabled: true,
            previous_state: false,
            changed_by: "system".to_owned(),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["enabled"], true);
        assert_eq!(json["previous_state"], false);
        assert_eq!(serde_json::from_value::<FeatureToggle>(json).unwrap(), msg);
    }

    #[test]
    fn unknown_fields_are_ignored_and_bad_enums_rejected() {
        let read = serde_json::from_value::<SystemLifecycle>(json!({
            "event": "started", "system_name": "s", "version": "1", "extra": 1
        }))
        .unwrap();
        assert_eq!(read.event, LifecycleEvent::Started);
        assert_eq!(
            (read.system_name.as_str(), read.version.as_str()),
            ("s", "1")
        );
        assert!(serde_json::from_value::<SystemLifecycle>(json!({
            "event": "exploded", "system_name": "s", "version": "1"
        }))
        .is_err());
    }
}
