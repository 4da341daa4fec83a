use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing_subscriber::layer::SubscriberExt;

use super::ConsoleFormat;
use super::*;
use crate::bus::{Bus, BusConfig, Channel};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture(painter: Painter, format: ConsoleFormat, f: impl FnOnce()) -> String {
    let buf = Buf::default();
    let sink: Sink = Arc::new(Mutex::new(Box::new(buf.clone())));
    let layer = ConsoleLayer::new(painter, format, "node-t".into(), sink);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, f);
    let out = buf.0.lock().clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn plain_lines_have_no_ansi_codes() {
    let out = capture(Painter::new(false), ConsoleFormat::Pretty, || {
        tracing::info!(
            class = "health",
            "{}",
            format::health_summary("my_store", 5, 7)
        );
    });
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(
        out.ends_with("INFO    📈 HEALTH SUMMARY: Store my_store - 5/7 healthy subscriptions\n"),
        "{out:?}"
    );
}

#[test]
fn coloured_lines_use_their_class() {
    let out = capture(Painter::new(true), ConsoleFormat::Pretty, || {
        tracing::warn!(class = "failure", "Emission PAUSED due to unhealthy status");
    });
    assert!(
        out.contains("WARNING \u{1b}[37;41mEmission PAUSED due to unhealthy status\u{1b}[0m"),
        "{out:?}"
    );
}

#[test]
fn banners_print_title_and_body() {
    let (title, body) = format::activation_banner(&format::Activation {
        topic: "s:x",
        store: "s",
        worker: "emitter-1",
        thread: "main, tid 1, pid 1",
        subscriber: "p (native handler)",
    });
    let out = capture(Painter::new(false), ConsoleFormat::Pretty, || {
        tracing::info!(class = "success", banner = body.as_str(), "{title}");
    });
    assert_eq!(out, format!("\n{title}\n\n{body}\n"));
}

#[test]
fn json_format_is_one_object_per_line() {
    let out = capture(Painter::new(true), ConsoleFormat::Json, || {
        tracing::error!(store = "s1", "failed");
    });
    let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(v["level"], "error");
    assert_eq!(v["message"], "failed");
    assert_eq!(v["node"], "node-t");
    assert_eq!(v["metadata"]["store"], "s1");
    assert_eq!(out.lines().count(), 1);
}

#[tokio::test]
async fn bridge_publishes_log_entries_on_the_logging_channel() {
    let bus = Bus::new(BusConfig::default());
    let sub = bus.subscriber("log-watch").unwrap();
    sub.subscribe(Channel::Logging, "log:>").unwrap();
    let handle = BridgeHandle::default();
    handle.attach(&bus);
    let subscriber = tracing_subscriber::registry().with(BridgeLayer::new(handle.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(class = "action", plugin = "p1", "disk almost full");
    });
    let env = sub.try_recv().expect("a LogEntry was published");
    assert_eq!(env.topic, "log:warning");
    let entry: crate::messages::logging::LogEntry = env.decode().unwrap();
    assert_eq!(entry.level, crate::messages::logging::LogLevel::Warning);
    assert_eq!(entry.message, "disk almost full");
    assert_eq!(entry.metadata["plugin"], "p1");
    assert_eq!(entry.metadata["class"], "action");
    assert!(entry.module.unwrap().contains("logging"));
    assert!(sub.try_recv().is_none(), "exactly one entry, no loop");
}

#[test]
fn the_bridge_counts_records_by_level_and_module() {
    let handle = BridgeHandle::default();
    let subscriber = tracing_subscriber::registry().with(BridgeLayer::new(handle.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("one");
        tracing::info!("two");
        tracing::error!(plugin = "guest", "boom");
    });
    // No bus attached: nothing published, everything counted.
    let counts = handle.stats().take();
    let all = counts.summary();
    assert_eq!(all.total_logs, 3);
    assert_eq!(all.log_counts["info"], 2);
    assert_eq!(all.log_counts["error"], 1);
    assert_eq!(all.top_errors, ["boom"]);
    let modules: std::collections::BTreeMap<_, _> = counts.module_summaries().into_iter().collect();
    assert_eq!(modules["plugin:guest"].total_logs, 1);
    let own: Vec<_> = modules.keys().filter(|m| m.contains("logging")).collect();
    assert_eq!(own.len(), 1, "{modules:?}");
    assert_eq!(modules[own[0]].log_counts["info"], 2);
}
