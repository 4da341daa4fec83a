//! One live instance of a plugin: its `Store`, its world's bindings, and the
//! calls into it, each under the manifest's time budget.

use std::sync::Arc;

use wasmtime::component::{Func, InstancePre};
use wasmtime::Store;

use super::bindings::escalator::exports::exesdb::plugin::escalator::Escalation;
use super::bindings::wit_types::{Error as WitError, LogEntry as WitLogEntry, Message};
use super::contract::Contract;
use super::host_impl::wit_channel;
use super::lowering::{export_func, message_refs, HandlerFuncs, Ids};
use super::manifest::World;
use super::state::{PluginContext, PluginState};
use super::{PluginError, EPOCH_TICK};
use crate::messages::Envelope;

/// An instance's exports, looked up by name in the world interface of the
/// contract the component was built against (see [`Contract`]): the
/// records are the same in every supported version, so one set of typed
/// calls serves them all, each checked against the component's own types.
enum Bindings {
    /// `init`, `shutdown`, and the message handlers called with borrowed
    /// records (see [`super::lowering`]).
    Subscriber {
        init: Func,
        shutdown: Func,
        handlers: HandlerFuncs,
    },
    Escalator {
        init: Func,
        on_alert: Func,
        tick: Func,
        shutdown: Func,
    },
    Formatter {
        init: Func,
        format: Func,
        format_batch: Func,
    },
}

impl Bindings {
    fn load(
        store: &mut Store<PluginState>,
        instance: &wasmtime::component::Instance,
        world: World,
    ) -> wasmtime::Result<Bindings> {
        let contract = Contract::SUPPORTED
            .into_iter()
            .find(|c| {
                instance
                    .get_export_index(&mut *store, None, &c.export(world))
                    .is_some()
            })
            .ok_or_else(|| {
                wasmtime::format_err!("no export `{}`", Contract::CURRENT.export(world))
            })?;
        let iface = contract.export(world);
        let mut f = |name: &str| export_func(store, instance, &iface, name);
        let bindings = match world {
            World::Subscriber => Bindings::Subscriber {
                init: f("init")?,
                shutdown: f("shutdown")?,
                handlers: HandlerFuncs::load(store, instance, &iface)?,
            },
            World::AlertEscalator => Bindings::Escalator {
                init: f("init")?,
                on_alert: f("on-alert")?,
                tick: f("tick")?,
                shutdown: f("shutdown")?,
            },
            World::LogFormatter => Bindings::Formatter {
                init: f("init")?,
                format: f("format")?,
                format_batch: f("format-batch")?,
            },
        };
        Ok(bindings)
    }

    fn init(&self) -> Func {
        match self {
            Bindings::Subscriber { init, .. }
            | Bindings::Escalator { init, .. }
            | Bindings::Formatter { init, .. } => *init,
        }
    }
}

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

/// A plugin instance, initialised and ready for calls.
pub(crate) struct Instance {
    store: Store<PluginState>,
    bindings: Bindings,
    ticks: u64,
    /// Fuel per call, when the engine meters fuel.
    fuel: Option<u64>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("ticks", &self.ticks)
            .finish_non_exhaustive()
    }
}

