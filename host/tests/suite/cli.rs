//! The `exesdb-host` binary: `run` until SIGTERM, `config`, `--help`, bad config.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    // Each run gets its own data directory (a store's file is locked by the
    // process that opened it); the directory is left for the OS to clean.
    let data = tempfile::tempdir().unwrap().keep();
    let mut c = Command::new(env!("CARGO_BIN_EXE_exesdb-host"));
    c.env("EXESDB_STORES__DATA_DIR", data);
    c.env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env("EXESDB_API__LISTEN", "127.0.0.1:0");
    c
}

/// Runs the host with `env`, waits for the "started" line, sends SIGTERM;
/// returns (lines up to started, lines after, exit success).
fn run_until_started(env: &[(&str, &str)]) -> (Vec<String>, Vec<String>, bool) {
    let mut child = bin()
        .arg("run")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut before = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.contains("started on node");
        before.push(line);
        if started || Instant::now() > deadline {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let after: Vec<String> = lines.map(Result::unwrap).collect();
    let exit = child.wait().unwrap();
    (before, after, exit.success())
}

#[test]
fn run_loads_the_bundled_plugins_and_stops_cleanly_on_sigterm() {
    let (before, after, ok) = run_until_started(&[("EXESDB_CONSOLE__FORMAT", "json")]);
    assert!(ok, "exit status; output {before:#?} {after:#?}");
    for line in before.iter().chain(&after) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    for plugin in ["health-console", "alert-escalator", "json-log-formatter"] {
        assert!(
            before
                .iter()
                .any(|l| l.contains(&format!("PLUGIN LOADED: {plugin}"))),
            "{before:#?}"
        );
    }
    assert!(
        before
            .last()
            .unwrap()
            .contains("started on node exesdb@localhost"),
        "{before:#?}"
    );
    assert!(after.iter().any(|l| l.contains("stopping")), "{after:#?}");
    assert!(
        after
            .iter()
            .any(|l| l.contains("PLUGIN UNLOADED: health-console")),
        "{after:#?}"
    );
    assert!(
        after.last().unwrap().contains("exesdb_host stopped"),
        "{after:#?}"
    );
}

/// Stopping the host unloads the plugins of its plugins directory without
/// the operator's "stays unloaded until they change" (that is for an
/// operator's unload; the next start loads them again).
#[test]
fn stopping_the_host_does_not_hold_its_directory_plugins_unloaded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        exesdb_host::artifacts::TEST_GUEST_WASM,
        dir.path().join("guest.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("guest.toml"),
        crate::common::guest_manifest("guest", "1.0.0", "noop", "t", ""),
    )
    .unwrap();
    let plugins = dir.path().to_str().unwrap();
    let (before, after, ok) = run_until_started(&[("EXESDB_PLUGINS__DIR", plugins)]);
    assert!(ok, "exit status; output {before:#?} {after:#?}");
    assert!(
        before.iter().any(|l| l.contains("PLUGIN LOADED: guest")),
        "{before:#?}"
    );
    let unloaded: Vec<_> = after
        .iter()
        .filter(|l| l.contains("PLUGIN UNLOADED: guest"))
        .collect();
    assert_eq!(unloaded.len(), 1, "{after:#?}");
    assert!(!unloaded[0].contains("stays unloaded"), "{}", unloaded[0]);
}

#[test]
fn console_lines_can_come_from_a_formatter_plugin() {
    let (before, after, ok) =
        run_until_started(&[("EXESDB_CONSOLE__FORMAT", "plugin:json-log-formatter")]);
    assert!(ok);
    // Once the formatter is loaded, lines are its JSON (key order: timestamp first).
    let started = before.last().unwrap();
    assert!(started.starts_with("{\"timestamp\":"), "{started}");
    let v: serde_json::Value = serde_json::from_str(started).unwrap();
    assert_eq!(v["level"], "info");
    assert_eq!(v["node"], "exesdb@localhost");
    assert!(
        after
            .iter()
            .any(|l| l.starts_with("{\"timestamp\":") && l.contains("stopping")),
        "{after:#?}"
    );
}

#[test]
fn config_prints_the_effective_configuration() {
    let out = bin()
        .args(["config"])
        .env("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "1234")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let v: toml::Table = text.parse().unwrap();
    assert_eq!(
        v["health_monitoring"]["check_interval"].as_integer(),
        Some(1234)
    );
    assert_eq!(
        v["health_monitoring"]["unhealthy_threshold"].as_integer(),
        Some(3)
    );
}

#[test]
fn bad_config_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.toml");
    std::fs::write(&path, "[bus]\ninbox_capacity = \"lots\"\n").unwrap();
    let out = bin().args(["run", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("bus.inbox_capacity") && err.contains("host.toml"),
        "{err}"
    );
}

#[test]
fn help_lists_the_commands() {
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["run", "config"] {
        assert!(text.contains(cmd), "{text}");
    }
}
