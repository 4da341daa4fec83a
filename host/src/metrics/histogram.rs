//! Lock-free latency histogram for the hot path.
//!
//! [`LatencyHistogram`] records durations in whole microseconds. Recording is
//! two relaxed atomic read-modify-writes (the bucket and the sum): no locks,
//! no allocation, no system calls. Kept against the `hdrhistogram` crate
//! (issue #13, `host/benches/histogram.rs`): that one records through
//! `&mut self`, so sharing it takes a lock, and reading its percentiles costs
//! about 15 times as much (see `docs/benchmarks.md`). Reading ([`LatencyHistogram::snapshot`]) and reading plus
//! resetting ([`LatencyHistogram::take`], once per reporting interval) produce
//! a [`LatencySnapshot`] with count, exact min/max, exact mean and
//! approximate p50/p95/p99.
//!
//! # Bucket layout
//!
//! Buckets are log-linear: every power of two is split into 4 equal-width
//! sub-buckets (2 mantissa bits).
//!
//! * Values `0..=7` µs each get their own bucket (exact).
//! * A value `v` with `2^e <= v < 2^(e+1)` (`3 <= e <= 25`) falls in a bucket
//!   of width `2^(e-2)`, i.e. a quarter of its power of two.
//! * Values `>= 2^26` µs (about 67.1 s, see
//!   [`LatencyHistogram::MAX_TRACKED_US`]) share a single overflow bucket.
//!
//! That is 100 finite buckets plus the overflow bucket, 101 `AtomicU64`s.
//!
//! # Error bound
//!
//! A percentile is reported as the *upper bound* of the bucket that holds the
//! sample of that rank, clamped to the exact `[min, max]` range. So for a true
//! percentile value `v` the reported value `p` satisfies, exactly:
//!
//! * `p >= v` (never under-reports);
//! * `p == v` when `v < 8` µs or when `v` is the minimum or maximum sample;
//! * otherwise `p - v <= 2^(e-2) - 1 < v / 4`: the over-estimate is strictly
//!   less than 25 % of the true value, which is the same as strictly less than
//!   20 % of the reported value (`0.8 * p < v <= p`);
//! * in the overflow bucket (`v >= 2^26` µs) the reported value is the exact
//!   maximum, so the bound there is only `v <= p <= max`.
//!
//! (A geometric split, `2^(1/4)` per sub-bucket, would give ≈ 18.9 %; the
//! linear split trades that for a bucket index computed with a
//! leading-zero count and two shifts.)
//!
//! The count (the buckets' total), sum (hence mean), min and max are exact,
//! not bucketed.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Mantissa bits: each power of two is split into `2^SUB_BITS` sub-buckets.
const SUB_BITS: u32 = 2;
/// Sub-buckets per power of two.
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// Values below `2^MAX_EXP` µs get a finite bucket.
const MAX_EXP: u32 = 26;
/// Number of finite buckets: `0..SUB_BUCKETS` exact, then `SUB_BUCKETS` per
/// power of two from `2^SUB_BITS` up to `2^(MAX_EXP - 1)`.
const FINITE_BUCKETS: usize = ((MAX_EXP - SUB_BITS + 1) as usize) << SUB_BITS;
/// Index of the overflow bucket (values `>= 2^MAX_EXP`).
const OVERFLOW: usize = FINITE_BUCKETS;
/// Total number of buckets.
const BUCKETS: usize = FINITE_BUCKETS + 1;

/// Bucket holding `us` microseconds.
#[inline]
fn bucket_index(us: u64) -> usize {
    if us < SUB_BUCKETS as u64 {
        return us as usize;
    }
    // floor(log2(us)), >= SUB_BITS here.
    let e = us.ilog2();
    if e >= MAX_EXP {
        return OVERFLOW;
    }
    let shift = e - SUB_BITS;
    let mantissa = ((us >> shift) as usize) & (SUB_BUCKETS - 1);
    (((e - SUB_BITS + 1) as usize) << SUB_BITS) + mantissa
}

