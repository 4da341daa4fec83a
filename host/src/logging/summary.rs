//! Counts of the log records of an interval, by level and by module, turned
//! into the spec's `LogSummary`.
//!
//! The bridge counts every record it sees (every record at or above the
//! configured level, plugins' `log` calls and captured output included)
//! into a [`LogStats`]; every `[metrics] interval_ms` the host takes the
//! counts and publishes, on `logging`:
//!
//! - `log_summary`: one `LogSummary` for all records of the interval;
//! - `log_summary:<module>`: one `LogSummary` per module that logged in the
//!   interval, where a module is the record's target with `::` written as
//!   `.` (`exesdb_host.health.tracker`), or `plugin:<name>` for what a plugin
//!   logged (its `log` calls and captured output).
//!
//! Memory is bounded: at most [`MAX_MODULES`] modules and [`MAX_ERRORS`]
//! distinct error messages are told apart per interval; the rest are counted
//! under the module `other` and in the totals only.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;

use crate::messages::logging::{LogLevel, LogSummary};

/// Most modules told apart in one interval; later ones count as `other`.
pub const MAX_MODULES: usize = 64;
/// Most distinct error messages remembered in one interval.
pub const MAX_ERRORS: usize = 256;
/// How many of the most frequent error messages a summary lists.
pub const TOP_ERRORS: usize = 5;
/// Longest error message kept in `top_errors`, in characters.
const MAX_ERROR_CHARS: usize = 200;

/// The counts of one set of records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LevelCounts {
    /// Records per level.
    pub by_level: BTreeMap<LogLevel, u64>,
    /// Error messages and how often each was logged.
    pub errors: HashMap<String, u64>,
}

impl LevelCounts {
    fn add(&mut self, level: LogLevel, message: &str) {
        *self.by_level.entry(level).or_default() += 1;
        if level == LogLevel::Error {
            let message: String = message.chars().take(MAX_ERROR_CHARS).collect();
            if let Some(n) = self.errors.get_mut(&message) {
                *n += 1;
            } else if self.errors.len() < MAX_ERRORS {
                self.errors.insert(message, 1);
            }
        }
    }

    /// Records counted.
    pub fn total(&self) -> u64 {
        self.by_level.values().sum()
    }

    /// The summary of these counts over `from`..`to`.
    pub fn summary(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> LogSummary {
        let total = self.total();
        let errors = self.by_level.get(&LogLevel::Error).copied().unwrap_or(0);
        let mut top: Vec<(&String, &u64)> = self.errors.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        LogSummary {
            summary_id: uuid::Uuid::now_v7().to_string(),
            time_period: format!(
                "{}/{}",
                from.to_rfc3339_opts(SecondsFormat::Millis, true),
                to.to_rfc3339_opts(SecondsFormat::Millis, true)
            ),
            log_counts: self
                .by_level
                .iter()
                .map(|(l, n)| (l.as_str().to_owned(), *n))
                .collect(),
            top_errors: top
                .into_iter()
                .take(TOP_ERRORS)
                .map(|(m, _)| m.clone())
                .collect(),
            error_rate: if total == 0 {
                0.0
            } else {
                errors as f64 / total as f64
            },
            total_logs: total,
        }
    }
}

/// The records of one interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCounts {
    /// When the interval began.
    pub from: DateTime<Utc>,
    /// When it was taken.
    pub to: DateTime<Utc>,
    /// All records.
    pub all: LevelCounts,
    /// Per module (see the [module documentation](self) for the names).
    pub by_module: BTreeMap<String, LevelCounts>,
}

impl LogCounts {
    /// The interval's `LogSummary` (for `log_summary`).
    pub fn summary(&self) -> LogSummary {
        self.all.summary(self.from, self.to)
    }

    /// One `LogSummary` per module (for `log_summary:<module>`).
    pub fn module_summaries(&self) -> Vec<(String, LogSummary)> {
        self.by_module
            .iter()
            .map(|(m, c)| (m.clone(), c.summary(self.from, self.to)))
            .collect()
    }
}

#[derive(Debug)]
struct Interval {
    from: DateTime<Utc>,
    all: LevelCounts,
    by_module: BTreeMap<String, LevelCounts>,
}

impl Interval {
    fn starting(from: DateTime<Utc>) -> Interval {
        Interval {
            from,
            all: LevelCounts::default(),
            by_module: BTreeMap::new(),
        }
    }
}

/// Counts log records by level and module until [`take`](Self::take)n.
#[derive(Debug)]
pub struct LogStats {
    current: Mutex<Interval>,
}

