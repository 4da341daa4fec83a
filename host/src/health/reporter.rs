//! The periodic health report, every `check_interval`: the subscription
//! summary (`health_summary:<store>`), this node's `NodeHealth`
//! (`node_health:<node>`) with real load, memory and disk figures, and a
//! `ComponentHealth` for the bus, the plugin runtime and the store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::node::{node_health, read_figures, Thresholds};
use super::HealthTracker;
use crate::bus::Bus;
use crate::integration::Integration;
use crate::messages::health::HealthStatus;
use crate::runtime::{PluginRunState, Plugins};

/// What the reporter looks at.
#[derive(Debug, Clone)]
pub struct Reporter {
    /// The store's tracker.
    pub tracker: Arc<HealthTracker>,
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
        self.tracker.publish_summary();
        let helpers = Integration::new(self.bus.clone());
        match read_figures(&self.disk_path) {
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

    fn components(
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

        let mut store = serde_json::Map::new();
        store.insert("store".into(), self.tracker.store().into());
        let summary = self.tracker.summary();
        store.insert("subscriptions".into(), summary.total.into());
        store.insert("failed_subscriptions".into(), summary.failed.into());
        let store_status = if summary.failed > 0 {
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
