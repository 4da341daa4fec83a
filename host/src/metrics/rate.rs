//! Lock-free events-per-second over a sliding window of one-second slots.
//!
//! [`RateWindow<W>`] keeps `W` one-second slots (default `W = 10`, see
//! [`DEFAULT_WINDOW_SECS`]) plus a monotonic total. Recording is one atomic
//! add for the total and one compare-and-swap on the slot of the current
//! second: no locks, no allocation.
//!
//! # Definition of the rate
//!
//! For a query at epoch second `now`, the window is the `W` seconds
//! `now - W + 1 ..= now`, i.e. the last `W - 1` complete seconds plus the
//! current, possibly partial, second. Then
//!
//! ```text
//! rate_at(now) = (events recorded for seconds in the window) / span
//! span         = min(W, now - first + 1)
//! ```
//!
//! where `first` is the earliest second ever passed to
//! [`add_at`](RateWindow::add_at) (or used by [`add`](RateWindow::add)).
//! The shorter span applies only while the window is warming up after the
//! first sample, so a steady rate of `r` events in every second reads exactly
//! `r` from its first second on, instead of ramping up over `W` seconds.
//! After `W` seconds without events the rate is exactly `0.0`. With no events
//! at all it is `0.0`.
//!
//! Because the current second counts fully while the divisor counts it as a
//! whole second, a live reading taken early in a second under-reports
//! slightly (by up to one second's worth of events out of `W`); readings
//! taken with a fixed `now` after that second's events (as in tests, or at
//! the start of the next second) are exact.
//!
//! # Slot representation
//!
//! Each slot is a single `AtomicU64` packing the slot's second (its low 32
//! bits, the *tag*) with that second's count (low 32 bits, saturating at
//! `u32::MAX` events per second). Keeping tag and count in one word is what
//! makes the "new second: reset the slot" step atomic with respect to
//! concurrent adds: with a separate epoch array, an add landing between a
//! reset's epoch update and its count reset would be wiped. Tags compare
//! with wrapping arithmetic, so they are unambiguous for 68 years either
//! side of any second.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

/// Window length, in seconds, of a plain `RateWindow`.
pub const DEFAULT_WINDOW_SECS: usize = 10;

/// Bits of a slot word holding the count; the tag is in the bits above.
const COUNT_BITS: u32 = 32;
/// Largest count a slot holds (per second); adds beyond saturate.
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;

/// Slot word for `count` events in second `tag`.
#[inline]
fn pack(tag: u32, count: u64) -> u64 {
    (u64::from(tag) << COUNT_BITS) | count
}

/// `(tag, count)` of a slot word.
#[inline]
fn unpack(word: u64) -> (u32, u64) {
    ((word >> COUNT_BITS) as u32, word & COUNT_MAX)
}

/// Tag of epoch second `secs`: its low 32 bits.
#[inline]
fn tag_of(secs: u64) -> u32 {
    secs as u32
}

/// Current time as whole seconds since the Unix epoch (0 if the clock is
/// before the epoch).
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Events per second over a sliding window of the last `W` seconds, plus a
/// monotonic total. See the [module docs](self) for the exact definition.
///
/// `W` must be at least 1 (checked at compile time when the window is
/// constructed). With the default, `RateWindow` is a 10-second window; write
/// `let r: RateWindow = RateWindow::new();` or `RateWindow::<10>::new()`
/// (in expression position the default is not inferred).
///
/// All updates are relaxed atomics; the window orders nothing but itself.
pub struct RateWindow<const W: usize = DEFAULT_WINDOW_SECS> {
    /// Slot `s % W` holds second `s`: packed tag and count, 0 when unused.
    slots: [AtomicU64; W],
    /// Earliest second ever recorded; `u64::MAX` before the first event.
    first_sec: AtomicU64,
    /// Events ever recorded (wrapping after `2^64`).
    total: AtomicU64,
}

impl<const W: usize> RateWindow<W> {
    /// Window length in seconds.
    pub const WINDOW_SECS: u64 = W as u64;

    /// Compile-time guard against a zero-length window.
    const NONEMPTY: () = assert!(W > 0, "RateWindow needs at least one slot");

    /// An empty window. `const`, so it can initialise a `static`.
    pub const fn new() -> Self {
        let () = Self::NONEMPTY;
        Self {
            slots: [const { AtomicU64::new(0) }; W],
            first_sec: AtomicU64::new(u64::MAX),
            total: AtomicU64::new(0),
        }
    }

    /// Records `n` events in the current wall-clock second
    /// ([`SystemTime`], whole seconds since the Unix epoch).
    #[inline]
    pub fn add(&self, n: u64) {
        self.add_at(n, now_secs());
    }

