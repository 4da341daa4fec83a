//! Black-box tests of the real `json-log-formatter` plugin: the exact JSON
//! line it renders (keys, values and key order), its `include_metadata`
//! config, and its use as the console's line formatter: one `format` call
//! per record, one `format-batch` call for the records that queued while
//! the formatter was busy.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use exesdb_host::config::ConsoleFormat;
use exesdb_host::logging::{ConsoleLayer, LineFormatter, Painter, Sink};
use exesdb_host::messages::logging::{LogEntry, LogLevel};
use exesdb_host::runtime::{Actor, FormatterPlugin, PluginError, Plugins, World};
use serde_json::{json, Map, Value};
use tracing_subscriber::layer::SubscriberExt;

const NAME: &str = "json-log-formatter";

/// 2025-07-27T11:30:00.123Z.
const TS: u64 = 1_753_615_800_123;

/// Loads the real component under `name`, its `[config]` edited by `config`.
fn load(
    plugins: &Plugins,
    name: &str,
    config: impl FnOnce(&mut toml::Table),
) -> Arc<FormatterPlugin> {
    let manifest = common::manifest(NAME, name, |t| {
        config(
            t.get_mut("config")
                .and_then(toml::Value::as_table_mut)
                .expect("the manifest has a [config] table"),
        );
    });
    let info = plugins
        .load(Actor::Operator, manifest, &common::wasm(NAME))
        .expect("json-log-formatter loads");
    assert_eq!(info.world, World::LogFormatter);
    assert_eq!(info.subscriber, None, "a formatter has no inbox");
    let f = plugins.formatter(name).expect("a formatter is installed");
    assert_eq!(f.name(), name);
    f
}

fn entry() -> LogEntry {
    let mut metadata = Map::new();
    metadata.insert("store".into(), json!("s1"));
    LogEntry {
        log_id: "log-1".into(),
        level: LogLevel::Warning,
        message: "disk almost full".into(),
        module: Some("exesdb::store".into()),
        function: Some("append_events".into()),
        line: Some(42),
        metadata,
    }
}

/// The top-level keys of a JSON object text, in the order they appear.
fn keys_in_order(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut depth = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            '"' => {
                // Skip the string, remembering where it ends.
                let mut end = i + 1;
                while let Some((j, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => {
                            end = j;
                            break;
                        }
                        _ => {}
                    }
                }
                if depth == 1 && matches!(chars.peek(), Some((_, ':'))) {
                    let key: String = serde_json::from_str(&text[i..=end]).unwrap();
                    keys.push(key);
                }
            }
            _ => {}
        }
    }
    keys
}

