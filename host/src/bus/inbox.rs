//! A subscriber's bounded inbox and its overflow policies.
//!
//! Publishers push into the inbox under a short mutex; the subscriber drains
//! it singly or in batches. When the inbox is full, the subscription's
//! [`OverflowPolicy`] decides: drop the oldest queued message (counted), or
//! make the publisher wait for space up to a timeout.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// The state shared between publishers and the subscriber.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: Mutex<VecDeque<Arc<Envelope>>>,
    capacity: usize,
    readable: Notify,
    writable: Notify,
    closed: AtomicBool,
    delivered: AtomicU64,
    dropped: AtomicU64,
    /// Milliseconds since the Unix epoch of the last delivery, 0 if none.
    last_delivery_ms: AtomicU64,
}

impl Inbox {
    pub(crate) fn new(capacity: usize) -> Arc<Inbox> {
        let capacity = capacity.max(1);
        Arc::new(Inbox {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity,
            readable: Notify::new(),
            writable: Notify::new(),
            closed: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_delivery_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Pushes without waiting.
    pub(crate) fn try_push(
        &self,
        msg: &Arc<Envelope>,
        policy: OverflowPolicy,
        now_ms: u64,
    ) -> Pushed {
        if self.closed.load(Ordering::Acquire) {
            return Pushed::Closed;
        }
        let mut q = self.queue.lock();
        let mut result = Pushed::Queued;
        if q.len() >= self.capacity {
            match policy {
                OverflowPolicy::Backpressure => return Pushed::Full,
                OverflowPolicy::DropOldest => {
                    q.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    result = Pushed::QueuedDroppingOldest;
                }
            }
        }
        q.push_back(Arc::clone(msg));
        drop(q);
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.last_delivery_ms.store(now_ms, Ordering::Relaxed);
        self.readable.notify_one();
        result
    }

    /// Waits for room up to `timeout`, then pushes. Returns `Full` on timeout.
    pub(crate) async fn push_waiting(
        &self,
        msg: &Arc<Envelope>,
        timeout: Duration,
        now_ms: u64,
    ) -> Pushed {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let writable = self.writable.notified();
            tokio::pin!(writable);
            writable.as_mut().enable();
            match self.try_push(msg, OverflowPolicy::Backpressure, now_ms) {
                Pushed::Full => {}
                other => return other,
            }
            if tokio::time::timeout_at(deadline, writable).await.is_err() {
                return self.try_push(msg, OverflowPolicy::Backpressure, now_ms);
            }
        }
    }

    /// Moves up to `max` queued messages into `out`; returns how many.
    pub(crate) fn drain_into(&self, out: &mut Vec<Arc<Envelope>>, max: usize) -> usize {
        let mut q = self.queue.lock();
        let n = q.len().min(max);
        out.extend(q.drain(..n));
        drop(q);
        if n > 0 {
            self.writable.notify_waiters();
        }
        n
    }

    /// Waits until at least one message is queued, then drains up to `max`.
    /// Returns 0 only when the inbox is closed and empty.
    pub(crate) async fn recv_many(&self, out: &mut Vec<Arc<Envelope>>, max: usize) -> usize {
        loop {
            let readable = self.readable.notified();
            tokio::pin!(readable);
            readable.as_mut().enable();
            let n = self.drain_into(out, max);
            if n > 0 || self.closed.load(Ordering::Acquire) {
                return n;
            }
            readable.await;
        }
    }

    /// Number of queued messages.
    pub(crate) fn depth(&self) -> usize {
        self.queue.lock().len()
    }

    /// Marks the inbox closed: pushes fail with `Closed`, waiters wake up.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.readable.notify_waiters();
        self.readable.notify_one();
        self.writable.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn last_delivery_ms(&self) -> u64 {
        self.last_delivery_ms.load(Ordering::Relaxed)
    }
}
