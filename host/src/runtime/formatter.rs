//! A `log-formatter` plugin used as the console's line formatter
//! (`[console] format = "plugin:<name>"`).

use std::cell::Cell;
use std::sync::Arc;

use parking_lot::Mutex;
use wasmtime::component::InstancePre;

use super::bindings::wit_types::{LogEntry as WitLogEntry, LogLevel as WitLevel};
use super::instance::Instance;
use super::state::{PluginContext, PluginState};
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
    pre: InstancePre<PluginState>,
    engine: wasmtime::Engine,
    instance: Mutex<Option<Instance>>,
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
        pre: InstancePre<PluginState>,
        ctx: Arc<PluginContext>,
    ) -> Result<Arc<FormatterPlugin>, PluginError> {
        let first = Instance::start(runtime.engine(), &pre, Arc::clone(&ctx))?;
        Ok(Arc::new(FormatterPlugin {
            ctx,
            pre,
            engine: runtime.engine().clone(),
            instance: Mutex::new(Some(first)),
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
        let wit = WitLogEntry {
            log_id: entry.log_id.clone(),
            level: wit_level(entry.level),
            message: entry.message.clone(),
            module: entry.module.clone(),
            function: entry.function.clone(),
            line: entry.line,
            metadata: serde_json::Value::Object(entry.metadata.clone()).to_string(),
            timestamp_ms,
            node: node.to_owned(),
        };
        let mut slot = self.instance.lock();
        if slot.is_none() {
            *slot = Some(Instance::start(
                &self.engine,
                &self.pre,
                Arc::clone(&self.ctx),
            )?);
        }
        let result = slot.as_mut().expect("instance present").format(&wit);
        if result.is_err() {
            *slot = None;
        }
        result
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
}
