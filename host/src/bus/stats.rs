//! Per-subscription statistics.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Channel, OverflowPolicy, SubscriberId};

/// One topic pattern a subscriber listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionInfo {
    /// The channel.
    pub channel: Channel,
    /// The exact topic or pattern, as given.
    pub pattern: String,
    /// Overflow policy used for messages arriving through this subscription.
    pub policy: OverflowPolicy,
}

/// A snapshot of one subscriber's statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionStats {
    /// The subscriber's id.
    pub id: SubscriberId,
    /// The subscriber's name.
    pub name: String,
    /// Messages put into its inbox (including those later evicted).
    pub delivered: u64,
    /// Messages evicted by `drop_oldest`.
    pub dropped: u64,
    /// Messages waiting in its inbox now.
    pub queue_depth: usize,
    /// The inbox's capacity.
    pub capacity: usize,
    /// When the last message was put into its inbox.
    pub last_delivery: Option<DateTime<Utc>>,
    /// What it listens on.
    pub subscriptions: Vec<SubscriptionInfo>,
}
