//! Monitoring, black-box: the metrics collector against known workloads
//! (counts, rates, latency percentiles), with a real plugin feeding the
//! histograms, and the host's periodic health and metrics reports — plus
//! `[health_monitoring] enabled = false` and `[metrics] enabled = false`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig, Channel, OverflowPolicy, Subscriber, SubscriberOptions};
use exesdb_host::config::Config;
use exesdb_host::emitter::{EmittedBatch, Start, Stores, SubscriptionSpec};
use exesdb_host::health::{Gate, HealthInput, HealthTracker};
use exesdb_host::host::Host;
use exesdb_host::messages::diagnostics::{AnalysisType, PerformanceAnalysis};
use exesdb_host::messages::health::{ComponentHealth, NodeHealth};
use exesdb_host::messages::metrics::{
    LatencyMetric, Percentile, PerformanceMetric, ResourceUsage, ThroughputMetric,
};
use exesdb_host::messages::tracking::{
    HealthEventType, HealthSummary, MetricsSummary, SubscriptionHealth, SubscriptionStatus,
};
use exesdb_host::messages::Envelope;
use exesdb_host::metrics::{MetricsCollector, SubscriptionFigures, SUBSCRIPTIONS};
use exesdb_host::runtime::Actor;
use exesdb_host::store::{Durability, ExpectedVersion, NewEvent, Selector};
use serde_json::json;

/// Everything already queued in `sub`'s inbox (the collector publishes
/// synchronously, so after `publish()` returns its messages are all there).
fn drain(sub: &Subscriber) -> Vec<Arc<Envelope>> {
    std::iter::from_fn(|| sub.try_recv()).collect()
}

/// The payloads of kind `K` among `envs`.
fn of_kind<K: exesdb_host::messages::MessageKind>(envs: &[Arc<Envelope>]) -> Vec<K> {
    envs.iter().filter_map(|e| e.decode::<K>().ok()).collect()
}

/// A custom event on `topic`.
fn event(bus: &Bus, topic: &str, n: u64) -> Envelope {
    Envelope::new(
        Channel::Events,
        topic,
        "custom.event",
        json!({ "n": n }),
        bus.node(),
    )
}

/// A subscriber on `events`/`pattern` that never loses a message.
fn lossless(bus: &Bus, name: &str, pattern: &str) -> Subscriber {
    let s = bus
        .subscriber_with(
            name,
            SubscriberOptions {
                capacity: None,
                policy: Some(OverflowPolicy::Backpressure),
            },
        )
        .unwrap();
    s.subscribe(Channel::Events, pattern).unwrap();
    s
}

/// Drains `sub` on a task until `n` messages arrived; returns it with the count.
fn drainer(sub: Subscriber, n: usize) -> tokio::task::JoinHandle<(Subscriber, usize)> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut got = 0;
        while got < n {
            buf.clear();
            let k = tokio::time::timeout(WAIT, sub.recv_many(&mut buf, 256))
                .await
                .expect("drainer starved");
            assert!(k > 0, "bus closed");
            got += k;
        }
        (sub, got)
    })
}

/// The host's config: the embedded default plus `EXESDB_*` overrides; the
/// admin API on an ephemeral port so hosts in parallel tests never collide.
fn host_config(vars: &[(&str, &str)]) -> Config {
    Config::load_with_env(
        None,
        vars.iter()
            .chain(&[("EXESDB_API__LISTEN", "127.0.0.1:0")])
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

fn subscription<'a>(figures: &'a [SubscriptionFigures], name: &str) -> &'a SubscriptionFigures {
    figures
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no figures for subscription {name}: {figures:?}"))
}

/// Asserts the documented percentile bound: `truth <= reported < 1.25 * truth`.
fn within_bound(reported_ms: f64, truth_ms: f64, what: &str) {
    assert!(
        reported_ms >= truth_ms && reported_ms < truth_ms * 1.25,
        "{what}: reported {reported_ms} ms for a true {truth_ms} ms"
    );
}

