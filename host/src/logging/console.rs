//! The console: a `tracing` layer that prints records in the spec's colour
//! classes, as JSON, or through a log-formatter plugin.
//!
//! A record may carry a `class` field (`success`, `failure`, `action`,
//! `health`) choosing its colour; a record with a `banner` field is printed
//! as a banner: the message is the title line, `banner` the body.
//!
//! # Through a formatter plugin
//! Records reach the console from many threads, and a formatter formats
//! one call at a time. So while a thread is formatting, the records other
//! threads log wait in a queue; when its call returns, the same thread
//! formats everything that queued meanwhile in one
//! [`format_batch`](LineFormatter::format_batch) call (the plugin's WIT
//! `format-batch`) and prints the lines in the order the records arrived.
//! Each thread still returns from its record only once its line is
//! printed, as without a queue. An entry the formatter cannot format (a
//! trap, a failed batch formatted again line by line and failing again)
//! is printed in the built-in format. (A record logged on the formatting
//! thread while it formats, by the guest's own host calls, is not
//! dispatched by `tracing`; should one reach the console, it is printed
//! at once in the built-in format rather than wait for its own thread.)

use std::cell::Cell;
use std::io::Write;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

use super::style::{Class, Painter};
use super::ConsoleFormat;
use crate::messages::logging::{LogEntry, LogLevel};

/// Formats a log entry into one console line (for `plugin:<name>` formats).
pub trait LineFormatter: Send + Sync {
    /// The line, or `None` to fall back to the built-in format.
    fn format(&self, entry: &LogEntry, timestamp_ms: u64, node: &str) -> Option<String>;

    /// Several entries at once, each with its time (milliseconds since the
    /// epoch), in order: one line (or `None`, the built-in format) per
    /// entry. The [`ConsoleLayer`] calls it with the records other threads
    /// logged while the formatter was busy, which queue until the call in
    /// progress returns; each of those threads returns once its line is
    /// printed. By default, [`format`](Self::format) per entry.
    fn format_batch(&self, entries: &[(LogEntry, u64)], node: &str) -> Vec<Option<String>> {
        entries
            .iter()
            .map(|(entry, timestamp_ms)| self.format(entry, *timestamp_ms, node))
            .collect()
    }
}

thread_local! {
    /// Whether this thread is printing the queue of a console's formatter.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
}

/// A record waiting for the formatter.
#[derive(Debug)]
struct Queued {
    level: LogLevel,
    target: String,
    rec: Record,
    now: chrono::DateTime<chrono::Utc>,
}

/// The records waiting for a formatter plugin, numbered in arrival order.
#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<Queued>,
    /// Whether a thread is formatting and printing them.
    draining: bool,
    /// The number the next record gets.
    next: u64,
    /// Every record numbered below this one is printed.
    printed: u64,
}

/// The queue and the signal that more of it is printed.
#[derive(Debug, Default)]
struct PluginQueue {
    queue: Mutex<Queue>,
    printed: Condvar,
}

/// Marks this thread as draining until dropped. When formatting or
/// printing panicked, the drain ends and whatever is still queued is given
/// up (its threads return), so that no thread waits forever.
struct DrainGuard<'a>(&'a PluginQueue);

impl<'a> DrainGuard<'a> {
    fn new(queue: &'a PluginQueue) -> DrainGuard<'a> {
        DRAINING.with(|d| d.set(true));
        DrainGuard(queue)
    }
}

impl Drop for DrainGuard<'_> {
    fn drop(&mut self) {
        DRAINING.with(|d| d.set(false));
        if std::thread::panicking() {
            // The lock is not held while formatting and printing.
            let mut q = self.0.queue.lock();
            q.draining = false;
            q.waiting.clear();
            q.printed = q.next;
            drop(q);
            self.0.printed.notify_all();
        }
    }
}

/// What a record carries, gathered from its fields.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub(crate) message: String,
    pub(crate) class: Option<String>,
    pub(crate) banner: Option<String>,
    pub(crate) fields: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Record {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "class" => self.class = Some(value.to_owned()),
            "banner" => self.banner = Some(value.to_owned()),
            name => {
                self.fields.insert(name.to_owned(), value.into());
            }
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = text,
            "class" => self.class = Some(text.trim_matches('"').to_owned()),
            "banner" => self.banner = Some(text.trim_matches('"').to_owned()),
            name => {
                self.fields.insert(name.to_owned(), text.into());
            }
        }
    }
}

/// Maps a `tracing` level to the spec's log level.
pub(crate) fn level_of(level: &tracing::Level) -> LogLevel {
    match *level {
        tracing::Level::TRACE => LogLevel::Trace,
        tracing::Level::DEBUG => LogLevel::Debug,
        tracing::Level::INFO => LogLevel::Info,
        tracing::Level::WARN => LogLevel::Warning,
        tracing::Level::ERROR => LogLevel::Error,
    }
}

/// Where console lines go.
pub type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// A [`Sink`] writing to `w` (a file, a buffer in a test, …).
pub fn sink_to(w: impl Write + Send + 'static) -> Sink {
    Arc::new(Mutex::new(Box::new(w)))
}

/// The console layer.
pub struct ConsoleLayer {
    painter: Painter,
    format: ConsoleFormat,
    node: String,
    sink: Sink,
    plugin: Arc<RwLock<Option<Arc<dyn LineFormatter>>>>,
    queue: PluginQueue,
}

