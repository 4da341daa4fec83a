//! The exports of each world, looked up once per instance in the world
//! interface of the component's contract: one type per world
//! ([`SubscriberExports`], [`EscalatorExports`], [`FormatterExports`]),
//! each the `W` of an [`Instance<W>`](super::Instance).

use wasmtime::component::Func;
use wasmtime::Store;

use crate::runtime::lowering::{export_func, HandlerFuncs};
use crate::runtime::manifest::World;
use crate::runtime::state::PluginState;

/// The exports of one world, looked up by name in the world interface of
/// the contract the component was built against (see [`Contract`](crate::runtime::Contract)): the
/// records are the same in every supported version, so one set of typed
/// calls serves them all, each checked against the component's own types.
pub(crate) trait WorldExports: Sized {
    /// The world.
    const WORLD: World;

    /// Looks the exports up in a fresh instance, in its exported
    /// interface `iface`.
    fn load(
        store: &mut Store<PluginState>,
        instance: &wasmtime::component::Instance,
        iface: &str,
    ) -> wasmtime::Result<Self>;

    /// `init`, which every world has.
    fn init(&self) -> Func;
}

/// The worlds whose instances are stopped with `shutdown` (a formatter
/// has none).
pub(crate) trait HasShutdown: WorldExports {
    /// `shutdown`.
    fn shutdown(&self) -> Func;
}

/// A `subscriber`'s exports: `init`, `shutdown`, and the message handlers
/// called with borrowed records (see [`super::lowering`]).
pub(crate) struct SubscriberExports {
    init: Func,
    shutdown: Func,
    pub(super) handlers: HandlerFuncs,
}

impl WorldExports for SubscriberExports {
    const WORLD: World = World::Subscriber;

    fn load(
        store: &mut Store<PluginState>,
        instance: &wasmtime::component::Instance,
        iface: &str,
    ) -> wasmtime::Result<Self> {
        Ok(SubscriberExports {
            init: export_func(store, instance, iface, "init")?,
            shutdown: export_func(store, instance, iface, "shutdown")?,
            handlers: HandlerFuncs::load(store, instance, iface)?,
        })
    }

    fn init(&self) -> Func {
        self.init
    }
}

impl HasShutdown for SubscriberExports {
    fn shutdown(&self) -> Func {
        self.shutdown
    }
}

/// An `alert-escalator`'s exports.
pub(crate) struct EscalatorExports {
    init: Func,
    pub(super) on_alert: Func,
    pub(super) tick: Func,
    shutdown: Func,
}

impl WorldExports for EscalatorExports {
    const WORLD: World = World::AlertEscalator;

    fn load(
        store: &mut Store<PluginState>,
        instance: &wasmtime::component::Instance,
        iface: &str,
    ) -> wasmtime::Result<Self> {
        let mut f = |name: &str| export_func(store, instance, iface, name);
        Ok(EscalatorExports {
            init: f("init")?,
            on_alert: f("on-alert")?,
            tick: f("tick")?,
            shutdown: f("shutdown")?,
        })
    }

    fn init(&self) -> Func {
        self.init
    }
}

impl HasShutdown for EscalatorExports {
    fn shutdown(&self) -> Func {
        self.shutdown
    }
}

/// A `log-formatter`'s exports.
pub(crate) struct FormatterExports {
    init: Func,
    pub(super) format: Func,
    pub(super) format_batch: Func,
}

impl WorldExports for FormatterExports {
    const WORLD: World = World::LogFormatter;

    fn load(
        store: &mut Store<PluginState>,
        instance: &wasmtime::component::Instance,
        iface: &str,
    ) -> wasmtime::Result<Self> {
        let mut f = |name: &str| export_func(store, instance, iface, name);
        Ok(FormatterExports {
            init: f("init")?,
            format: f("format")?,
            format_batch: f("format-batch")?,
        })
    }

    fn init(&self) -> Func {
        self.init
    }
}
