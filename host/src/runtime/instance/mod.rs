//! One live instance of a plugin: its `Store`, its world's exports, and the
//! calls into it, each under the manifest's time budget.
//!
//! One instance type per world: an [`Instance<W>`] is started from a
//! [`Pre<W>`] and has the calls of world `W` only — `deliver` on a
//! subscriber's, `on_alert` and `tick` on an escalator's, `format` and
//! `format_batch` on a formatter's, `shutdown` on those that have one — so
//! a call of another world's export does not compile.
//!
//! [`Runtime::prepare`](super::Runtime) checks a component against the
//! world its manifest names and detects the contract version it was built
//! against, once per plugin version; it returns a [`Prepared`] of that world,
//! whose [`Pre`] carries the contract's interface name to every instance
//! started from it (`prepared.rs`). Each world's exports are looked up by
//! name in that interface when an instance starts (`exports.rs`).
//! Subscribers and escalators run on a worker ([`WorkerPre`],
//! [`WorkerInstance`]: one of the two worlds, matched by the worker per
//! event); formatters are called by the console.

mod exports;
mod prepared;

use std::sync::Arc;

use wasmtime::component::Func;
use wasmtime::Store;

pub(crate) use exports::{EscalatorExports, FormatterExports, SubscriberExports};
use exports::{HasShutdown, WorldExports};
pub(crate) use prepared::{Pre, Prepared, WorkerPre};

use super::bindings::escalator::exports::exesdb::plugin::escalator::Escalation;
use super::bindings::wit_types::{Error as WitError, LogEntry as WitLogEntry, Message};
use super::host_impl::wit_channel;
use super::lowering::{message_refs, Ids};
use super::state::{PluginContext, PluginState};
use super::{PluginError, EPOCH_TICK};
use crate::messages::Envelope;

/// Calls `func` with `params`, typed (checked against the component's
/// types on each call).
fn typed_call<P, R>(store: &mut Store<PluginState>, func: Func, params: P) -> wasmtime::Result<R>
where
    P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
    R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
{
    let f = func.typed::<P, R>(&*store)?;
    f.call(store, params)
}

/// A plugin instance of world `W`, initialised and ready for calls.
pub(crate) struct Instance<W> {
    store: Store<PluginState>,
    exports: W,
    ticks: u64,
    /// Fuel per call, when the engine meters fuel.
    fuel: Option<u64>,
}

impl<W> std::fmt::Debug for Instance<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("ticks", &self.ticks)
            .finish_non_exhaustive()
    }
}

/// The guest's own error text.
pub(crate) fn error_text(e: &WitError) -> String {
    match e {
        WitError::Denied(s) => format!("denied: {s}"),
        WitError::InvalidTopic(s) => format!("invalid topic: {s}"),
        WitError::InvalidPayload(s) => format!("invalid payload: {s}"),
        WitError::TooLarge(s) => format!("too large: {s}"),
        WitError::Backpressure(s) => format!("backpressure: {s}"),
        WitError::Failed(s) => s.clone(),
    }
}

/// An envelope as the guest sees it, owned (for the rare single calls;
/// subscribers' deliveries borrow instead, see [`super::lowering`]).
pub(crate) fn to_message(env: &Envelope) -> Message {
    Message {
        id: env.id.to_string(),
        channel: wit_channel(env.channel),
        topic: env.topic.clone(),
        kind: env.kind.clone(),
        timestamp_ms: env.timestamp_ms(),
        node: env.node.clone(),
        correlation_id: env.correlation_id.clone(),
        causation_id: env.causation_id.clone(),
        schema_version: env.schema_version,
        payload: env.payload_text().to_owned(),
    }
}

impl<W: WorldExports> Instance<W> {
    /// Instantiates and calls `init` with the manifest's config.
    pub(crate) fn start(
        engine: &wasmtime::Engine,
        pre: &Pre<W>,
        ctx: Arc<PluginContext>,
    ) -> Result<Instance<W>, PluginError> {
        let plugin = ctx.name().to_owned();
        // A trap report names only this instance's stderr lines, and the
        // status this instance's memory (counted by its store's limiter).
        ctx.stderr.clear_recent();
        ctx.memory_bytes
            .store(0, std::sync::atomic::Ordering::Relaxed);
        let ticks = ctx
            .manifest
            .limits
            .call_timeout_ms
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            + 1;
        let mut store = Store::new(engine, PluginState::new(Arc::clone(&ctx))?);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks);
        if !ctx.manifest.wasi.allowed_outbound_hosts.is_empty() {
            // Waiting on outbound requests does not count against the budget.
            super::outbound::budget::install(&mut store);
        }
        let fuel = engine
            .get_consume_fuel()
            .then(|| ctx.manifest.limits.fuel.unwrap_or(u64::MAX));
        if let Some(f) = fuel {
            // Instantiation (start functions) runs under the same budget.
            let _ = store.set_fuel(f);
        }
        let inst_err = |e: wasmtime::Error| PluginError::Instantiate {
            plugin: plugin.clone(),
            message: format!("{e:#}"),
        };
        let instance = pre.pre.instantiate(&mut store).map_err(inst_err)?;
        let exports = W::load(&mut store, &instance, &pre.iface).map_err(inst_err)?;
        let mut inst = Instance {
            store,
            exports,
            ticks,
            fuel,
        };
        let config = ctx.manifest.config_json();
        let (result,) = inst.call("init", |store, e| {
            typed_call::<(&str,), (Result<(), WitError>,)>(store, e.init(), (config.as_str(),))
        })?;
        result.map_err(|e| PluginError::Init {
            plugin,
            message: ctx.secrets.redact(&error_text(&e)).into_owned(),
        })?;
        Ok(inst)
    }

    /// Runs one export under the time budget; a trap becomes [`PluginError::Trap`].
    fn call<R>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Store<PluginState>, &W) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.store.set_epoch_deadline(self.ticks);
        self.store.data_mut().wait.reset();
        if let Some(fuel) = self.fuel {
            // Cannot fail: the engine consumes fuel when `fuel` is set.
            let _ = self.store.set_fuel(fuel);
        }
        let result = f(&mut self.store, &self.exports);
        result.map_err(|e| {
            let ctx = &self.store.data().ctx;
            let stderr = ctx.stderr.recent();
            let mut message = format!("{e:#}");
            if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
                if *trap == wasmtime::Trap::Interrupt {
                    message = format!(
                        "{message} (exceeded the {} ms call budget)",
                        ctx.manifest.limits.call_timeout_ms
                    );
                }
                if *trap == wasmtime::Trap::OutOfFuel {
                    message = format!(
                        "{message} (exceeded the fuel budget of {})",
                        ctx.manifest.limits.fuel.unwrap_or(u64::MAX)
                    );
                }
            }
            if !stderr.is_empty() {
                message = format!("{message}; stderr: {}", stderr.join(" | "));
            }
            PluginError::Trap {
                plugin: ctx.name().to_owned(),
                call: name.to_owned(),
                message: ctx.secrets.redact(&message).into_owned(),
            }
        })
    }

    /// A guest's error text, with the plugin's secrets redacted.
    fn guest_text(&self, e: &WitError) -> String {
        self.store
            .data()
            .ctx
            .secrets
            .redact(&error_text(e))
            .into_owned()
    }
}

