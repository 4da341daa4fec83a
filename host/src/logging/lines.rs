//! One line per bus message, as the console shows it: the spec's line for
//! the kinds that have one (`HealthSummary`, `MetricsSummary`,
//! `SubscriptionHealth`), otherwise time, channel, topic, kind and payload.
//! Shared by `exesdb-host tail` and the gateway's console view of a stream
//! (the dashboard's live tail), so both read alike.
//!
//! Those three spec lines are built here, and the health tracker and the
//! metrics collector log them with these same functions: `logging` sits
//! below `health` and `metrics`, so the lines that both the console's view
//! of a message and its publisher print live in the lower module. The
//! other console formats live with what prints them: the `SUBSCRIBED` lines
//! in `health::announce`, `HEALTH IMPACT` in the health tracker, `METRICS
//! EVENT` in the metrics collector, the banners in `emitter::banner`.

use super::Class;
use crate::messages::Envelope;

/// `📈 HEALTH SUMMARY: Store my_store - 5/7 healthy subscriptions`: a
/// `HealthSummary`.
pub fn health_summary(store: &str, healthy: u64, total: u64) -> String {
    format!("📈 HEALTH SUMMARY: Store {store} - {healthy}/{total} healthy subscriptions")
}

/// `📡 HEALTH EVENT: subscription_name -> event_type (metadata)`: a
/// `SubscriptionHealth`.
pub fn health_event(subscription: &str, event_type: &str, metadata: &str) -> String {
    format!("📡 HEALTH EVENT: {subscription} -> {event_type} ({metadata})")
}

/// `📉 METRICS SUMMARY: Store my_store - 1250 eps, 50000 total, 12 active subs`:
/// a `MetricsSummary`.
pub fn metrics_summary(store: &str, eps: u64, total: u64, active_subs: u64) -> String {
    format!(
        "📉 METRICS SUMMARY: Store {store} - {eps} eps, {total} total, {active_subs} active subs"
    )
}

/// A message as the console would show it: the spec's line for the kinds
/// that have one, otherwise time, channel, topic, kind and payload.
pub fn message(env: &Envelope) -> (Class, String) {
    use crate::messages::tracking::{HealthSummary, MetricsSummary, SubscriptionHealth};
    let time = env.timestamp.format("%H:%M:%S%.3f");
    match env.kind.as_str() {
        "HealthSummary" => {
            if let Ok(s) = env.decode::<HealthSummary>() {
                return (
                    Class::Health,
                    format!("{time} {}", health_summary(&s.store, s.healthy, s.total)),
                );
            }
        }
        "MetricsSummary" => {
            if let Ok(s) = env.decode::<MetricsSummary>() {
                return (
                    Class::Plain,
                    format!(
                        "{time} {}",
                        metrics_summary(
                            &s.store,
                            s.events_per_second.round() as u64,
                            s.total_events,
                            s.active_subscriptions
                        )
                    ),
                );
            }
        }
        "SubscriptionHealth" => {
            if let Ok(s) = env.decode::<SubscriptionHealth>() {
                let text = health_event(
                    &s.subscription,
                    &format!("{:?}", s.event).to_lowercase(),
                    &format!("{:?}", s.status).to_lowercase(),
                );
                return (Class::Health, format!("{time} {text}"));
            }
        }
        _ => {}
    }
    let class = match env.kind.as_str() {
        "SystemAlert" | "AlertEscalation" | "SecurityAlert" | "AccessViolation" => Class::Failure,
        "AlertAck" => Class::Success,
        _ => Class::Plain,
    };
    (
        class,
        format!(
            "{time} {} {} {} {}",
            env.channel,
            env.topic,
            env.kind,
            env.payload_text()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_lines() {
        assert_eq!(
            health_event("sub_a", "registration_success", "attempt=1"),
            "📡 HEALTH EVENT: sub_a -> registration_success (attempt=1)"
        );
        assert_eq!(
            health_summary("my_store", 5, 7),
            "📈 HEALTH SUMMARY: Store my_store - 5/7 healthy subscriptions"
        );
        assert_eq!(
            metrics_summary("my_store", 1250, 50000, 12),
            "📉 METRICS SUMMARY: Store my_store - 1250 eps, 50000 total, 12 active subs"
        );
    }
}
