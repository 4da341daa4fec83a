//! The circuit breaker of one (plugin, destination): the subscriptions'
//! [`Breaker`] with the `[health_monitoring]` thresholds, plus the one
//! thing an outbound breaker needs beyond a subscription's — a guest may
//! have several requests in flight, so half-open lets exactly **one**
//! through (the trial) until it ends.
//!
//! - **Closed**: every request goes. A request that fails — no response
//!   (connect, DNS, TLS, timeout, protocol error, the guest dropping it
//!   first), a response cut short, or a 5xx status — adds one to the
//!   destination's consecutive failures; any other response resets them.
//!   `unhealthy_threshold` failures in a row open the breaker.
//! - **Open**: every request is refused before anything is resolved or
//!   connected (`connection-refused` for the guest, counted in
//!   `breaker_rejected`), for `cooldown_ms`.
//! - **Half-open**: the first request after the cooldown is the trial; the
//!   others are refused while it is in flight. Its success closes the
//!   breaker (and restores the first cooldown); its failure opens it again
//!   with the cooldown doubled, up to `max_cooldown_ms`.
//!
//! `[health_monitoring] enabled = false` or `circuit_breaker_enabled =
//! false`: the breaker never opens (the counts are kept all the same).
//! Each transition is published once as a `SubscriptionHealth` (see
//! [`announce`]).

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};

use super::stats::OutboundInfo;
use crate::health::{Breaker, Gate, HealthMonitoring, Transition};
use crate::integration::{send_now, topics};
use crate::logging::lines::health_event;
use crate::messages::tracking::{
    BreakerState, HealthEventType, SubscriptionHealth, SubscriptionStatus,
};
use crate::runtime::state::PluginContext;

/// The `store` of the outbound breakers' `SubscriptionHealth` events (their
/// topics are `store_health:outbound` and
/// `subscription_health:outbound:<plugin>:<destination>`): not a store, the
/// name that keeps them apart from the stores' subscriptions.
pub(crate) const STORE: &str = "outbound";

/// The breakers' settings: `[health_monitoring]`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BreakerSettings {
    /// `enabled && circuit_breaker_enabled`: otherwise it never opens.
    pub(crate) enabled: bool,
    /// `unhealthy_threshold`: failures in a row that open it.
    pub(crate) threshold: u64,
    /// `cooldown_ms`: how long it stays open the first time.
    pub(crate) cooldown: Duration,
    /// `max_cooldown_ms`: the longest cooldown after failed trials.
    pub(crate) max_cooldown: Duration,
}

impl From<&HealthMonitoring> for BreakerSettings {
    fn from(h: &HealthMonitoring) -> BreakerSettings {
        BreakerSettings {
            enabled: h.enabled && h.circuit_breaker_enabled,
            threshold: u64::from(h.unhealthy_threshold),
            cooldown: Duration::from_millis(h.cooldown_ms),
            max_cooldown: Duration::from_millis(h.max_cooldown_ms),
        }
    }
}

impl Default for BreakerSettings {
    /// The embedded default `[health_monitoring]`'s.
    fn default() -> BreakerSettings {
        BreakerSettings::from(&HealthMonitoring::default())
    }
}

/// What the breaker says of a request about to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: it goes.
    Go,
    /// Half-open: it goes as the trial.
    Trial,
    /// Open, or half-open with the trial in flight: refused.
    Refused,
}

/// One destination's breaker.
#[derive(Debug, Clone)]
pub(crate) struct Circuit {
    breaker: Breaker,
    consecutive: u64,
    trial_out: bool,
    last_error: Option<String>,
}

