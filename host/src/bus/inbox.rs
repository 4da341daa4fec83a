//! A subscriber's bounded inbox and its overflow policies.
//!
//! Publishers push into the inbox under a short mutex; the subscriber drains
//! it singly or in batches. When the inbox is full, the subscription's
//! [`OverflowPolicy`] decides: drop the oldest queued message (counted), or
//! make the publisher wait for space up to a timeout.
//!
//! # Hand-off cost
//! Everything a push touches lives under the one mutex (queue, counters,
//! closed flag), so a push is one lock/unlock and no other shared write.
//! Wake-ups are lazy: a consumer that found the inbox empty marks itself
//! parked (under the lock) before it sleeps, and only a push that finds that
//! mark wakes it. A consumer that keeps up with a busy publisher is woken once
//! per drained batch, not once per message; publishers waiting for room are
//! likewise only signalled when one is registered. (An idle consumer does not
//! spin before parking: measured, that makes it take messages one at a time
//! and contend with the publisher on every push, 3x slower 1 → 1.)

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::messages::Envelope;

/// What happens when a message arrives at a full inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Evict the oldest queued message to make room; the eviction is counted
    /// in the subscription's `dropped` statistic.
    DropOldest,
    /// The publisher waits for room up to the bus's back-pressure timeout,
    /// then gets [`BusError::Backpressure`](super::BusError). Nothing is
    /// dropped. The default on the `audit` and `security` channels.
    Backpressure,
}

/// Result of a non-waiting push.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued.
    Queued,
    /// Queued after evicting the oldest message.
    QueuedDroppingOldest,
    /// Full under [`OverflowPolicy::Backpressure`]: not queued.
    Full,
    /// The subscriber is gone.
    Closed,
}

/// The state behind the inbox's mutex.
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Arc<Envelope>>,
    closed: bool,
    /// A consumer found the queue empty and sleeps on `readable`.
    consumer_parked: bool,
    /// Publishers sleeping on `writable` for room.
    writers_waiting: usize,
    delivered: u64,
    dropped: u64,
    /// Milliseconds since the Unix epoch of the last delivery, 0 if none.
    last_delivery_ms: u64,
}

/// The state shared between publishers and the subscriber.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: Mutex<Queue>,
    capacity: usize,
    readable: Notify,
    writable: Notify,
}

