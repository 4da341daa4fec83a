//! Black-box tests of the `PubSubIntegration` helpers: every helper publishes
//! the right kind, on the right channel, under its documented topic, with
//! exactly the payload asked for.
//!
//! Each test subscribes to the exact topic (never a wildcard), so a delivery
//! proves the topic; the payload is decoded and compared as a whole.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use exesdb_host::bus::{Bus, BusConfig, BusError, Channel, Subscriber};
use exesdb_host::integration::{topics, AuditEvent, DiagnosticEvent, Integration, SecurityEvent};
use exesdb_host::messages::alerts::{
    AlertAck, AlertCategory, AlertEscalation, EscalationLevel, Severity, SystemAlert,
};
use exesdb_host::messages::audit::{AccessLog, AdminAction, DataAction, DataChange};
use exesdb_host::messages::diagnostics::{AnalysisType, DebugTrace, PerformanceAnalysis};
use exesdb_host::messages::health::{
    CheckResult, ClusterHealth, ComponentHealth, HealthCheck, HealthStatus, NodeHealth,
    QuorumStatus,
};
use exesdb_host::messages::lifecycle::{
    ClusterMembership, MembershipEvent, NodeEvent, NodeLifecycle, ProcessEvent, ProcessLifecycle,
};
use exesdb_host::messages::logging::{LogEntry, LogLevel, LogRotation, LogSummary};
use exesdb_host::messages::metrics::{
    LatencyMetric, Percentile, PerformanceMetric, ResourceUsage, ThroughputMetric,
};
use exesdb_host::messages::security::{AccessViolation, AuthEvent, AuthEventType, SecurityAlert};
use exesdb_host::messages::system::{FeatureToggle, LifecycleEvent, SystemConfig, SystemLifecycle};
use exesdb_host::messages::{Envelope, MessageKind};
use serde_json::{json, Map, Value};

/// The node name of the test bus; every envelope must carry it.
const NODE: &str = "node1@test";

fn config() -> BusConfig {
    BusConfig {
        node: NODE.to_owned(),
        ..BusConfig::default()
    }
}

/// Helpers on a fresh bus, and a subscriber to exactly `channel` + `topic`.
fn setup(channel: Channel, topic: &str) -> (Integration, Subscriber) {
    let bus = Bus::new(config());
    let sub = bus.subscriber("test").expect("subscriber");
    assert!(sub.subscribe(channel, topic).expect("subscribe"));
    (Integration::new(bus), sub)
}

/// The next message, waiting at most 5 seconds.
async fn recv_one(sub: &Subscriber) -> Arc<Envelope> {
    tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("no message within 5 s")
        .expect("inbox closed")
}

/// Asserts the envelope's routing and provenance.
fn assert_routed(env: &Envelope, channel: Channel, topic: &str, kind: &str) {
    assert_eq!(env.channel, channel, "channel of {env:?}");
    assert_eq!(env.topic, topic, "topic of {env:?}");
    assert_eq!(env.kind, kind, "kind of {env:?}");
    assert_eq!(env.node, NODE, "node of {env:?}");
}

/// Receives `sent` (and nothing else), checks its routing, decodes its payload.
async fn expect_one<K: MessageKind>(
    sub: &Subscriber,
    sent: &Envelope,
    channel: Channel,
    topic: &str,
    kind: &str,
) -> K {
    let env = recv_one(sub).await;
    assert_eq!(
        env.id, sent.id,
        "received another message than the one published"
    );
    assert_routed(&env, channel, topic, kind);
    assert!(
        sub.try_recv().is_none(),
        "more than one message was published"
    );
    env.decode::<K>().expect("payload decodes as its kind")
}

/// A JSON object as a map.
fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// An envelope stamped `rfc3339`, parsed by the envelope's own RFC 3339
/// decoding. Panics if the string is not RFC 3339.
fn stamped(rfc3339: &str) -> Envelope {
    let clock = Envelope::new(Channel::Health, "clock", "custom.clock", json!({}), NODE);
    let mut value = serde_json::to_value(clock).expect("envelope serialises");
    value["timestamp"] = json!(rfc3339);
    serde_json::from_value(value).unwrap_or_else(|e| panic!("`{rfc3339}` is not RFC 3339: {e}"))
}

