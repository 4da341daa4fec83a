//! The metrics' section of the configuration file, `[metrics]`.

use serde::{Deserialize, Serialize};

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Collect and publish metrics.
    pub enabled: bool,
    /// How often metrics are published, in ms.
    pub interval_ms: u64,
}

impl Default for MetricsConfig {
    /// The values of the embedded `default.toml`.
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            interval_ms: 5000,
        }
    }
}
