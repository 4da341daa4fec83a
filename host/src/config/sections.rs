//! The sections of the configuration file. Defaults live in `default.toml`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's name, stamped on every message.
    pub name: String,
}

/// `[bus]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSection {
    /// Default inbox capacity per subscriber, in messages.
    pub inbox_capacity: usize,
    /// Wait for room in a `backpressure` inbox, in ms.
    pub backpressure_timeout_ms: u64,
    /// Largest accepted payload, in bytes.
    pub max_payload_bytes: usize,
}

/// When the console uses colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorMode {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always (still off when `NO_COLOR` is set).
    Always,
    /// Never.
    Never,
}

/// How console lines are formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleFormat {
    /// The spec's coloured, emoji-tagged lines.
    Pretty,
    /// One JSON object per line, natively.
    Json,
    /// A `log-formatter` plugin of this name formats each line.
    Plugin(String),
}

impl FromStr for ConsoleFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(ConsoleFormat::Pretty),
            "json" => Ok(ConsoleFormat::Json),
            _ => match s.strip_prefix("plugin:") {
                Some(name) if !name.is_empty() => Ok(ConsoleFormat::Plugin(name.to_owned())),
                _ => Err(format!(
                    "unknown console format `{s}`: expected pretty, json or plugin:<name>"
                )),
            },
        }
    }
}

impl fmt::Display for ConsoleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleFormat::Pretty => f.write_str("pretty"),
            ConsoleFormat::Json => f.write_str("json"),
            ConsoleFormat::Plugin(name) => write!(f, "plugin:{name}"),
        }
    }
}

impl Serialize for ConsoleFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConsoleFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `[console]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Colour mode.
    pub color: ColorMode,
    /// Line format.
    pub format: ConsoleFormat,
    /// Lowest level shown.
    pub level: crate::messages::logging::LogLevel,
}

/// `[health_monitoring]`: the spec's keys, plus the breaker's cooldown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthMonitoring {
    /// Track subscription health.
    pub enabled: bool,
    /// Summary and check period, in ms.
    pub check_interval: u64,
    /// Consecutive failures that make a subscription unhealthy.
    pub unhealthy_threshold: u32,
    /// Whether an unhealthy subscription's circuit breaker opens.
    pub circuit_breaker_enabled: bool,
    /// First cooldown of an open breaker, in ms.
    pub cooldown_ms: u64,
    /// Longest cooldown after repeated failed trials, in ms.
    pub max_cooldown_ms: u64,
}

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
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: String::new(),
            pooling: true,
            pool_max_instances: 256,
            pool_max_memory_mb: 256,
            fuel: false,
            restart_backoff_ms: 100,
            max_restart_backoff_ms: 5000,
            max_restarts: 5,
            restart_window_ms: 60_000,
            max_violations_per_minute: 1000,
        }
    }
}

/// `[api]`: the host's HTTP server — the `/v1` gateway (publish, append,
/// read, live streams, alerts, plugins, health) and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; empty: no HTTP server. A non-loopback address
    /// needs at least one token.
    pub listen: String,
    /// Largest request body accepted, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Live stream clients (SSE and WebSocket) at once (503 beyond).
    pub max_stream_clients: usize,
    /// Messages buffered per stream client; a client that falls further
    /// behind receives a `lagged` event with the number it missed.
    pub stream_buffer: usize,
    /// Bearer tokens; none: the API is open, which is allowed only on a
    /// loopback `listen`.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:7077".into(),
            max_body_bytes: 32 * 1024 * 1024,
            max_stream_clients: 4096,
            stream_buffer: 1024,
            tokens: Vec::new(),
        }
    }
}

/// One `[[api.tokens]]` entry. The token itself never appears in the file:
/// only its SHA-256 (`exesdb-host token new` makes both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who the token belongs to (named in the audit trail).
    pub name: String,
    /// SHA-256 of the token, 64 hex digits.
    pub sha256: String,
    /// What it may do: `read`, `publish:<channel>`, `append:<store>`,
    /// `admin` (`*` for any channel or store).
    pub scopes: Vec<String>,
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Collect and publish metrics.
    pub enabled: bool,
    /// How often metrics are published, in ms.
    pub interval_ms: u64,
}

/// `[stores]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoresConfig {
    /// The store that exists from the start; plugins' subscriptions are
    /// tracked under it.
    pub default: String,
    /// Directory of the stores' files (`<store>.redb`).
    pub data_dir: String,
    /// `immediate` (fsync on every commit) or `relaxed` (no fsync: survives
    /// a process crash, not an OS crash).
    pub durability: crate::store::Durability,
}
