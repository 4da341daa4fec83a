//! Subscription health tracking, circuit breakers and node health.
//!
//! A [`HealthTracker`] per store (made with the store, see
//! [`Stores`](crate::emitter::Stores)) follows that store's subscriptions:
//! the default store's also follows the plugins' bus subscriptions (they
//! register automatically; native bus subscribers report through
//! [`HealthTracker::record`]), every store's follows the emitter workers
//! delivering its events. It publishes `subscription_health` events and
//! summaries on the `health` channel, and owns each subscription's circuit
//! [`Breaker`]. [`node`] reads this machine's and this process's figures for
//! `NodeHealth` and `ResourceUsage`; [`announce`] prints the spec's
//! `SUBSCRIBED` lines when something subscribes to a store's health or
//! metrics.
//!
//! The [`Reporter`] and the [`Announcer`] read the layers above through the
//! traits of [`sources`]: [`StoreTrackers`] (the stores and their trackers,
//! implemented by `emitter::Stores`) and [`ComponentReport`] (a component's
//! health, implemented by `runtime::Plugins`); `host` wires them. Topics are
//! built with [`crate::integration::topics`].

pub mod announce;
mod breaker;
pub mod node;
mod reporter;
mod settings;
pub mod sources;
mod tracker;

pub use announce::Announcer;
pub use breaker::{Breaker, Gate, Transition};
pub use reporter::Reporter;
pub use settings::HealthMonitoring;
pub use sources::{ComponentReport, StoreTrackers};
pub use tracker::{HealthInput, HealthTracker, SubscriptionHealthState};
