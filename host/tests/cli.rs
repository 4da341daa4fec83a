//! The `exesdb-host` binary: `run` until SIGTERM, `config`, `--help`, bad config.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_exesdb-host"));
    c.env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
}

#[test]
fn run_starts_and_stops_cleanly_on_sigterm() {
    let mut child = bin()
        .args(["run"])
        .env("EXESDB_CONSOLE__FORMAT", "json")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let started = v["message"]
            .as_str()
            .unwrap_or("")
            .contains("started on node");
        seen.push(line);
        if started || Instant::now() > deadline {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("started on node exesdb@localhost")),
        "{seen:#?}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}; output {rest:#?}");
    assert!(rest.iter().any(|l| l.contains("stopping")), "{rest:#?}");
    assert!(
        rest.iter().any(|l| l.contains("exesdb_host stopped")),
        "{rest:#?}"
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
