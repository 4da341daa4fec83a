//! The set of loaded plugins: load (from files, a directory or bytes),
//! unload, list and status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use sha2::Digest;

use super::files::{read_files, Fingerprint};
use super::formatter::FormatterPlugin;
use super::instance::Instance;
use super::manifest::{Manifest, World};
use super::outbound::OutboundStats;
use super::state::PluginContext;
use super::violations::Violations;
use super::worker::{lifecycle, Control, Request, Swap, Worker};
use super::{PluginError, Runtime};
use crate::bus::{Bus, SubscriberId};
use crate::health::{HealthInput, HealthMonitoring, HealthTracker};
use crate::messages::lifecycle::ProcessEvent;
use crate::metrics::MetricsCollector;

/// The actor the directory watcher acts as; its unloads (files removed) are
/// not remembered as an operator's.
pub const WATCHER_ACTOR: &str = "watcher";

/// Run state of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    /// Handling messages.
    Running,
    /// Its instance trapped; a fresh one is being started.
    Restarting,
    /// Trapped too often, or exceeded its violation budget: nothing is
    /// delivered until it is reloaded.
    Parked,
    /// Its worker has stopped (it is being unloaded).
    Stopped,
    /// Unloaded by an operator while its files are still in the watched
    /// plugins directory: it stays unloaded until one of them changes (or
    /// it is loaded or reloaded explicitly).
    Unloaded,
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
    /// The contract version its component was built against (`0.1.0`, `0.2.0`).
    pub contract: super::Contract,
    /// The guest's source language, read once at load from the component's
    /// `producers` sections (those of the component and of the modules in
    /// it): `rust`, `python` (componentize-py), `javascript`
    /// (ComponentizeJS / StarlingMonkey), another producer's language name
    /// lowercased (`c11`, `go`, …), or `unknown` when none names one.
    pub language: String,
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
    /// The last error, on one line (the full text is in the `DebugTrace`).
    pub last_error: Option<String>,
    /// Messages its inbox dropped (`drop_oldest` overflow); the plugin
    /// receives a `Lagged` marker with the count before its next messages.
    pub dropped: u64,
    /// Calls refused because they were outside its grants.
    pub violations: u64,
    /// Its bus subscriber (subscribers and escalators).
    pub subscriber: Option<SubscriberId>,
    /// The manifest file it was loaded from, if any.
    pub source: Option<String>,
    /// Bytes of linear memory of its current instance (all its memories),
    /// kept up to date as the instance grows them and counted afresh when
    /// an instance starts (after a trap, or a reload); while it is
    /// restarting, parked or unloaded, those of its last instance.
    pub memory_bytes: u64,
    /// Its most recent stderr lines, oldest first: at most 20 complete
    /// lines (each cut at 8 KiB) of its current instance, the ones a trap
    /// report quotes; a line still being written is not included.
    pub stderr: Vec<String>,
    /// Its outbound HTTP requests per destination (`scheme://host:port`),
    /// by destination, counted across its versions since it was loaded.
    pub outbound: Vec<super::OutboundInfo>,
    /// Bytes of durable key-value state (`wasi:keyvalue`) it keeps, keys
    /// and values, across its versions and the host's restarts.
    pub state_bytes: u64,
}

struct Slot {
    info: Arc<Mutex<PluginInfo>>,
    ctx: Arc<PluginContext>,
    worker: Option<std::thread::JoinHandle<()>>,
    formatter: Option<Arc<FormatterPlugin>>,
    control: Arc<Control>,
    /// SHA-256 of the loaded component, to skip reloading identical files.
    digest: Vec<u8>,
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
    closed: std::sync::atomic::AtomicBool,
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
            closed: std::sync::atomic::AtomicBool::new(false),
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

