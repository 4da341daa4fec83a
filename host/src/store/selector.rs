//! [`Selector`]: which events of a store a subscription receives.
//!
//! Text form (parsed by [`FromStr`], printed by [`Display`](fmt::Display),
//! also the serde form):
//!
//! | text | selector |
//! |---|---|
//! | `$all` | every event, in global order |
//! | `$et-<type>` | events of type `<type>` (`$et-OrderPlaced`) |
//! | `$pattern-<glob>` | events of streams whose name matches `<glob>` (`$pattern-orders-*`) |
//! | `<stream>` | one stream (`orders-1`); any valid stream name |
//!
//! In a glob, `*` matches any run of characters (none included); every other
//! character matches itself.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::engine::validate_stream;
use super::error::StoreError;
use super::types::RecordedEvent;

/// Which events of a store a subscription receives.
///
/// Text form (parsed by [`FromStr`], printed by [`Display`](fmt::Display),
/// also the serde form):
///
/// | text | selector |
/// |---|---|
/// | `$all` | every event, in global order |
/// | `$et-<type>` | events of type `<type>` (`$et-OrderPlaced`) |
/// | `$pattern-<glob>` | events of streams whose name matches `<glob>` (`$pattern-orders-*`) |
/// | `<stream>` | one stream (`orders-1`); any valid stream name |
///
/// In a glob, `*` matches any run of characters (none included); every
/// other character matches itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// One stream.
    Stream(String),
    /// Every event (`$all`).
    All,
    /// Events of one type (`$et-<type>`).
    EventType(String),
    /// Events of streams whose name matches a glob with `*` (`$pattern-<glob>`).
    StreamPattern(String),
}

const ET_PREFIX: &str = "$et-";
const PATTERN_PREFIX: &str = "$pattern-";

impl Selector {
    /// Whether `e` is selected.
    pub fn matches(&self, e: &RecordedEvent) -> bool {
        self.matches_parts(&e.stream_id, &e.event_type)
    }

    /// Whether an event of stream `stream_id` and type `event_type` is selected.
    pub fn matches_parts(&self, stream_id: &str, event_type: &str) -> bool {
        match self {
            Selector::Stream(s) => s == stream_id,
            Selector::All => true,
            Selector::EventType(t) => t == event_type,
            Selector::StreamPattern(p) => glob_match(p, stream_id),
        }
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` in the pattern and of the text it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` swallow one more byte and retry after it.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Stream(s) => f.write_str(s),
            Selector::All => f.write_str("$all"),
            Selector::EventType(t) => write!(f, "{ET_PREFIX}{t}"),
            Selector::StreamPattern(p) => write!(f, "{PATTERN_PREFIX}{p}"),
        }
    }
}

impl FromStr for Selector {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| StoreError::InvalidSelector {
            selector: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s == "$all" {
            return Ok(Selector::All);
        }
        if let Some(t) = s.strip_prefix(ET_PREFIX) {
            if t.is_empty() || t.chars().any(char::is_control) {
                return Err(bad("`$et-` needs an event type without control characters"));
            }
            return Ok(Selector::EventType(t.to_owned()));
        }
        if let Some(p) = s.strip_prefix(PATTERN_PREFIX) {
            if p.is_empty() || p.chars().any(char::is_control) {
                return Err(bad("`$pattern-` needs a glob without control characters"));
            }
            return Ok(Selector::StreamPattern(p.to_owned()));
        }
        if s.starts_with('$') {
            return Err(bad(
                "expected `$all`, `$et-<type>`, `$pattern-<glob>` or a stream name",
            ));
        }
        validate_stream("", s).map_err(|e| match e {
            StoreError::InvalidName { reason, .. } => bad(reason),
            other => bad(&other.to_string()),
        })?;
        Ok(Selector::Stream(s.to_owned()))
    }
}

impl Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("orders-*", "orders-1"));
        assert!(glob_match("orders-*", "orders-"));
        assert!(!glob_match("orders-*", "order-1"));
        assert!(glob_match("*-1", "orders-1"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*", ""));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("a**a", "aa"));
        assert!(glob_match("*ab", "aab"));
    }

    #[test]
    fn text_form_round_trips() {
        for text in ["$all", "$et-OrderPlaced", "$pattern-orders-*", "orders-1"] {
            let sel: Selector = text.parse().unwrap();
            assert_eq!(sel.to_string(), text);
        }
        assert!("$ce-orders".parse::<Selector>().is_err());
        assert!("$et-".parse::<Selector>().is_err());
        assert!("".parse::<Selector>().is_err());
    }
}
