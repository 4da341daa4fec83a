//! The set of loaded plugins: load (from files, a directory or bytes),
//! unload, list and status.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

use super::capture::Capture;
use super::formatter::FormatterPlugin;
use super::instance::Instance;
use super::manifest::{Manifest, World};
use super::state::PluginContext;
use super::worker::{lifecycle, Worker};
use super::{PluginError, Runtime};
use crate::bus::{Bus, SubscriberId};
use crate::health::{HealthInput, HealthTracker};
use crate::messages::lifecycle::ProcessEvent;
use crate::metrics::MetricsCollector;

/// Run state of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    /// Handling messages.
    Running,
    /// Its instance trapped; a fresh one is being started.
    Restarting,
    /// Unloaded.
    Stopped,
}

/// What `list`/`status` report about a plugin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its world.
    pub world: World,
    /// Run state.
    pub state: PluginState,
    /// When it was loaded.
    pub loaded_at: DateTime<Utc>,
    /// Messages handled successfully.
    pub delivered: u64,
    /// Messages whose handling failed (error or trap).
    pub failed: u64,
    /// Traps so far.
    pub traps: u64,
    /// Instances started after a trap.
    pub restarts: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// Its bus subscriber (subscribers and escalators).
    pub subscriber: Option<SubscriberId>,
}

