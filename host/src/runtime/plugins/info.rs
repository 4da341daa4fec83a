//! What [`Plugins::list`](super::Plugins::list) and
//! [`status`](super::Plugins::status) report about a plugin: its
//! [`PluginInfo`] and run state. The lifecycle operations write it when a
//! version is loaded, the plugin's worker as it delivers, traps and parks;
//! the live figures (drops, refusals, memory, stderr, outbound, state) are
//! read from the running version when a status is taken.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::bus::SubscriberId;
use crate::runtime::{Contract, OutboundInfo, World};

/// Run state of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    /// Handling messages.
    Running,
    /// Its instance trapped; a fresh one is being started.
    Restarting,
    /// Trapped too often, or exceeded its violation budget: nothing is
    /// delivered until it is reloaded.
    Parked,
    /// Its worker has stopped (it is being unloaded).
    Stopped,
    /// Unloaded by an operator while its files are still in the watched
    /// plugins directory: it stays unloaded until one of them changes (or
    /// it is loaded or reloaded explicitly).
    Unloaded,
}

/// What `list`/`status` report about a plugin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its world.
    pub world: World,
    /// The contract version its component was built against (`0.1.0`, `0.2.0`).
    pub contract: Contract,
    /// The guest's source language, read once at load from the component's
    /// `producers` sections (those of the component and of the modules in
    /// it): `rust`, `python` (componentize-py), `javascript`
    /// (ComponentizeJS / StarlingMonkey), another producer's language name
    /// lowercased (`c11`, `go`, …), or `unknown` when none names one.
    pub language: String,
    /// Run state.
    pub state: PluginState,
    /// When it was loaded.
    pub loaded_at: DateTime<Utc>,
    /// Messages handled successfully.
    pub delivered: u64,
    /// Messages whose handling failed (error or trap).
    pub failed: u64,
    /// Traps so far.
    pub traps: u64,
    /// Instances started after a trap.
    pub restarts: u64,
    /// The last error, on one line (the full text is in the `DebugTrace`).
    pub last_error: Option<String>,
    /// Messages its inbox dropped (`drop_oldest` overflow); the plugin
    /// receives a `Lagged` marker with the count before its next messages.
    pub dropped: u64,
    /// Calls refused because they were outside its grants.
    pub violations: u64,
    /// Its bus subscriber (subscribers and escalators).
    pub subscriber: Option<SubscriberId>,
    /// The manifest file it was loaded from, if any.
    pub source: Option<String>,
    /// Bytes of linear memory of its current instance (all its memories),
    /// kept up to date as the instance grows them and counted afresh when
    /// an instance starts (after a trap, or a reload); while it is
    /// restarting, parked or unloaded, those of its last instance.
    pub memory_bytes: u64,
    /// Its most recent stderr lines, oldest first: at most 20 complete
    /// lines (each cut at 8 KiB) of its current instance, the ones a trap
    /// report quotes; a line still being written is not included.
    pub stderr: Vec<String>,
    /// Its outbound HTTP requests per destination (`scheme://host:port`),
    /// by destination, counted across its versions since it was loaded.
    pub outbound: Vec<OutboundInfo>,
    /// Bytes of durable key-value state (`wasi:keyvalue`) it keeps, keys
    /// and values, across its versions and the host's restarts.
    pub state_bytes: u64,
}
