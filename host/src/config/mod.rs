//! Configuration: an embedded default, an optional TOML file, and
//! `EXESDB_<SECTION>__<KEY>` environment overrides, in that order.
//!
//! Unknown keys and bad values are errors that name the key and the layer
//! that set it (``config key `health_monitoring.check_interval` (embedded
//! default + environment; set by EXESDB_HEALTH_MONITORING__CHECK_INTERVAL):
//! invalid type: …``). The embedded default (`config/default.toml`, printed
//! by `exesdb-host config`) documents every key.

mod sections;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::api::{ApiConfig, TokenConfig};
pub use crate::bus::BusSection;
pub use crate::health::HealthMonitoring;
pub use crate::logging::{ColorMode, ConsoleConfig, ConsoleFormat};
pub use crate::metrics::MetricsConfig;
pub use crate::runtime::{PluginsConfig, RuntimeConfig};
pub use crate::store::{StoresConfig, DEFAULT_STORE};
pub use sections::NodeConfig;

/// The embedded default configuration, with a comment on every key.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "EXESDB_";

/// The host's whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[node]`
    pub node: NodeConfig,
    /// `[bus]`
    pub bus: BusSection,
    /// `[console]`
    pub console: ConsoleConfig,
    /// `[health_monitoring]`, the spec's keys.
    pub health_monitoring: HealthMonitoring,
    /// `[plugins]`
    pub plugins: PluginsConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
    /// `[stores]`
    pub stores: StoresConfig,
    /// `[runtime]`
    pub runtime: RuntimeConfig,
    /// `[api]`
    pub api: ApiConfig,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key is unknown or its value is invalid.
    #[error("config key `{key}` ({origin}): {message}")]
    Invalid {
        /// Dotted key path, e.g. `health_monitoring.check_interval`.
        key: String,
        /// Where the value came from: the layers applied and, when a file or
        /// a variable was applied, which of them set this key
        /// (`embedded default + file host.toml; set by file host.toml`).
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// An `EXESDB_*` variable does not name a `SECTION__KEY`.
    #[error("environment variable `{var}` does not name a config key: expected EXESDB_<SECTION>__<KEY>, e.g. EXESDB_HEALTH_MONITORING__CHECK_INTERVAL")]
    BadEnvName {
        /// The variable.
        var: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config::from_toml_str(DEFAULT_TOML, "embedded default")
            .expect("the embedded default config is valid")
    }
}

impl Config {
    /// Loads the default, then `file` if given, then the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, key or variable.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// Like [`load`](Self::load) with an explicit environment (for tests).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, key or variable.
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = parse_table(DEFAULT_TOML, Path::new("<embedded default>"))?;
        let mut origins = Origins::new("embedded default");
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let overlay = parse_table(&text, path)?;
            let layer = format!("file {}", path.display());
            origins.layer(&layer);
            origins.set_all("", &overlay, &layer);
            merge(&mut table, overlay);
        }
        let mut env_vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        env_vars.sort();
        for (var, raw) in &env_vars {
            let rest = &var[ENV_PREFIX.len()..];
            let Some((section, key)) = rest.split_once("__") else {
                return Err(ConfigError::BadEnvName { var: var.clone() });
            };
            if section.is_empty() || key.is_empty() {
                return Err(ConfigError::BadEnvName { var: var.clone() });
            }
            let section = section.to_ascii_lowercase();
            let key = key.to_ascii_lowercase();
            origins.set(format!("{section}.{key}"), var.clone());
            let entry = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(Default::default()));
            if let toml::Value::Table(t) = entry {
                t.insert(key, env_value(raw));
            }
        }
        if !env_vars.is_empty() {
            origins.layer("environment");
        }
        Self::from_table(table, &origins)
    }

    /// Parses a complete configuration from TOML text (missing keys are errors).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let table = parse_table(text, Path::new(origin))?;
        Self::from_table(table, &Origins::new(origin))
    }

    fn from_table(table: toml::Table, origins: &Origins) -> Result<Config, ConfigError> {
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                ConfigError::Invalid {
                    origin: origins.of(&key),
                    key,
                    message: e.inner().to_string(),
                }
            })?;
        config.check(origins)?;
        Ok(config)
    }

    /// Value checks serde cannot express.
    fn check(&self, origins: &Origins) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_owned(),
            origin: origins.of(key),
            message: message.to_owned(),
        };
        if self.node.name.trim().is_empty() {
            return Err(invalid("node.name", "must not be empty"));
        }
        if self.bus.inbox_capacity == 0 {
            return Err(invalid("bus.inbox_capacity", "must be at least 1"));
        }
        if self.bus.max_payload_bytes == 0 {
            return Err(invalid("bus.max_payload_bytes", "must be at least 1"));
        }
        let hm = &self.health_monitoring;
        if hm.check_interval < 10 {
            return Err(invalid(
                "health_monitoring.check_interval",
                "must be at least 10 (ms)",
            ));
        }
        if hm.unhealthy_threshold == 0 {
            return Err(invalid(
                "health_monitoring.unhealthy_threshold",
                "must be at least 1",
            ));
        }
        if hm.max_cooldown_ms < hm.cooldown_ms {
            return Err(invalid(
                "health_monitoring.max_cooldown_ms",
                "must not be less than cooldown_ms",
            ));
        }
        let rt = &self.runtime;
        if rt.max_restart_backoff_ms < rt.restart_backoff_ms {
            return Err(invalid(
                "runtime.max_restart_backoff_ms",
                "must not be less than restart_backoff_ms",
            ));
        }
        if rt.max_restarts == 0 {
            return Err(invalid("runtime.max_restarts", "must be at least 1"));
        }
        if rt.max_workers == 0 {
            return Err(invalid("runtime.max_workers", "must be at least 1"));
        }
        if rt.pooling && (rt.pool_max_instances == 0 || rt.pool_max_memory_mb == 0) {
            return Err(invalid(
                "runtime.pool_max_instances",
                "pooling needs at least 1 instance and 1 MiB",
            ));
        }
        if !self.api.listen.is_empty() && self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "api.listen",
                "must be an address like 127.0.0.1:7077, or empty",
            ));
        }
        if self.api.max_stream_clients == 0 || self.api.stream_buffer == 0 {
            return Err(invalid(
                "api.max_stream_clients",
                "max_stream_clients and stream_buffer must be at least 1",
            ));
        }
        if self.api.max_body_bytes < 1024 {
            return Err(invalid("api.max_body_bytes", "must be at least 1024"));
        }
        if self.metrics.interval_ms < 10 {
            return Err(invalid("metrics.interval_ms", "must be at least 10 (ms)"));
        }
        if self.stores.default.is_empty() || self.stores.default.contains([':', ' ']) {
            return Err(invalid(
                "stores.default",
                "must be a non-empty name without `:` or spaces",
            ));
        }
        if self.plugins.max_batch == 0 {
            return Err(invalid("plugins.max_batch", "must be at least 1"));
        }
        Ok(())
    }

    /// The configuration as TOML (what `exesdb-host config` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }

    /// The bus settings this configuration describes.
    pub fn bus_config(&self) -> crate::bus::BusConfig {
        crate::bus::BusConfig {
            node: self.node.name.clone(),
            inbox_capacity: self.bus.inbox_capacity,
            backpressure_timeout: std::time::Duration::from_millis(
                self.bus.backpressure_timeout_ms,
            ),
            max_payload_bytes: self.bus.max_payload_bytes,
            count_published: self.metrics.enabled,
        }
    }
}

