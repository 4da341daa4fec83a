//! # exesdb-host
//!
//! ExESDB's PubSub architecture as a WebAssembly plugin host: ten channels
//! ([`bus`]), typed messages ([`messages`]), the `PubSubIntegration` helpers
//! ([`integration`]), the colour-coded console ([`logging`]), configuration
//! ([`config`]) and the host that ties them together ([`host`]).

pub mod api;
pub mod bus;
pub mod cli;
pub mod config;
pub mod emitter;
pub mod health;
pub mod host;
pub mod integration;
#[cfg(test)]
mod layers;
pub mod logging;
pub mod messages;
pub mod metrics;
pub mod reload;
pub mod runtime;
pub mod store;

/// Paths and bytes of the plugins built from `plugins/` by the build script.
pub mod artifacts {
    /// An example plugin embedded in the binary.
    #[derive(Debug, Clone, Copy)]
    pub struct BundledPlugin {
        /// Its name.
        pub name: &'static str,
        /// The component.
        pub wasm: &'static [u8],
        /// The manifest text.
        pub manifest: &'static str,
    }
    include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
}
