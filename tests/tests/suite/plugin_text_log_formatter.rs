//! The Python `text-log-formatter` plugin (componentize-py).

use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig};
use exesdb_host::messages::logging::{LogEntry, LogLevel};
use exesdb_host::runtime::{Actor, PluginError, Plugins};

const NAME: &str = "text-log-formatter";

fn plugins() -> Plugins {
    cached_plugins(&Bus::new(BusConfig::default()))
}

fn entry(level: LogLevel) -> LogEntry {
    let mut metadata = serde_json::Map::new();
    metadata.insert("store".into(), "s1".into());
    metadata.insert("depth".into(), 3.into());
    LogEntry {
        log_id: "l1".into(),
        level,
        message: "disk almost full".into(),
        module: Some("exesdb_host::store".into()),
        function: None,
        line: None,
        metadata,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_entries_as_text() {
    let plugins = plugins();
    plugins
        .load(Actor::Operator, manifest(NAME, NAME, |_| {}), &wasm(NAME))
        .unwrap();
    let f = plugins.formatter(NAME).unwrap();
    let line = f
        .format_entry(&entry(LogLevel::Warning), 1_753_615_800_123, "n1")
        .unwrap();
    assert_eq!(line, "2025-07-27 11:30:00.123 WARNING n1 exesdb_host::store: disk almost full [depth=3 store=s1]");
    let line = f.format_entry(&entry(LogLevel::Error), 0, "n2").unwrap();
    assert!(
        line.starts_with("1970-01-01 00:00:00.000 ERROR n2 "),
        "{line}"
    );

    let plain = manifest(NAME, "text-plain", |t| {
        t["config"]
            .as_table_mut()
            .unwrap()
            .insert("include_metadata".into(), false.into());
    });
    plugins.load(Actor::Operator, plain, &wasm(NAME)).unwrap();
    let line = plugins
        .formatter("text-plain")
        .unwrap()
        .format_entry(&entry(LogLevel::Info), 0, "n1")
        .unwrap();
    assert_eq!(
        line,
        "1970-01-01 00:00:00.000 INFO n1 exesdb_host::store: disk almost full"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_fails_init() {
    let plugins = plugins();
    let m = manifest(NAME, NAME, |t| {
        t["config"]
            .as_table_mut()
            .unwrap()
            .insert("include_metadata".into(), 1.into());
    });
    let err = plugins.load(Actor::Operator, m, &wasm(NAME)).unwrap_err();
    assert!(
        matches!(err, PluginError::Init { ref message, .. } if message.contains("include_metadata")),
        "{err}"
    );
}
