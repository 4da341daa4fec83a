//! Payloads of the `security` channel (`:ex_esdb_security`): authentication
//! events, access violations and security alerts.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::alerts::Severity;
use super::kind::message_kinds;

message_kinds! {
    AuthEvent => Security,
    AccessViolation => Security,
    SecurityAlert => Security,
}

/// What happened during authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum AuthEventType {
    /// Credentials were accepted.
    LoginSuccess,
    /// Credentials were rejected.
    LoginFailure,
    /// The session was ended.
    Logout,
    /// An access token was renewed.
    TokenRefresh,
}

impl AuthEventType {
    /// The snake_case wire name (`"login_failure"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An authentication event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthEvent {
    /// The user authenticating (the claimed id on failure).
    pub user_id: String,
    /// What happened.
    pub event_type: AuthEventType,
    /// How the user authenticated, e.g. `"password"`, `"token"`, `"mtls"`.
    pub auth_method: String,
    /// IP address the request came from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Client user agent, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Additional context (failure reason, session id, …).
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// A user or plugin attempted something it is not allowed to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessViolation {
    /// The offending user or plugin id.
    pub user_id: String,
    /// The kind of violation, e.g. `"unauthorized_channel"`, `"rate_limit"`.
    pub violation_type: String,
    /// The resource the attempt targeted.
    pub resource: String,
    /// The operation attempted, e.g. `"publish"`, `"read"`.
    pub action: String,
    /// IP address the request came from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// How serious the violation is.
    pub severity: Severity,
    /// Additional context.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// A security threat was detected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityAlert {
    /// The kind of threat, e.g. `"brute_force"`, `"token_reuse"`.
    pub alert_type: String,
    /// How serious the threat is.
    pub severity: Severity,
    /// Human-readable description of the threat.
    pub description: String,
    /// Users (or plugins) affected by the threat.
    #[serde(default)]
    pub affected_users: Vec<String>,
    /// IP address the threat originated from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Additional context.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auth_event_round_trips() {
        let msg = AuthEvent {
            user_id: "u1".to_owned(),
            event_type: AuthEventType::LoginFailure,
            auth_method: "password".to_owned(),
            source_ip: Some("192.0.2.7".to_owned()),
            user_agent: None,
            metadata: Map::new(),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["event_type"], "login_failure");
        assert!(json.get("user_agent").is_none());
        assert_eq!(serde_json::from_value::<AuthEvent>(json).unwrap(), msg);
    }

    #[test]
    fn access_violation_round_trips() {
        let mut metadata = Map::new();
        metadata.insert("channel".to_owned(), json!("audit"));
        let msg = AccessViolation {
            user_id: "plugin:metrics".to_owned(),
            violation_type: "unauthorized_channel".to_owned(),
            resource: "audit".to_owned(),
            action: "publish".to_owned(),
            source_ip: None,
            severity: Severity::Error,
            metadata,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["severity"], "error");
        assert_eq!(json["metadata"]["channel"], "audit");
        assert_eq!(
            serde_json::from_value::<AccessViolation>(json).unwrap(),
            msg
        );
    }

    #[test]
    fn security_alert_round_trips_and_ignores_unknown_fields() {
        let msg = SecurityAlert {
            alert_type: "brute_force".to_owned(),
            severity: Severity::Critical,
            description: "50 failed logins in 1 minute".to_owned(),
            affected_users: vec!["u1".to_owned()],
            source_ip: Some("192.0.2.7".to_owned()),
            metadata: Map::new(),
        };
        let mut json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["affected_users"], json!(["u1"]));
        assert_eq!(
            serde_json::from_value::<SecurityAlert>(json.clone()).unwrap(),
            msg
        );

        json["attacker"] = json!("eve");
        assert_eq!(
            serde_json::from_value::<SecurityAlert>(json.clone()).unwrap(),
            msg
        );
        json["affected_users"] = json!("u1");
        assert!(serde_json::from_value::<SecurityAlert>(json).is_err());
        assert_eq!(AuthEventType::TokenRefresh.to_string(), "token_refresh");
    }
}