/// `n` events of one append.
fn batch(from: u64, n: u64) -> Vec<NewEvent> {
    (from..from + n)
        .map(|i| NewEvent::json("custom.event", json!({ "n": i })))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_workload_exactly() {
    const N: u64 = 10_000;
    const PER_APPEND: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new(BusConfig::default());
    let stores = Stores::new(dir.path(), Durability::Relaxed, bus.clone());
    let collector = stores.monitor("s1").unwrap().metrics;
    assert_eq!(collector.store(), "s1");
    let throughput = watch(&bus, Channel::Metrics, "store_metrics:s1");
    let summaries = watch(&bus, Channel::Metrics, "metrics_summary:s1");
    let sink = drainer(lossless(&bus, "sink", "s1:stream"), N as usize);

    for i in 0..N / PER_APPEND {
        stores
            .append(
                "s1",
                "stream",
                ExpectedVersion::Any,
                batch(i * PER_APPEND, PER_APPEND),
            )
            .await
            .unwrap();
    }
    // Not s1's events: another store's, and messages published on `events`
    // without being stored.
    stores
        .append("s2", "stream", ExpectedVersion::Any, batch(0, 7))
        .await
        .unwrap();
    bus.broadcast(event(&bus, "s1:elsewhere", 0)).await.unwrap();
    let (sink, drained) = sink.await.unwrap();
    assert_eq!(drained, N as usize);
    assert_eq!(sink.dropped(), 0);

    // Live subscribers on the bus (the sink and the two watchers) are the
    // host's, not subscriptions users made on the store.
    assert_eq!(bus.subscriber_count(), 3);

    let f = collector.publish();
    assert_eq!(f.store, "s1");
    assert_eq!(f.total_events, N, "{f:?}");
    assert_eq!(f.delta, N, "{f:?}");
    assert_eq!(f.active_subscriptions, 0, "{f:?}");
    assert_eq!((f.queue_depth, f.dropped), (0, 0), "{f:?}");
    assert!(f.events_per_second > 0.0, "{f:?}");
    assert!(f.subscriptions.is_empty(), "{f:?}");
    assert_eq!(
        stores.monitor("s2").unwrap().metrics.sample().total_events,
        7
    );

    let envs = drain(&throughput);
    let tp: Vec<ThroughputMetric> = of_kind(&envs);
    assert_eq!(tp.len(), 1, "{envs:?}");
    assert_eq!(tp[0].operation, "events");
    assert_eq!(tp[0].count, N);
    assert_eq!(tp[0].duration_ms, f.elapsed.as_millis() as u64);
    // The throughput covers the interval: count over its duration.
    assert_eq!(tp[0].rate_per_sec, f.delta as f64 / f.elapsed.as_secs_f64());
    assert!(of_kind::<LatencyMetric>(&envs).is_empty(), "{envs:?}");
    // The store-wide performance figures.
    let perf: Vec<PerformanceMetric> = of_kind(&envs);
    let value = |name: &str| {
        let p = perf
            .iter()
            .find(|p| p.metric_name == name && p.component == SUBSCRIPTIONS)
            .unwrap_or_else(|| panic!("no {name} in {perf:?}"));
        assert_eq!(p.tags["store"], "s1", "{p:?}");
        p.value
    };
    assert_eq!(value("active_subscriptions"), 0.0);
    assert_eq!(value("queue_depth"), 0.0);
    assert_eq!(value("dropped"), 0.0);

    let sums: Vec<MetricsSummary> = of_kind(&drain(&summaries));
    assert_eq!(sums.len(), 1, "{sums:?}");
    let s = &sums[0];
    assert_eq!(s.store, "s1");
    assert_eq!(s.total_events, N);
    assert_eq!(s.active_subscriptions, 0);
    assert_eq!(s.events_per_second, f.events_per_second);

    // No traffic since: nothing new, total unchanged (the collector's own
    // metrics messages are on `metrics`, not `events`).
    let again = collector.publish();
    assert_eq!(again.delta, 0, "{again:?}");
    assert_eq!(again.total_events, N, "{again:?}");
    let tp: Vec<ThroughputMetric> = of_kind(&drain(&throughput));
    assert_eq!(tp.len(), 1);
    assert_eq!(tp[0].count, 0);
    let sums: Vec<MetricsSummary> = of_kind(&drain(&summaries));
    assert_eq!(sums.len(), 1);
    assert_eq!(sums[0].total_events, N);
    drop(sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_per_second_matches_a_paced_workload() {
    const BATCHES: u64 = 20;
    const PER_BATCH: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new(BusConfig::default());
    let stores = Stores::new(dir.path(), Durability::Relaxed, bus.clone());
    // The collector's window starts when the store is opened.
    let start = Instant::now();
    let collector = stores.monitor("s1").unwrap().metrics;

    // 2,000 events spread evenly over ~1 s: 100 every 50 ms.
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut n = 0;
    for _ in 0..BATCHES {
        tick.tick().await;
        stores
            .append("s1", "stream", ExpectedVersion::Any, batch(n, PER_BATCH))
            .await
            .unwrap();
        n += PER_BATCH;
    }
    let f = collector.publish();
    let elapsed = start.elapsed();

    assert_eq!((f.total_events, f.delta), (n, n), "{f:?}");
    assert!(
        f.elapsed <= elapsed && f.elapsed >= Duration::from_millis(900),
        "collector elapsed {:?}, test elapsed {elapsed:?}",
        f.elapsed
    );
    let expected = n as f64 / elapsed.as_secs_f64();
    let ratio = f.events_per_second / expected;
    assert!(
        (0.65..=1.35).contains(&ratio),
        "events_per_second {} vs {expected:.1} measured by the test ({n} in {elapsed:?})",
        f.events_per_second
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_latencies_are_published_as_percentiles_then_reset() {
    let bus = Bus::new(BusConfig::default());
    let collector = MetricsCollector::new("s1", bus.clone());
    let metrics = watch(&bus, Channel::Metrics, "store_metrics:s1");

    let a = collector.register("sub-a");
    for _ in 0..100 {
        a.latency.record(Duration::from_millis(5));
    }
    for _ in 0..10 {
        a.call_time.record(Duration::from_millis(3));
    }
    // A spread: 1, 2, …, 100 ms; no call times.
    let b = collector.register("sub-b");
    for ms in 1..=100 {
        b.latency.record(Duration::from_millis(ms));
    }
    // Registering again hands out the same histograms.
    assert!(Arc::ptr_eq(&a, &collector.register("sub-a")));

    let f = collector.publish();
    let fa = subscription(&f.subscriptions, "sub-a");
    assert_eq!((fa.latency.count, fa.call_time.count), (100, 10));
    assert_eq!((fa.latency.min_us, fa.latency.max_us), (5_000, 5_000));
    assert_eq!(subscription(&f.subscriptions, "sub-b").latency.count, 100);

    let envs = drain(&metrics);
    let lat: Vec<LatencyMetric> = of_kind(&envs);
    let get = |sub: &str, p: Percentile| {
        let found: Vec<_> = lat
            .iter()
            .filter(|m| m.operation == format!("delivery:{sub}") && m.percentile == p)
            .collect();
        assert_eq!(found.len(), 1, "{p} of {sub}: {lat:?}");
        found[0].clone()
    };
    for p in [
        Percentile::P50,
        Percentile::P95,
        Percentile::P99,
        Percentile::Max,
    ] {
        let m = get("sub-a", p);
        assert_eq!(m.sample_count, 100, "{m:?}");
        within_bound(m.latency_ms, 5.0, &format!("sub-a {p}"));
        // Every sample is both the minimum and the maximum: exact.
        assert_eq!(m.latency_ms, 5.0, "{m:?}");
        assert_eq!(get("sub-b", p).sample_count, 100);
    }
    within_bound(get("sub-b", Percentile::P50).latency_ms, 50.0, "sub-b p50");
    within_bound(get("sub-b", Percentile::P95).latency_ms, 95.0, "sub-b p95");
    within_bound(get("sub-b", Percentile::P99).latency_ms, 99.0, "sub-b p99");
    assert_eq!(get("sub-b", Percentile::Max).latency_ms, 100.0);
    assert_eq!(lat.len(), 8, "{lat:?}");

    let perf: Vec<PerformanceMetric> = of_kind(&envs);
    let call: Vec<_> = perf
        .iter()
        .filter(|p| p.metric_name == "plugin_call_time_p99")
        .collect();
    assert_eq!(call.len(), 1, "only sub-a has call times: {perf:?}");
    assert_eq!(call[0].component, "sub-a");
    assert_eq!(call[0].unit, "ms");
    within_bound(call[0].value, 3.0, "sub-a call time p99");
    assert_eq!(call[0].value, 3.0);

    // The histograms restarted: nothing per subscription in the next interval.
    let next = collector.publish();
    for s in &next.subscriptions {
        assert!(s.latency.is_empty() && s.call_time.is_empty(), "{s:?}");
    }
    let envs = drain(&metrics);
    assert!(!envs.is_empty());
    assert!(of_kind::<LatencyMetric>(&envs).is_empty(), "{envs:?}");
    assert!(
        !of_kind::<PerformanceMetric>(&envs)
            .iter()
            .any(|p| p.metric_name == "plugin_call_time_p99"),
        "{envs:?}"
    );

    // A forgotten subscription disappears from the figures.
    collector.remove("sub-b");
    let names: Vec<_> = collector
        .publish()
        .subscriptions
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["sub-a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_feeds_its_latency_and_call_time_histograms() {
    const N: u64 = 500;
    let (bus, plugins) = setup();
    plugins
        .load(
            Actor::Operator,
            manifest("test-guest", "lat", |t| t["config"]["mode"] = "noop".into()),
            &wasm("test-guest"),
        )
        .unwrap();
    for n in 0..N {
        bus.broadcast(event(&bus, "store:orders", n)).await.unwrap();
    }
    let info = wait_status(&plugins, "lat", |s| s.delivered >= N).await;
    assert_eq!((info.delivered, info.failed), (N, 0), "{info:?}");

    // The worker records a batch's latencies before it counts the batch as
    // delivered, so one interval holds them all.
    let f = plugins.metrics().publish();
    let s = subscription(&f.subscriptions, "lat");
    let (latency, calls, max_us) = (s.latency.count, s.call_time.count, s.latency.max_us);
    assert_eq!(latency, N, "latency samples");
    assert_eq!((s.delivered, s.queue_depth, s.dropped), (N, 0, 0), "{s:?}");
    assert!(s.events_per_second > 0.0, "{s:?}");
    assert!(
        (1..=N).contains(&calls),
        "{calls} plugin calls for {N} events"
    );
    assert!(max_us < 10_000_000, "publish → handled took {max_us} µs");

    // Nothing more afterwards.
    let f = plugins.metrics().publish();
    let s = subscription(&f.subscriptions, "lat");
    assert!(s.latency.is_empty() && s.call_time.is_empty(), "{s:?}");
    plugins.unload_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_reports_health_and_metrics_every_interval() {
    let config = host_config(&[
        ("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "100"),
        ("EXESDB_METRICS__INTERVAL_MS", "100"),
        ("EXESDB_PLUGINS__BUNDLED", "false"),
    ]);
    assert_eq!(config.health_monitoring.check_interval, 100);
    assert_eq!(config.metrics.interval_ms, 100);
    let host = Host::start(config).await.unwrap();
    let bus = host.bus().clone();
    let summaries = watch(&bus, Channel::Health, "health_summary:default");
    let nodes = watch(&bus, Channel::Health, "node_health:>");
    let components = watch(&bus, Channel::Health, "component_health:>");
    let metrics = watch(&bus, Channel::Metrics, "metrics_summary:default");

    // Three summaries, about an interval apart (by their publish times).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut stamps = Vec::new();
    while stamps.len() < 3 {
        let env = tokio::time::timeout_at(deadline, summaries.recv())
            .await
            .unwrap_or_else(|_| panic!("{} health summaries within 2 s", stamps.len()))
            .unwrap();
        let s: HealthSummary = env.decode().unwrap();
        assert_eq!(s.store, "default");
        assert_eq!(s.total, 0, "{s:?}");
        stamps.push(env.timestamp);
    }
    for w in stamps.windows(2) {
        let gap = (w[1] - w[0]).num_milliseconds();
        assert!(gap >= 50, "summaries {gap} ms apart: {stamps:?}");
    }

    let n: NodeHealth = next(&nodes).await.decode().unwrap();
    assert_eq!(n.node, bus.node());
    assert!(n.load_avg >= 0.0 && n.load_avg.is_finite(), "{n:?}");
    assert!(n.memory_usage > 0.0 && n.memory_usage < 1.0, "{n:?}");
    assert!(n.disk_usage > 0.0 && n.disk_usage <= 1.0, "{n:?}");
    for check in ["memory", "disk", "load"] {
        assert!(n.checks.contains_key(check), "no {check} check: {n:?}");
    }

    let mut seen = BTreeSet::new();
    while seen.len() < 3 {
        let c: ComponentHealth = next(&components).await.decode().unwrap();
        assert!(
            ["bus", "runtime", "store"].contains(&c.component.as_str()),
            "{c:?}"
        );
        if c.component == "store" {
            let default = &c.details["stores"]["default"];
            assert_eq!(default["subscriptions"], 0, "{c:?}");
        }
        seen.insert(c.component);
    }

    let m: MetricsSummary = next(&metrics).await.decode().unwrap();
    assert_eq!(m.store, "default");
    assert_eq!(m.active_subscriptions, 0, "watchers are not counted: {m:?}");

    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_health_monitoring_publishes_nothing_and_never_gates() {
    let config = host_config(&[
        ("EXESDB_HEALTH_MONITORING__ENABLED", "false"),
        ("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "100"),
        ("EXESDB_PLUGINS__BUNDLED", "false"),
    ]);
    assert!(!config.health_monitoring.enabled);
    let host = Host::start(config).await.unwrap();
    let bus = host.bus().clone();
    let summaries = watch(&bus, Channel::Health, "health_summary:>");
    let store_health = watch(&bus, Channel::Health, "store_health:>");
    let node_health = watch(&bus, Channel::Health, "node_health:>");

    // A plugin that fails every message: with tracking on, its breaker would
    // open after 3 failures in a row and its failures would be reported.
    let plugins = host.plugins();
    plugins
        .load(
            Actor::Operator,
            manifest("test-guest", "failing", |t| {
                t["config"]["mode"] = "fail-always".into()
            }),
            &wasm("test-guest"),
        )
        .unwrap();
    for n in 0..20 {
        bus.broadcast(event(&bus, "store:orders", n)).await.unwrap();
    }
    let info = wait_status(plugins, "failing", |s| s.failed >= 20).await;
    assert_eq!(info.delivered, 0, "{info:?}");
    let tracker = plugins.health();
    assert!(!tracker.enabled());
    assert_eq!(tracker.gate("failing"), Gate::Deliver);
    assert_eq!(tracker.subscription("failing"), None);
    assert!(tracker.list().is_empty());

    tokio::join!(
        quiet(&summaries, Duration::from_millis(500)),
        quiet(&store_health, Duration::from_millis(500)),
        quiet(&node_health, Duration::from_millis(500)),
    );
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_tracker_ignores_failures() {
    let bus = Bus::new(BusConfig::default());
    let store_health = watch(&bus, Channel::Health, "store_health:>");
    let mut config = Config::default().health_monitoring;

    // Control: enabled, three failures open the breaker.
    let on = HealthTracker::new("s1", config.clone(), bus.clone());
    for _ in 0..3 {
        on.record("x", HealthInput::DeliveryFailed("boom".into()));
    }
    assert!(matches!(on.gate("x"), Gate::Wait(_)), "{:?}", on.gate("x"));
    assert!(!drain(&store_health).is_empty());

    config.enabled = false;
    let off = HealthTracker::new("s1", config, bus.clone());
    assert!(!off.enabled());
    off.record("x", HealthInput::RegistrationStarted);
    for _ in 0..50 {
        off.record("x", HealthInput::DeliveryFailed("boom".into()));
        off.record("x", HealthInput::Trap("trap".into()));
    }
    assert_eq!(off.gate("x"), Gate::Deliver);
    assert_eq!(off.subscription("x"), None);
    assert_eq!(off.summary().total, 0);
    quiet(&store_health, Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_metrics_count_nothing_and_publish_nothing() {
    let config = host_config(&[
        ("EXESDB_METRICS__ENABLED", "false"),
        ("EXESDB_METRICS__INTERVAL_MS", "100"),
        ("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "100"),
        ("EXESDB_PLUGINS__BUNDLED", "false"),
    ]);
    assert!(!config.bus_config().count_published);

    // A bus built from that config counts nothing.
    let bus = Bus::new(config.bus_config());
    let sink = watch(&bus, Channel::Events, ">");
    for n in 0..10 {
        bus.broadcast(event(&bus, "s1:stream", n)).await.unwrap();
    }
    assert_eq!(drain(&sink).len(), 10);
    assert_eq!(bus.published(Channel::Events), 0);

    // Nor does the host's, and no metrics are published.
    let host = Host::start(config).await.unwrap();
    let bus = host.bus().clone();
    let summaries = watch(&bus, Channel::Metrics, "metrics_summary:>");
    let store_metrics = watch(&bus, Channel::Metrics, "store_metrics:>");
    let health = watch(&bus, Channel::Health, "health_summary:default");
    for n in 0..10 {
        bus.broadcast(event(&bus, "s1:stream", n)).await.unwrap();
    }
    tokio::join!(
        quiet(&summaries, Duration::from_millis(500)),
        quiet(&store_metrics, Duration::from_millis(500)),
    );
    assert_eq!(bus.published(Channel::Events), 0);
    // Health reports still run on their own interval.
    let s: HealthSummary = next(&health).await.decode().unwrap();
    assert_eq!(s.store, "default");
    host.shutdown().await.unwrap();
}

/// Receives the next batch of a native store subscription.
async fn batch_of(rx: &mut tokio::sync::mpsc::Receiver<EmittedBatch>) -> EmittedBatch {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a batch in time")
        .expect("worker alive")
}

/// The next `K` on `sub` satisfying `pred`.
async fn next_of<K: exesdb_host::messages::MessageKind>(
    sub: &Subscriber,
    pred: impl Fn(&K) -> bool,
) -> K {
    let env = next_where(sub, |e| e.decode::<K>().is_ok_and(|k| pred(&k))).await;
    env.decode().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_store_has_its_own_health_tracker_and_metrics_collector() {
    const AGE: Duration = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let config = host_config(&[
        ("EXESDB_STORES__DATA_DIR", dir.path().to_str().unwrap()),
        ("EXESDB_STORES__DURABILITY", "relaxed"),
        ("EXESDB_PLUGINS__BUNDLED", "false"),
        ("EXESDB_METRICS__INTERVAL_MS", "100"),
        ("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "100"),
    ]);
    let host = Host::start(config).await.unwrap();
    let bus = host.bus().clone();
    let other_health = watch(&bus, Channel::Health, "store_health:other");
    let default_health = watch(&bus, Channel::Health, "store_health:default");
    let other_sums = watch(&bus, Channel::Metrics, "metrics_summary:other");
    let default_sums = watch(&bus, Channel::Metrics, "metrics_summary:default");
    let other_metrics = watch(&bus, Channel::Metrics, "store_metrics:other");
    let stores = host.stores();
    stores
        .append("other", "orders-1", ExpectedVersion::Any, batch(0, 3))
        .await
        .unwrap();
    stores
        .append("default", "orders-1", ExpectedVersion::Any, batch(0, 5))
        .await
        .unwrap();
    // The events' age when handled counts: latency is append → handled.
    tokio::time::sleep(AGE).await;

    // A native handler on `other`: its first batch fails at its first event.
    let spec = SubscriptionSpec {
        store: "other".into(),
        selector: Selector::All,
        start: Start::Beginning,
        name: None,
    };
    let (_id, mut rx) = host
        .emitters()
        .subscribe_native(spec, "projector", 4)
        .unwrap();
    batch_of(&mut rx).await.ack.send(Err(0)).unwrap();
    let mut got = 0;
    while got < 3 {
        let b = batch_of(&mut rx).await;
        got += b.events.len();
        b.ack.send(Ok(())).unwrap();
    }
    assert_eq!(got, 3);

    // Its health is reported under `other`, by `other`'s tracker.
    let failed: SubscriptionHealth = next_of(&other_health, |h: &SubscriptionHealth| {
        h.event == HealthEventType::DeliveryFailed
    })
    .await;
    assert_eq!(
        (failed.store.as_str(), failed.subscription.as_str()),
        ("other", "projector")
    );
    let tracker = stores.monitor("other").unwrap().health;
    let deadline = tokio::time::Instant::now() + WAIT;
    while tracker.subscription("projector").map(|t| t.event_count) != Some(3) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            tracker.list()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = tracker.subscription("projector").unwrap();
    assert_eq!((t.error_count, t.status), (1, SubscriptionStatus::Healthy));
    assert_eq!(host.plugins().health().subscription("projector"), None);
    quiet(&default_health, Duration::from_millis(300)).await;

    // Each store counts its own events; the native store subscription is
    // `other`'s one active subscription, the watchers none of them.
    // (Summaries from before the subscription was made are still queued.)
    let other: MetricsSummary = next_of(&other_sums, |m: &MetricsSummary| {
        assert!(m.total_events <= 3, "{m:?}");
        m.total_events == 3 && m.active_subscriptions == 1
    })
    .await;
    assert_eq!(other.store, "other");
    let default: MetricsSummary = next_of(&default_sums, |m: &MetricsSummary| {
        assert!(m.total_events <= 5, "other's events counted: {m:?}");
        m.total_events == 5
    })
    .await;
    assert_eq!(default.active_subscriptions, 0, "{default:?}");

    // The native handler's latency: append → acknowledged, on `other`'s topic.
    let p50: LatencyMetric = next_of(&other_metrics, |l: &LatencyMetric| {
        l.operation == "delivery:projector" && l.percentile == Percentile::P50
    })
    .await;
    assert_eq!(p50.sample_count, 3, "{p50:?}");
    assert!(p50.latency_ms >= AGE.as_secs_f64() * 1000.0, "{p50:?}");
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_analyses_performance_and_reports_its_resources_every_interval() {
    const N: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let config = host_config(&[
        ("EXESDB_STORES__DATA_DIR", dir.path().to_str().unwrap()),
        ("EXESDB_PLUGINS__BUNDLED", "false"),
        ("EXESDB_METRICS__INTERVAL_MS", "100"),
    ]);
    let host = Host::start(config).await.unwrap();
    let bus = host.bus().clone();
    let analyses = watch(&bus, Channel::Diagnostics, "performance_analysis:>");
    let resources = watch(&bus, Channel::Metrics, "resource_usage:>");
    host.plugins()
        .load(
            Actor::Operator,
            manifest("test-guest", "busy", |t| {
                t["config"]["mode"] = "noop".into()
            }),
            &wasm("test-guest"),
        )
        .unwrap();
    for n in 0..N {
        bus.broadcast(event(&bus, "orders:o", n)).await.unwrap();
    }
    wait_status(host.plugins(), "busy", |s| s.delivered >= N).await;

    // The interval in which it ran names it among the slowest handlers.
    let a: PerformanceAnalysis = next_of(&analyses, |a: &PerformanceAnalysis| {
        a.findings.iter().any(|f| f.contains("`busy`"))
    })
    .await;
    assert_eq!(a.component, "subscriptions");
    assert_eq!(a.analysis_type, AnalysisType::Bottleneck);
    let finding = a.findings.iter().find(|f| f.contains("`busy`")).unwrap();
    assert!(
        finding.starts_with("slow handler") && finding.contains("(store default)"),
        "{finding}"
    );

    // And the host process's resources, with a CPU figure of its own.
    let r: ResourceUsage = next(&resources).await.decode().unwrap();
    assert_eq!(r.component, "exesdb_host");
    assert!(r.cpu_percent >= 0.0 && r.cpu_percent.is_finite(), "{r:?}");
    assert!(r.memory_bytes > 0 && r.open_handles > 0, "{r:?}");
    assert!(r.disk_bytes > 0, "the default store's file: {r:?}");
    host.shutdown().await.unwrap();
}
