//! The circuit breaker of one subscription.
//!
//! Closed → open after `unhealthy_threshold` consecutive failures. While open
//! nothing is delivered; messages wait in the subscriber's bounded inbox
//! under its overflow policy. When the cooldown has passed the breaker is
//! half-open: one trial delivery (a single message). Success closes it and
//! resets the cooldown; failure opens it again with the cooldown doubled, up
//! to the maximum.

use std::time::{Duration, Instant};

use crate::messages::tracking::BreakerState;

/// What a deliverer may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Deliver normally (batches allowed).
    Deliver,
    /// Half-open: deliver exactly one message as a trial.
    Trial,
    /// Open: deliver nothing; ask again after this long.
    Wait(Duration),
}

/// A state change worth reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed or half-open → open.
    Opened,
    /// Open → half-open.
    HalfOpened,
    /// Half-open → closed.
    Closed,
}

/// One subscription's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    enabled: bool,
    threshold: u64,
    base: Duration,
    max: Duration,
    state: BreakerState,
    cooldown: Duration,
    opened_at: Option<Instant>,
}

impl Breaker {
    /// A closed breaker. When `enabled` is false it never opens.
    pub fn new(
        enabled: bool,
        threshold: u64,
        cooldown: Duration,
        max_cooldown: Duration,
    ) -> Breaker {
        Breaker {
            enabled,
            threshold: threshold.max(1),
            base: cooldown,
            max: max_cooldown.max(cooldown),
            state: BreakerState::Closed,
            cooldown,
            opened_at: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The cooldown the next (or current) opening uses.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Decides whether to deliver now; moves open → half-open when the cooldown is over.
    pub fn gate(&mut self, now: Instant) -> (Gate, Option<Transition>) {
        match self.state {
            BreakerState::Closed => (Gate::Deliver, None),
            BreakerState::HalfOpen => (Gate::Trial, None),
            BreakerState::Open => {
                let until = self.opened_at.unwrap_or(now) + self.cooldown;
                if now >= until {
                    self.state = BreakerState::HalfOpen;
                    (Gate::Trial, Some(Transition::HalfOpened))
                } else {
                    (Gate::Wait(until - now), None)
                }
            }
        }
    }

    /// Opens the breaker with no end (a parked plugin); only [`reset`](Self::reset) closes it.
    pub fn park(&mut self, now: Instant) -> Option<Transition> {
        let was_open = self.state == BreakerState::Open;
        self.state = BreakerState::Open;
        self.opened_at = Some(now);
        self.cooldown = Duration::from_secs(u64::from(u32::MAX));
        (!was_open).then_some(Transition::Opened)
    }

    /// Closes the breaker and restores the first cooldown (a fresh registration).
    pub fn reset(&mut self) {
        self.state = BreakerState::Closed;
        self.cooldown = self.base;
        self.opened_at = None;
    }

    /// Records a successful delivery.
    pub fn on_success(&mut self) -> Option<Transition> {
        match self.state {
            BreakerState::HalfOpen => {
                self.state = BreakerState::Closed;
                self.cooldown = self.base;
                self.opened_at = None;
                Some(Transition::Closed)
            }
            _ => None,
        }
    }

    /// Records a failure; `consecutive` counts this one.
    pub fn on_failure(&mut self, consecutive: u64, now: Instant) -> Option<Transition> {
        if !self.enabled {
            return None;
        }
        match self.state {
            BreakerState::Closed if consecutive >= self.threshold => {
                self.state = BreakerState::Open;
                self.opened_at = Some(now);
                Some(Transition::Opened)
            }
            BreakerState::HalfOpen => {
                self.state = BreakerState::Open;
                self.opened_at = Some(now);
                self.cooldown = (self.cooldown * 2).min(self.max);
                Some(Transition::Opened)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn opens_at_the_threshold_and_waits_out_the_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(true, 3, 100 * MS, 1000 * MS);
        assert_eq!(b.on_failure(1, t0), None);
        assert_eq!(b.on_failure(2, t0), None);
        assert_eq!(b.gate(t0).0, Gate::Deliver);
        assert_eq!(b.on_failure(3, t0), Some(Transition::Opened));
        assert_eq!(b.gate(t0 + 40 * MS), (Gate::Wait(60 * MS), None));
        assert_eq!(
            b.gate(t0 + 100 * MS),
            (Gate::Trial, Some(Transition::HalfOpened))
        );
        assert_eq!(b.gate(t0 + 101 * MS), (Gate::Trial, None));
    }

    #[test]
    fn failed_trials_back_off_up_to_the_maximum_and_success_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(true, 1, 100 * MS, 300 * MS);
        b.on_failure(1, t0);
        let mut at = t0;
        for expected in [200, 300, 300] {
            at += b.cooldown();
            assert_eq!(b.gate(at).0, Gate::Trial);
            assert_eq!(b.on_failure(2, at), Some(Transition::Opened));
            assert_eq!(b.cooldown(), expected * MS);
        }
        at += b.cooldown();
        assert_eq!(b.gate(at).0, Gate::Trial);
        assert_eq!(b.on_success(), Some(Transition::Closed));
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.cooldown(), 100 * MS, "cooldown reset");
        assert_eq!(b.on_success(), None);
    }

    #[test]
    fn a_disabled_breaker_never_opens() {
        let mut b = Breaker::new(false, 1, MS, MS);
        assert_eq!(b.on_failure(100, Instant::now()), None);
        assert_eq!(b.gate(Instant::now()).0, Gate::Deliver);
    }
}
