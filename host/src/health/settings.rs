//! Health monitoring's section of the configuration file,
//! `[health_monitoring]`.

use serde::{Deserialize, Serialize};

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

impl Default for HealthMonitoring {
    /// The values of the embedded `default.toml`.
    fn default() -> Self {
        HealthMonitoring {
            enabled: true,
            check_interval: 5000,
            unhealthy_threshold: 3,
            circuit_breaker_enabled: true,
            cooldown_ms: 1000,
            max_cooldown_ms: 30_000,
        }
    }
}
