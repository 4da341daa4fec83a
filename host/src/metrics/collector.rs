//! The metrics collector of one store: counts the store's events, samples
//! its subscriptions' histograms and inboxes, and publishes them on
//! `metrics`.
//!
//! Hot-path cost: one relaxed atomic add per appended event (counted where
//! the store announces it) and, per delivery, one histogram record per
//! message plus one for the call time. Everything else happens at the
//! publishing interval.
//!
//! The store's events are the events appended to it, which the host
//! announces on the `events` channel as `<store>:<stream>`; messages that a
//! plugin or the helpers publish on `events` are not stored, and are not
//! counted as any store's events.
//!
//! Its subscriptions are the ones users made: plugins' bus subscriptions
//! (registered by the runtime, on the default store's collector), native bus
//! subscribers that [`register`](MetricsCollector::register), and every
//! store subscription (emitter worker, plugin or native) on this store. The
//! host's own bus subscribers (watchers, the log bridge, …) are not counted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::histogram::{HistogramCounts, LatencyHistogram, LatencySnapshot};
use crate::bus::Bus;
use crate::integration::{send_now, topics};
use crate::logging::lines::metrics_summary;
use crate::messages::metrics::{LatencyMetric, Percentile, PerformanceMetric, ThroughputMetric};
use crate::messages::tracking::MetricsSummary;

/// The `component` of the store-wide `PerformanceMetric`s
/// (`active_subscriptions`, `queue_depth`, `dropped`).
pub const SUBSCRIPTIONS: &str = "subscriptions";

/// `📈 METRICS EVENT: my_store -> events_per_second=1250 @2025-07-27T11:30:00Z`:
/// logged by [`MetricsCollector::publish`].
fn metrics_event(store: &str, metric: &str, value: &str, at_rfc3339: &str) -> String {
    format!("📈 METRICS EVENT: {store} -> {metric}={value} @{at_rfc3339}")
}

/// Width of the sliding window for events per second.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Histograms of one subscription, fed by its deliverers.
#[derive(Debug, Default)]
pub struct SubscriptionMetrics {
    /// Per message: publish → handled (bus), append → handled (store).
    pub latency: LatencyHistogram,
    /// Duration of each handler call (a plugin call, or a native handler's
    /// answer to a batch).
    pub call_time: LatencyHistogram,
    /// Events acknowledged through this store's subscriptions (emitter
    /// workers); bus deliveries are counted by the bus.
    pub acked: AtomicU64,
    /// The call times of the intervals taken so far, so that
    /// [`call_time_total`](Self::call_time_total) covers every call.
    call_time_taken: Mutex<HistogramCounts>,
}

impl SubscriptionMetrics {
    /// The call times since the previous take (the interval's), reset.
    pub fn take_call_time(&self) -> LatencySnapshot {
        let mut taken = self.call_time_taken.lock();
        let interval = self.call_time.take_counts();
        taken.add(&interval);
        interval.summary()
    }

    /// Every call time since the subscription was registered, intervals
    /// already taken included (cumulative, for `GET /metrics`).
    pub fn call_time_total(&self) -> HistogramCounts {
        let taken = self.call_time_taken.lock();
        let mut total = taken.clone();
        total.add(&self.call_time.counts());
        total
    }
}

/// One subscription's figures for an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionFigures {
    /// The subscription (its subscriber's name).
    pub name: String,
    /// Whether it has a live bus subscription (registered with
    /// [`MetricsCollector::register`] and, if its bus subscriber is alive,
    /// listening on at least one pattern).
    pub bus: bool,
    /// How many emitter workers deliver this store's events to it.
    pub store_subscriptions: u64,
    /// Messages put into its inbox since start plus store events it
    /// acknowledged.
    pub delivered: u64,
    /// `delivered` per second over the interval.
    pub events_per_second: f64,
    /// Messages waiting in its inbox now.
    pub queue_depth: u64,
    /// Messages evicted from its inbox since start.
    pub dropped: u64,
    /// Publish (or append) → handled latency over the interval.
    pub latency: LatencySnapshot,
    /// Handler call time over the interval.
    pub call_time: LatencySnapshot,
}