struct Slot {
    info: Arc<Mutex<PluginInfo>>,
    ctx: Arc<PluginContext>,
    worker: Option<std::thread::JoinHandle<()>>,
    formatter: Option<Arc<FormatterPlugin>>,
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
        let config = crate::config::Config::default();
        let health = HealthTracker::new(
            &config.stores.default,
            config.health_monitoring,
            bus.clone(),
        );
        let metrics = MetricsCollector::new(&config.stores.default, bus.clone());
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
        }
    }

    /// The health tracker the plugins report to.
    pub fn health(&self) -> &Arc<HealthTracker> {
        &self.health
    }

    /// The metrics collector the plugins report to.
    pub fn metrics(&self) -> &Arc<MetricsCollector> {
        &self.metrics
    }

    /// Loads `<manifest>` and the component it names.
    ///
    /// # Errors
    /// [`PluginError`] naming the plugin (or manifest file) and the cause.
    pub fn load_file(&self, manifest_path: &Path) -> Result<PluginInfo, PluginError> {
        let manifest = Manifest::from_file(manifest_path)?;
        let wasm = manifest.component_path(manifest_path);
        let bytes = std::fs::read(&wasm).map_err(|e| PluginError::Read {
            plugin: manifest.name.clone(),
            path: wasm.display().to_string(),
            message: e.to_string(),
        })?;
        self.load(manifest, &bytes)
    }

    /// Loads every `*.toml` manifest in `dir`, in name order. A failing
    /// plugin is reported and skipped; the others load.
    pub fn load_dir(&self, dir: &Path) -> Vec<Result<PluginInfo, PluginError>> {
        let mut manifests: Vec<_> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                tracing::error!(
                    class = "failure",
                    "cannot read plugins directory {}: {e}",
                    dir.display()
                );
                return Vec::new();
            }
        };
        manifests.sort();
        manifests.iter().map(|m| self.load_file(m)).collect()
    }

    /// Compiles, links, instantiates and initialises a plugin, then starts
    /// its worker (or installs its formatter).
    ///
    /// # Errors
    /// [`PluginError`] naming the plugin and the cause; nothing is left behind.
    pub fn load(&self, manifest: Manifest, wasm: &[u8]) -> Result<PluginInfo, PluginError> {
        let name = manifest.name.clone();
        if self.slots.lock().contains_key(&name) {
            return Err(PluginError::Duplicate { plugin: name });
        }
        let tracked = manifest.world != World::LogFormatter;
        if tracked {
            self.health.record(&name, HealthInput::RegistrationStarted);
        }
        let result = self.load_new(manifest, wasm);
        if tracked {
            match &result {
                Ok(_) => self
                    .health
                    .record(&name, HealthInput::RegistrationSucceeded),
                Err(e) => {
                    self.health
                        .record(&name, HealthInput::RegistrationFailed(e.to_string()));
                    self.health.remove(&name);
                }
            }
        }
        result
    }

    fn load_new(&self, manifest: Manifest, wasm: &[u8]) -> Result<PluginInfo, PluginError> {
        let name = manifest.name.clone();
        let component = self.runtime.compile(&name, wasm)?;
        let pre = self.runtime.prepare(&name, manifest.world, &component)?;
        let subscriber = match manifest.world {
            World::LogFormatter => None,
            _ => {
                let bus_err = |e: crate::bus::BusError| PluginError::Bus {
                    plugin: name.clone(),
                    message: e.to_string(),
                };
                let sub = self.bus.subscriber(&name).map_err(bus_err)?;
                for g in &manifest.subscribe {
                    sub.subscribe(g.channel, &g.pattern).map_err(bus_err)?;
                }
                Some(Arc::new(sub))
            }
        };
        let max_batch = manifest.limits.max_batch.unwrap_or(self.max_batch);
        let ctx = Arc::new(PluginContext {
            stdout: Capture::new(&name, "stdout"),
            stderr: Capture::new(&name, "stderr"),
            bus: self.bus.clone(),
            subscriber,
            handle: self.handle.clone(),
            manifest,
        });
        let info = Arc::new(Mutex::new(PluginInfo {
            name: name.clone(),
            version: ctx.manifest.version.clone(),
            world: ctx.manifest.world,
            state: PluginState::Running,
            loaded_at: Utc::now(),
            delivered: 0,
            failed: 0,
            traps: 0,
            restarts: 0,
            last_error: None,
            subscriber: ctx.subscriber.as_ref().map(|s| s.id()),
        }));
        let (worker, formatter) = match ctx.manifest.world {
            World::LogFormatter => (
                None,
                Some(FormatterPlugin::start(
                    &self.runtime,
                    pre,
                    Arc::clone(&ctx),
                )?),
            ),
            _ => {
                let first = Instance::start(self.runtime.engine(), &pre, Arc::clone(&ctx))?;
                let worker = Worker {
                    ctx: Arc::clone(&ctx),
                    pre,
                    engine: self.runtime.engine().clone(),
                    info: Arc::clone(&info),
                    max_batch,
                    health: Arc::clone(&self.health),
                    metrics: self.metrics.register(&name),
                };
                let thread = std::thread::Builder::new()
                    .name(format!("plugin-{name}"))
                    .spawn(move || worker.run(first))
                    .map_err(|e| PluginError::Instantiate {
                        plugin: name.clone(),
                        message: format!("cannot start worker thread: {e}"),
                    })?;
                (Some(thread), None)
            }
        };
        tracing::info!(
            class = "success",
            plugin = name.as_str(),
            "🔌 PLUGIN LOADED: {name} {} ({})",
            ctx.manifest.version,
            ctx.manifest.world
        );
        lifecycle(&ctx, ProcessEvent::Started, None, 0);
        let snapshot = info.lock().clone();
        self.slots.lock().insert(
            name,
            Slot {
                info,
                ctx,
                worker,
                formatter,
            },
        );
        Ok(snapshot)
    }

    /// Unloads a plugin: its subscriptions are removed at once, messages
    /// already in its inbox are still handled, then `shutdown` is called.
    ///
    /// # Errors
    /// [`PluginError::NotFound`].
    pub async fn unload(&self, name: &str) -> Result<(), PluginError> {
        let slot = self
            .slots
            .lock()
            .remove(name)
            .ok_or_else(|| PluginError::NotFound {
                plugin: name.to_owned(),
            })?;
        if let Some(sub) = &slot.ctx.subscriber {
            sub.close();
        }
        if let Some(thread) = slot.worker {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if slot.formatter.is_some() {
            slot.info.lock().state = PluginState::Stopped;
            lifecycle(&slot.ctx, ProcessEvent::Stopped, Some("unloaded".into()), 0);
        }
        tracing::info!(
            class = "failure",
            plugin = name,
            "🔌 PLUGIN UNLOADED: {name}"
        );
        Ok(())
    }

    /// Unloads every plugin.
    pub async fn unload_all(&self) {
        let names: Vec<String> = self.slots.lock().keys().cloned().collect();
        for name in names {
            let _ = self.unload(&name).await;
        }
    }

    /// Every loaded plugin, by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.slots
            .lock()
            .values()
            .map(|s| s.info.lock().clone())
            .collect()
    }

    /// One plugin's status.
    pub fn status(&self, name: &str) -> Option<PluginInfo> {
        self.slots.lock().get(name).map(|s| s.info.lock().clone())
    }

    /// The loaded log-formatter plugin of that name.
    pub fn formatter(&self, name: &str) -> Option<Arc<FormatterPlugin>> {
        self.slots
            .lock()
            .get(name)
            .and_then(|s| s.formatter.clone())
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

/// Measurement hooks for the benchmarks; not a stable API.
#[doc(hidden)]
pub mod bench_support {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{Capture, Instance, Manifest, PluginContext, PluginError, Runtime};
    use crate::bus::Bus;

    /// Average time to instantiate a compiled, pre-linked component and
    /// call its `init`, over `iterations`. Call inside a tokio runtime.
    ///
    /// # Errors
    /// Any load failure.
    pub fn instantiate_time(
        runtime: &Runtime,
        bus: &Bus,
        manifest: Manifest,
        wasm: &[u8],
        iterations: u32,
    ) -> Result<Duration, PluginError> {
        let component = runtime.compile(&manifest.name, wasm)?;
        let pre = runtime.prepare(&manifest.name, manifest.world, &component)?;
        let ctx = Arc::new(PluginContext {
            stdout: Capture::new(&manifest.name, "stdout"),
            stderr: Capture::new(&manifest.name, "stderr"),
            bus: bus.clone(),
            subscriber: None,
            handle: tokio::runtime::Handle::current(),
            manifest,
        });
        drop(Instance::start(runtime.engine(), &pre, Arc::clone(&ctx))?);
        let start = Instant::now();
        for _ in 0..iterations {
            drop(Instance::start(runtime.engine(), &pre, Arc::clone(&ctx))?);
        }
        Ok(start.elapsed() / iterations.max(1))
    }
}
