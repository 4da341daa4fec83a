//! Payloads of the `logging` channel (`:ex_esdb_logging`): log aggregation —
//! individual entries, periodic summaries and log file rotation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::kind::message_kinds;

message_kinds! {
    LogEntry => Logging,
    LogSummary => Logging,
    LogRotation => Logging,
}

/// Log verbosity level, ordered `trace < debug < info < warning < error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum LogLevel {
    /// Very detailed tracing output.
    Trace,
    /// Debugging output.
    Debug,
    /// Normal operational messages.
    Info,
    /// Something unexpected that was handled.
    Warning,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The snake_case wire name (`"warning"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Unique id of the record.
    pub log_id: String,
    /// The record's level.
    pub level: LogLevel,
    /// The log message.
    pub message: String,
    /// Module (or plugin) that logged the record, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Function that logged the record, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Source line that logged the record, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Structured fields attached to the record.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// Aggregate statistics of the logs over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogSummary {
    /// Unique id of the summary.
    pub summary_id: String,
    /// The period summarised, e.g. `"1h"` or an RFC 3339 interval.
    pub time_period: String,
    /// Number of records per level name (`"error"` → 3).
    #[serde(default)]
    pub log_counts: BTreeMap<String, u64>,
    /// The most frequent error messages, most frequent first.
    #[serde(default)]
    pub top_errors: Vec<String>,
    /// Fraction (0.0..=1.0) of records at level `error`.
    pub error_rate: f64,
    /// Total number of records in the period.
    pub total_logs: u64,
}

/// A log file was rotated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRotation {
    /// Unique id of the rotation.
    pub rotation_id: String,
    /// Which log was rotated, e.g. `"audit"`, `"application"`.
    pub log_type: String,
    /// Path the rotated-out file was moved to.
    pub old_file: String,
    /// Path of the fresh file now being written.
    pub new_file: String,
    /// Size of the rotated-out file, in bytes.
    pub file_size: u64,
    /// Number of records in the rotated-out file.
    pub entries_count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_entry_round_trips() {
        let msg = LogEntry {
            log_id: "l-1".to_owned(),
            level: LogLevel::Warning,
            message: "slow append".to_owned(),
            module: Some("store".to_owned()),
            function: None,
            line: Some(42),
            metadata: Map::new(),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["level"], "warning");
        assert_eq!(json["line"], 42);
        assert!(json.get("function").is_none());
        assert_eq!(serde_json::from_value::<LogEntry>(json).unwrap(), msg);
        assert!(LogLevel::Trace < LogLevel::Info && LogLevel::Warning < LogLevel::Error);
    }

    #[test]
    fn log_summary_round_trips() {
        let log_counts = BTreeMap::from([("error".to_owned(), 3), ("info".to_owned(), 97)]);
        let msg = LogSummary {
            summary_id: "s-1".to_owned(),
            time_period: "1h".to_owned(),
            log_counts,
            top_errors: vec!["timeout".to_owned()],
            error_rate: 0.03,
            total_logs: 100,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["log_counts"]["error"], 3);
        assert_eq!(json["error_rate"], 0.03);
        assert_eq!(serde_json::from_value::<LogSummary>(json).unwrap(), msg);
    }

    #[test]
    fn log_rotation_round_trips_and_ignores_unknown_fields() {
        let msg = LogRotation {
            rotation_id: "r-1".to_owned(),
            log_type: "audit".to_owned(),
            old_file: "/var/log/audit.log.1".to_owned(),
            new_file: "/var/log/audit.log".to_owned(),
            file_size: 10_485_760,
            entries_count: 5000,
        };
        let mut json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["old_file"], "/var/log/audit.log.1");
        assert_eq!(
            serde_json::from_value::<LogRotation>(json.clone()).unwrap(),
            msg
        );

        json["compressed"] = json!(true);
        assert_eq!(
            serde_json::from_value::<LogRotation>(json.clone()).unwrap(),
            msg
        );
        json.as_object_mut().unwrap().remove("file_size");
        let err = serde_json::from_value::<LogRotation>(json).unwrap_err();
        assert!(
            err.to_string().contains("missing field `file_size`"),
            "{err}"
        );
        assert_eq!(LogLevel::Debug.to_string(), "debug");
    }
}
