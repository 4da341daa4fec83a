//! The host's `LogSummary`s, end to end: the installed logging stack counts
//! the records of each metrics interval by level and by module, and the
//! host publishes them on `logging` (`log_summary`, `log_summary:<module>`).
//!
//! The test runs alone in a child process ([`ran_alone`]): it installs the
//! process-wide logging stack (console at `warning`, so the test's output
//! stays short).

use std::time::Duration;

use crate::common::*;
use exesdb_host::bus::Channel;
use exesdb_host::config::Config;
use exesdb_host::host::Host;
use exesdb_host::messages::logging::LogSummary;
use exesdb_host::runtime::Actor;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_summarises_each_intervals_log_records_by_level_and_module() {
    if ran_alone(&[]) {
        return;
    }
    const LINES: u64 = 4;
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load_with_env(
        None,
        [
            ("EXESDB_STORES__DATA_DIR", dir.path().to_str().unwrap()),
            ("EXESDB_PLUGINS__BUNDLED", "false"),
            ("EXESDB_API__LISTEN", ""),
            ("EXESDB_RUNTIME__CACHE_DIR", ""),
            ("EXESDB_METRICS__INTERVAL_MS", "100"),
            ("EXESDB_CONSOLE__LEVEL", "warning"),
            ("EXESDB_CONSOLE__COLOR", "never"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    exesdb_host::logging::init(&config.console, &config.node.name);
    let host = Host::start(config).await.unwrap();
    let bus = host.bus().clone();
    let all = watch(&bus, Channel::Logging, "log_summary");
    let noisy = watch(&bus, Channel::Logging, "log_summary:plugin:noisy");

    // Each message makes the plugin write a line to stderr (a warning) and
    // one to stdout (info: below the configured level, not counted).
    let m = manifest("test-guest", "noisy", |t| {
        t["config"]["mode"] = "stderr".into();
    });
    host.plugins()
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    for n in 0..LINES {
        publish_event(&bus, "orders:o", json!({ "n": n })).await;
    }
    wait_delivered(host.plugins(), "noisy", LINES).await;

    // The plugin's module: its warnings, over however many intervals.
    let mut warnings = 0;
    while warnings < LINES {
        let s: LogSummary = next(&noisy).await.decode().unwrap();
        assert_eq!(s.log_counts.get("info"), None, "below the level: {s:?}");
        assert_eq!(s.total_logs, s.log_counts.values().sum::<u64>(), "{s:?}");
        warnings += s.log_counts.get("warning").copied().unwrap_or(0);
    }
    assert_eq!(warnings, LINES);

    // The interval summaries count them too, among everything else.
    let mut total_warnings = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while total_warnings < LINES {
        let s: LogSummary = next(&all).await.decode().unwrap();
        assert!((0.0..=1.0).contains(&s.error_rate), "{s:?}");
        assert!(s.time_period.contains('/'), "{s:?}");
        total_warnings += s.log_counts.get("warning").copied().unwrap_or(0);
        assert!(tokio::time::Instant::now() < deadline);
    }
    // Nothing more from the plugin: its module's summaries stop.
    quiet(&noisy, Duration::from_millis(300)).await;
    host.shutdown().await.unwrap();
}