    /// The context shared by the instances of one plugin version.
    fn context(
        &self,
        manifest: Manifest,
        subscriber: Option<Arc<crate::bus::Subscriber>>,
        violations: Arc<Violations>,
        outbound: Arc<OutboundStats>,
    ) -> Result<Arc<PluginContext>, PluginError> {
        PluginContext::new(
            manifest,
            self.bus.clone(),
            self.handle.clone(),
            subscriber,
            violations,
            outbound,
            Arc::clone(&self.state_db),
        )
    }

    /// `limits.fuel` needs an engine with fuel metering.
    fn check_fuel(&self, manifest: &Manifest) -> Result<(), PluginError> {
        if manifest.limits.fuel.is_some() && !self.runtime.config().fuel {
            return Err(PluginError::Grant {
                plugin: manifest.name.clone(),
                message: "limits.fuel needs fuel metering: set [runtime] fuel = true".into(),
            });
        }
        Ok(())
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

    /// Loads `<manifest>` and the component it names.
    ///
    /// # Errors
    /// [`PluginError`] naming the plugin (or manifest file) and the cause.
    pub fn load_file(&self, manifest_path: &Path) -> Result<PluginInfo, PluginError> {
        let (manifest, bytes) = read_files(manifest_path)?;
        let name = manifest.name.clone();
        let info = self.load(manifest, &bytes)?;
        Ok(self.set_source(&name, manifest_path).unwrap_or(info))
    }

    /// Loads or reloads from `<manifest>` and the component it names, on
    /// behalf of `actor`; remembers the file for later reloads.
    ///
    /// # Errors
    /// As [`reload`](Self::reload), plus unreadable files.
    pub async fn reload_file_by(
        &self,
        actor: &str,
        manifest_path: &Path,
    ) -> Result<PluginInfo, PluginError> {
        let stem = manifest_path.file_stem().and_then(|s| s.to_str());
        let (manifest, bytes) = read_files(manifest_path).inspect_err(|e| self.reject(e, stem))?;
        let name = manifest.name.clone();
        let info = self.reload_by(actor, manifest, &bytes).await?;
        Ok(self.set_source(&name, manifest_path).unwrap_or(info))
    }

    /// Reloads a plugin from the manifest file it was loaded from.
    ///
    /// # Errors
    /// [`PluginError::NotFound`], or the plugin has no source file (bundled),
    /// or as [`reload`](Self::reload).
    pub async fn reload_from_source_by(
        &self,
        actor: &str,
        name: &str,
    ) -> Result<PluginInfo, PluginError> {
        let unloaded = self.unloaded.lock().get(name).map(|(i, _)| i.clone());
        let info = self
            .status(name)
            .or(unloaded)
            .ok_or_else(|| PluginError::NotFound {
                plugin: name.to_owned(),
            })?;
        if let Some(source) = info.source {
            return self.reload_file_by(actor, Path::new(&source)).await;
        }
        // Bundled: the same component again (revives a parked plugin).
        let bundled = crate::artifacts::BUNDLED.iter().find(|b| b.name == name);
        match (bundled, self.manifest(name)) {
            (Some(b), Some(manifest)) => self.reload_by(actor, manifest, b.wasm).await,
            _ => Err(PluginError::Read {
                plugin: name.to_owned(),
                path: "<uploaded>".into(),
                message: "this plugin was not loaded from a file; give a manifest path".into(),
            }),
        }
    }

    fn set_source(&self, name: &str, path: &Path) -> Option<PluginInfo> {
        let slots = self.slots.lock();
        let slot = slots.get(name)?;
        slot.info.lock().source = Some(path.display().to_string());
        Some(live(slot))
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
        self.load_by("operator", manifest, wasm)
    }

    /// [`load`](Self::load) on behalf of `actor` (recorded on `audit`).
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_by(
        &self,
        actor: &str,
        manifest: Manifest,
        wasm: &[u8],
    ) -> Result<PluginInfo, PluginError> {
        let name = manifest.name.clone();
        if self.is_closed() {
            return Err(PluginError::ShuttingDown { plugin: name });
        }
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
                Ok(info) => {
                    self.unloaded.lock().remove(&name);
                    self.health
                        .record(&name, HealthInput::RegistrationSucceeded);
                    self.audit(actor, "plugin_load", &name, &info.version);
                }
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
        let (pre, contract) = self.runtime.prepare(&manifest, &component)?;
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
        self.check_fuel(&manifest)?;
        let digest = sha2::Sha256::digest(wasm).to_vec();
        let language = super::producers::language(wasm);
        let max_batch = manifest.limits.max_batch.unwrap_or(self.max_batch);
        let budget = self.runtime.config().max_violations_per_minute;
        let ctx = self.context(
            manifest,
            subscriber,
            Arc::new(Violations::new(budget)),
            Arc::new(OutboundStats::new(*self.outbound_breaker.lock())),
        )?;
        let info = Arc::new(Mutex::new(PluginInfo {
            name: name.clone(),
            version: ctx.manifest.version.clone(),
            world: ctx.manifest.world,
            contract,
            language,
            state: PluginState::Running,
            loaded_at: Utc::now(),
            delivered: 0,
            failed: 0,
            traps: 0,
            restarts: 0,
            last_error: None,
            dropped: 0,
            violations: 0,
            subscriber: ctx.subscriber.as_ref().map(|s| s.id()),
            source: None,
            memory_bytes: 0,
            stderr: Vec::new(),
            outbound: Vec::new(),
            state_bytes: 0,
        }));
        let control = Arc::new(Control::default());
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
                    control: Arc::clone(&control),
                    policy: self.runtime.config().clone(),
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
        let snapshot = live_info(&info, &ctx);
        let started = Arc::clone(&ctx);
        {
            let mut slots = self.slots.lock();
            // Checked under the lock `unload_all` takes after closing: a
            // slot inserted here is seen by it, or the load is refused.
            if self.is_closed() {
                drop(slots);
                if let Some(sub) = &ctx.subscriber {
                    sub.close();
                }
                control.wake.notify_one();
                if let Some(thread) = worker {
                    let _ = thread.join();
                }
                return Err(PluginError::ShuttingDown { plugin: name });
            }
            slots.insert(
                name.clone(),
                Slot {
                    info,
                    ctx,
                    worker,
                    formatter,
                    control,
                    digest,
                },
            );
        }
        tracing::info!(
            class = "success",
            plugin = name.as_str(),
            "🔌 PLUGIN LOADED: {name} {} ({})",
            started.manifest.version,
            started.manifest.world
        );
        // Announced once the slot exists, so listeners can look the plugin up.
        lifecycle(&started, ProcessEvent::Started, None, 0);
        Ok(snapshot)
    }

    /// Unloads a plugin: its subscriptions are removed at once, messages
    /// already in its inbox are still handled, then `shutdown` is called.
    ///
    /// # Errors
    /// [`PluginError::NotFound`].
    pub async fn unload(&self, name: &str) -> Result<(), PluginError> {
        self.unload_by("operator", name).await
    }

    /// [`unload`](Self::unload) on behalf of `actor` (recorded on `audit`).
    ///
    /// # Errors
    /// [`PluginError::NotFound`].
    pub async fn unload_by(&self, actor: &str, name: &str) -> Result<(), PluginError> {
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
        slot.control.wake.notify_one();
        self.audit(actor, "plugin_unload", name, &slot.ctx.manifest.version);
        let info = live(&slot);
        if let Some(thread) = slot.worker {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if slot.formatter.is_some() {
            slot.info.lock().state = PluginState::Stopped;
            lifecycle(&slot.ctx, ProcessEvent::Stopped, Some("unloaded".into()), 0);
        }
        self.health.remove(name);
        self.metrics.remove(name);
        match self.watched_source(&info) {
            Some((dir, fingerprint)) if actor != WATCHER_ACTOR => {
                tracing::info!(
                    class = "failure",
                    plugin = name,
                    "🔌 PLUGIN UNLOADED: {name} (its files stay in {}: it stays unloaded until they change)",
                    dir.display()
                );
                let mut info = info;
                info.state = PluginState::Unloaded;
                self.unloaded
                    .lock()
                    .insert(name.to_owned(), (info, fingerprint));
            }
            _ => tracing::info!(
                class = "failure",
                plugin = name,
                "🔌 PLUGIN UNLOADED: {name}"
            ),
        }
        Ok(())
    }

    /// The watched directory and the fingerprint of the plugin's files, when
    /// it was loaded from a manifest in that directory that still exists.
    fn watched_source(&self, info: &PluginInfo) -> Option<(PathBuf, Fingerprint)> {
        let dir = self.watched_dir.lock().clone()?;
        let source = PathBuf::from(info.source.as_ref()?);
        let same_dir = source
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .zip(dir.canonicalize().ok())
            .is_some_and(|(a, b)| a == b);
        if !same_dir {
            return None;
        }
        Some((dir, Fingerprint::of(&source)?))
    }

    /// Replaces a loaded plugin with a new version, or loads it if absent.
    ///
    /// The new version is compiled, linked, instantiated and `init`ed
    /// **before** the swap; any failure leaves the running version untouched
    /// and is returned. The inbox belongs to the slot: a message is handled
    /// by exactly one version — the old one up to the swap, the new one
    /// after — none is lost or delivered twice. Subscriptions are adjusted to
    /// the new manifest after the swap. An identical component and manifest
    /// is not reloaded (returns the current status).
    ///
    /// # Errors
    /// [`PluginError`] naming the plugin and the cause; also
    /// [`PluginError::WorldChanged`] when the new version has another world.
    pub async fn reload(&self, manifest: Manifest, wasm: &[u8]) -> Result<PluginInfo, PluginError> {
        self.reload_by("operator", manifest, wasm).await
    }

    /// [`reload`](Self::reload) on behalf of `actor` (recorded on `audit`).
    ///
    /// # Errors
    /// As [`reload`](Self::reload).
    pub async fn reload_by(
        &self,
        actor: &str,
        manifest: Manifest,
        wasm: &[u8],
    ) -> Result<PluginInfo, PluginError> {
        let result = self.reload_unreported(actor, manifest, wasm).await;
        if let Err(e) = &result {
            self.reject(e, None);
        }
        result
    }

    /// Reports a rejected load or replacement: one console line and a
    /// `SystemAlert` (with the full error text in its metadata, and the
    /// plugin's name — `plugin` when the error itself names none, as for a
    /// manifest that does not parse).
    pub(crate) fn reject(&self, err: &PluginError, plugin: Option<&str>) {
        self.report_failure(
            err,
            plugin,
            "❌ PLUGIN CHANGE REJECTED",
            "Plugin change rejected",
        );
    }

    /// Reports a plugin the host could not load at start-up (bundled or from
    /// the plugins directory) the way a rejected change is reported: a `❌ PLUGIN NOT LOADED` line and a `SystemAlert`
    /// titled `Plugin failed to load`.
    pub fn report_not_loaded(&self, err: &PluginError) {
        self.report_failure(err, None, "❌ PLUGIN NOT LOADED", "Plugin failed to load");
    }

    fn report_failure(&self, err: &PluginError, plugin: Option<&str>, line: &str, title: &str) {
        tracing::error!(
            class = "failure",
            "{line}: {}",
            super::error::one_line(&err.to_string())
        );
        let mut alert = crate::messages::alerts::SystemAlert::new(
            uuid::Uuid::now_v7().to_string(),
            crate::messages::alerts::Severity::Error,
            crate::messages::alerts::AlertCategory::System,
            title,
            err.to_string(),
            self.bus.node(),
        );
        alert
            .metadata
            .insert("error".into(), err.to_string().into());
        if let Some(p) = err.plugin().or(plugin) {
            alert.metadata.insert("plugin".into(), p.into());
        }
        let topic = crate::integration::topics::system_alert(alert.category);
        if let Err(e) = self.bus.publish_typed_now(&topic, &alert) {
            tracing::error!("alert `{title}` not published: {e}");
        }
    }

    async fn reload_unreported(
        &self,
        actor: &str,
        manifest: Manifest,
        wasm: &[u8],
    ) -> Result<PluginInfo, PluginError> {
        let name = manifest.name.clone();
        let digest = sha2::Sha256::digest(wasm).to_vec();
        let current = self.slots.lock().get(&name).map(|s| {
            (
                Arc::clone(&s.ctx),
                Arc::clone(&s.control),
                s.digest.clone(),
                s.info.lock().state,
            )
        });
        let Some((old, control, old_digest, state)) = current else {
            return self.load_by(actor, manifest, wasm);
        };
        // The same files again change nothing — except for a parked plugin,
        // which a reload revives with a fresh instance.
        if old_digest == digest && old.manifest == manifest && state != PluginState::Parked {
            return self
                .status(&name)
                .ok_or(PluginError::NotFound { plugin: name });
        }
        if old.manifest.world != manifest.world {
            return Err(PluginError::WorldChanged {
                plugin: name,
                from: old.manifest.world,
                to: manifest.world,
            });
        }
        self.check_fuel(&manifest)?;
        let component = self.runtime.compile(&name, wasm)?;
        let (pre, contract) = self.runtime.prepare(&manifest, &component)?;
        let language = super::producers::language(wasm);
        let ctx = self.context(
            manifest,
            old.subscriber.clone(),
            Arc::clone(&old.violations),
            Arc::clone(&old.outbound),
        )?;
        let (from, to) = (old.manifest.version.clone(), ctx.manifest.version.clone());
        if ctx.manifest.world == World::LogFormatter {
            let formatter = FormatterPlugin::start(&self.runtime, pre, Arc::clone(&ctx))?;
            if let Some(slot) = self.slots.lock().get_mut(&name) {
                slot.formatter = Some(formatter);
            }
        } else {
            let instance = Instance::start(self.runtime.engine(), &pre, Arc::clone(&ctx))?;
            let (done, swapped) = std::sync::mpsc::sync_channel(1);
            *control.swap.lock() = Some(Swap {
                ctx: Arc::clone(&ctx),
                pre,
                instance,
                max_batch: ctx.manifest.limits.max_batch.unwrap_or(self.max_batch),
                done,
            });
            control.wake.notify_one();
            // The running call's budget, plus one outbound request's waits
            // (connect, head, body), which do not count against it.
            let longest_call = |m: &Manifest| {
                let waits = if m.wasi.allowed_outbound_hosts.is_empty() {
                    0
                } else {
                    m.limits.http_timeout_ms.saturating_mul(3)
                };
                m.limits.call_timeout_ms.saturating_add(waits)
            };
            let wait =
                Duration::from_millis(longest_call(&ctx.manifest).max(longest_call(&old.manifest)))
                    + Duration::from_secs(5);
            let acked = tokio::task::spawn_blocking(move || swapped.recv_timeout(wait).is_ok())
                .await
                .unwrap_or(false);
            if !acked {
                control.swap.lock().take();
                return Err(PluginError::Instantiate {
                    plugin: name,
                    message: "the running version did not hand over its slot in time".into(),
                });
            }
            self.adjust_subscriptions(&old.manifest, &ctx.manifest, ctx.subscriber.as_deref());
        }
        let snapshot = {
            let mut slots = self.slots.lock();
            let slot = slots.get_mut(&name).ok_or_else(|| PluginError::NotFound {
                plugin: name.clone(),
            })?;
            slot.ctx = Arc::clone(&ctx);
            slot.digest = digest;
            {
                let mut info = slot.info.lock();
                info.version = to.clone();
                info.language = language;
                info.contract = contract;
                info.state = PluginState::Running;
                info.loaded_at = Utc::now();
                info.restarts = 0;
                info.last_error = None;
            }
            live(slot)
        };
        self.unloaded.lock().remove(&name);
        if ctx.manifest.world != World::LogFormatter {
            self.health
                .record(&name, HealthInput::RegistrationSucceeded);
        }
        tracing::info!(
            class = "success",
            plugin = name.as_str(),
            "♻️ PLUGIN RELOADED: {name} {from} -> {to}"
        );
        lifecycle(
            &ctx,
            ProcessEvent::Restarted,
            Some(format!("reloaded: {from} -> {to}")),
            0,
        );
        self.audit(actor, "plugin_reload", &name, &to);
        Ok(snapshot)
    }

    /// Makes the subscriber's subscriptions those of the new manifest.
    fn adjust_subscriptions(
        &self,
        old: &Manifest,
        new: &Manifest,
        sub: Option<&crate::bus::Subscriber>,
    ) {
        let Some(sub) = sub else { return };
        for g in old.subscribe.iter().filter(|g| !new.subscribe.contains(g)) {
            let _ = sub.unsubscribe(g.channel, &g.pattern);
        }
        for g in new.subscribe.iter().filter(|g| !old.subscribe.contains(g)) {
            if let Err(e) = sub.subscribe(g.channel, &g.pattern) {
                tracing::warn!(
                    plugin = new.name.as_str(),
                    "cannot subscribe to {}: {e}",
                    g.pattern
                );
            }
        }
    }

    /// Records an operation on `audit` as an `AdminAction`.
    fn audit(&self, actor: &str, action_type: &str, plugin: &str, version: &str) {
        let mut details = serde_json::Map::new();
        details.insert("plugin".into(), plugin.into());
        details.insert("version".into(), version.into());
        details.insert("node".into(), self.bus.node().into());
        let action = crate::messages::audit::AdminAction {
            admin_user_id: actor.to_owned(),
            action_type: action_type.to_owned(),
            target_resource: format!("plugin:{plugin}"),
            details,
            justification: None,
            source_ip: None,
        };
        let topic = crate::integration::topics::audit_admin_action(action_type);
        if let Err(e) = self.bus.publish_typed_now(&topic, &action) {
            tracing::error!(
                class = "failure",
                "audit record of {action_type} {plugin} not published: {e}"
            );
        }
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
            Arc::clone(&slot.control)
        };
        let (reply, outcome) = tokio::sync::oneshot::channel();
        control.requests.lock().push_back(Request {
            events,
            report,
            reply,
        });
        control.wake.notify_one();
        outcome
            .await
            .map_err(|_| format!("plugin `{name}` stopped before handling the events"))?
    }

    /// Unloads every plugin and refuses loads from then on: when it
    /// returns, every plugin worker thread has finished, so none outlives
    /// the tokio runtime it reports through.
    pub async fn unload_all(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        loop {
            // A load that passed the check before `closed` was set may still
            // insert its slot: go round until none is left.
            let names: Vec<String> = self.slots.lock().keys().cloned().collect();
            if names.is_empty() {
                break;
            }
            for name in names {
                let _ = self.unload(&name).await;
            }
        }
        self.unloaded.lock().clear();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
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

/// Measurement hooks for the benchmarks; not a stable API.
#[doc(hidden)]
pub mod bench_support {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{Instance, Manifest, PluginContext, PluginError, Runtime};
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
        let (pre, _) = runtime.prepare(&manifest, &component)?;
        let ctx = PluginContext::new(
            manifest,
            bus.clone(),
            tokio::runtime::Handle::current(),
            None,
            Arc::new(super::Violations::new(0)),
            Arc::default(),
            crate::store::kv::KeyValueDb::in_memory(),
        )?;
        drop(Instance::start(runtime.engine(), &pre, Arc::clone(&ctx))?);
        let start = Instant::now();
        for _ in 0..iterations {
            drop(Instance::start(runtime.engine(), &pre, Arc::clone(&ctx))?);
        }
        Ok(start.elapsed() / iterations.max(1))
    }
}
