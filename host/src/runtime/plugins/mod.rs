//! The set of loaded plugins of one host: the [`Plugins`] registry.
//!
//! Each loaded plugin has a slot, by name: its status, the context of its
//! running version, its worker thread (subscribers and escalators) or its
//! formatter (log formatters), the worker's command channel and its
//! compiled component. Besides the slots the set keeps the plugins an
//! operator unloaded whose files are still in the watched directory (they
//! are listed as [`PluginState::Unloaded`]).
//!
//! The registry's own part, here: construction, the lookups (`list`,
//! `status`, `manifest`, `formatter`), handing events to a running
//! subscriber ([`Plugins::deliver_direct`]) and the runtime's component
//! health. The operations that change the set are in their own files,
//! each an `impl Plugins` block, and each takes the [`Actor`] who asked:
//!
//! - `load`: [`Plugins::load`], [`Plugins::load_file`], [`Plugins::load_dir`];
//! - `reload`: [`Plugins::reload`], [`Plugins::reload_file`],
//!   [`Plugins::reload_from_source`] (a hot swap, or a load when absent);
//! - `unload`: [`Plugins::unload`], [`Plugins::unload_all`];
//! - `reporting`: failures as `SystemAlert`s, operations on `audit`.
//!
//! Arrows point one way: `reload` uses `load`; `load`, `reload` and
//! `unload` use `reporting`; all of them use this registry, which uses
//! none of them.

mod actor;
#[doc(hidden)]
pub mod bench_support;
mod info;
mod load;
mod reload;
mod reporting;
mod unload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

pub use actor::Actor;
pub use info::{PluginInfo, PluginState};

use super::files::Fingerprint;
use super::formatter::FormatterPlugin;
use super::manifest::{Manifest, World};
use super::state::PluginContext;
use super::worker::{Command, Control, Request};
use super::{Compiled, Runtime};
use crate::bus::Bus;
use crate::health::{HealthMonitoring, HealthTracker};
use crate::metrics::MetricsCollector;

/// One loaded plugin.
struct Slot {
    info: Arc<Mutex<PluginInfo>>,
    ctx: Arc<PluginContext>,
    worker: Option<std::thread::JoinHandle<()>>,
    formatter: Option<Arc<FormatterPlugin>>,
    control: Control,
    /// The compiled component, kept so that plugins loaded from the same
    /// bytes share it; its digest lets a reload skip identical files.
    compiled: Arc<Compiled>,
}

/// The loaded plugins of one host.
pub struct Plugins {
    runtime: Arc<Runtime>,
    bus: Bus,
    max_batch: usize,
    handle: tokio::runtime::Handle,
    slots: Mutex<BTreeMap<String, Slot>>,
    health: Arc<HealthTracker>,
    metrics: Arc<MetricsCollector>,
    /// Plugins an operator unloaded whose files are still in the watched
    /// directory, with the fingerprint of those files at the unload.
    unloaded: Mutex<BTreeMap<String, (PluginInfo, Fingerprint)>>,
    /// The directory the watcher applies, if one runs.
    watched_dir: Mutex<Option<PathBuf>>,
    /// Set by [`unload_all`](Plugins::unload_all): loads are refused from
    /// then on, so no worker outlives the host's shutdown.
    closed: AtomicBool,
    /// The settings of the outbound destinations' circuit breakers, for
    /// the plugins loaded from now on (see [`Plugins::set_outbound_breaker`]).
    outbound_breaker: Mutex<super::outbound::BreakerSettings>,
    /// The plugins' durable key-value state.
    state_db: Arc<crate::store::kv::KeyValueDb>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins")
            .field("loaded", &self.slots.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Plugins {
    /// An empty set. Must be created inside a tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(runtime: Arc<Runtime>, bus: Bus, max_batch: usize) -> Plugins {
        let health = HealthTracker::new(
            crate::store::DEFAULT_STORE,
            HealthMonitoring::default(),
            bus.clone(),
        );
        let metrics = MetricsCollector::new(crate::store::DEFAULT_STORE, bus.clone());
        Self::with_monitoring(runtime, bus, max_batch, health, metrics)
    }

    /// An empty set whose plugins report to `health` and `metrics`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn with_monitoring(
        runtime: Arc<Runtime>,
        bus: Bus,
        max_batch: usize,
        health: Arc<HealthTracker>,
        metrics: Arc<MetricsCollector>,
    ) -> Plugins {
        Plugins {
            runtime,
            bus,
            max_batch: max_batch.max(1),
            handle: tokio::runtime::Handle::current(),
            slots: Mutex::default(),
            health,
            metrics,
            unloaded: Mutex::default(),
            watched_dir: Mutex::default(),
            closed: AtomicBool::new(false),
            outbound_breaker: Mutex::default(),
            state_db: crate::store::kv::KeyValueDb::in_memory(),
        }
    }

