//! The subscription health tracker of one store.
//!
//! Inputs come from the runtime and native subscribers ([`HealthInput`]).
//! Every input but a plain successful delivery is published as a
//! `SubscriptionHealth` event on `health`, topics `store_health:<store>`
//! and `subscription_health:<store>:<name>`; a successful delivery is
//! published only when it changes the status. Status rules:
//! success → healthy; a failure → degraded; `unhealthy_threshold` failures
//! in a row → failed (and the breaker opens when enabled).
//! Each published event is also logged, at info level, as the spec's
//! `📡 HEALTH EVENT: <subscription> -> <event> (store=…, status=…, breaker=…)`.
//! With `[health_monitoring] enabled = false` inputs are ignored and the
//! gate always says deliver.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;

use super::breaker::{Breaker, Gate, Transition};
use super::HealthMonitoring;
use crate::bus::Bus;
use crate::integration::{send_now, send_now_with, topics, Correlation};
use crate::logging::lines::{health_event, health_summary};
use crate::messages::tracking::{
    BreakerState, HealthEventType, HealthSummary, SubscriptionHealth, SubscriptionStatus,
};

/// Something that happened to a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthInput {
    /// Registration began.
    RegistrationStarted,
    /// Registration succeeded.
    RegistrationSucceeded,
    /// Registration failed, with the reason.
    RegistrationFailed(String),
    /// This many messages were delivered successfully.
    Delivered(u64),
    /// A delivery failed (handler error).
    DeliveryFailed(String),
    /// The handler trapped (counts as a failed delivery).
    Trap(String),
    /// The handler was restarted.
    Restarted,
    /// The handler trapped too often and was parked until reloaded.
    Parked(String),
    /// The subscriber is alive.
    Heartbeat,
}

/// One subscription's health, as queried from Rust.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionHealthState {
    /// Its name.
    pub name: String,
    /// Current status.
    pub status: SubscriptionStatus,
    /// Breaker state.
    pub breaker: BreakerState,
    /// When anything was last heard of it.
    pub last_seen: Option<DateTime<Utc>>,
    /// Messages delivered successfully.
    pub event_count: u64,
    /// When the last message was delivered.
    pub last_event: Option<DateTime<Utc>>,
    /// Failures so far.
    pub error_count: u64,
    /// Failures in a row.
    pub consecutive_failures: u64,
    /// The last error.
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Tracked {
    state: SubscriptionHealthState,
    breaker: Breaker,
}

/// Tracks the subscriptions of one store.
#[derive(Debug)]
pub struct HealthTracker {
    store: String,
    config: HealthMonitoring,
    bus: Bus,
    subs: Mutex<BTreeMap<String, Tracked>>,
}

