//! Helpers shared by the tests: a bus, a plugin set, manifests of the real
//! built components, waiting for messages, and running a test alone in a
//! process of its own; [`http`] is a tiny HTTP server for outbound requests.

pub mod http;

use std::sync::Arc;
use std::time::Duration;

use exesdb_host::bus::{Bus, BusConfig, Channel, Subscriber};
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Manifest, Plugins, Runtime};

pub use exesdb_tests::wait::{next_where, quiet, WAIT};

/// A bus and an empty plugin set on it.
pub fn setup() -> (Bus, Plugins) {
    let bus = Bus::new(BusConfig::default());
    let plugins = Plugins::new(Runtime::new().unwrap(), bus.clone(), 64);
    (bus, plugins)
}

/// Plugins on `bus` whose runtime caches compiled components in the target
/// directory, so large Python and JavaScript components compile once per build.
pub fn cached_plugins(bus: &Bus) -> Plugins {
    let rc = exesdb_host::config::RuntimeConfig {
        cache_dir: format!("{}/component-cache", env!("CARGO_TARGET_TMPDIR")),
        ..exesdb_host::config::RuntimeConfig::default()
    };
    Plugins::new(Runtime::with_config(&rc).unwrap(), bus.clone(), 64)
}

/// The component bytes of a built plugin (`plugins/<name>`,
/// `plugins/python/<name>` or `plugins/js/<name>`).
pub fn wasm(name: &str) -> Vec<u8> {
    let (_, path, _) = exesdb_tests::guests::all()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("no plugin crate `{name}`"));
    std::fs::read(path).unwrap()
}

/// The manifest of a plugin crate, with `extra` TOML appended (later keys of
/// a table must not repeat earlier ones) and the name replaced by `name`.
pub fn manifest(krate: &str, name: &str, edit: impl FnOnce(&mut toml::Table)) -> Manifest {
    let (_, _, path) = exesdb_tests::guests::all()
        .find(|(n, _, _)| *n == krate)
        .unwrap();
    let mut table: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    table.insert("name".into(), name.into());
    edit(&mut table);
    Manifest::parse(&toml::to_string(&table).unwrap(), &format!("{name}.toml")).unwrap()
}

/// A subscriber on `channel`/`pattern`.
pub fn watch(bus: &Bus, channel: Channel, pattern: &str) -> Subscriber {
    let s = bus
        .subscriber(&format!("watch-{channel}-{pattern}"))
        .unwrap();
    s.subscribe(channel, pattern).unwrap();
    s
}

/// The next message, or a panic after [`WAIT`].
pub async fn next(sub: &Subscriber) -> Arc<Envelope> {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .unwrap_or_else(|_| panic!("no message for {} within {WAIT:?}", sub.name()))
        .expect("bus open")
}

/// Publishes a custom event on `events`.
pub async fn publish_event(bus: &Bus, topic: &str, payload: serde_json::Value) -> Arc<Envelope> {
    let env = Arc::new(Envelope::new(
        Channel::Events,
        topic,
        "custom.event",
        payload,
        bus.node(),
    ));
    bus.broadcast(Arc::clone(&env)).await.unwrap();
    env
}

/// Polls a plugin's status until `pred` holds; panics after [`WAIT`].
pub async fn wait_status(
    plugins: &Plugins,
    name: &str,
    pred: impl Fn(&exesdb_host::runtime::PluginInfo) -> bool,
) -> exesdb_host::runtime::PluginInfo {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = plugins
            .status(name)
            .unwrap_or_else(|| panic!("plugin {name} not loaded"));
        if pred(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never matched: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until plugin `name` has handled at least `n` messages successfully
/// (its `delivered` count), polling; panics after [`WAIT`]. Returns its status.
pub async fn wait_delivered(
    plugins: &Plugins,
    name: &str,
    n: u64,
) -> exesdb_host::runtime::PluginInfo {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = plugins
            .status(name)
            .unwrap_or_else(|| panic!("plugin {name} is not loaded"));
        if info.delivered >= n {
            return info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "plugin {name} handled {} of {n} messages within {WAIT:?}: {info:?}",
            info.delivered
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The variable that names the test a child process of [`ran_alone`] runs
/// (not `EXESDB_*`: the host reads those as its configuration).
const ALONE: &str = "SUITE_RUN_ALONE";

/// For a test that needs process-wide state the other tests of this binary
/// would share — the global `tracing` subscriber (which the host's `logging`
/// bridge follows), an environment variable: runs the calling test again,
/// alone, in a child process of this test binary with `env` set. Returns
/// `true` in the test's own process once the child has passed (the caller
/// returns), `false` in the child (the caller goes on with the test). The
/// calling test is the one of the current thread, which libtest names after
/// it. Panics, showing the child's output, when the child fails or does not
/// run exactly that test.
pub fn ran_alone(env: &[(&str, &str)]) -> bool {
    let thread = std::thread::current();
    let test = thread
        .name()
        .expect("a test thread, which libtest names after its test");
    if std::env::var(ALONE).is_ok_and(|t| t == test) {
        return false;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1"])
        .env(ALONE, test)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Shown with the test's own output (when it fails, or with --nocapture).
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "`{test}` alone in a child process: {}",
        out.status
    );
    true
}
