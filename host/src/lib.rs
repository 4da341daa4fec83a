//! # exesdb-host
//!
//! ExESDB's PubSub architecture as a WebAssembly plugin host: ten channels
//! ([`bus`]), typed messages ([`messages`]), the `PubSubIntegration` helpers
//! ([`integration`]), the colour-coded console ([`logging`]), configuration
//! ([`config`]) and the host that ties them together ([`host`]).

pub mod bus;
pub mod cli;
pub mod config;
pub mod host;
pub mod integration;
pub mod logging;
pub mod messages;
