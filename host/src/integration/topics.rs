//! Every topic name the host publishes on, in one place, so that
//! publishers, subscribers and tests use the same names.
//!
//! `integration` sits in layer 3 (see `docs/architecture.md`), below
//! `store`, `logging`, `health` and `metrics`, so the host's own reporters
//! build their topics here as the helpers of
//! [`Integration`](super::Integration) do, never by hand; so do the stores,
//! whose appends are announced on `events` under [`store_stream`].
//!
//! The helpers' topics:
//!
//! | helper | kind(s) | topic |
//! |--------|---------|-------|
//! | `broadcast_system_lifecycle` | `SystemLifecycle` | `system_lifecycle:<system_name>` |
//! | `broadcast_system_config` | `SystemConfig` | `system_config:<component>` |
//! | `broadcast_feature_toggle` | `FeatureToggle` | `feature_toggle:<feature>` |
//! | `broadcast_health_update` | `ComponentHealth` | `component_health:<component>` |
//! | `broadcast_node_health` | `NodeHealth` | `node_health:<node>` |
//! | `broadcast_cluster_health` | `ClusterHealth` | `cluster_health` |
//! | `broadcast_health_check` | `HealthCheck` | `health_check:<check_name>` |
//! | `broadcast_metrics` | `PerformanceMetric`, `ThroughputMetric` | `component_metrics:<component>` |
//! | `broadcast_throughput`, `broadcast_latency` | `ThroughputMetric`, `LatencyMetric` | `store_metrics:<store>` |
//! | `broadcast_resource_usage` | `ResourceUsage` | `resource_usage:<component>` |
//! | `broadcast_lifecycle_event` | `ProcessLifecycle` | `process_lifecycle:<name>` |
//! | `broadcast_node_lifecycle` | `NodeLifecycle` | `node_lifecycle:<node>` |
//! | `broadcast_cluster_membership` | `ClusterMembership` | `cluster_membership` |
//! | `broadcast_alert`, `raise_alert` | `SystemAlert` | `system_alert:<category>` |
//! | `broadcast_alert_ack` | `AlertAck` | `alert_ack:<alert_id>` |
//! | `broadcast_alert_escalation` | `AlertEscalation` | `alert_escalation:<alert_id>` |
//! | `broadcast_audit_event` | `DataChange`, `AdminAction`, `AccessLog` | `audit:data_change:<resource_type>`, `audit:admin_action:<action_type>`, `audit:access_log:<resource_type>` |
//! | `broadcast_diagnostic` | `DebugTrace`, `PerformanceAnalysis` | `debug_trace:<component>`, `performance_analysis:<component>` |
//! | `broadcast_security_event` | `AuthEvent`, `AccessViolation`, `SecurityAlert` | `auth:<event_type>`, `access_violation:<user_id>`, `security_alert:<alert_type>` |
//! | `broadcast_log` | `LogEntry` | `log:<level>` |
//! | `broadcast_log_summary` | `LogSummary` | `log_summary` |
//! | `broadcast_log_rotation` | `LogRotation` | `log_rotation:<log_type>` |
//!
//! The host's own reporters' topics:
//!
//! | publisher | kind(s) | topic |
//! |-----------|---------|-------|
//! | health tracker | `SubscriptionHealth` | `store_health:<store>`, `subscription_health:<store>:<subscription>` |
//! | health tracker | `HealthSummary` | `health_summary:<store>` |
//! | health reporter | `HealthCheck`, `ComponentHealth`, `NodeHealth` | `health_check:<check>`, `component_health:<component>`, `node_health:<node>` |
//! | metrics collector | `ThroughputMetric`, `LatencyMetric`, `PerformanceMetric` | `store_metrics:<store>` |
//! | metrics collector | `MetricsSummary` | `metrics_summary:<store>` |
//! | metrics publisher | `PerformanceAnalysis`, `ResourceUsage`, `LogSummary` | `performance_analysis:<component>`, `resource_usage:<component>`, `log_summary`, `log_summary:<module>` |
//! | log bridge | `LogEntry` | `log:<level>` |
//! | stores (`emitter::Stores`) | the event's type, on `events` | `<store>:<stream>` |
//!
//! Each builder inserts its argument verbatim: an argument holding `:` adds
//! segments, and an empty one or one holding whitespace makes the topic
//! invalid (publishing then fails with
//! [`BusError::Topic`](crate::bus::BusError::Topic)).

use crate::messages::alerts::AlertCategory;
use crate::messages::logging::LogLevel;
use crate::messages::security::AuthEventType;

// ---- events -----------------------------------------------------------------

