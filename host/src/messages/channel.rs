//! The ten PubSub channels: `events` plus the spec's nine dedicated instances.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the host's ten PubSub channels.
///
/// The spec runs one `Phoenix.PubSub` instance per concern (`:ex_esdb_system`,
/// `:ex_esdb_health`, …). Here each is a channel of one bus. Parsing accepts
/// both the short name (`health`) and the spec's instance name
/// (`ex_esdb_health`, with or without a leading `:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Channel {
    /// Store events, topic `<store>:<stream>`.
    Events,
    /// System lifecycle and configuration.
    System,
    /// Health monitoring and status.
    Health,
    /// Performance metrics.
    Metrics,
    /// Process and node lifecycle.
    Lifecycle,
    /// Critical alerts and notifications.
    Alerts,
    /// Audit trail and compliance.
    Audit,
    /// Debug and troubleshooting.
    Diagnostics,
    /// Security events.
    Security,
    /// Log aggregation.
    Logging,
}

impl Channel {
    /// Every channel, in declaration order.
    pub const ALL: [Channel; 10] = [
        Channel::Events,
        Channel::System,
        Channel::Health,
        Channel::Metrics,
        Channel::Lifecycle,
        Channel::Alerts,
        Channel::Audit,
        Channel::Diagnostics,
        Channel::Security,
        Channel::Logging,
    ];

    /// The short name (`health`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The spec's PubSub instance name (`ex_esdb_health`).
    pub fn spec_name(self) -> String {
        format!("ex_esdb_{}", self.as_str())
    }

    /// Dense index in `0..10`, for per-channel tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Channels whose messages must never be dropped silently: the bus's
    /// subscriptions on them default to back-pressure instead of dropping.
    pub const fn is_lossless(self) -> bool {
        matches!(self, Channel::Audit | Channel::Security)
    }
}

/// A channel name that is neither a short name nor a spec instance name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel `{0}`: expected one of events, system, health, metrics, lifecycle, alerts, audit, diagnostics, security, logging (or their ex_esdb_* names)")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let short = s.trim_start_matches(':');
        let short = short.strip_prefix("ex_esdb_").unwrap_or(short);
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == short)
            .ok_or_else(|| UnknownChannel(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_spec_names() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
            assert_eq!(c.spec_name().parse::<Channel>().unwrap(), c);
            assert_eq!(format!(":{}", c.spec_name()).parse::<Channel>().unwrap(), c);
            assert_eq!(Channel::ALL[c.index()], c);
        }
    }

    #[test]
    fn rejects_unknown_names() {
        let err = "ex_esdb_bogus".parse::<Channel>().unwrap_err();
        assert!(err.to_string().contains("ex_esdb_bogus"));
        assert!("".parse::<Channel>().is_err());
        assert!("Health".parse::<Channel>().is_err());
    }

    #[test]
    fn only_audit_and_security_are_lossless() {
        let lossless: Vec<_> = Channel::ALL
            .into_iter()
            .filter(|c| c.is_lossless())
            .collect();
        assert_eq!(lossless, vec![Channel::Audit, Channel::Security]);
    }
}
