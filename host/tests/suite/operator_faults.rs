//! What an operator does with a running host, step by step as a user would:
//! plugin files in the watched directory, `exesdb-host plugin …` against the
//! admin API, and what the console, `security`, `audit` and `alerts` show.
//!
//! - a parked plugin is revived by `plugin reload` (with and without
//!   `--manifest`);
//! - a bad file in the watched directory is reported once per change;
//! - `plugin unload` holds until the plugin's files change, whichever way
//!   the plugin was loaded;
//! - a flood of refused calls is reported aggregated, counted exactly, and
//!   parks the plugin once it exceeds its violation budget.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use exesdb_host::artifacts::{JSON_LOG_FORMATTER_WASM, TEST_GUEST_WASM};
use exesdb_host::bus::{Channel, Subscriber};
use exesdb_host::config::Config;
use exesdb_host::host::Host;
use exesdb_host::messages::alerts::SystemAlert;
use exesdb_host::messages::audit::AccessLog;
use exesdb_host::messages::security::{AccessViolation, SecurityAlert};
use exesdb_host::messages::Envelope;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::{cli, drain, guest_manifest as guest, next_where, path_str, watch, Run, WAIT};

/// Debounce of the watcher in these tests.
const DEBOUNCE_MS: u64 = 100;
/// Long enough for the watcher to have acted on any change several times.
const SETTLE: Duration = Duration::from_millis(1500);

/// A running host watching `dir`, with its admin API on a free port.
struct Fixture {
    host: Host,
    admin: String,
    dir: TempDir,
    _cache: TempDir,
}