impl Circuit {
    pub(crate) fn new(s: BreakerSettings) -> Circuit {
        Circuit {
            breaker: Breaker::new(s.enabled, s.threshold, s.cooldown, s.max_cooldown),
            consecutive: 0,
            trial_out: false,
            last_error: None,
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Failures in a row so far.
    pub(crate) fn consecutive(&self) -> u64 {
        self.consecutive
    }

    /// The last failure's error.
    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Whether a request may go at `now`; moves open → half-open once the
    /// cooldown is over (the transition is returned).
    pub(crate) fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        let (gate, transition) = self.breaker.gate(now);
        let admission = match gate {
            Gate::Deliver => Admission::Go,
            Gate::Trial if !self.trial_out => {
                self.trial_out = true;
                Admission::Trial
            }
            Gate::Trial | Gate::Wait(_) => Admission::Refused,
        };
        (admission, transition)
    }

    /// A request admitted as `trial` that never reached the destination
    /// (refused afterwards by the gate): the trial is free again.
    pub(crate) fn release(&mut self, trial: bool) {
        if trial {
            self.trial_out = false;
        }
    }

    /// The end of a request that went to the destination: `error` is why it
    /// failed, `None` for a success.
    pub(crate) fn settle(
        &mut self,
        trial: bool,
        error: Option<String>,
        now: Instant,
    ) -> Option<Transition> {
        self.release(trial);
        match error {
            Some(e) => {
                self.consecutive += 1;
                self.last_error = Some(e);
                self.breaker.on_failure(self.consecutive, now)
            }
            None => {
                self.consecutive = 0;
                self.breaker.on_success()
            }
        }
    }
}

/// The subscription name of a destination's breaker in its
/// `SubscriptionHealth`: `<plugin>:<destination>` (whitespace, which a
/// topic may not hold, as `_`).
pub(crate) fn subscription_name(plugin: &str, destination: &str) -> String {
    format!("{plugin}:{destination}")
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// Publishes one transition of the breaker of `info`'s destination as the
/// subscription breakers do: a `SubscriptionHealth` (event
/// `circuit_breaker_opened`, `circuit_breaker_half_open` or
/// `circuit_breaker_closed`; status `failed`, `degraded` or `healthy`;
/// `event_count` the responses that were not failures, `error_count` the
/// failures) on `store_health:outbound` and
/// `subscription_health:outbound:<plugin>:<destination>`, and the spec's
/// `📡 HEALTH EVENT` console line.
pub(crate) fn announce(ctx: &PluginContext, info: &OutboundInfo, transition: Transition) {
    let event = match transition {
        Transition::Opened => HealthEventType::CircuitBreakerOpened,
        Transition::HalfOpened => HealthEventType::CircuitBreakerHalfOpen,
        Transition::Closed => HealthEventType::CircuitBreakerClosed,
    };
    let status = match info.breaker {
        BreakerState::Open => SubscriptionStatus::Failed,
        BreakerState::HalfOpen => SubscriptionStatus::Degraded,
        BreakerState::Closed => SubscriptionStatus::Healthy,
    };
    let name = subscription_name(ctx.name(), &info.destination);
    let ok = info.requests - info.errors - info.denied - info.breaker_rejected;
    let payload = SubscriptionHealth {
        store: STORE.to_owned(),
        subscription: name.clone(),
        event,
        status,
        breaker: info.breaker,
        event_count: ok,
        error_count: info.errors,
        consecutive_failures: info.consecutive_failures,
        last_event: None,
        last_error: info.last_error.clone(),
        last_seen: Some(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
    };
    let meta = format!(
        "store={STORE}, status={}, breaker={}",
        status.as_str(),
        info.breaker.as_str()
    );
    tracing::info!(
        class = "health",
        "{}",
        health_event(&name, event.as_str(), &meta)
    );
    send_now(&ctx.bus, &topics::store_health(STORE), &payload);
    send_now(
        &ctx.bus,
        &topics::subscription_health(STORE, &name),
        &payload,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings(threshold: u64) -> BreakerSettings {
        BreakerSettings {
            enabled: true,
            threshold,
            cooldown: 100 * MS,
            max_cooldown: 300 * MS,
        }
    }

    fn fail() -> Option<String> {
        Some("connection refused".into())
    }

    #[test]
    fn the_settings_are_health_monitorings() {
        let h = HealthMonitoring {
            unhealthy_threshold: 5,
            cooldown_ms: 20,
            max_cooldown_ms: 10,
            ..HealthMonitoring::default()
        };
        let s = BreakerSettings::from(&h);
        assert_eq!((s.enabled, s.threshold), (true, 5));
        assert_eq!((s.cooldown, s.max_cooldown), (20 * MS, 10 * MS));
        for off in [
            HealthMonitoring {
                enabled: false,
                ..h.clone()
            },
            HealthMonitoring {
                circuit_breaker_enabled: false,
                ..h
            },
        ] {
            assert!(!BreakerSettings::from(&off).enabled);
        }
    }

    #[test]
    fn failures_in_a_row_open_it_and_a_success_in_between_resets_them() {
        let t0 = Instant::now();
        let mut c = Circuit::new(settings(3));
        assert_eq!(c.settle(false, fail(), t0), None);
        assert_eq!(c.settle(false, fail(), t0), None);
        assert_eq!(c.settle(false, None, t0), None);
        assert_eq!(c.consecutive(), 0);
        for _ in 0..2 {
            assert_eq!(c.settle(false, fail(), t0), None);
        }
        assert_eq!(c.settle(false, fail(), t0), Some(Transition::Opened));
        assert_eq!(c.state(), BreakerState::Open);
        assert_eq!(c.last_error(), Some("connection refused"));
        assert_eq!(c.admit(t0 + 99 * MS), (Admission::Refused, None));
    }

    #[test]
    fn half_open_lets_one_trial_through_at_a_time() {
        let t0 = Instant::now();
        let mut c = Circuit::new(settings(1));
        assert_eq!(c.settle(false, fail(), t0), Some(Transition::Opened));
        let after = t0 + 100 * MS;
        assert_eq!(
            c.admit(after),
            (Admission::Trial, Some(Transition::HalfOpened))
        );
        assert_eq!(c.state(), BreakerState::HalfOpen);
        assert_eq!(c.admit(after), (Admission::Refused, None), "trial out");
        // A trial the gate refused later gives its place back.
        c.release(true);
        assert_eq!(c.admit(after), (Admission::Trial, None));
        assert_eq!(c.settle(true, None, after), Some(Transition::Closed));
        assert_eq!(c.admit(after), (Admission::Go, None));
    }

    #[test]
    fn a_failed_trial_reopens_it_with_a_longer_cooldown() {
        let t0 = Instant::now();
        let mut c = Circuit::new(settings(1));
        c.settle(false, fail(), t0);
        let t1 = t0 + 100 * MS;
        assert_eq!(c.admit(t1).0, Admission::Trial);
        assert_eq!(c.settle(true, fail(), t1), Some(Transition::Opened));
        assert_eq!(c.admit(t1 + 199 * MS).0, Admission::Refused, "200 ms now");
        assert_eq!(c.admit(t1 + 200 * MS).0, Admission::Trial);
    }

    #[test]
    fn a_disabled_breaker_never_opens() {
        let t0 = Instant::now();
        let mut c = Circuit::new(BreakerSettings {
            enabled: false,
            ..settings(1)
        });
        for _ in 0..10 {
            assert_eq!(c.settle(false, fail(), t0), None);
        }
        assert_eq!(c.admit(t0), (Admission::Go, None));
        assert_eq!(c.consecutive(), 10);
    }

    #[test]
    fn names_are_valid_topic_segments() {
        assert_eq!(
            subscription_name("hook", "http://127.0.0.1:8080"),
            "hook:http://127.0.0.1:8080"
        );
        assert_eq!(
            subscription_name("hook", "(other destinations)"),
            "hook:(other_destinations)"
        );
    }
}
