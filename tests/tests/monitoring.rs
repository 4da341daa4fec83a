//! Monitoring, black-box: the metrics collector against known workloads
//! (counts, rates, latency percentiles), with a real plugin feeding the
//! histograms, and the host's periodic health and metrics reports — plus
//! `[health_monitoring] enabled = false` and `[metrics] enabled = false`.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use exesdb_host::bus::{Bus, BusConfig, Channel, OverflowPolicy, Subscriber, SubscriberOptions};
use exesdb_host::config::Config;
use exesdb_host::health::{Gate, HealthInput, HealthTracker};
use exesdb_host::host::Host;
use exesdb_host::messages::health::{ComponentHealth, NodeHealth};
use exesdb_host::messages::metrics::{
    LatencyMetric, Percentile, PerformanceMetric, ThroughputMetric,
};
use exesdb_host::messages::tracking::{HealthSummary, MetricsSummary};
use exesdb_host::messages::Envelope;
use exesdb_host::metrics::{MetricsCollector, SubscriptionFigures};
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
            .chain(&[("EXESDB_ADMIN__LISTEN", "127.0.0.1:0")])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_workload_exactly() {
    const N: usize = 10_000;
    let bus = Bus::new(BusConfig::default());
    let collector = MetricsCollector::new("s1", bus.clone());
    assert_eq!(collector.store(), "s1");
    let throughput = watch(&bus, Channel::Metrics, "store_metrics:s1");
    let summaries = watch(&bus, Channel::Metrics, "metrics_summary:s1");
    let sink = drainer(lossless(&bus, "sink", "s1:stream"), N);

    for n in 0..N as u64 {
        let d = bus.broadcast(event(&bus, "s1:stream", n)).await.unwrap();
        assert_eq!(d.delivered, 1);
    }
    let (sink, drained) = sink.await.unwrap();
    assert_eq!(drained, N);
    assert_eq!(sink.dropped(), 0);
    assert_eq!(bus.published(Channel::Events), N as u64);

    // Three live subscribers: the sink and the two watchers.
    let live = 3;
    assert_eq!(bus.subscriber_count(), live);

    let f = collector.publish();
    assert_eq!(f.total_events, N as u64, "{f:?}");
    assert_eq!(f.delta, N as u64, "{f:?}");
    assert_eq!(f.active_subscriptions, live as u64, "{f:?}");
    assert_eq!((f.queue_depth, f.dropped), (0, 0), "{f:?}");
    assert!(f.events_per_second > 0.0, "{f:?}");
    assert!(f.subscriptions.is_empty(), "{f:?}");

    let envs = drain(&throughput);
    let tp: Vec<ThroughputMetric> = of_kind(&envs);
    assert_eq!(tp.len(), 1, "{envs:?}");
    assert_eq!(tp[0].operation, "events");
    assert_eq!(tp[0].count, N as u64);
    assert_eq!(tp[0].duration_ms, f.elapsed.as_millis() as u64);
    // The throughput covers the interval: count over its duration.
    assert_eq!(tp[0].rate_per_sec, f.delta as f64 / f.elapsed.as_secs_f64());
    assert!(of_kind::<LatencyMetric>(&envs).is_empty(), "{envs:?}");
    // The bus-level performance figures.
    let perf: Vec<PerformanceMetric> = of_kind(&envs);
    let value = |name: &str| {
        perf.iter()
            .find(|p| p.metric_name == name && p.component == "bus")
            .unwrap_or_else(|| panic!("no {name} in {perf:?}"))
            .value
    };
    assert_eq!(value("active_subscriptions"), live as f64);
    assert_eq!(value("queue_depth"), 0.0);
    assert_eq!(value("dropped"), 0.0);

    let sums: Vec<MetricsSummary> = of_kind(&drain(&summaries));
    assert_eq!(sums.len(), 1, "{sums:?}");
    let s = &sums[0];
    assert_eq!(s.store, "s1");
    assert_eq!(s.total_events, N as u64);
    assert_eq!(s.active_subscriptions, live as u64);
    assert_eq!(s.events_per_second, f.events_per_second);

    // No traffic since: nothing new, total unchanged (the collector's own
    // metrics messages are on `metrics`, not `events`).
    let again = collector.publish();
    assert_eq!(again.delta, 0, "{again:?}");
    assert_eq!(again.total_events, N as u64, "{again:?}");
    let tp: Vec<ThroughputMetric> = of_kind(&drain(&throughput));
    assert_eq!(tp.len(), 1);
    assert_eq!(tp[0].count, 0);
    let sums: Vec<MetricsSummary> = of_kind(&drain(&summaries));
    assert_eq!(sums.len(), 1);
    assert_eq!(sums[0].total_events, N as u64);
    drop(sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_per_second_matches_a_paced_workload() {
    const BATCHES: u64 = 20;
    const PER_BATCH: u64 = 100;
    let bus = Bus::new(BusConfig::default());
    let sink = drainer(
        lossless(&bus, "sink", "s1:stream"),
        (BATCHES * PER_BATCH) as usize,
    );
    // The collector's window starts at its creation.
    let start = Instant::now();
    let collector = MetricsCollector::new("s1", bus.clone());

    // 2,000 events spread evenly over ~1 s: 100 every 50 ms.
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut n = 0;
    for _ in 0..BATCHES {
        tick.tick().await;
        for _ in 0..PER_BATCH {
            bus.broadcast(event(&bus, "s1:stream", n)).await.unwrap();
            n += 1;
        }
    }
    let f = collector.publish();
    let elapsed = start.elapsed();
    let (_sink, drained) = sink.await.unwrap();
    assert_eq!(drained as u64, n);

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
            assert_eq!(c.details["store"], "default", "{c:?}");
        }
        seen.insert(c.component);
    }

    let m: MetricsSummary = next(&metrics).await.decode().unwrap();
    assert_eq!(m.store, "default");
    assert!(m.active_subscriptions >= 4, "the watchers at least: {m:?}");

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
