//! The stores' section of the configuration file, `[stores]`.

use serde::{Deserialize, Serialize};

use super::Durability;

/// The name of the store that exists from the start, unless `[stores]`
/// names another.
pub const DEFAULT_STORE: &str = "default";

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
    pub durability: Durability,
}

impl Default for StoresConfig {
    /// The values of the embedded `default.toml`.
    fn default() -> Self {
        StoresConfig {
            default: DEFAULT_STORE.to_owned(),
            data_dir: ".exesdb/data".to_owned(),
            durability: Durability::Immediate,
        }
    }
}
