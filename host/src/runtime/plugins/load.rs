//! Loading: a plugin that is not loaded gets a slot — compiled, linked,
//! instantiated and `init`ed first, then its worker started (subscribers
//! and escalators) or its formatter installed (log formatters). A failure
//! leaves nothing behind and is returned (not reported: the caller knows
//! whether it was a start-up load or a rejected change). A load is refused
//! once the set is closed ([`Plugins::unload_all`]) and for a name already
//! loaded (a change of a loaded plugin is a [`reload`](Plugins::reload)).
//!
//! A loaded subscriber or escalator is tracked by the health tracker from
//! the start of its registration; the load is recorded on `audit` as a
//! `plugin_load` by the [`Actor`].

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use parking_lot::Mutex;

use super::{live, live_info, Actor, PluginInfo, PluginState, Plugins, Slot};
use crate::health::HealthInput;
use crate::messages::lifecycle::ProcessEvent;
use crate::runtime::files::read_files;
use crate::runtime::formatter::FormatterPlugin;
use crate::runtime::instance::Prepared;
use crate::runtime::manifest::{Manifest, World};
use crate::runtime::outbound::OutboundStats;
use crate::runtime::state::PluginContext;
use crate::runtime::violations::Violations;
use crate::runtime::worker::{lifecycle, Command, Control, Worker};
use crate::runtime::PluginError;

impl Plugins {
    /// Compiles, links, instantiates and initialises a plugin, then starts
    /// its worker (or installs its formatter), on behalf of `actor`
    /// (recorded on `audit`).
    ///
    /// # Errors
    /// [`PluginError`] naming the plugin and the cause; nothing is left behind.
    pub fn load(
        &self,
        actor: Actor<'_>,
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

    /// Loads `<manifest>` and the component it names, on behalf of `actor`;
    /// remembers the file for later reloads.
    ///
    /// # Errors
    /// [`PluginError`] naming the plugin (or manifest file) and the cause.
    pub fn load_file(
        &self,
        actor: Actor<'_>,
        manifest_path: &Path,
    ) -> Result<PluginInfo, PluginError> {
        let (manifest, bytes) = read_files(manifest_path)?;
        let name = manifest.name.clone();
        let info = self.load(actor, manifest, &bytes)?;
        Ok(self.set_source(&name, manifest_path).unwrap_or(info))
    }

    /// Loads every `*.toml` manifest in `dir`, in name order, on behalf of
    /// `actor`. A failing plugin is skipped, its error returned in its
    /// place; the others load.
    pub fn load_dir(&self, actor: Actor<'_>, dir: &Path) -> Vec<Result<PluginInfo, PluginError>> {
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
        manifests.iter().map(|m| self.load_file(actor, m)).collect()
    }

    /// Records `path` as the manifest file a loaded plugin came from; its
    /// status, or `None` when it is not loaded (any more).
    pub(super) fn set_source(&self, name: &str, path: &Path) -> Option<PluginInfo> {
        let slots = self.slots.lock();
        let slot = slots.get(name)?;
        slot.info.lock().source = Some(path.display().to_string());
        Some(live(slot))
    }

    /// The context shared by the instances of one plugin version.
    pub(super) fn context(
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
    pub(super) fn check_fuel(&self, manifest: &Manifest) -> Result<(), PluginError> {
        if manifest.limits.fuel.is_some() && !self.runtime.config().fuel {
            return Err(PluginError::Grant {
                plugin: manifest.name.clone(),
                message: "limits.fuel needs fuel metering: set [runtime] fuel = true".into(),
            });
        }
        Ok(())
    }

    fn load_new(&self, manifest: Manifest, wasm: &[u8]) -> Result<PluginInfo, PluginError> {
        let name = manifest.name.clone();
        let component = self.runtime.compile(&name, wasm)?;
        let prepared = self.runtime.prepare(&manifest, &component)?;
        let contract = prepared.contract();
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
        let language = crate::runtime::producers::language(wasm);
        let max_batch = manifest.limits.max_batch.unwrap_or(self.max_batch);
        let budget = self.runtime.config().max_violations_per_minute;
        let ctx = self.context(
            manifest,
            subscriber,
            Arc::new(Violations::new(budget)),
            Arc::new(OutboundStats::new(
                *self.outbound_breaker.lock(),
                self.runtime.trust().clone(),
            )),
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
        let (control, commands) = Control::channel();
        let (worker, formatter) = match prepared {
            Prepared::Formatter(pre) => (
                None,
                Some(FormatterPlugin::start(
                    &self.runtime,
                    pre,
                    Arc::clone(&ctx),
                )?),
            ),
            Prepared::Worker(pre) => {
                let permit = self.runtime.worker_permit(&name)?;
                let first = pre.start(self.runtime.engine(), Arc::clone(&ctx))?;
                let worker = Worker {
                    ctx: Arc::clone(&ctx),
                    pre,
                    engine: self.runtime.engine().clone(),
                    info: Arc::clone(&info),
                    max_batch,
                    health: Arc::clone(&self.health),
                    metrics: self.metrics.register(&name),
                    commands,
                    policy: self.runtime.config().clone(),
                };
                let thread = std::thread::Builder::new()
                    .name(format!("plugin-{name}"))
                    .spawn(move || {
                        let _permit = permit;
                        worker.run(first);
                    })
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
                let _ = control.send(Command::Stop);
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
                    compiled: component,
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
}