/// Largest value (inclusive) that lands in bucket `i`; `u64::MAX` for the
/// overflow bucket.
fn bucket_upper(i: usize) -> u64 {
    if i < SUB_BUCKETS {
        return i as u64;
    }
    if i >= OVERFLOW {
        return u64::MAX;
    }
    let e = (i >> SUB_BITS) as u32 + SUB_BITS - 1;
    let mantissa = (i & (SUB_BUCKETS - 1)) as u64;
    ((SUB_BUCKETS as u64 + mantissa + 1) << (e - SUB_BITS)) - 1
}

/// Hot-path-cheap histogram of durations in microseconds.
///
/// All methods take `&self`; share it through an `Arc` or a `static` (the
/// constructor is `const`). Every update uses relaxed atomics: the histogram
/// orders nothing but its own counters. See the [module docs](self) for the
/// bucket layout and the exact percentile error bound.
///
/// Concurrency guarantees:
///
/// * [`record`](Self::record) never blocks and never allocates;
/// * each counter is reset by [`take`](Self::take) with an atomic swap, so a
///   sample racing with `take` is counted in exactly one interval (possibly
///   the next one) — never lost and never counted twice. Its separate parts
///   (bucket, sum, min, max) may however straddle the two intervals,
///   so a racing interval's min/max/percentiles can be slightly off;
/// * [`snapshot`](Self::snapshot) taken while other threads record is
///   likewise a near-consistent view, not an atomic one.
pub struct LatencyHistogram {
    /// Samples per bucket; their total is the count.
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
    /// `u64::MAX` when empty.
    min_us: AtomicU64,
    /// `0` when empty.
    max_us: AtomicU64,
}

impl LatencyHistogram {
    /// Largest duration, in microseconds, with its own finite bucket
    /// (`2^26 - 1` µs, about 67.1 s). Longer samples share one overflow
    /// bucket whose percentile is reported as the exact maximum.
    pub const MAX_TRACKED_US: u64 = (1 << MAX_EXP) - 1;