impl Default for LogStats {
    fn default() -> Self {
        LogStats {
            current: Mutex::new(Interval::starting(Utc::now())),
        }
    }
}

/// The module name a record counts under: `plugin:<name>` when it carries a
/// `plugin` field, else its target with `::` as `.`; each part made safe as
/// one topic segment.
pub fn module_of(target: &str, plugin: Option<&str>) -> String {
    let segment = |s: &str| -> String {
        let s: String = s
            .chars()
            .map(|c| {
                if c == ':' || c.is_whitespace() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        if s.is_empty() {
            "_".to_owned()
        } else {
            s
        }
    };
    match plugin {
        Some(p) => format!("plugin:{}", segment(p)),
        None => segment(&target.replace("::", ".")),
    }
}

impl LogStats {
    /// Counts one record.
    pub fn record(&self, level: LogLevel, module: &str, message: &str) {
        let mut i = self.current.lock();
        i.all.add(level, message);
        let known = i.by_module.contains_key(module);
        let key = if known || i.by_module.len() < MAX_MODULES {
            module
        } else {
            "other"
        };
        if let Some(c) = i.by_module.get_mut(key) {
            c.add(level, message);
        } else {
            let mut c = LevelCounts::default();
            c.add(level, message);
            i.by_module.insert(key.to_owned(), c);
        }
    }

    /// The counts since the previous `take` (or creation); the next interval
    /// starts now.
    pub fn take(&self) -> LogCounts {
        let to = Utc::now();
        let i = std::mem::replace(&mut *self.current.lock(), Interval::starting(to));
        LogCounts {
            from: i.from,
            to,
            all: i.all,
            by_module: i.by_module,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_level_and_module_then_restarts() {
        let stats = LogStats::default();
        let store = module_of("exesdb_host::store::engine", None);
        let guest = module_of("exesdb_host::runtime::host_impl", Some("guest"));
        assert_eq!(store, "exesdb_host.store.engine");
        assert_eq!(guest, "plugin:guest");
        for _ in 0..3 {
            stats.record(LogLevel::Info, &store, "appended");
        }
        stats.record(LogLevel::Error, &guest, "boom");
        stats.record(LogLevel::Error, &guest, "boom");
        stats.record(LogLevel::Error, &store, "disk full");
        stats.record(LogLevel::Warning, &guest, "slow");

        let c = stats.take();
        assert!(c.from <= c.to);
        let s = c.summary();
        assert_eq!(s.total_logs, 7);
        assert_eq!(s.log_counts["info"], 3);
        assert_eq!(s.log_counts["error"], 3);
        assert_eq!(s.log_counts["warning"], 1);
        assert!(!s.log_counts.contains_key("debug"));
        assert_eq!(s.error_rate, 3.0 / 7.0);
        assert_eq!(s.top_errors, ["boom", "disk full"], "most frequent first");
        assert!(s.time_period.contains('/'), "{}", s.time_period);

        let modules: BTreeMap<String, LogSummary> = c.module_summaries().into_iter().collect();
        assert_eq!(modules.len(), 2);
        assert_eq!(modules[&store].total_logs, 4);
        assert_eq!(modules[&store].log_counts["info"], 3);
        assert_eq!(modules[&guest].total_logs, 3);
        assert_eq!(modules[&guest].log_counts["error"], 2);
        assert_eq!(modules[&guest].top_errors, ["boom"]);
        // Every module name makes a valid topic.
        for m in modules.keys() {
            crate::bus::validate_topic(&crate::integration::topics::log_summary_of(m)).unwrap();
        }

        // The next interval starts empty.
        let next = stats.take();
        assert_eq!(next.all.total(), 0);
        assert!(next.by_module.is_empty());
        assert_eq!(next.from, c.to);
        assert_eq!(next.summary().error_rate, 0.0);
    }

    #[test]
    fn memory_is_bounded() {
        let stats = LogStats::default();
        for m in 0..MAX_MODULES + 10 {
            stats.record(LogLevel::Error, &format!("m{m}"), &format!("e{m}"));
        }
        for e in 0..MAX_ERRORS * 2 {
            stats.record(LogLevel::Error, "m0", &format!("distinct {e}"));
        }
        let c = stats.take();
        assert_eq!(c.by_module.len(), MAX_MODULES + 1, "the rest under `other`");
        assert_eq!(c.by_module["other"].total(), 10);
        assert_eq!(c.all.errors.len(), MAX_ERRORS);
        assert_eq!(c.all.total(), (MAX_MODULES + 10 + MAX_ERRORS * 2) as u64);
        assert_eq!(module_of("", Some("a b:c")), "plugin:a_b_c");
        assert_eq!(module_of("", None), "_");
    }
}
