//! Guest stdout/stderr and `host.log` calls reach the `logging` channel
//! tagged with the plugin's name; what a plugin's status reports of its
//! guest: its latest stderr lines, its instance's memory and its source
//! language. (The first test runs alone in a child process, [`ran_alone`]:
//! it installs the global logging stack.)

use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::config::{Config, RuntimeConfig};
use exesdb_host::messages::logging::{LogEntry, LogLevel};
use exesdb_host::runtime::{Actor, PluginRunState, Plugins, Runtime};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_is_captured_per_plugin() {
    if ran_alone(&[]) {
        return;
    }
    let logging = exesdb_host::logging::init(&Config::default().console, "test-node");
    let (bus, plugins) = setup();
    logging.bridge.attach(&bus);
    let logs = watch(&bus, Channel::Logging, "log:>");
    let m = manifest("test-guest", "chatty", |t| {
        t["config"]["mode"] = "stderr".into()
    });
    plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    let sent = publish_event(&bus, "s:x", json!({})).await;

    let is_from = |stream: &'static str| {
        move |e: &exesdb_host::messages::Envelope| {
            e.decode::<LogEntry>().is_ok_and(|l| {
                l.metadata.get("plugin") == Some(&json!("chatty"))
                    && l.metadata.get("stream") == Some(&json!(stream))
            })
        }
    };
    let err: LogEntry = next_where(&logs, is_from("stderr")).await.decode().unwrap();
    assert_eq!(err.message, format!("test-guest stderr: {}", sent.id));
    assert_eq!(err.level, LogLevel::Warning);
    let out: LogEntry = next_where(&logs, is_from("stdout")).await.decode().unwrap();
    assert_eq!(out.level, LogLevel::Info);
    assert!(
        out.message.contains(&sent.id.to_string()),
        "{}",
        out.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_latest_stderr_lines_oldest_first() {
    let (bus, plugins) = setup();
    let m = manifest("test-guest", "talker", |t| {
        t["config"]["mode"] = "stderr".into()
    });
    let loaded = plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    assert_eq!(loaded.stderr, Vec::<String>::new());

    let mut sent = Vec::new();
    for n in 0..25 {
        sent.push(publish_event(&bus, "s:x", json!({ "n": n })).await);
    }
    let status = wait_delivered(&plugins, "talker", 25).await;
    // The last 20 (the cap the trap reports use), oldest first; stdout not.
    let expected: Vec<String> = sent[5..]
        .iter()
        .map(|e| format!("test-guest stderr: {}", e.id))
        .collect();
    assert_eq!(status.stderr, expected);
    let listed = plugins.list().into_iter().find(|p| p.name == "talker");
    assert_eq!(listed.unwrap().stderr, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_instance_memory_as_it_grows_and_afresh_after_a_restart() {
    let bus = Bus::new(BusConfig::default());
    // A restart waits long enough for the trapped instance's size to be seen.
    let rc = RuntimeConfig {
        restart_backoff_ms: 2000,
        ..RuntimeConfig::default()
    };
    let plugins = Plugins::new(Runtime::with_config(&rc).unwrap(), bus.clone(), 64);
    let m = manifest("test-guest", "grower", |t| {
        t["config"]["mode"] = "alloc".into();
        let mut limits = toml::Table::new();
        limits.insert("memory_mb".into(), 16.into());
        limits.insert("call_timeout_ms".into(), 5000.into());
        t.insert("limits".into(), limits.into());
    });
    let loaded = plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    let initial = loaded.memory_bytes;
    assert!(initial > 0, "{loaded:?}");
    assert_eq!(plugins.status("grower").unwrap().memory_bytes, initial);

    // `alloc` allocates 1 MiB blocks until the 16 MiB cap traps it.
    publish_event(&bus, "s:x", json!({})).await;
    let trapped = wait_status(&plugins, "grower", |s| s.traps == 1).await;
    assert_eq!(trapped.state, PluginRunState::Restarting);
    let cap = 16 * 1024 * 1024;
    assert!(
        trapped.memory_bytes > initial
            && trapped.memory_bytes > cap / 2
            && trapped.memory_bytes <= cap,
        "grew from {initial} to {} (cap {cap})",
        trapped.memory_bytes
    );

    let fresh = wait_status(&plugins, "grower", |s| s.restarts == 1).await;
    assert!(
        fresh.memory_bytes > 0 && fresh.memory_bytes < trapped.memory_bytes,
        "a new instance is counted afresh: {} after {}",
        fresh.memory_bytes,
        trapped.memory_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_source_language_of_each_version() {
    let bus = Bus::new(BusConfig::default());
    let plugins = cached_plugins(&bus);
    let rust = plugins
        .load(
            Actor::Operator,
            manifest("test-guest", "polyglot", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();
    assert_eq!(rust.language, "rust");
    assert!(rust.memory_bytes > 0, "{rust:?}");

    // Same world, other languages: a reload reads the new component's.
    for (krate, language) in [
        ("threshold-alerter", "python"),
        ("threshold-alerter-js", "javascript"),
    ] {
        let info = plugins
            .reload(
                Actor::Operator,
                manifest(krate, "polyglot", |_| {}),
                &wasm(krate),
            )
            .await
            .unwrap();
        assert_eq!(info.language, language, "{krate}");
        assert!(info.memory_bytes > 0, "{krate}: {info:?}");
        assert_eq!(plugins.status("polyglot").unwrap().language, language);
    }
    let formatter = plugins
        .load(
            Actor::Operator,
            manifest("text-log-formatter", "py-formatter", |_| {}),
            &wasm("text-log-formatter"),
        )
        .unwrap();
    assert_eq!(formatter.language, "python");
}
