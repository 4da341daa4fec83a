//! A subscriber: one bounded inbox, many subscriptions.

use std::sync::{Arc, Weak};

use super::inbox::Inbox;
use super::{BusError, BusInner, Channel, OverflowPolicy, SubscriberId, SubscriptionInfo};
use crate::messages::Envelope;

/// Options of a new subscriber.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberOptions {
    /// Inbox capacity in messages; the bus's default when `None`.
    pub capacity: Option<usize>,
    /// Overflow policy of every subscription made with
    /// [`Subscriber::subscribe`]. When `None`: `backpressure` on `audit` and
    /// `security`, `drop_oldest` elsewhere.
    pub policy: Option<OverflowPolicy>,
}

/// A receiver of messages. Dropping it removes all its subscriptions.
///
/// Methods take `&self`, so a subscriber can be shared (e.g. in an `Arc`);
/// it is meant to have one consumer draining its inbox.
#[derive(Debug)]
pub struct Subscriber {
    id: SubscriberId,
    name: Arc<str>,
    inbox: Arc<Inbox>,
    bus: Weak<BusInner>,
    default_policy: Option<OverflowPolicy>,
}

impl Subscriber {
    pub(super) fn new(
        id: SubscriberId,
        name: Arc<str>,
        inbox: Arc<Inbox>,
        bus: Weak<BusInner>,
        default_policy: Option<OverflowPolicy>,
    ) -> Subscriber {
        Subscriber {
            id,
            name,
            inbox,
            bus,
            default_policy,
        }
    }

    /// This subscriber's id (used by [`Bus::broadcast_from`](super::Bus::broadcast_from)).
    pub fn id(&self) -> SubscriberId {
        self.id
    }

    /// This subscriber's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Subscribes to an exact topic or a pattern on `channel`, with the
    /// subscriber's default policy. Returns `false` if already subscribed.
    ///
    /// # Errors
    /// [`BusError::Topic`] for a malformed pattern.
    pub fn subscribe(&self, channel: Channel, pattern: &str) -> Result<bool, BusError> {
        let policy = self.default_policy.unwrap_or(if channel.is_lossless() {
            OverflowPolicy::Backpressure
        } else {
            OverflowPolicy::DropOldest
        });
        self.subscribe_with(channel, pattern, policy)
    }

    /// Subscribes with an explicit overflow policy. Returns `false` if
    /// already subscribed (the existing policy is kept).
    ///
    /// # Errors
    /// [`BusError::Topic`] for a malformed pattern.
    pub fn subscribe_with(
        &self,
        channel: Channel,
        pattern: &str,
        policy: OverflowPolicy,
    ) -> Result<bool, BusError> {
        match self.bus.upgrade() {
            Some(bus) => bus.subscribe(self.id, channel, pattern, policy),
            None => Ok(false),
        }
    }

    /// Removes a subscription. Returns `false` if there was none.
    ///
    /// # Errors
    /// [`BusError::Topic`] for a malformed pattern.
    pub fn unsubscribe(&self, channel: Channel, pattern: &str) -> Result<bool, BusError> {
        match self.bus.upgrade() {
            Some(bus) => bus.unsubscribe(self.id, channel, pattern),
            None => Ok(false),
        }
    }

    /// What this subscriber listens on.
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        self.bus
            .upgrade()
            .map(|b| b.subscriptions_of(self.id))
            .unwrap_or_default()
    }

    /// Waits for the next message. `None` once the bus is gone and the inbox
    /// is empty.
    pub async fn recv(&self) -> Option<Arc<Envelope>> {
        let mut one = Vec::with_capacity(1);
        self.inbox.recv_many(&mut one, 1).await;
        one.pop()
    }

    /// Waits until at least one message is queued, then moves up to `max`
    /// into `out` (appending). Returns how many; 0 means closed.
    pub async fn recv_many(&self, out: &mut Vec<Arc<Envelope>>, max: usize) -> usize {
        self.inbox.recv_many(out, max.max(1)).await
    }

    /// The next message if one is queued.
    pub fn try_recv(&self) -> Option<Arc<Envelope>> {
        let mut one = Vec::with_capacity(1);
        self.inbox.drain_into(&mut one, 1);
        one.pop()
    }

    /// Messages waiting in the inbox.
    pub fn queue_depth(&self) -> usize {
        self.inbox.depth()
    }

    /// Messages evicted by `drop_oldest` so far.
    pub fn dropped(&self) -> u64 {
        self.inbox.dropped()
    }

    /// Stops all deliveries now: removes every subscription and closes the
    /// inbox. Messages already queued can still be received; then `recv`
    /// returns `None`.
    pub fn close(&self) {
        self.inbox.close();
        if let Some(bus) = self.bus.upgrade() {
            bus.remove_subscriber(self.id);
        }
    }

    /// Whether the inbox is closed (by [`close`](Self::close) or because the bus was dropped).
    pub fn is_closed(&self) -> bool {
        self.inbox.is_closed()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.inbox.close();
        if let Some(bus) = self.bus.upgrade() {
            bus.remove_subscriber(self.id);
        }
    }
}

impl Drop for BusInner {
    fn drop(&mut self) {
        for entry in self.registry.get_mut().subscribers.values() {
            entry.inbox.close();
        }
    }
}