    /// Records `n` events in epoch second `now_secs`.
    ///
    /// `n` always counts towards [`total`](Self::total). It counts towards the
    /// window unless the slot for `now_secs` already holds a *later* second
    /// (an add arriving `W` or more seconds late, which is outside any current
    /// window anyway). A second's count saturates at `u32::MAX`. `n == 0` is
    /// a no-op.
    #[inline]
    pub fn add_at(&self, n: u64, now_secs: u64) {
        if n == 0 {
            return;
        }
        self.total.fetch_add(n, Relaxed);
        // A plain load first: the read-modify-write happens only once, for
        // the very first event (or an out-of-order earlier one).
        if now_secs < self.first_sec.load(Relaxed) {
            self.first_sec.fetch_min(now_secs, Relaxed);
        }
        let tag = tag_of(now_secs);
        let n = n.min(COUNT_MAX);
        let slot = &self.slots[(now_secs % Self::WINDOW_SECS) as usize];
        let mut current = slot.load(Relaxed);
        loop {
            let (slot_tag, slot_count) = unpack(current);
            let next = if slot_count == 0 {
                // Unused slot.
                pack(tag, n)
            } else if slot_tag == tag {
                // Same second: accumulate (both <= u32::MAX, no overflow).
                pack(tag, (slot_count + n).min(COUNT_MAX))
            } else if (tag.wrapping_sub(slot_tag) as i32) > 0 {
                // The slot holds an older second: start this one.
                pack(tag, n)
            } else {
                // The slot already holds a later second: too late for the
                // window.
                return;
            };
            match slot.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Events per second over the window ending at the current wall-clock
    /// second; see [`rate_at`](Self::rate_at).
    pub fn rate(&self) -> f64 {
        self.rate_at(now_secs())
    }

    /// Events per second over the `W` seconds `now_secs - W + 1 ..= now_secs`:
    /// their recorded events divided by `min(W, now_secs - first + 1)`, where
    /// `first` is the earliest second ever recorded. `0.0` when no event falls
    /// in the window.
    ///
    /// Meant for `now_secs` at or after the latest second recorded: slots are
    /// reused every `W` seconds, so a query further in the past only sees the
    /// seconds that have not been overwritten since.
    pub fn rate_at(&self, now_secs: u64) -> f64 {
        let events = self.count_at(now_secs);
        if events == 0 {
            return 0.0;
        }
        let first = self.first_sec.load(Relaxed);
        let span = if first <= now_secs {
            (now_secs - first).saturating_add(1).min(Self::WINDOW_SECS)
        } else {
            Self::WINDOW_SECS
        };
        events as f64 / span as f64
    }

    /// Events recorded for the `W` seconds `now_secs - W + 1 ..= now_secs`
    /// (the numerator of [`rate_at`](Self::rate_at)).
    pub fn count_at(&self, now_secs: u64) -> u64 {
        let mut events = 0u64;
        for back in 0..Self::WINDOW_SECS {
            let Some(second) = now_secs.checked_sub(back) else {
                break;
            };
            let word = self.slots[(second % Self::WINDOW_SECS) as usize].load(Relaxed);
            let (slot_tag, slot_count) = unpack(word);
            if slot_tag == tag_of(second) {
                events += slot_count;
            }
        }
        events
    }

    /// Every event ever recorded, including those too late for the window.
    /// Monotonic (wraps only after `2^64` events).
    pub fn total(&self) -> u64 {
        self.total.load(Relaxed)
    }
}

impl<const W: usize> Default for RateWindow<W> {
    /// Same as [`RateWindow::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl<const W: usize> fmt::Debug for RateWindow<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateWindow")
            .field("window_secs", &W)
            .field("total", &self.total())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A realistic epoch second (2023-11-14), above `u32::MAX / 2`.
    const T0: u64 = 1_700_000_000;

    #[test]
    fn empty() {
        let r: RateWindow = RateWindow::new();
        assert_eq!(RateWindow::<DEFAULT_WINDOW_SECS>::WINDOW_SECS, 10);
        assert_eq!(r.total(), 0);
        assert_eq!(r.rate_at(0), 0.0);
        assert_eq!(r.rate_at(T0), 0.0);
        assert_eq!(r.rate(), 0.0);
        r.add_at(0, T0);
        assert_eq!(r.total(), 0);
        assert_eq!(r.rate_at(T0), 0.0);
    }

    #[test]
    fn steady_rate_is_exact_including_warm_up() {
        for start in [0, 3, T0, u64::from(u32::MAX) - 7] {
            let r = RateWindow::<10>::new();
            for second in start..start + 20 {
                for _ in 0..100 {
                    r.add_at(1, second);
                }
                assert_eq!(r.rate_at(second), 100.0, "start {start}, second {second}");
            }
            assert_eq!(r.total(), 2_000);
            assert_eq!(r.count_at(start + 19), 1_000);
        }
    }

    #[test]
    fn window_slides() {
        let r: RateWindow = RateWindow::new();
        for second in T0..T0 + 10 {
            r.add_at(100, second);
        }
        for second in T0 + 10..T0 + 20 {
            r.add_at(50, second);
            if second == T0 + 14 {
                // T0+5..=T0+9 at 100/s, T0+10..=T0+14 at 50/s.
                assert_eq!(r.rate_at(second), 75.0);
            }
        }
        assert_eq!(r.rate_at(T0 + 19), 50.0);
        // Slots are reused: the seconds before T0+10 are gone, so a query
        // back at T0+14 now sees only T0+10..=T0+14.
        assert_eq!(r.rate_at(T0 + 14), 25.0);
        assert_eq!(r.total(), 1_500);
    }

    #[test]
    fn burst_then_silence_decays_to_zero() {
        let r: RateWindow = RateWindow::new();
        r.add_at(1_000, T0);
        assert_eq!(r.rate_at(T0), 1_000.0);
        for k in 1..10u64 {
            assert_eq!(r.rate_at(T0 + k), 1_000.0 / (k + 1) as f64, "k = {k}");
        }
        assert_eq!(r.rate_at(T0 + 10), 0.0);
        assert_eq!(r.rate_at(T0 + 1_000), 0.0);
        assert_eq!(r.total(), 1_000);
    }

    #[test]
    fn burst_after_warm_up_uses_full_window() {
        let r: RateWindow = RateWindow::new();
        r.add_at(1, T0);
        r.add_at(1_000, T0 + 100);
        assert_eq!(r.rate_at(T0 + 100), 100.0);
        assert_eq!(r.rate_at(T0 + 109), 100.0);
        assert_eq!(r.rate_at(T0 + 110), 0.0);
        assert_eq!(r.total(), 1_001);
    }

    #[test]
    fn silent_gap_leaves_no_stale_counts() {
        let r = RateWindow::<3>::new();
        r.add_at(5, T0);
        r.add_at(5, T0 + 1);
        r.add_at(5, T0 + 2);
        // Same slots, three laps later.
        r.add_at(7, T0 + 9);
        assert_eq!(r.count_at(T0 + 9), 7);
        assert_eq!(r.rate_at(T0 + 9), 7.0 / 3.0);
        assert_eq!(r.rate_at(T0 + 11), 7.0 / 3.0);
        assert_eq!(r.rate_at(T0 + 12), 0.0);
    }

    #[test]
    fn late_add_counts_in_total_only() {
        let r: RateWindow = RateWindow::new();
        r.add_at(5, T0 + 25);
        // Same slot as T0 + 25, but ten seconds older: outside its window.
        r.add_at(7, T0 + 15);
        assert_eq!(r.total(), 12);
        assert_eq!(r.count_at(T0 + 25), 5);
        assert_eq!(r.count_at(T0 + 15), 0);
        // Out-of-order but still current: counted.
        r.add_at(2, T0 + 24);
        assert_eq!(r.count_at(T0 + 25), 7);
        assert_eq!(r.rate_at(T0 + 25), 0.7);
    }

    #[test]
    fn per_second_count_saturates() {
        let r: RateWindow = RateWindow::new();
        r.add_at(u64::MAX, 0);
        r.add_at(10, 0);
        assert_eq!(r.count_at(0), u64::from(u32::MAX));
        assert_eq!(r.rate_at(0), f64::from(u32::MAX));
        assert_eq!(r.total(), 9); // u64::MAX + 10, wrapped
    }

    #[test]
    fn concurrent_adds_are_exact() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 100_000;
        let r = Arc::new(RateWindow::<10>::new());
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let r = Arc::clone(&r);
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        // Threads move through the seconds at different
                        // speeds, so slot resets race with adds.
                        r.add_at(1, T0 + (i * (t + 1)) / PER_THREAD);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(r.total(), THREADS * PER_THREAD);
        // All seconds used are T0..=T0+3, within one window.
        assert_eq!(r.count_at(T0 + 4), THREADS * PER_THREAD);
        assert_eq!(r.rate_at(T0 + 4), (THREADS * PER_THREAD) as f64 / 5.0);
    }

    #[test]
    fn concurrent_adds_in_one_fresh_second() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 100_000;
        for lap in 0..5u64 {
            let r = Arc::new(RateWindow::<10>::new());
            // Occupy the slot with an older second so the first adds race to
            // reset it.
            r.add_at(3, T0 + lap);
            let now = T0 + lap + 10;
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let r = Arc::clone(&r);
                    std::thread::spawn(move || {
                        for _ in 0..PER_THREAD {
                            r.add_at(1, now);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(r.count_at(now), THREADS * PER_THREAD);
            assert_eq!(r.total(), THREADS * PER_THREAD + 3);
        }
    }

    #[test]
    fn wall_clock_add() {
        let r: RateWindow = RateWindow::default();
        r.add(5);
        assert_eq!(r.total(), 5);
        assert!(r.rate() > 0.0);
        let text = format!("{r:?}");
        assert!(
            text.contains("window_secs: 10") && text.contains("total: 5"),
            "{text}"
        );
    }
}
