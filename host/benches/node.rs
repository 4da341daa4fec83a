//! What one read of this machine's and process's figures costs
//! (`health::node`, hand-written `/proc` parsing kept in issue #13).
//!
//! `cargo bench -p exesdb-host --bench node` prints µs per call of each
//! reader the host uses: `read_figures` (load average, memory, this
//! process's RSS, `statvfs` of a directory; each health interval and each
//! `GET /v1/node`), `CpuSampler::sample` (`/proc/self/stat`; each metrics
//! interval), `read_open_handles` (`/proc/self/fd`) and
//! `read_process_rss_bytes` (`/proc/self/statm`). Medians of 5 rounds of
//! `BENCH_READS` calls (default 5,000).

mod support;
use support::median;

use std::hint::black_box;
use std::time::Instant;

use exesdb_host::health::node::{
    read_figures, read_open_handles, read_process_rss_bytes, CpuSampler,
};

const ROUNDS: usize = 5;

fn reads() -> usize {
    std::env::var("BENCH_READS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// Median µs per call of `f` over `ROUNDS` rounds of `n` calls.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        rounds.push(start.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    median(rounds)
}

fn main() {
    let n = reads();
    let dir = std::env::temp_dir();
    let mut cpu = CpuSampler::new();
    // Warm-up (and a check that every reader works here).
    read_figures(&dir).expect("node figures");
    cpu.sample().expect("CPU figures");
    read_open_handles().expect("open handles");
    read_process_rss_bytes().expect("RSS");

    let figures = per_call(n, || {
        black_box(read_figures(&dir).unwrap());
    });
    let sample = per_call(n, || {
        black_box(cpu.sample());
    });
    let handles = per_call(n, || {
        black_box(read_open_handles().unwrap());
    });
    let rss = per_call(n, || {
        black_box(read_process_rss_bytes().unwrap());
    });
    println!("read_figures           {figures:>8.2} µs");
    println!("CpuSampler::sample     {sample:>8.2} µs");
    println!("read_open_handles      {handles:>8.2} µs");
    println!("read_process_rss_bytes {rss:>8.2} µs");
    println!(
        "one health interval's node read + one metrics interval's: {:.2} µs",
        figures + sample + handles + rss
    );
    println!("(medians of {ROUNDS} rounds, {n} calls each)");
}
