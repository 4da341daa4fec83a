//! The `PubSubIntegration` helpers: the idiomatic way native code publishes.
//!
//! [`Integration`] wraps a [`Bus`] with one call per spec message. Each call
//! builds the typed payload, publishes it on its kind's channel under the
//! topic named in [`topics`] (which lists the topic of every helper), and
//! returns the published envelope (stamped with this node's name).
//!
//! # Errors
//! Every helper fails as [`Bus::publish`] does: an invalid topic (a name that
//! is empty or holds whitespace), an invalid payload, or
//! [`BusError::Backpressure`] when a lossless subscriber stayed full.
//!
//! ```
//! # tokio_test_block_on(async {
//! use exesdb_host::bus::{Bus, BusConfig, Channel};
//! use exesdb_host::integration::{topics, Integration};
//! use exesdb_host::messages::health::{ComponentHealth, HealthStatus};
//!
//! let bus = Bus::new(BusConfig::default());
//! let sub = bus.subscriber("dashboard").unwrap();
//! sub.subscribe(Channel::Health, &topics::component_health("store_worker")).unwrap();
//!
//! let pubsub = Integration::new(bus.clone());
//! let mut details = serde_json::Map::new();
//! details.insert("store_id".to_owned(), serde_json::json!("main"));
//! pubsub
//!     .broadcast_health_update("store_worker", HealthStatus::Healthy, details)
//!     .await
//!     .unwrap();
//!
//! let env = sub.recv().await.unwrap();
//! assert_eq!(env.topic, "component_health:store_worker");
//! assert_eq!(env.decode::<ComponentHealth>().unwrap().status, HealthStatus::Healthy);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Runtime::new().unwrap().block_on(f)
//! # }
//! ```

mod events;
pub mod topics;

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use events::{
    performance_metrics, throughput_metric, AuditEvent, DiagnosticEvent, SecurityEvent,
};

use crate::bus::{Bus, BusError};
use crate::messages::alerts::{AlertAck, AlertCategory, AlertEscalation, Severity, SystemAlert};
use crate::messages::health::{
    ClusterHealth, ComponentHealth, HealthCheck, HealthStatus, NodeHealth,
};
use crate::messages::lifecycle::{ClusterMembership, NodeLifecycle, ProcessLifecycle};
use crate::messages::logging::{LogEntry, LogRotation, LogSummary};
use crate::messages::metrics::{LatencyMetric, ResourceUsage, ThroughputMetric};
use crate::messages::system::{FeatureToggle, LifecycleEvent, SystemConfig, SystemLifecycle};
use crate::messages::Envelope;

/// Typed publishing helpers over a [`Bus`]. Cheap to clone.
///
/// The topic of every helper is in [`topics`]; the errors are in the
/// [module docs](crate::integration).
#[derive(Debug, Clone)]
pub struct Integration {
    bus: Bus,
}

impl Integration {
    /// Helpers publishing on `bus`.
    pub fn new(bus: Bus) -> Self {
        Integration { bus }
    }

    /// The bus the helpers publish on.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    // ---- system -------------------------------------------------------------

    /// [`SystemLifecycle`] on `system`, topic `system_lifecycle:<system_name>`.
    pub async fn broadcast_system_lifecycle(
        &self,
        event: LifecycleEvent,
        system_name: &str,
        version: &str,
    ) -> Result<Arc<Envelope>, BusError> {
        let payload = SystemLifecycle {
            event,
            system_name: system_name.to_owned(),
            version: version.to_owned(),
        };
        self.bus
            .publish(&topics::system_lifecycle(system_name), &payload)
            .await
    }

