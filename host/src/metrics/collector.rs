//! The metrics collector of one store: samples the bus's counters and the
//! per-subscription histograms, and publishes them on `metrics`.
//!
//! Hot-path cost: one relaxed atomic add per publish (the bus's per-channel
//! counter) and, per plugin call, one histogram record per message plus one
//! for the call time. Everything else happens at the publishing interval.
//!
//! The store's events are the messages published on the `events` channel.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::histogram::{LatencyHistogram, LatencySnapshot};
use crate::bus::{Bus, Channel};
use crate::logging::format;
use crate::messages::metrics::{LatencyMetric, Percentile, PerformanceMetric, ThroughputMetric};
use crate::messages::tracking::MetricsSummary;

/// Width of the sliding window for events per second.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Histograms of one subscription, fed by its deliverer.
#[derive(Debug, Default)]
pub struct SubscriptionMetrics {
    /// Publish → handled, per message.
    pub latency: LatencyHistogram,
    /// Duration of each plugin call.
    pub call_time: LatencyHistogram,
}

/// One subscription's figures for an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionFigures {
    /// The subscription.
    pub name: String,
    /// Messages put into its inbox since start.
    pub delivered: u64,
    /// Messages put into its inbox per second over the interval.
    pub events_per_second: f64,
    /// Messages waiting in its inbox now.
    pub queue_depth: u64,
    /// Messages evicted from its inbox since start.
    pub dropped: u64,
    /// Publish → handled latency over the interval.
    pub latency: LatencySnapshot,
    /// Plugin call time over the interval.
    pub call_time: LatencySnapshot,
}

/// A store's figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreFigures {
    /// Events since start.
    pub total_events: u64,
    /// Events since the previous sample.
    pub delta: u64,
    /// Time since the previous sample.
    pub elapsed: Duration,
    /// Events per second over the sliding window.
    pub events_per_second: f64,
    /// Live subscribers on the bus.
    pub active_subscriptions: u64,
    /// Messages waiting in all inboxes.
    pub queue_depth: u64,
    /// Messages evicted by `drop_oldest`, all inboxes.
    pub dropped: u64,
    /// Per subscription, over the interval.
    pub subscriptions: Vec<SubscriptionFigures>,
}

/// Collects and publishes one store's metrics.
#[derive(Debug)]
pub struct MetricsCollector {
    store: String,
    bus: Bus,
    subs: Mutex<BTreeMap<String, Arc<SubscriptionMetrics>>>,
    samples: Mutex<VecDeque<(Instant, u64)>>,
    /// Each subscription's delivered count at the previous sample.
    last_delivered: Mutex<BTreeMap<String, u64>>,
}

impl MetricsCollector {
    /// A collector for `store`; its window starts now.
    pub fn new(store: &str, bus: Bus) -> Arc<MetricsCollector> {
        let first = (Instant::now(), bus.published(Channel::Events));
        Arc::new(MetricsCollector {
            store: store.to_owned(),
            bus,
            subs: Mutex::default(),
            samples: Mutex::new(VecDeque::from([first])),
            last_delivered: Mutex::default(),
        })
    }

    /// The store.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// The histograms for subscription `name` (created on first use).
    pub fn register(&self, name: &str) -> Arc<SubscriptionMetrics> {
        Arc::clone(self.subs.lock().entry(name.to_owned()).or_default())
    }

    /// Forgets a subscription.
    pub fn remove(&self, name: &str) {
        self.subs.lock().remove(name);
    }