#[test]
fn topic_builders_spell_the_documented_topics() {
    assert_eq!(
        topics::system_lifecycle("ex_esdb"),
        "system_lifecycle:ex_esdb"
    );
    assert_eq!(topics::system_config("store"), "system_config:store");
    assert_eq!(
        topics::feature_toggle("snapshots"),
        "feature_toggle:snapshots"
    );
    assert_eq!(topics::component_health("w"), "component_health:w");
    assert_eq!(topics::node_health("n@h"), "node_health:n@h");
    assert_eq!(topics::CLUSTER_HEALTH, "cluster_health");
    assert_eq!(topics::health_check("disk"), "health_check:disk");
    assert_eq!(topics::component_metrics("p"), "component_metrics:p");
    assert_eq!(topics::store_metrics("s"), "store_metrics:s");
    assert_eq!(topics::resource_usage("c"), "resource_usage:c");
    assert_eq!(topics::process_lifecycle("w"), "process_lifecycle:w");
    assert_eq!(topics::node_lifecycle("n@h"), "node_lifecycle:n@h");
    assert_eq!(topics::CLUSTER_MEMBERSHIP, "cluster_membership");
    assert_eq!(
        topics::system_alert(AlertCategory::Data),
        "system_alert:data"
    );
    assert_eq!(topics::alert_ack("a1"), "alert_ack:a1");
    assert_eq!(topics::alert_escalation("a1"), "alert_escalation:a1");
    assert_eq!(
        topics::audit_data_change("stream"),
        "audit:data_change:stream"
    );
    assert_eq!(
        topics::audit_admin_action("grant"),
        "audit:admin_action:grant"
    );
    assert_eq!(
        topics::audit_access_log("stream"),
        "audit:access_log:stream"
    );
    assert_eq!(topics::debug_trace("store"), "debug_trace:store");
    assert_eq!(
        topics::performance_analysis("store"),
        "performance_analysis:store"
    );
    assert_eq!(
        topics::auth(AuthEventType::TokenRefresh),
        "auth:token_refresh"
    );
    assert_eq!(topics::access_violation("u1"), "access_violation:u1");
    assert_eq!(
        topics::security_alert("brute_force"),
        "security_alert:brute_force"
    );
    assert_eq!(topics::log(LogLevel::Error), "log:error");
    assert_eq!(topics::LOG_SUMMARY, "log_summary");
    assert_eq!(topics::log_rotation("audit"), "log_rotation:audit");
}

// ---- system -----------------------------------------------------------------

#[tokio::test]
async fn broadcast_system_lifecycle() {
    let topic = "system_lifecycle:ex_esdb";
    let (pubsub, sub) = setup(Channel::System, topic);
    let sent = pubsub
        .broadcast_system_lifecycle(LifecycleEvent::Started, "ex_esdb", "0.8.0")
        .await
        .unwrap();
    let got: SystemLifecycle =
        expect_one(&sub, &sent, Channel::System, topic, "SystemLifecycle").await;
    let expected = SystemLifecycle {
        event: LifecycleEvent::Started,
        system_name: "ex_esdb".to_owned(),
        version: "0.8.0".to_owned(),
    };
    assert_eq!(got, expected);
}

#[tokio::test]
async fn broadcast_system_config() {
    let topic = "system_config:store";
    let (pubsub, sub) = setup(Channel::System, topic);
    let config = SystemConfig {
        component: "store".to_owned(),
        changes: obj(json!({"pool_size": 20})),
        previous_config: obj(json!({"pool_size": 10})),
        changed_by: "admin".to_owned(),
    };
    let sent = pubsub
        .broadcast_system_config(config.clone())
        .await
        .unwrap();
    let got: SystemConfig = expect_one(&sub, &sent, Channel::System, topic, "SystemConfig").await;
    assert_eq!(got, config);
}

