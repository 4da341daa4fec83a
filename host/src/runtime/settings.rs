//! The runtime's sections of the configuration file, `[runtime]` (the
//! WebAssembly engine and the restart policy) and `[plugins]`.

use serde::{Deserialize, Serialize};

/// `[plugins]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directory of `<name>.wasm` + `<name>.toml` pairs; empty for none.
    pub dir: String,
    /// Load the example plugins bundled into the binary.
    pub bundled: bool,
    /// Most messages per `on-batch` call.
    pub max_batch: usize,
    /// Watch `dir` and load, replace or unload plugins as files change.
    pub watch: bool,
    /// Quiet period after the last file event before acting, in ms.
    pub watch_debounce_ms: u64,
}

impl Default for PluginsConfig {
    /// The values of the embedded `default.toml`.
    fn default() -> Self {
        PluginsConfig {
            dir: String::new(),
            bundled: true,
            max_batch: 256,
            watch: true,
            watch_debounce_ms: 150,
        }
    }
}

/// `[runtime]`: the WebAssembly engine and the restart policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Directory of compiled components (empty: no cache).
    pub cache_dir: String,
    /// Use wasmtime's pooling instance allocator (the default): instances
    /// come from pre-reserved slots, about half the instantiation time of
    /// on-demand allocation; plugins' `limits.memory_mb` must then fit in
    /// `pool_max_memory_mb`.
    pub pooling: bool,
    /// Pooling: most live instances (all plugins together).
    pub pool_max_instances: u32,
    /// Pooling: largest linear memory of one instance, MiB.
    pub pool_max_memory_mb: u64,
    /// Most plugin workers running at once, in all plugin sets of the
    /// process: each subscriber or escalator runs on its own thread, and
    /// a load past this fails naming the key (formatters have no worker).
    /// Threads and their memory mappings are finite: with Linux's default
    /// `vm.max_map_count` (65,530) a process aborts near 7,400 plugin
    /// threads (docs/benchmarks.md, scaling bench), so the default stays
    /// well below.
    pub max_workers: u32,
    /// Meter fuel, so manifests may set `limits.fuel`.
    pub fuel: bool,
    /// First wait before restarting a trapped plugin, ms; doubles per trap.
    pub restart_backoff_ms: u64,
    /// Longest wait between restarts, ms.
    pub max_restart_backoff_ms: u64,
    /// Traps within `restart_window_ms` after which a plugin is parked.
    pub max_restarts: u32,
    /// Window for `max_restarts`, ms.
    pub restart_window_ms: u64,
    /// Refused calls (outside a plugin's grants) within a sliding minute
    /// after which the plugin is parked with a `SecurityAlert`; 0: no limit.
    pub max_violations_per_minute: u64,
    /// PEM files of certificate authorities plugins' `https` requests trust
    /// besides the built-in Mozilla roots (a private CA, a TLS-inspecting
    /// proxy's). Relative paths are from the working directory. Start-up
    /// fails naming a file that cannot be read or holds no certificate.
    #[serde(default)]
    pub outbound_ca_files: Vec<String>,
}

impl Default for RuntimeConfig {
    /// The values of the embedded `default.toml`, except `cache_dir`: empty
    /// (no compilation cache) here, so a runtime built in code or a test
    /// writes nothing to the working directory, while the host's file
    /// default is `.exesdb/cache`.
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: String::new(),
            pooling: true,
            pool_max_instances: 256,
            pool_max_memory_mb: 256,
            max_workers: 4096,
            fuel: false,
            restart_backoff_ms: 100,
            max_restart_backoff_ms: 5000,
            max_restarts: 5,
            restart_window_ms: 60_000,
            max_violations_per_minute: 1000,
            outbound_ca_files: Vec::new(),
        }
    }
}