impl Fixture {
    /// Starts a host over `dir` (which may already hold plugins), with
    /// `extra` settings as `EXESDB_*` variables.
    async fn start_in(dir: TempDir, extra: &[(&str, &str)]) -> Fixture {
        let cache = tempfile::tempdir().unwrap();
        let debounce = DEBOUNCE_MS.to_string();
        // The stores live beside the cache, in a directory of this test.
        let data_dir = cache.path().join("data").display().to_string();
        let mut env: Vec<(String, String)> = [
            ("EXESDB_API__LISTEN", "127.0.0.1:0"),
            ("EXESDB_PLUGINS__BUNDLED", "false"),
            ("EXESDB_PLUGINS__WATCH", "true"),
            ("EXESDB_PLUGINS__DIR", path_str(dir.path())),
            ("EXESDB_PLUGINS__WATCH_DEBOUNCE_MS", &debounce),
            ("EXESDB_RUNTIME__CACHE_DIR", path_str(cache.path())),
            ("EXESDB_STORES__DATA_DIR", &data_dir),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        env.push((
            "EXESDB_HEALTH_MONITORING__CHECK_INTERVAL".into(),
            "60000".into(),
        ));
        let config = Config::load_with_env(None, env).unwrap();
        let host = Host::start(config).await.unwrap();
        let admin = format!("http://{}", host.api_addr().unwrap());
        Fixture {
            host,
            admin,
            dir,
            _cache: cache,
        }
    }

    async fn start(extra: &[(&str, &str)]) -> Fixture {
        Self::start_in(tempfile::tempdir().unwrap(), extra).await
    }

    async fn cli(&self, args: &[&str]) -> Run {
        cli(&self.admin, args).await
    }

    /// `plugin status NAME` as JSON.
    async fn status(&self, name: &str) -> Value {
        self.cli(&["status", name]).await.json()
    }

    /// A subscriber with room for everything a test makes.
    fn watch(&self, channel: Channel, pattern: &str) -> Subscriber {
        watch(self.host.bus(), channel, pattern)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// Writes `content` to `dir/file` under a temporary name, then renames it
/// into place (the documented way to deploy).
fn deploy(dir: &Path, file: &str, content: &[u8]) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

/// The test guest's manifest as plugin `name` in `mode` (its version as its
/// echo tag), with `extra` TOML in its `[config]`.
fn guest_manifest(name: &str, version: &str, mode: &str, extra: &str) -> String {
    guest(name, version, mode, version, extra)
}

/// Deploys the test guest as `name` into `dir`.
fn deploy_guest(dir: &Path, name: &str, version: &str, mode: &str, extra: &str) {
    deploy(
        dir,
        &format!("{name}.wasm"),
        &std::fs::read(TEST_GUEST_WASM).unwrap(),
    );
    deploy(
        dir,
        &format!("{name}.toml"),
        guest_manifest(name, version, mode, extra).as_bytes(),
    );
}

/// Publishes one event whose payload is `payload`.
async fn publish(bus: &exesdb_host::bus::Bus, payload: Value) -> String {
    let env = Arc::new(Envelope::new(
        Channel::Events,
        "s:x",
        "custom.e",
        payload,
        bus.node(),
    ));
    bus.broadcast(Arc::clone(&env)).await.unwrap();
    env.id.to_string()
}

/// Polls `plugin status NAME` until `pred` holds.
async fn wait_status(f: &Fixture, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let run = f.cli(&["status", name]).await;
        if run.ok {
            let v: Value = serde_json::from_str(&run.stdout).unwrap();
            if pred(&v) {
                return v;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status of {name} never matched: {run:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_plugin_is_revived_by_plugin_reload() {
    let f = Fixture::start(&[
        ("EXESDB_RUNTIME__MAX_RESTARTS", "1"),
        ("EXESDB_RUNTIME__RESTART_BACKOFF_MS", "10"),
    ])
    .await;
    // Outside the watched directory: only the CLI loads it.
    let elsewhere = tempfile::tempdir().unwrap();
    deploy_guest(elsewhere.path(), "crashy", "1.0.0", "trap", "");
    let manifest = elsewhere.path().join("crashy.toml");
    f.cli(&["load", path_str(&manifest)]).await.json();
    let echoes = f.watch(Channel::Diagnostics, "echo:crashy");
    let bus = f.host.bus().clone();

    for revive in [
        vec!["reload", "crashy"],
        vec!["reload", "crashy", "--manifest", path_str(&manifest)],
    ] {
        // Two traps within the window park it (max_restarts = 1).
        publish(&bus, json!({ "say": "boom" })).await;
        wait_status(&f, "crashy", |s| {
            s["traps"].as_u64() >= Some(1) && s["state"] == "running"
        })
        .await;
        publish(&bus, json!({ "say": "boom" })).await;
        let parked = wait_status(&f, "crashy", |s| s["state"] == "parked").await;
        assert!(
            parked["last_error"].as_str().unwrap().contains("parked"),
            "{parked}"
        );
        // Parked: a message waits.
        let waiting = publish(&bus, json!({ "say": "fine" })).await;

        let run = f
            .cli(&revive.iter().map(|s| &**s).collect::<Vec<_>>())
            .await;
        let revived = run.json();
        assert_eq!(revived["state"], "running", "{revive:?}: {revived}");
        // A fresh instance handles the message that waited, then new ones.
        next_where(&echoes, |e| e.payload()["id"] == waiting.as_str()).await;
        let fresh = publish(&bus, json!({ "say": "again" })).await;
        next_where(&echoes, |e| e.payload()["id"] == fresh.as_str()).await;
        let status = f.status("crashy").await;
        assert_eq!(status["state"], "running", "{status}");
        assert_eq!(status["restarts"], 0, "{status}");
        let health = f.host.plugins().health().subscription("crashy").unwrap();
        assert_eq!(
            health.breaker,
            exesdb_host::messages::tracking::BreakerState::Closed,
            "{revive:?}"
        );
    }
    f.host.shutdown().await.unwrap();
}

/// The bad plugins of the watched-directory test, by plugin name.
fn bad_files(dir: &Path) {
    let guest = std::fs::read(TEST_GUEST_WASM).unwrap();
    // Random bytes.
    deploy(
        dir,
        "noise.wasm",
        &[0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3],
    );
    deploy(
        dir,
        "noise.toml",
        guest_manifest("noise", "1.0.0", "echo", "").as_bytes(),
    );
    // A core module, not a component.
    deploy(dir, "core.wasm", b"\0asm\x01\0\0\0");
    deploy(
        dir,
        "core.toml",
        guest_manifest("core", "1.0.0", "echo", "").as_bytes(),
    );
    // A log formatter declared as a subscriber.
    deploy(
        dir,
        "world.wasm",
        &std::fs::read(JSON_LOG_FORMATTER_WASM).unwrap(),
    );
    deploy(
        dir,
        "world.toml",
        guest_manifest("world", "1.0.0", "echo", "").as_bytes(),
    );
    // A manifest with an unknown key.
    deploy(dir, "keyed.wasm", &guest);
    deploy(
        dir,
        "keyed.toml",
        guest_manifest("keyed", "1.0.0", "echo", "")
            .replace("world = ", "colour = 1\nworld = ")
            .as_bytes(),
    );
    // A manifest naming a component that does not exist.
    deploy(
        dir,
        "lonely.toml",
        guest_manifest("lonely", "1.0.0", "echo", "")
            .replace("world = ", "component = \"nowhere.wasm\"\nworld = ")
            .as_bytes(),
    );
}

/// The `Plugin change rejected` alerts in `got`, counted by plugin.
fn rejections(got: &[Arc<Envelope>]) -> BTreeMap<String, usize> {
    let mut by_plugin = BTreeMap::new();
    for env in got {
        let alert: SystemAlert = env.decode().unwrap();
        if alert.title == "Plugin change rejected" {
            let plugin = alert
                .metadata
                .get("plugin")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("the alert names the plugin: {alert:?}"))
                .to_owned();
            *by_plugin.entry(plugin).or_default() += 1;
        }
    }
    by_plugin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_in_the_watched_directory_is_reported_once_per_change() {
    let f = Fixture::start(&[]).await;
    let alerts = f.watch(Channel::Alerts, "system_alert:>");
    bad_files(f.dir.path());
    // Quiet for several debounce periods: one report per bad plugin.
    let got = drain(&alerts, SETTLE * 2).await;
    let expected: BTreeMap<String, usize> = ["core", "keyed", "lonely", "noise", "world"]
        .into_iter()
        .map(|n| (n.to_owned(), 1))
        .collect();
    assert_eq!(rejections(&got), expected);
    let lonely = got
        .iter()
        .map(|e| e.decode::<SystemAlert>().unwrap())
        .find(|a| a.metadata["plugin"] == "lonely")
        .unwrap();
    assert!(
        lonely.metadata["error"]
            .as_str()
            .unwrap()
            .contains("nowhere.wasm"),
        "{lonely:?}"
    );
    assert!(f.host.plugins().list().is_empty());

    // A change of one file is reported once more — for that plugin only.
    deploy(f.dir.path(), "noise.wasm", b"other random bytes");
    let got = drain(&alerts, SETTLE).await;
    assert_eq!(rejections(&got), BTreeMap::from([("noise".to_owned(), 1)]));

    // A fix loads it.
    deploy(
        f.dir.path(),
        "noise.wasm",
        &std::fs::read(TEST_GUEST_WASM).unwrap(),
    );
    wait_status(&f, "noise", |s| s["state"] == "running").await;
    f.host.shutdown().await.unwrap();
}

/// Asserts `name` stays unloaded, shown as such, while its files stay.
async fn assert_held_unloaded(f: &Fixture, name: &str) {
    tokio::time::sleep(SETTLE).await;
    assert!(f.host.plugins().status(name).is_none(), "{name} came back");
    let status = f.status(name).await;
    assert_eq!(status["state"], "unloaded", "{status}");
    let list = f.cli(&["list"]).await;
    assert!(list.ok, "{list:#?}");
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} listed: {list:#?}"));
    let dir = f.dir.path().display().to_string();
    assert!(
        row.contains(&format!("unloaded (files still in {dir})")),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unload_holds_until_the_plugins_files_change() {
    // Loaded at start-up.
    let dir = tempfile::tempdir().unwrap();
    deploy_guest(dir.path(), "held", "1.0.0", "echo", "");
    let f = Fixture::start_in(dir, &[]).await;
    assert_eq!(f.status("held").await["version"], "1.0.0");
    assert_eq!(f.cli(&["unload", "held"]).await.stdout.trim(), "ok");
    assert_held_unloaded(&f, "held").await;

    // Loaded by the CLI, from the watched directory.
    let manifest = f.path("held.toml");
    let loaded = f.cli(&["load", path_str(&manifest)]).await.json();
    assert_eq!(loaded["state"], "running", "{loaded}");
    f.cli(&["unload", "held"]).await;
    assert_held_unloaded(&f, "held").await;

    // A change of its files loads it again (watcher), and the next change
    // reloads it (watcher); an unload after that holds too.
    deploy(
        f.dir.path(),
        "held.toml",
        guest_manifest("held", "2.0.0", "echo", "").as_bytes(),
    );
    wait_status(&f, "held", |s| {
        s["state"] == "running" && s["version"] == "2.0.0"
    })
    .await;
    deploy(
        f.dir.path(),
        "held.toml",
        guest_manifest("held", "3.0.0", "echo", "").as_bytes(),
    );
    wait_status(&f, "held", |s| s["version"] == "3.0.0").await;
    f.cli(&["unload", "held"]).await;
    assert_held_unloaded(&f, "held").await;

    // `plugin reload` of a held plugin loads it from its files.
    let reloaded = f.cli(&["reload", "held"]).await.json();
    assert_eq!(reloaded["state"], "running", "{reloaded}");
    assert_eq!(reloaded["version"], "3.0.0", "{reloaded}");
    f.host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_call_floods_are_aggregated_counted_and_park_the_plugin() {
    let f = Fixture::start(&[("EXESDB_RUNTIME__MAX_VIOLATIONS_PER_MINUTE", "1000")]).await;
    let security = f.watch(Channel::Security, ">");
    let audit = f.watch(Channel::Audit, "audit:access_log:plugin");
    let echoes = f.watch(Channel::Diagnostics, "echo:flood");
    deploy_guest(f.dir.path(), "flood", "1.0.0", "deny-flood", "n = 100000\n");
    wait_status(&f, "flood", |s| s["state"] == "running").await;
    publish(f.host.bus(), json!({})).await;
    let report = next_where(&echoes, |e| e.kind == "custom.deny_flood").await;
    assert_eq!(report.payload()["denied"], 100_000);

    let on_security = drain(&security, Duration::from_millis(2500)).await;
    let violations: Vec<AccessViolation> = on_security
        .iter()
        .filter(|e| e.kind == "AccessViolation")
        .map(|e| e.decode().unwrap())
        .collect();
    assert!(
        (1..=3).contains(&violations.len()),
        "aggregated into a few reports: {}",
        violations.len()
    );
    let counted: u64 = violations
        .iter()
        .map(|v| v.metadata["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 100_000, "the reports' counts add up exactly");
    let alerts: Vec<SecurityAlert> = on_security
        .iter()
        .filter(|e| e.kind == "SecurityAlert")
        .map(|e| e.decode().unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].alert_type, "violation_budget_exceeded");
    assert_eq!(alerts[0].affected_users, ["flood"]);

    let logs: Vec<AccessLog> = drain(&audit, Duration::from_millis(100))
        .await
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    assert_eq!(logs.len(), violations.len(), "one AccessLog per report");
    assert!(logs.iter().all(|l| !l.success));

    let status = wait_status(&f, "flood", |s| s["state"] == "parked").await;
    assert_eq!(status["violations"], 100_000, "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("max_violations_per_minute"),
        "{status}"
    );
    // Revived by a reload, with a fresh budget.
    let revived = f.cli(&["reload", "flood"]).await.json();
    assert_eq!(revived["state"], "running", "{revived}");
    f.host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_learns_how_many_messages_its_inbox_dropped() {
    let f = Fixture::start(&[("EXESDB_BUS__INBOX_CAPACITY", "8")]).await;
    let echoes = f.watch(Channel::Diagnostics, "echo:lagging");
    deploy_guest(f.dir.path(), "lagging", "1.0.0", "echo", "");
    wait_status(&f, "lagging", |s| s["state"] == "running").await;
    let bus = f.host.bus().clone();
    const SENT: u64 = 20_000;
    for i in 0..SENT {
        let env = Envelope::new(
            Channel::Events,
            "s:x",
            "custom.e",
            json!({ "i": i }),
            bus.node(),
        );
        bus.publish_now(env).unwrap();
    }
    // Until the echoes stop: every message is either handled or counted
    // as missed in a `Lagged` marker.
    let (mut handled, mut missed, mut last_total) = (0u64, 0u64, 0u64);
    loop {
        let got = drain(&echoes, Duration::from_millis(1000)).await;
        if got.is_empty() {
            break;
        }
        for echo in got {
            let p = echo.payload();
            if p["kind"] == "Lagged" {
                assert_eq!(p["topic"], "lagged:lagging", "{p}");
                let marker: Value = serde_json::from_str(p["payload"].as_str().unwrap()).unwrap();
                missed += marker["missed"].as_u64().unwrap();
                last_total = marker["total_missed"].as_u64().unwrap();
            } else {
                handled += 1;
            }
        }
    }
    assert!(missed > 0, "an inbox of 8 drops under this flood");
    assert_eq!(
        handled + missed,
        SENT,
        "handled {handled} + missed {missed}"
    );
    assert_eq!(last_total, missed);
    let status = f.status("lagging").await;
    assert_eq!(status["dropped"], missed, "{status}");
    // Health shows them too.
    let url = format!("{}/v1/health", f.admin);
    let health: Value = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    })
    .await
    .unwrap();
    let sub = health["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "lagging")
        .unwrap_or_else(|| panic!("{health}"));
    assert_eq!(sub["dropped"], missed, "{sub}");
    f.host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_report_names_only_its_own_instances_stderr_on_one_line() {
    let f = Fixture::start(&[("EXESDB_RUNTIME__RESTART_BACKOFF_MS", "10")]).await;
    let traces = f.watch(Channel::Diagnostics, "debug_trace:crashy");
    let life = f.watch(Channel::Lifecycle, "process_lifecycle:crashy");
    deploy_guest(f.dir.path(), "crashy", "1.0.0", "trap", "");
    wait_status(&f, "crashy", |s| s["state"] == "running").await;
    let bus = f.host.bus().clone();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = publish(&bus, json!({ "say": "boom" })).await;
        let trace = next_where(&traces, |_| true).await;
        let crashed = next_where(&life, |e| e.payload()["event"] == "crashed").await;
        next_where(&life, |e| e.payload()["event"] == "restarted").await;
        // The full text, with the guest's panic on stderr, is in the trace.
        let full = trace.payload()["stack_trace"].as_str().unwrap().to_owned();
        assert!(full.contains(&format!("boom in message {id}")), "{full}");
        for earlier in &ids {
            assert!(
                !full.contains(earlier),
                "an earlier instance's stderr: {full}"
            );
        }
        // Console-facing texts are one line.
        let reason = crashed.payload()["reason"].as_str().unwrap().to_owned();
        assert!(!reason.contains('\n'), "{reason}");
        // The trace and the lifecycle event point at the message that trapped.
        assert_eq!(trace.causation_id.as_deref(), Some(id.as_str()));
        assert_eq!(crashed.causation_id.as_deref(), Some(id.as_str()));
        ids.push(id);
    }
    let status = f.status("crashy").await;
    assert!(
        !status["last_error"].as_str().unwrap().contains('\n'),
        "{status}"
    );
    let list = f.cli(&["list"]).await;
    assert_eq!(
        list.stdout.lines().count(),
        2,
        "header and one row: {list:#?}"
    );
    f.host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_during_shutdown_are_refused_and_no_worker_outlives_it() {
    let f = Fixture::start(&[]).await;
    let elsewhere = tempfile::tempdir().unwrap();
    for i in 0..6 {
        deploy_guest(elsewhere.path(), &format!("late{i}"), "1.0.0", "echo", "");
    }
    let plugins = Arc::clone(f.host.plugins());
    // Loads keep arriving while the host shuts down.
    let loader = {
        let plugins = Arc::clone(&plugins);
        let dir = elsewhere.path().to_owned();
        tokio::spawn(async move {
            let mut refused = 0;
            for round in 0..200 {
                let name = format!("late{}", round % 6);
                let path = dir.join(format!("{name}.toml"));
                match plugins
                    .reload_file(exesdb_host::runtime::Actor::Operator, &path)
                    .await
                {
                    Err(exesdb_host::runtime::PluginError::ShuttingDown { .. }) => refused += 1,
                    _ => tokio::task::yield_now().await,
                }
            }
            refused
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.host.shutdown().await.unwrap();
    let refused = loader.await.unwrap();
    assert!(refused > 0, "loads after the shutdown began are refused");
    assert!(plugins.list().is_empty(), "{:?}", plugins.list());
    // Every worker thread has ended: their threads are named `plugin-<name>`.
    let threads = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("plugin-late"))
        .count();
    assert_eq!(threads, 0, "plugin worker threads left running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_attempts_are_refused_and_reported_as_violations() {
    let f = Fixture::start(&[]).await;
    let security = f.watch(Channel::Security, "access_violation:netty");
    let echoes = f.watch(Channel::Diagnostics, "echo:netty");
    deploy_guest(f.dir.path(), "netty", "1.0.0", "socket", "");
    wait_status(&f, "netty", |s| s["state"] == "running").await;
    publish(f.host.bus(), json!({})).await;
    let outcome = next_where(&echoes, |e| e.kind == "custom.socket").await;
    assert_eq!(
        outcome.payload()["tcp"],
        "err:PermissionDenied",
        "{}",
        outcome.payload()
    );
    assert_eq!(
        outcome.payload()["udp"],
        "err:PermissionDenied",
        "{}",
        outcome.payload()
    );
    let mut seen = Vec::new();
    for _ in 0..2 {
        let v: AccessViolation = next_where(&security, |_| true).await.decode().unwrap();
        assert_eq!(v.violation_type, "network_denied");
        assert_eq!(v.user_id, "netty");
        seen.push(v.action);
    }
    seen.sort();
    assert_eq!(seen, ["create_tcp_socket", "create_udp_socket"]);
    assert_eq!(f.status("netty").await["violations"], 2);
    f.host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_traceable_to_its_message() {
    let f = Fixture::start(&[]).await;
    let health = f.watch(Channel::Health, "subscription_health:default:failing");
    deploy_guest(f.dir.path(), "failing", "1.0.0", "fail-always", "");
    wait_status(&f, "failing", |s| s["state"] == "running").await;
    let env = Envelope::new(Channel::Events, "s:x", "custom.e", json!({}), "n")
        .with_correlation_id("order-42");
    let id = env.id.to_string();
    f.host.bus().broadcast(env).await.unwrap();
    let failed = next_where(&health, |e| e.payload()["event"] == "delivery_failed").await;
    assert_eq!(failed.causation_id.as_deref(), Some(id.as_str()));
    assert_eq!(failed.correlation_id.as_deref(), Some("order-42"));
    f.host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_announces_its_configuration_and_audits_api_requests() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("host.toml");
    let (token, digest) = exesdb_host::api::auth::new_token();
    std::fs::write(
        &file,
        format!("[[api.tokens]]\nname = \"ci\"\nsha256 = \"{digest}\"\nscopes = [\"admin\"]\n"),
    )
    .unwrap();
    let env = [
        ("EXESDB_API__LISTEN", "127.0.0.1:0"),
        ("EXESDB_PLUGINS__BUNDLED", "false"),
        ("EXESDB_STORES__DATA_DIR", path_str(dir.path())),
        ("EXESDB_RUNTIME__CACHE_DIR", path_str(dir.path())),
        ("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "100"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let config = Config::load_with_env(Some(&file), env).unwrap();
    // Subscribed before the host starts: the SystemConfig comes at start.
    let bus = exesdb_host::bus::Bus::new(config.bus_config());
    let announced = watch(&bus, Channel::System, "system_config:>");
    let audit = watch(&bus, Channel::Audit, "audit:>");
    let node = watch(&bus, Channel::Lifecycle, "node_lifecycle:>");
    let checks = watch(&bus, Channel::Health, "health_check:>");
    let host = Host::start_on(bus.clone(), config).await.unwrap();
    for want in ["starting", "started"] {
        let e = next_where(&node, |_| true).await;
        assert_eq!(e.topic, "node_lifecycle:exesdb@localhost");
        assert_eq!(e.payload()["event"], want, "{}", e.payload());
    }
    // Each health check interval reports the checks it ran.
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        let c = next_where(&checks, |_| true).await;
        assert_eq!(c.payload()["result"], "pass", "{}", c.payload());
        seen.insert(c.payload()["check_name"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["node_figures", "store:default"]
    );
    let cfg = next_where(&announced, |_| true).await;
    assert_eq!(cfg.kind, "SystemConfig");
    let changes = &cfg.payload()["changes"];
    assert_eq!(changes["node"]["name"], "exesdb@localhost", "{changes}");
    assert_eq!(changes["api"]["tokens"], "<redacted>", "{changes}");
    assert!(
        !cfg.payload_text().contains(&digest),
        "no secret leaves the host"
    );

    // A successful API request is an AccessLog on audit.
    let admin = format!("http://{}", host.api_addr().unwrap());
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_exesdb-host"))
            .args(["plugin", "list", "--admin", &admin, "--token", &token])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(run.status.success(), "{run:?}");
    let log: AccessLog = next_where(&audit, |e| e.kind == "AccessLog")
        .await
        .decode()
        .unwrap();
    assert!(log.success, "{log:?}");
    assert_eq!(log.resource_id, "/v1/plugins", "{log:?}");
    // An append is a DataChange, also when made natively.
    host.stores()
        .append(
            "default",
            "orders-1",
            exesdb_host::store::ExpectedVersion::Any,
            vec![exesdb_host::store::NewEvent::json("OrderPlaced", json!({}))],
        )
        .await
        .unwrap();
    let change = next_where(&audit, |e| e.kind == "DataChange").await;
    assert_eq!(change.payload()["resource_id"], "default:orders-1");
    assert_eq!(change.payload()["user_id"], "host");
    host.shutdown().await.unwrap();
    let events: Vec<String> = drain(&node, Duration::from_millis(200))
        .await
        .iter()
        .map(|e| e.payload()["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["stopping", "stopped"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_is_announced_exactly_as_the_store_reads_it_back() {
    use exesdb_host::store::{Direction, ExpectedVersion, NewEvent, Payload};
    let f = Fixture::start(&[]).await;
    let events = f.watch(Channel::Events, "default:mixed");
    let batch = vec![
        NewEvent::json("Json", json!({"n": 1})).with_metadata(Payload::Json(json!({"m": 1}))),
        NewEvent::bytes("JsonBytes", "application/json", br#"{"n":2}"#.to_vec()),
        NewEvent::bytes("Raw", "application/octet-stream", vec![0, 159, 146, 150]),
    ];
    f.host
        .stores()
        .append("default", "mixed", ExpectedVersion::Any, batch)
        .await
        .unwrap();
    let stored = f
        .host
        .stores()
        .get("default")
        .unwrap()
        .read_stream("mixed", 0, 10, Direction::Forward)
        .unwrap();
    assert_eq!(stored.len(), 3);
    for e in &stored {
        let announced = next_where(&events, |_| true).await;
        assert_eq!(announced.kind, e.event_type);
        assert_eq!(
            announced.timestamp, e.created,
            "the announcement carries `created`"
        );
        assert_eq!(
            announced.payload(),
            &serde_json::to_value(e).unwrap(),
            "event {}",
            e.event_number
        );
    }
    f.host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_outbound_destination_shows_its_open_breaker_in_health() {
    let f = Fixture::start(&[("EXESDB_HEALTH_MONITORING__UNHEALTHY_THRESHOLD", "2")]).await;
    let echoes = f.watch(Channel::Diagnostics, "echo:>");
    // A port of 127.0.0.1 that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let grant = "\n[wasi]\nallowed_outbound_hosts = [\"http://127.0.0.1:*\"]\n";
    deploy_guest(f.dir.path(), "caller", "1.0.0", "http", grant);
    wait_status(&f, "caller", |s| s["state"] == "running").await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let health = || {
        let url = format!("{}/v1/health", f.admin);
        tokio::task::spawn_blocking(move || -> Value {
            ureq::get(&url)
                .call()
                .unwrap()
                .body_mut()
                .read_json()
                .unwrap()
        })
    };
    // Two refused connections (the threshold) open the breaker; the third
    // request is stopped by it, never connecting.
    for _ in 0..3 {
        publish(f.host.bus(), json!({ "url": url })).await;
        let report = next_where(&echoes, |e| e.kind == "custom.http").await;
        assert!(
            report.payload()["error"].is_string(),
            "{}",
            report.payload()
        );
    }
    let h = health().await.unwrap();
    let outbound = h["outbound"].as_array().unwrap_or_else(|| panic!("{h}"));
    assert_eq!(outbound.len(), 1, "{h}");
    let o = &outbound[0];
    assert_eq!(o["plugin"], "caller", "{o}");
    assert_eq!(o["destination"], format!("http://127.0.0.1:{port}"), "{o}");
    assert_eq!(o["breaker"], "open", "{o}");
    assert_eq!(
        // `requests` counts every request, the one the breaker stopped too.
        (&o["requests"], &o["failed"], &o["breaker_rejected"]),
        (&json!(3), &json!(2), &json!(1)),
        "{o}"
    );
    assert!(o["last_error"].is_string(), "{o}");
    f.host.shutdown().await.unwrap();
}