#[tokio::test]
async fn broadcast_feature_toggle() {
    let topic = "feature_toggle:snapshots";
    let (pubsub, sub) = setup(Channel::System, topic);
    let toggle = FeatureToggle {
        feature: "snapshots".to_owned(),
        enabled: true,
        previous_state: false,
        changed_by: "system".to_owned(),
    };
    let sent = pubsub
        .broadcast_feature_toggle(toggle.clone())
        .await
        .unwrap();
    let got: FeatureToggle = expect_one(&sub, &sent, Channel::System, topic, "FeatureToggle").await;
    assert_eq!(got, toggle);
}

// ---- health -----------------------------------------------------------------

#[tokio::test]
async fn broadcast_health_update() {
    let topic = "component_health:store_worker";
    let (pubsub, sub) = setup(Channel::Health, topic);
    let details = obj(json!({"store_id": "main"}));
    let before = Envelope::new(Channel::Health, "clock", "custom.clock", json!({}), NODE);
    let sent = pubsub
        .broadcast_health_update("store_worker", HealthStatus::Healthy, details.clone())
        .await
        .unwrap();
    let got: ComponentHealth =
        expect_one(&sub, &sent, Channel::Health, topic, "ComponentHealth").await;

    let checked = stamped(&got.last_check);
    assert_eq!(
        checked.timestamp_rfc3339(),
        got.last_check,
        "RFC 3339, UTC, milliseconds"
    );
    // last_check has millisecond precision; the envelopes' clocks are exact.
    assert!(
        before.timestamp_ms() <= checked.timestamp_ms()
            && checked.timestamp_ms() <= sent.timestamp_ms(),
        "last_check {} is not between {} and {}",
        got.last_check,
        before.timestamp_rfc3339(),
        sent.timestamp_rfc3339()
    );
    let expected = ComponentHealth {
        component: "store_worker".to_owned(),
        status: HealthStatus::Healthy,
        details,
        last_check: got.last_check.clone(),
    };
    assert_eq!(got, expected);
}

#[tokio::test]
async fn broadcast_node_health() {
    let topic = "node_health:node2@host";
    let (pubsub, sub) = setup(Channel::Health, topic);
    let health = NodeHealth {
        node: "node2@host".to_owned(),
        status: HealthStatus::Degraded,
        checks: obj(json!({"disk": "ok", "memory": "high"})),
        load_avg: 1.5,
        memory_usage: 0.75,
        disk_usage: 0.5,
    };
    let sent = pubsub.broadcast_node_health(health.clone()).await.unwrap();
    let got: NodeHealth = expect_one(&sub, &sent, Channel::Health, topic, "NodeHealth").await;
    assert_eq!(got, health);
}

#[tokio::test]
async fn broadcast_cluster_health() {
    let topic = "cluster_health";
    let (pubsub, sub) = setup(Channel::Health, topic);
    let health = ClusterHealth {
        status: HealthStatus::Degraded,
        healthy_nodes: 2,
        total_nodes: 3,
        degraded_nodes: 1,
        unhealthy_nodes: 0,
        quorum_status: QuorumStatus::Available,
    };
    let sent = pubsub
        .broadcast_cluster_health(health.clone())
        .await
        .unwrap();
    let got: ClusterHealth = expect_one(&sub, &sent, Channel::Health, topic, "ClusterHealth").await;
    assert_eq!(got, health);
}

#[tokio::test]
async fn broadcast_health_check() {
    let topic = "health_check:disk_space";
    let (pubsub, sub) = setup(Channel::Health, topic);
    let check = HealthCheck {
        check_name: "disk_space".to_owned(),
        result: CheckResult::Fail,
        duration_ms: 12,
        details: obj(json!({"free_bytes": 0})),
        error: Some("disk full".to_owned()),
    };
    let sent = pubsub.broadcast_health_check(check.clone()).await.unwrap();
    let got: HealthCheck = expect_one(&sub, &sent, Channel::Health, topic, "HealthCheck").await;
    assert_eq!(got, check);
}

// ---- metrics ----------------------------------------------------------------