/// A store's figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreFigures {
    /// The store.
    pub store: String,
    /// The store's events since the collector started.
    pub total_events: u64,
    /// Events since the previous sample.
    pub delta: u64,
    /// Time since the previous sample.
    pub elapsed: Duration,
    /// Events per second over the sliding window.
    pub events_per_second: f64,
    /// Subscriptions users made on this store: live bus subscriptions
    /// registered here plus emitter workers (see the module docs).
    pub active_subscriptions: u64,
    /// Messages waiting in this store's subscriptions' inboxes.
    pub queue_depth: u64,
    /// Messages evicted by `drop_oldest` from those inboxes.
    pub dropped: u64,
    /// Per subscription, over the interval.
    pub subscriptions: Vec<SubscriptionFigures>,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            metrics: Arc::default(),
            bus: false,
            emitters: BTreeSet::new(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    metrics: Arc<SubscriptionMetrics>,
    /// Registered as a bus subscription.
    bus: bool,
    /// Ids of the emitter workers delivering to it.
    emitters: BTreeSet<String>,
}

/// Collects and publishes one store's metrics.
#[derive(Debug)]
pub struct MetricsCollector {
    store: String,
    bus: Bus,
    events: AtomicU64,
    /// Duration of each successful append to the store (never reset).
    append_time: LatencyHistogram,
    subs: Mutex<BTreeMap<String, Entry>>,
    samples: Mutex<VecDeque<(Instant, u64)>>,
    /// Each subscription's delivered count at the previous sample.
    last_delivered: Mutex<BTreeMap<String, u64>>,
}

impl MetricsCollector {
    /// A collector for `store`; its window starts now.
    pub fn new(store: &str, bus: Bus) -> Arc<MetricsCollector> {
        Arc::new(MetricsCollector {
            store: store.to_owned(),
            bus,
            events: AtomicU64::new(0),
            append_time: LatencyHistogram::new(),
            subs: Mutex::default(),
            samples: Mutex::new(VecDeque::from([(Instant::now(), 0)])),
            last_delivered: Mutex::default(),
        })
    }

    /// The store.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// Counts `n` events appended to the store (called where they are
    /// announced).
    pub fn record_events(&self, n: u64) {
        self.events.fetch_add(n, Ordering::Relaxed);
    }

    /// The store's events counted since start.
    pub fn total_events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Records how long one successful append took.
    pub fn record_append(&self, took: Duration) {
        self.append_time.record(took);
    }

    /// The durations of every successful append since start.
    pub fn append_times(&self) -> HistogramCounts {
        self.append_time.counts()
    }

    /// The histograms of subscription `name`, if it is registered here.
    pub fn subscription(&self, name: &str) -> Option<Arc<SubscriptionMetrics>> {
        self.subs.lock().get(name).map(|e| Arc::clone(&e.metrics))
    }

    /// Registers the bus subscription `name` and returns its histograms
    /// (the same ones for every registration of that name, store
    /// subscriptions of the same subscriber included).
    pub fn register(&self, name: &str) -> Arc<SubscriptionMetrics> {
        let mut subs = self.subs.lock();
        let e = subs.entry(name.to_owned()).or_insert_with(Entry::new);
        e.bus = true;
        Arc::clone(&e.metrics)
    }

    /// Ends the bus subscription `name` (its store subscriptions, if any,
    /// stay).
    pub fn remove(&self, name: &str) {
        let mut subs = self.subs.lock();
        if let Some(e) = subs.get_mut(name) {
            e.bus = false;
            if e.emitters.is_empty() {
                subs.remove(name);
            }
        }
    }

    /// Registers emitter worker `worker` delivering this store's events to
    /// subscriber `name`; returns the subscriber's histograms.
    pub fn register_store_subscription(
        &self,
        worker: &str,
        name: &str,
    ) -> Arc<SubscriptionMetrics> {
        let mut subs = self.subs.lock();
        let e = subs.entry(name.to_owned()).or_insert_with(Entry::new);
        e.emitters.insert(worker.to_owned());
        Arc::clone(&e.metrics)
    }

