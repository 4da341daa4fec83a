//! The real `stream-projection` plugin, loaded with its own manifest in a
//! host: its `[[store_subscription]]` (`$all` of `default`, `start = "now"`)
//! gives it one emitter worker, it counts the events appended after it
//! started per event type and logs `projection: N events (…)` every
//! `every` events; a bad `every` fails `init`. (The counting test runs alone
//! in a child process, [`ran_alone`]: it installs the global logging stack,
//! whose `logging` bridge follows one bus.)

use crate::common::*;
use exesdb_host::bus::{Channel, Subscriber};
use exesdb_host::config::Config;
use exesdb_host::host::Host;
use exesdb_host::messages::logging::{LogEntry, LogLevel};
use exesdb_host::runtime::Actor;
use exesdb_host::store::{ExpectedVersion, NewEvent};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const NAME: &str = "stream-projection";
/// A second instance, with `every = 700`.
const OTHER: &str = "projection-700";

/// A host on a fresh store in `dir`, without the bundled plugins (the
/// plugin under test is loaded from the built component) and without API.
async fn host(dir: &std::path::Path) -> Host {
    let config = Config::load_with_env(
        None,
        [
            ("EXESDB_STORES__DATA_DIR", dir.to_str().unwrap()),
            ("EXESDB_PLUGINS__BUNDLED", "false"),
            ("EXESDB_API__LISTEN", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    Host::start(config).await.unwrap()
}

/// Appends events `from..to` of type `kind(n)` to `stream`, 250 per batch.
async fn append(host: &Host, stream: &str, from: u64, to: u64, kind: fn(u64) -> &'static str) {
    let all: Vec<u64> = (from..to).collect();
    for chunk in all.chunks(250) {
        let events = chunk
            .iter()
            .map(|&n| NewEvent::json(kind(n), json!({ "n": n })))
            .collect();
        host.stores()
            .append("default", stream, ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
}

/// One in four events is an `OrderShipped`, the others `OrderPlaced`.
fn order(n: u64) -> &'static str {
    if n % 4 == 3 {
        "OrderShipped"
    } else {
        "OrderPlaced"
    }
}

/// Loads the real component as `name`, `every` set when given.
fn load(host: &Host, name: &str, every: Option<i64>) {
    let m = manifest(NAME, name, |t| {
        if let Some(every) = every {
            t["config"]
                .as_table_mut()
                .unwrap()
                .insert("every".into(), every.into());
        }
    });
    host.plugins()
        .load(Actor::Operator, m, &wasm(NAME))
        .unwrap();
}

/// Waits until `subscriber`'s emitter worker runs; its start position.
async fn worker_started(host: &Host, subscriber: &str) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = host.emitters().list();
        if let Some(w) = list
            .iter()
            .find(|w| w.subscriber == subscriber && w.running)
        {
            assert_eq!(
                (
                    w.store.as_str(),
                    w.selector.as_str(),
                    w.persistent.as_deref()
                ),
                ("default", "$all", None),
                "the manifest's store subscription: {w:?}"
            );
            return w.position;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `subscriber`'s worker has delivered `n` events.
async fn delivered(host: &Host, subscriber: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = host.emitters().list();
        if list
            .iter()
            .any(|w| w.subscriber == subscriber && w.delivered >= n)
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next line a projection (`NAME` or `OTHER`) logged itself.
async fn next_line(logs: &Subscriber) -> LogEntry {
    next_where(logs, |e| projection_line(e).is_some())
        .await
        .decode()
        .unwrap()
}

/// A projection's own line: from `NAME` or `OTHER`, and not one of the
/// host's records about them (`🔌 PLUGIN LOADED: …`, which carry the plugin's
/// name too).
fn projection_line(e: &exesdb_host::messages::Envelope) -> Option<LogEntry> {
    e.decode::<LogEntry>().ok().filter(|l| {
        l.message.starts_with("projection")
            && [NAME, OTHER]
                .iter()
                .any(|n| l.metadata.get("plugin") == Some(&json!(n)))
    })
}

/// The projections' lines logged in the next `d`.
async fn lines(logs: &Subscriber, d: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(Some(env)) = tokio::time::timeout_at(deadline, logs.recv()).await {
        if let Some(l) = projection_line(&env) {
            out.push(l.message);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_the_events_appended_after_it_started_per_type_and_logs_every_1000() {
    if ran_alone(&[]) {
        return;
    }
    exesdb_host::logging::init(&Config::default().console, "test-node");
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    let logs = watch(host.bus(), Channel::Logging, "log:>");

    // History from before the plugin starts: `start = "now"` skips it.
    append(&host, "orders-0", 0, 500, |_| "OrderArchived").await;
    load(&host, NAME, None);
    // A second instance, `every = 700`: the config is honoured.
    load(&host, OTHER, Some(700));
    assert_eq!(
        worker_started(&host, NAME).await,
        500,
        "starts after the head"
    );
    assert_eq!(worker_started(&host, OTHER).await, 500);
    assert_eq!(host.emitters().list().len(), 2, "one worker per plugin");

    append(&host, "orders-1", 0, 1300, order).await;
    append(&host, "orders-2", 1300, 2500, order).await;

    let mut seen: BTreeMap<String, Vec<LogEntry>> = BTreeMap::new();
    while seen.get(NAME).map_or(0, Vec::len) < 2 || seen.get(OTHER).map_or(0, Vec::len) < 3 {
        let l = next_line(&logs).await;
        let plugin = l.metadata["plugin"].as_str().unwrap().to_owned();
        seen.entry(plugin).or_default().push(l);
    }
    assert!(
        seen.values().flatten().all(|l| l.level == LogLevel::Info),
        "{seen:?}"
    );
    let messages =
        |name: &str| -> Vec<String> { seen[name].iter().map(|l| l.message.clone()).collect() };
    assert_eq!(
        messages(NAME),
        [
            "projection: 1000 events (OrderPlaced=750, OrderShipped=250)",
            "projection: 2000 events (OrderPlaced=1500, OrderShipped=500)",
        ]
    );
    assert_eq!(
        messages(OTHER),
        [
            "projection: 700 events (OrderPlaced=525, OrderShipped=175)",
            "projection: 1400 events (OrderPlaced=1050, OrderShipped=350)",
            "projection: 2100 events (OrderPlaced=1575, OrderShipped=525)",
        ]
    );
    // All 2,500 handled, and no line for the ones after the last multiple.
    delivered(&host, NAME, 2500).await;
    delivered(&host, OTHER, 2500).await;
    let more = lines(&logs, Duration::from_millis(300)).await;
    assert!(more.is_empty(), "{more:?}");
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_must_be_a_positive_integer() {
    // A plugin set of its own, not a host: nothing here logs on a bus.
    let (_bus, plugins) = setup();
    for bad in [
        toml::Value::from(0),
        (-5).into(),
        "often".into(),
        2.5.into(),
    ] {
        let m = manifest(NAME, "projection-bad", |t| {
            t["config"]
                .as_table_mut()
                .unwrap()
                .insert("every".into(), bad.clone());
        });
        let err = plugins
            .load(Actor::Operator, m, &wasm(NAME))
            .expect_err(&format!("every = {bad} is refused"))
            .to_string();
        assert!(
            err.contains("config `every` must be a positive integer"),
            "{err}"
        );
    }
    // The manifest's own config (every = 1000) and none at all both load.
    plugins
        .load(
            Actor::Operator,
            manifest(NAME, "projection-ok", |_| {}),
            &wasm(NAME),
        )
        .unwrap();
    plugins
        .load(
            Actor::Operator,
            manifest(NAME, "projection-default", |t| {
                t.remove("config");
            }),
            &wasm(NAME),
        )
        .unwrap();
}
