//! The `PubSubIntegration` helpers: the idiomatic way native code publishes.
//!
//! [`Integration`] wraps a [`Bus`] with one call per spec message. Each call
//! builds the typed payload, publishes it on its kind's channel under the
//! topic named in [`topics`] (which lists the topic of every helper), and
//! returns the published envelope (stamped with this node's name).
//!
//! # Correlation and causation ids
//! [`Integration::new`] publishes messages without ids. A view bound to ids
//! stamps them on every message any of its helpers publishes (each message
//! of `broadcast_metrics` included); the view is cheap and the original is
//! unchanged:
//! - [`Integration::with_correlation`]`(correlation_id, causation_id)`: both;
//! - [`Integration::caused_by`]`(&message)`: what a message causes — its id
//!   as causation id, its correlation id as correlation id (its own id when
//!   it has none: it starts the chain);
//! - [`Integration::with_ids`]`(`[`Correlation`]`)`: either id alone, e.g.
//!   [`Correlation::operation`] for the first message of an operation.
//!
//! ```
//! # tokio_test_block_on(async {
//! use exesdb_host::bus::{Bus, BusConfig, Channel};
//! use exesdb_host::integration::{topics, Integration};
//! use exesdb_host::messages::alerts::{AlertCategory, Severity};
//!
//! let bus = Bus::new(BusConfig::default());
//! let sub = bus.subscriber("pager").unwrap();
//! sub.subscribe(Channel::Alerts, &topics::system_alert(AlertCategory::Data)).unwrap();
//!
//! let pubsub = Integration::new(bus.clone());
//! let failing = pubsub.with_correlation("append-42", "msg-7");
//! failing
//!     .raise_alert(AlertCategory::Data, Severity::Error, "append failed", Default::default())
//!     .await
//!     .unwrap();
//!
//! let alert = sub.recv().await.unwrap();
//! assert_eq!(alert.correlation_id.as_deref(), Some("append-42"));
//! assert_eq!(alert.causation_id.as_deref(), Some("msg-7"));
//!
//! // What the alert causes in turn carries the alert's id as its cause.
//! let ack = pubsub.caused_by(&alert);
//! assert_eq!(ack.ids().causation_id, Some(alert.id.to_string()));
//! assert_eq!(ack.ids().correlation_id.as_deref(), Some("append-42"));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Runtime::new().unwrap().block_on(f)
//! # }
//! ```
//!
//! # Synchronous reporters
//! The host's own reporters, which must neither wait nor fail (the health
//! tracker and reporter, the metrics collector and publisher, the gateway's
//! reports of its clients), publish with
//! [`send_now`] and [`send_now_with`] (ids from a [`Correlation`]): never
//! waiting, and logging a warning instead of returning an error.
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
use crate::messages::{Envelope, MessageKind};

/// The correlation and causation ids an [`Integration`] view stamps on the
/// envelopes it publishes; `None` leaves the envelope's id unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Correlation {
    /// Ties together all messages of one logical operation.
    pub correlation_id: Option<String>,
    /// Id of the message that caused the ones published.
    pub causation_id: Option<String>,
}

impl Correlation {
    /// Both ids.
    pub fn new(correlation_id: impl Into<String>, causation_id: impl Into<String>) -> Self {
        Correlation {
            correlation_id: Some(correlation_id.into()),
            causation_id: Some(causation_id.into()),
        }
    }

    /// A correlation id alone: the first messages of an operation, caused by
    /// no message.
    pub fn operation(correlation_id: impl Into<String>) -> Self {
        Correlation {
            correlation_id: Some(correlation_id.into()),
            causation_id: None,
        }
    }

    /// The ids of a message caused by `cause`: `cause.id` as causation id,
    /// `cause`'s correlation id as correlation id, or `cause.id` when it has
    /// none (it starts the chain).
    pub fn caused_by(cause: &Envelope) -> Self {
        let id = cause.id.to_string();
        Correlation {
            correlation_id: Some(cause.correlation_id.clone().unwrap_or_else(|| id.clone())),
            causation_id: Some(id),
        }
    }

    /// Neither id set.
    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none() && self.causation_id.is_none()
    }

    /// `env` with the ids that are set; the others stay as they are.
    pub fn stamp(&self, mut env: Envelope) -> Envelope {
        if let Some(id) = &self.correlation_id {
            env.correlation_id = Some(id.clone());
        }
        if let Some(id) = &self.causation_id {
            env.causation_id = Some(id.clone());
        }
        env
    }
}