fn perf(component: &str, name: &str, value: f64, unit: &str) -> PerformanceMetric {
    PerformanceMetric {
        metric_name: name.to_owned(),
        value,
        unit: unit.to_owned(),
        component: component.to_owned(),
        tags: Map::new(),
    }
}

#[tokio::test]
async fn broadcast_metrics() {
    let topic = "component_metrics:persistence";
    let (pubsub, sub) = setup(Channel::Metrics, topic);
    // The spec's example, plus a fractional metric and entries to ignore.
    let metrics = obj(json!({
        "operations_count": 1000,
        "duration_ms": 250,
        "success_count": 995,
        "error_count": 5,
        "p99_latency_ms": 3.5,
        "phase": "flush",
        "warm": true,
        "missing": null,
        "nested": {"a": 1},
    }));
    let sent = pubsub
        .broadcast_metrics("persistence", &metrics)
        .await
        .unwrap();
    assert_eq!(
        sent.len(),
        6,
        "5 PerformanceMetric + 1 ThroughputMetric: {sent:?}"
    );
    assert_eq!(
        sent.last().unwrap().kind,
        "ThroughputMetric",
        "throughput comes last"
    );

    let mut performance = BTreeMap::new();
    let mut throughput = Vec::new();
    for published in &sent {
        let env = recv_one(&sub).await;
        assert_eq!(env.id, published.id, "delivered in publish order");
        match env.kind.as_str() {
            "PerformanceMetric" => {
                assert_routed(&env, Channel::Metrics, topic, "PerformanceMetric");
                let m: PerformanceMetric = env.decode().unwrap();
                assert!(
                    performance.insert(m.metric_name.clone(), m).is_none(),
                    "metric twice"
                );
            }
            "ThroughputMetric" => {
                assert_routed(&env, Channel::Metrics, topic, "ThroughputMetric");
                throughput.push(env.decode::<ThroughputMetric>().unwrap());
            }
            other => panic!("unexpected kind `{other}`"),
        }
    }
    assert!(sub.try_recv().is_none(), "nothing more was published");

    let expected: BTreeMap<String, PerformanceMetric> = [
        ("operations_count", 1000.0, "count"),
        ("duration_ms", 250.0, "ms"),
        ("success_count", 995.0, "count"),
        ("error_count", 5.0, "count"),
        ("p99_latency_ms", 3.5, "ms"),
    ]
    .into_iter()
    .map(|(name, value, unit)| (name.to_owned(), perf("persistence", name, value, unit)))
    .collect();
    assert_eq!(performance, expected);
    let expected_throughput = ThroughputMetric {
        operation: "persistence".to_owned(),
        count: 1000,
        duration_ms: 250,
        rate_per_sec: 4000.0,
    };
    assert_eq!(throughput, vec![expected_throughput]);
}

#[tokio::test]
async fn broadcast_metrics_throughput_needs_both_entries_and_tolerates_zero_duration() {
    let topic = "component_metrics:cache";
    let (pubsub, sub) = setup(Channel::Metrics, topic);

    // No `duration_ms`: no throughput.
    let only_count = obj(json!({"operations_count": 7}));
    let sent = pubsub
        .broadcast_metrics("cache", &only_count)
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    let got: PerformanceMetric =
        expect_one(&sub, &sent[0], Channel::Metrics, topic, "PerformanceMetric").await;
    assert_eq!(got, perf("cache", "operations_count", 7.0, "count"));

    // Zero duration: a rate of 0.
    let zero = obj(json!({"operations_count": 7, "duration_ms": 0}));
    let sent = pubsub.broadcast_metrics("cache", &zero).await.unwrap();
    assert_eq!(sent.len(), 3);
    let mut last = None;
    for published in &sent {
        let env = recv_one(&sub).await;
        assert_eq!(env.id, published.id);
        last = Some(env);
    }
    let last = last.unwrap();
    assert_routed(&last, Channel::Metrics, topic, "ThroughputMetric");
    let expected = ThroughputMetric {
        operation: "cache".to_owned(),
        count: 7,
        duration_ms: 0,
        rate_per_sec: 0.0,
    };
    assert_eq!(last.decode::<ThroughputMetric>().unwrap(), expected);

    // Nothing numeric: nothing published.
    let none = obj(json!({"phase": "idle"}));
    assert!(pubsub
        .broadcast_metrics("cache", &none)
        .await
        .unwrap()
        .is_empty());
    assert!(sub.try_recv().is_none());
}

