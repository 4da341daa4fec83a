//! Refusals of one plugin's calls outside its grants, aggregated so that a
//! sandboxed tenant cannot flood the operator's console or the audit trail.
//!
//! - **Aggregation.** The first refusal of a cause (action + violation type)
//!   is reported at once: one console line, one `AccessViolation` on
//!   `security`, one failed `AccessLog` on `audit`. Further refusals of that
//!   cause within [`REPORT_INTERVAL`] are only counted; when the interval has
//!   passed, one report carries their count (`metadata.count`). The worker
//!   flushes due reports after each call and wakes for them when idle, so
//!   the last count of a burst is reported too.
//! - **Exact totals.** Every refusal is counted in [`Violations::total`]
//!   (shown in `plugin status` as `violations`).
//! - **Budget.** More than `[runtime] max_violations_per_minute` refusals
//!   within a sliding minute (0: no budget) marks the plugin over budget
//!   once; its worker then parks it and raises a `SecurityAlert`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// At most one report per cause per this interval.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Length of the budget's sliding window.
const BUDGET_WINDOW: Duration = Duration::from_secs(60);

/// One report to make: `count` refusals of one cause, the last on `resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// What was attempted (`publish`, `subscribe`, …).
    pub(crate) action: String,
    /// The `AccessViolation`'s `violation_type`.
    pub(crate) violation_type: String,
    /// The last resource refused.
    pub(crate) resource: String,
    /// Refusals this report stands for (1 for the first of an interval).
    pub(crate) count: u64,
}

#[derive(Debug, Default)]
struct Cause {
    last_report: Option<Instant>,
    pending: u64,
    resource: String,
}

#[derive(Debug, Default)]
struct State {
    causes: BTreeMap<(String, String), Cause>,
    /// Refusal counts per second within the budget window.
    recent: VecDeque<(Instant, u64)>,
    in_window: u64,
    over_budget: bool,
}

/// The refusals of one plugin (shared by all its instances).
#[derive(Debug)]
pub(crate) struct Violations {
    budget_per_minute: u64,
    total: AtomicU64,
    state: Mutex<State>,
}

impl Violations {
    /// Counts refusals with a budget of `budget_per_minute` (0: none).
    pub(crate) fn new(budget_per_minute: u64) -> Violations {
        Violations {
            budget_per_minute,
            total: AtomicU64::new(0),
            state: Mutex::default(),
        }
    }

    /// Every refusal so far.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Counts one refusal at `now`; returns the report to make at once, if
    /// this is the first of its cause in the interval.
    pub(crate) fn record(
        &self,
        now: Instant,
        action: &str,
        violation_type: &str,
        resource: &str,
    ) -> Option<Report> {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock();
        self.count_in_window(&mut s, now);
        let cause = s
            .causes
            .entry((action.to_owned(), violation_type.to_owned()))
            .or_default();
        cause.pending += 1;
        cause.resource.clear();
        cause.resource.push_str(resource);
        let due = cause
            .last_report
            .is_none_or(|t| now.duration_since(t) >= REPORT_INTERVAL);
        due.then(|| take(action, violation_type, cause, now))
    }

    /// The reports whose interval has passed at `now`.
    pub(crate) fn due(&self, now: Instant) -> Vec<Report> {
        let mut s = self.state.lock();
        s.causes
            .iter_mut()
            .filter(|(_, c)| {
                c.pending > 0
                    && c.last_report
                        .is_none_or(|t| now.duration_since(t) >= REPORT_INTERVAL)
            })
            .map(|((action, kind), c)| take(action, kind, c, now))
            .collect()
    }

