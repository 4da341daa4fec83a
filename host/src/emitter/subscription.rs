//! What an emitter worker delivers, from where, and to whom.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::store::{RecordedEvent, Selector};

/// Where a subscription starts when it has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Start {
    /// The store's first event.
    Beginning,
    /// After the store's head at creation: only new events.
    Now,
    /// This global position.
    Position(u64),
}

impl FromStr for Start {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "beginning" => Ok(Start::Beginning),
            "now" => Ok(Start::Now),
            n => n.parse().map(Start::Position).map_err(|_| {
                format!("invalid start `{s}`: expected beginning, now or a global position")
            }),
        }
    }
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::Beginning => f.write_str("beginning"),
            Start::Now => f.write_str("now"),
            Start::Position(p) => write!(f, "{p}"),
        }
    }
}

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
