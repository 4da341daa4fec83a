//! The bus's section of the configuration file, `[bus]`.

use serde::{Deserialize, Serialize};

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

impl Default for BusSection {
    /// The values of the embedded `default.toml`.
    fn default() -> Self {
        BusSection {
            inbox_capacity: 1024,
            backpressure_timeout_ms: 5000,
            max_payload_bytes: 1 << 20,
        }
    }
}
