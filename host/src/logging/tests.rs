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
            lines::health_summary("my_store", 5, 7)
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
    // A banner as `emitter::banner` makes one: a centred title, field lines.
    let title = format!("{:^72}", "EMITTER WORKER ACTIVATION");
    let body = "Topic:      \"s:x\"\n\
                Store:      s\n\
                Worker:     emitter-1\n\
                Thread:     main, tid 1, pid 1\n\
                Subscriber: p (native handler)\n";
    let out = capture(Painter::new(false), ConsoleFormat::Pretty, || {
        tracing::info!(class = "success", banner = body, "{title}");
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

/// A formatter for the queue's tests: `format` gives `one: <message>`, the
/// first call waiting at a gate (so that records queue meanwhile);
/// `format_batch` gives `batch <i>/<n>: <message>`, nothing for a message
/// holding `builtin`, and counts its calls.
struct Fake {
    gate: Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
    batches: Mutex<Vec<usize>>,
}

impl LineFormatter for Fake {
    fn format(
        &self,
        entry: &crate::messages::logging::LogEntry,
        _: u64,
        _: &str,
    ) -> Option<String> {
        let gate = self.gate.lock().take();
        if let Some((entered, open)) = gate {
            entered.send(()).unwrap();
            open.recv().unwrap();
        }
        Some(format!("one: {}", entry.message))
    }

    fn format_batch(
        &self,
        entries: &[(crate::messages::logging::LogEntry, u64)],
        _: &str,
    ) -> Vec<Option<String>> {
        self.batches.lock().push(entries.len());
        let n = entries.len();
        entries
            .iter()
            .enumerate()
            .map(|(i, (e, _))| {
                (!e.message.contains("builtin")).then(|| format!("batch {i}/{n}: {}", e.message))
            })
            .collect()
    }
}

#[test]
fn a_plugin_console_formats_queued_records_in_one_batch() {
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (open, open_rx) = std::sync::mpsc::channel();
    let fake = Arc::new(Fake {
        gate: Mutex::new(Some((entered_tx, open_rx))),
        batches: Mutex::default(),
    });
    let buf = Buf::default();
    let layer = ConsoleLayer::new(
        Painter::new(false),
        ConsoleFormat::Plugin("fake".into()),
        "node-t".into(),
        sink_to(buf.clone()),
    );
    *layer.plugin_slot().write() = Some(Arc::clone(&fake) as Arc<dyn LineFormatter>);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let log = |message: &'static str| {
        let dispatch = dispatch.clone();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || tracing::info!("{message}"));
        })
    };

    let first = log("first");
    entered.recv().unwrap();
    let more: Vec<_> = ["a", "builtin b", "c"]
        .into_iter()
        .map(|m| {
            let t = log(m);
            // One at a time, so that they queue in this order.
            std::thread::sleep(std::time::Duration::from_millis(100));
            t
        })
        .collect();
    assert!(buf.0.lock().is_empty(), "nothing printed while formatting");
    open.send(()).unwrap();
    first.join().unwrap();
    for t in more {
        t.join().unwrap();
    }

    assert_eq!(*fake.batches.lock(), [3]);
    let out = String::from_utf8(buf.0.lock().clone()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert_eq!(lines[0], "one: first");
    // The queued ones, in the order they were logged.
    assert_eq!(lines[1], "batch 0/3: a");
    // An entry the batch leaves out: the built-in format.
    assert!(lines[2].ends_with("INFO    builtin b"), "{out:?}");
    assert_eq!(lines[3], "batch 2/3: c");
}