    /// Keeps the plugins' key-value state in `db` (the host's file in its
    /// data directory) instead of in memory. Call before loading plugins.
    #[must_use]
    pub fn with_state_db(mut self, db: Arc<crate::store::kv::KeyValueDb>) -> Plugins {
        self.state_db = db;
        self
    }

    /// Configures the circuit breaker of each (plugin, outbound
    /// destination) from `[health_monitoring]` (`enabled`,
    /// `circuit_breaker_enabled`, `unhealthy_threshold`, `cooldown_ms`,
    /// `max_cooldown_ms`), for the plugins loaded after the call (a reload
    /// keeps its plugin's breakers); until it is called, the default
    /// section's.
    pub fn set_outbound_breaker(&self, settings: &HealthMonitoring) {
        *self.outbound_breaker.lock() = settings.into();
    }

    /// Tells the set which directory the watcher applies, so that an unload
    /// of a plugin whose files are there is remembered (see
    /// [`PluginState::Unloaded`]).
    pub fn set_watched_dir(&self, dir: Option<PathBuf>) {
        *self.watched_dir.lock() = dir;
    }

    /// Whether `name` was unloaded by an operator and its files are still
    /// the ones it was unloaded with: the watcher then leaves it unloaded.
    pub fn held_unloaded(&self, name: &str, now: Option<&Fingerprint>) -> bool {
        let mut unloaded = self.unloaded.lock();
        match (unloaded.get(name), now) {
            (Some((_, at_unload)), Some(now)) if at_unload == now => true,
            (Some(_), _) => {
                // The files changed or went away: the unload no longer holds.
                unloaded.remove(name);
                false
            }
            (None, _) => false,
        }
    }

    /// How the runtime's compiled-component cache has been used.
    pub fn runtime_cache_stats(&self) -> super::CacheStats {
        self.runtime.cache_stats()
    }

    /// The bus the plugins are on.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The health tracker the plugins report to.
    pub fn health(&self) -> &Arc<HealthTracker> {
        &self.health
    }

    /// The metrics collector the plugins report to.
    pub fn metrics(&self) -> &Arc<MetricsCollector> {
        &self.metrics
    }

    /// Whether [`unload_all`](Self::unload_all) has closed the set.
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Hands `events` to a subscriber plugin directly, bypassing its bus
    /// inbox (used by emitter workers), and waits for the outcome. The events
    /// are handled one by one (`on-message`) in order, stopping at the first
    /// failure, which is returned; the events after it are not handled. The
    /// calls run on the plugin's own worker, between its inbox batches.
    /// With `report` the plugin's worker records the deliveries' health and
    /// latency on the plugin's (default store's) tracker; without, the
    /// caller records them on its own store's.
    ///
    /// # Errors
    /// Text naming the plugin when it is not loaded, not a subscriber,
    /// parked, unloaded meanwhile, or trapped on this batch.
    pub async fn deliver_direct(
        &self,
        name: &str,
        events: Vec<Arc<crate::messages::Envelope>>,
        report: bool,
    ) -> Result<Vec<(usize, String)>, String> {
        let control = {
            let slots = self.slots.lock();
            let slot = slots
                .get(name)
                .ok_or_else(|| format!("no plugin named `{name}` is loaded"))?;
            if slot.ctx.manifest.world != World::Subscriber {
                return Err(format!(
                    "plugin `{name}` is a {}, not a subscriber",
                    slot.ctx.manifest.world
                ));
            }
            slot.control.clone()
        };
        let (reply, outcome) = tokio::sync::oneshot::channel();
        // Refused only when the worker has ended: the dropped reply says so.
        let _ = control.send(Command::Deliver(Request {
            events,
            report,
            reply,
        }));
        outcome
            .await
            .map_err(|_| format!("plugin `{name}` stopped before handling the events"))?
    }