/// `<store>:<stream>`: on `events`, the announcement of an event appended to
/// `stream` of `store` (kind: the event's type, payload: the recorded
/// event). An emitter worker's activation banner names what it follows the
/// same way, with its selector as the stream (`default:$all`).
pub fn store_stream(store: &str, stream: &str) -> String {
    format!("{store}:{stream}")
}

// ---- system -----------------------------------------------------------------

/// `system_lifecycle:<system_name>`: [`SystemLifecycle`](crate::messages::system::SystemLifecycle).
pub fn system_lifecycle(system_name: &str) -> String {
    format!("system_lifecycle:{system_name}")
}

/// `system_config:<component>`: [`SystemConfig`](crate::messages::system::SystemConfig).
pub fn system_config(component: &str) -> String {
    format!("system_config:{component}")
}

/// `feature_toggle:<feature>`: [`FeatureToggle`](crate::messages::system::FeatureToggle).
pub fn feature_toggle(feature: &str) -> String {
    format!("feature_toggle:{feature}")
}

// ---- health -----------------------------------------------------------------

/// `component_health:<component>`: [`ComponentHealth`](crate::messages::health::ComponentHealth).
pub fn component_health(component: &str) -> String {
    format!("component_health:{component}")
}

/// `node_health:<node>`: [`NodeHealth`](crate::messages::health::NodeHealth).
pub fn node_health(node: &str) -> String {
    format!("node_health:{node}")
}

/// `cluster_health`: [`ClusterHealth`](crate::messages::health::ClusterHealth).
pub const CLUSTER_HEALTH: &str = "cluster_health";

/// `health_check:<check_name>`: [`HealthCheck`](crate::messages::health::HealthCheck).
pub fn health_check(check_name: &str) -> String {
    format!("health_check:{check_name}")
}

/// `store_health:<store>`: every [`SubscriptionHealth`] event of a store's
/// subscriptions.
///
/// [`SubscriptionHealth`]: crate::messages::tracking::SubscriptionHealth
pub fn store_health(store: &str) -> String {
    format!("store_health:{store}")
}

/// The first segment of [`subscription_health`]'s topics.
pub const SUBSCRIPTION_HEALTH: &str = "subscription_health";

/// `subscription_health:<store>:<subscription>`: the [`SubscriptionHealth`]
/// events of one subscription.
///
/// [`SubscriptionHealth`]: crate::messages::tracking::SubscriptionHealth
pub fn subscription_health(store: &str, subscription: &str) -> String {
    format!("{SUBSCRIPTION_HEALTH}:{store}:{subscription}")
}

/// `health_summary:<store>`: a store's [`HealthSummary`](crate::messages::tracking::HealthSummary).
pub fn health_summary(store: &str) -> String {
    format!("health_summary:{store}")
}

// ---- metrics ----------------------------------------------------------------

/// `component_metrics:<component>`: the [`PerformanceMetric`]s and
/// [`ThroughputMetric`] of `broadcast_metrics`.
///
/// [`PerformanceMetric`]: crate::messages::metrics::PerformanceMetric
/// [`ThroughputMetric`]: crate::messages::metrics::ThroughputMetric
pub fn component_metrics(component: &str) -> String {
    format!("component_metrics:{component}")
}

/// `store_metrics:<store>`: a store's [`ThroughputMetric`] and [`LatencyMetric`].
///
/// [`ThroughputMetric`]: crate::messages::metrics::ThroughputMetric
/// [`LatencyMetric`]: crate::messages::metrics::LatencyMetric
pub fn store_metrics(store: &str) -> String {
    format!("store_metrics:{store}")
}

/// `metrics_summary:<store>`: a store's [`MetricsSummary`](crate::messages::tracking::MetricsSummary).
pub fn metrics_summary(store: &str) -> String {
    format!("metrics_summary:{store}")
}

/// `resource_usage:<component>`: [`ResourceUsage`](crate::messages::metrics::ResourceUsage).
pub fn resource_usage(component: &str) -> String {
    format!("resource_usage:{component}")
}

// ---- lifecycle --------------------------------------------------------------

/// `process_lifecycle:<name>`: [`ProcessLifecycle`](crate::messages::lifecycle::ProcessLifecycle).
pub fn process_lifecycle(name: &str) -> String {
    format!("process_lifecycle:{name}")
}

/// `node_lifecycle:<node>`: [`NodeLifecycle`](crate::messages::lifecycle::NodeLifecycle).
pub fn node_lifecycle(node: &str) -> String {
    format!("node_lifecycle:{node}")
}

/// `cluster_membership`: [`ClusterMembership`](crate::messages::lifecycle::ClusterMembership).
pub const CLUSTER_MEMBERSHIP: &str = "cluster_membership";

// ---- alerts -----------------------------------------------------------------