    /// Forgets emitter worker `worker` of subscriber `name`.
    pub fn remove_store_subscription(&self, worker: &str, name: &str) {
        let mut subs = self.subs.lock();
        if let Some(e) = subs.get_mut(name) {
            e.emitters.remove(worker);
            if e.emitters.is_empty() && !e.bus {
                subs.remove(name);
            }
        }
    }

    /// Samples everything; per-subscription histograms restart.
    pub fn sample(&self) -> StoreFigures {
        let now = Instant::now();
        let total = self.events.load(Ordering::Relaxed);
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
        let stats = self.bus.stats();
        let secs = elapsed.as_secs_f64();
        let subs = self.subs.lock();
        let mut last = self.last_delivered.lock();
        last.retain(|name, _| subs.contains_key(name));
        let mut active = 0;
        let subscriptions: Vec<SubscriptionFigures> = subs
            .iter()
            .map(|(name, e)| {
                let bus_stats = stats.iter().find(|s| e.bus && &s.name == name);
                let bus = e.bus && bus_stats.is_none_or(|s| !s.subscriptions.is_empty());
                active += u64::from(bus) + e.emitters.len() as u64;
                let delivered =
                    bus_stats.map_or(0, |s| s.delivered) + e.metrics.acked.load(Ordering::Relaxed);
                let before = last.insert(name.clone(), delivered).unwrap_or(0);
                SubscriptionFigures {
                    name: name.clone(),
                    bus,
                    store_subscriptions: e.emitters.len() as u64,
                    delivered,
                    events_per_second: if secs > 0.0 {
                        delivered.saturating_sub(before) as f64 / secs
                    } else {
                        0.0
                    },
                    queue_depth: bus_stats.map_or(0, |s| s.queue_depth as u64),
                    dropped: bus_stats.map_or(0, |s| s.dropped),
                    latency: e.metrics.latency.take(),
                    call_time: e.metrics.take_call_time(),
                }
            })
            .collect();
        drop((last, subs));
        StoreFigures {
            store: self.store.clone(),
            total_events: total,
            delta,
            elapsed,
            events_per_second: eps,
            active_subscriptions: active,
            queue_depth: subscriptions.iter().map(|s| s.queue_depth).sum(),
            dropped: subscriptions.iter().map(|s| s.dropped).sum(),
            subscriptions,
        }
    }

