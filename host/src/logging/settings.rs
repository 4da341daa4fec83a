//! The console's section of the configuration file, `[console]`, and its
//! colour modes and line formats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::messages::logging::LogLevel;

/// When the console uses colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorMode {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always (still off when `NO_COLOR` is set).
    Always,
    /// Never.
    Never,
}

/// How console lines are formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleFormat {
    /// The spec's coloured, emoji-tagged lines.
    Pretty,
    /// One JSON object per line, natively.
    Json,
    /// A `log-formatter` plugin of this name formats each line.
    Plugin(String),
}

impl FromStr for ConsoleFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(ConsoleFormat::Pretty),
            "json" => Ok(ConsoleFormat::Json),
            _ => match s.strip_prefix("plugin:") {
                Some(name) if !name.is_empty() => Ok(ConsoleFormat::Plugin(name.to_owned())),
                _ => Err(format!(
                    "unknown console format `{s}`: expected pretty, json or plugin:<name>"
                )),
            },
        }
    }
}

impl fmt::Display for ConsoleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleFormat::Pretty => f.write_str("pretty"),
            ConsoleFormat::Json => f.write_str("json"),
            ConsoleFormat::Plugin(name) => write!(f, "plugin:{name}"),
        }
    }
}

impl Serialize for ConsoleFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConsoleFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `[console]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Colour mode.
    pub color: ColorMode,
    /// Line format.
    pub format: ConsoleFormat,
    /// Lowest level shown.
    pub level: LogLevel,
}

impl Default for ConsoleConfig {
    /// The values of the embedded `default.toml`.
    fn default() -> Self {
        ConsoleConfig {
            color: ColorMode::Auto,
            format: ConsoleFormat::Pretty,
            level: LogLevel::Info,
        }
    }
}