/// `system_alert:<category>`: [`SystemAlert`](crate::messages::alerts::SystemAlert).
pub fn system_alert(category: AlertCategory) -> String {
    format!("system_alert:{}", category.as_str())
}

/// `alert_ack:<alert_id>`: [`AlertAck`](crate::messages::alerts::AlertAck).
pub fn alert_ack(alert_id: &str) -> String {
    format!("alert_ack:{alert_id}")
}

/// `alert_escalation:<alert_id>`: [`AlertEscalation`](crate::messages::alerts::AlertEscalation).
pub fn alert_escalation(alert_id: &str) -> String {
    format!("alert_escalation:{alert_id}")
}

// ---- audit ------------------------------------------------------------------

/// `audit:data_change:<resource_type>`: [`DataChange`](crate::messages::audit::DataChange).
pub fn audit_data_change(resource_type: &str) -> String {
    format!("audit:data_change:{resource_type}")
}

/// `audit:admin_action:<action_type>`: [`AdminAction`](crate::messages::audit::AdminAction).
pub fn audit_admin_action(action_type: &str) -> String {
    format!("audit:admin_action:{action_type}")
}

/// `audit:access_log:<resource_type>`: [`AccessLog`](crate::messages::audit::AccessLog).
pub fn audit_access_log(resource_type: &str) -> String {
    format!("audit:access_log:{resource_type}")
}

// ---- diagnostics ------------------------------------------------------------

/// `debug_trace:<component>`: [`DebugTrace`](crate::messages::diagnostics::DebugTrace).
pub fn debug_trace(component: &str) -> String {
    format!("debug_trace:{component}")
}

/// `performance_analysis:<component>`:
/// [`PerformanceAnalysis`](crate::messages::diagnostics::PerformanceAnalysis).
pub fn performance_analysis(component: &str) -> String {
    format!("performance_analysis:{component}")
}

// ---- security ---------------------------------------------------------------

/// `auth:<event_type>`: [`AuthEvent`](crate::messages::security::AuthEvent).
pub fn auth(event_type: AuthEventType) -> String {
    format!("auth:{}", event_type.as_str())
}

/// `access_violation:<user_id>`: [`AccessViolation`](crate::messages::security::AccessViolation).
pub fn access_violation(user_id: &str) -> String {
    format!("access_violation:{user_id}")
}

/// `lagged:<plugin>`: the lag marker a subscriber plugin receives when its
/// inbox dropped messages (kind `Lagged`, never published on the bus).
pub fn lagged(plugin: &str) -> String {
    format!("lagged:{plugin}")
}

/// `security_alert:<alert_type>`: [`SecurityAlert`](crate::messages::security::SecurityAlert).
pub fn security_alert(alert_type: &str) -> String {
    format!("security_alert:{alert_type}")
}

// ---- logging ----------------------------------------------------------------

/// `log:<level>`: [`LogEntry`](crate::messages::logging::LogEntry).
pub fn log(level: LogLevel) -> String {
    format!("log:{}", level.as_str())
}

/// `log_summary`: [`LogSummary`](crate::messages::logging::LogSummary).
pub const LOG_SUMMARY: &str = "log_summary";

/// `log_rotation:<log_type>`: [`LogRotation`](crate::messages::logging::LogRotation).
pub fn log_rotation(log_type: &str) -> String {
    format!("log_rotation:{log_type}")
}

/// `log_summary:<module>`: the [`LogSummary`](crate::messages::logging::LogSummary)
/// of one module's records (see [`crate::logging::summary`]).
pub fn log_summary_of(module: &str) -> String {
    format!("log_summary:{module}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::validate_topic;

    #[test]
    fn builders_make_valid_topics() {
        let all = [
            system_lifecycle("ex_esdb"),
            component_health("store_worker"),
            system_alert(AlertCategory::Performance),
            audit_data_change("stream"),
            auth(AuthEventType::LoginFailure),
            log(LogLevel::Warning),
            CLUSTER_HEALTH.to_owned(),
            store_health("default"),
            subscription_health("default", "projector"),
            health_summary("default"),
            metrics_summary("default"),
            store_stream("default", "orders-1"),
        ];
        for topic in &all {
            validate_topic(topic).unwrap();
        }
        assert_eq!(all[2], "system_alert:performance");
        assert_eq!(all[3], "audit:data_change:stream");
        assert_eq!(all[4], "auth:login_failure");
        assert_eq!(all[5], "log:warning");
        assert_eq!(all[7], "store_health:default");
        assert_eq!(all[8], "subscription_health:default:projector");
        assert_eq!(all[9], "health_summary:default");
        assert_eq!(all[10], "metrics_summary:default");
        assert_eq!(all[11], "default:orders-1");
        assert_eq!(store_stream("default", "$all"), "default:$all");
    }
}
