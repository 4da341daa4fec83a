//! A live feed for one external client: a bus subscriber with a bounded
//! inbox that always drops its oldest message when full (whatever the
//! channel's usual policy), so a slow client never stalls a publisher or
//! another client. What the client missed is told to it, as tokio's
//! `RecvError::Lagged(n)` tells a receiver: a [`Item::Lagged`] with the
//! number of messages dropped since the last one it received.
//!
//! SSE and WebSocket connections both read their messages from a [`Feed`].

use std::sync::Arc;

use crate::bus::{Bus, BusError, Channel, OverflowPolicy, Subscriber, SubscriberOptions};
use crate::messages::Envelope;

/// What a feed yields.
#[derive(Debug, Clone)]
pub enum Item {
    /// A message.
    Message(Arc<Envelope>),
    /// This many messages were dropped before the next one.
    Lagged(u64),
}

/// One client's subscription.
#[derive(Debug)]
pub struct Feed {
    sub: Subscriber,
    seen_dropped: u64,
    /// A message received after a drop, held back until the lag is told.
    pending: Option<Arc<Envelope>>,
}

impl Feed {
    /// A feed named after `client`, holding at most `buffer` messages.
    ///
    /// # Errors
    /// [`BusError`] for an empty name.
    pub fn new(bus: &Bus, client: &str, buffer: usize) -> Result<Feed, BusError> {
        let sub = bus.subscriber_with(
            client,
            SubscriberOptions {
                capacity: Some(buffer.max(1)),
                policy: Some(OverflowPolicy::DropOldest),
            },
        )?;
        Ok(Feed {
            sub,
            seen_dropped: 0,
            pending: None,
        })
    }

    /// Adds `pattern` on `channel` (returns `false` if already there).
    ///
    /// # Errors
    /// [`BusError::Topic`] for a malformed pattern.
    pub fn subscribe(&self, channel: Channel, pattern: &str) -> Result<bool, BusError> {
        self.sub.subscribe(channel, pattern)
    }

    /// Removes `pattern` on `channel` (returns `false` if it was not there).
    ///
    /// # Errors
    /// [`BusError::Topic`] for a malformed pattern.
    pub fn unsubscribe(&self, channel: Channel, pattern: &str) -> Result<bool, BusError> {
        self.sub.unsubscribe(channel, pattern)
    }

    /// Messages dropped for this client so far.
    pub fn dropped(&self) -> u64 {
        self.sub.dropped()
    }

    /// The next item; `None` when the bus is gone.
    pub async fn next(&mut self) -> Option<Item> {
        if let Some(env) = self.pending.take() {
            return Some(Item::Message(env));
        }
        if let Some(lag) = self.lag() {
            return Some(lag);
        }
        let env = self.sub.recv().await?;
        // A drop while this message waited is told before it.
        match self.lag() {
            Some(lag) => {
                // Keep the message for the next call.
                self.pending = Some(env);
                Some(lag)
            }
            None => Some(Item::Message(env)),
        }
    }

    fn lag(&mut self) -> Option<Item> {
        let dropped = self.sub.dropped();
        (dropped > self.seen_dropped).then(|| {
            let missed = dropped - self.seen_dropped;
            self.seen_dropped = dropped;
            Item::Lagged(missed)
        })
    }
}
