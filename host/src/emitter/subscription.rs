//! What an emitter worker delivers, from where, and to whom.

pub use crate::store::Start;
use crate::store::{RecordedEvent, Selector};

/// A store subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSpec {
    /// The store.
    pub store: String,
    /// Which events.
    pub selector: Selector,
    /// Where to start without a checkpoint.
    pub start: Start,
    /// `Some(name)`: persistent — a durable checkpoint, advanced on
    /// acknowledgement, is resumed from after a restart. `None`: transient.
    pub name: Option<String>,
}

/// A batch for a native subscriber. Answer through `ack`: `Ok(())` when
/// every event was handled, `Err(i)` when event `i` failed (events before
/// it count as handled; delivery resumes at `i`).
#[derive(Debug)]
pub struct EmittedBatch {
    /// The events, in global order.
    pub events: Vec<RecordedEvent>,
    /// The acknowledgement.
    pub ack: tokio::sync::oneshot::Sender<Result<(), usize>>,
}

/// Who receives the events.
#[derive(Debug, Clone)]
pub enum Target {
    /// A native handler, named (for health tracking) and fed through a channel.
    Native {
        /// Its name.
        name: String,
        /// Where batches go; dropping the receiver stops the worker.
        sender: tokio::sync::mpsc::Sender<EmittedBatch>,
    },
    /// A loaded subscriber plugin.
    Plugin(String),
}

impl Target {
    /// The subscriber's name.
    pub fn name(&self) -> &str {
        match self {
            Target::Native { name, .. } | Target::Plugin(name) => name,
        }
    }
}
