//! # json-log-formatter
//!
//! A `log-formatter` plugin that renders every log entry as one line of JSON
//! (JSON Lines), for log shippers. Select it in the host's config with
//! `[console] format = "plugin:json-log-formatter"`.
//!
//! Keys, always in this order:
//!
//! | key         | value                                                         |
//! |-------------|---------------------------------------------------------------|
//! | `timestamp` | RFC 3339, UTC, milliseconds: `"2025-07-27T11:30:00.123Z"`      |
//! | `level`     | `"trace"`, `"debug"`, `"info"`, `"warning"` or `"error"`       |
//! | `node`      | the node that logged the entry                                |
//! | `module`    | the module path or plugin name, or `null`                     |
//! | `message`   | the message text                                              |
//! | `function`  | only when the entry has one                                   |
//! | `line`      | only when the entry has one                                   |
//! | `metadata`  | the entry's metadata as a JSON value (`{}` when empty; the raw text as a string when it is not valid JSON); left out when `include_metadata` is false |
//!
//! Line breaks inside the message are escaped by JSON, so each entry is
//! always exactly one line.
//!
//! ## Config (`[config]` in `plugin.toml`)
//!
//! | key                | type | default | meaning                          |
//! |--------------------|------|---------|----------------------------------|
//! | `include_metadata` | bool | `true`  | whether to emit the `metadata` key |

use std::cell::Cell;

use serde::Deserialize;
use serde_json::{Map, Value};

wit_bindgen::generate!({ world: "log-formatter", path: "../../wit" });

use exesdb::plugin::types::{Error, LogEntry, LogLevel};
use exports::exesdb::plugin::formatter::Guest;

/// The plugin's `[config]` table.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Config {
    include_metadata: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            include_metadata: true,
        }
    }
}

thread_local! {
    static INCLUDE_METADATA: Cell<bool> = const { Cell::new(true) };
}

struct JsonLogFormatter;

impl Guest for JsonLogFormatter {
    fn init(config: String) -> Result<(), Error> {
        let config: Config = if config.trim().is_empty() {
            Config::default()
        } else {
            serde_json::from_str(&config)
                .map_err(|e| Error::Failed(format!("invalid config: {e}")))?
        };
        INCLUDE_METADATA.set(config.include_metadata);
        Ok(())
    }

    fn format(entry: LogEntry) -> String {
        format_entry(&entry, INCLUDE_METADATA.get())
    }

    fn format_batch(entries: Vec<LogEntry>) -> Vec<String> {
        let include_metadata = INCLUDE_METADATA.get();
        entries
            .iter()
            .map(|entry| format_entry(entry, include_metadata))
            .collect()
    }
}

/// Renders one entry as a single JSON line.
fn format_entry(entry: &LogEntry, include_metadata: bool) -> String {
    let mut object = Map::new();
    object.insert(
        "timestamp".into(),
        rfc3339_millis(entry.timestamp_ms).into(),
    );
    object.insert("level".into(), level_name(entry.level).into());
    object.insert("node".into(), entry.node.clone().into());
    object.insert(
        "module".into(),
        entry.module.clone().map_or(Value::Null, Value::String),
    );
    object.insert("message".into(), entry.message.clone().into());
    if let Some(function) = &entry.function {
        object.insert("function".into(), function.clone().into());
    }
    if let Some(line) = entry.line {
        object.insert("line".into(), line.into());
    }
    if include_metadata {
        object.insert("metadata".into(), metadata(&entry.metadata));
    }
    // Serialising a `Value` cannot fail: its keys are strings and its numbers finite.
    serde_json::to_string(&Value::Object(object)).unwrap_or_default()
}

/// The metadata text as a JSON value: parsed when valid, `{}` when empty,
/// otherwise the raw text as a string.
fn metadata(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// The lowercase name of a level.
fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warning => "warning",
        LogLevel::Error => "error",
    }
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with
/// milliseconds, e.g. `2025-07-27T11:30:00.123Z`.
fn rfc3339_millis(timestamp_ms: u64) -> String {
    let millis = timestamp_ms % 1000;
    let secs = timestamp_ms / 1000;
    let days = secs / 86_400;
    let secs_of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
    )
}

/// The proleptic Gregorian date `days` days after 1970-01-01, using Howard
/// Hinnant's `civil_from_days` algorithm (unsigned: dates from 1970 on).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097; // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let mp = (5 * day_of_year + 2) / 153; // [0, 11], March = 0
    let day = day_of_year - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

export!(JsonLogFormatter);