/// Publishes `payload` on its kind's channel under `topic` without ever
/// waiting (as [`Bus::publish_typed_now`]); a failure is logged as a warning,
/// `<Kind> not published on <topic>: <error>`, not returned. For the host's
/// own synchronous reporters (the health tracker and reporter, the metrics
/// collector and publisher, the gateway's client reports), which must
/// neither wait nor fail.
pub fn send_now<K: MessageKind>(bus: &Bus, topic: &str, payload: &K) {
    send_now_with(bus, topic, payload, &Correlation::default());
}

/// [`send_now`] of an envelope stamped with `ids` (only the ids set in it).
pub fn send_now_with<K: MessageKind>(bus: &Bus, topic: &str, payload: &K, ids: &Correlation) {
    let sent = Envelope::typed(topic, payload, bus.node())
        .map_err(BusError::from)
        .and_then(|env| bus.publish_now(ids.stamp(env)));
    if let Err(e) = sent {
        tracing::warn!("{} not published on {topic}: {e}", K::KIND);
    }
}

/// Typed publishing helpers over a [`Bus`]. Cheap to clone.
///
/// The topic of every helper is in [`topics`]; the errors, and the views
/// that stamp correlation and causation ids, are in the
/// [module docs](crate::integration).
#[derive(Debug, Clone)]
pub struct Integration {
    bus: Bus,
    ids: Correlation,
}

impl Integration {
    /// Helpers publishing on `bus`, without correlation or causation ids.
    pub fn new(bus: Bus) -> Self {
        Integration {
            bus,
            ids: Correlation::default(),
        }
    }

    /// The bus the helpers publish on.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// A view of these helpers whose every publish carries `correlation_id`
    /// and `causation_id`. `self` is unchanged.
    pub fn with_correlation(
        &self,
        correlation_id: impl Into<String>,
        causation_id: impl Into<String>,
    ) -> Integration {
        self.with_ids(Correlation::new(correlation_id, causation_id))
    }

    /// A view of these helpers whose every publish carries `ids` (only the
    /// ids set in it; `Correlation::default()` publishes without ids).
    /// `self` is unchanged.
    pub fn with_ids(&self, ids: Correlation) -> Integration {
        Integration {
            bus: self.bus.clone(),
            ids,
        }
    }

    /// A view of these helpers publishing what `cause` caused: see
    /// [`Correlation::caused_by`]. `self` is unchanged.
    pub fn caused_by(&self, cause: &Envelope) -> Integration {
        self.with_ids(Correlation::caused_by(cause))
    }

    /// The ids this view stamps.
    pub fn ids(&self) -> &Correlation {
        &self.ids
    }

    /// Publishes `payload` on its kind's channel under `topic`, stamped with
    /// this view's ids.
    async fn publish<K: MessageKind>(
        &self,
        topic: &str,
        payload: &K,
    ) -> Result<Arc<Envelope>, BusError> {
        if self.ids.is_empty() {
            return self.bus.publish(topic, payload).await;
        }
        let env = Envelope::typed(topic, payload, self.bus.node())?;
        let env = Arc::new(self.ids.stamp(env));
        self.bus.broadcast(Arc::clone(&env)).await?;
        Ok(env)
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
        self.publish(&topics::system_lifecycle(system_name), &payload)
            .await
    }