/// Which layer set each key: the layers applied, in order, and for every key
/// a file or a variable set, the last one that set it (as for the values).
#[derive(Debug)]
struct Origins {
    /// `embedded default + file host.toml + environment`.
    layers: String,
    /// Dotted key (`health_monitoring.check_interval`; an array as a whole,
    /// `api.tokens`) → `file host.toml` or `EXESDB_…`.
    set_by: BTreeMap<String, String>,
}

impl Origins {
    /// Only the first layer, which sets every key.
    fn new(first: &str) -> Origins {
        Origins {
            layers: first.to_owned(),
            set_by: BTreeMap::new(),
        }
    }

    /// Names a further layer (once, however many keys it sets).
    fn layer(&mut self, name: &str) {
        self.layers = format!("{} + {name}", self.layers);
    }

    /// `key` was set by `source`.
    fn set(&mut self, key: String, source: String) {
        self.set_by.insert(key, source);
    }

    /// Every value in `table` (under `prefix`) was set by `source`.
    fn set_all(&mut self, prefix: &str, table: &toml::Table, source: &str) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => self.set_all(&key, t, source),
                _ => self.set(key, source.to_owned()),
            }
        }
    }

    /// Where the value at `key` (a serde path: `a.b`, `a.b[0].c`) came
    /// from, for an error about it.
    fn of(&self, key: &str) -> String {
        if self.set_by.is_empty() {
            return self.layers.clone();
        }
        format!("{}; set by {}", self.layers, self.source(key))
    }

    fn source(&self, key: &str) -> String {
        // The key, or the nearest enclosing key a layer set (an array's
        // element is set with the array).
        let mut k = key;
        loop {
            if let Some(source) = self.set_by.get(k) {
                return source.clone();
            }
            match k.rfind(['.', '[']) {
                Some(i) => k = &k[..i],
                None => break,
            }
        }
        // A table: whoever set keys inside it.
        let inside: BTreeSet<&str> = self
            .set_by
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
            .map(|(_, source)| source.as_str())
            .collect();
        if inside.is_empty() {
            let first = self.layers.split(" + ").next().unwrap_or_default();
            return first.to_owned();
        }
        inside.into_iter().collect::<Vec<_>>().join(" or ")
    }
}

fn parse_table(text: &str, path: &Path) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim().to_owned(),
        })
}

/// Deep-merges `overlay` into `base`: tables merge, other values replace.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// An environment value as TOML (`1000`, `true`, `"x"`, `[1, 2]`), or a
/// plain string when it does not parse as a TOML value.
fn env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests;
