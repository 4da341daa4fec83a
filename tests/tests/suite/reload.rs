//! Hot reload and runtime hardening with real components, real files and the
//! real watcher: zero loss across swaps, rejected broken versions, restart
//! back-off and parking, the compiled-component cache, fuel and pooling.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig, Channel, Subscriber};
use exesdb_host::config::{Config, RuntimeConfig};
use exesdb_host::health::HealthTracker;
use exesdb_host::messages::alerts::SystemAlert;
use exesdb_host::messages::audit::AdminAction;
use exesdb_host::messages::lifecycle::{ProcessEvent, ProcessLifecycle};
use exesdb_host::metrics::MetricsCollector;
use exesdb_host::runtime::{Actor, Manifest, PluginError, PluginRunState, Plugins, Runtime, World};
use serde_json::json;

/// The test guest in `mode`, tagged `tag`, subscribed to `events`/`>`.
fn guest(name: &str, version: &str, mode: &str, tag: &str) -> Manifest {
    manifest("test-guest", name, |t| {
        t.insert("version".into(), version.into());
        let c = t["config"].as_table_mut().unwrap();
        c.insert("mode".into(), mode.into());
        c.insert("tag".into(), tag.into());
    })
}

fn toml_of(m: &Manifest) -> String {
    toml::to_string(m).unwrap()
}

fn plugins_with(runtime: RuntimeConfig) -> (Bus, Plugins) {
    let bus = Bus::new(BusConfig {
        inbox_capacity: 100_000,
        ..BusConfig::default()
    });
    let config = Config::default();
    let health = HealthTracker::new("default", config.health_monitoring, bus.clone());
    let metrics = MetricsCollector::new("default", bus.clone());
    let plugins = Plugins::with_monitoring(
        Runtime::with_config(&runtime).unwrap(),
        bus.clone(),
        64,
        health,
        metrics,
    );
    (bus, plugins)
}

/// Collects `n` echoes: (message n, tag).
async fn echoes(sub: &Subscriber, n: usize) -> Vec<(u64, String)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let e = next(sub).await;
        let id = e.payload()["id"].as_str().unwrap().to_owned();
        let tag = e.payload()["tag"].as_str().unwrap_or("").to_owned();
        out.push((id, tag));
    }
    out.into_iter()
        .map(|(id, tag)| (id_number(&id), tag))
        .collect()
}

/// Message ids are UUIDv7: order by id is publish order; we map them to
/// their publish index through the registry built by `publisher`.
fn id_number(id: &str) -> u64 {
    IDS.with(|ids| {
        *ids.borrow()
            .get(id)
            .unwrap_or_else(|| panic!("unknown id {id}"))
    })
}

thread_local! {
    static IDS: std::cell::RefCell<std::collections::HashMap<String, u64>> = Default::default();
}

/// Checks zero loss and one switch: every message exactly once, all `from`
/// tags before all `to` tags (in message order).
fn assert_one_clean_switch(mut got: Vec<(u64, String)>, n: u64, from: &str, to: &str) {
    got.sort();
    let numbers: Vec<u64> = got.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        numbers,
        (0..n).collect::<Vec<_>>(),
        "every message exactly once"
    );
    let first_new = got
        .iter()
        .position(|(_, t)| t == to)
        .expect("the new version handled messages");
    assert!(
        first_new > 0,
        "the old version handled messages before the swap"
    );
    assert!(got[..first_new].iter().all(|(_, t)| t == from), "{got:?}");
    assert!(
        got[first_new..].iter().all(|(_, t)| t == to),
        "no message went back to the old version"
    );
}

/// Publishes `n` events at a steady pace (one every `gap`), recording ids.
async fn steady(bus: &Bus, n: u64, gap: Duration) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let env = publish_event(bus, "s:x", json!({ "n": i })).await;
        ids.push(env.id.to_string());
        tokio::time::sleep(gap).await;
    }
    ids
}

