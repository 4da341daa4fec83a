//! Payloads of the `health` channel (`:ex_esdb_health`): node, cluster and
//! component health, and the results of individual health checks.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::kind::message_kinds;

message_kinds! {
    NodeHealth => Health,
    ClusterHealth => Health,
    ComponentHealth => Health,
    HealthCheck => Health,
}

/// Overall health of a node, the cluster or a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum HealthStatus {
    /// Everything is working normally.
    Healthy,
    /// Working, but with reduced capacity or some failing checks.
    Degraded,
    /// Not working correctly.
    Unhealthy,
    /// Status could not be determined (e.g. no recent report).
    Unknown,
}

impl HealthStatus {
    /// The snake_case wire name (`"degraded"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Whether the cluster currently has a quorum of members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum QuorumStatus {
    /// A majority of nodes is reachable; writes can be accepted.
    Available,
    /// No majority is reachable; the cluster cannot safely accept writes.
    Lost,
}

impl QuorumStatus {
    /// The snake_case wire name (`"available"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Outcome of a single health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum CheckResult {
    /// The check succeeded.
    Pass,
    /// The check ran and found a problem.
    Fail,
    /// The check did not finish in time.
    Timeout,
}

impl CheckResult {
    /// The snake_case wire name (`"pass"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Health report of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// The node being reported on (may differ from the envelope's sender).
    pub node: String,
    /// The node's overall status.
    pub status: HealthStatus,
    /// Individual check results, keyed by check name.
    #[serde(default)]
    pub checks: Map<String, Value>,
    /// 1-minute load average.
    pub load_avg: f64,
    /// Fraction (0.0..=1.0) of memory in use.
    pub memory_usage: f64,
    /// Fraction (0.0..=1.0) of disk space in use.
    pub disk_usage: f64,
}

/// Aggregated health of the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterHealth {
    /// The cluster's overall status.
    pub status: HealthStatus,
    /// Number of nodes reporting `healthy`.
    pub healthy_nodes: u64,
    /// Number of known cluster members.
    pub total_nodes: u64,
    /// Number of nodes reporting `degraded`.
    pub degraded_nodes: u64,
    /// Number of nodes reporting `unhealthy`.
    pub unhealthy_nodes: u64,
    /// Whether the cluster has quorum.
    pub quorum_status: QuorumStatus,
}

/// Health of one component (a subsystem, store or plugin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentHealth {
    /// The component being reported on.
    pub component: String,
    /// The component's status.
    pub status: HealthStatus,
    /// Component-specific details.
    #[serde(default)]
    pub details: Map<String, Value>,
    /// When the component was last checked (RFC 3339).
    pub last_check: String,
}

/// The result of running one health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Name of the check that ran.
    pub check_name: String,
    /// The check's outcome.
    pub result: CheckResult,
    /// How long the check took, in milliseconds.
    pub duration_ms: u64,
    /// Check-specific details.
    #[serde(default)]
    pub details: Map<String, Value>,
    /// Error message when the check failed or timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_health_round_trips() {
        let mut checks = Map::new();
        checks.insert("disk".to_owned(), json!("ok"));
        let msg = NodeHealth {
            node: "node1@host".to_owned(),
            status: HealthStatus::Degraded,
            checks,
            load_avg: 1.5,
            memory_usage: 0.75,
            disk_usage: 0.5,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["status"], "degraded");
        assert_eq!(json["memory_usage"], 0.75);
        assert_eq!(json["checks"]["disk"], "ok");
        assert_eq!(serde_json::from_value::<NodeHealth>(json).unwrap(), msg);
    }

    #[test]
    fn cluster_health_round_trips() {
        let msg = ClusterHealth {
            status: HealthStatus::Healthy,
            healthy_nodes: 3,
            total_nodes: 3,
            degraded_nodes: 0,
            unhealthy_nodes: 0,
            quorum_status: QuorumStatus::Available,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["quorum_status"], "available");
        assert_eq!(json["total_nodes"], 3);
        assert_eq!(serde_json::from_value::<ClusterHealth>(json).unwrap(), msg);
    }

    #[test]
    fn health_check_omits_absent_error() {
        let msg = HealthCheck {
            check_name: "disk_space".to_owned(),
            result: CheckResult::Timeout,
            duration_ms: 5000,
            details: Map::new(),
            error: None,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["result"], "timeout");
        assert!(json.get("error").is_none());
        assert_eq!(serde_json::from_value::<HealthCheck>(json).unwrap(), msg);

        let failed = HealthCheck {
            result: CheckResult::Fail,
            error: Some("disk full".to_owned()),
            ..msg
        };
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["error"], "disk full");
        assert_eq!(serde_json::from_value::<HealthCheck>(json).unwrap(), failed);
    }

    #[test]
    fn component_health_round_trips_and_ignores_unknown_fields() {
        let msg = ComponentHealth {
            component: "store".to_owned(),
            status: HealthStatus::Unknown,
            details: Map::new(),
            last_check: "2024-01-01T00:00:00Z".to_owned(),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["status"], "unknown");
        assert_eq!(
            serde_json::from_value::<ComponentHealth>(json).unwrap(),
            msg
        );

        let newer = serde_json::from_value::<ComponentHealth>(json!({
            "component": "store", "status": "healthy",
            "last_check": "2024-01-01T00:00:00Z", "cpu": 3
        }))
        .unwrap();
        assert_eq!(newer.status, HealthStatus::Healthy);
        assert!(newer.details.is_empty(), "a missing map defaults to empty");
        let err = serde_json::from_value::<ComponentHealth>(json!({
            "component": "store", "status": "healthy", "cpu": 3
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("missing field `last_check`"),
            "{err}"
        );
    }
}
