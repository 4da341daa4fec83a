//! The same subscriber in Rust, Python and JavaScript, side by side in one
//! run: messages/s from publish to handled, and resident memory per instance.
//!
//! `cargo bench -p exesdb-host --bench languages`. The subscriber is the
//! threshold alerter (`threshold-alerter-rs`, `threshold-alerter`,
//! `threshold-alerter-js`), which parses every `ThroughputMetric`; the
//! threshold is set so that nothing alerts. Baseline: a native Rust
//! subscriber decoding the same messages. `BENCH_MESSAGES` (default 50,000).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::config::RuntimeConfig;
use exesdb_host::messages::metrics::ThroughputMetric;
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Actor, Manifest, Plugins, Runtime};

const PLUGINS: [&str; 3] = [
    "threshold-alerter-rs",
    "threshold-alerter",
    "threshold-alerter-js",
];

fn messages() -> usize {
    std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

fn artifact(name: &str) -> (Vec<u8>, String) {
    let (_, wasm, manifest) = exesdb_tests::guests::all()
        .find(|(n, _, _)| *n == name)
        .unwrap();
    (
        std::fs::read(wasm).unwrap(),
        std::fs::read_to_string(manifest).unwrap(),
    )
}

fn manifest(base: &str, name: &str) -> Manifest {
    let mut t: toml::Table = base.parse().unwrap();
    t.insert("name".into(), name.into());
    t["config"]
        .as_table_mut()
        .unwrap()
        .insert("threshold".into(), 1e12.into());
    Manifest::parse(&toml::to_string(&t).unwrap(), name).unwrap()
}

fn envelopes(n: usize) -> Vec<Arc<Envelope>> {
    (0..n)
        .map(|i| {
            let m = ThroughputMetric {
                operation: "append".into(),
                count: i as u64,
                duration_ms: 1000,
                rate_per_sec: i as f64,
            };
            Arc::new(Envelope::typed("store_metrics:bench", &m, "bench").unwrap())
        })
        .collect()
}

/// This process's resident memory, from the host's own node figures.
fn rss() -> u64 {
    exesdb_host::health::node::read_figures(std::path::Path::new("/"))
        .unwrap()
        .process_rss_bytes
}

/// This process's proportional and private memory, in bytes: `Pss` and
/// the sum of `Private_Clean` and `Private_Dirty` in
/// `/proc/self/smaps_rollup`. Resident size counts a page shared by several
/// mappings once per mapping, so instances mapping one copy-on-write memory
/// image show the image's touched pages once each in RSS; these two count
/// the pages an instance owns.
fn pss_and_private() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            * 1024
    };
    (
        field("Pss:"),
        field("Private_Clean:") + field("Private_Dirty:"),
    )
}

fn main() {
    let n = messages();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rc = RuntimeConfig {
            cache_dir: std::env::temp_dir()
                .join("exesdb-bench-cache")
                .display()
                .to_string(),
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::with_config(&rc).unwrap();
        // Memory is measured on demand-allocated instances: pooled slots are
        // reserved up front and reused, so RSS growth would not show them.
        let on_demand = Runtime::with_config(&RuntimeConfig {
            pooling: false,
            ..rc.clone()
        })
        .unwrap();

        // Baseline: a native subscriber decoding every message.
        let bus = Bus::new(BusConfig {
            inbox_capacity: n + 16,
            ..BusConfig::default()
        });
        let sub = bus.subscriber("native").unwrap();
        sub.subscribe(Channel::Metrics, "store_metrics:>").unwrap();
        let consumer = tokio::spawn(async move {
            let (mut got, mut buf) = (0, Vec::new());
            while got < n {
                buf.clear();
                got += sub.recv_many(&mut buf, 256).await;
                for e in &buf {
                    std::hint::black_box(e.decode::<ThroughputMetric>().unwrap());
                }
            }
        });
        let envs = envelopes(n);
        let start = Instant::now();
        for e in envs {
            bus.broadcast(e).await.unwrap();
        }
        consumer.await.unwrap();
        let native = n as f64 / start.elapsed().as_secs_f64();
        println!(
            "{:<22} {:>9.1} k msgs/s | ratio 1.00 (baseline)",
            "native Rust subscriber",
            native / 1e3
        );

        for name in PLUGINS {
            let (wasm, base) = artifact(name);
            let bus = Bus::new(BusConfig {
                inbox_capacity: n + 16,
                ..BusConfig::default()
            });
            let plugins = Plugins::new(Arc::clone(&runtime), bus.clone(), 256);
            plugins
                .load(Actor::Operator, manifest(&base, name), &wasm)
                .unwrap(); // compiles or loads from the cache
            let envs = envelopes(n);
            let start = Instant::now();
            for e in envs {
                bus.broadcast(e).await.unwrap();
            }
            while plugins.status(name).unwrap().delivered < n as u64 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let rate = n as f64 / start.elapsed().as_secs_f64();
            // Memory: five more instances of the same (already compiled) component.
            let more = Plugins::new(Arc::clone(&on_demand), bus.clone(), 256);
            more.load(
                Actor::Operator,
                manifest(&base, &format!("{name}-warm")),
                &wasm,
            )
            .unwrap(); // compiles or loads from the cache
            let before = rss();
            let (pss_before, private_before) = pss_and_private();
            for i in 0..5 {
                more.load(
                    Actor::Operator,
                    manifest(&base, &format!("{name}-{i}")),
                    &wasm,
                )
                .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let per = rss().saturating_sub(before) / 5;
            let (pss, private) = pss_and_private();
            let pss_per = pss.saturating_sub(pss_before) / 5;
            let private_per = private.saturating_sub(private_before) / 5;
            more.unload_all().await;
            println!(
                "{name:<22} {:>9.1} k msgs/s | ratio {:.3} | per instance: RSS {:>7.0} KiB, PSS {:>7.0} KiB, private {:>7.0} KiB",
                rate / 1e3,
                rate / native,
                per as f64 / 1024.0,
                pss_per as f64 / 1024.0,
                private_per as f64 / 1024.0
            );
            plugins.unload_all().await;
        }
    });
}
