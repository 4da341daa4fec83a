//! How cost grows: the curve, not one point.
//!
//! `cargo bench -p exesdb-host --bench scaling` prints two tables:
//!
//! - **Publish cost against subscribers**: the time of one publish (ns) to
//!   1, 10, 100, 1,000 and 10,000 subscribers that all match, subscribed
//!   by exact topic and by pattern (`bench:*`), and with that many
//!   subscribers on *other* topics (none matches: the routing index's cost
//!   alone). Also per delivery (ns / matching subscriber). The baseline in
//!   the same run is one publish to one exact subscriber: each row's ratio
//!   is against it. Publishes use `publish_now` into inboxes large enough
//!   for every message, so the figure is the publisher's cost.
//! - **Resident memory against plugins**: 1, 10, 100, 1,000 and 10,000
//!   idle `test-guest` plugins (Rust, `noop`, the same component bytes)
//!   loaded into one host: load time per plugin, resident memory above
//!   the host without plugins, per plugin, and the process's threads.
//!   Instances are allocated on demand (`pooling = false`): the pooling
//!   allocator reserves address space per slot and its default of 256
//!   instances is a cap. A count that cannot be loaded is reported with
//!   its error and ends the table. Each row runs in a process of its own.
//!
//! `BENCH_MAX_PLUGINS` caps the plugin counts (default 10,000) and
//! `BENCH_SCALING_DELIVERIES` the deliveries per publish row (default
//! 2,000,000, at least 20 publishes).

mod support;
use support::{cpu_model, median};

use std::sync::Arc;
use std::time::{Duration, Instant};

use exesdb_host::bus::{Bus, BusConfig, Channel, OverflowPolicy, SubscriberOptions};
use exesdb_host::config::RuntimeConfig;
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Actor, Manifest, Plugins, Runtime};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How the subscribers of a publish row subscribe.
#[derive(Clone, Copy)]
enum Shape {
    /// Exact topic `bench:stream`: all match.
    Exact,
    /// Pattern `bench:*`: all match.
    Pattern,
    /// Exact topics `other:<i>`: none matches.
    Elsewhere,
}

impl Shape {
    fn label(self) -> &'static str {
        match self {
            Shape::Exact => "exact, all match",
            Shape::Pattern => "pattern `bench:*`, all match",
            Shape::Elsewhere => "exact on other topics, none match",
        }
    }
}

/// Nanoseconds per publish to `subs` subscribers of `shape` (median of 3).
fn publish_ns(subs: usize, shape: Shape) -> f64 {
    let deliveries = env_usize("BENCH_SCALING_DELIVERIES", 2_000_000);
    let publishes = (deliveries / subs).max(20);
    let runs: Vec<f64> = (0..3)
        .map(|_| {
            let bus = Bus::new(BusConfig {
                inbox_capacity: publishes + 16,
                backpressure_timeout: Duration::from_secs(60),
                ..BusConfig::default()
            });
            let keep: Vec<_> = (0..subs)
                .map(|i| {
                    let s = bus
                        .subscriber_with(
                            &format!("sub-{i}"),
                            SubscriberOptions {
                                capacity: Some(publishes + 16),
                                policy: Some(OverflowPolicy::DropOldest),
                            },
                        )
                        .unwrap();
                    let pattern = match shape {
                        Shape::Exact => "bench:stream".to_owned(),
                        Shape::Pattern => "bench:*".to_owned(),
                        Shape::Elsewhere => format!("other:{i}"),
                    };
                    s.subscribe(Channel::Events, &pattern).unwrap();
                    s
                })
                .collect();
            let envs: Vec<Arc<Envelope>> = (0..publishes)
                .map(|n| {
                    Arc::new(Envelope::new(
                        Channel::Events,
                        "bench:stream",
                        "custom.bench",
                        serde_json::json!({"n": n}),
                        "bench",
                    ))
                })
                .collect();
            let start = Instant::now();
            for env in envs {
                bus.publish_now(env).unwrap();
            }
            let ns = start.elapsed().as_nanos() as f64 / publishes as f64;
            if !matches!(shape, Shape::Elsewhere) {
                assert_eq!(keep[0].queue_depth(), publishes, "every publish delivered");
            }
            drop(keep);
            ns
        })
        .collect();
    median(runs)
}

