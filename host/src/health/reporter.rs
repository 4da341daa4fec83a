//! The periodic health report, every `check_interval`: each store's
//! subscription summary (`health_summary:<store>`), this node's
//! `NodeHealth` (`node_health:<node>`) with real load, memory and disk
//! figures, and a `ComponentHealth` for the bus, the plugin runtime and the
//! stores.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::node::{node_health, read_figures, Thresholds};
use crate::bus::Bus;
use crate::emitter::Stores;
use crate::integration::Integration;
use crate::messages::health::HealthStatus;
use crate::runtime::{PluginRunState, Plugins};

/// What the reporter looks at.
#[derive(Debug, Clone)]
pub struct Reporter {
    /// The stores, each with its tracker.
    pub stores: Arc<Stores>,
    /// The bus.
    pub bus: Bus,
    /// The plugins, for the runtime's component health.
    pub plugins: Arc<Plugins>,
    /// The path whose file system's usage is reported as disk usage.
    pub disk_path: PathBuf,
}

impl Reporter {
    /// Publishes one full report.
    pub async fn report(&self) {
        for m in self.stores.monitors() {
            m.health.publish_summary();
        }
        let helpers = Integration::new(self.bus.clone());
        let started = std::time::Instant::now();
        let figures = read_figures(&self.disk_path);
        self.check(
            "node_figures",
            started.elapsed(),
            figures.as_ref().map(drop).map_err(ToString::to_string),
        );
        for id in self.stores.ids() {
            let started = std::time::Instant::now();
            let head = self.stores.get(&id).and_then(|s| s.head_position());
            self.check(
                &format!("store:{id}"),
                started.elapsed(),
                head.map(drop).map_err(|e| e.to_string()),
            );
        }
        match figures {
            Ok(f) => {
                let _ = helpers
                    .broadcast_node_health(node_health(self.bus.node(), &f, &Thresholds::default()))
                    .await;
            }
            Err(e) => tracing::warn!("cannot read node figures: {e}"),
        }
        for (component, status, details) in self.components() {
            let _ = helpers
                .broadcast_health_update(component, status, details)
                .await;
        }
    }

    /// Publishes the outcome of one check the report ran as a
    /// `HealthCheck` on `health_check:<name>`: reading the node's figures,
    /// reading each open store's head.
    fn check(&self, name: &str, took: Duration, outcome: Result<(), String>) {
        use crate::messages::health::{CheckResult, HealthCheck};
        let (result, error) = match outcome {
            Ok(()) => (CheckResult::Pass, None),
            Err(e) => (CheckResult::Fail, Some(e)),
        };
        let check = HealthCheck {
            check_name: name.to_owned(),
            result,
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            details: serde_json::Map::new(),
            error,
        };
        let topic = crate::integration::topics::health_check(name);
        if let Err(e) = self.bus.publish_typed_now(&topic, &check) {
            tracing::warn!("HealthCheck {name} not published: {e}");
        }
    }

    /// The `ComponentHealth` of the bus, the plugin runtime and the stores,
    /// as of now: (component, status, details).
    pub fn components(
        &self,
    ) -> Vec<(
        &'static str,
        HealthStatus,
        serde_json::Map<String, serde_json::Value>,
    )> {
        let stats = self.bus.stats();
        let mut bus = serde_json::Map::new();
        bus.insert("subscribers".into(), stats.len().into());
        bus.insert(
            "dropped".into(),
            stats.iter().map(|s| s.dropped).sum::<u64>().into(),
        );
        let full = stats.iter().filter(|s| s.queue_depth >= s.capacity).count();
        bus.insert("full_inboxes".into(), full.into());
        let bus_status = if full > 0 {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };

        let plugins = self.plugins.list();
        let restarting = plugins
            .iter()
            .filter(|p| matches!(p.state, PluginRunState::Restarting | PluginRunState::Parked))
            .count();
        let mut rt = serde_json::Map::new();
        rt.insert("plugins".into(), plugins.len().into());
        rt.insert("restarting".into(), restarting.into());
        let rt_status = if restarting > 0 {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };

        // `stores`: per store, its subscriptions and failed ones;
        // `subscriptions` and `failed_subscriptions`: totals over all stores.
        let summaries: Vec<_> = self
            .stores
            .monitors()
            .iter()
            .map(|m| m.health.summary())
            .collect();
        let mut store = serde_json::Map::new();
        let mut per_store = serde_json::Map::new();
        for s in &summaries {
            let mut one = serde_json::Map::new();
            one.insert("subscriptions".into(), s.total.into());
            one.insert("failed_subscriptions".into(), s.failed.into());
            per_store.insert(s.store.clone(), one.into());
        }
        let total: u64 = summaries.iter().map(|s| s.total).sum();
        let failed: u64 = summaries.iter().map(|s| s.failed).sum();
        store.insert("stores".into(), per_store.into());
        store.insert("subscriptions".into(), total.into());
        store.insert("failed_subscriptions".into(), failed.into());
        let store_status = if failed > 0 {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        vec![
            ("bus", bus_status, bus),
            ("runtime", rt_status, rt),
            ("store", store_status, store),
        ]
    }

    /// Reports every `interval` until the task is aborted.
    pub async fn run(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.report().await;
        }
    }
}
