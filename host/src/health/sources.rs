//! What the health layer reads from the layers above it, as traits: those
//! layers implement them and `host` (the one place that wires) hands them to
//! the [`Reporter`](super::Reporter) and the [`Announcer`](super::Announcer),
//! so that `health` never names a module above it.
//!
//! - [`StoreTrackers`]: the open stores and each store's [`HealthTracker`]
//!   (implemented by the store registry, `emitter::Stores`);
//! - [`ComponentReport`]: one component's `ComponentHealth` as of now
//!   (implemented by `runtime::Plugins`, component `runtime`).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::HealthTracker;
use crate::messages::health::HealthStatus;
use crate::store::Store;

/// The stores whose health is reported: their trackers, and the stores
/// themselves for the report's checks.
pub trait StoreTrackers: Send + Sync {
    /// Every store's subscription health tracker, by store id.
    fn trackers(&self) -> Vec<Arc<HealthTracker>>;

    /// The stores open now, by id.
    fn open_stores(&self) -> Vec<Store>;
}

/// A component whose health the periodic report publishes as a
/// `ComponentHealth` on `component_health:<component>`.
pub trait ComponentReport: Send + Sync {
    /// The component's name (`runtime`, …).
    fn component(&self) -> &str;

    /// Its status and details as of now.
    fn component_health(&self) -> (HealthStatus, Map<String, Value>);
}
