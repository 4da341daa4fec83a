//! What the metrics layer reads from the layers above it, as a trait: the
//! store registry (`emitter::Stores`) implements it and `host` (the one
//! place that wires) hands it to the [`Publisher`](super::Publisher), so that
//! `metrics` never names a module above it.

use std::sync::Arc;

use super::MetricsCollector;

/// The stores whose metrics are published: each store's collector and the
/// space the stores take on disk.
pub trait StoreCollectors: Send + Sync {
    /// Every store's metrics collector, by store id.
    fn collectors(&self) -> Vec<Arc<MetricsCollector>>;

    /// Bytes the open stores' files take on disk.
    fn disk_bytes(&self) -> u64;
}
