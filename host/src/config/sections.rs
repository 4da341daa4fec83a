//! The one section of the configuration file no module owns, `[node]`.
//! Every other section's struct lives in its module (`bus`, `logging`,
//! `health`, `metrics`, `store`, `runtime`, `api`) and is re-exported from
//! [`crate::config`]. The embedded `default.toml` documents every key; each
//! section's `Default` gives the same values (checked by a test), except
//! `RuntimeConfig::default`'s empty `cache_dir`.

use serde::{Deserialize, Serialize};

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's name, stamped on every message.
    pub name: String,
}

impl Default for NodeConfig {
    /// The value of the embedded `default.toml`.
    fn default() -> Self {
        NodeConfig {
            name: "exesdb@localhost".to_owned(),
        }
    }
}