impl<W: HasShutdown> Instance<W> {
    /// Calls `shutdown`, ignoring a trap.
    pub(crate) fn shutdown(mut self) {
        let _ = self.call("shutdown", |store, e| {
            typed_call::<(), ()>(store, e.shutdown(), ())
        });
    }
}

impl Instance<SubscriberExports> {
    /// Delivers messages: one via `on-message`, several via `on-batch`.
    /// Returns the failures as (index, error text).
    pub(crate) fn deliver(
        &mut self,
        msgs: &[Arc<Envelope>],
    ) -> Result<Vec<(usize, String)>, PluginError> {
        let ids = Ids::of(msgs);
        let refs = message_refs(msgs, &ids);
        if let [one] = refs.as_slice() {
            let r = self.call("on-message", |store, e| e.handlers.on_message(store, one))?;
            return Ok(r
                .err()
                .map(|e| vec![(0, self.guest_text(&e))])
                .unwrap_or_default());
        }
        let failures = self.call("on-batch", |store, e| e.handlers.on_batch(store, &refs))?;
        Ok(failures
            .into_iter()
            .map(|f| (f.index as usize, self.guest_text(&f.error)))
            .collect())
    }
}

impl Instance<EscalatorExports> {
    /// Hands one alert or ack to an escalator.
    pub(crate) fn on_alert(
        &mut self,
        env: &Envelope,
    ) -> Result<Result<Vec<Escalation>, String>, PluginError> {
        let m = to_message(env);
        let (r,) = self.call("on-alert", |store, e| {
            typed_call::<(&Message,), (Result<Vec<Escalation>, WitError>,)>(
                store,
                e.on_alert,
                (&m,),
            )
        })?;
        Ok(r.map_err(|e| self.guest_text(&e)))
    }

    /// Lets an escalator act on time.
    pub(crate) fn tick(
        &mut self,
        now_ms: u64,
    ) -> Result<Result<Vec<Escalation>, String>, PluginError> {
        let (r,) = self.call("tick", |store, e| {
            typed_call::<(u64,), (Result<Vec<Escalation>, WitError>,)>(store, e.tick, (now_ms,))
        })?;
        Ok(r.map_err(|e| self.guest_text(&e)))
    }
}

impl Instance<FormatterExports> {
    /// Formats one log entry.
    pub(crate) fn format(&mut self, entry: &WitLogEntry) -> Result<String, PluginError> {
        let (line,) = self.call("format", |store, e| {
            typed_call::<(&WitLogEntry,), (String,)>(store, e.format, (entry,))
        })?;
        Ok(line)
    }

    /// Formats several log entries in one call; one line per entry.
    pub(crate) fn format_batch(
        &mut self,
        entries: &[WitLogEntry],
    ) -> Result<Vec<String>, PluginError> {
        let (lines,) = self.call("format-batch", |store, e| {
            typed_call::<(&[WitLogEntry],), (Vec<String>,)>(store, e.format_batch, (entries,))
        })?;
        Ok(lines)
    }
}

impl WorkerPre {
    /// Instantiates it and calls `init` (see [`Instance::start`]).
    pub(crate) fn start(
        &self,
        engine: &wasmtime::Engine,
        ctx: Arc<PluginContext>,
    ) -> Result<WorkerInstance, PluginError> {
        Ok(match self {
            WorkerPre::Subscriber(pre) => {
                WorkerInstance::Subscriber(Instance::start(engine, pre, ctx)?)
            }
            WorkerPre::Escalator(pre) => {
                WorkerInstance::Escalator(Instance::start(engine, pre, ctx)?)
            }
        })
    }
}

/// A worker's live instance, of its version's world.
pub(crate) enum WorkerInstance {
    /// A subscriber's.
    Subscriber(Instance<SubscriberExports>),
    /// An alert escalator's.
    Escalator(Instance<EscalatorExports>),
}

impl WorkerInstance {
    /// Calls `shutdown`, ignoring a trap.
    pub(crate) fn shutdown(self) {
        match self {
            WorkerInstance::Subscriber(i) => i.shutdown(),
            WorkerInstance::Escalator(i) => i.shutdown(),
        }
    }
}
