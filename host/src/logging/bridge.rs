//! Publishes every log record as a `LogEntry` on the `logging` channel,
//! topic `log:<level>` ([`topics::log`](crate::integration::topics::log)).
//!
//! Loops are impossible: while the bridge publishes, any record emitted on
//! the same thread (by the bus, or by a subscriber reacting synchronously)
//! is not bridged again. Publishing never waits: a full `backpressure`
//! subscriber of `logging` misses the entry and the miss is counted.
//!
//! Every record the bridge sees is also counted, by level and module, into
//! its [`LogStats`] (whether or not a bus is attached), for the periodic
//! `LogSummary`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

use super::console::{level_of, Record};
use super::summary::{module_of, LogStats};
use crate::bus::{Bus, Channel};
use crate::messages::Envelope;

thread_local! {
    static BRIDGING: Cell<bool> = const { Cell::new(false) };
}

/// The bus the bridge publishes to; settable after the subscriber is installed.
#[derive(Debug, Clone, Default)]
pub struct BridgeHandle {
    bus: Arc<RwLock<Option<Bus>>>,
    missed: Arc<AtomicU64>,
    stats: Arc<LogStats>,
}

impl BridgeHandle {
    /// Starts publishing log records on `bus`.
    pub fn attach(&self, bus: &Bus) {
        *self.bus.write() = Some(bus.clone());
    }

    /// Stops publishing on `bus` (if it is the attached one).
    pub fn detach(&self, bus: &Bus) {
        let mut slot = self.bus.write();
        if slot.as_ref().is_some_and(|b| b.node() == bus.node()) {
            *slot = None;
        }
    }

    /// Entries that could not be published (a full lossless subscriber).
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// The counts of the records seen, by level and module.
    pub fn stats(&self) -> &Arc<LogStats> {
        &self.stats
    }

    /// Publishes one record; used by the layer and by plugin `log` calls.
    pub(crate) fn publish(
        &self,
        level: crate::messages::logging::LogLevel,
        target: &str,
        rec: &Record,
    ) {
        if BRIDGING.with(Cell::get) {
            return;
        }
        let plugin = rec.fields.get("plugin").and_then(|p| p.as_str());
        self.stats
            .record(level, &module_of(target, plugin), &rec.message);
        let Some(bus) = self.bus.read().clone() else {
            return;
        };
        BRIDGING.with(|b| b.set(true));
        let entry = super::to_log_entry(level, target, rec);
        let topic = crate::integration::topics::log(level);
        let payload = serde_json::to_value(&entry).unwrap_or_default();
        let env = Envelope::new(Channel::Logging, topic, "LogEntry", payload, bus.node());
        if bus.publish_now(env).is_err() {
            self.missed.fetch_add(1, Ordering::Relaxed);
        }
        BRIDGING.with(|b| b.set(false));
    }
}

/// The `tracing` layer that feeds the bridge.
#[derive(Debug, Clone)]
pub struct BridgeLayer {
    handle: BridgeHandle,
}

impl BridgeLayer {
    /// A layer publishing through `handle`.
    pub fn new(handle: BridgeHandle) -> BridgeLayer {
        BridgeLayer { handle }
    }
}

impl<S: Subscriber> Layer<S> for BridgeLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if BRIDGING.with(Cell::get) {
            return;
        }
        let mut rec = Record::default();
        event.record(&mut rec);
        let meta = event.metadata();
        self.handle
            .publish(level_of(meta.level()), meta.target(), &rec);
    }
}
