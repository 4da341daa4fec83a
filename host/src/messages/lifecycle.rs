//! Payloads of the `lifecycle` channel (`:ex_esdb_lifecycle`): process and
//! node lifecycle, and cluster membership changes.

use serde::{Deserialize, Serialize};

use super::health::QuorumStatus;
use super::kind::message_kinds;

message_kinds! {
    ProcessLifecycle => Lifecycle,
    NodeLifecycle => Lifecycle,
    ClusterMembership => Lifecycle,
}

/// What happened to a supervised process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum ProcessEvent {
    /// The process started.
    Started,
    /// The process stopped normally.
    Stopped,
    /// The process terminated abnormally.
    Crashed,
    /// The process was restarted by its supervisor.
    Restarted,
}

impl ProcessEvent {
    /// The snake_case wire name (`"crashed"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What happened to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum NodeEvent {
    /// The node is starting up.
    Starting,
    /// The node finished starting.
    Started,
    /// The node is shutting down.
    Stopping,
    /// The node has shut down.
    Stopped,
    /// The node joined the cluster.
    Joined,
    /// The node left the cluster.
    Left,
}

impl NodeEvent {
    /// The snake_case wire name (`"joined"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A change in cluster membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum MembershipEvent {
    /// One or more nodes were added.
    NodeAdded,
    /// One or more nodes were removed.
    NodeRemoved,
    /// A network partition split the cluster.
    PartitionDetected,
    /// A previously detected partition healed.
    PartitionHealed,
}

impl MembershipEvent {
    /// The snake_case wire name (`"node_added"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A supervised process (or plugin instance) changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLifecycle {
    /// Registered name of the process.
    pub name: String,
    /// Module (or plugin) implementing the process.
    pub module: String,
    /// What happened.
    pub event: ProcessEvent,
    /// Why it happened, e.g. the crash reason; absent for normal transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many times the process has been restarted so far.
    pub restart_count: u64,
}

/// A node changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLifecycle {
    /// The node the event is about (may differ from the envelope's sender).
    pub node: String,
    /// What happened.
    pub event: NodeEvent,
    /// Why it happened, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Cluster membership changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMembership {
    /// What changed.
    pub event: MembershipEvent,
    /// Nodes directly affected (added, removed or on the far side of a partition).
    #[serde(default)]
    pub affected_nodes: Vec<String>,
    /// Nodes active after the change.
    #[serde(default)]
    pub active_nodes: Vec<String>,
    /// Number of known cluster members after the change.
    pub total_nodes: u64,
    /// Whether the cluster has quorum after the change.
    pub quorum_status: QuorumStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn process_lifecycle_round_trips() {
        let msg = ProcessLifecycle {
            name: "store_worker".to_owned(),
            module: "ExESDB.StoreWorker".to_owned(),
            event: ProcessEvent::Crashed,
            reason: Some("badarg".to_owned()),
            restart_count: 2,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["event"], "crashed");
        assert_eq!(json["reason"], "badarg");
        assert_eq!(
            serde_json::from_value::<ProcessLifecycle>(json).unwrap(),
            msg
        );
    }

    #[test]
    fn node_lifecycle_round_trips() {
        let msg = NodeLifecycle {
            node: "node2@host".to_owned(),
            event: NodeEvent::Joined,
            reason: None,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["event"], "joined");
        assert!(json.get("reason").is_none());
        assert_eq!(serde_json::from_value::<NodeLifecycle>(json).unwrap(), msg);
    }

    #[test]
    fn cluster_membership_round_trips() {
        let msg = ClusterMembership {
            event: MembershipEvent::PartitionDetected,
            affected_nodes: vec!["node3@host".to_owned()],
            active_nodes: vec!["node1@host".to_owned(), "node2@host".to_owned()],
            total_nodes: 3,
            quorum_status: QuorumStatus::Available,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["event"], "partition_detected");
        assert_eq!(json["quorum_status"], "available");
        assert_eq!(json["affected_nodes"], json!(["node3@host"]));
        assert_eq!(
            serde_json::from_value::<ClusterMembership>(json).unwrap(),
            msg
        );
        assert_eq!(MembershipEvent::NodeAdded.to_string(), "node_added");
    }

    #[test]
    fn unknown_fields_are_ignored_and_bad_types_rejected() {
        let left = serde_json::from_value::<NodeLifecycle>(json!({
            "node": "n", "event": "left", "uptime": 10
        }))
        .unwrap();
        assert_eq!(
            left,
            NodeLifecycle {
                node: "n".to_owned(),
                event: NodeEvent::Left,
                reason: None,
            }
        );
        assert!(serde_json::from_value::<NodeLifecycle>(json!({
            "node": "n", "event": "left", "reason": 10
        }))
        .is_err());
    }
}
