//! Emitter workers over the durable store: catch-up then live without gap or
//! duplicate, persistent checkpoints across a restart, health-aware pausing
//! with a real plugin, plugins subscribed through their manifest.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::config::{Config, HealthMonitoring};
use exesdb_host::emitter::{EmittedBatch, Emitters, Start, Stores, SubscriptionSpec, Target};
use exesdb_host::health::HealthTracker;
use exesdb_host::messages::tracking::{HealthEventType, SubscriptionHealth, SubscriptionStatus};
use exesdb_host::metrics::MetricsCollector;
use exesdb_host::runtime::{Actor, Plugins, Runtime};
use exesdb_host::store::{Durability, ExpectedVersion, NewEvent, RecordedEvent, Selector};
use serde_json::json;
use tokio::sync::mpsc::Receiver;

fn spec(selector: Selector, start: Start, name: Option<&str>) -> SubscriptionSpec {
    SubscriptionSpec {
        store: "default".into(),
        selector,
        start,
        name: name.map(str::to_owned),
    }
}

fn event(n: u64) -> NewEvent {
    NewEvent::json(format!("E{n}"), json!({ "n": n }))
}

async fn append(stores: &Stores, stream: &str, from: u64, to: u64) {
    for n in from..to {
        stores
            .append("default", stream, ExpectedVersion::Any, vec![event(n)])
            .await
            .unwrap();
    }
}

/// Receives and acknowledges batches until `n` events arrived.
async fn take(rx: &mut Receiver<EmittedBatch>, n: usize) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let batch = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("events in time")
            .expect("worker alive");
        out.extend(batch.events);
        batch.ack.send(Ok(())).unwrap();
    }
    out
}

