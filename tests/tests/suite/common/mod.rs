//! Helpers shared by the plugin tests: a bus, a plugin set, manifests of the
//! real built components, and waiting for messages.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use exesdb_host::bus::{Bus, BusConfig, Channel, Subscriber};
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Manifest, Plugins, Runtime};

/// How long tests wait for an expected message.
pub const WAIT: Duration = Duration::from_secs(10);

/// A bus and an empty plugin set on it.
pub fn setup() -> (Bus, Plugins) {
    let bus = Bus::new(BusConfig::default());
    let plugins = Plugins::new(Runtime::new().unwrap(), bus.clone(), 64);
    (bus, plugins)
}

/// Plugins on `bus` whose runtime caches compiled components in the target
/// directory, so large Python and JavaScript components compile once per build.
pub fn cached_plugins(bus: &Bus) -> Plugins {
    let rc = exesdb_host::config::RuntimeConfig {
        cache_dir: format!("{}/component-cache", env!("CARGO_TARGET_TMPDIR")),
        ..exesdb_host::config::RuntimeConfig::default()
    };
    Plugins::new(Runtime::with_config(&rc).unwrap(), bus.clone(), 64)
}

/// The component bytes of a built plugin (`plugins/<name>`,
/// `plugins/python/<name>` or `plugins/js/<name>`).
pub fn wasm(name: &str) -> Vec<u8> {
    let (_, path, _) = exesdb_tests::guests::all()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("no plugin crate `{name}`"));
    std::fs::read(path).unwrap()
}

/// The manifest of a plugin crate, with `extra` TOML appended (later keys of
/// a table must not repeat earlier ones) and the name replaced by `name`.
pub fn manifest(krate: &str, name: &str, edit: impl FnOnce(&mut toml::Table)) -> Manifest {
    let (_, _, path) = exesdb_tests::guests::all()
        .find(|(n, _, _)| *n == krate)
        .unwrap();
    let mut table: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    table.insert("name".into(), name.into());
    edit(&mut table);
    Manifest::parse(&toml::to_string(&table).unwrap(), &format!("{name}.toml")).unwrap()
}

/// A subscriber on `channel`/`pattern`.
pub fn watch(bus: &Bus, channel: Channel, pattern: &str) -> Subscriber {
    let s = bus
        .subscriber(&format!("watch-{channel}-{pattern}"))
        .unwrap();
    s.subscribe(channel, pattern).unwrap();
    s
}

/// The next message, or a panic after [`WAIT`].
pub async fn next(sub: &Subscriber) -> Arc<Envelope> {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .unwrap_or_else(|_| panic!("no message for {} within {WAIT:?}", sub.name()))
        .expect("bus open")
}

/// The next message satisfying `pred`, skipping others.
pub async fn next_where(sub: &Subscriber, pred: impl Fn(&Envelope) -> bool) -> Arc<Envelope> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let env = tokio::time::timeout_at(deadline, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("no matching message for {} within {WAIT:?}", sub.name()))
            .expect("bus open");
        if pred(&env) {
            return env;
        }
    }
}

/// Asserts nothing arrives for `d`.
pub async fn quiet(sub: &Subscriber, d: Duration) {
    if let Ok(Some(env)) = tokio::time::timeout(d, sub.recv()).await {
        panic!(
            "unexpected message {} {} {}",
            env.kind,
            env.topic,
            env.payload()
        );
    }
}

/// Publishes a custom event on `events`.
pub async fn publish_event(bus: &Bus, topic: &str, payload: serde_json::Value) -> Arc<Envelope> {
    let env = Arc::new(Envelope::new(
        Channel::Events,
        topic,
        "custom.event",
        payload,
        bus.node(),
    ));
    bus.broadcast(Arc::clone(&env)).await.unwrap();
    env
}

/// Polls a plugin's status until `pred` holds; panics after [`WAIT`].
pub async fn wait_status(
    plugins: &Plugins,
    name: &str,
    pred: impl Fn(&exesdb_host::runtime::PluginInfo) -> bool,
) -> exesdb_host::runtime::PluginInfo {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = plugins
            .status(name)
            .unwrap_or_else(|| panic!("plugin {name} not loaded"));
        if pred(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never matched: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until plugin `name` has handled at least `n` messages successfully
/// (its `delivered` count), polling; panics after [`WAIT`]. Returns its status.
pub async fn wait_delivered(
    plugins: &Plugins,
    name: &str,
    n: u64,
) -> exesdb_host::runtime::PluginInfo {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = plugins
            .status(name)
            .unwrap_or_else(|| panic!("plugin {name} is not loaded"));
        if info.delivered >= n {
            return info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "plugin {name} handled {} of {n} messages within {WAIT:?}: {info:?}",
            info.delivered
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
