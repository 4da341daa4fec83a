//! What each plugin instance's `Store` holds: its WASI context (nothing
//! granted unless the manifest says so), its `wasi:http` context with the
//! outbound gate, its memory limiter (which also records the instance's
//! memory size), and the plugin's shared context (manifest, bus,
//! subscriber, captured output).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::capture::Capture;
use super::manifest::Manifest;
use super::PluginError;
use crate::bus::{Bus, Subscriber};
use crate::messages::Envelope;

/// State shared by every instance of one plugin.
#[derive(Debug)]
pub(crate) struct PluginContext {
    pub(crate) manifest: Manifest,
    pub(crate) bus: Bus,
    /// The plugin's inbox (subscribers and escalators).
    pub(crate) subscriber: Option<Arc<Subscriber>>,
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
    /// Refusals of this plugin's calls, shared by its versions.
    pub(crate) violations: Arc<super::violations::Violations>,
    /// Bytes of linear memory of this version's current (or last) instance,
    /// kept by its [`Limiter`]; set to 0 when an instance starts.
    pub(crate) memory_bytes: AtomicU64,
    /// Outbound requests per destination and the rate limit, shared by its
    /// versions (see [`super::outbound`]).
    pub(crate) outbound: Arc<super::outbound::OutboundStats>,
    /// This version's secret values (`[secrets]`), read at load.
    pub(crate) secrets: Arc<super::secrets::Secrets>,
    /// The plugins' durable key-value state (`wasi:keyvalue`).
    pub(crate) state_db: Arc<crate::store::kv::KeyValueDb>,
}

impl PluginContext {
    /// The context of a new version of a plugin: its secrets read (the
    /// error names the first that cannot be), its output captured.
    ///
    /// # Errors
    /// [`PluginError::Init`] for a secret that cannot be read.
    pub(crate) fn new(
        manifest: Manifest,
        bus: Bus,
        handle: tokio::runtime::Handle,
        subscriber: Option<Arc<Subscriber>>,
        violations: Arc<super::violations::Violations>,
        outbound: Arc<super::outbound::OutboundStats>,
        state_db: Arc<crate::store::kv::KeyValueDb>,
    ) -> Result<Arc<PluginContext>, PluginError> {
        let secrets = Arc::new(super::secrets::Secrets::resolve(
            &manifest.name,
            &manifest.secrets,
        )?);
        Ok(Arc::new(PluginContext {
            stdout: Capture::new(&manifest.name, "stdout", Arc::clone(&secrets)),
            stderr: Capture::new(&manifest.name, "stderr", Arc::clone(&secrets)),
            bus,
            subscriber,
            handle,
            violations,
            memory_bytes: AtomicU64::new(0),
            outbound,
            secrets,
            state_db,
            manifest,
        }))
    }

