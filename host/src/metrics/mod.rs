//! Metrics: cheap counters on the hot path, published on the `metrics` channel.
//!
//! [`MetricsCollector`] samples the bus's per-channel counters and the
//! per-subscription histograms ([`histogram`]) at `[metrics] interval_ms` and
//! publishes `store_metrics:<store>` and `metrics_summary:<store>`.

mod collector;
pub mod histogram;
pub mod rate;

pub use collector::{
    MetricsCollector, StoreFigures, SubscriptionFigures, SubscriptionMetrics, RATE_WINDOW,
};
