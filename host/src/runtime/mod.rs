//! The plugin runtime: one wasmtime [`Engine`] per process (component model,
//! epoch interruption), components compiled once and pre-linked
//! ([`InstancePre`](wasmtime::component::InstancePre)) against WASI p2 —
//! with nothing granted unless the manifest grants it —
//! `wasi:http/outgoing-handler` behind the outbound gate (`outbound.rs`),
//! and the `exesdb:plugin/host` interface.
//!
//! [`Plugins`] loads, runs and unloads plugins; each subscriber or escalator
//! runs on its own thread fed from its bus inbox.

mod bindings;
mod cache;
mod capture;
mod contract;
mod error;
mod files;
mod formatter;
mod host_impl;
mod instance;
mod keyvalue;
mod lowering;
pub mod manifest;
mod outbound;
mod plugins;
mod producers;
pub mod secrets;
mod settings;
mod sockets;
mod state;
pub(crate) mod violations;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use settings::{PluginsConfig, RuntimeConfig};

pub use cache::CacheStats;
pub use contract::Contract;
pub use error::{one_line, PluginError};
pub use files::Fingerprint;
pub use formatter::FormatterPlugin;
pub use manifest::{Manifest, World};
pub use outbound::{OutboundHost, OutboundInfo};
pub use plugins::{bench_support, Actor, PluginInfo, PluginState as PluginRunState, Plugins};

use state::PluginState;

/// Period of the epoch ticker; call budgets are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine, the linker, the compiled-component cache and the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    stop_ticker: Arc<AtomicBool>,
    cache: cache::ComponentCache,
    config: RuntimeConfig,
    /// Whom plugins' `https` requests trust (`outbound_ca_files`).
    trust: outbound::Trust,
    /// Components compiled for live plugins, by the SHA-256 of their bytes.
    live: parking_lot::Mutex<std::collections::HashMap<[u8; 32], std::sync::Weak<Compiled>>>,
    /// Plugin workers running now, against `max_workers` (see
    /// [`Runtime::worker_permit`]).
    workers: Arc<std::sync::atomic::AtomicU32>,
}

/// The right of one plugin worker to run: counted against `[runtime]
/// max_workers` from [`Runtime::worker_permit`] until the worker's thread
/// drops it, when it ends.
#[derive(Debug)]
pub(crate) struct WorkerPermit(Arc<std::sync::atomic::AtomicU32>);

impl Drop for WorkerPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A compiled component, shared by every plugin loaded from the same bytes
/// while one of them is loaded: its code and its linear-memory images exist
/// once, so each further instance costs only the pages it writes (a Python
/// or JavaScript interpreter image is tens of MB). Each plugin's slot holds
/// one; when the last goes, the next load compiles (or reads the on-disk
/// cache) again.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// SHA-256 of the component's bytes: its key here and in the on-disk
    /// cache.
    digest: [u8; 32],
    component: Component,
}

