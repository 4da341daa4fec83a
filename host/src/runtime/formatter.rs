//! A `log-formatter` plugin used as the console's line formatter
//! (`[console] format = "plugin:<name>"`): `format` for one line,
//! `format-batch` for the lines the console formats at once.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::bindings::wit_types::{LogEntry as WitLogEntry, LogLevel as WitLevel};
use super::instance::{FormatterExports, Instance, Pre};
use super::state::PluginContext;
use super::{PluginError, Runtime};
use crate::logging::LineFormatter;
use crate::messages::logging::{LogEntry, LogLevel};

thread_local! {
    static FORMATTING: Cell<bool> = const { Cell::new(false) };
}

/// A loaded log-formatter. Calls are serialised; a trapped instance is
/// replaced on the next call.
pub struct FormatterPlugin {
    ctx: Arc<PluginContext>,
    pre: Pre<FormatterExports>,
    engine: wasmtime::Engine,
    instance: Mutex<Option<Instance<FormatterExports>>>,
    /// Calls of `format-batch` that returned.
    batches: AtomicU64,
}

impl std::fmt::Debug for FormatterPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormatterPlugin")
            .field("plugin", &self.ctx.name())
            .finish()
    }
}

fn wit_level(l: LogLevel) -> WitLevel {
    match l {
        LogLevel::Trace => WitLevel::Trace,
        LogLevel::Debug => WitLevel::Debug,
        LogLevel::Info => WitLevel::Info,
        LogLevel::Warning => WitLevel::Warning,
        LogLevel::Error => WitLevel::Error,
    }
}

impl FormatterPlugin {
    pub(crate) fn start(
        runtime: &Runtime,
        pre: Pre<FormatterExports>,
        ctx: Arc<PluginContext>,
    ) -> Result<Arc<FormatterPlugin>, PluginError> {
        let first = Instance::start(runtime.engine(), &pre, Arc::clone(&ctx))?;
        Ok(Arc::new(FormatterPlugin {
            ctx,
            pre,
            engine: runtime.engine().clone(),
            instance: Mutex::new(Some(first)),
            batches: AtomicU64::new(0),
        }))
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        self.ctx.name()
    }

    /// Formats one entry.
    ///
    /// # Errors
    /// [`PluginError::Trap`] (the instance is replaced on the next call) or a
    /// failed re-instantiation.
    pub fn format_entry(
        &self,
        entry: &LogEntry,
        timestamp_ms: u64,
        node: &str,
    ) -> Result<String, PluginError> {
        let wit = wit_entry(entry, timestamp_ms, node);
        self.call(|instance| instance.format(&wit))
    }

    /// Formats several entries, each with its time, in one call of the
    /// guest's `format-batch`: the lines it returned, which the WIT asks to
    /// be one per entry, in order (the caller checks).
    ///
    /// # Errors
    /// As [`format_entry`](Self::format_entry).
    pub fn format_entries(
        &self,
        entries: &[(LogEntry, u64)],
        node: &str,
    ) -> Result<Vec<String>, PluginError> {
        let wit: Vec<WitLogEntry> = entries
            .iter()
            .map(|(entry, timestamp_ms)| wit_entry(entry, *timestamp_ms, node))
            .collect();
        let lines = self.call(|instance| instance.format_batch(&wit))?;
        self.batches.fetch_add(1, Ordering::Relaxed);
        Ok(lines)
    }

    /// How many `format-batch` calls returned so far.
    pub fn batch_calls(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Runs `f` on the instance, started first if the last one trapped;
    /// a failed call drops the instance.
    fn call<R>(
        &self,
        f: impl FnOnce(&mut Instance<FormatterExports>) -> Result<R, PluginError>,
    ) -> Result<R, PluginError> {
        let mut slot = self.instance.lock();
        if slot.is_none() {
            *slot = Some(Instance::start(
                &self.engine,
                &self.pre,
                Arc::clone(&self.ctx),
            )?);
        }
        let result = f(slot.as_mut().expect("instance present"));
        if result.is_err() {
            *slot = None;
        }
        result
    }
}

fn wit_entry(entry: &LogEntry, timestamp_ms: u64, node: &str) -> WitLogEntry {
    WitLogEntry {
        log_id: entry.log_id.clone(),
        level: wit_level(entry.level),
        message: entry.message.clone(),
        module: entry.module.clone(),
        function: entry.function.clone(),
        line: entry.line,
        metadata: serde_json::Value::Object(entry.metadata.clone()).to_string(),
        timestamp_ms,
        node: node.to_owned(),
    }
}

impl LineFormatter for FormatterPlugin {
    fn format(&self, entry: &LogEntry, timestamp_ms: u64, node: &str) -> Option<String> {
        // A record emitted while formatting (by the guest's own host calls)
        // falls back to the built-in format instead of re-entering the guest.
        if FORMATTING.with(Cell::get) {
            return None;
        }
        FORMATTING.with(|f| f.set(true));
        let line = self.format_entry(entry, timestamp_ms, node).ok();
        FORMATTING.with(|f| f.set(false));
        line
    }

    /// One `format-batch` call; when it traps or returns another number of
    /// lines than entries, each entry is formatted on its own, as
    /// [`format`](LineFormatter::format) does.
    fn format_batch(&self, entries: &[(LogEntry, u64)], node: &str) -> Vec<Option<String>> {
        if FORMATTING.with(Cell::get) {
            return vec![None; entries.len()];
        }
        FORMATTING.with(|f| f.set(true));
        let lines = match self.format_entries(entries, node) {
            Ok(lines) if lines.len() == entries.len() => lines.into_iter().map(Some).collect(),
            _ => entries
                .iter()
                .map(|(entry, timestamp_ms)| self.format_entry(entry, *timestamp_ms, node).ok())
                .collect(),
        };
        FORMATTING.with(|f| f.set(false));
        lines
    }
}
