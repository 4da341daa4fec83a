//! Append → handled latency through an emitter worker, into a real Rust
//! plugin and, as the baseline in the same run, into a native handler.
//!
//! `cargo bench -p exesdb-host --bench emitter`: 2,000 single-event durable
//! appends, one at a time; for each, the time from calling `append` to the
//! subscriber having handled the event. Prints p50/p99 for both.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::config::Config;
use exesdb_host::emitter::{Emitters, Start, Stores, SubscriptionSpec, Target};
use exesdb_host::health::HealthTracker;
use exesdb_host::metrics::MetricsCollector;
use exesdb_host::runtime::{Actor, Manifest, Plugins, Runtime};
use exesdb_host::store::{Durability, ExpectedVersion, NewEvent, Selector};

const N: usize = 2000;

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new(BusConfig::default());
        let stores = Stores::new(dir.path(), Durability::Immediate, bus.clone());
        let health = HealthTracker::new("default", Config::default().health_monitoring, bus.clone());
        let metrics = MetricsCollector::new("default", bus.clone());
        let plugins = Arc::new(Plugins::with_monitoring(Runtime::new().unwrap(), bus.clone(), 64, Arc::clone(&health), metrics));
        let emitters = Emitters::new(Arc::clone(&stores), health, bus.clone(), Arc::downgrade(&plugins));
        let text = "name = \"sink\"\nversion = \"1\"\nworld = \"subscriber\"\n\
                    [[publish]]\nchannel = \"diagnostics\"\npattern = \"echo:>\"\n[config]\nmode = \"echo\"\n";
        let wasm = std::fs::read(exesdb_host::artifacts::TEST_GUEST_WASM).unwrap();
        plugins.load(Actor::Operator, Manifest::parse(text, "sink").unwrap(), &wasm).unwrap();
        let echoes = bus.subscriber("echoes").unwrap();
        echoes.subscribe(Channel::Diagnostics, "echo:sink").unwrap();
        let spec = |s: &str| SubscriptionSpec {
            store: "default".into(),
            selector: Selector::Stream(s.into()),
            start: Start::Now,
            name: None,
        };
        emitters.subscribe(spec("to-plugin"), Target::Plugin("sink".into())).unwrap();
        let (_id, mut native) = emitters.subscribe_native(spec("to-native"), "native", 16).unwrap();

        let mut to_plugin = Vec::with_capacity(N);
        let mut to_native = Vec::with_capacity(N);
        for i in 0..N {
            let e = NewEvent::json("Tick", serde_json::json!({ "i": i }));
            let t0 = Instant::now();
            stores.append("default", "to-plugin", ExpectedVersion::Any, vec![e.clone()]).await.unwrap();
            echoes.recv().await.unwrap();
            to_plugin.push(t0.elapsed());

            let t0 = Instant::now();
            stores.append("default", "to-native", ExpectedVersion::Any, vec![e]).await.unwrap();
            let batch = native.recv().await.unwrap();
            batch.ack.send(Ok(())).unwrap();
            to_native.push(t0.elapsed());
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let (p50, p99) = (percentile(&mut to_plugin, 0.5), percentile(&mut to_plugin, 0.99));
        let (b50, b99) = (percentile(&mut to_native, 0.5), percentile(&mut to_native, 0.99));
        println!("append -> handled, Rust plugin: p50 {:.2} ms, p99 {:.2} ms", ms(p50), ms(p99));
        println!("append -> handled, native handler (baseline): p50 {:.2} ms, p99 {:.2} ms", ms(b50), ms(b99));
        println!("ratio plugin / native: p50 {:.2}, p99 {:.2}", ms(p50) / ms(b50), ms(p99) / ms(b99));
        emitters.shutdown().await;
    });
}