/// A call made on an instance of another world: a host bug, reported as
/// the call's failure instead of a panic.
fn not_this_world(call: &str) -> wasmtime::Error {
    wasmtime::format_err!("`{call}` is not an export of this plugin's world")
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

impl Instance {
    /// Instantiates and calls `init` with the manifest's config.
    pub(crate) fn start(
        engine: &wasmtime::Engine,
        pre: &InstancePre<PluginState>,
        ctx: Arc<PluginContext>,
    ) -> Result<Instance, PluginError> {
        let plugin = ctx.name().to_owned();
        let world = ctx.manifest.world;
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
        let instance = pre.instantiate(&mut store).map_err(inst_err)?;
        let bindings = Bindings::load(&mut store, &instance, world).map_err(inst_err)?;
        let mut inst = Instance {
            store,
            bindings,
            ticks,
            fuel,
        };
        let config = ctx.manifest.config_json();
        let (result,) = inst.call("init", |store, b| {
            typed_call::<(&str,), (Result<(), WitError>,)>(store, b.init(), (config.as_str(),))
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
        f: impl FnOnce(&mut Store<PluginState>, &Bindings) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.store.set_epoch_deadline(self.ticks);
        self.store.data_mut().wait.reset();
        if let Some(fuel) = self.fuel {
            // Cannot fail: the engine consumes fuel when `fuel` is set.
            let _ = self.store.set_fuel(fuel);
        }
        let result = f(&mut self.store, &self.bindings);
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

    /// Delivers messages: one via `on-message`, several via `on-batch`.
    /// Returns the failures as (index, error text).
    pub(crate) fn deliver(
        &mut self,
        msgs: &[Arc<Envelope>],
    ) -> Result<Vec<(usize, String)>, PluginError> {
        let ids = Ids::of(msgs);
        let refs = message_refs(msgs, &ids);
        if let [one] = refs.as_slice() {
            let r = self.call("on-message", |store, b| match b {
                Bindings::Subscriber { handlers, .. } => handlers.on_message(store, one),
                _ => Err(not_this_world("on-message")),
            })?;
            return Ok(r
                .err()
                .map(|e| vec![(0, self.guest_text(&e))])
                .unwrap_or_default());
        }
        let failures = self.call("on-batch", |store, b| match b {
            Bindings::Subscriber { handlers, .. } => handlers.on_batch(store, &refs),
            _ => Err(not_this_world("on-batch")),
        })?;
        Ok(failures
            .into_iter()
            .map(|f| (f.index as usize, self.guest_text(&f.error)))
            .collect())
    }

    /// Hands one alert or ack to an escalator.
    pub(crate) fn on_alert(
        &mut self,
        env: &Envelope,
    ) -> Result<Result<Vec<Escalation>, String>, PluginError> {
        let m = to_message(env);
        let (r,) = self.call("on-alert", |store, b| match b {
            Bindings::Escalator { on_alert, .. } => typed_call::<
                (&Message,),
                (Result<Vec<Escalation>, WitError>,),
            >(store, *on_alert, (&m,)),
            _ => Err(not_this_world("on-alert")),
        })?;
        Ok(r.map_err(|e| self.guest_text(&e)))
    }

    /// Lets an escalator act on time.
    pub(crate) fn tick(
        &mut self,
        now_ms: u64,
    ) -> Result<Result<Vec<Escalation>, String>, PluginError> {
        let (r,) = self.call("tick", |store, b| match b {
            Bindings::Escalator { tick, .. } => {
                typed_call::<(u64,), (Result<Vec<Escalation>, WitError>,)>(store, *tick, (now_ms,))
            }
            _ => Err(not_this_world("tick")),
        })?;
        Ok(r.map_err(|e| self.guest_text(&e)))
    }

    /// Formats one log entry.
    pub(crate) fn format(&mut self, entry: &WitLogEntry) -> Result<String, PluginError> {
        let (line,) = self.call("format", |store, b| match b {
            Bindings::Formatter { format, .. } => {
                typed_call::<(&WitLogEntry,), (String,)>(store, *format, (entry,))
            }
            _ => Err(not_this_world("format")),
        })?;
        Ok(line)
    }

    /// Formats several log entries in one call; one line per entry.
    pub(crate) fn format_batch(
        &mut self,
        entries: &[WitLogEntry],
    ) -> Result<Vec<String>, PluginError> {
        let (lines,) = self.call("format-batch", |store, b| match b {
            Bindings::Formatter { format_batch, .. } => {
                typed_call::<(&[WitLogEntry],), (Vec<String>,)>(store, *format_batch, (entries,))
            }
            _ => Err(not_this_world("format-batch")),
        })?;
        Ok(lines)
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

    /// Calls `shutdown` (subscribers and escalators), ignoring a trap.
    pub(crate) fn shutdown(mut self) {
        let _ = self.call("shutdown", |store, b| match b {
            Bindings::Subscriber { shutdown, .. } | Bindings::Escalator { shutdown, .. } => {
                typed_call::<(), ()>(store, *shutdown, ())
            }
            Bindings::Formatter { .. } => Ok(()),
        });
    }
}