#[tokio::test]
async fn broadcast_throughput_and_latency() {
    let topic = "store_metrics:my_store";
    let (pubsub, sub) = setup(Channel::Metrics, topic);

    let throughput = ThroughputMetric {
        operation: "append".to_owned(),
        count: 500,
        duration_ms: 1000,
        rate_per_sec: 500.0,
    };
    let sent = pubsub
        .broadcast_throughput("my_store", throughput.clone())
        .await
        .unwrap();
    let got: ThroughputMetric =
        expect_one(&sub, &sent, Channel::Metrics, topic, "ThroughputMetric").await;
    assert_eq!(got, throughput);

    let latency = LatencyMetric {
        operation: "read_stream".to_owned(),
        latency_ms: 3.25,
        percentile: Percentile::P99,
        sample_count: 1000,
    };
    let sent = pubsub
        .broadcast_latency("my_store", latency.clone())
        .await
        .unwrap();
    let got: LatencyMetric =
        expect_one(&sub, &sent, Channel::Metrics, topic, "LatencyMetric").await;
    assert_eq!(got, latency);
}

#[tokio::test]
async fn broadcast_resource_usage() {
    let topic = "resource_usage:plugin-audit";
    let (pubsub, sub) = setup(Channel::Metrics, topic);
    let usage = ResourceUsage {
        component: "plugin-audit".to_owned(),
        cpu_percent: 12.5,
        memory_bytes: 1 << 20,
        disk_bytes: 4096,
        open_handles: 7,
    };
    let sent = pubsub
        .broadcast_resource_usage(usage.clone())
        .await
        .unwrap();
    let got: ResourceUsage =
        expect_one(&sub, &sent, Channel::Metrics, topic, "ResourceUsage").await;
    assert_eq!(got, usage);
}

// ---- lifecycle --------------------------------------------------------------

#[tokio::test]
async fn broadcast_lifecycle_event() {
    let topic = "process_lifecycle:store_worker";
    let (pubsub, sub) = setup(Channel::Lifecycle, topic);
    let event = ProcessLifecycle {
        name: "store_worker".to_owned(),
        module: "ExESDB.StoreWorker".to_owned(),
        event: ProcessEvent::Crashed,
        reason: Some("badarg".to_owned()),
        restart_count: 2,
    };
    let sent = pubsub
        .broadcast_lifecycle_event(event.clone())
        .await
        .unwrap();
    let got: ProcessLifecycle =
        expect_one(&sub, &sent, Channel::Lifecycle, topic, "ProcessLifecycle").await;
    assert_eq!(got, event);
}

#[tokio::test]
async fn broadcast_node_lifecycle() {
    let topic = "node_lifecycle:node2@host";
    let (pubsub, sub) = setup(Channel::Lifecycle, topic);
    let event = NodeLifecycle {
        node: "node2@host".to_owned(),
        event: NodeEvent::Joined,
        reason: None,
    };
    let sent = pubsub
        .broadcast_node_lifecycle(event.clone())
        .await
        .unwrap();
    let got: NodeLifecycle =
        expect_one(&sub, &sent, Channel::Lifecycle, topic, "NodeLifecycle").await;
    assert_eq!(got, event);
}

#[tokio::test]
async fn broadcast_cluster_membership() {
    let topic = "cluster_membership";
    let (pubsub, sub) = setup(Channel::Lifecycle, topic);
    let change = ClusterMembership {
        event: MembershipEvent::PartitionDetected,
        affected_nodes: vec!["node3@host".to_owned()],
        active_nodes: vec!["node1@host".to_owned(), "node2@host".to_owned()],
        total_nodes: 3,
        quorum_status: QuorumStatus::Available,
    };
    let sent = pubsub
        .broadcast_cluster_membership(change.clone())
        .await
        .unwrap();
    let got: ClusterMembership =
        expect_one(&sub, &sent, Channel::Lifecycle, topic, "ClusterMembership").await;
    assert_eq!(got, change);
}

