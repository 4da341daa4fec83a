//! The escalation policy, independent of the WIT bindings.
//!
//! [`Policy`] tracks unacknowledged alerts and decides when each one moves up
//! a level. It does no I/O and reads no clock: every entry point takes the
//! current time, so the same inputs always give the same decisions.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// An escalation level. `Level3` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Level1,
    Level2,
    Level3,
}

impl Level {
    /// The level after this one, if any.
    pub fn next(self) -> Option<Level> {
        match self {
            Level::Level1 => Some(Level::Level2),
            Level::Level2 => Some(Level::Level3),
            Level::Level3 => None,
        }
    }

    /// `"level1"`, `"level2"` or `"level3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Level1 => "level1",
            Level::Level2 => "level2",
            Level::Level3 => "level3",
        }
    }
}

/// Who to notify at each level.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Contacts {
    pub level1: Vec<String>,
    pub level2: Vec<String>,
    pub level3: Vec<String>,
}

impl Contacts {
    /// The contacts to notify on reaching `level`.
    pub fn for_level(&self, level: Level) -> &[String] {
        match level {
            Level::Level1 => &self.level1,
            Level::Level2 => &self.level2,
            Level::Level3 => &self.level3,
        }
    }
}

/// The policy's settings: the plugin's `[config]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Time after an alert is first seen before it reaches level 1
    /// (0: level 1 on the first occurrence).
    pub level1_after_ms: u64,
    /// Time spent at level 1 before moving to level 2.
    pub level2_after_ms: u64,
    /// Time spent at level 2 before moving to level 3.
    pub level3_after_ms: u64,
    /// Number of occurrences of the same alert id that escalates it one level
    /// at once (0 disables escalation by repeats).
    pub repeat_threshold: u32,
    /// Who to notify at each level.
    pub contacts: Contacts,
    /// Most alerts tracked at once; beyond it the least recently escalated
    /// alert (preferring those already at level 3) is forgotten.
    pub max_tracked: usize,
    /// Keys this policy does not know (reported, then ignored).
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            level1_after_ms: 0,
            level2_after_ms: 60_000,
            level3_after_ms: 300_000,
            repeat_threshold: 3,
            contacts: Contacts::default(),
            max_tracked: 10_000,
            unknown: BTreeMap::new(),
        }
    }
}

/// What the policy knows about one unacknowledged alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// When the alert was first seen.
    pub first_seen_ms: u64,
    /// Occurrences since it was first seen or last escalated by repeats.
    pub occurrences: u32,
    /// Its current level (`None`: not escalated yet).
    pub level: Option<Level>,
    /// When it was first seen or last escalated.
    pub last_change_ms: u64,
}

/// A decision to move one alert up a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub alert_id: String,
    pub from: Option<Level>,
    pub to: Level,
    pub reason: String,
    pub contacts: Vec<String>,
}

/// The escalation policy and the alerts it tracks.
#[derive(Debug, Default)]
pub struct Policy {
    config: Config,
    alerts: BTreeMap<String, Tracked>,
}

impl Policy {
    /// A policy with `config` and no tracked alerts.
    pub fn new(config: Config) -> Self {
        Policy {
            config,
            alerts: BTreeMap::new(),
        }
    }

    /// Records an occurrence of an alert that requires acknowledgement, seen
    /// at `now_ms`. Returns the escalation it causes, if any: level 1 on the
    /// first occurrence when `level1_after_ms` is 0, or one level up when the
    /// alert has now been seen `repeat_threshold` times.
    pub fn on_alert(&mut self, alert_id: &str, now_ms: u64) -> Option<Decision> {
        let Some(tracked) = self.alerts.get_mut(alert_id) else {
            self.make_room();
            let mut tracked = Tracked {
                first_seen_ms: now_ms,
                occurrences: 1,
                level: None,
                last_change_ms: now_ms,
            };
            let decision = (self.config.level1_after_ms == 0).then(|| {
                escalate(
                    &self.config,
                    alert_id,
                    &mut tracked,
                    Level::Level1,
                    now_ms,
                    unacked_reason(0),
                )
            });
            self.alerts.insert(alert_id.to_owned(), tracked);
            return decision;
        };

        tracked.occurrences = tracked.occurrences.saturating_add(1);
        let threshold = self.config.repeat_threshold;
        if threshold == 0 || tracked.occurrences < threshold {
            return None;
        }
        let seen = tracked.occurrences;
        tracked.occurrences = 0;
        let to = match tracked.level {
            None => Level::Level1,
            Some(level) => level.next()?,
        };
        Some(escalate(
            &self.config,
            alert_id,
            tracked,
            to,
            now_ms,
            format!("repeated {seen} times"),
        ))
    }

    /// Forgets an acknowledged alert. Returns whether it was tracked.
    pub fn on_ack(&mut self, alert_id: &str) -> bool {
        self.alerts.remove(alert_id).is_some()
    }

    /// Moves every tracked alert whose time at its current level is up one
    /// level, as of `now_ms`. Alerts are visited in alert-id order.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Decision> {
        let config = &self.config;
        self.alerts
            .iter_mut()
            .filter_map(|(alert_id, tracked)| {
                let (to, waited, wait) = match tracked.level {
                    None => (
                        Level::Level1,
                        now_ms.saturating_sub(tracked.first_seen_ms),
                        config.level1_after_ms,
                    ),
                    Some(Level::Level1) => (
                        Level::Level2,
                        now_ms.saturating_sub(tracked.last_change_ms),
                        config.level2_after_ms,
                    ),
                    Some(Level::Level2) => (
                        Level::Level3,
                        now_ms.saturating_sub(tracked.last_change_ms),
                        config.level3_after_ms,
                    ),
                    Some(Level::Level3) => return None,
                };
                if waited < wait {
                    return None;
                }
                let reason = unacked_reason(now_ms.saturating_sub(tracked.first_seen_ms));
                Some(escalate(config, alert_id, tracked, to, now_ms, reason))
            })
            .collect()
    }

    /// How many alerts are tracked.
    pub fn tracked_count(&self) -> usize {
        self.alerts.len()
    }

    /// Drops one alert when the table is full: the least recently changed
    /// one at level 3 if any, else the least recently changed of all.
    fn make_room(&mut self) {
        if self.config.max_tracked == 0 || self.alerts.len() < self.config.max_tracked {
            return;
        }
        let oldest = |final_only: bool| {
            self.alerts
                .iter()
                .filter(|(_, t)| !final_only || t.level == Some(Level::Level3))
                .min_by_key(|(_, t)| t.last_change_ms)
                .map(|(id, _)| id.clone())
        };
        if let Some(id) = oldest(true).or_else(|| oldest(false)) {
            self.alerts.remove(&id);
        }
    }
}

/// The reason given for a time-based escalation.
fn unacked_reason(ms: u64) -> String {
    format!("unacknowledged for {ms} ms")
}

/// Moves `tracked` to `to` at `now_ms` and describes the move.
fn escalate(
    config: &Config,
    alert_id: &str,
    tracked: &mut Tracked,
    to: Level,
    now_ms: u64,
    reason: String,
) -> Decision {
    let from = tracked.level.replace(to);
    tracked.last_change_ms = now_ms;
    Decision {
        alert_id: alert_id.to_owned(),
        from,
        to,
        reason,
        contacts: config.contacts.for_level(to).to_vec(),
    }
}
