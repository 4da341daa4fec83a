//! Metrics: cheap counters on the hot path, published on the `metrics` channel.
//!
//! A [`MetricsCollector`] per store (made with the store, see
//! [`Stores`](crate::emitter::Stores)) counts the store's appended events and
//! samples its subscriptions' histograms ([`histogram`]); every
//! `[metrics] interval_ms` the [`Publisher`] publishes each store's
//! `store_metrics:<store>` and `metrics_summary:<store>`, a
//! `PerformanceAnalysis`, the host's `ResourceUsage` and the `LogSummary`s.
//!
//! The [`Publisher`] reads the stores through [`StoreCollectors`]
//! (implemented by `emitter::Stores`, wired by `host`); topics are built
//! with [`crate::integration::topics`].

mod collector;
pub mod histogram;
mod publisher;
mod settings;
pub mod sources;

pub use collector::{
    MetricsCollector, StoreFigures, SubscriptionFigures, SubscriptionMetrics, RATE_WINDOW,
    SUBSCRIPTIONS,
};
pub use publisher::{analyse, IntervalReport, Publisher, ANALYSED, FULL_INBOX, SLOW_CALL, TOP};
pub use settings::MetricsConfig;
pub use sources::StoreCollectors;