fn register(ids: &[String]) {
    IDS.with(|m| {
        let mut m = m.borrow_mut();
        for (i, id) in ids.iter().enumerate() {
            m.insert(id.clone(), i as u64);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_under_steady_load_loses_nothing_and_switches_once() {
    let (bus, plugins) = plugins_with(RuntimeConfig::default());
    let out = watch(&bus, Channel::Diagnostics, "echo:swappy");
    let audit = watch(&bus, Channel::Audit, "audit:admin_action:>");
    let life = watch(&bus, Channel::Lifecycle, "process_lifecycle:swappy");
    plugins
        .load(
            Actor::Operator,
            guest("swappy", "1.0.0", "echo", "v1"),
            &wasm("test-guest"),
        )
        .unwrap();
    let plugins = Arc::new(plugins);
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move { steady(&bus, 600, Duration::from_micros(500)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let info = plugins
        .reload(
            Actor::Operator,
            guest("swappy", "2.0.0", "echo", "v2"),
            &wasm("test-guest"),
        )
        .await
        .unwrap();
    assert_eq!(
        (info.version.as_str(), info.state),
        ("2.0.0", PluginRunState::Running)
    );
    let ids = publisher.await.unwrap();
    register(&ids);
    assert_one_clean_switch(echoes(&out, 600).await, 600, "v1", "v2");
    quiet(&out, Duration::from_millis(200)).await;

    let actions: Vec<AdminAction> = (0..2)
        .map(|_| audit.try_recv().unwrap().decode().unwrap())
        .collect();
    assert_eq!(actions[0].action_type, "plugin_load");
    assert_eq!(actions[1].action_type, "plugin_reload");
    assert_eq!(actions[1].details["version"], "2.0.0");
    let reloaded = next_where(&life, |e| {
        e.decode::<ProcessLifecycle>()
            .is_ok_and(|p| p.event == ProcessEvent::Restarted)
    })
    .await
    .decode::<ProcessLifecycle>()
    .unwrap();
    assert_eq!(reloaded.reason.as_deref(), Some("reloaded: 1.0.0 -> 2.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_new_versions_are_rejected_and_the_old_one_keeps_running() {
    let (bus, plugins) = plugins_with(RuntimeConfig::default());
    let out = watch(&bus, Channel::Diagnostics, "echo:stable");
    plugins
        .load(
            Actor::Operator,
            guest("stable", "1.0.0", "echo", "v1"),
            &wasm("test-guest"),
        )
        .unwrap();
    let cases: Vec<(Manifest, Vec<u8>, &str)> = vec![
        (
            guest("stable", "2.0.0", "echo", "v2"),
            b"not wasm at all".to_vec(),
            "malformed",
        ),
        (
            guest("stable", "2.0.0", "echo", "v2"),
            wasm("json-log-formatter"),
            "does not export",
        ),
        (
            guest("stable", "2.0.0", "init-fail", "v2"),
            wasm("test-guest"),
            "init failed",
        ),
        (
            {
                let mut m = guest("stable", "2.0.0", "echo", "v2");
                m.world = World::LogFormatter;
                m.subscribe.clear();
                m.publish.clear();
                m
            },
            wasm("json-log-formatter"),
            "cannot hot-swap world",
        ),
    ];
    for (manifest, bytes, expected) in cases {
        let err = plugins
            .reload(Actor::Operator, manifest, &bytes)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(expected) && err.to_string().contains("stable"),
            "{err}"
        );
        let sent = publish_event(&bus, "s:x", json!({})).await;
        let e = next(&out).await;
        assert_eq!(
            (e.payload()["id"].as_str(), e.payload()["tag"].as_str()),
            (Some(&*sent.id.to_string()), Some("v1"))
        );
    }
    assert_eq!(plugins.status("stable").unwrap().version, "1.0.0");
}

/// Writes `content` to `dir/name` through a temporary file and a rename.
fn deploy(dir: &Path, name: &str, content: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn host_watching(dir: &Path, cache: &Path) -> exesdb_host::host::Host {
    let config = Config::load_with_env(
        None,
        [
            ("EXESDB_PLUGINS__DIR", dir.to_str().unwrap()),
            ("EXESDB_PLUGINS__BUNDLED", "false"),
            ("EXESDB_PLUGINS__WATCH_DEBOUNCE_MS", "100"),
            ("EXESDB_API__LISTEN", ""),
            ("EXESDB_RUNTIME__CACHE_DIR", cache.to_str().unwrap()),
            ("EXESDB_BUS__INBOX_CAPACITY", "100000"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    exesdb_host::host::Host::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_loads_replaces_and_unloads_from_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let host = host_watching(dir.path(), cache.path()).await;
    let bus = host.bus().clone();
    let out = watch(&bus, Channel::Diagnostics, "echo:dropped");
    let life = watch(&bus, Channel::Lifecycle, "process_lifecycle:dropped");
    let alerts = watch(&bus, Channel::Alerts, "system_alert:>");

    // Drop: a new pair is loaded.
    deploy(dir.path(), "dropped.wasm", &wasm("test-guest"));
    deploy(
        dir.path(),
        "dropped.toml",
        toml_of(&guest("dropped", "1.0.0", "echo", "v1")).as_bytes(),
    );
    let started = next(&life).await.decode::<ProcessLifecycle>().unwrap();
    assert_eq!(started.event, ProcessEvent::Started);

    // Replace while a publisher sends a steady stream.
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move { steady(&bus, 400, Duration::from_millis(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    deploy(
        dir.path(),
        "dropped.toml",
        toml_of(&guest("dropped", "2.0.0", "echo", "v2")).as_bytes(),
    );
    let ids = publisher.await.unwrap();
    register(&ids);
    assert_one_clean_switch(echoes(&out, 400).await, 400, "v1", "v2");

    // A broken replacement is rejected with an alert; v2 keeps handling.
    deploy(
        dir.path(),
        "dropped.toml",
        b"name = \"dropped\"\nversion = \"3\"\nworld = \"subscriber\"\ncolour = 1\n",
    );
    let alert: SystemAlert = next(&alerts).await.decode().unwrap();
    assert_eq!(alert.title, "Plugin change rejected");
    assert!(
        alert.metadata["error"].as_str().unwrap().contains("colour"),
        "{alert:?}"
    );
    publish_event(&bus, "s:x", json!({})).await;
    assert_eq!(next(&out).await.payload()["tag"], "v2");

    // Remove: unloaded.
    std::fs::remove_file(dir.path().join("dropped.toml")).unwrap();
    let stopped = next_where(&life, |e| {
        e.decode::<ProcessLifecycle>()
            .is_ok_and(|p| p.event == ProcessEvent::Stopped)
    })
    .await;
    assert_eq!(
        stopped
            .decode::<ProcessLifecycle>()
            .unwrap()
            .reason
            .as_deref(),
        Some("unloaded")
    );
    assert!(host.plugins().status("dropped").is_none());
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_back_off_exponentially_then_park_until_reloaded() {
    let runtime = RuntimeConfig {
        restart_backoff_ms: 100,
        max_restart_backoff_ms: 400,
        max_restarts: 3,
        restart_window_ms: 60_000,
        ..RuntimeConfig::default()
    };
    let (bus, plugins) = plugins_with(runtime);
    let life = watch(&bus, Channel::Lifecycle, "process_lifecycle:crashy");
    let m = manifest("test-guest", "crashy", |t| {
        t["config"]
            .as_table_mut()
            .unwrap()
            .insert("mode".into(), "trap".into());
    });
    plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    next(&life).await; // started
    let mut gaps = Vec::new();
    for _ in 0..3 {
        publish_event(&bus, "s:x", json!({ "say": "boom" })).await;
        let crashed = next(&life).await;
        assert_eq!(
            crashed.decode::<ProcessLifecycle>().unwrap().event,
            ProcessEvent::Crashed
        );
        let restarted = next(&life).await;
        assert_eq!(
            restarted.decode::<ProcessLifecycle>().unwrap().event,
            ProcessEvent::Restarted
        );
        gaps.push((restarted.timestamp - crashed.timestamp).to_std().unwrap());
    }
    // 100, 200, 400 ms (lower bounds only: the machine may be slow).
    for (gap, min) in gaps.iter().zip([95, 195, 395]) {
        assert!(*gap >= Duration::from_millis(min), "{gaps:?}");
    }
    // The fourth trap within the window parks it.
    publish_event(&bus, "s:x", json!({ "say": "boom" })).await;
    next(&life).await; // crashed
    let parked = next(&life).await.decode::<ProcessLifecycle>().unwrap();
    assert!(parked.reason.unwrap().contains("parked after 4 traps"));
    let info = wait_status(&plugins, "crashy", |s| s.state == PluginRunState::Parked).await;
    assert_eq!(info.traps, 4);
    let health = plugins.health().subscription("crashy").unwrap();
    assert_eq!(
        health.breaker,
        exesdb_host::messages::tracking::BreakerState::Open
    );
    // Parked: messages wait, nothing is delivered.
    publish_event(&bus, "s:x", json!({ "say": "fine" })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sub = info.subscriber.unwrap();
    assert_eq!(bus.stats_of(sub).unwrap().queue_depth, 1);
    // An operator's reload resumes it; the waiting message is handled.
    let out = watch(&bus, Channel::Diagnostics, "echo:crashy");
    plugins
        .reload(
            Actor::Operator,
            guest("crashy", "2.0.0", "echo", "fixed"),
            &wasm("test-guest"),
        )
        .await
        .unwrap();
    assert_eq!(next(&out).await.payload()["tag"], "fixed");
    let health = plugins.health().subscription("crashy").unwrap();
    assert_eq!(
        health.breaker,
        exesdb_host::messages::tracking::BreakerState::Closed
    );
}

/// Plugins loaded from the same bytes share one compiled component while
/// one of them is loaded (no second compile or cache read, one copy of the
/// code and memory image); once none is, the next load compiles again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_of_the_same_bytes_share_one_compiled_component() {
    let bus = Bus::new(BusConfig::default());
    let plugins = Plugins::new(Runtime::new().unwrap(), bus, 16);
    let bytes = wasm("health-console");
    for name in ["hc-a", "hc-b", "hc-c"] {
        let m = manifest("health-console", name, |_| {});
        plugins.load(Actor::Operator, m, &bytes).unwrap();
    }
    let stats = plugins.runtime_cache_stats();
    assert_eq!((stats.misses, stats.shared), (1, 2), "{stats:?}");
    // Still shared while one of them is loaded.
    plugins.unload(Actor::Operator, "hc-a").await.unwrap();
    plugins.unload(Actor::Operator, "hc-b").await.unwrap();
    let m = manifest("health-console", "hc-d", |_| {});
    plugins.load(Actor::Operator, m, &bytes).unwrap();
    assert_eq!(plugins.runtime_cache_stats().shared, 3);
    // None loaded: compiled again.
    plugins.unload(Actor::Operator, "hc-c").await.unwrap();
    plugins.unload(Actor::Operator, "hc-d").await.unwrap();
    let m = manifest("health-console", "hc-e", |_| {});
    plugins.load(Actor::Operator, m, &bytes).unwrap();
    let stats = plugins.runtime_cache_stats();
    assert_eq!((stats.misses, stats.shared), (2, 3), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_component_cache_skips_compilation_and_rebuilds_corrupted_entries() {
    let dir = tempfile::tempdir().unwrap();
    let rc = RuntimeConfig {
        cache_dir: dir.path().display().to_string(),
        ..RuntimeConfig::default()
    };
    let bytes = wasm("health-console");
    let load_once = |rc: &RuntimeConfig| {
        let bus = Bus::new(BusConfig::default());
        let plugins = Plugins::new(Runtime::with_config(rc).unwrap(), bus, 16);
        let m = manifest("health-console", "hc", |_| {});
        let started = Instant::now();
        plugins.load(Actor::Operator, m, &bytes).unwrap();
        (started.elapsed(), plugins)
    };
    let (cold, p) = load_once(&rc);
    assert_eq!(p.runtime_cache_stats().misses, 1);
    let (warm, p) = load_once(&rc);
    let stats = p.runtime_cache_stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (1, 0),
        "a second runtime loads from the cache"
    );
    eprintln!("load with compilation {cold:?}, from the cache {warm:?}");
    assert!(
        warm < cold,
        "cache hit {warm:?} is not faster than compiling {cold:?}"
    );

    // Corrupt the entry: it is detected, rebuilt, and valid again afterwards.
    let entry = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .unwrap();
    let mut code = std::fs::read(&entry).unwrap();
    let mid = code.len() / 2;
    code[mid] ^= 0xff;
    std::fs::write(&entry, code).unwrap();
    let (_, p) = load_once(&rc);
    let stats = p.runtime_cache_stats();
    assert_eq!((stats.rebuilt, stats.misses, stats.hits), (1, 1, 0));
    let (_, p) = load_once(&rc);
    assert_eq!(p.runtime_cache_stats().hits, 1, "the rebuilt entry is used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_gives_a_deterministic_budget() {
    let (bus, plugins) = plugins_with(RuntimeConfig {
        fuel: true,
        ..RuntimeConfig::default()
    });
    let life = watch(&bus, Channel::Lifecycle, "process_lifecycle:burner");
    let m = manifest("test-guest", "burner", |t| {
        t["config"]
            .as_table_mut()
            .unwrap()
            .insert("mode".into(), "loop".into());
        let mut l = toml::Table::new();
        l.insert("fuel".into(), 5_000_000i64.into());
        l.insert("call_timeout_ms".into(), 60_000i64.into());
        t.insert("limits".into(), l.into());
    });
    plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    publish_event(&bus, "s:x", json!({})).await;
    let crash = next_where(&life, |e| {
        e.decode::<ProcessLifecycle>()
            .is_ok_and(|p| p.event == ProcessEvent::Crashed)
    })
    .await;
    let reason = crash.decode::<ProcessLifecycle>().unwrap().reason.unwrap();
    assert!(reason.contains("fuel budget of 5000000"), "{reason}");

    // Without fuel metering in the runtime, asking for fuel is refused.
    let (_bus, plain) = plugins_with(RuntimeConfig::default());
    let m = manifest("test-guest", "burner", |t| {
        let mut l = toml::Table::new();
        l.insert("fuel".into(), 1000i64.into());
        t.insert("limits".into(), l.into());
    });
    let err = plain
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap_err();
    assert!(err.to_string().contains("[runtime] fuel = true"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooling_caps_instances_so_one_tenant_cannot_starve_the_rest() {
    let (bus, plugins) = plugins_with(RuntimeConfig {
        pooling: true,
        pool_max_instances: 2,
        pool_max_memory_mb: 64,
        ..RuntimeConfig::default()
    });
    let out = watch(&bus, Channel::Diagnostics, "echo:>");
    plugins
        .load(
            Actor::Operator,
            guest("a", "1", "echo", "a"),
            &wasm("test-guest"),
        )
        .unwrap();
    plugins
        .load(
            Actor::Operator,
            guest("b", "1", "echo", "b"),
            &wasm("test-guest"),
        )
        .unwrap();
    let err = plugins
        .load(
            Actor::Operator,
            guest("c", "1", "echo", "c"),
            &wasm("test-guest"),
        )
        .unwrap_err();
    assert!(matches!(err, PluginError::Instantiate { .. }), "{err}");
    assert!(err.to_string().contains("plugin `c`"), "{err}");
    publish_event(&bus, "s:x", json!({})).await;
    let mut tags = vec![
        next(&out).await.payload()["tag"].clone(),
        next(&out).await.payload()["tag"].clone(),
    ];
    tags.sort_by_key(|t| t.to_string());
    assert_eq!(
        tags,
        vec![json!("a"), json!("b")],
        "the two admitted plugins work"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_cap_larger_than_the_pool_slots_is_refused_at_load() {
    let (_bus, plugins) = plugins_with(RuntimeConfig {
        pooling: true,
        pool_max_instances: 4,
        pool_max_memory_mb: 32,
        ..RuntimeConfig::default()
    });
    let mut m = guest("big", "1", "echo", "big");
    m.limits.memory_mb = 64;
    let err = plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PluginError::Instantiate { .. }), "{text}");
    for part in [
        "plugin `big`",
        "limits.memory_mb = 64",
        "pool_max_memory_mb = 32",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    let mut m = guest("fits", "1", "echo", "fits");
    m.limits.memory_mb = 32;
    plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
}

/// `[runtime] max_workers` caps the running plugin workers with an error
/// naming the plugin and the key, and an unload frees its place: the host
/// refuses a load before the operating system runs out of threads (which
/// aborts the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_past_max_workers_fail_naming_the_key_and_an_unload_frees_a_place() {
    let (_bus, plugins) = plugins_with(RuntimeConfig {
        max_workers: 2,
        ..RuntimeConfig::default()
    });
    let bytes = wasm("test-guest");
    for name in ["w1", "w2"] {
        plugins
            .load(
                Actor::Operator,
                manifest("test-guest", name, |_| {}),
                &bytes,
            )
            .unwrap();
    }
    let err = plugins
        .load(
            Actor::Operator,
            manifest("test-guest", "w3", |_| {}),
            &bytes,
        )
        .unwrap_err();
    assert!(
        matches!(err, PluginError::TooManyWorkers { ref plugin, max: 2 } if plugin == "w3"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("`w3`") && text.contains("[runtime] max_workers"),
        "{text}"
    );
    assert!(
        plugins.status("w3").is_none(),
        "the refused plugin is not listed"
    );
    plugins.unload(Actor::Operator, "w1").await.unwrap();
    plugins
        .load(
            Actor::Operator,
            manifest("test-guest", "w3", |_| {}),
            &bytes,
        )
        .unwrap();
    assert_eq!(plugins.status("w3").unwrap().delivered, 0);
    plugins.unload_all().await;
}