    /// Samples and publishes: `ThroughputMetric`, `LatencyMetric`s and
    /// `PerformanceMetric`s on `store_metrics:<store>`, a `MetricsSummary`
    /// on `metrics_summary:<store>`; logs the spec's two lines.
    pub fn publish(&self) -> StoreFigures {
        let f = self.sample();
        let topic = topics::store_metrics(&self.store);
        let eps = f.events_per_second.round() as u64;
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        tracing::info!(
            class = "action",
            "{}",
            metrics_event(&self.store, "events_per_second", &eps.to_string(), &at)
        );
        send_now(
            &self.bus,
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
                send_now(
                    &self.bus,
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
            SUBSCRIPTIONS,
        );
        self.perf(
            &topic,
            "queue_depth",
            f.queue_depth as f64,
            "count",
            SUBSCRIPTIONS,
        );
        self.perf(&topic, "dropped", f.dropped as f64, "count", SUBSCRIPTIONS);
        tracing::info!(
            class = "action",
            "{}",
            metrics_summary(&self.store, eps, f.total_events, f.active_subscriptions)
        );
        send_now(
            &self.bus,
            &topics::metrics_summary(&self.store),
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
        let mut tags = serde_json::Map::new();
        tags.insert("store".into(), self.store.clone().into());
        send_now(
            &self.bus,
            topic,
            &PerformanceMetric {
                metric_name: name.to_owned(),
                value,
                unit: unit.to_owned(),
                component: component.to_owned(),
                tags,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BusConfig, Channel};

    #[test]
    fn metrics_event_line() {
        assert_eq!(
            metrics_event(
                "my_store",
                "events_per_second",
                "1250",
                "2025-07-27T11:30:00Z"
            ),
            "📈 METRICS EVENT: my_store -> events_per_second=1250 @2025-07-27T11:30:00Z"
        );
    }

    #[test]
    fn active_subscriptions_are_the_ones_users_made() {
        let bus = Bus::new(BusConfig::default());
        let c = MetricsCollector::new("s1", bus.clone());
        // The host's own bus subscribers are not subscriptions users made.
        let watcher = bus.subscriber("watcher").unwrap();
        watcher.subscribe(Channel::Health, ">").unwrap();
        assert_eq!(c.sample().active_subscriptions, 0);

        // A plugin's bus subscription (registered by the runtime) …
        let plugin = bus.subscriber("projector").unwrap();
        plugin.subscribe(Channel::Events, "s1:>").unwrap();
        c.register("projector");
        // … two store subscriptions of the same plugin, one of a native handler.
        let m = c.register_store_subscription("emitter-1", "projector");
        assert!(Arc::ptr_eq(&m, &c.register("projector")), "same histograms");
        c.register_store_subscription("emitter-2", "projector");
        c.register_store_subscription("emitter-3", "native");
        // A subscriber plugin listening on nothing has no bus subscription.
        let idle = bus.subscriber("idle").unwrap();
        c.register("idle");
        let f = c.sample();
        assert_eq!(f.active_subscriptions, 4, "{f:?}");
        let by = |n: &str| f.subscriptions.iter().find(|s| s.name == n).unwrap();
        assert_eq!(
            (by("projector").bus, by("projector").store_subscriptions),
            (true, 2)
        );
        assert_eq!(
            (by("native").bus, by("native").store_subscriptions),
            (false, 1)
        );
        assert!(!by("idle").bus);

        // Acknowledged store events count as delivered.
        m.acked.fetch_add(7, Ordering::Relaxed);
        let f = c.sample();
        let projector = f.subscriptions.iter().find(|s| s.name == "projector");
        assert_eq!(projector.unwrap().delivered, 7, "{f:?}");

        // Unloading the plugin ends its bus subscription; its store
        // subscriptions go when their workers stop.
        c.remove("projector");
        assert_eq!(c.sample().active_subscriptions, 3);
        c.remove_store_subscription("emitter-1", "projector");
        c.remove_store_subscription("emitter-2", "projector");
        c.remove_store_subscription("emitter-3", "native");
        c.remove("idle");
        let f = c.sample();
        assert_eq!(f.active_subscriptions, 0);
        assert!(f.subscriptions.is_empty(), "{f:?}");
        drop((watcher, plugin, idle));
    }

    #[test]
    fn call_time_total_outlives_the_intervals() {
        let bus = Bus::new(BusConfig::default());
        let c = MetricsCollector::new("s1", bus.clone());
        let m = c.register("plugin");
        assert!(Arc::ptr_eq(&m, &c.subscription("plugin").unwrap()));
        assert!(c.subscription("other").is_none());
        m.call_time.record_micros(100);
        m.call_time.record_micros(200);
        let f = c.sample();
        assert_eq!(f.subscriptions[0].call_time.count, 2, "{f:?}");
        m.call_time.record_micros(300);
        // The interval restarted; the total did not.
        assert_eq!(m.call_time.snapshot().count, 1);
        let total = m.call_time_total();
        assert_eq!((total.samples(), total.sum_us()), (3, 600));
        assert_eq!(c.sample().subscriptions[0].call_time.count, 1);
        assert_eq!(m.call_time_total().samples(), 3);

        c.record_append(Duration::from_micros(50));
        c.record_append(Duration::from_millis(2));
        let appends = c.append_times();
        assert_eq!((appends.samples(), appends.sum_us()), (2, 2_050));
    }

    #[test]
    fn counts_only_the_events_recorded_for_its_store() {
        let bus = Bus::new(BusConfig::default());
        let c = MetricsCollector::new("s1", bus.clone());
        c.record_events(3);
        c.record_events(2);
        let f = c.sample();
        assert_eq!((f.store.as_str(), f.total_events, f.delta), ("s1", 5, 5));
        assert_eq!(c.sample().delta, 0);
        assert_eq!(c.total_events(), 5);
    }
}
