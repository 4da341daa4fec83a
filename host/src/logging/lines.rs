//! One line per bus message, as the console shows it: the spec's line for
//! the kinds that have one (`HealthSummary`, `MetricsSummary`,
//! `SubscriptionHealth`), otherwise time, channel, topic, kind and payload.
//! Shared by `exesdb-host tail` and the gateway's console view of a stream
//! (the dashboard's live tail), so both read alike.

use super::{format, Class};
use crate::messages::Envelope;

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
                    format!(
                        "{time} {}",
                        format::health_summary(&s.store, s.healthy, s.total)
                    ),
                );
            }
        }
        "MetricsSummary" => {
            if let Ok(s) = env.decode::<MetricsSummary>() {
                return (
                    Class::Plain,
                    format!(
                        "{time} {}",
                        format::metrics_summary(
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
                let text = format::health_event(
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