fn world(
    dir: &std::path::Path,
    health: HealthMonitoring,
) -> (Bus, Arc<Stores>, Arc<Emitters>, Arc<Plugins>) {
    let bus = Bus::new(BusConfig::default());
    let stores = Stores::with_health(dir, Durability::Immediate, bus.clone(), health.clone());
    let tracker = HealthTracker::new("default", health, bus.clone());
    let metrics = MetricsCollector::new("default", bus.clone());
    let plugins = Arc::new(Plugins::with_monitoring(
        Runtime::new().unwrap(),
        bus.clone(),
        64,
        Arc::clone(&tracker),
        metrics,
    ));
    let emitters = Emitters::new(
        Arc::clone(&stores),
        tracker,
        bus.clone(),
        Arc::downgrade(&plugins),
    );
    (bus, stores, emitters, plugins)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_then_live_has_no_gap_and_no_duplicate_under_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (bus, stores, emitters, _plugins) = world(dir.path(), Config::default().health_monitoring);
    let announced = watch(&bus, Channel::Events, "default:>");
    append(&stores, "orders-1", 0, 300).await;
    let (_id, mut rx) = emitters
        .subscribe_native(spec(Selector::All, Start::Beginning, None), "native", 4)
        .unwrap();
    let writer = {
        let stores = Arc::clone(&stores);
        tokio::spawn(async move { append(&stores, "orders-2", 300, 600).await })
    };
    let got = take(&mut rx, 600).await;
    writer.await.unwrap();
    let positions: Vec<u64> = got.iter().map(|e| e.global_position).collect();
    assert_eq!(
        positions,
        (0..600).collect::<Vec<_>>(),
        "in order, no gap, no duplicate"
    );
    let a = next(&announced).await;
    assert_eq!(
        (a.topic.as_str(), a.kind.as_str()),
        ("default:orders-1", "E0")
    );
    let recorded: RecordedEvent = serde_json::from_value(a.payload().clone()).unwrap();
    assert_eq!((recorded.event_number, recorded.global_position), (0, 0));
    emitters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_subscription_resumes_from_its_checkpoint_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_bus, stores, emitters, _plugins) =
            world(dir.path(), Config::default().health_monitoring);
        append(&stores, "s", 0, 100).await;
        let (id, mut rx) = emitters
            .subscribe_native(
                spec(Selector::All, Start::Beginning, Some("projector")),
                "p",
                1,
            )
            .unwrap();
        // Acknowledge events 0..=59 only: event 60 fails.
        let mut seen = 0;
        loop {
            let batch = rx.recv().await.unwrap();
            if seen + batch.events.len() > 60 {
                let i = 60 - seen;
                batch.ack.send(Err(i)).unwrap();
                break;
            }
            seen += batch.events.len();
            batch.ack.send(Ok(())).unwrap();
        }
        emitters.unsubscribe(&id).await;
        assert_eq!(
            stores
                .get("default")
                .unwrap()
                .checkpoint("projector")
                .unwrap(),
            Some(59)
        );
    }
    // A new host over the same data directory.
    let (_bus, stores, emitters, _plugins) = world(dir.path(), Config::default().health_monitoring);
    append(&stores, "s", 100, 120).await;
    let (_id, mut rx) = emitters
        .subscribe_native(
            spec(Selector::All, Start::Beginning, Some("projector")),
            "p",
            4,
        )
        .unwrap();
    let got = take(&mut rx, 60).await;
    let positions: Vec<u64> = got.iter().map(|e| e.global_position).collect();
    assert_eq!(
        positions,
        (60..120).collect::<Vec<_>>(),
        "resumed after the checkpoint, nothing repeated"
    );
    emitters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_plugin_pauses_only_its_own_emission_and_gets_everything_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let health = HealthMonitoring {
        enabled: true,
        check_interval: 5000,
        unhealthy_threshold: 3,
        circuit_breaker_enabled: true,
        cooldown_ms: 100,
        max_cooldown_ms: 400,
    };
    let (bus, stores, emitters, plugins) = world(dir.path(), health);
    let echoes = watch(&bus, Channel::Diagnostics, "echo:flaky");
    // Fails its first 5 deliveries, then recovers.
    let m = manifest("test-guest", "flaky", |t| {
        let c = t["config"].as_table_mut().unwrap();
        c.insert("mode".into(), "recover-after".into());
        c.insert("n".into(), 5.into());
        t.insert("subscribe".into(), toml::Value::Array(vec![]));
    });
    plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    let flaky = emitters
        .subscribe(
            spec(Selector::All, Start::Beginning, Some("flaky-sub")),
            Target::Plugin("flaky".into()),
        )
        .unwrap();
    let (healthy, mut rx) = emitters
        .subscribe_native(spec(Selector::All, Start::Beginning, None), "steady", 64)
        .unwrap();
    append(&stores, "s", 0, 20).await;

    // The healthy subscription gets everything at once and is never paused.
    let got = take(&mut rx, 20).await;
    assert_eq!(got.len(), 20);
    // The flaky plugin: after recovering, every event once, in order.
    let mut kinds = Vec::new();
    while kinds.len() < 20 {
        kinds.push(
            next(&echoes).await.payload()["kind"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(kinds, (0..20).map(|n| format!("E{n}")).collect::<Vec<_>>());
    quiet(&echoes, Duration::from_millis(300)).await;
    let list = emitters.list();
    let info = |id: &str| list.iter().find(|i| i.id == id).unwrap().clone();
    assert!(!info(&healthy).paused);
    assert_eq!(info(&healthy).delivered, 20);
    assert_eq!((info(&flaky).delivered, info(&flaky).position), (20, 20));
    assert_eq!(
        stores
            .get("default")
            .unwrap()
            .checkpoint("flaky-sub")
            .unwrap(),
        Some(19)
    );
    let tracked = plugins.health().subscription("flaky").unwrap();
    assert!(tracked.error_count >= 5, "{tracked:?}");
    emitters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stops_when_its_subscriber_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let (_bus, stores, emitters, plugins) = world(dir.path(), Config::default().health_monitoring);
    let (native, rx) = emitters
        .subscribe_native(
            spec(Selector::Stream("s".into()), Start::Now, None),
            "gone",
            1,
        )
        .unwrap();
    drop(rx);
    plugins
        .load(
            Actor::Operator,
            manifest("test-guest", "leaving", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();
    let plugin = emitters
        .subscribe(
            spec(Selector::All, Start::Now, None),
            Target::Plugin("leaving".into()),
        )
        .unwrap();
    plugins.unload(Actor::Operator, "leaving").await.unwrap();
    append(&stores, "s", 0, 1).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while emitters.list().iter().any(|i| i.running) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            emitters.list()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(emitters.unsubscribe(&native).await && emitters.unsubscribe(&plugin).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_manifest_subscribes_it_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load_with_env(
        None,
        [
            ("EXESDB_STORES__DATA_DIR", dir.path().to_str().unwrap()),
            ("EXESDB_PLUGINS__BUNDLED", "false"),
            ("EXESDB_API__LISTEN", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    let host = exesdb_host::host::Host::start(config).await.unwrap();
    let echoes = watch(host.bus(), Channel::Diagnostics, "echo:projector");
    host.stores()
        .append(
            "default",
            "orders-7",
            ExpectedVersion::NoStream,
            vec![event(0)],
        )
        .await
        .unwrap();
    let m = manifest("test-guest", "projector", |t| {
        t["config"]
            .as_table_mut()
            .unwrap()
            .insert("mode".into(), "echo".into());
        t.insert("subscribe".into(), toml::Value::Array(vec![]));
        let mut s = toml::Table::new();
        s.insert("selector".into(), "$pattern-orders-*".into());
        s.insert("name".into(), "projection".into());
        t.insert(
            "store_subscription".into(),
            toml::Value::Array(vec![s.into()]),
        );
    });
    host.plugins()
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    let e = next(&echoes).await;
    assert_eq!(
        (e.payload()["topic"].as_str(), e.payload()["kind"].as_str()),
        (Some("default:orders-7"), Some("E0"))
    );
    host.stores()
        .append(
            "default",
            "orders-7",
            ExpectedVersion::Exact(0),
            vec![event(1)],
        )
        .await
        .unwrap();
    assert_eq!(next(&echoes).await.payload()["kind"], "E1");
    let list = host.emitters().list();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].subscriber.as_str(), list[0].persistent.as_deref()),
        ("projector", Some("projection"))
    );
    host.shutdown().await.unwrap();
}

/// Events `E<from>`.. appended to `store` in one batch.
async fn append_to(stores: &Stores, store: &str, from: u64, to: u64) {
    stores
        .append(
            store,
            "s",
            ExpectedVersion::Any,
            (from..to).map(event).collect(),
        )
        .await
        .unwrap();
}

/// `n` echoes' kinds, in order.
async fn echoed(echoes: &exesdb_host::bus::Subscriber, n: usize) -> Vec<String> {
    let mut kinds = Vec::new();
    while kinds.len() < n {
        let e = next(echoes).await;
        kinds.push(e.payload()["kind"].as_str().unwrap().to_owned());
    }
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_subscribed_to_another_store_reports_under_that_stores_tracker_and_metrics() {
    const AGE: Duration = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let health = HealthMonitoring {
        cooldown_ms: 100,
        max_cooldown_ms: 400,
        ..Config::default().health_monitoring
    };
    let (bus, stores, emitters, plugins) = world(dir.path(), health);
    let other_health = watch(&bus, Channel::Health, "store_health:other");
    let echoes = watch(&bus, Channel::Diagnostics, "echo:flaky-other");
    // Fails its first 2 deliveries, then recovers.
    let m = manifest("test-guest", "flaky-other", |t| {
        let c = t["config"].as_table_mut().unwrap();
        c.insert("mode".into(), "recover-after".into());
        c.insert("n".into(), 2.into());
        t.insert("subscribe".into(), toml::Value::Array(vec![]));
    });
    plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    append_to(&stores, "other", 0, 5).await;
    tokio::time::sleep(AGE).await;
    let spec = SubscriptionSpec {
        store: "other".into(),
        selector: Selector::All,
        start: Start::Beginning,
        name: None,
    };
    emitters
        .subscribe(spec, Target::Plugin("flaky-other".into()))
        .unwrap();
    assert_eq!(
        echoed(&echoes, 5).await,
        (0..5).map(|n| format!("E{n}")).collect::<Vec<_>>()
    );

    // The failures are `other`'s subscription health.
    let failed = next_where(&other_health, |e| {
        e.decode::<SubscriptionHealth>()
            .is_ok_and(|h| h.event == HealthEventType::DeliveryFailed)
    })
    .await;
    let failed: SubscriptionHealth = failed.decode().unwrap();
    assert_eq!(
        (failed.store.as_str(), failed.subscription.as_str()),
        ("other", "flaky-other")
    );
    let monitor = stores.monitor("other").unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let t = monitor.health.subscription("flaky-other");
        if t.as_ref().is_some_and(|t| t.event_count == 5) {
            let t = t.unwrap();
            assert_eq!(t.error_count, 2, "{t:?}");
            assert_eq!(t.status, SubscriptionStatus::Healthy, "{t:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{t:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // And its metrics are `other`'s: latency from append, call time, and
    // one active subscription.
    let f = monitor.metrics.publish();
    assert_eq!(f.active_subscriptions, 1, "{f:?}");
    let s = f
        .subscriptions
        .iter()
        .find(|s| s.name == "flaky-other")
        .unwrap();
    assert_eq!(
        (s.bus, s.store_subscriptions, s.delivered),
        (false, 1, 5),
        "{s:?}"
    );
    assert_eq!(s.latency.count, 5, "{s:?}");
    assert!(s.latency.min_us >= AGE.as_micros() as u64, "{s:?}");
    assert!(
        s.call_time.count >= 3,
        "two failed calls and a good one: {s:?}"
    );
    emitters.shutdown().await;
    // A stopped worker's subscription is gone from its store's figures.
    assert_eq!(monitor.metrics.sample().active_subscriptions, 0);
    assert_eq!(monitor.health.subscription("flaky-other"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_latency_on_its_own_store_is_append_to_handled() {
    const AGE: Duration = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let (bus, stores, emitters, plugins) = world(dir.path(), Config::default().health_monitoring);
    let echoes = watch(&bus, Channel::Diagnostics, "echo:aged");
    let m = manifest("test-guest", "aged", |t| {
        t["config"]
            .as_table_mut()
            .unwrap()
            .insert("mode".into(), "echo".into());
        t.insert("subscribe".into(), toml::Value::Array(vec![]));
    });
    plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    append(&stores, "s", 0, 3).await;
    tokio::time::sleep(AGE).await;
    emitters
        .subscribe(
            spec(Selector::All, Start::Beginning, None),
            Target::Plugin("aged".into()),
        )
        .unwrap();
    assert_eq!(echoed(&echoes, 3).await, ["E0", "E1", "E2"]);
    wait_delivered(&plugins, "aged", 3).await;
    // The default store's collector is the plugins' own.
    let f = plugins.metrics().publish();
    let s = f.subscriptions.iter().find(|s| s.name == "aged").unwrap();
    assert_eq!(s.latency.count, 3, "{s:?}");
    assert!(s.latency.min_us >= AGE.as_micros() as u64, "{s:?}");
    // The plugin listens on no bus pattern: its one subscription is the
    // store subscription.
    assert_eq!((s.bus, s.store_subscriptions), (false, 1), "{s:?}");
    assert_eq!(f.active_subscriptions, 1, "{f:?}");
    emitters.shutdown().await;
}
