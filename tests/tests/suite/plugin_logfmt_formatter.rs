//! The JavaScript `logfmt-formatter` plugin (componentize-js), loaded as a
//! real component and used as the console's formatter.

use std::sync::Arc;

use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig};
use exesdb_host::messages::logging::{LogEntry, LogLevel};
use exesdb_host::runtime::{Actor, PluginError, Plugins};

const NAME: &str = "logfmt-formatter";

fn plugins() -> Plugins {
    cached_plugins(&Bus::new(BusConfig::default()))
}

fn entry() -> LogEntry {
    let mut metadata = serde_json::Map::new();
    metadata.insert("store".into(), "s1".into());
    metadata.insert("note".into(), "two words".into());
    LogEntry {
        log_id: "l1".into(),
        level: LogLevel::Warning,
        message: "disk almost full".into(),
        module: Some("exesdb_host::store".into()),
        function: None,
        line: None,
        metadata,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_entries_as_logfmt_with_its_config() {
    let plugins = plugins();
    plugins
        .load(Actor::Operator, manifest(NAME, NAME, |_| {}), &wasm(NAME))
        .unwrap();
    let f = plugins.formatter(NAME).unwrap();
    let line = f.format_entry(&entry(), 1_753_615_800_123, "n1").unwrap();
    assert_eq!(
        line,
        "ts=2025-07-27T11:30:00.123Z level=warning node=n1 module=exesdb_host::store \
         msg=\"disk almost full\" note=\"two words\" store=s1"
    );

    let plain = manifest(NAME, "logfmt-plain", |t| {
        let c = t["config"].as_table_mut().unwrap();
        c.insert("include_metadata".into(), false.into());
        c.insert("time_key".into(), "time".into());
    });
    plugins.load(Actor::Operator, plain, &wasm(NAME)).unwrap();
    let f: Arc<_> = plugins.formatter("logfmt-plain").unwrap();
    let line = f.format_entry(&entry(), 0, "n1").unwrap();
    assert_eq!(line, "time=1970-01-01T00:00:00.000Z level=warning node=n1 module=exesdb_host::store msg=\"disk almost full\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_fails_init() {
    let plugins = plugins();
    let m = manifest(NAME, NAME, |t| {
        t["config"]
            .as_table_mut()
            .unwrap()
            .insert("include_metadata".into(), "yes".into());
    });
    let err = plugins.load(Actor::Operator, m, &wasm(NAME)).unwrap_err();
    assert!(
        matches!(err, PluginError::Init { ref message, .. } if message.contains("include_metadata")),
        "{err}"
    );
}