impl std::fmt::Debug for ConsoleLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleLayer")
            .field("painter", &self.painter)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl ConsoleLayer {
    /// A console writing to `sink`.
    pub fn new(painter: Painter, format: ConsoleFormat, node: String, sink: Sink) -> ConsoleLayer {
        ConsoleLayer {
            painter,
            format,
            node,
            sink,
            plugin: Arc::default(),
            queue: PluginQueue::default(),
        }
    }

    /// The slot a `plugin:<name>` formatter is installed into once loaded.
    pub fn plugin_slot(&self) -> Arc<RwLock<Option<Arc<dyn LineFormatter>>>> {
        Arc::clone(&self.plugin)
    }

    /// The installed formatter plugin, when the format is `plugin:<name>`.
    fn formatter(&self) -> Option<Arc<dyn LineFormatter>> {
        match &self.format {
            ConsoleFormat::Plugin(_) => self.plugin.read().clone(),
            _ => None,
        }
    }

    fn write(&self, text: &str) {
        let mut sink = self.sink.lock();
        let _ = sink.write_all(text.as_bytes());
        let _ = sink.flush();
    }

    /// Prints `record` through the formatter plugin: queued behind the
    /// records already waiting, formatted and printed by whichever thread
    /// is draining the queue, or by this one when none is. Returns once the
    /// record is printed.
    fn print_through_plugin(&self, record: Queued) {
        let mut q = self.queue.queue.lock();
        let number = q.next;
        q.next += 1;
        q.waiting.push(record);
        if q.draining {
            while q.printed <= number {
                self.queue.printed.wait(&mut q);
            }
            return;
        }
        q.draining = true;
        let _guard = DrainGuard::new(&self.queue);
        loop {
            let batch = std::mem::take(&mut q.waiting);
            if batch.is_empty() {
                // Under the lock: a record queued from now on is drained
                // by its own thread.
                q.draining = false;
                return;
            }
            // The batch holds the records numbered from `printed` on.
            let printed = q.printed + batch.len() as u64;
            drop(q);
            let text = self.format_queued(&batch);
            self.write(&text);
            q = self.queue.queue.lock();
            q.printed = printed;
            self.queue.printed.notify_all();
        }
    }

    /// The console text of queued records: one formatter call for all of
    /// them (`format` for one, `format_batch` for more), the built-in
    /// format for each entry it does not format.
    fn format_queued(&self, batch: &[Queued]) -> String {
        let ms = |now: &chrono::DateTime<chrono::Utc>| {
            u64::try_from(now.timestamp_millis()).unwrap_or(0)
        };
        let lines: Vec<Option<String>> = match self.formatter() {
            None => Vec::new(),
            Some(f) => {
                let entries: Vec<(LogEntry, u64)> = batch
                    .iter()
                    .map(|r| (super::to_log_entry(r.level, &r.target, &r.rec), ms(&r.now)))
                    .collect();
                match entries.as_slice() {
                    [(entry, ts)] => vec![f.format(entry, *ts, &self.node)],
                    _ => f.format_batch(&entries, &self.node),
                }
            }
        };
        let mut text = String::new();
        for (i, r) in batch.iter().enumerate() {
            match lines.get(i).cloned().flatten() {
                Some(line) => {
                    text.push_str(&line);
                    text.push('\n');
                }
                None => text.push_str(&self.render(r.level, &r.target, &r.rec, r.now)),
            }
        }
        text
    }

    /// Renders one record in the built-in format (pretty or JSON) as
    /// console text (with a trailing newline).
    pub(crate) fn render(
        &self,
        level: LogLevel,
        target: &str,
        rec: &Record,
        now: chrono::DateTime<chrono::Utc>,
    ) -> String {
        if self.format == ConsoleFormat::Json {
            let mut obj = serde_json::Map::new();
            obj.insert(
                "timestamp".into(),
                now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .into(),
            );
            obj.insert("level".into(), level.as_str().into());
            obj.insert("node".into(), self.node.clone().into());
            obj.insert("module".into(), target.into());
            obj.insert("message".into(), rec.message.clone().into());
            if let Some(b) = &rec.banner {
                obj.insert("banner".into(), b.clone().into());
            }
            if !rec.fields.is_empty() {
                obj.insert("metadata".into(), rec.fields.clone().into());
            }
            return serde_json::Value::Object(obj).to_string() + "\n";
        }
        let class = rec.class.as_deref().map_or(
            match level {
                LogLevel::Error => Class::Failure,
                _ => Class::Plain,
            },
            Class::from_field,
        );
        let time = now.format("%H:%M:%S%.3f");
        let lvl = format!("{:<7}", level.as_str().to_ascii_uppercase());
        match &rec.banner {
            Some(body) => format!("\n{}\n\n{body}\n", self.painter.paint(class, &rec.message)),
            None => {
                let mut line = format!("{time} {lvl} {}", self.painter.paint(class, &rec.message));
                for (k, v) in &rec.fields {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    line.push_str(&format!(" {k}={v}"));
                }
                line + "\n"
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for ConsoleLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut rec = Record::default();
        event.record(&mut rec);
        let meta = event.metadata();
        let (level, now) = (level_of(meta.level()), chrono::Utc::now());
        if !DRAINING.with(Cell::get) && self.formatter().is_some() {
            self.print_through_plugin(Queued {
                level,
                target: meta.target().to_owned(),
                rec,
                now,
            });
            return;
        }
        self.write(&self.render(level, meta.target(), &rec, now));
    }
}