impl Compiled {
    /// SHA-256 of the bytes this was compiled from.
    pub(crate) fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

impl std::ops::Deref for Compiled {
    type Target = Component;
    fn deref(&self) -> &Component {
        &self.component
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Creates the engine and linker and starts the epoch ticker thread.
    ///
    /// # Errors
    /// [`PluginError::Engine`] if wasmtime cannot be configured here.
    pub fn new() -> Result<Arc<Runtime>, PluginError> {
        Self::with_config(&RuntimeConfig::default())
    }

    /// Like [`new`](Self::new) with explicit settings (cache, pooling, fuel,
    /// restart policy).
    ///
    /// # Errors
    /// [`PluginError::Engine`] if wasmtime cannot be configured here,
    /// [`PluginError::Setting`] for an `outbound_ca_files` entry that
    /// cannot be used.
    pub fn with_config(rc: &RuntimeConfig) -> Result<Arc<Runtime>, PluginError> {
        let trust = outbound::Trust::with_ca_files(&rc.outbound_ca_files).map_err(|message| {
            PluginError::Setting {
                key: "outbound_ca_files",
                message,
            }
        })?;
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(rc.fuel);
        if rc.pooling {
            let mut pool = PoolingAllocationConfig::default();
            let instances = rc.pool_max_instances;
            pool.total_component_instances(instances)
                .total_core_instances(instances * 4)
                .total_memories(instances * 2)
                .total_tables(instances * 4)
                .max_memory_size(
                    usize::try_from(rc.pool_max_memory_mb * 1024 * 1024).unwrap_or(usize::MAX),
                );
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).map_err(PluginError::engine)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(PluginError::engine)?;
        sockets::shadow(&mut linker).map_err(PluginError::engine)?;
        // Only `wasi:http/outgoing-handler` and `wasi:http/types`, for every
        // world; each request is the outbound gate's to allow.
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)
            .map_err(PluginError::engine)?;
        bindings::host_api::add_to_linker::<_, wasmtime::component::HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )
        .map_err(PluginError::engine)?;
        bindings::wit_types::add_to_linker::<_, wasmtime::component::HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )
        .map_err(PluginError::engine)?;
        // Contract 0.1.0: its `host` (delegating to 0.2.0's) and its
        // `types`, an instance of types only.
        bindings::v0_1::host_api::add_to_linker::<_, wasmtime::component::HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )
        .map_err(PluginError::engine)?;
        linker
            .instance("exesdb:plugin/types@0.1.0")
            .map_err(PluginError::engine)?;
        // 0.2.0's standard imports: secrets and durable state.
        bindings::config::wasi::config::store::add_to_linker::<
            _,
            wasmtime::component::HasSelf<PluginState>,
        >(&mut linker, |s| s)
        .map_err(PluginError::engine)?;
        bindings::keyvalue::Imports::add_to_linker::<_, wasmtime::component::HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )
        .map_err(PluginError::engine)?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.weak();
            let stop = Arc::clone(&stop_ticker);
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        match engine.upgrade() {
                            Some(e) => e.increment_epoch(),
                            None => break,
                        }
                    }
                })
                .map_err(|e| PluginError::engine(e.into()))?;
        }
        let cache_dir = (!rc.cache_dir.is_empty()).then(|| std::path::PathBuf::from(&rc.cache_dir));
        Ok(Arc::new(Runtime {
            cache: cache::ComponentCache::new(&engine, cache_dir.as_deref()),
            engine,
            linker,
            stop_ticker,
            config: rc.clone(),
            trust,
            live: parking_lot::Mutex::default(),
            workers: Arc::default(),
        }))
    }

    /// A permit for one more plugin worker, or
    /// [`PluginError::TooManyWorkers`] when `max_workers` run already.
    /// Taken before the worker's thread is started: a process that runs
    /// out of threads or memory mappings aborts, so the limit is enforced
    /// before the operating system's.
    pub(crate) fn worker_permit(&self, plugin: &str) -> Result<WorkerPermit, PluginError> {
        let max = self.config.max_workers;
        self.workers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| WorkerPermit(Arc::clone(&self.workers)))
            .map_err(|_| PluginError::TooManyWorkers {
                plugin: plugin.to_owned(),
                max,
            })
    }

    /// Plugin workers running now, in every plugin set of this runtime.
    pub fn workers(&self) -> u32 {
        self.workers.load(Ordering::SeqCst)
    }

    /// Whom plugins' `https` requests trust.
    pub(crate) fn trust(&self) -> &outbound::Trust {
        &self.trust
    }

    /// The settings this runtime was made with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// How the compiled-component cache has been used.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiled component of `bytes`: the one a live plugin loaded
    /// from the same bytes already uses, else loaded from the on-disk
    /// cache, else compiled (counted in [`cache_stats`](Self::cache_stats)).
    pub(crate) fn compile(&self, plugin: &str, bytes: &[u8]) -> Result<Arc<Compiled>, PluginError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
        if let Some(c) = self
            .live
            .lock()
            .get(&digest)
            .and_then(std::sync::Weak::upgrade)
        {
            self.cache.count_shared();
            return Ok(c);
        }
        // Compiled without the lock: another load may do the same meanwhile,
        // and the first to finish is the one kept.
        let component = self
            .cache
            .load(&self.engine, plugin, &digest, || {
                Component::from_binary(&self.engine, bytes)
            })
            .map_err(|e| PluginError::Malformed {
                plugin: plugin.to_owned(),
                message: format!("{e:#}"),
            })?;
        let mut live = self.live.lock();
        live.retain(|_, c| c.strong_count() > 0);
        if let Some(c) = live.get(&digest).and_then(std::sync::Weak::upgrade) {
            return Ok(c);
        }
        let compiled = Arc::new(Compiled { digest, component });
        live.insert(digest, Arc::downgrade(&compiled));
        Ok(compiled)
    }

    /// Checks that `component` implements the manifest's world (in a
    /// supported contract version, detected here once for every instance
    /// of this version) and that the manifest's limits fit this runtime,
    /// and links it.
    pub(crate) fn prepare(
        &self,
        manifest: &Manifest,
        component: &Component,
    ) -> Result<instance::Prepared, PluginError> {
        let (plugin, world) = (manifest.name.as_str(), manifest.world);
        let rc = &self.config;
        if rc.pooling && manifest.limits.memory_mb > rc.pool_max_memory_mb {
            return Err(PluginError::Instantiate {
                plugin: plugin.to_owned(),
                message: format!(
                    "limits.memory_mb = {} exceeds the pooling allocator's slots \
                     ([runtime] pool_max_memory_mb = {}): lower the plugin's limit \
                     or raise pool_max_memory_mb",
                    manifest.limits.memory_mb, rc.pool_max_memory_mb
                ),
            });
        }
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let Some(contract) = Contract::of(world, exports.iter().map(String::as_str)) else {
            return Err(PluginError::WrongWorld {
                plugin: plugin.to_owned(),
                world,
                exports,
            });
        };
        self.linker
            .instantiate_pre(component)
            .map(|pre| instance::Prepared::new(world, pre, contract))
            .map_err(|e| PluginError::Link {
                plugin: plugin.to_owned(),
                message: format!("{e:#}"),
            })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}