// ---- alerts -----------------------------------------------------------------

#[tokio::test]
async fn broadcast_alert() {
    let topic = "system_alert:network";
    let (pubsub, sub) = setup(Channel::Alerts, topic);
    let mut alert = SystemAlert::new(
        "a1",
        Severity::Critical,
        AlertCategory::Network,
        "Node down",
        "node2 stopped answering heartbeats",
        "cluster_monitor",
    );
    alert.metadata = obj(json!({"node": "node2@host"}));
    let sent = pubsub.broadcast_alert(alert.clone()).await.unwrap();
    let got: SystemAlert = expect_one(&sub, &sent, Channel::Alerts, topic, "SystemAlert").await;
    assert_eq!(got, alert);
}

#[tokio::test]
async fn raise_alert() {
    let topic = "system_alert:system";
    let (pubsub, sub) = setup(Channel::Alerts, topic);
    let metadata = obj(json!({"node": "node1"}));
    let sent = pubsub
        .raise_alert(
            AlertCategory::System,
            Severity::Critical,
            "Node down",
            metadata.clone(),
        )
        .await
        .unwrap();
    let got: SystemAlert = expect_one(&sub, &sent, Channel::Alerts, topic, "SystemAlert").await;

    let id = uuid::Uuid::parse_str(&got.alert_id).expect("alert_id is a UUID");
    assert_eq!(id.get_version_num(), 7, "alert_id is a UUIDv7");
    let expected = SystemAlert {
        alert_id: got.alert_id.clone(),
        severity: Severity::Critical,
        category: AlertCategory::System,
        title: "Node down".to_owned(),
        description: "Node down".to_owned(),
        source: NODE.to_owned(),
        metadata,
        requires_ack: true,
    };
    assert_eq!(got, expected);
}

#[tokio::test]
async fn broadcast_alert_ack() {
    let topic = "alert_ack:a1";
    let (pubsub, sub) = setup(Channel::Alerts, topic);
    let ack = AlertAck {
        alert_id: "a1".to_owned(),
        ack_by: "ops".to_owned(),
        ack_note: Some("on it".to_owned()),
        resolution: None,
    };
    let sent = pubsub.broadcast_alert_ack(ack.clone()).await.unwrap();
    let got: AlertAck = expect_one(&sub, &sent, Channel::Alerts, topic, "AlertAck").await;
    assert_eq!(got, ack);
}

#[tokio::test]
async fn broadcast_alert_escalation() {
    let topic = "alert_escalation:a1";
    let (pubsub, sub) = setup(Channel::Alerts, topic);
    let escalation = AlertEscalation {
        alert_id: "a1".to_owned(),
        from_level: Some(EscalationLevel::Level1),
        to_level: EscalationLevel::Level2,
        escalation_reason: "unacknowledged for 15 minutes".to_owned(),
        escalated_by: "system".to_owned(),
        notify_contacts: vec!["ops@example.com".to_owned()],
    };
    let sent = pubsub
        .broadcast_alert_escalation(escalation.clone())
        .await
        .unwrap();
    let got: AlertEscalation =
        expect_one(&sub, &sent, Channel::Alerts, topic, "AlertEscalation").await;
    assert_eq!(got, escalation);
}

// ---- audit, diagnostics, security -------------------------------------------

