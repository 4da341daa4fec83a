//! The colour-coded console and the `logging` channel.
//!
//! [`init`] installs a `tracing` subscriber with two layers: the
//! [`ConsoleLayer`] (spec formats and colours, honouring `NO_COLOR` and
//! non-terminal output) and the [`BridgeLayer`] that publishes every record
//! as a `LogEntry` on the `logging` channel, topic `log:<level>`.
//! [`lines`] shows a bus message as one console line (the spec's lines of
//! `HealthSummary`, `MetricsSummary` and `SubscriptionHealth` among them);
//! [`summary`] the per-interval counts of records behind `LogSummary`.
//! Each other console format lives with the module that prints it.

mod bridge;
mod console;
pub mod lines;
mod settings;
mod style;
pub mod summary;

use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use bridge::{BridgeHandle, BridgeLayer};
pub use console::{sink_to, ConsoleLayer, LineFormatter, Sink};
pub use settings::{ColorMode, ConsoleConfig, ConsoleFormat};
pub use style::{resolve as color_enabled, Class, Painter};
pub use summary::LogStats;

use crate::messages::logging::{LogEntry, LogLevel};
use console::Record;

/// Handles to the installed logging stack.
#[derive(Clone)]
pub struct Logging {
    /// Where log records are published on the bus.
    pub bridge: BridgeHandle,
    /// Where a `plugin:<name>` console formatter is installed.
    pub formatter: Arc<RwLock<Option<Arc<dyn LineFormatter>>>>,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logging")
            .field("bridge", &self.bridge)
            .finish_non_exhaustive()
    }
}

static INSTALLED: OnceLock<Logging> = OnceLock::new();

/// Installs the console and bridge as the process's global `tracing`
/// subscriber, once; later calls return the first installation's handles.
/// `RUST_LOG` overrides the configured level when set.
pub fn init(config: &ConsoleConfig, node: &str) -> Logging {
    INSTALLED
        .get_or_init(|| {
            let painter = Painter::detect(config.color);
            let sink: Sink = Arc::new(Mutex::new(Box::new(std::io::stdout())));
            let console = ConsoleLayer::new(painter, config.format.clone(), node.to_owned(), sink);
            let formatter = console.plugin_slot();
            let bridge = BridgeHandle::default();
            let filter = EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(filter_directive(config.level)));
            let _ = tracing_subscriber::registry()
                .with(console.with_filter(filter))
                .with(
                    BridgeLayer::new(bridge.clone())
                        .with_filter(EnvFilter::new(filter_directive(config.level))),
                )
                .try_init();
            Logging { bridge, formatter }
        })
        .clone()
}

/// The handles of the installed stack, if [`init`] ran.
pub fn installed() -> Option<Logging> {
    INSTALLED.get().cloned()
}

/// The `tracing` filter directive (`"warn"`, …) showing `level` and above:
/// what [`init`] filters the console with for `[console] level`.
pub fn filter_directive(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warning => "warn",
        LogLevel::Error => "error",
    }
}

/// Builds the `LogEntry` for a record.
pub(crate) fn to_log_entry(level: LogLevel, target: &str, rec: &Record) -> LogEntry {
    let mut metadata = rec.fields.clone();
    if let Some(class) = &rec.class {
        metadata.insert("class".into(), class.clone().into());
    }
    let message = match &rec.banner {
        Some(body) => format!("{}\n{body}", rec.message.trim()),
        None => rec.message.clone(),
    };
    LogEntry {
        log_id: uuid::Uuid::now_v7().to_string(),
        level,
        message,
        module: Some(target.to_owned()),
        function: None,
        line: None,
        metadata,
    }
}

#[cfg(test)]
mod tests;