fn publish_table(counts: &[usize]) {
    let base = publish_ns(1, Shape::Exact);
    println!("\n## Publish cost against subscribers (baseline: 1 exact subscriber, {base:.0} ns/publish)\n");
    println!("| subscribers | subscription | ns / publish | ns / delivery | ratio to baseline |");
    println!("|---:|---|---:|---:|---:|");
    for &subs in counts {
        for shape in [Shape::Exact, Shape::Pattern, Shape::Elsewhere] {
            let ns = publish_ns(subs, shape);
            let per = match shape {
                Shape::Elsewhere => "–".to_owned(),
                _ => format!("{:.1}", ns / subs as f64),
            };
            println!(
                "| {subs} | {} | {ns:.0} | {per} | {:.2} |",
                shape.label(),
                ns / base
            );
        }
    }
}

fn manifest(name: &str) -> Manifest {
    let text = format!(
        "name = \"{name}\"\nversion = \"1\"\nworld = \"subscriber\"\n\
         [[subscribe]]\nchannel = \"events\"\npattern = \"{name}:>\"\n\
         [config]\nmode = \"noop\"\n"
    );
    Manifest::parse(&text, name).unwrap()
}

/// This process's resident memory, from the host's own node figures.
fn rss() -> u64 {
    exesdb_host::health::node::read_figures(std::path::Path::new("/"))
        .unwrap()
        .process_rss_bytes
}

/// The process's thread count (`/proc/self/status`).
fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Loads `n` idle plugins into a fresh runtime and prints their table row;
/// `false` when a load failed (its error is printed). Runs in a process of
/// its own (see [`memory_table`]), so memory the allocator kept from an
/// earlier row does not hide this one's growth.
async fn memory_row(n: usize) -> bool {
    let wasm = std::fs::read(exesdb_host::artifacts::TEST_GUEST_WASM).unwrap();
    let runtime = Runtime::with_config(&RuntimeConfig {
        pooling: false,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let bus = Bus::new(BusConfig::default());
    let plugins = Plugins::new(Arc::clone(&runtime), bus.clone(), 64);
    // The compiled component is shared by every plugin of the same bytes;
    // the first load compiles it, outside the timing.
    plugins
        .load(Actor::Operator, manifest("warm"), &wasm)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss();
    let start = Instant::now();
    let mut failed = None;
    for i in 0..n {
        if let Err(e) = plugins.load(Actor::Operator, manifest(&format!("p{i}")), &wasm) {
            failed = Some((i, e.to_string()));
            break;
        }
    }
    let took = start.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss().saturating_sub(before);
    let loaded = failed.as_ref().map_or(n, |(i, _)| *i).max(1);
    println!(
        "| {n} | {loaded} | {:.0} | {:.1} | {:.0} | {} |",
        took.as_micros() as f64 / loaded as f64,
        grown as f64 / (1024.0 * 1024.0),
        grown as f64 / 1024.0 / loaded as f64,
        threads()
    );
    plugins.unload_all().await;
    match failed {
        Some((_, e)) => {
            println!("\nthe next load failed: {e}");
            false
        }
        None => true,
    }
}

/// One row per plugin count, each measured by this bench's own binary
/// run again with `BENCH_SCALING_ROW=<n>`.
fn memory_table(counts: &[usize]) {
    println!("\n## Resident memory against idle Rust plugins (on-demand allocation, one process per row)\n");
    println!("| plugins asked | loaded | load, µs / plugin | RSS above no plugins, MiB | KiB / plugin | threads |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in counts {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--bench")
            .env("BENCH_SCALING_ROW", n.to_string())
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            println!(
                "(exited with {}: {})",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            break;
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Some(n) = std::env::var("BENCH_SCALING_ROW")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        if !memory_row(n).await {
            std::process::exit(2);
        }
        return;
    }
    println!("# scaling bench\n\nCPU: {}", cpu_model());
    let max = env_usize("BENCH_MAX_PLUGINS", 10_000);
    let counts: Vec<usize> = [1, 10, 100, 1_000, 10_000]
        .into_iter()
        .filter(|&c| c <= max)
        .collect();
    publish_table(&counts);
    memory_table(&counts);
}
