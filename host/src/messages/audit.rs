//! Payloads of the `audit` channel (`:ex_esdb_audit`): the audit trail for
//! compliance — data changes, administrative actions and access records.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::kind::message_kinds;

message_kinds! {
    DataChange => Audit,
    AdminAction => Audit,
    AccessLog => Audit,
}

/// The kind of operation performed on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum DataAction {
    /// The resource was created.
    Create,
    /// The resource was modified.
    Update,
    /// The resource was deleted.
    Delete,
    /// The resource was read.
    Read,
}

impl DataAction {
    /// The snake_case wire name (`"update"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A user (or plugin) changed data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataChange {
    /// Who made the change (user or plugin id).
    pub user_id: String,
    /// Type of the resource changed, e.g. `"stream"`, `"subscription"`.
    pub resource_type: String,
    /// Id of the resource changed.
    pub resource_id: String,
    /// What was done to it.
    pub action: DataAction,
    /// The changed attributes, keyed by name (new values, or `{old, new}` pairs).
    #[serde(default)]
    pub changes: Map<String, Value>,
    /// Additional context (request id, reason, …).
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// IP address the request came from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
}

/// An administrator performed a privileged action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAction {
    /// The administrator who acted.
    pub admin_user_id: String,
    /// The kind of action, e.g. `"delete_stream"`, `"grant_role"`.
    pub action_type: String,
    /// The resource acted upon.
    pub target_resource: String,
    /// Action-specific details.
    #[serde(default)]
    pub details: Map<String, Value>,
    /// The administrator's stated reason, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// IP address the request came from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
}

/// A record of one access to a resource, successful or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLog {
    /// Who accessed the resource (user or plugin id).
    pub user_id: String,
    /// Type of the resource accessed.
    pub resource_type: String,
    /// Id of the resource accessed.
    pub resource_id: String,
    /// The operation attempted, e.g. `"read"`, `"subscribe"`.
    pub action: String,
    /// Whether the access was allowed and succeeded.
    pub success: bool,
    /// How long the access took, in milliseconds.
    pub duration_ms: u64,
    /// IP address the request came from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Client user agent, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_change_round_trips() {
        let mut changes = Map::new();
        changes.insert("name".to_owned(), json!({"old": "a", "new": "b"}));
        let msg = DataChange {
            user_id: "u1".to_owned(),
            resource_type: "stream".to_owned(),
            resource_id: "orders-1".to_owned(),
            action: DataAction::Update,
            changes,
            metadata: Map::new(),
            source_ip: Some("10.0.0.1".to_owned()),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["action"], "update");
        assert_eq!(json["changes"]["name"]["new"], "b");
        assert_eq!(json["source_ip"], "10.0.0.1");
        assert_eq!(serde_json::from_value::<DataChange>(json).unwrap(), msg);
    }

    #[test]
    fn admin_action_round_trips() {
        let msg = AdminAction {
            admin_user_id: "root".to_owned(),
            action_type: "delete_stream".to_owned(),
            target_resource: "orders-1".to_owned(),
            details: Map::new(),
            justification: Some("GDPR request".to_owned()),
            source_ip: None,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["justification"], "GDPR request");
        assert!(json.get("source_ip").is_none());
        assert_eq!(serde_json::from_value::<AdminAction>(json).unwrap(), msg);
    }

    #[test]
    fn access_log_round_trips_and_ignores_unknown_fields() {
        let msg = AccessLog {
            user_id: "u1".to_owned(),
            resource_type: "stream".to_owned(),
            resource_id: "orders-1".to_owned(),
            action: "read".to_owned(),
            success: false,
            duration_ms: 4,
            source_ip: None,
            user_agent: Some("curl/8".to_owned()),
        };
        let mut json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["success"], false);
        assert_eq!(json["duration_ms"], 4);
        assert_eq!(
            serde_json::from_value::<AccessLog>(json.clone()).unwrap(),
            msg
        );

        json["session"] = json!("s-9");
        assert_eq!(
            serde_json::from_value::<AccessLog>(json.clone()).unwrap(),
            msg
        );
        json["duration_ms"] = json!("4 ms");
        let err = serde_json::from_value::<AccessLog>(json).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        assert_eq!(DataAction::Delete.to_string(), "delete");
    }
}
