//! Bus throughput against plain tokio channels, measured in the same run.
//!
//! `cargo bench -p exesdb-host --bench bus` prints deliveries/s for each
//! workload and the ratio bus / baseline. Workloads:
//! - 1 → 1: one publisher, one exact subscriber (baseline: bounded `mpsc`).
//! - 1 → 100: one publisher, 100 subscribers (baseline: `broadcast` with 100 receivers).
//! - 1 → 1 with 10,000 non-matching pattern subscriptions present (baseline: `mpsc`).
//! - Metrics cost, 1 → 1 against metrics off: the bus's publish counter (the
//!   bus's only hot-path metrics work); and additionally a per-message latency
//!   histogram record in a consumer that does nothing else (plugin workers
//!   record one per delivered message).
//!
//! - 1 → 1 and 1 → 100 again with one core kept busy by a spinning thread
//!   (a host shares its cores with plugin workers).
//!
//! The CPU model is printed first: the ratios differ between processors.
//! Messages are pre-built `Arc<Envelope>`s, so the figures measure routing,
//! validation and inbox hand-off, not JSON building. Set `BENCH_MESSAGES`
//! to change the message count (default 2,000,000).

mod support;
use support::{cpu_model, median, Busy};

use std::sync::Arc;
use std::time::{Duration, Instant};

use exesdb_host::bus::{Bus, BusConfig, Channel, OverflowPolicy, SubscriberOptions};
use exesdb_host::messages::Envelope;
use exesdb_host::metrics::histogram::LatencyHistogram;

const CAPACITY: usize = 65_536;

fn messages() -> usize {
    std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000)
}

fn envelope(topic: &str) -> Arc<Envelope> {
    Arc::new(Envelope::new(
        Channel::Events,
        topic,
        "custom.bench",
        serde_json::json!({"n": 1, "data": "a 208-byte-ish payload is typical of store events"}),
        "bench",
    ))
}

fn bus(metrics: bool) -> Bus {
    Bus::new(BusConfig {
        inbox_capacity: CAPACITY,
        backpressure_timeout: Duration::from_secs(60),
        count_published: metrics,
        ..BusConfig::default()
    })
}

/// Publishes `n` messages to `subs` subscribers; returns deliveries/s.
async fn run_bus(n: usize, subs: usize, patterns: usize) -> f64 {
    run_bus_metrics(n, subs, patterns, false, false).await
}

/// `counter`: the bus's publish counter (its only hot-path metrics cost);
/// `latency`: the consumer also records publish → received latency per
/// message in a histogram, as plugin workers do.
async fn run_bus_metrics(
    n: usize,
    subs: usize,
    patterns: usize,
    counter: bool,
    latency: bool,
) -> f64 {
    let bus = bus(counter);
    let metrics = latency;
    let env = envelope("bench_store:stream");
    let mut keep = Vec::new();
    for i in 0..patterns {
        let s = bus.subscriber(&format!("pattern-{i}")).unwrap();
        s.subscribe(Channel::Events, &format!("other_store_{i}:*"))
            .unwrap();
        keep.push(s);
    }
    let mut consumers = Vec::new();
    for i in 0..subs {
        let s = bus
            .subscriber_with(
                &format!("consumer-{i}"),
                SubscriberOptions {
                    capacity: None,
                    policy: Some(OverflowPolicy::Backpressure),
                },
            )
            .unwrap();
        s.subscribe(Channel::Events, "bench_store:stream").unwrap();
        consumers.push(tokio::spawn(async move {
            let histogram = LatencyHistogram::new();
            let mut buf = Vec::with_capacity(1024);
            let mut got = 0;
            while got < n {
                buf.clear();
                got += s.recv_many(&mut buf, 1024).await;
                if metrics {
                    let now = chrono::Utc::now();
                    histogram.record_many_micros(buf.iter().map(|env| {
                        u64::try_from((now - env.timestamp).num_microseconds().unwrap_or(0))
                            .unwrap_or(0)
                    }));
                }
            }
            histogram.snapshot().count
        }));
    }
    let start = Instant::now();
    for _ in 0..n {
        bus.broadcast(Arc::clone(&env)).await.unwrap();
    }
    for c in consumers {
        c.await.unwrap();
    }
    (n * subs) as f64 / start.elapsed().as_secs_f64()
}

