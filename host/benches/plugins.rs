//! Plugin throughput and instantiation, against a native subscriber measured
//! in the same run.
//!
//! `cargo bench -p exesdb-host --bench plugins` prints, for the real
//! `test-guest` component in `noop` mode: messages/s from publish to handled,
//! one per call (`max_batch = 1`) and in batches of 64 and 256, each with the
//! ratio to a native Rust subscriber draining the same messages; and the time
//! to instantiate + `init` a compiled component with the default runtime
//! (pooling allocator) against on-demand allocation. `BENCH_MESSAGES` sets
//! the message count (default 200,000).

mod support;
use support::median;

use std::sync::Arc;
use std::time::{Duration, Instant};

use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::config::RuntimeConfig;
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Actor, Manifest, Plugins, Runtime};

fn messages() -> usize {
    std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

fn bus(n: usize) -> Bus {
    Bus::new(BusConfig {
        inbox_capacity: n + 16,
        ..BusConfig::default()
    })
}

fn manifest(name: &str, max_batch: usize) -> Manifest {
    let text = format!(
        "name = \"{name}\"\nversion = \"1\"\nworld = \"subscriber\"\n\
         [[subscribe]]\nchannel = \"events\"\npattern = \"bench:>\"\n\
         [limits]\nmax_batch = {max_batch}\n[config]\nmode = \"noop\"\n"
    );
    Manifest::parse(&text, name).unwrap()
}

fn wasm() -> Vec<u8> {
    std::fs::read(exesdb_host::artifacts::TEST_GUEST_WASM).unwrap()
}

/// `n` distinct messages, built before timing (each plugin delivery renders
/// its message's JSON; reusing one envelope would hide that cost).
fn envelopes(n: usize) -> Vec<Arc<Envelope>> {
    (0..n)
        .map(|i| {
            Arc::new(Envelope::new(
                Channel::Events,
                "bench:stream",
                "custom.bench",
                serde_json::json!({"n": i, "data": "a 208-byte-ish payload is typical of store events"}),
                "bench",
            ))
        })
        .collect()
}

async fn plugin_rate(runtime: &Arc<Runtime>, n: usize, max_batch: usize) -> f64 {
    let bus = bus(n);
    let plugins = Plugins::new(Arc::clone(runtime), bus.clone(), max_batch);
    let name = format!("noop-{max_batch}");
    plugins
        .load(Actor::Operator, manifest(&name, max_batch), &wasm())
        .unwrap();
    let envs = envelopes(n);
    let start = Instant::now();
    for env in envs {
        bus.broadcast(env).await.unwrap();
    }
    while plugins.status(&name).unwrap().delivered < n as u64 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    plugins.unload(Actor::Operator, &name).await.unwrap();
    rate
}

async fn native_rate(n: usize) -> f64 {
    let bus = bus(n);
    let sub = bus.subscriber("native").unwrap();
    sub.subscribe(Channel::Events, "bench:>").unwrap();
    let consumer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(256);
        let mut got = 0;
        while got < n {
            buf.clear();
            got += sub.recv_many(&mut buf, 256).await;
        }
    });
    let envs = envelopes(n);
    let start = Instant::now();
    for env in envs {
        bus.broadcast(env).await.unwrap();
    }
    consumer.await.unwrap();
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let n = messages();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runtime = Runtime::new().unwrap();
        plugin_rate(&runtime, n / 10, 64).await; // warm-up
                                                 // Alternating rounds, medians: the machine is noisy.
        let rounds = 3;
        let batches = [1, 64, 256];
        let mut native = Vec::new();
        let mut plugin: Vec<Vec<f64>> = vec![Vec::new(); batches.len()];
        for _ in 0..rounds {
            native.push(native_rate(n).await);
            for (i, batch) in batches.iter().enumerate() {
                plugin[i].push(plugin_rate(&runtime, n, *batch).await);
            }
        }
        let native = median(native);
        println!(
            "native subscriber (baseline)        {:>8.3} M msgs/s",
            native / 1e6
        );
        for (batch, rates) in batches.iter().zip(plugin) {
            let r = median(rates);
            println!(
                "no-op Rust plugin, max_batch {batch:<4}  {:>8.3} M msgs/s | ratio to native {:.3}",
                r / 1e6,
                r / native
            );
        }
        println!("(medians of {rounds} alternating rounds, {n} messages each)");
        let bus = bus(16);
        let on_demand = Runtime::with_config(&RuntimeConfig {
            pooling: false,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let time = |rt: &Runtime| {
            exesdb_host::runtime::bench_support::instantiate_time(
                rt,
                &bus,
                manifest("inst", 64),
                &wasm(),
                500,
            )
            .unwrap()
            .as_secs_f64()
                * 1e6
        };
        // Alternating rounds, medians.
        let (mut pooled, mut demand) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            pooled.push(time(&runtime));
            demand.push(time(&on_demand));
        }
        let (p, d) = (median(pooled), median(demand));
        println!(
            "instantiate + init (compiled, pre-linked): default (pooling) {p:>6.1} µs | on-demand {d:>6.1} µs | ratio {:.2}",
            p / d
        );
    });
}