impl Inbox {
    pub(crate) fn new(capacity: usize) -> Arc<Inbox> {
        let capacity = capacity.max(1);
        Arc::new(Inbox {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(capacity.min(4096)),
                ..Queue::default()
            }),
            capacity,
            readable: Notify::new(),
            writable: Notify::new(),
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Pushes without waiting. The message is moved in when queued and
    /// handed back otherwise (`Full`, `Closed`).
    pub(crate) fn try_push(
        &self,
        msg: Arc<Envelope>,
        policy: OverflowPolicy,
        now_ms: u64,
    ) -> (Pushed, Option<Arc<Envelope>>) {
        self.push(msg, policy, now_ms, false)
    }

    /// Pushes without waiting; when full under `backpressure` and
    /// `register_waiter` is set, counts the caller among the publishers
    /// waiting for room, under the same lock as the failed attempt (so no
    /// drain can slip in between unnoticed).
    fn push(
        &self,
        msg: Arc<Envelope>,
        policy: OverflowPolicy,
        now_ms: u64,
        register_waiter: bool,
    ) -> (Pushed, Option<Arc<Envelope>>) {
        let mut q = self.queue.lock();
        if q.closed {
            return (Pushed::Closed, Some(msg));
        }
        let mut result = Pushed::Queued;
        if q.items.len() >= self.capacity {
            match policy {
                OverflowPolicy::Backpressure => {
                    q.writers_waiting += usize::from(register_waiter);
                    return (Pushed::Full, Some(msg));
                }
                OverflowPolicy::DropOldest => {
                    q.items.pop_front();
                    q.dropped += 1;
                    result = Pushed::QueuedDroppingOldest;
                }
            }
        }
        q.items.push_back(msg);
        q.delivered += 1;
        q.last_delivery_ms = now_ms;
        let wake = std::mem::take(&mut q.consumer_parked);
        drop(q);
        if wake {
            self.readable.notify_waiters();
        }
        (result, None)
    }

    /// Waits for room up to `timeout`, then pushes. Returns `Full` on timeout.
    pub(crate) async fn push_waiting(
        &self,
        msg: Arc<Envelope>,
        timeout: Duration,
        now_ms: u64,
    ) -> Pushed {
        /// Unregisters a waiting publisher, also when its future is dropped.
        struct Waiting<'a>(&'a Inbox);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.queue.lock().writers_waiting -= 1;
            }
        }

        let deadline = tokio::time::Instant::now() + timeout;
        let mut msg = msg;
        loop {
            let writable = self.writable.notified();
            tokio::pin!(writable);
            // Listening before the attempt, registered with it: a drain after
            // the failed attempt sees the registration and wakes us.
            writable.as_mut().enable();
            match self.push(msg, OverflowPolicy::Backpressure, now_ms, true) {
                (Pushed::Full, Some(back)) => msg = back,
                (other, _) => return other,
            }
            let waiting = Waiting(self);
            let timed_out = tokio::time::timeout_at(deadline, writable).await.is_err();
            drop(waiting);
            if timed_out {
                return self.try_push(msg, OverflowPolicy::Backpressure, now_ms).0;
            }
        }
    }

    /// Moves up to `max` queued messages into `out`; returns how many.
    pub(crate) fn drain_into(&self, out: &mut Vec<Arc<Envelope>>, max: usize) -> usize {
        self.drain_or_park(out, max, false).0
    }

    /// Drains up to `max`; when nothing is queued and `park` is set, marks
    /// the consumer parked. Returns (how many, closed).
    fn drain_or_park(&self, out: &mut Vec<Arc<Envelope>>, max: usize, park: bool) -> (usize, bool) {
        let mut q = self.queue.lock();
        let n = q.items.len().min(max);
        out.extend(q.items.drain(..n));
        let closed = q.closed;
        if n == 0 && park && !closed {
            q.consumer_parked = true;
        }
        let wake_writers = n > 0 && q.writers_waiting > 0;
        drop(q);
        if wake_writers {
            self.writable.notify_waiters();
        }
        (n, closed)
    }

    /// Waits until at least one message is queued, then drains up to `max`.
    /// Returns 0 only when the inbox is closed and empty.
    pub(crate) async fn recv_many(&self, out: &mut Vec<Arc<Envelope>>, max: usize) -> usize {
        loop {
            let readable = self.readable.notified();
            tokio::pin!(readable);
            // Registered before the consumer marks itself parked, so the
            // push that sees the mark always reaches this future.
            readable.as_mut().enable();
            let (n, closed) = self.drain_or_park(out, max, true);
            if n > 0 || closed {
                return n;
            }
            readable.await;
        }
    }

    /// Number of queued messages.
    pub(crate) fn depth(&self) -> usize {
        self.queue.lock().items.len()
    }

    /// Marks the inbox closed: pushes fail with `Closed`, waiters wake up.
    pub(crate) fn close(&self) {
        self.queue.lock().closed = true;
        self.readable.notify_waiters();
        self.writable.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.queue.lock().closed
    }

    pub(crate) fn delivered(&self) -> u64 {
        self.queue.lock().delivered
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.queue.lock().dropped
    }

    pub(crate) fn last_delivery_ms(&self) -> u64 {
        self.queue.lock().last_delivery_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Channel;

    fn msg(n: u64) -> Arc<Envelope> {
        Arc::new(Envelope::new(
            Channel::Events,
            "s:x",
            "custom.n",
            serde_json::json!({ "n": n }),
            "node",
        ))
    }

    /// A publisher waiting for room is woken by the drain that makes room:
    /// with a one-slot inbox every push waits, so a lost wake-up would stall
    /// a push for the whole (long) timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_publishers_are_woken_by_every_drain() {
        const N: u64 = 5_000;
        let inbox = Inbox::new(1);
        let consumer = {
            let inbox = Arc::clone(&inbox);
            tokio::spawn(async move {
                let (mut got, mut buf) = (Vec::new(), Vec::new());
                while (got.len() as u64) < N {
                    buf.clear();
                    inbox.recv_many(&mut buf, 1).await;
                    got.extend(buf.iter().map(|m| m.payload()["n"].as_u64().unwrap()));
                }
                got
            })
        };
        let publish = async {
            for n in 0..N {
                let pushed = inbox.push_waiting(msg(n), Duration::from_secs(30), 0).await;
                assert_eq!(pushed, Pushed::Queued, "message {n}");
            }
        };
        tokio::time::timeout(Duration::from_secs(20), publish)
            .await
            .expect("a waiting publisher missed its wake-up");
        let got = consumer.await.unwrap();
        assert_eq!(got, (0..N).collect::<Vec<_>>(), "all, in order");
        assert_eq!(
            inbox.queue.lock().writers_waiting,
            0,
            "no registration left"
        );
    }

    /// A waiting publisher whose future is dropped leaves no registration.
    #[tokio::test]
    async fn a_cancelled_waiting_publisher_unregisters() {
        let inbox = Inbox::new(1);
        assert_eq!(
            inbox.try_push(msg(0), OverflowPolicy::Backpressure, 0).0,
            Pushed::Queued
        );
        let waited = tokio::time::timeout(
            Duration::from_millis(20),
            inbox.push_waiting(msg(1), Duration::from_secs(30), 0),
        )
        .await;
        assert!(waited.is_err(), "still full: the publisher was waiting");
        assert_eq!(inbox.queue.lock().writers_waiting, 0);
        assert_eq!(inbox.delivered(), 1);
    }
}
