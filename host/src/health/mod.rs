//! Subscription health tracking, circuit breakers and node health.
//!
//! A [`HealthTracker`] per store follows every subscription (plugins
//! register automatically; native subscribers report through
//! [`HealthTracker::record`]), publishes `subscription_health` events and
//! summaries on the `health` channel, and owns each subscription's circuit
//! [`Breaker`]. [`node`] reads this machine's load, memory and disk figures
//! for `NodeHealth`.

mod breaker;
pub mod node;
mod reporter;
mod tracker;

pub use breaker::{Breaker, Gate, Transition};
pub use reporter::Reporter;
pub use tracker::{HealthInput, HealthTracker, SubscriptionHealthState};
