//! The hand-written latency histogram (`metrics::histogram`) against the
//! `hdrhistogram` crate, measured in the same run (issue #13).
//!
//! `cargo bench -p exesdb-host --bench histogram` prints, for each, the cost
//! of one `record` (ns/op), of a batch of 1,024 samples (spread over 1 µs
//! to 100 ms, then close together as a delivered batch's are; and batches of
//! 1 and 16, per sample), of two threads
//! recording into one shared histogram, and of reading an interval's summary
//! (count, min, max, mean, p50, p95, p99) with and without reset — first on a
//! quiet machine, then with one core kept busy by a spinning thread.
//!
//! How each is used is how the host uses a histogram: shared by the threads
//! that record (plugin workers, appenders) and read once per interval by the
//! collector. `LatencyHistogram` records through `&self` (relaxed atomics);
//! an `hdrhistogram::Histogram` records through `&mut self`, so sharing it
//! needs a lock (`parking_lot::Mutex` here). Its bare `&mut` record (no
//! sharing at all) is measured too, as the lower bound of any hdrhistogram
//! path: a `sync::Recorder` is that plus a phase check, and its
//! `SyncHistogram::refresh` blocks until every recorder has recorded again
//! (or a timeout), which a reporter that must never wait cannot use.
//!
//! The hdrhistogram is set up like ours: 1 µs to `MAX_TRACKED_US` (67 s),
//! values above saturating, 1 significant digit (its smallest, fastest
//! layout; still finer than our quarter-of-a-power-of-two buckets). Samples
//! are pre-drawn log-uniform latencies from 1 µs to 100 ms, so drawing them
//! is outside the timed loops. `BENCH_OPS` sets the records per round
//! (default 20,000,000).

mod support;
use support::{median, Busy};

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use exesdb_host::metrics::histogram::{LatencyHistogram, LatencySnapshot};
use hdrhistogram::Histogram;
use parking_lot::Mutex;

const ROUNDS: usize = 5;
const BATCH: usize = 1024;
/// Summaries read per round (each of a histogram holding `FILL` samples).
const READS: usize = 20_000;
const FILL: usize = 100_000;

fn ops() -> usize {
    std::env::var("BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000)
}

/// 4,096 log-uniform samples in `lo ..= lo * 10^decades` µs (xorshift,
/// fixed seed).
fn samples(lo: f64, decades: f64) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            (lo * 10f64.powf(unit * decades)) as u64
        })
        .collect()
}

fn hdr() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LatencyHistogram::MAX_TRACKED_US, 1).expect("valid bounds")
}

/// What the collector reads per interval, from an hdrhistogram.
fn hdr_summary(h: &Histogram<u64>) -> LatencySnapshot {
    LatencySnapshot {
        count: h.len(),
        min_us: h.min(),
        max_us: h.max(),
        avg_us: h.mean(),
        p50_us: h.value_at_quantile(0.50),
        p95_us: h.value_at_quantile(0.95),
        p99_us: h.value_at_quantile(0.99),
    }
}