    /// Every loaded plugin, and every plugin held unloaded (state
    /// [`PluginState::Unloaded`]), by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        let mut all: BTreeMap<String, PluginInfo> = self
            .unloaded
            .lock()
            .iter()
            .map(|(n, (i, _))| (n.clone(), i.clone()))
            .collect();
        for (name, slot) in self.slots.lock().iter() {
            all.insert(name.clone(), live(slot));
        }
        all.into_values().collect()
    }

    /// One loaded plugin's status.
    pub fn status(&self, name: &str) -> Option<PluginInfo> {
        self.slots.lock().get(name).map(live)
    }

    /// One plugin's status, loaded or held unloaded.
    pub fn status_or_unloaded(&self, name: &str) -> Option<PluginInfo> {
        self.status(name)
            .or_else(|| self.unloaded.lock().get(name).map(|(i, _)| i.clone()))
    }

    /// The manifest of the loaded version of a plugin.
    pub fn manifest(&self, name: &str) -> Option<Manifest> {
        self.slots.lock().get(name).map(|s| s.ctx.manifest.clone())
    }

    /// The loaded log-formatter plugin of that name.
    pub fn formatter(&self, name: &str) -> Option<Arc<FormatterPlugin>> {
        self.slots
            .lock()
            .get(name)
            .and_then(|s| s.formatter.clone())
    }
}

/// The plugin runtime's `ComponentHealth` (component `runtime`): how many
/// plugins there are and how many are restarting or parked (then degraded).
impl crate::health::ComponentReport for Plugins {
    fn component(&self) -> &str {
        "runtime"
    }

    fn component_health(
        &self,
    ) -> (
        crate::messages::health::HealthStatus,
        serde_json::Map<String, serde_json::Value>,
    ) {
        use crate::messages::health::HealthStatus;
        let plugins = self.list();
        let restarting = plugins
            .iter()
            .filter(|p| matches!(p.state, PluginState::Restarting | PluginState::Parked))
            .count();
        let mut details = serde_json::Map::new();
        details.insert("plugins".into(), plugins.len().into());
        details.insert("restarting".into(), restarting.into());
        let status = if restarting > 0 {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        (status, details)
    }
}

impl Drop for Plugins {
    fn drop(&mut self) {
        for slot in self.slots.get_mut().values() {
            if let Some(sub) = &slot.ctx.subscriber {
                sub.close();
            }
        }
    }
}

/// A slot's status with the live counters (drops, refusals, memory) and
/// stderr lines filled in.
fn live(slot: &Slot) -> PluginInfo {
    live_info(&slot.info, &slot.ctx)
}

/// `info` with the live values of the version `ctx` filled in.
fn live_info(info: &Mutex<PluginInfo>, ctx: &PluginContext) -> PluginInfo {
    let mut info = info.lock().clone();
    info.dropped = ctx.subscriber.as_ref().map_or(0, |s| s.dropped());
    info.violations = ctx.violations.total();
    info.memory_bytes = ctx.memory_bytes.load(Ordering::Relaxed);
    info.stderr = ctx.stderr.lines();
    info.outbound = ctx.outbound.snapshot();
    info.state_bytes = ctx.state_db.size(ctx.name()).unwrap_or(info.state_bytes);
    info
}
