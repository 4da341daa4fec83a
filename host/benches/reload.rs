//! Hot reload and instantiation figures, each with a baseline from the same run.
//!
//! `cargo bench -p exesdb-host --bench reload` prints:
//! - rename → first message handled by the new version, through the real
//!   watcher (debounce 50 ms, warm compiled-component cache), median of 7;
//!   baseline: the same swap through `Plugins::reload` directly.
//! - instantiate + `init` with the pooling allocator; baseline: on-demand allocation.
//! - resident memory per idle Rust plugin instance (RSS growth over 50 loads).

mod support;
use support::median;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::config::RuntimeConfig;
use exesdb_host::messages::Envelope;
use exesdb_host::reload::Watcher;
use exesdb_host::runtime::{bench_support, Actor, Manifest, Plugins, Runtime};

const DEBOUNCE: Duration = Duration::from_millis(50);

fn manifest_text(name: &str, tag: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"{tag}\"\nworld = \"subscriber\"\n\
         [[subscribe]]\nchannel = \"events\"\npattern = \"bench:>\"\n\
         [[publish]]\nchannel = \"diagnostics\"\npattern = \"echo:>\"\n\
         [config]\nmode = \"echo\"\ntag = \"{tag}\"\n"
    )
}

fn wasm() -> Vec<u8> {
    std::fs::read(exesdb_host::artifacts::TEST_GUEST_WASM).unwrap()
}

fn deploy(dir: &Path, name: &str, content: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Publishes an event every millisecond until an echo tagged `tag` arrives.
async fn until_tag(bus: &Bus, echoes: &exesdb_host::bus::Subscriber, tag: &str) {
    loop {
        let env = Envelope::new(
            Channel::Events,
            "bench:x",
            "custom.e",
            serde_json::json!({}),
            "b",
        );
        bus.broadcast(env).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        while let Some(e) = echoes.try_recv() {
            if e.payload()["tag"] == tag {
                return;
            }
        }
    }
}

/// This process's resident memory, from the host's own node figures.
fn rss_bytes() -> u64 {
    exesdb_host::health::node::read_figures(std::path::Path::new("/"))
        .unwrap()
        .process_rss_bytes
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let rc = RuntimeConfig {
            cache_dir: cache.path().display().to_string(),
            ..RuntimeConfig::default()
        };
        let bus = Bus::new(BusConfig::default());
        let plugins = Arc::new(Plugins::new(Runtime::with_config(&rc).unwrap(), bus.clone(), 64));
        let echoes = bus.subscriber("echoes").unwrap();
        echoes.subscribe(Channel::Diagnostics, "echo:>").unwrap();
        let _watcher = Watcher::start(dir.path(), Arc::clone(&plugins), DEBOUNCE).unwrap();
        deploy(dir.path(), "swap.wasm", &wasm());
        deploy(dir.path(), "swap.toml", manifest_text("swap", "t0").as_bytes());
        until_tag(&bus, &echoes, "t0").await;

        let mut watched = Vec::new();
        let mut direct = Vec::new();
        for i in 1..=7 {
            let tag = format!("w{i}");
            let t0 = Instant::now();
            deploy(dir.path(), "swap.toml", manifest_text("swap", &tag).as_bytes());
            until_tag(&bus, &echoes, &tag).await;
            watched.push(t0.elapsed());

            let tag = format!("d{i}");
            let m = Manifest::parse(&manifest_text("swap", &tag), "direct").unwrap();
            let t0 = Instant::now();
            plugins.reload(Actor::Operator, m, &wasm()).await.unwrap();
            until_tag(&bus, &echoes, &tag).await;
            direct.push(t0.elapsed());
        }
        let (w, d) = (median(watched), median(direct));
        println!(
            "rename -> new version handles a message (watcher, debounce {DEBOUNCE:?}, warm cache): {:>7.1} ms | Plugins::reload directly {:>6.1} ms | ratio {:.2}",
            w.as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e3,
            w.as_secs_f64() / d.as_secs_f64()
        );

        let m = || Manifest::parse(&manifest_text("inst", "x"), "inst").unwrap();
        let on_demand = Runtime::with_config(&RuntimeConfig {
            pooling: false,
            ..rc.clone()
        })
        .unwrap();
        let pooled = Runtime::with_config(&RuntimeConfig {
            pooling: true,
            ..rc.clone()
        })
        .unwrap();
        let t_demand = bench_support::instantiate_time(&on_demand, &bus, m(), &wasm(), 500).unwrap();
        let t_pool = bench_support::instantiate_time(&pooled, &bus, m(), &wasm(), 500).unwrap();
        println!(
            "instantiate + init: pooling {:>6.1} µs | on-demand {:>6.1} µs | ratio {:.2}",
            t_pool.as_secs_f64() * 1e6,
            t_demand.as_secs_f64() * 1e6,
            t_pool.as_secs_f64() / t_demand.as_secs_f64()
        );

        const N: u64 = 50;
        let idle = Plugins::new(Runtime::with_config(&rc).unwrap(), bus.clone(), 64);
        let noop = |i: u64| {
            Manifest::parse(
                &format!("name = \"idle-{i}\"\nversion = \"1\"\nworld = \"subscriber\"\n[config]\nmode = \"noop\"\n"),
                "idle",
            )
            .unwrap()
        };
        idle.load(Actor::Operator, noop(999), &wasm()).unwrap(); // warm: code loaded once
        let before = rss_bytes();
        for i in 0..N {
            idle.load(Actor::Operator, noop(i), &wasm()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let per = (rss_bytes().saturating_sub(before)) / N;
        println!(
            "resident memory per idle Rust plugin instance (incl. its worker thread and inbox): {:.0} KiB",
            per as f64 / 1024.0
        );
    });
}
