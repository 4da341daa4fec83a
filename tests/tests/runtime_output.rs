//! Guest stdout/stderr and `host.log` calls reach the `logging` channel
//! tagged with the plugin's name. (Own test binary: it installs the global
//! logging stack.)

mod common;

use common::*;
use exesdb_host::bus::Channel;
use exesdb_host::config::Config;
use exesdb_host::messages::logging::{LogEntry, LogLevel};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_is_captured_per_plugin() {
    let logging = exesdb_host::logging::init(&Config::default().console, "test-node");
    let (bus, plugins) = setup();
    logging.bridge.attach(&bus);
    let logs = watch(&bus, Channel::Logging, "log:>");
    let m = manifest("test-guest", "chatty", |t| {
        t["config"]["mode"] = "stderr".into()
    });
    plugins.load(m, &wasm("test-guest")).unwrap();
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
