//! The host's own tracking kinds: subscription health and summaries on
//! `health`, and metrics summaries on `metrics`. These carry the spec's
//! `{:subscription_health, event}`, `{:health_summary, summary}` and
//! `metrics_summary` messages as typed payloads.

use serde::{Deserialize, Serialize};

use super::kind::message_kinds;

message_kinds! {
    SubscriptionHealth => Health,
    HealthSummary => Health,
    MetricsSummary => Metrics,
}

/// Health status of one tracked subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Being set up (a plugin loading).
    Registering,
    /// Delivering without failures.
    Healthy,
    /// Recent failures, fewer than `unhealthy_threshold` in a row.
    Degraded,
    /// `unhealthy_threshold` or more failures in a row, or registration failed.
    Failed,
    /// Nothing known yet.
    Unknown,
}

impl SubscriptionStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// State of a subscription's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum BreakerState {
    /// Deliveries flow.
    Closed,
    /// Nothing is delivered until the cooldown ends.
    Open,
    /// One trial delivery decides between closed and open.
    HalfOpen,
}

impl BreakerState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What happened to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum HealthEventType {
    /// Registration began.
    RegistrationStarted,
    /// Registration completed: the subscription is live.
    RegistrationSuccess,
    /// Registration failed.
    RegistrationFailed,
    /// Deliveries succeeded (published only when the status changes).
    DeliverySuccess,
    /// A delivery failed (the handler returned an error).
    DeliveryFailed,
    /// The handler trapped.
    Trap,
    /// The handler was restarted after a trap.
    Restart,
    /// The circuit breaker opened.
    CircuitBreakerOpened,
    /// The circuit breaker let one trial delivery through.
    CircuitBreakerHalfOpen,
    /// The circuit breaker closed after a successful trial.
    CircuitBreakerClosed,
    /// The subscriber reported it is alive.
    Heartbeat,
    /// The subscription was removed.
    Removed,
    /// The handler trapped too often and is parked until reloaded.
    Parked,
}

impl HealthEventType {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A subscription health event (`store_health:<store>` and
/// `subscription_health:<store>:<subscription>`), with the subscription's
/// state after the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionHealth {
    /// The store the subscription belongs to.
    pub store: String,
    /// The subscription's name.
    pub subscription: String,
    /// What happened.
    pub event: HealthEventType,
    /// Status after the event.
    pub status: SubscriptionStatus,
    /// Circuit breaker state after the event.
    pub breaker: BreakerState,
    /// Messages delivered successfully so far.
    pub event_count: u64,
    /// Failures (errors and traps) so far.
    pub error_count: u64,
    /// Failures in a row.
    pub consecutive_failures: u64,
    /// When the last message was delivered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
    /// The last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When anything was last heard of it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// Counts of a store's subscriptions by status (`health_summary:<store>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSummary {
    /// The store.
    pub store: String,
    /// All tracked subscriptions.
    pub total: u64,
    /// Healthy ones.
    pub healthy: u64,
    /// Degraded ones.
    pub degraded: u64,
    /// Failed ones.
    pub failed: u64,
    /// Registering ones.
    pub registering: u64,
    /// Unknown ones.
    pub unknown: u64,
}

/// A store's metrics at a glance (`metrics_summary:<store>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSummary {
    /// The store.
    pub store: String,
    /// Events per second over the sliding window.
    pub events_per_second: f64,
    /// Events since start.
    pub total_events: u64,
    /// Live subscriptions.
    pub active_subscriptions: u64,
    /// Messages waiting in inboxes now.
    pub queue_depth: u64,
    /// Messages evicted by `drop_oldest` since start.
    pub dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscription_health_round_trips_with_snake_case_names() {
        let h = SubscriptionHealth {
            store: "s".into(),
            subscription: "p".into(),
            event: HealthEventType::CircuitBreakerOpened,
            status: SubscriptionStatus::Failed,
            breaker: BreakerState::HalfOpen,
            event_count: 3,
            error_count: 2,
            consecutive_failures: 2,
            last_event: None,
            last_error: Some("x".into()),
            last_seen: None,
        };
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["event"], "circuit_breaker_opened");
        assert_eq!(v["breaker"], "half_open");
        assert_eq!(v["status"], "failed");
        assert!(v.get("last_event").is_none());
        assert_eq!(serde_json::from_value::<SubscriptionHealth>(v).unwrap(), h);
        for e in [HealthEventType::Trap, HealthEventType::RegistrationSuccess] {
            assert_eq!(serde_json::to_value(e).unwrap(), json!(e.as_str()));
        }
    }

    #[test]
    fn summaries_ignore_unknown_fields_and_require_the_counts() {
        let s = serde_json::from_value::<HealthSummary>(json!({
            "store": "s", "total": 1, "healthy": 1, "degraded": 0, "failed": 0,
            "registering": 0, "unknown": 0, "extra": 1
        }))
        .unwrap();
        assert_eq!((s.store.as_str(), s.total, s.healthy), ("s", 1, 1));
        let err = serde_json::from_value::<HealthSummary>(json!({
            "store": "s", "total": 1, "healthy": 1, "degraded": 0, "failed": 0,
            "registering": 0, "extra": 1
        }))
        .unwrap_err();
        assert!(err.to_string().contains("missing field `unknown`"), "{err}");
    }
}
