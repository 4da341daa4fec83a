//! What [`Runtime::prepare`](crate::runtime::Runtime) returns: a
//! component checked against the world its manifest names, linked, with
//! the contract version it was built against — detected there, once per
//! plugin version, and carried to every instance started from it.

use std::marker::PhantomData;

use wasmtime::component::InstancePre;

use super::exports::{EscalatorExports, FormatterExports, SubscriberExports, WorldExports};
use crate::runtime::contract::Contract;
use crate::runtime::manifest::World;
use crate::runtime::state::PluginState;

/// A component linked and checked against world `W`, with the contract it
/// was built against: what every instance of one plugin version starts
/// from.
pub(crate) struct Pre<W> {
    pub(super) pre: InstancePre<PluginState>,
    contract: Contract,
    /// `contract`'s interface of `W` (`exesdb:plugin/handler@0.2.0`, …).
    pub(super) iface: String,
    world: PhantomData<fn() -> W>,
}

impl<W: WorldExports> Pre<W> {
    fn new(pre: InstancePre<PluginState>, contract: Contract) -> Pre<W> {
        Pre {
            pre,
            contract,
            iface: contract.export(W::WORLD),
            world: PhantomData,
        }
    }
}

/// A prepared component, of the world its manifest names.
pub(crate) enum Prepared {
    /// A subscriber or an escalator, run by a worker.
    Worker(WorkerPre),
    /// A log formatter, called by the console.
    Formatter(Pre<FormatterExports>),
}

impl Prepared {
    /// `pre`, a component checked to export `world`'s interface in
    /// `contract`.
    pub(crate) fn new(world: World, pre: InstancePre<PluginState>, contract: Contract) -> Prepared {
        match world {
            World::Subscriber => Prepared::Worker(WorkerPre::Subscriber(Pre::new(pre, contract))),
            World::AlertEscalator => {
                Prepared::Worker(WorkerPre::Escalator(Pre::new(pre, contract)))
            }
            World::LogFormatter => Prepared::Formatter(Pre::new(pre, contract)),
        }
    }

    /// The contract version the component was built against.
    pub(crate) fn contract(&self) -> Contract {
        match self {
            Prepared::Worker(WorkerPre::Subscriber(p)) => p.contract,
            Prepared::Worker(WorkerPre::Escalator(p)) => p.contract,
            Prepared::Formatter(p) => p.contract,
        }
    }
}

/// The version a worker runs: a subscriber's or an escalator's.
pub(crate) enum WorkerPre {
    /// A subscriber.
    Subscriber(Pre<SubscriberExports>),
    /// An alert escalator.
    Escalator(Pre<EscalatorExports>),
}
