//! Event store throughput against the cost floor of durability, in one run.
//!
//! `cargo bench -p exesdb-host --bench store` prints events/s for:
//! - durable appends ([`Durability::Immediate`], one `fdatasync` per commit)
//!   in batches of 1 and of 100 events, each against its baseline: the same
//!   serialized bytes appended to a plain file with `File::write_all` +
//!   `sync_data` per batch, the least any durable append can cost;
//! - durable appends from 4 threads at once (each to its own streams), against
//!   one thread: concurrent appends share a commit and its flush (group
//!   commit);
//! - the same appends with [`Durability::Relaxed`] (no flush), against the
//!   durable figure;
//! - reads: `$all` forward in pages of 1,000; one stream forward through the
//!   stream index; an event-type selector scanning `$all`.
//!
//! - durable appends from 4 threads over 100 streams in all (25 each), the
//!   gateway bench's workload (`gateway.rs`), on a store already holding
//!   `BENCH_STORE_PREFILL` events (default 1,000,000, as the gateway's store
//!   holds after its warm-up and first rounds), against the same appends on
//!   a fresh store;
//!
//! Events carry a ~200-byte JSON payload and go round-robin to 100 streams.
//! Each append figure is the median of 3 rounds alternating with its
//! baseline, each round on a fresh store. Files live under
//! `BENCH_STORE_DIR` (default: cargo's target tmp dir, on disk, not tmpfs).
//! `BENCH_STORE_SCALE` multiplies every event count (default 1.0).
//! `BENCH_STORE_PROFILE=N` only appends N events (relaxed, batches of 100,
//! one thread, 100 streams) to a fresh store and exits: a repeatable
//! workload for `valgrind --tool=callgrind`. `BENCH_STORE_ONLY=gateway`
//! only runs the gateway workload figure (with `BENCH_STORE_BUSY=1`, beside
//! a thread keeping one core busy).

mod support;
use support::median;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use exesdb_host::store::{Direction, Durability, ExpectedVersion, NewEvent, Selector, Store};

const STREAMS: usize = 100;
const ROUNDS: usize = 3;
/// Appending threads in the group-commit figures.
const THREADS: usize = 4;