    /// Samples everything; per-subscription histograms restart.
    pub fn sample(&self) -> StoreFigures {
        let now = Instant::now();
        let total = self.bus.published(Channel::Events);
        let (delta, elapsed, eps) = {
            let mut samples = self.samples.lock();
            let &(prev_t, prev_n) = samples.back().expect("at least one sample");
            samples.push_back((now, total));
            while samples.len() > 2 && now.duration_since(samples[1].0) >= RATE_WINDOW {
                samples.pop_front();
            }
            let (t0, n0) = samples[0];
            let span = now.duration_since(t0).as_secs_f64();
            let eps = if span > 0.0 {
                (total - n0) as f64 / span
            } else {
                0.0
            };
            (total - prev_n, now.duration_since(prev_t), eps)
        };
        self.last_delivered
            .lock()
            .retain(|name, _| self.subs.lock().contains_key(name));
        let stats = self.bus.stats();
        let mut last = self.last_delivered.lock();
        let secs = elapsed.as_secs_f64();
        let subscriptions = self
            .subs
            .lock()
            .iter()
            .map(|(name, m)| {
                let bus_stats = stats.iter().find(|s| &s.name == name);
                let delivered = bus_stats.map_or(0, |s| s.delivered);
                let before = last.insert(name.clone(), delivered).unwrap_or(0);
                SubscriptionFigures {
                    name: name.clone(),
                    delivered,
                    events_per_second: if secs > 0.0 {
                        delivered.saturating_sub(before) as f64 / secs
                    } else {
                        0.0
                    },
                    queue_depth: bus_stats.map_or(0, |s| s.queue_depth as u64),
                    dropped: bus_stats.map_or(0, |s| s.dropped),
                    latency: m.latency.take(),
                    call_time: m.call_time.take(),
                }
            })
            .collect();
        drop(last);
        StoreFigures {
            total_events: total,
            delta,
            elapsed,
            events_per_second: eps,
            active_subscriptions: stats.len() as u64,
            queue_depth: stats.iter().map(|s| s.queue_depth as u64).sum(),
            dropped: stats.iter().map(|s| s.dropped).sum(),
            subscriptions,
        }
    }

    /// Samples and publishes: `ThroughputMetric`, `LatencyMetric`s and
    /// `PerformanceMetric`s on `store_metrics:<store>`, a `MetricsSummary`
    /// on `metrics_summary:<store>`; logs the spec's two lines.
    pub fn publish(&self) -> StoreFigures {
        let f = self.sample();
        let topic = format!("store_metrics:{}", self.store);
        let eps = f.events_per_second.round() as u64;
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        tracing::info!(
            class = "action",
            "{}",
            format::metrics_event(&self.store, "events_per_second", &eps.to_string(), &at)
        );
        self.send(
            &topic,
            &ThroughputMetric {
                operation: "events".into(),
                count: f.delta,
                duration_ms: f.elapsed.as_millis() as u64,
                rate_per_sec: if f.elapsed.is_zero() {
                    0.0
                } else {
                    f.delta as f64 / f.elapsed.as_secs_f64()
                },
            },
        );
        for s in f.subscriptions.iter().filter(|s| !s.latency.is_empty()) {
            for (percentile, us) in [
                (Percentile::P50, s.latency.p50_us),
                (Percentile::P95, s.latency.p95_us),
                (Percentile::P99, s.latency.p99_us),
                (Percentile::Max, s.latency.max_us),
            ] {
                self.send(
                    &topic,
                    &LatencyMetric {
                        operation: format!("delivery:{}", s.name),
                        latency_ms: us as f64 / 1000.0,
                        percentile,
                        sample_count: s.latency.count,
                    },
                );
            }
        }
        for s in f.subscriptions.iter().filter(|s| !s.call_time.is_empty()) {
            self.perf(
                &topic,
                "plugin_call_time_p99",
                s.call_time.p99_us as f64 / 1000.0,
                "ms",
                &s.name,
            );
        }
        self.perf(
            &topic,
            "active_subscriptions",
            f.active_subscriptions as f64,
            "count",
            "bus",
        );
        self.perf(&topic, "queue_depth", f.queue_depth as f64, "count", "bus");
        self.perf(&topic, "dropped", f.dropped as f64, "count", "bus");
        tracing::info!(
            class = "action",
            "{}",
            format::metrics_summary(&self.store, eps, f.total_events, f.active_subscriptions)
        );
        self.send(
            &format!("metrics_summary:{}", self.store),
            &MetricsSummary {
                store: self.store.clone(),
                events_per_second: f.events_per_second,
                total_events: f.total_events,
                active_subscriptions: f.active_subscriptions,
                queue_depth: f.queue_depth,
                dropped: f.dropped,
            },
        );
        f
    }

    fn perf(&self, topic: &str, name: &str, value: f64, unit: &str, component: &str) {
        self.send(
            topic,
            &PerformanceMetric {
                metric_name: name.to_owned(),
                value,
                unit: unit.to_owned(),
                component: component.to_owned(),
                tags: serde_json::Map::new(),
            },
        );
    }

    fn send<K: crate::messages::MessageKind>(&self, topic: &str, payload: &K) {
        if let Err(e) = self.bus.publish_typed_now(topic, payload) {
            tracing::warn!("{} not published on {topic}: {e}", K::KIND);
        }
    }
}