async fn run_mpsc(n: usize) -> f64 {
    let env = envelope("bench_store:stream");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Envelope>>(CAPACITY);
    let consumer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(1024);
        let mut got = 0;
        while got < n {
            buf.clear();
            got += rx.recv_many(&mut buf, 1024).await;
        }
    });
    let start = Instant::now();
    for _ in 0..n {
        tx.send(Arc::clone(&env)).await.unwrap();
    }
    consumer.await.unwrap();
    n as f64 / start.elapsed().as_secs_f64()
}

async fn run_broadcast(n: usize, subs: usize) -> f64 {
    let env = envelope("bench_store:stream");
    let (tx, _) = tokio::sync::broadcast::channel::<Arc<Envelope>>(CAPACITY);
    let mut consumers = Vec::new();
    for _ in 0..subs {
        let mut rx = tx.subscribe();
        consumers.push(tokio::spawn(async move {
            let mut got = 0;
            while got < n {
                match rx.recv().await {
                    Ok(_) => got += 1,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => got += k as usize,
                    Err(_) => break,
                }
            }
        }));
    }
    let start = Instant::now();
    for _ in 0..n {
        // broadcast never waits: yield now and then so receivers keep up.
        tx.send(Arc::clone(&env)).unwrap();
        if tx.len() > CAPACITY / 2 {
            tokio::task::yield_now().await;
        }
    }
    for c in consumers {
        c.await.unwrap();
    }
    (n * subs) as f64 / start.elapsed().as_secs_f64()
}

fn report(name: &str, bus: f64, baseline: f64, baseline_name: &str) {
    println!(
        "{name:<34} bus {:>7.2} M deliveries/s | {baseline_name:<18} {:>7.2} M/s | ratio {:.2}",
        bus / 1e6,
        baseline / 1e6,
        bus / baseline
    );
}

/// Median of `rounds` alternating runs of `a` and `b` (the machine is noisy).
async fn paired<FA, FB, A, B>(rounds: usize, mut a: FA, mut b: FB) -> (f64, f64)
where
    FA: FnMut() -> A,
    FB: FnMut() -> B,
    A: std::future::Future<Output = f64>,
    B: std::future::Future<Output = f64>,
{
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        xs.push(a().await);
        ys.push(b().await);
    }
    (median(xs), median(ys))
}

fn main() {
    let n = messages();
    let rounds = 5;
    println!("CPU: {}", cpu_model());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Warm-up.
        run_bus(n / 10, 1, 0).await;
        run_mpsc(n / 10).await;

        let (b, m) = paired(rounds, || run_bus(n, 1, 0), || run_mpsc(n)).await;
        report("1 -> 1", b, m, "tokio mpsc");
        let fan = n / 20;
        let (b, m) = paired(rounds, || run_bus(fan, 100, 0), || run_broadcast(fan, 100)).await;
        report("1 -> 100", b, m, "tokio broadcast");
        let (b, m) = paired(rounds, || run_bus(n, 1, 10_000), || run_mpsc(n)).await;
        report("1 -> 1, 10k patterns present", b, m, "tokio mpsc");
        let (off, on) = paired(
            rounds,
            || run_bus_metrics(n, 1, 0, false, false),
            || run_bus_metrics(n, 1, 0, true, false),
        )
        .await;
        report("1 -> 1, bus metrics on", on, off, "metrics off");
        let (off, on) = paired(
            rounds,
            || run_bus_metrics(n, 1, 0, false, false),
            || run_bus_metrics(n, 1, 0, true, true),
        )
        .await;
        report("1 -> 1, + consumer latency hist.", on, off, "metrics off");
        let _spin = Busy::start();
        let (b, m) = paired(rounds, || run_bus(n, 1, 0), || run_mpsc(n)).await;
        report("1 -> 1, one core busy", b, m, "tokio mpsc");
        let (b, m) = paired(rounds, || run_bus(fan, 100, 0), || run_broadcast(fan, 100)).await;
        report("1 -> 100, one core busy", b, m, "tokio broadcast");
    });
    println!("(medians of {rounds} alternating rounds, {n} messages each)");
}