    /// When the next counted-but-unreported refusals fall due, if any.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let s = self.state.lock();
        s.causes
            .values()
            .filter(|c| c.pending > 0)
            .map(|c| {
                c.last_report
                    .map_or_else(Instant::now, |t| t + REPORT_INTERVAL)
            })
            .min()
    }

    /// `Some(count in the last minute)` once, the first time the budget is
    /// exceeded; `None` otherwise.
    pub(crate) fn take_over_budget(&self) -> Option<u64> {
        let mut s = self.state.lock();
        if s.over_budget {
            s.over_budget = false;
            return Some(s.in_window);
        }
        None
    }

    /// Forgets the budget window (after an operator revives the plugin).
    pub(crate) fn reset_budget(&self) {
        let mut s = self.state.lock();
        s.recent.clear();
        s.in_window = 0;
        s.over_budget = false;
    }

    fn count_in_window(&self, s: &mut State, now: Instant) {
        while s
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= BUDGET_WINDOW)
        {
            if let Some((_, n)) = s.recent.pop_front() {
                s.in_window -= n;
            }
        }
        match s.recent.back_mut() {
            Some((t, n)) if now.duration_since(*t) < Duration::from_secs(1) => *n += 1,
            _ => s.recent.push_back((now, 1)),
        }
        let before = s.in_window;
        s.in_window += 1;
        let budget = self.budget_per_minute;
        if budget > 0 && before <= budget && s.in_window > budget {
            s.over_budget = true;
        }
    }
}

fn take(action: &str, violation_type: &str, cause: &mut Cause, now: Instant) -> Report {
    cause.last_report = Some(now);
    Report {
        action: action.to_owned(),
        violation_type: violation_type.to_owned(),
        resource: cause.resource.clone(),
        count: std::mem::take(&mut cause.pending),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_cause_per_interval_with_the_exact_count() {
        let v = Violations::new(0);
        let t0 = Instant::now();
        let first = v
            .record(t0, "publish", "grant_exceeded", "events:a")
            .unwrap();
        assert_eq!(first.count, 1);
        for i in 0..99_999 {
            let r = v.record(t0, "publish", "grant_exceeded", &format!("events:{i}"));
            assert_eq!(r, None, "refusal {i} reported within the interval");
        }
        assert!(v.due(t0 + Duration::from_millis(999)).is_empty());
        let due = v.due(t0 + REPORT_INTERVAL);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count, 99_999);
        assert_eq!(due[0].resource, "events:99998");
        assert_eq!(v.total(), 100_000);
        assert!(v.due(t0 + REPORT_INTERVAL * 3).is_empty(), "nothing left");
        assert_eq!(v.next_due(), None);
    }

    #[test]
    fn causes_are_reported_separately() {
        let v = Violations::new(0);
        let t0 = Instant::now();
        assert!(v.record(t0, "publish", "grant_exceeded", "x").is_some());
        assert!(v.record(t0, "subscribe", "grant_exceeded", "y").is_some());
        assert!(v.record(t0, "publish", "grant_exceeded", "x").is_none());
        assert_eq!(v.next_due(), Some(t0 + REPORT_INTERVAL));
    }

    #[test]
    fn budget_is_exceeded_once_within_a_minute() {
        let v = Violations::new(10);
        let t0 = Instant::now();
        for i in 0..10 {
            v.record(t0 + Duration::from_secs(i * 5), "publish", "g", "r");
        }
        assert_eq!(v.take_over_budget(), None, "10 in a minute is within 10");
        v.record(t0 + Duration::from_secs(50), "publish", "g", "r");
        assert_eq!(v.take_over_budget(), Some(11));
        v.record(t0 + Duration::from_secs(51), "publish", "g", "r");
        assert_eq!(v.take_over_budget(), None, "reported once");
    }

    #[test]
    fn old_refusals_leave_the_budget_window() {
        let v = Violations::new(3);
        let t0 = Instant::now();
        for i in 0..3 {
            v.record(t0 + Duration::from_secs(i), "publish", "g", "r");
        }
        // A minute later the first three no longer count.
        for i in 0..3 {
            v.record(t0 + Duration::from_secs(70 + i), "publish", "g", "r");
        }
        assert_eq!(v.take_over_budget(), None);
    }
}
