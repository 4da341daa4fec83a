//! Latency under steady load: a paced publisher into one Rust plugin.
//!
//! `cargo bench -p exesdb-host --bench latency` publishes at 10,000,
//! 100,000 and 500,000 messages/s for `BENCH_LATENCY_SECS` seconds each
//! (default 2) into one `test-guest` plugin (`noop`, batches of up to 256)
//! and prints p50 / p99 / p999 of publish → handled: from the envelope's
//! timestamp, set when it is built just before its publish, to the end of
//! the call that handled it — the plugin's own `latency` histogram, the
//! one `GET /metrics` exports. The baseline in the same run is a native
//! subscriber (a tokio task draining a bus inbox the same way) recording
//! into the same kind of histogram. Each rate runs quiet and with one core
//! kept busy by a spinning thread.
//!
//! The publisher is paced in 1 ms ticks: each tick publishes the messages
//! due by then (a burst of rate / 1,000), then sleeps to the next tick, so
//! the figures include a burst's own queueing. Percentiles are bucket
//! upper bounds (the histogram's documented error bound, < 1/16 above
//! 32 µs). The achieved rate is printed: a publisher that cannot keep up
//! is visible.

mod support;
use support::{cpu_model, Busy};

use std::sync::Arc;
use std::time::{Duration, Instant};

use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::messages::Envelope;
use exesdb_host::metrics::histogram::{HistogramCounts, LatencyHistogram};
use exesdb_host::runtime::{Actor, Manifest, Plugins, Runtime};

fn secs() -> f64 {
    std::env::var("BENCH_LATENCY_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0)
}

/// Percentile `per_mille` of `counts`: the upper bound of the bucket of
/// the sample of rank ceil(count × per_mille / 1000), clamped to the
/// largest sample.
fn percentile(counts: &HistogramCounts, per_mille: u64) -> u64 {
    let total = counts.samples();
    let rank = (total * per_mille).div_ceil(1000).max(1);
    let max = counts.summary().max_us;
    let mut seen = 0;
    for (upper, n) in counts.buckets() {
        seen += n;
        if seen >= rank {
            return upper.min(max);
        }
    }
    max
}

/// Publishes at `rate` per second for `secs` seconds, in 1 ms ticks;
/// returns the messages published and the achieved rate.
async fn paced(bus: &Bus, rate: u64, secs: f64) -> (u64, f64) {
    let total = (rate as f64 * secs) as u64;
    let start = Instant::now();
    let tick = Duration::from_millis(1);
    let mut sent = 0u64;
    let mut next = start;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        while sent < due {
            let env = Envelope::new(
                Channel::Events,
                "bench:stream",
                "custom.bench",
                serde_json::json!({"n": sent}),
                "bench",
            );
            bus.broadcast(env).await.unwrap();
            sent += 1;
        }
        next += tick;
        tokio::time::sleep_until(next.into()).await;
    }
    (sent, sent as f64 / start.elapsed().as_secs_f64())
}

fn manifest() -> Manifest {
    let text = "name = \"paced\"\nversion = \"1\"\nworld = \"subscriber\"\n\
         [[subscribe]]\nchannel = \"events\"\npattern = \"bench:>\"\n\
         [limits]\nmax_batch = 256\n[config]\nmode = \"noop\"\n";
    Manifest::parse(text, "paced").unwrap()
}

fn bus() -> Bus {
    Bus::new(BusConfig {
        inbox_capacity: 1 << 20,
        backpressure_timeout: Duration::from_secs(60),
        ..BusConfig::default()
    })
}

/// The plugin's publish → handled histogram at `rate`.
async fn plugin(runtime: &Arc<Runtime>, rate: u64) -> (HistogramCounts, f64) {
    let bus = bus();
    let plugins = Plugins::new(Arc::clone(runtime), bus.clone(), 256);
    let wasm = std::fs::read(exesdb_host::artifacts::TEST_GUEST_WASM).unwrap();
    plugins.load(Actor::Operator, manifest(), &wasm).unwrap();
    let (sent, achieved) = paced(&bus, rate, secs()).await;
    while plugins.status("paced").unwrap().delivered < sent {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let counts = plugins
        .metrics()
        .subscription("paced")
        .unwrap()
        .latency
        .take_counts();
    plugins.unload_all().await;
    (counts, achieved)
}

/// A native subscriber's publish → handled histogram at `rate`.
async fn native(rate: u64) -> (HistogramCounts, f64) {
    let bus = bus();
    let sub = bus.subscriber("native").unwrap();
    sub.subscribe(Channel::Events, "bench:>").unwrap();
    let hist = Arc::new(LatencyHistogram::new());
    let h = Arc::clone(&hist);
    let consumer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(256);
        loop {
            buf.clear();
            if sub.recv_many(&mut buf, 256).await == 0 {
                break;
            }
            let now = chrono::Utc::now().timestamp_micros();
            h.record_many_micros(
                buf.iter()
                    .map(|e| u64::try_from(now - e.timestamp.timestamp_micros()).unwrap_or(0)),
            );
        }
    });
    let (sent, achieved) = paced(&bus, rate, secs()).await;
    while hist.counts().samples() < sent {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    consumer.abort();
    (hist.take_counts(), achieved)
}

fn row(what: &str, rate: u64, counts: &HistogramCounts, achieved: f64, base: &HistogramCounts) {
    let p = |c: &HistogramCounts, m| percentile(c, m);
    println!(
        "| {rate} | {what} | {achieved:.0} | {} | {} | {} | {:.1}× / {:.1}× |",
        p(counts, 500),
        p(counts, 990),
        p(counts, 999),
        p(counts, 990) as f64 / p(base, 990).max(1) as f64,
        p(counts, 999) as f64 / p(base, 999).max(1) as f64,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("# latency bench\n\nCPU: {}", cpu_model());
    let runtime = Runtime::new().unwrap();
    println!(
        "\n| msgs/s asked | subscriber | achieved msgs/s | p50 µs | p99 µs | p999 µs | p99 / p999 vs native |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for busy in [false, true] {
        let _spin = busy.then(Busy::start);
        let tag = if busy { ", core busy" } else { "" };
        for rate in [10_000u64, 100_000, 500_000] {
            let (base, achieved) = native(rate).await;
            row(&format!("native{tag}"), rate, &base, achieved, &base);
            let (counts, achieved) = plugin(&runtime, rate).await;
            row(&format!("plugin{tag}"), rate, &counts, achieved, &base);
        }
    }
}