    /// An empty histogram. `const`, so it can initialise a `static`.
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            sum_us: AtomicU64::new(0),
            min_us: AtomicU64::new(u64::MAX),
            max_us: AtomicU64::new(0),
        }
    }

    /// Records a duration, truncated to whole microseconds (sub-microsecond
    /// durations record as 0 µs; durations beyond `u64::MAX` µs saturate).
    #[inline]
    pub fn record(&self, d: Duration) {
        self.record_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records a duration given in microseconds.
    ///
    /// Cost: two atomic adds (bucket, sum) plus, only when `us` is a new
    /// minimum or maximum, a `fetch_min`/`fetch_max`. The running sum
    /// wraps after `2^64` µs (≈ 584 000 years) in one interval.
    #[inline]
    pub fn record_micros(&self, us: u64) {
        self.buckets[bucket_index(us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        // Plain loads first: the read-modify-write is only needed for a new
        // extreme, which is rare once an interval has a few samples.
        if us < self.min_us.load(Relaxed) {
            self.min_us.fetch_min(us, Relaxed);
        }
        if us > self.max_us.load(Relaxed) {
            self.max_us.fetch_max(us, Relaxed);
        }
    }

    /// Records many samples (µs) with one atomic add per touched bucket
    /// instead of one per sample: the cheap path for a delivered batch (of
    /// 8 or more; fewer are recorded one by one).
    pub fn record_many_micros(&self, samples: impl IntoIterator<Item = u64>) {
        let samples = samples.into_iter();
        // A few samples: one by one (clearing the local table below costs
        // more than their atomic adds).
        if samples.size_hint().1.is_some_and(|n| n < 8) {
            samples.for_each(|us| self.record_micros(us));
            return;
        }
        // Counted locally first, with a bit per touched bucket (101 fit in a
        // u128), then added to the shared counters bucket by bucket.
        let mut local = [0u64; BUCKETS];
        let mut touched = 0u128;
        let (mut sum, mut min, mut max) = (0u64, u64::MAX, 0u64);
        for us in samples {
            let b = bucket_index(us);
            local[b] += 1;
            touched |= 1 << b;
            sum = sum.saturating_add(us);
            min = min.min(us);
            max = max.max(us);
        }
        if touched == 0 {
            return;
        }
        while touched != 0 {
            let b = touched.trailing_zeros() as usize;
            touched &= touched - 1;
            self.buckets[b].fetch_add(local[b], Relaxed);
        }
        self.sum_us.fetch_add(sum, Relaxed);
        if min < self.min_us.load(Relaxed) {
            self.min_us.fetch_min(min, Relaxed);
        }
        if max > self.max_us.load(Relaxed) {
            self.max_us.fetch_max(max, Relaxed);
        }
    }

    /// Summarises everything recorded since construction or the last
    /// [`take`](Self::take), without resetting.
    pub fn snapshot(&self) -> LatencySnapshot {
        self.counts().summary()
    }

    /// Summarises and resets in one pass: each counter is atomically swapped
    /// with its empty value, so every recorded sample is reported by exactly
    /// one `take` (a sample racing with this call may land in the next one).
    /// Meant to be called once per reporting interval.
    pub fn take(&self) -> LatencySnapshot {
        self.take_counts().summary()
    }

    /// The raw counters recorded since construction or the last take,
    /// without resetting (for exporters that need the buckets).
    pub fn counts(&self) -> HistogramCounts {
        let mut buckets = [0u64; BUCKETS];
        for (dst, src) in buckets.iter_mut().zip(&self.buckets) {
            *dst = src.load(Relaxed);
        }
        HistogramCounts {
            buckets,
            sum_us: self.sum_us.load(Relaxed),
            min_us: self.min_us.load(Relaxed),
            max_us: self.max_us.load(Relaxed),
        }
    }

    /// [`take`](Self::take), returning the raw counters.
    pub fn take_counts(&self) -> HistogramCounts {
        let mut buckets = [0u64; BUCKETS];
        for (dst, src) in buckets.iter_mut().zip(&self.buckets) {
            *dst = src.swap(0, Relaxed);
        }
        HistogramCounts {
            buckets,
            sum_us: self.sum_us.swap(0, Relaxed),
            min_us: self.min_us.swap(u64::MAX, Relaxed),
            max_us: self.max_us.swap(0, Relaxed),
        }
    }
}

/// The raw counters of a [`LatencyHistogram`] at one moment: what
/// [`snapshot`](LatencyHistogram::snapshot) summarises, kept whole so that
/// several can be added up (e.g. every interval taken so far) and exported
/// bucket by bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct HistogramCounts {
    buckets: [u64; BUCKETS],
    sum_us: u64,
    /// `u64::MAX` when empty.
    min_us: u64,
    max_us: u64,
}

impl Default for HistogramCounts {
    /// No samples.
    fn default() -> Self {
        HistogramCounts {
            buckets: [0; BUCKETS],
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

impl fmt::Debug for HistogramCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistogramCounts")
            .field("samples", &self.samples())
            .field("sum_us", &self.sum_us)
            .finish_non_exhaustive()
    }
}

impl HistogramCounts {
    /// Adds `other`'s samples to these.
    pub fn add(&mut self, other: &HistogramCounts) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_us = self.sum_us.wrapping_add(other.sum_us);
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Number of samples (the buckets' total).
    pub fn samples(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Sum of the samples, in microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// Every bucket in order as `(upper bound in µs, inclusive; samples)`;
    /// the last, the overflow bucket, has the bound `u64::MAX`.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, &n)| (bucket_upper(i), n))
    }

    /// Count, extremes, mean and percentiles.
    pub fn summary(&self) -> LatencySnapshot {
        summarize(&self.buckets, self.sum_us, self.min_us, self.max_us)
    }
}

impl Default for LatencyHistogram {
    /// Same as [`LatencyHistogram::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

/// Builds a snapshot from raw counter values.
fn summarize(buckets: &[u64; BUCKETS], sum: u64, min: u64, max: u64) -> LatencySnapshot {
    let count: u64 = buckets.iter().sum();
    if count == 0 {
        return LatencySnapshot::default();
    }
    // Only a racing `record` (one of min/max updated, not yet the other) can
    // leave min > max; fall back to the extreme that is known.
    let (min, max) = if min <= max {
        (min, max)
    } else if min == u64::MAX {
        (max, max)
    } else {
        (min, min)
    };
    // Nearest rank over the bucket totals, reported as the holding bucket's
    // upper bound clamped to [min, max].
    let percentile = |permille: u128| -> u64 {
        let rank = (u128::from(count) * permille).div_ceil(1000).max(1);
        let mut seen: u128 = 0;
        for (i, &n) in buckets.iter().enumerate() {
            seen += u128::from(n);
            if seen >= rank {
                return bucket_upper(i).clamp(min, max);
            }
        }
        max
    };
    LatencySnapshot {
        count,
        min_us: min,
        max_us: max,
        avg_us: sum as f64 / count as f64,
        p50_us: percentile(500),
        p95_us: percentile(950),
        p99_us: percentile(990),
    }
}

/// Summary of a [`LatencyHistogram`] at one point in time (or over one
/// reporting interval, from [`LatencyHistogram::take`]). All values are in
/// microseconds; an empty histogram gives all zeros ([`Default`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatencySnapshot {
    /// Number of samples.
    pub count: u64,
    /// Exact smallest sample (0 when empty).
    pub min_us: u64,
    /// Exact largest sample (0 when empty).
    pub max_us: u64,
    /// Exact arithmetic mean (sum / count; 0.0 when empty).
    pub avg_us: f64,
    /// Median: upper bound of the bucket holding the sample of rank
    /// `ceil(0.50 * count)`, clamped to `[min_us, max_us]`; within the error
    /// bound documented on the [module](self).
    pub p50_us: u64,
    /// 95th percentile (rank `ceil(0.95 * count)`), same method as `p50_us`.
    pub p95_us: u64,
    /// 99th percentile (rank `ceil(0.99 * count)`), same method as `p50_us`.
    pub p99_us: u64,
}

impl LatencySnapshot {
    /// `true` when no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// Smallest value (inclusive) in bucket `i`.
    fn bucket_lower(i: usize) -> u64 {
        if i == 0 {
            0
        } else {
            bucket_upper(i - 1) + 1
        }
    }

    #[test]
    fn layout_constants() {
        assert_eq!(FINITE_BUCKETS, 100);
        assert_eq!(BUCKETS, 101);
        assert_eq!(
            bucket_upper(FINITE_BUCKETS - 1),
            LatencyHistogram::MAX_TRACKED_US
        );
        assert_eq!(
            bucket_index(LatencyHistogram::MAX_TRACKED_US),
            FINITE_BUCKETS - 1
        );
        assert_eq!(bucket_index(LatencyHistogram::MAX_TRACKED_US + 1), OVERFLOW);
        assert_eq!(bucket_index(u64::MAX), OVERFLOW);
    }

    #[test]
    fn record_many_matches_recording_one_by_one() {
        let (one, many) = (LatencyHistogram::new(), LatencyHistogram::new());
        let samples: Vec<u64> = (0..5000u64).map(|i| (i * 7919) % 100_000).collect();
        for &us in &samples {
            one.record_micros(us);
        }
        many.record_many_micros(samples.iter().copied());
        many.record_many_micros(std::iter::empty());
        assert_eq!(one.snapshot(), many.snapshot());
    }

    #[test]
    fn record_many_touches_every_bucket_like_one_by_one() {
        let (one, many) = (LatencyHistogram::new(), LatencyHistogram::new());
        // Both bounds of every bucket, the overflow bucket's too, twice over
        // in separate batches; then a batch of one.
        let samples: Vec<u64> = (0..BUCKETS)
            .flat_map(|i| [bucket_lower(i), bucket_upper(i).min(u64::MAX / 1024)])
            .collect();
        for _ in 0..2 {
            for &us in &samples {
                one.record_micros(us);
            }
            many.record_many_micros(samples.iter().copied());
        }
        one.record_micros(12);
        many.record_many_micros([12]);
        assert_eq!(one.counts(), many.counts());
        assert!(many.counts().buckets().all(|(_, n)| n >= 2));
        assert_eq!(one.snapshot(), many.snapshot());
    }

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for i in 0..FINITE_BUCKETS {
            let (lo, hi) = (bucket_lower(i), bucket_upper(i));
            assert!(lo <= hi, "bucket {i}: {lo} > {hi}");
            assert_eq!(bucket_index(lo), i, "lower bound of bucket {i}");
            assert_eq!(bucket_index(hi), i, "upper bound of bucket {i}");
            assert_eq!(bucket_index(hi + 1), i + 1, "value after bucket {i}");
        }
    }

    /// The documented bound: exact below 8, otherwise the reported upper
    /// bound `u` satisfies `v <= u`, `4 (u - v) < v` and `5 (u - v) < u`.
    fn check_bound(v: u64) {
        let u = bucket_upper(bucket_index(v));
        assert!(u >= v, "{v} reported as {u}");
        if v < 8 {
            assert_eq!(u, v);
        } else {
            assert!(4 * (u - v) < v, "{v} -> {u}: >= 25% of true value");
            assert!(5 * (u - v) < u, "{v} -> {u}: >= 20% of reported value");
        }
    }

    #[test]
    fn error_bound_holds() {
        for v in 0..(1u64 << 20) {
            check_bound(v);
        }
        let mut v = 1u64 << 20;
        while v <= LatencyHistogram::MAX_TRACKED_US {
            check_bound(v);
            check_bound(v - 1);
            v += 997;
        }
    }

    #[test]
    fn empty() {
        let h = LatencyHistogram::new();
        let s = h.snapshot();
        assert!(s.is_empty());
        assert_eq!(s, LatencySnapshot::default());
        assert_eq!(h.take(), LatencySnapshot::default());
        assert!(LatencyHistogram::default().snapshot().is_empty());
    }

    #[test]
    fn single_sample_is_exact() {
        for v in [
            0,
            1,
            7,
            8,
            9,
            12_345,
            999_999,
            LatencyHistogram::MAX_TRACKED_US,
            u64::MAX / 2,
        ] {
            let h = LatencyHistogram::new();
            h.record_micros(v);
            let s = h.snapshot();
            assert!(!s.is_empty());
            let want = LatencySnapshot {
                count: 1,
                min_us: v,
                max_us: v,
                avg_us: v as f64,
                p50_us: v,
                p95_us: v,
                p99_us: v,
            };
            assert_eq!(s, want);
        }
    }

    #[test]
    fn uniform_1_to_1000() {
        let h = LatencyHistogram::new();
        for v in 1..=1000 {
            h.record_micros(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_us, 1);
        assert_eq!(s.max_us, 1000);
        assert_eq!(s.avg_us, 500.5);
        // True nearest-rank values are 500, 950, 990; each reported value is
        // >= the true one and < 1.25x it.
        for (p, truth) in [(s.p50_us, 500u64), (s.p95_us, 950), (s.p99_us, 990)] {
            assert!(p >= truth && 4 * (p - truth) < truth, "{p} vs {truth}");
        }
        // Concretely: 500 is in [448, 511]; 950 and 990 in [896, 1023],
        // clamped to the max.
        assert_eq!(s.p50_us, 511);
        assert_eq!(s.p95_us, 1000);
        assert_eq!(s.p99_us, 1000);
    }

    #[test]
    fn skewed_distribution() {
        // 990 fast samples at 100 µs, 10 slow ones at 50 ms.
        let h = LatencyHistogram::new();
        for _ in 0..990 {
            h.record_micros(100);
        }
        for _ in 0..10 {
            h.record_micros(50_000);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        assert_eq!((s.min_us, s.max_us), (100, 50_000));
        assert_eq!(s.avg_us, (990.0 * 100.0 + 10.0 * 50_000.0) / 1000.0);
        // 100 is in [96, 111]; rank 990 is still a fast sample.
        assert_eq!(s.p50_us, 111);
        assert_eq!(s.p95_us, 111);
        assert_eq!(s.p99_us, 111);
        h.record_micros(50_000);
        // Now rank ceil(0.99 * 1001) = 991 is a slow sample: clamped to max.
        assert_eq!(h.snapshot().p99_us, 50_000);
    }

    #[test]
    fn durations_are_truncated_to_micros() {
        let h = LatencyHistogram::new();
        h.record(Duration::from_nanos(999));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_nanos(2_500));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.min_us, 0);
        assert_eq!(s.max_us, 3_000);
        assert_eq!(s.avg_us, 3_002.0 / 3.0);
        h.record(Duration::MAX);
        assert_eq!(h.snapshot().max_us, u64::MAX);
    }

    #[test]
    fn overflow_bucket_reports_exact_max() {
        let h = LatencyHistogram::new();
        h.record_micros(1);
        h.record(Duration::from_secs(100));
        h.record(Duration::from_secs(200));
        let s = h.snapshot();
        assert_eq!(s.min_us, 1);
        assert_eq!(s.max_us, 200_000_000);
        assert_eq!(s.p50_us, 200_000_000);
        assert_eq!(s.p99_us, 200_000_000);
    }

    #[test]
    fn take_resets() {
        let h = LatencyHistogram::new();
        for v in [10, 20, 30] {
            h.record_micros(v);
        }
        let first = h.take();
        assert_eq!(first.count, 3);
        assert_eq!((first.min_us, first.max_us), (10, 30));
        assert_eq!(first.avg_us, 20.0);
        assert!(h.snapshot().is_empty());
        assert!(h.take().is_empty());

        // min/max restart from scratch in the next interval.
        h.record_micros(50);
        let second = h.take();
        assert_eq!(second.count, 1);
        assert_eq!((second.min_us, second.max_us, second.p50_us), (50, 50, 50));
        assert_eq!(second.avg_us, 50.0);
    }

    #[test]
    fn snapshot_does_not_reset() {
        let h = LatencyHistogram::new();
        h.record_micros(5);
        assert_eq!(h.snapshot(), h.snapshot());
        assert_eq!(h.take().count, 1);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 100_000;
        let h = Arc::new(LatencyHistogram::new());
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        h.record_micros((t * PER_THREAD + i) % 10_000 + 1);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let s = h.snapshot();
        assert_eq!(s.count, THREADS * PER_THREAD);
        assert_eq!((s.min_us, s.max_us), (1, 10_000));
        // Values cycle through 1..=10_000 exactly 40 times.
        assert_eq!(s.avg_us, 5_000.5);
        let in_buckets: u64 = h.buckets.iter().map(|b| b.load(Relaxed)).sum();
        assert_eq!(in_buckets, THREADS * PER_THREAD);
    }

    #[test]
    fn take_racing_records_loses_and_duplicates_nothing() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 100_000;
        let h = Arc::new(LatencyHistogram::new());
        let done = Arc::new(AtomicBool::new(false));
        let taker = {
            let (h, done) = (Arc::clone(&h), Arc::clone(&done));
            std::thread::spawn(move || {
                let (mut count, mut takes) = (0u64, 0u64);
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    count += h.take().count;
                    takes += 1;
                }
                (count, takes)
            })
        };
        let recorders: Vec<_> = (0..THREADS)
            .map(|t| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        h.record_micros(t + i % 2_000);
                    }
                })
            })
            .collect();
        for r in recorders {
            r.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        let (taken, takes) = taker.join().unwrap();
        assert!(takes > 0);
        assert_eq!(taken + h.take().count, THREADS * PER_THREAD);
        assert!(h.snapshot().is_empty());
    }

    #[test]
    fn counts_add_up_across_takes() {
        let h = LatencyHistogram::new();
        let mut total = HistogramCounts::default();
        assert_eq!(total.summary(), LatencySnapshot::default());
        for v in [3, 9, 40] {
            h.record_micros(v);
        }
        total.add(&h.take_counts());
        h.record_micros(1_000);
        h.record_micros(u64::MAX / 4);
        let live = h.counts();
        assert_eq!(live.samples(), 2);
        total.add(&live);
        assert_eq!(total.samples(), 5);
        assert_eq!(total.sum_us(), 3 + 9 + 40 + 1_000 + u64::MAX / 4);
        let s = total.summary();
        assert_eq!((s.count, s.min_us, s.max_us), (5, 3, u64::MAX / 4));
        // Every sample is in the bucket whose bound holds it.
        let buckets: Vec<(u64, u64)> = total.buckets().filter(|(_, n)| *n > 0).collect();
        assert_eq!(
            buckets,
            vec![(3, 1), (9, 1), (47, 1), (1_023, 1), (u64::MAX, 1)]
        );
        assert_eq!(total.buckets().count(), BUCKETS);
        // Taking left the live histogram with the later samples only.
        assert_eq!(h.snapshot().count, 2);
    }

    #[test]
    fn debug_shows_snapshot() {
        let h = LatencyHistogram::new();
        h.record_micros(3);
        let text = format!("{h:?}");
        assert!(text.starts_with("LatencyHistogram"), "{text}");
        assert!(text.contains("count: 1"), "{text}");
    }
}