#[tokio::test]
async fn broadcast_audit_event() {
    let change = DataChange {
        user_id: "u1".to_owned(),
        resource_type: "stream".to_owned(),
        resource_id: "orders-1".to_owned(),
        action: DataAction::Update,
        changes: obj(json!({"name": {"old": "a", "new": "b"}})),
        metadata: obj(json!({"request_id": "r-1"})),
        source_ip: Some("192.0.2.7".to_owned()),
    };
    let topic = "audit:data_change:stream";
    let (pubsub, sub) = setup(Channel::Audit, topic);
    let event = AuditEvent::from(change.clone());
    assert_eq!(
        (event.kind(), event.topic()),
        ("DataChange", topic.to_owned())
    );
    let sent = pubsub.broadcast_audit_event(event).await.unwrap();
    let got: DataChange = expect_one(&sub, &sent, Channel::Audit, topic, "DataChange").await;
    assert_eq!(got, change);

    let action = AdminAction {
        admin_user_id: "admin".to_owned(),
        action_type: "delete_stream".to_owned(),
        target_resource: "orders-1".to_owned(),
        details: obj(json!({"hard": true})),
        justification: Some("retention policy".to_owned()),
        source_ip: None,
    };
    let topic = "audit:admin_action:delete_stream";
    let (pubsub, sub) = setup(Channel::Audit, topic);
    let sent = pubsub
        .broadcast_audit_event(AuditEvent::AdminAction(action.clone()))
        .await
        .unwrap();
    let got: AdminAction = expect_one(&sub, &sent, Channel::Audit, topic, "AdminAction").await;
    assert_eq!(got, action);

    let access = AccessLog {
        user_id: "u1".to_owned(),
        resource_type: "subscription".to_owned(),
        resource_id: "sub-1".to_owned(),
        action: "read".to_owned(),
        success: true,
        duration_ms: 3,
        source_ip: None,
        user_agent: Some("curl/8.5".to_owned()),
    };
    let topic = "audit:access_log:subscription";
    let (pubsub, sub) = setup(Channel::Audit, topic);
    let sent = pubsub
        .broadcast_audit_event(AuditEvent::AccessLog(access.clone()))
        .await
        .unwrap();
    let got: AccessLog = expect_one(&sub, &sent, Channel::Audit, topic, "AccessLog").await;
    assert_eq!(got, access);
}

#[tokio::test]
async fn broadcast_diagnostic() {
    let trace = DebugTrace {
        trace_id: "t-1".to_owned(),
        component: "store".to_owned(),
        operation: "append_events".to_owned(),
        trace_data: obj(json!({"batch": 3})),
        stack_trace: None,
        duration_ms: Some(12),
        metadata: Map::new(),
    };
    let topic = "debug_trace:store";
    let (pubsub, sub) = setup(Channel::Diagnostics, topic);
    let sent = pubsub
        .broadcast_diagnostic(DiagnosticEvent::DebugTrace(trace.clone()))
        .await
        .unwrap();
    let got: DebugTrace = expect_one(&sub, &sent, Channel::Diagnostics, topic, "DebugTrace").await;
    assert_eq!(got, trace);

    let analysis = PerformanceAnalysis {
        analysis_id: "an-1".to_owned(),
        component: "projector".to_owned(),
        analysis_type: AnalysisType::MemoryLeak,
        findings: vec!["heap grows 1 MiB/min".to_owned()],
        recommendations: vec!["bound the cache".to_owned()],
        severity: Severity::Warning,
    };
    let topic = "performance_analysis:projector";
    let (pubsub, sub) = setup(Channel::Diagnostics, topic);
    let sent = pubsub
        .broadcast_diagnostic(analysis.clone().into())
        .await
        .unwrap();
    let got: PerformanceAnalysis = expect_one(
        &sub,
        &sent,
        Channel::Diagnostics,
        topic,
        "PerformanceAnalysis",
    )
    .await;
    assert_eq!(got, analysis);
}