fn parse(line: &str) -> Map<String, Value> {
    match serde_json::from_str(line) {
        Ok(Value::Object(o)) => o,
        other => panic!("not a JSON object: {line:?} ({other:?})"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_an_entry_as_one_json_line_with_keys_in_order() {
    let (_bus, plugins) = common::setup();
    let f = load(&plugins, NAME, |_| {});

    let line = f.format_entry(&entry(), TS, "n1").unwrap();
    assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
    assert_eq!(
        keys_in_order(&line),
        [
            "timestamp",
            "level",
            "node",
            "module",
            "message",
            "function",
            "line",
            "metadata"
        ]
    );
    let v = parse(&line);
    assert_eq!(v.len(), 8, "{line}");
    assert_eq!(v["timestamp"], "2025-07-27T11:30:00.123Z");
    assert_eq!(v["level"], "warning");
    assert_eq!(v["node"], "n1");
    assert_eq!(v["module"], "exesdb::store");
    assert_eq!(v["message"], "disk almost full");
    assert_eq!(v["function"], "append_events");
    assert_eq!(v["line"], 42);
    assert_eq!(v["metadata"], json!({ "store": "s1" }));
    // Compact JSON, byte for byte.
    assert_eq!(
        line,
        r#"{"timestamp":"2025-07-27T11:30:00.123Z","level":"warning","node":"n1","module":"exesdb::store","message":"disk almost full","function":"append_events","line":42,"metadata":{"store":"s1"}}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_fields_levels_line_breaks_and_dates() {
    let (_bus, plugins) = common::setup();
    let f = load(&plugins, NAME, |_| {});

    // No module, function, line or metadata: module null, the others left
    // out, metadata `{}`; line breaks and quotes stay escaped on one line.
    let bare = LogEntry {
        log_id: "log-2".into(),
        level: LogLevel::Error,
        message: "first line\nsecond \"quoted\" line\r\n\ttab é 🚨".into(),
        module: None,
        function: None,
        line: None,
        metadata: Map::new(),
    };
    let line = f.format_entry(&bare, TS, "node-x").unwrap();
    assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
    assert_eq!(
        keys_in_order(&line),
        [
            "timestamp",
            "level",
            "node",
            "module",
            "message",
            "metadata"
        ]
    );
    let v = parse(&line);
    assert_eq!(v["module"], Value::Null);
    assert_eq!(v["level"], "error");
    assert_eq!(v["node"], "node-x");
    assert_eq!(v["message"], bare.message.as_str());
    assert_eq!(v["metadata"], json!({}));

    // Only a line, no function.
    let mut only_line = entry();
    only_line.function = None;
    let line = f.format_entry(&only_line, TS, "n1").unwrap();
    assert_eq!(
        keys_in_order(&line),
        [
            "timestamp",
            "level",
            "node",
            "module",
            "message",
            "line",
            "metadata"
        ]
    );

    // Every level's name.
    for (level, name) in [
        (LogLevel::Trace, "trace"),
        (LogLevel::Debug, "debug"),
        (LogLevel::Info, "info"),
        (LogLevel::Warning, "warning"),
        (LogLevel::Error, "error"),
    ] {
        let mut e = entry();
        e.level = level;
        let v = parse(&f.format_entry(&e, TS, "n1").unwrap());
        assert_eq!(v["level"], name);
    }

    // Dates: the epoch, leap days, century boundaries, millisecond padding.
    for (ms, expected) in [
        (0, "1970-01-01T00:00:00.000Z"),
        (946_684_799_999, "1999-12-31T23:59:59.999Z"),
        (951_868_800_000, "2000-03-01T00:00:00.000Z"),
        (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
        (1_753_615_800_005, "2025-07-27T11:30:00.005Z"),
        (4_107_587_696_789, "2100-03-01T12:34:56.789Z"),
    ] {
        let v = parse(&f.format_entry(&entry(), ms, "n1").unwrap());
        assert_eq!(v["timestamp"], expected, "{ms}");
    }

    // Metadata values of every JSON type come through as JSON.
    let mut rich = entry();
    rich.metadata = json!({
        "count": 3, "ratio": 0.5, "ok": true, "none": null,
        "list": [1, "two"], "nested": { "a": { "b": "c" } }
    })
    .as_object()
    .unwrap()
    .clone();
    let v = parse(&f.format_entry(&rich, TS, "n1").unwrap());
    assert_eq!(v["metadata"], Value::Object(rich.metadata.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_metadata_false_leaves_metadata_out() {
    let (_bus, plugins) = common::setup();
    let with = load(&plugins, NAME, |_| {});
    let without = load(&plugins, "json-lines-bare", |c| {
        c.insert("include_metadata".into(), false.into());
    });

    let line = without.format_entry(&entry(), TS, "n1").unwrap();
    assert_eq!(
        keys_in_order(&line),
        [
            "timestamp",
            "level",
            "node",
            "module",
            "message",
            "function",
            "line"
        ]
    );
    assert_eq!(
        line,
        r#"{"timestamp":"2025-07-27T11:30:00.123Z","level":"warning","node":"n1","module":"exesdb::store","message":"disk almost full","function":"append_events","line":42}"#
    );

    // Each loaded formatter keeps its own config.
    let v = parse(&with.format_entry(&entry(), TS, "n1").unwrap());
    assert_eq!(v["metadata"], json!({ "store": "s1" }));

    // A config value of the wrong type fails init.
    let manifest = common::manifest(NAME, "json-lines-broken", |t| {
        t.get_mut("config")
            .and_then(toml::Value::as_table_mut)
            .unwrap()
            .insert("include_metadata".into(), "yes".into());
    });
    match plugins.load(Actor::Operator, manifest, &common::wasm(NAME)) {
        Err(PluginError::Init { plugin, message }) => {
            assert_eq!(plugin, "json-lines-broken");
            assert!(message.contains("invalid config"), "{message}");
        }
        other => panic!("expected PluginError::Init, got {other:?}"),
    }
    assert!(plugins.formatter("json-lines-broken").is_none());

    // Unloading removes it.
    plugins
        .unload(Actor::Operator, "json-lines-bare")
        .await
        .unwrap();
    assert!(plugins.formatter("json-lines-bare").is_none());
    assert!(plugins.status("json-lines-bare").is_none());
    assert!(plugins.formatter(NAME).is_some());
}

/// An in-memory console sink.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

fn now_ms() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(d.as_millis()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_prints_through_the_plugin() {
    let (_bus, plugins) = common::setup();
    let f = load(&plugins, NAME, |_| {});

    let buf = Buf::default();
    let boxed: Box<dyn Write + Send> = Box::new(buf.clone());
    let sink: Sink = Arc::new(boxed.into());
    let layer = ConsoleLayer::new(
        Painter::new(false),
        ConsoleFormat::Plugin(NAME.into()),
        "node-c".into(),
        sink,
    );
    let slot = layer.plugin_slot();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));

    // Not installed yet: the built-in format.
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::warn!(store = "s1", "disk almost full");
    });
    let out = buf.take();
    assert!(
        out.ends_with("WARNING disk almost full store=s1\n")
            && serde_json::from_str::<Value>(&out).is_err(),
        "{out:?}"
    );

    // Installed: one JSON line per record.
    *slot.write() = Some(Arc::clone(&f) as Arc<dyn LineFormatter>);
    let before = now_ms();
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::warn!(store = "s1", "disk almost full");
    });
    let after = now_ms();
    let out = buf.take();
    assert!(out.ends_with('\n'), "{out:?}");
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let line = out.trim_end_matches('\n');
    assert_eq!(
        keys_in_order(line),
        [
            "timestamp",
            "level",
            "node",
            "module",
            "message",
            "metadata"
        ]
    );
    let v = parse(line);
    assert_eq!(v["level"], "warning");
    assert_eq!(v["message"], "disk almost full");
    assert_eq!(v["node"], "node-c");
    assert_eq!(v["module"], module_path!());
    assert_eq!(v["metadata"], json!({ "store": "s1" }));
    // RFC 3339 with milliseconds is ordered as text: the record's time lies
    // between the times taken around it.
    let ts = v["timestamp"].as_str().unwrap();
    let rfc = |ms| {
        let l = f.format_entry(&entry(), ms, "n").unwrap();
        parse(&l)["timestamp"].as_str().unwrap().to_owned()
    };
    assert!(
        rfc(before).as_str() <= ts && ts <= rfc(after).as_str(),
        "{ts} not within [{before}, {after}]"
    );

    // Several records, several lines, each its own JSON object.
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(class = "success", "first");
        tracing::error!(attempt = 3u64, "second\nwith a break");
    });
    let out = buf.take();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    let first = parse(lines[0]);
    assert_eq!(first["level"], "info");
    assert_eq!(first["message"], "first");
    assert_eq!(first["metadata"], json!({ "class": "success" }));
    let second = parse(lines[1]);
    assert_eq!(second["level"], "error");
    assert_eq!(second["message"], "second\nwith a break");
    assert_eq!(second["metadata"], json!({ "attempt": 3 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_batch_formats_several_entries_in_one_call() {
    let (_bus, plugins) = common::setup();
    let f = load(&plugins, NAME, |_| {});
    let mut second = entry();
    second.level = LogLevel::Info;
    second.message = "second".into();
    second.function = None;
    let entries = vec![(entry(), TS), (second.clone(), TS + 1)];

    assert_eq!(f.batch_calls(), 0);
    let lines = f.format_entries(&entries, "n1").unwrap();
    assert_eq!(f.batch_calls(), 1, "one call of the guest's format-batch");
    // One line per entry, in order, each as `format` renders it.
    assert_eq!(
        lines,
        [
            f.format_entry(&entry(), TS, "n1").unwrap(),
            f.format_entry(&second, TS + 1, "n1").unwrap()
        ]
    );
    assert_eq!(f.batch_calls(), 1, "format does not count as a batch");
    assert_eq!(f.format_entries(&[], "n1").unwrap(), Vec::<String>::new());

    // Through the console's trait: one line per entry.
    let through = LineFormatter::format_batch(&*f, &entries, "n1");
    assert_eq!(through, lines.into_iter().map(Some).collect::<Vec<_>>());
    assert_eq!(f.batch_calls(), 3);
}

/// The gate's two signals: entered (to the test), open (from the test).
type Gate = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

/// The real formatter behind a gate: its first single-line `format` waits
/// until the test opens the gate, so records logged meanwhile queue in the
/// console; `format_batch` calls are counted with their sizes.
struct Gated {
    inner: Arc<FormatterPlugin>,
    gate: Mutex<Option<Gate>>,
    batches: Mutex<Vec<usize>>,
}

impl LineFormatter for Gated {
    fn format(&self, entry: &LogEntry, timestamp_ms: u64, node: &str) -> Option<String> {
        let gate = self.gate.lock().unwrap().take();
        if let Some((entered, open)) = gate {
            entered.send(()).unwrap();
            open.recv().unwrap();
        }
        LineFormatter::format(&*self.inner, entry, timestamp_ms, node)
    }

    fn format_batch(&self, entries: &[(LogEntry, u64)], node: &str) -> Vec<Option<String>> {
        self.batches.lock().unwrap().push(entries.len());
        LineFormatter::format_batch(&*self.inner, entries, node)
    }
}

/// Signals each record it sees before the console (the next layer) does.
struct Seen(std::sync::mpsc::Sender<()>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let _ = self.0.send(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_formats_records_that_queued_meanwhile_with_format_batch() {
    let (_bus, plugins) = common::setup();
    let f = load(&plugins, NAME, |_| {});
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (open, open_rx) = std::sync::mpsc::channel();
    let gated = Arc::new(Gated {
        inner: Arc::clone(&f),
        gate: Mutex::new(Some((entered_tx, open_rx))),
        batches: Mutex::default(),
    });

    let buf = Buf::default();
    let boxed: Box<dyn Write + Send> = Box::new(buf.clone());
    let sink: Sink = Arc::new(boxed.into());
    let layer = ConsoleLayer::new(
        Painter::new(false),
        ConsoleFormat::Plugin(NAME.into()),
        "node-b".into(),
        sink,
    );
    *layer.plugin_slot().write() = Some(Arc::clone(&gated) as Arc<dyn LineFormatter>);
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(Seen(seen_tx))
            .with(layer),
    );

    // The first record: its thread formats it, held at the gate.
    let first = {
        let dispatch = dispatch.clone();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || tracing::warn!("first"));
        })
    };
    entered.recv().unwrap();
    seen.recv().unwrap();

    // Four more while it formats: they queue, each thread waiting for its line.
    const MORE: usize = 4;
    let more: Vec<_> = (0..MORE)
        .map(|i| {
            let (dispatch, buf) = (dispatch.clone(), buf.clone());
            std::thread::spawn(move || {
                let message = format!("queued-{i}");
                tracing::dispatcher::with_default(&dispatch, || {
                    tracing::info!(n = i as u64, "{message}");
                });
                // Back from logging only once its line is printed.
                let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
                assert!(out.contains(&format!("\"{message}\"")), "{out:?}");
            })
        })
        .collect();
    for _ in 0..MORE {
        seen.recv().unwrap();
    }
    // Past `Seen`, each record is queued at once, without waiting on anything.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        buf.take(),
        "",
        "nothing printed while the formatter is busy"
    );

    open.send(()).unwrap();
    first.join().unwrap();
    for t in more {
        t.join().unwrap();
    }

    assert_eq!(
        *gated.batches.lock().unwrap(),
        [MORE],
        "one batch of the queued records"
    );
    assert_eq!(
        f.batch_calls(),
        1,
        "the guest's format-batch was called once"
    );
    let out = buf.take();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + MORE, "{out:?}");
    let first = parse(lines[0]);
    assert_eq!(first["message"], "first");
    assert_eq!(first["node"], "node-b");
    let mut queued: Vec<(String, u64)> = lines[1..]
        .iter()
        .map(|l| {
            let v = parse(l);
            assert_eq!(v["level"], "info", "{l}");
            assert_eq!(v["node"], "node-b", "{l}");
            assert_eq!(
                keys_in_order(l),
                [
                    "timestamp",
                    "level",
                    "node",
                    "module",
                    "message",
                    "metadata"
                ]
            );
            (
                v["message"].as_str().unwrap().to_owned(),
                v["metadata"]["n"].as_u64().unwrap(),
            )
        })
        .collect();
    queued.sort();
    let expected: Vec<(String, u64)> = (0..MORE as u64)
        .map(|i| (format!("queued-{i}"), i))
        .collect();
    assert_eq!(queued, expected);
}
