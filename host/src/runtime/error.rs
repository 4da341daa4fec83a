//! Why a plugin could not be loaded or run. Every variant names the plugin.

use super::manifest::{ManifestError, World};

/// A plugin failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// The manifest is missing or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component file could not be read.
    #[error("plugin `{plugin}`: cannot read component {path}: {message}")]
    Read {
        /// The plugin.
        plugin: String,
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error("plugin `{plugin}`: malformed component: {message}")]
    Malformed {
        /// The plugin.
        plugin: String,
        /// What wasmtime said.
        message: String,
    },
    /// The component does not export the manifest's world.
    #[error("plugin `{plugin}`: the manifest declares world `{world}` but the component does not export `{}` (or `{}` of an older contract; it exports: {})", super::Contract::CURRENT.export(*world), super::Contract::V0_1.export(*world), exports.join(", "))]
    WrongWorld {
        /// The plugin.
        plugin: String,
        /// The declared world.
        world: World,
        /// What the component exports.
        exports: Vec<String>,
    },
    /// The component imports something the host does not provide.
    #[error("plugin `{plugin}`: cannot link: {message}")]
    Link {
        /// The plugin.
        plugin: String,
        /// What wasmtime said.
        message: String,
    },
    /// Instantiation failed (or trapped in a start function).
    #[error("plugin `{plugin}`: cannot instantiate: {message}")]
    Instantiate {
        /// The plugin.
        plugin: String,
        /// What wasmtime said.
        message: String,
    },
    /// As many plugin workers run as `[runtime] max_workers` allows.
    #[error("plugin `{plugin}`: cannot start its worker: {max} plugin workers are running, the most `[runtime] max_workers` allows")]
    TooManyWorkers {
        /// The plugin.
        plugin: String,
        /// The limit.
        max: u32,
    },
    /// `init` returned an error.
    #[error("plugin `{plugin}`: init failed: {message}")]
    Init {
        /// The plugin.
        plugin: String,
        /// The guest's error.
        message: String,
    },
    /// A call trapped (a bug, or a limit such as memory or time).
    #[error("plugin `{plugin}`: trapped in {call}: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The export that trapped.
        call: String,
        /// The trap, and the last stderr lines.
        message: String,
    },
    /// A WASI grant could not be honoured.
    #[error("plugin `{plugin}`: {message}")]
    Grant {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// A reload changes the plugin's world; unload it and load the new one.
    #[error("plugin `{plugin}`: cannot hot-swap world `{from}` to `{to}`; unload it first")]
    WorldChanged {
        /// The plugin.
        plugin: String,
        /// The running version's world.
        from: World,
        /// The new version's world.
        to: World,
    },
    /// A plugin of that name is already loaded.
    #[error("plugin `{plugin}` is already loaded")]
    Duplicate {
        /// The plugin.
        plugin: String,
    },
    /// The host is shutting down: nothing more is loaded.
    #[error("plugin `{plugin}`: not loaded, the host is shutting down")]
    ShuttingDown {
        /// The plugin.
        plugin: String,
    },
    /// No plugin of that name is loaded.
    #[error("no plugin named `{plugin}` is loaded")]
    NotFound {
        /// The plugin.
        plugin: String,
    },
    /// Setting up the bus subscription failed.
    #[error("plugin `{plugin}`: {message}")]
    Bus {
        /// The plugin.
        plugin: String,
        /// The bus's error.
        message: String,
    },
    /// The engine could not be created.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// A `[runtime]` setting cannot be used.
    #[error("[runtime] {key}: {message}")]
    Setting {
        /// The key.
        key: &'static str,
        /// Why.
        message: String,
    },
}

impl PluginError {
    pub(crate) fn engine(e: wasmtime::Error) -> PluginError {
        PluginError::Engine(format!("{e:#}"))
    }

    /// The plugin's name, when the error concerns one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            PluginError::Manifest(_) | PluginError::Engine(_) | PluginError::Setting { .. } => None,
            PluginError::Read { plugin, .. }
            | PluginError::Malformed { plugin, .. }
            | PluginError::WrongWorld { plugin, .. }
            | PluginError::Link { plugin, .. }
            | PluginError::Instantiate { plugin, .. }
            | PluginError::Init { plugin, .. }
            | PluginError::TooManyWorkers { plugin, .. }
            | PluginError::Trap { plugin, .. }
            | PluginError::Grant { plugin, .. }
            | PluginError::WorldChanged { plugin, .. }
            | PluginError::Duplicate { plugin }
            | PluginError::ShuttingDown { plugin }
            | PluginError::NotFound { plugin }
            | PluginError::Bus { plugin, .. } => Some(plugin),
        }
    }
}

/// Longest text [`one_line`] keeps.
const ONE_LINE_MAX: usize = 400;

/// `text` as one console-safe line: line breaks and other control
/// characters become ` | ` or spaces, blank lines are dropped, and the
/// result is cut at a few hundred characters (marked with `…`). A byte
/// array, a backtrace or a multi-line compiler error thus stays one record;
/// the full text goes to the `DebugTrace` or the alert's metadata.
pub fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    let mut out: String = joined
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ONE_LINE_MAX)
        .collect();
    if joined.chars().count() > ONE_LINE_MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod one_line_tests {
    use super::one_line;

    #[test]
    fn multi_line_text_becomes_one_bounded_line() {
        let text =
            "trap in on-message\n\nwasm backtrace:\n    0: 0x1f - <unknown>!f\r\n\t1: x\u{1b}[31m";
        let line = one_line(text);
        assert_eq!(
            line,
            "trap in on-message | wasm backtrace: | 0: 0x1f - <unknown>!f | 1: x [31m"
        );
        let long = "y\n".repeat(1000);
        let line = one_line(&long);
        assert!(!line.contains('\n'));
        assert_eq!(line.chars().count(), 401, "400 kept and the ellipsis");
        assert!(line.ends_with('…'));
    }
}