#[tokio::test]
async fn broadcast_security_event() {
    let auth = AuthEvent {
        user_id: "u1".to_owned(),
        event_type: AuthEventType::LoginFailure,
        auth_method: "password".to_owned(),
        source_ip: Some("192.0.2.7".to_owned()),
        user_agent: None,
        metadata: obj(json!({"reason": "bad password"})),
    };
    let topic = "auth:login_failure";
    let (pubsub, sub) = setup(Channel::Security, topic);
    let sent = pubsub
        .broadcast_security_event(SecurityEvent::Auth(auth.clone()))
        .await
        .unwrap();
    let got: AuthEvent = expect_one(&sub, &sent, Channel::Security, topic, "AuthEvent").await;
    assert_eq!(got, auth);

    let violation = AccessViolation {
        user_id: "plugin-metrics".to_owned(),
        violation_type: "unauthorized_channel".to_owned(),
        resource: "audit".to_owned(),
        action: "publish".to_owned(),
        source_ip: None,
        severity: Severity::Error,
        metadata: obj(json!({"channel": "audit"})),
    };
    let topic = "access_violation:plugin-metrics";
    let (pubsub, sub) = setup(Channel::Security, topic);
    let sent = pubsub
        .broadcast_security_event(SecurityEvent::AccessViolation(violation.clone()))
        .await
        .unwrap();
    let got: AccessViolation =
        expect_one(&sub, &sent, Channel::Security, topic, "AccessViolation").await;
    assert_eq!(got, violation);

    let alert = SecurityAlert {
        alert_type: "brute_force".to_owned(),
        severity: Severity::Critical,
        description: "50 failed logins in 1 minute".to_owned(),
        affected_users: vec!["u1".to_owned()],
        source_ip: Some("192.0.2.7".to_owned()),
        metadata: Map::new(),
    };
    let topic = "security_alert:brute_force";
    let (pubsub, sub) = setup(Channel::Security, topic);
    let sent = pubsub
        .broadcast_security_event(SecurityEvent::Alert(alert.clone()))
        .await
        .unwrap();
    let got: SecurityAlert =
        expect_one(&sub, &sent, Channel::Security, topic, "SecurityAlert").await;
    assert_eq!(got, alert);
}

// ---- logging ----------------------------------------------------------------

#[tokio::test]
async fn broadcast_log() {
    let topic = "log:warning";
    let (pubsub, sub) = setup(Channel::Logging, topic);
    let entry = LogEntry {
        log_id: "l-1".to_owned(),
        level: LogLevel::Warning,
        message: "slow append".to_owned(),
        module: Some("store".to_owned()),
        function: None,
        line: Some(42),
        metadata: obj(json!({"store": "my_store"})),
    };
    let sent = pubsub.broadcast_log(entry.clone()).await.unwrap();
    let got: LogEntry = expect_one(&sub, &sent, Channel::Logging, topic, "LogEntry").await;
    assert_eq!(got, entry);
}

#[tokio::test]
async fn broadcast_log_summary() {
    let topic = "log_summary";
    let (pubsub, sub) = setup(Channel::Logging, topic);
    let summary = LogSummary {
        summary_id: "s-1".to_owned(),
        time_period: "1h".to_owned(),
        log_counts: BTreeMap::from([("error".to_owned(), 3), ("info".to_owned(), 97)]),
        top_errors: vec!["timeout".to_owned()],
        error_rate: 0.03,
        total_logs: 100,
    };
    let sent = pubsub.broadcast_log_summary(summary.clone()).await.unwrap();
    let got: LogSummary = expect_one(&sub, &sent, Channel::Logging, topic, "LogSummary").await;
    assert_eq!(got, summary);
}

#[tokio::test]
async fn broadcast_log_rotation() {
    let topic = "log_rotation:audit";
    let (pubsub, sub) = setup(Channel::Logging, topic);
    let rotation = LogRotation {
        rotation_id: "r-1".to_owned(),
        log_type: "audit".to_owned(),
        old_file: "/var/log/audit.log.1".to_owned(),
        new_file: "/var/log/audit.log".to_owned(),
        file_size: 10_485_760,
        entries_count: 5000,
    };
    let sent = pubsub
        .broadcast_log_rotation(rotation.clone())
        .await
        .unwrap();
    let got: LogRotation = expect_one(&sub, &sent, Channel::Logging, topic, "LogRotation").await;
    assert_eq!(got, rotation);
}

// ---- errors -----------------------------------------------------------------

#[tokio::test]
async fn names_that_make_invalid_topics_are_rejected() {
    let pubsub = Integration::new(Bus::new(config()));
    let err = pubsub
        .broadcast_health_update("store worker", HealthStatus::Healthy, Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Topic(_)), "{err}");
    let err = pubsub
        .broadcast_system_lifecycle(LifecycleEvent::Started, "", "0.8.0")
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Topic(_)), "{err}");
}
