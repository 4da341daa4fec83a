//! Where a subscription starts when it has no checkpoint.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a subscription starts when it has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Start {
    /// The store's first event.
    Beginning,
    /// After the store's head at creation: only new events.
    Now,
    /// This global position.
    Position(u64),
}

impl FromStr for Start {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "beginning" => Ok(Start::Beginning),
            "now" => Ok(Start::Now),
            n => n.parse().map(Start::Position).map_err(|_| {
                format!("invalid start `{s}`: expected beginning, now or a global position")
            }),
        }
    }
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::Beginning => f.write_str("beginning"),
            Start::Now => f.write_str("now"),
            Start::Position(p) => write!(f, "{p}"),
        }
    }
}
