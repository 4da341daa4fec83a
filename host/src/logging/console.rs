//! The console: a `tracing` layer that prints records in the spec's colour
//! classes, as JSON, or through a log-formatter plugin.
//!
//! A record may carry a `class` field (`success`, `failure`, `action`,
//! `health`) choosing its colour; a record with a `banner` field is printed
//! as a banner: the message is the title line, `banner` the body.

use std::io::Write;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
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
        }
    }

    /// The slot a `plugin:<name>` formatter is installed into once loaded.
    pub fn plugin_slot(&self) -> Arc<RwLock<Option<Arc<dyn LineFormatter>>>> {
        Arc::clone(&self.plugin)
    }

    /// Renders one record as console text (with a trailing newline).
    pub(crate) fn render(
        &self,
        level: LogLevel,
        target: &str,
        rec: &Record,
        now: chrono::DateTime<chrono::Utc>,
    ) -> String {
        if let ConsoleFormat::Plugin(_) = &self.format {
            if let Some(f) = self.plugin.read().clone() {
                let entry = super::to_log_entry(level, target, rec);
                let ts = u64::try_from(now.timestamp_millis()).unwrap_or(0);
                if let Some(line) = f.format(&entry, ts, &self.node) {
                    return line + "\n";
                }
            }
        }
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
        let text = self.render(
            level_of(meta.level()),
            meta.target(),
            &rec,
            chrono::Utc::now(),
        );
        let mut sink = self.sink.lock();
        let _ = sink.write_all(text.as_bytes());
        let _ = sink.flush();
    }
}