/// ns per call of `f(i)` for `i` in `0..n`.
fn per_op(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// ns per sample, two threads each recording `n / 2` samples into one
/// shared histogram through `record`.
fn two_threads(n: usize, s: &Arc<Vec<u64>>, record: impl Fn(u64) + Send + Sync + 'static) -> f64 {
    let record = Arc::new(record);
    let start = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (record, s) = (Arc::clone(&record), Arc::clone(s));
            std::thread::spawn(move || {
                for i in 0..n / 2 {
                    record(s[(i + t * 2048) & 4095]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Medians of `ROUNDS` alternating runs of `ours` and `theirs`.
fn paired(mut ours: impl FnMut() -> f64, mut theirs: impl FnMut() -> f64) -> (f64, f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        a.push(ours());
        b.push(theirs());
    }
    (median(a), median(b))
}

fn report(name: &str, ours: f64, theirs: f64, theirs_name: &str) {
    println!(
        "{name:<34} ours {ours:>8.2} ns | {theirs_name:<17} {theirs:>8.2} ns | hdr/ours {:.2}",
        theirs / ours
    );
}

/// ns per sample of recording batches of `size` samples of `s`: ours with
/// `record_many_micros`, hdrhistogram's under one lock per batch.
fn batches(n: usize, s: &[u64], size: usize) -> (f64, f64) {
    let batches = n / size;
    paired(
        || {
            let h = LatencyHistogram::new();
            let ns = per_op(batches, |b| {
                let at = (b * size) & 4095;
                h.record_many_micros(s[at..at + size].iter().copied())
            });
            black_box(h.snapshot());
            ns / size as f64
        },
        || {
            let h = Mutex::new(hdr());
            let ns = per_op(batches, |b| {
                let at = (b * size) & 4095;
                let mut h = h.lock();
                for &v in &s[at..at + size] {
                    h.saturating_record(v);
                }
            });
            black_box(hdr_summary(&h.lock()));
            ns / size as f64
        },
    )
}

/// One pass over every workload.
fn run(label: &str, n: usize, s: &Arc<Vec<u64>>, narrow: &[u64]) {
    println!("-- {label}");
    let (ours, theirs) = paired(
        || {
            let h = LatencyHistogram::new();
            let ns = per_op(n, |i| h.record_micros(s[i & 4095]));
            black_box(h.snapshot());
            ns
        },
        || {
            let h = Mutex::new(hdr());
            let ns = per_op(n, |i| h.lock().saturating_record(s[i & 4095]));
            black_box(hdr_summary(&h.lock()));
            ns
        },
    );
    report("record, shared", ours, theirs, "hdr in a Mutex");
    let (ours, theirs) = paired(
        || {
            let h = LatencyHistogram::new();
            let ns = per_op(n, |i| h.record_micros(s[i & 4095]));
            black_box(h.snapshot());
            ns
        },
        || {
            let mut h = hdr();
            let ns = per_op(n, |i| h.saturating_record(s[i & 4095]));
            black_box(hdr_summary(&h));
            ns
        },
    );
    report(
        "record, ours shared vs hdr &mut",
        ours,
        theirs,
        "hdr &mut (bare)",
    );
    let (ours, theirs) = batches(n, s, BATCH);
    report("batch of 1,024, 1 µs-100 ms", ours, theirs, "hdr, one lock");
    let (ours, theirs) = batches(n, narrow, BATCH);
    report("batch of 1,024, 100-400 µs", ours, theirs, "hdr, one lock");
    for size in [1, 16] {
        let (ours, theirs) = batches(n / 4, narrow, size);
        let name = format!("batch of {size}, 100-400 µs");
        report(&name, ours, theirs, "hdr, one lock");
    }
    let (ours, theirs) = paired(
        || {
            let h = Arc::new(LatencyHistogram::new());
            let r = Arc::clone(&h);
            let ns = two_threads(n, s, move |v| r.record_micros(v));
            black_box(h.snapshot());
            ns
        },
        || {
            let h = Arc::new(Mutex::new(hdr()));
            let r = Arc::clone(&h);
            let ns = two_threads(n, s, move |v| r.lock().saturating_record(v));
            black_box(hdr_summary(&h.lock()));
            ns
        },
    );
    report(
        "record, 2 threads, one histogram",
        ours,
        theirs,
        "hdr in a Mutex",
    );

    // Reading: a summary of an interval of FILL samples.
    let ours_full = LatencyHistogram::new();
    let mut theirs_full = hdr();
    for i in 0..FILL {
        ours_full.record_micros(s[i & 4095]);
        theirs_full.saturating_record(s[i & 4095]);
    }
    let (ours, theirs) = paired(
        || {
            per_op(READS, |_| {
                black_box(ours_full.snapshot());
            })
        },
        || {
            per_op(READS, |_| {
                black_box(hdr_summary(&theirs_full));
            })
        },
    );
    report("summary (p50/p95/p99, min/max/mean)", ours, theirs, "hdr");
    // Summary and reset, as once per interval: each read of a histogram
    // freshly filled with 1,000 samples (the filling is not timed).
    let (ours, theirs) = paired(
        || {
            let mut total = 0.0;
            for _ in 0..READS / 100 {
                let h = LatencyHistogram::new();
                for i in 0..1000 {
                    h.record_micros(s[i & 4095]);
                }
                total += per_op(1, |_| {
                    black_box(h.take());
                });
            }
            total / (READS / 100) as f64
        },
        || {
            let mut total = 0.0;
            for _ in 0..READS / 100 {
                let mut h = hdr();
                for i in 0..1000 {
                    h.saturating_record(s[i & 4095]);
                }
                total += per_op(1, |_| {
                    black_box(hdr_summary(&h));
                    h.reset();
                });
            }
            total / (READS / 100) as f64
        },
    );
    report("summary + reset (take)", ours, theirs, "hdr + reset()");
}

fn main() {
    let n = ops();
    let s = Arc::new(samples(1.0, 5.0));
    // A delivered batch's latencies lie close together: 100-400 µs.
    let narrow = samples(100.0, 0.6);
    // Warm-up.
    let warm = LatencyHistogram::new();
    let mut warm_hdr = hdr();
    for i in 0..n / 10 {
        warm.record_micros(s[i & 4095]);
        warm_hdr.saturating_record(s[i & 4095]);
    }
    black_box((warm.snapshot(), hdr_summary(&warm_hdr)));

    run("quiet", n, &s, &narrow);
    {
        let _spin = Busy::start();
        run("one core busy", n, &s, &narrow);
    }
    println!(
        "memory per histogram: ours {} bytes, hdr {} bytes of counters ({} buckets)",
        std::mem::size_of::<LatencyHistogram>(),
        hdr().distinct_values() * std::mem::size_of::<u64>(),
        hdr().distinct_values()
    );
    // Accuracy on the same samples: the largest relative over-estimate of
    // p50/p95/p99 against the exact nearest-rank values.
    let mut sorted: Vec<u64> = (0..FILL).map(|i| s[i & 4095]).collect();
    sorted.sort_unstable();
    let exact = |q: f64| sorted[((q * FILL as f64).ceil() as usize).max(1) - 1] as f64;
    let (o, t) = (ours_summary_of(&s), {
        let mut h = hdr();
        for i in 0..FILL {
            h.saturating_record(s[i & 4095]);
        }
        hdr_summary(&h)
    });
    let err = |got: [u64; 3]| {
        [0.50, 0.95, 0.99]
            .iter()
            .zip(got)
            .map(|(&q, g)| (g as f64 - exact(q)).abs() / exact(q))
            .fold(0.0f64, f64::max)
    };
    println!(
        "largest percentile error on these samples: ours {:.1} %, hdr {:.1} %",
        100.0 * err([o.p50_us, o.p95_us, o.p99_us]),
        100.0 * err([t.p50_us, t.p95_us, t.p99_us])
    );
    println!("(medians of {ROUNDS} alternating rounds, {n} records each)");
}

fn ours_summary_of(s: &[u64]) -> LatencySnapshot {
    let h = LatencyHistogram::new();
    for i in 0..FILL {
        h.record_micros(s[i & 4095]);
    }
    h.snapshot()
}