    pub(crate) fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Publishes from synchronous code: waits (for `backpressure`
    /// subscribers) when called outside the runtime, never waits inside it.
    pub(crate) fn send(&self, env: Envelope) -> Result<(), crate::bus::BusError> {
        let skip = self.subscriber.as_ref().map(|s| s.id());
        if tokio::runtime::Handle::try_current().is_ok() {
            return self.bus.publish_now(env).map(drop);
        }
        let fut = async {
            match skip {
                Some(id) => self.bus.broadcast_from(id, env).await,
                None => self.bus.broadcast(env).await,
            }
        };
        self.handle.block_on(fut).map(drop)
    }

    /// Publishes a typed report, logging (not returning) a failure.
    pub(crate) fn report<K: crate::messages::MessageKind>(&self, topic: &str, payload: &K) {
        self.report_caused(topic, payload, None);
    }

    /// Like [`report`](Self::report) for a report caused by message
    /// `cause`: it carries `cause`'s id as its causation id and `cause`'s
    /// correlation id, so the failure can be traced back to the message.
    pub(crate) fn report_caused<K: crate::messages::MessageKind>(
        &self,
        topic: &str,
        payload: &K,
        cause: Option<&Envelope>,
    ) {
        let result = Envelope::typed(topic, payload, self.bus.node())
            .map(|env| match cause {
                Some(c) => {
                    let mut env = env.with_causation_id(c.id.to_string());
                    env.correlation_id.clone_from(&c.correlation_id);
                    env
                }
                None => env,
            })
            .map_err(crate::bus::BusError::from)
            .and_then(|env| self.send(env));
        if let Err(e) = result {
            tracing::warn!(
                plugin = self.name(),
                "could not publish {} report: {e}",
                K::KIND
            );
        }
    }
}

/// The data of one instance's `Store`.
pub(crate) struct PluginState {
    pub(crate) ctx: Arc<PluginContext>,
    wasi: WasiCtx,
    /// Resources of WASI, `wasi:http` and `wasi:keyvalue`.
    pub(super) table: ResourceTable,
    http: WasiHttpCtx,
    /// The `send_request` hook: every outbound request passes it.
    gate: super::outbound::Gate,
    /// Waiting on outbound requests, credited to the call's time budget.
    pub(crate) wait: super::outbound::budget::WaitClock,
    pub(crate) limits: Limiter,
}

impl std::fmt::Debug for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginState")
            .field("plugin", &self.ctx.name())
            .finish_non_exhaustive()
    }
}

impl PluginState {
    /// A fresh state: WASI with only the manifest's grants, stdout/stderr captured.
    pub(crate) fn new(ctx: Arc<PluginContext>) -> Result<PluginState, PluginError> {
        let m = &ctx.manifest;
        let mut b = WasiCtx::builder();
        b.stdout(ctx.stdout.clone()).stderr(ctx.stderr.clone());
        for var in &m.wasi.env {
            if let Ok(value) = std::env::var(var) {
                b.env(var, value);
            }
        }
        for dir in &m.wasi.read_only_dirs {
            let guest = dir.to_string_lossy();
            b.preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
                .map_err(|e| PluginError::Grant {
                    plugin: m.name.clone(),
                    message: format!("cannot preopen read-only dir {}: {e}", dir.display()),
                })?;
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(m.limits.memory_mb * 1024 * 1024).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .instances(100)
            .build();
        let wait = super::outbound::budget::WaitClock::default();
        Ok(PluginState {
            wasi: b.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            gate: super::outbound::Gate::new(Arc::clone(&ctx), wait.in_flight()),
            wait,
            limits: Limiter {
                limits,
                ctx: Arc::clone(&ctx),
                bytes: 0,
                pending: 0,
            },
            ctx,
        })
    }
}

/// The store's resource limiter: the manifest's limits ([`StoreLimits`]),
/// and the size of the instance's linear memories, counted as they are
/// created and grow and published in the context's
/// [`memory_bytes`](PluginContext::memory_bytes).
pub(crate) struct Limiter {
    limits: StoreLimits,
    ctx: Arc<PluginContext>,
    /// The instance's linear memory, in bytes: every memory it created, as
    /// large as it has grown.
    bytes: u64,
    /// The last growth allowed, taken back if it then fails. Every failed
    /// growth traps (`trap_on_grow_failure`), so this only corrects the
    /// size the status shows for the trapped instance.
    pending: u64,
}

impl Limiter {
    fn publish(&self) {
        self.ctx.memory_bytes.store(self.bytes, Ordering::Relaxed);
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            // A new memory comes with `current` 0 and its initial size.
            self.pending = u64::try_from(desired.saturating_sub(current)).unwrap_or(u64::MAX);
            self.bytes = self.bytes.saturating_add(self.pending);
            self.publish();
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.bytes = self.bytes.saturating_sub(std::mem::take(&mut self.pending));
        self.publish();
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `wasi:http`: the resource table shared with WASI, and the gate as the
/// hooks (every world links `outgoing-handler` and `types`; what a request
/// may reach is the gate's decision).
impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}
