//! Emitter workers over the durable store: catch-up then live without gap or
//! duplicate, persistent checkpoints across a restart, health-aware pausing
//! with a real plugin, plugins subscribed through their manifest.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::config::{Config, HealthMonitoring};
use exesdb_host::emitter::{EmittedBatch, Emitters, Start, Stores, SubscriptionSpec, Target};
use exesdb_host::health::HealthTracker;
use exesdb_host::metrics::MetricsCollector;
use exesdb_host::runtime::{Plugins, Runtime};
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
    let stores = Stores::new(dir, Durability::Immediate, bus.clone());
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
    plugins.load(m, &wasm("test-guest")).unwrap();
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
    plugins.unload("leaving").await.unwrap();
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
            ("EXESDB_ADMIN__LISTEN", ""),
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
    host.plugins().load(m, &wasm("test-guest")).unwrap();
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