    /// [`SystemConfig`] on `system`, topic `system_config:<component>`.
    pub async fn broadcast_system_config(
        &self,
        config: SystemConfig,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::system_config(&config.component), &config)
            .await
    }

    /// [`FeatureToggle`] on `system`, topic `feature_toggle:<feature>`.
    pub async fn broadcast_feature_toggle(
        &self,
        toggle: FeatureToggle,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::feature_toggle(&toggle.feature), &toggle)
            .await
    }

    // ---- health -------------------------------------------------------------

    /// [`ComponentHealth`] on `health`, topic `component_health:<component>`,
    /// with `last_check` set to now (RFC 3339, UTC, milliseconds).
    pub async fn broadcast_health_update(
        &self,
        component: &str,
        status: HealthStatus,
        details: Map<String, Value>,
    ) -> Result<Arc<Envelope>, BusError> {
        let payload = ComponentHealth {
            component: component.to_owned(),
            status,
            details,
            last_check: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        self.bus
            .publish(&topics::component_health(component), &payload)
            .await
    }

    /// [`NodeHealth`] on `health`, topic `node_health:<node>`.
    pub async fn broadcast_node_health(
        &self,
        health: NodeHealth,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::node_health(&health.node), &health)
            .await
    }

    /// [`ClusterHealth`] on `health`, topic `cluster_health`.
    pub async fn broadcast_cluster_health(
        &self,
        health: ClusterHealth,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus.publish(topics::CLUSTER_HEALTH, &health).await
    }

    /// [`HealthCheck`] on `health`, topic `health_check:<check_name>`.
    pub async fn broadcast_health_check(
        &self,
        check: HealthCheck,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::health_check(&check.check_name), &check)
            .await
    }

    // ---- metrics ------------------------------------------------------------

    /// The spec's `broadcast_metrics(component, %{...})`: on `metrics`, topic
    /// `component_metrics:<component>`, one `PerformanceMetric` per numeric
    /// entry (see [`performance_metrics`]), then, when `operations_count` and
    /// `duration_ms` are both present, a [`ThroughputMetric`] (see
    /// [`throughput_metric`]). Non-numeric entries are ignored. Returns the
    /// envelopes in publish order; stops at the first failure.
    pub async fn broadcast_metrics(
        &self,
        component: &str,
        metrics: &Map<String, Value>,
    ) -> Result<Vec<Arc<Envelope>>, BusError> {
        let topic = topics::component_metrics(component);
        let mut published = Vec::new();
        for metric in performance_metrics(component, metrics) {
            published.push(self.bus.publish(&topic, &metric).await?);
        }
        if let Some(throughput) = throughput_metric(component, metrics) {
            published.push(self.bus.publish(&topic, &throughput).await?);
        }
        Ok(published)
    }

    /// [`ThroughputMetric`] of a store on `metrics`, topic `store_metrics:<store>`.
    pub async fn broadcast_throughput(
        &self,
        store: &str,
        metric: ThroughputMetric,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::store_metrics(store), &metric)
            .await
    }

    /// [`LatencyMetric`] of a store on `metrics`, topic `store_metrics:<store>`.
    pub async fn broadcast_latency(
        &self,
        store: &str,
        metric: LatencyMetric,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::store_metrics(store), &metric)
            .await
    }

    /// [`ResourceUsage`] on `metrics`, topic `resource_usage:<component>`.
    pub async fn broadcast_resource_usage(
        &self,
        usage: ResourceUsage,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::resource_usage(&usage.component), &usage)
            .await
    }

    // ---- lifecycle ----------------------------------------------------------

    /// [`ProcessLifecycle`] on `lifecycle`, topic `process_lifecycle:<name>`.
    pub async fn broadcast_lifecycle_event(
        &self,
        event: ProcessLifecycle,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::process_lifecycle(&event.name), &event)
            .await
    }

    /// [`NodeLifecycle`] on `lifecycle`, topic `node_lifecycle:<node>`.
    pub async fn broadcast_node_lifecycle(
        &self,
        event: NodeLifecycle,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::node_lifecycle(&event.node), &event)
            .await
    }

    /// [`ClusterMembership`] on `lifecycle`, topic `cluster_membership`.
    pub async fn broadcast_cluster_membership(
        &self,
        change: ClusterMembership,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus.publish(topics::CLUSTER_MEMBERSHIP, &change).await
    }

    // ---- alerts -------------------------------------------------------------

    /// [`SystemAlert`] on `alerts`, topic `system_alert:<category>`.
    pub async fn broadcast_alert(&self, alert: SystemAlert) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::system_alert(alert.category), &alert)
            .await
    }

    /// The spec's `broadcast_alert(type, severity, title, metadata)`: a new
    /// [`SystemAlert`] with a fresh UUIDv7 `alert_id`, `title` as title and
    /// description, this node as `source`, `metadata`, and `requires_ack`
    /// from the severity; published as [`broadcast_alert`](Self::broadcast_alert) does.
    pub async fn raise_alert(
        &self,
        category: AlertCategory,
        severity: Severity,
        title: &str,
        metadata: Map<String, Value>,
    ) -> Result<Arc<Envelope>, BusError> {
        let id = Uuid::now_v7().to_string();
        let mut alert = SystemAlert::new(id, severity, category, title, title, self.bus.node());
        alert.metadata = metadata;
        self.broadcast_alert(alert).await
    }

    /// [`AlertAck`] on `alerts`, topic `alert_ack:<alert_id>`.
    pub async fn broadcast_alert_ack(&self, ack: AlertAck) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::alert_ack(&ack.alert_id), &ack)
            .await
    }

    /// [`AlertEscalation`] on `alerts`, topic `alert_escalation:<alert_id>`.
    pub async fn broadcast_alert_escalation(
        &self,
        escalation: AlertEscalation,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::alert_escalation(&escalation.alert_id), &escalation)
            .await
    }

    // ---- logging ------------------------------------------------------------

    /// [`LogEntry`] on `logging`, topic `log:<level>`.
    pub async fn broadcast_log(&self, entry: LogEntry) -> Result<Arc<Envelope>, BusError> {
        self.bus.publish(&topics::log(entry.level), &entry).await
    }

    /// [`LogSummary`] on `logging`, topic `log_summary`.
    pub async fn broadcast_log_summary(
        &self,
        summary: LogSummary,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus.publish(topics::LOG_SUMMARY, &summary).await
    }

    /// [`LogRotation`] on `logging`, topic `log_rotation:<log_type>`.
    pub async fn broadcast_log_rotation(
        &self,
        rotation: LogRotation,
    ) -> Result<Arc<Envelope>, BusError> {
        self.bus
            .publish(&topics::log_rotation(&rotation.log_type), &rotation)
            .await
    }
}
