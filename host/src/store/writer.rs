//! Group commit: appends that arrive while a commit is in progress are
//! written together, in one write transaction and one `fdatasync`.
//!
//! Appenders queue up; the one at the front (the leader) takes the queued
//! requests, in order, writes them in one transaction, publishes each its
//! own result and hands the front to the next waiter. Each append keeps its
//! own expected-version check (against the state left by the appends before
//! it in the group) and its own all-or-nothing outcome; only a failure of
//! the transaction itself fails the whole group. A lone appender pays one
//! uncontended lock; concurrent appenders share the cost of durability.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::{Condvar, Mutex};

use super::codec::PreparedEvent;
use super::error::StoreError;
use super::types::{AppendResult, ExpectedVersion};

/// The most events a leader takes into one group (it always takes at least
/// one append, whatever its size).
const MAX_GROUP_EVENTS: usize = 10_000;
/// The most appends a leader takes into one group.
const MAX_GROUP_APPENDS: usize = 1_000;

/// One append, its payloads encoded.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub(crate) stream: String,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<PreparedEvent>,
    pub(crate) created: DateTime<Utc>,
}

/// The outcome of one append.
pub(crate) type AppendOutcome = Result<AppendResult, StoreError>;

#[derive(Debug)]
struct Pending {
    request: Mutex<Option<AppendRequest>>,
    result: Mutex<Option<AppendOutcome>>,
}

/// The queue of appends waiting for the writer.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    queue: Mutex<VecDeque<Arc<Pending>>>,
    turn: Condvar,
}

impl WriteQueue {
    /// Queues `request` and returns its outcome. If this thread reaches the
    /// front, it calls `write` with a group of requests (this one first),
    /// which must return one outcome per request, in order.
    pub(crate) fn submit(
        &self,
        store: &str,
        request: AppendRequest,
        write: impl FnOnce(&[AppendRequest]) -> Vec<AppendOutcome>,
    ) -> AppendOutcome {
        let me = Arc::new(Pending {
            request: Mutex::new(Some(request)),
            result: Mutex::new(None),
        });
        let mut queue = self.queue.lock();
        queue.push_back(Arc::clone(&me));
        loop {
            if let Some(outcome) = me.result.lock().take() {
                return outcome;
            }
            if queue.front().is_some_and(|f| Arc::ptr_eq(f, &me)) {
                break;
            }
            self.turn.wait(&mut queue);
        }

        // This thread leads: take a group from the front.
        let (mut group, mut requests, mut events) = (Vec::new(), Vec::new(), 0);
        for p in queue.iter() {
            if !group.is_empty() && (group.len() >= MAX_GROUP_APPENDS || events >= MAX_GROUP_EVENTS)
            {
                break;
            }
            let Some(r) = p.request.lock().take() else {
                break;
            };
            events += r.events.len();
            requests.push(r);
            group.push(Arc::clone(p));
        }
        drop(queue);

        let mut publish = Publish {
            queue: self,
            store,
            group: &group,
            outcomes: None,
        };
        publish.outcomes = Some(write(&requests));
        drop(publish);
        let outcome = me.result.lock().take();
        outcome.unwrap_or_else(|| Err(lost(store)))
    }
}

fn lost(store: &str) -> StoreError {
    StoreError::Db {
        store: store.to_owned(),
        context: "appending".into(),
        message: "the thread committing this append's group panicked; the append may or may not \
                  have been written"
            .into(),
    }
}

/// Publishes a group's outcomes, removes it from the queue and wakes the
/// waiters, also when the leader unwinds from a panic.
struct Publish<'a> {
    queue: &'a WriteQueue,
    store: &'a str,
    group: &'a [Arc<Pending>],
    outcomes: Option<Vec<AppendOutcome>>,
}

impl Drop for Publish<'_> {
    fn drop(&mut self) {
        let mut queue = self.queue.queue.lock();
        let mut outcomes = self.outcomes.take().unwrap_or_default().into_iter();
        for p in self.group {
            let outcome = outcomes.next().unwrap_or_else(|| Err(lost(self.store)));
            *p.result.lock() = Some(outcome);
            if queue.front().is_some_and(|f| Arc::ptr_eq(f, p)) {
                queue.pop_front();
            }
        }
        self.queue.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn request(stream: &str) -> AppendRequest {
        AppendRequest {
            stream: stream.into(),
            expected: ExpectedVersion::Any,
            events: Vec::new(),
            created: Utc::now(),
        }
    }

    fn ok(n: u64) -> AppendOutcome {
        Ok(AppendResult {
            first_event_number: n,
            last_event_number: n,
            first_position: n,
            last_position: n,
            replayed: false,
            created: Utc::now(),
        })
    }

    #[test]
    fn waiting_appends_are_grouped_and_each_gets_its_own_outcome() {
        let queue = Arc::new(WriteQueue::default());
        let biggest = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8u64)
            .map(|t| {
                let (queue, biggest) = (Arc::clone(&queue), Arc::clone(&biggest));
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        let stream = format!("{t}-{i}");
                        let out = queue.submit("s", request(&stream), |group| {
                            biggest.fetch_max(group.len(), Ordering::Relaxed);
                            // A slow "commit", so others queue up behind it.
                            std::thread::sleep(Duration::from_micros(200));
                            group
                                .iter()
                                .map(|r| {
                                    let (t, i) = r.stream.split_once('-').unwrap();
                                    ok(t.parse::<u64>().unwrap() * 1000 + i.parse::<u64>().unwrap())
                                })
                                .collect()
                        });
                        assert_eq!(out.unwrap().first_event_number, t * 1000 + i);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(biggest.load(Ordering::Relaxed) > 1, "appends were grouped");
        assert!(queue.queue.lock().is_empty());
    }

    #[test]
    fn a_leader_that_panics_fails_its_group_and_the_queue_goes_on() {
        let queue = WriteQueue::default();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            queue.submit("s", request("a"), |_| panic!("boom"))
        }));
        assert!(r.is_err());
        assert!(queue.queue.lock().is_empty());
        let out = queue.submit("s", request("b"), |g| g.iter().map(|_| ok(7)).collect());
        assert_eq!(out.unwrap().first_position, 7);
    }
}