fn scale() -> f64 {
    std::env::var("BENCH_STORE_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64 * scale()) as usize).max(100)
}

fn bench_dir() -> PathBuf {
    std::env::var_os("BENCH_STORE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

fn event(n: usize) -> NewEvent {
    let event_type = if n.is_multiple_of(10) {
        "OrderCancelled"
    } else {
        "OrderPlaced"
    };
    NewEvent::json(
        event_type,
        serde_json::json!({
            "order_id": format!("order-{n:08}"),
            "customer": "customer-0042",
            "qty": n % 7 + 1,
            "price_cents": 1999,
            "note": "a payload of about two hundred bytes, typical of store events",
        }),
    )
}

/// `events` events in batches of `batch`.
fn batches(events: usize, batch: usize) -> Vec<Vec<NewEvent>> {
    (0..events / batch)
        .map(|b| (0..batch).map(|i| event(b * batch + i)).collect())
        .collect()
}

/// Appends `events` events in batches of `batch` to a fresh store in `dir`;
/// returns events/s. The store is left in `dir` for the read benchmarks.
fn append_store(dir: &Path, durability: Durability, events: usize, batch: usize) -> f64 {
    let store = Store::open(dir, "bench", durability).unwrap();
    let work = batches(events, batch);
    let n = work.len() * batch;
    let start = Instant::now();
    for (i, b) in work.into_iter().enumerate() {
        let stream = format!("orders-{}", i % STREAMS);
        store.append(&stream, ExpectedVersion::Any, b).unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// As [`append_store`], from `threads` threads at once (each its own
/// streams): concurrent appends share commits (group commit).
fn append_store_threads(
    dir: &Path,
    durability: Durability,
    events: usize,
    batch: usize,
    threads: usize,
) -> f64 {
    let store = Store::open(dir, "bench", durability).unwrap();
    append_threads(&store, events, batch, threads, STREAMS, "orders")
}

/// `events` events in batches of `batch` from `threads` threads at once,
/// each to its own `streams` streams named `{prefix}-{thread}-{n}`; events/s.
fn append_threads(
    store: &Store,
    events: usize,
    batch: usize,
    threads: usize,
    streams: usize,
    prefix: &str,
) -> f64 {
    let work: Vec<_> = (0..threads)
        .map(|_| batches(events / threads, batch))
        .collect();
    let n: usize = work.iter().map(|w| w.len() * batch).sum();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (t, w) in work.into_iter().enumerate() {
            let store = store.clone();
            s.spawn(move || {
                for (i, b) in w.into_iter().enumerate() {
                    let stream = format!("{prefix}-{t}-{}", i % streams);
                    store.append(&stream, ExpectedVersion::Any, b).unwrap();
                }
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

/// The durability floor: the same events, serialized, appended to a plain
/// file with one `write_all` + `sync_data` per batch; returns events/s.
fn append_file(dir: &Path, events: usize, batch: usize) -> f64 {
    let work: Vec<Vec<u8>> = batches(events, batch)
        .iter()
        .map(|b| {
            b.iter()
                .flat_map(|e| serde_json::to_vec(e).unwrap())
                .collect()
        })
        .collect();
    let n = work.len() * batch;
    let mut file = File::create(dir.join("baseline.log")).unwrap();
    let start = Instant::now();
    for bytes in &work {
        file.write_all(bytes).unwrap();
        file.sync_data().unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Median events/s of the store and of the file baseline, alternating.
fn paired(durability: Durability, events: usize, batch: usize) -> (f64, f64) {
    let (mut store, mut file) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        store.push(append_store(dir.path(), durability, events, batch));
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        file.push(append_file(dir.path(), events, batch));
    }
    (median(store), median(file))
}

fn report(name: &str, value: f64, baseline_name: &str, baseline: f64) {
    println!(
        "{name:<34} {:>9.1} k events/s | {baseline_name:<26} {:>9.1} k events/s | ratio {:.2}",
        value / 1e3,
        baseline / 1e3,
        value / baseline
    );
}

/// Reads with `read` until it returns no event; returns events/s.
fn read_rate(mut read: impl FnMut(u64) -> (usize, u64)) -> (f64, usize) {
    let start = Instant::now();
    let (mut total, mut from) = (0, 0);
    loop {
        let (n, next) = read(from);
        if n == 0 {
            break;
        }
        total += n;
        from = next;
    }
    (total as f64 / start.elapsed().as_secs_f64(), total)
}

/// The gateway bench's workload: `THREADS` threads over `STREAMS` streams
/// in all, batches of 100, durable, on a store first filled with `prefill`
/// events (relaxed, not timed); events/s.
fn append_gateway_workload(dir: &Path, prefill: usize, events: usize) -> f64 {
    if prefill > 0 {
        let store = Store::open(dir, "bench", Durability::Relaxed).unwrap();
        append_threads(&store, prefill, 100, THREADS, STREAMS / THREADS, "prefill");
    }
    let store = Store::open(dir, "bench", Durability::Immediate).unwrap();
    append_threads(&store, events, 100, THREADS, STREAMS / THREADS, "gw")
}

/// Reports the gateway workload on a prefilled store against a fresh one.
fn gateway_figure(prefill: usize, events: usize) {
    let (mut full, mut fresh) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        full.push(append_gateway_workload(dir.path(), prefill, events));
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        fresh.push(append_gateway_workload(dir.path(), 0, events));
    }
    report(
        &format!("gateway workload, {} k prefilled", prefill / 1000),
        median(full),
        "gateway workload, fresh store",
        median(fresh),
    );
}

fn main() {
    std::fs::create_dir_all(bench_dir()).unwrap();
    if let Some(n) = std::env::var("BENCH_STORE_PROFILE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let rate = append_store(dir.path(), Durability::Relaxed, n, 100);
        println!(
            "profile: {n} events, relaxed, batch 100: {:.1} k events/s",
            rate / 1e3
        );
        return;
    }
    let prefill: usize = std::env::var("BENCH_STORE_PREFILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let single = scaled(3_000);
    let batched = scaled(300_000);
    let relaxed_single = scaled(30_000);

    // Warm-up (page cache, allocator).
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    append_store(dir.path(), Durability::Immediate, 1_000, 100);
    drop(dir);

    if std::env::var("BENCH_STORE_ONLY").is_ok_and(|v| v == "gateway") {
        let _spin = std::env::var_os("BENCH_STORE_BUSY").map(|_| support::Busy::start());
        gateway_figure(prefill, batched);
        return;
    }
    let (d1, f1) = paired(Durability::Immediate, single, 1);
    report("append durable, batch 1", d1, "file + fdatasync", f1);
    let (d100, f100) = paired(Durability::Immediate, batched, 100);
    report("append durable, batch 100", d100, "file + fdatasync", f100);
    let threaded = |events: usize, batch: usize| {
        let runs = (0..ROUNDS)
            .map(|_| {
                let dir = tempfile::tempdir_in(bench_dir()).unwrap();
                append_store_threads(dir.path(), Durability::Immediate, events, batch, THREADS)
            })
            .collect();
        median(runs)
    };
    let t1 = threaded(single * THREADS, 1);
    report(
        &format!("append durable, batch 1, {THREADS} thr"),
        t1,
        "durable, batch 1, 1 thr",
        d1,
    );
    let t100 = threaded(batched, 100);
    report(
        &format!("append durable, batch 100, {THREADS} thr"),
        t100,
        "durable, batch 100, 1 thr",
        d100,
    );
    gateway_figure(prefill, batched);
    let (r1, _) = paired(Durability::Relaxed, relaxed_single, 1);
    report("append relaxed, batch 1", r1, "durable, batch 1", d1);
    let (r100, _) = paired(Durability::Relaxed, batched, 100);
    report(
        "append relaxed, batch 100",
        r100,
        "durable, batch 100",
        d100,
    );

    // Reads, on a store of `batched` events.
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    append_store(dir.path(), Durability::Relaxed, batched, 100);
    let store = Store::open(dir.path(), "bench", Durability::Relaxed).unwrap();
    let (all, n_all) = read_rate(|from| {
        let page = store.read_all(from, 1_000, Direction::Forward).unwrap();
        let next = page.last().map_or(from, |e| e.global_position + 1);
        (page.len(), next)
    });
    let (one, n_one) = read_rate(|from| {
        let page = store
            .read_stream("orders-7", from, 1_000, Direction::Forward)
            .unwrap();
        let next = page.last().map_or(from, |e| e.event_number + 1);
        (page.len(), next)
    });
    let selector: Selector = "$et-OrderCancelled".parse().unwrap();
    let (et, n_et) = read_rate(|from| {
        let batch = store.read_batch(&selector, from, 1_000).unwrap();
        (batch.events.len(), batch.next_position)
    });
    println!(
        "read $all forward                  {:>9.1} k events/s ({n_all} events, pages of 1,000)",
        all / 1e3
    );
    println!(
        "read one stream forward            {:>9.1} k events/s ({n_one} events, via the stream index)",
        one / 1e3
    );
    println!(
        "read $et-OrderCancelled            {:>9.1} k events/s selected ({n_et} of {n_all}, scanning $all)",
        et / 1e3
    );
    println!(
        "(append: medians of {ROUNDS} alternating rounds; {single} events at batch 1 durable, \
         {relaxed_single} relaxed, {batched} at batch 100; ~200-byte JSON payloads, {STREAMS} streams)"
    );
}