fn rfc3339(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl HealthTracker {
    /// A tracker for `store`.
    pub fn new(store: &str, config: HealthMonitoring, bus: Bus) -> Arc<HealthTracker> {
        Arc::new(HealthTracker {
            store: store.to_owned(),
            config,
            bus,
            subs: Mutex::default(),
        })
    }

    /// The store tracked.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// Whether tracking is on.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn new_tracked(&self, name: &str) -> Tracked {
        Tracked {
            state: SubscriptionHealthState {
                name: name.to_owned(),
                status: SubscriptionStatus::Unknown,
                breaker: BreakerState::Closed,
                last_seen: None,
                event_count: 0,
                last_event: None,
                error_count: 0,
                consecutive_failures: 0,
                last_error: None,
            },
            breaker: Breaker::new(
                self.config.circuit_breaker_enabled,
                u64::from(self.config.unhealthy_threshold),
                Duration::from_millis(self.config.cooldown_ms),
                Duration::from_millis(self.config.max_cooldown_ms),
            ),
        }
    }

    /// Records an input for subscription `name` (tracked from its first input).
    pub fn record(&self, name: &str, input: HealthInput) {
        self.record_caused(name, input, None);
    }

    /// [`record`](Self::record) of an outcome caused by message `cause` (a
    /// failed delivery, a trap): the `SubscriptionHealth` reports carry its
    /// id as causation id and its correlation id.
    pub fn record_caused(
        &self,
        name: &str,
        input: HealthInput,
        cause: Option<&crate::messages::Envelope>,
    ) {
        if !self.config.enabled {
            return;
        }
        let now = Utc::now();
        let mut events = Vec::new();
        let snapshot = {
            let mut subs = self.subs.lock();
            let t = subs
                .entry(name.to_owned())
                .or_insert_with(|| self.new_tracked(name));
            let before = t.state.status;
            t.state.last_seen = Some(now);
            let event = match input {
                HealthInput::RegistrationStarted => {
                    t.state.status = SubscriptionStatus::Registering;
                    Some(HealthEventType::RegistrationStarted)
                }
                HealthInput::RegistrationSucceeded => {
                    t.state.status = SubscriptionStatus::Healthy;
                    t.state.consecutive_failures = 0;
                    t.breaker.reset();
                    Some(HealthEventType::RegistrationSuccess)
                }
                HealthInput::RegistrationFailed(e) => {
                    t.state.status = SubscriptionStatus::Failed;
                    t.state.last_error = Some(e);
                    Some(HealthEventType::RegistrationFailed)
                }
                HealthInput::Delivered(n) => {
                    t.state.event_count += n;
                    t.state.last_event = Some(now);
                    t.state.consecutive_failures = 0;
                    t.state.status = SubscriptionStatus::Healthy;
                    if t.breaker.on_success() == Some(Transition::Closed) {
                        events.push(HealthEventType::CircuitBreakerClosed);
                    }
                    (before != SubscriptionStatus::Healthy)
                        .then_some(HealthEventType::DeliverySuccess)
                }
                HealthInput::DeliveryFailed(ref e) | HealthInput::Trap(ref e) => {
                    let trap = matches!(input, HealthInput::Trap(_));
                    let e = e.clone();
                    t.state.error_count += 1;
                    t.state.consecutive_failures += 1;
                    t.state.last_error = Some(e);
                    t.state.status = if t.state.consecutive_failures
                        >= u64::from(self.config.unhealthy_threshold)
                    {
                        SubscriptionStatus::Failed
                    } else {
                        SubscriptionStatus::Degraded
                    };
                    let opened = t
                        .breaker
                        .on_failure(t.state.consecutive_failures, Instant::now());
                    if opened == Some(Transition::Opened) {
                        events.push(HealthEventType::CircuitBreakerOpened);
                    }
                    Some(if trap {
                        HealthEventType::Trap
                    } else {
                        HealthEventType::DeliveryFailed
                    })
                }
                HealthInput::Restarted => Some(HealthEventType::Restart),
                HealthInput::Parked(reason) => {
                    t.state.status = SubscriptionStatus::Failed;
                    t.state.last_error = Some(reason);
                    if t.breaker.park(Instant::now()) == Some(Transition::Opened) {
                        events.push(HealthEventType::CircuitBreakerOpened);
                    }
                    Some(HealthEventType::Parked)
                }
                HealthInput::Heartbeat => Some(HealthEventType::Heartbeat),
            };
            if let Some(e) = event {
                events.insert(0, e);
            }
            t.state.breaker = t.breaker.state();
            (t.state.clone(), before)
        };
        let (state, before) = snapshot;
        for event in events {
            self.publish(&state, event, cause);
        }
        if state.status != before {
            self.impact(&state, before);
        }
    }

    /// What the subscription's deliverer may do now (half-opens an open
    /// breaker whose cooldown is over).
    pub fn gate(&self, name: &str) -> Gate {
        if !self.config.enabled {
            return Gate::Deliver;
        }
        let (gate, state) = {
            let mut subs = self.subs.lock();
            let Some(t) = subs.get_mut(name) else {
                return Gate::Deliver;
            };
            let (gate, transition) = t.breaker.gate(Instant::now());
            t.state.breaker = t.breaker.state();
            (
                gate,
                (transition == Some(Transition::HalfOpened)).then(|| t.state.clone()),
            )
        };
        if let Some(state) = state {
            self.publish(&state, HealthEventType::CircuitBreakerHalfOpen, None);
        }
        gate
    }

    /// Stops tracking a subscription.
    pub fn remove(&self, name: &str) {
        let removed = self.subs.lock().remove(name);
        if let Some(t) = removed {
            self.publish(&t.state, HealthEventType::Removed, None);
        }
    }

    /// One subscription's health.
    pub fn subscription(&self, name: &str) -> Option<SubscriptionHealthState> {
        self.subs.lock().get(name).map(|t| t.state.clone())
    }

    /// Every tracked subscription, by name.
    pub fn list(&self) -> Vec<SubscriptionHealthState> {
        self.subs.lock().values().map(|t| t.state.clone()).collect()
    }

    /// Counts by status.
    pub fn summary(&self) -> HealthSummary {
        let subs = self.subs.lock();
        let count =
            |s: SubscriptionStatus| subs.values().filter(|t| t.state.status == s).count() as u64;
        HealthSummary {
            store: self.store.clone(),
            total: subs.len() as u64,
            healthy: count(SubscriptionStatus::Healthy),
            degraded: count(SubscriptionStatus::Degraded),
            failed: count(SubscriptionStatus::Failed),
            registering: count(SubscriptionStatus::Registering),
            unknown: count(SubscriptionStatus::Unknown),
        }
    }

    /// Publishes the summary on `health_summary:<store>` and logs it.
    pub fn publish_summary(&self) -> HealthSummary {
        let summary = self.summary();
        tracing::info!(
            class = "health",
            "{}",
            health_summary(&self.store, summary.healthy, summary.total)
        );
        send_now(&self.bus, &topics::health_summary(&self.store), &summary);
        summary
    }

    fn publish(
        &self,
        s: &SubscriptionHealthState,
        event: HealthEventType,
        cause: Option<&crate::messages::Envelope>,
    ) {
        let payload = SubscriptionHealth {
            store: self.store.clone(),
            subscription: s.name.clone(),
            event,
            status: s.status,
            breaker: s.breaker,
            event_count: s.event_count,
            error_count: s.error_count,
            consecutive_failures: s.consecutive_failures,
            last_event: rfc3339(s.last_event),
            last_error: s.last_error.clone(),
            last_seen: rfc3339(s.last_seen),
        };
        let meta = format!(
            "store={}, status={}, breaker={}",
            self.store,
            s.status.as_str(),
            s.breaker.as_str()
        );
        // At info, so the spec's line shows at the default console level.
        tracing::info!(
            class = "health",
            "{}",
            health_event(&s.name, event.as_str(), &meta)
        );
        // Caused by `cause`: its id as causation id, its correlation id (if
        // any) as correlation id.
        let ids = Correlation {
            correlation_id: cause.and_then(|c| c.correlation_id.clone()),
            causation_id: cause.map(|c| c.id.to_string()),
        };
        send_now_with(
            &self.bus,
            &topics::store_health(&self.store),
            &payload,
            &ids,
        );
        send_now_with(
            &self.bus,
            &topics::subscription_health(&self.store, &s.name),
            &payload,
            &ids,
        );
    }

    fn impact(&self, s: &SubscriptionHealthState, before: SubscriptionStatus) {
        let healthy = matches!(s.status, SubscriptionStatus::Healthy);
        let shown = match s.status {
            SubscriptionStatus::Failed => "unhealthy",
            other => other.as_str(),
        };
        let reason = match (s.breaker, s.status) {
            (BreakerState::Open, _) => "circuit_breaker_opened".to_owned(),
            (_, SubscriptionStatus::Healthy) if before == SubscriptionStatus::Registering => {
                "registration_success".to_owned()
            }
            (_, SubscriptionStatus::Healthy) => "delivery_success".to_owned(),
            _ => s
                .last_error
                .clone()
                .unwrap_or_else(|| s.status.as_str().to_owned()),
        };
        let line = health_impact(&s.name, shown, &reason);
        if healthy {
            tracing::info!(class = "health", "{line}");
        } else {
            tracing::warn!(class = "failure", "{line}");
        }
    }
}

/// `🏥 HEALTH IMPACT: subscription_name is HEALTHY (registration_success)`:
/// logged when a subscription's status changes.
fn health_impact(subscription: &str, status: &str, reason: &str) -> String {
    format!(
        "🏥 HEALTH IMPACT: {subscription} is {} ({reason})",
        status.to_ascii_uppercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_impact_line() {
        assert_eq!(
            health_impact("subscription_name", "healthy", "registration_success"),
            "🏥 HEALTH IMPACT: subscription_name is HEALTHY (registration_success)"
        );
    }
}