    /// [`SystemConfig`] on `system`, topic `system_config:<component>`.
    pub async fn broadcast_system_config(
        &self,
        config: SystemConfig,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::system_config(&config.component), &config)
            .await
    }

    /// [`FeatureToggle`] on `system`, topic `feature_toggle:<feature>`.
    pub async fn broadcast_feature_toggle(
        &self,
        toggle: FeatureToggle,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::feature_toggle(&toggle.feature), &toggle)
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
        self.publish(&topics::component_health(component), &payload)
            .await
    }

    /// [`NodeHealth`] on `health`, topic `node_health:<node>`.
    pub async fn broadcast_node_health(
        &self,
        health: NodeHealth,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::node_health(&health.node), &health)
            .await
    }

    /// [`ClusterHealth`] on `health`, topic `cluster_health`.
    pub async fn broadcast_cluster_health(
        &self,
        health: ClusterHealth,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(topics::CLUSTER_HEALTH, &health).await
    }

    /// [`HealthCheck`] on `health`, topic `health_check:<check_name>`.
    pub async fn broadcast_health_check(
        &self,
        check: HealthCheck,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::health_check(&check.check_name), &check)
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
            published.push(self.publish(&topic, &metric).await?);
        }
        if let Some(throughput) = throughput_metric(component, metrics) {
            published.push(self.publish(&topic, &throughput).await?);
        }
        Ok(published)
    }

    /// [`ThroughputMetric`] of a store on `metrics`, topic `store_metrics:<store>`.
    pub async fn broadcast_throughput(
        &self,
        store: &str,
        metric: ThroughputMetric,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::store_metrics(store), &metric).await
    }

    /// [`LatencyMetric`] of a store on `metrics`, topic `store_metrics:<store>`.
    pub async fn broadcast_latency(
        &self,
        store: &str,
        metric: LatencyMetric,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::store_metrics(store), &metric).await
    }

    /// [`ResourceUsage`] on `metrics`, topic `resource_usage:<component>`.
    pub async fn broadcast_resource_usage(
        &self,
        usage: ResourceUsage,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::resource_usage(&usage.component), &usage)
            .await
    }

    // ---- lifecycle ----------------------------------------------------------

    /// [`ProcessLifecycle`] on `lifecycle`, topic `process_lifecycle:<name>`.
    pub async fn broadcast_lifecycle_event(
        &self,
        event: ProcessLifecycle,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::process_lifecycle(&event.name), &event)
            .await
    }

    /// [`NodeLifecycle`] on `lifecycle`, topic `node_lifecycle:<node>`.
    pub async fn broadcast_node_lifecycle(
        &self,
        event: NodeLifecycle,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::node_lifecycle(&event.node), &event)
            .await
    }

    /// [`ClusterMembership`] on `lifecycle`, topic `cluster_membership`.
    pub async fn broadcast_cluster_membership(
        &self,
        change: ClusterMembership,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(topics::CLUSTER_MEMBERSHIP, &change).await
    }

    // ---- alerts -------------------------------------------------------------

    /// [`SystemAlert`] on `alerts`, topic `system_alert:<category>`.
    pub async fn broadcast_alert(&self, alert: SystemAlert) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::system_alert(alert.category), &alert)
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
        self.publish(&topics::alert_ack(&ack.alert_id), &ack).await
    }

    /// [`AlertEscalation`] on `alerts`, topic `alert_escalation:<alert_id>`.
    pub async fn broadcast_alert_escalation(
        &self,
        escalation: AlertEscalation,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::alert_escalation(&escalation.alert_id), &escalation)
            .await
    }

    // ---- logging ------------------------------------------------------------

    /// [`LogEntry`] on `logging`, topic `log:<level>`.
    pub async fn broadcast_log(&self, entry: LogEntry) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::log(entry.level), &entry).await
    }

    /// [`LogSummary`] on `logging`, topic `log_summary`.
    pub async fn broadcast_log_summary(
        &self,
        summary: LogSummary,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(topics::LOG_SUMMARY, &summary).await
    }

    /// [`LogRotation`] on `logging`, topic `log_rotation:<log_type>`.
    pub async fn broadcast_log_rotation(
        &self,
        rotation: LogRotation,
    ) -> Result<Arc<Envelope>, BusError> {
        self.publish(&topics::log_rotation(&rotation.log_type), &rotation)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bus::{BusConfig, Channel, Subscriber};
    use crate::messages::audit::AdminAction;
    use serde_json::json;

    fn bus() -> Bus {
        Bus::new(BusConfig {
            node: "node1@test".to_owned(),
            ..BusConfig::default()
        })
    }

    /// A subscriber to everything on `channels`.
    fn listen(bus: &Bus, channels: &[Channel]) -> Subscriber {
        let sub = bus.subscriber("listener").unwrap();
        for c in channels {
            sub.subscribe(*c, ">").unwrap();
        }
        sub
    }

    async fn next(sub: &Subscriber) -> Arc<Envelope> {
        tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("no message within 5 s")
            .expect("inbox closed")
    }

    fn ids_of(env: &Envelope) -> (Option<&str>, Option<&str>) {
        (env.correlation_id.as_deref(), env.causation_id.as_deref())
    }

    #[tokio::test]
    async fn a_bound_view_stamps_both_ids_on_every_helper() {
        let bus = bus();
        let sub = listen(
            &bus,
            &[
                Channel::System,
                Channel::Health,
                Channel::Alerts,
                Channel::Metrics,
                Channel::Audit,
            ],
        );
        let pubsub = Integration::new(bus.clone());
        let op = pubsub.with_correlation("op-1", "cause-9");
        assert_eq!(op.ids(), &Correlation::new("op-1", "cause-9"));

        let mut published = vec![
            op.broadcast_system_lifecycle(LifecycleEvent::Started, "exesdb", "0.1.0")
                .await
                .unwrap(),
            op.broadcast_health_update("store_worker", HealthStatus::Degraded, Map::new())
                .await
                .unwrap(),
            op.raise_alert(
                AlertCategory::Data,
                Severity::Error,
                "append failed",
                Map::new(),
            )
            .await
            .unwrap(),
        ];
        let metrics = json!({"operations_count": 10, "duration_ms": 5});
        let metrics = op
            .broadcast_metrics("persistence", metrics.as_object().unwrap())
            .await
            .unwrap();
        assert_eq!(
            metrics.len(),
            3,
            "two PerformanceMetrics and a ThroughputMetric"
        );
        published.extend(metrics);
        published.push(
            op.broadcast_audit_event(AuditEvent::AdminAction(AdminAction {
                admin_user_id: "root".into(),
                action_type: "plugin_reload".into(),
                target_resource: "p".into(),
                details: Map::new(),
                justification: None,
                source_ip: None,
            }))
            .await
            .unwrap(),
        );

        for sent in &published {
            assert_eq!(ids_of(sent), (Some("op-1"), Some("cause-9")), "{sent:?}");
            let got = next(&sub).await;
            assert_eq!(got.id, sent.id, "delivered in publish order");
            assert_eq!(ids_of(&got), (Some("op-1"), Some("cause-9")), "{got:?}");
            assert_eq!(got.node, "node1@test");
        }
        assert!(sub.try_recv().is_none());
        let kinds: Vec<_> = published.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "SystemLifecycle",
                "ComponentHealth",
                "SystemAlert",
                "PerformanceMetric",
                "PerformanceMetric",
                "ThroughputMetric",
                "AdminAction"
            ]
        );

        // The view it was made from still publishes without ids.
        assert!(pubsub.ids().is_empty());
        let plain = pubsub
            .broadcast_health_update("store_worker", HealthStatus::Healthy, Map::new())
            .await
            .unwrap();
        assert_eq!(ids_of(&plain), (None, None));
        assert_eq!(ids_of(&*next(&sub).await), (None, None));
    }

    #[tokio::test]
    async fn caused_by_chains_ids_from_the_causing_message() {
        let bus = bus();
        let sub = listen(&bus, &[Channel::Lifecycle, Channel::Alerts]);
        let pubsub = Integration::new(bus.clone());

        // A message without a correlation id starts the chain: its id is
        // both the causation and the correlation id of what it causes.
        let crash = pubsub
            .broadcast_lifecycle_event(ProcessLifecycle {
                name: "p".into(),
                module: "plugin:p".into(),
                event: crate::messages::lifecycle::ProcessEvent::Crashed,
                reason: Some("trap".into()),
                restart_count: 1,
            })
            .await
            .unwrap();
        let crash_id = crash.id.to_string();
        let alert = pubsub
            .caused_by(&crash)
            .raise_alert(
                AlertCategory::System,
                Severity::Critical,
                "plugin crashed",
                Map::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            ids_of(&alert),
            (Some(crash_id.as_str()), Some(crash_id.as_str()))
        );

        // Further down the chain the correlation id is kept, the causation
        // id is the direct cause.
        let ack = pubsub
            .caused_by(&alert)
            .broadcast_alert_ack(AlertAck {
                alert_id: alert.decode::<SystemAlert>().unwrap().alert_id,
                ack_by: "ops".into(),
                ack_note: None,
                resolution: None,
            })
            .await
            .unwrap();
        let alert_id = alert.id.to_string();
        assert_eq!(
            ids_of(&ack),
            (Some(crash_id.as_str()), Some(alert_id.as_str()))
        );

        for sent in [&crash, &alert, &ack] {
            let got = next(&sub).await;
            assert_eq!(got.id, sent.id);
            assert_eq!(ids_of(&got), ids_of(sent));
        }
    }

    #[tokio::test]
    async fn with_ids_stamps_only_the_ids_it_holds() {
        let bus = bus();
        let sub = listen(&bus, &[Channel::Logging]);
        let pubsub = Integration::new(bus.clone());
        let entry = |n: &str| LogEntry {
            log_id: n.into(),
            level: crate::messages::logging::LogLevel::Info,
            message: "m".into(),
            module: None,
            function: None,
            line: None,
            metadata: Map::new(),
        };
        let first = pubsub
            .with_ids(Correlation::operation("import-3"))
            .broadcast_log(entry("l1"))
            .await
            .unwrap();
        assert_eq!(ids_of(&first), (Some("import-3"), None));
        let only_cause = Correlation {
            correlation_id: None,
            causation_id: Some("m-1".into()),
        };
        let second = pubsub
            .with_ids(only_cause)
            .broadcast_log(entry("l2"))
            .await
            .unwrap();
        assert_eq!(ids_of(&second), (None, Some("m-1")));
        assert_eq!(ids_of(&*next(&sub).await), (Some("import-3"), None));
        assert_eq!(ids_of(&*next(&sub).await), (None, Some("m-1")));
    }

    #[tokio::test]
    async fn a_bound_view_fails_as_the_plain_one_does() {
        let pubsub = Integration::new(bus()).with_correlation("c", "k");
        let err = pubsub
            .broadcast_health_update("has space", HealthStatus::Healthy, Map::new())
            .await
            .unwrap_err();
        assert!(matches!(err, BusError::Topic(_)), "{err}");
    }
}
