//! The periodic health report, every `check_interval`: each store's
//! subscription summary (`health_summary:<store>`), this node's
//! `NodeHealth` (`node_health:<node>`) with real load, memory and disk
//! figures, and a `ComponentHealth` for the bus, the components it is given
//! (the plugin runtime, in the host) and the stores.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::node::{node_health, read_figures, Thresholds};
use super::sources::{ComponentReport, StoreTrackers};
use crate::bus::Bus;
use crate::integration::{send_now, topics, Integration};
use crate::messages::health::HealthStatus;

/// What the reporter looks at.
#[derive(Clone)]
pub struct Reporter {
    /// The stores, each with its tracker.
    pub stores: Arc<dyn StoreTrackers>,
    /// The bus.
    pub bus: Bus,
    /// The components reported between the bus and the stores, in order
    /// (in the host: the plugin runtime).
    pub components: Vec<Arc<dyn ComponentReport>>,
    /// The path whose file system's usage is reported as disk usage.
    pub disk_path: PathBuf,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let components: Vec<&str> = self.components.iter().map(|c| c.component()).collect();
        f.debug_struct("Reporter")
            .field("bus", &self.bus)
            .field("components", &components)
            .field("disk_path", &self.disk_path)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    /// Publishes one full report.
    pub async fn report(&self) {
        for tracker in self.stores.trackers() {
            tracker.publish_summary();
        }
        let helpers = Integration::new(self.bus.clone());
        let started = std::time::Instant::now();
        let figures = read_figures(&self.disk_path);
        self.check(
            "node_figures",
            started.elapsed(),
            figures.as_ref().map(drop).map_err(ToString::to_string),
        );
        for store in self.stores.open_stores() {
            let started = std::time::Instant::now();
            let head = store.head_position();
            self.check(
                &format!("store:{}", store.id()),
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
            details: Map::new(),
            error,
        };
        send_now(&self.bus, &topics::health_check(name), &check);
    }

    /// The `ComponentHealth` of the bus, of each of the reporter's
    /// `components` (in order) and of the stores, as of now: (component,
    /// status, details).
    pub fn components(&self) -> Vec<(&str, HealthStatus, Map<String, Value>)> {
        let stats = self.bus.stats();
        let mut bus = Map::new();
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
        let mut all = vec![("bus", bus_status, bus)];
        for c in &self.components {
            let (status, details) = c.component_health();
            all.push((c.component(), status, details));
        }

        // `stores`: per store, its subscriptions and failed ones;
        // `subscriptions` and `failed_subscriptions`: totals over all stores.
        let summaries: Vec<_> = self.stores.trackers().iter().map(|t| t.summary()).collect();
        let mut store = Map::new();
        let mut per_store = Map::new();
        for s in &summaries {
            let mut one = Map::new();
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
        all.push(("store", store_status, store));
        all
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
