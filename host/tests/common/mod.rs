//! Helpers shared by the host's CLI tests: running the `exesdb-host` binary
//! against an in-process host, and waiting for bus messages.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use exesdb_host::bus::Subscriber;
use exesdb_host::messages::Envelope;
use serde_json::Value;

/// How long a test waits for an expected message.
pub const WAIT: Duration = Duration::from_secs(20);

/// What a CLI run printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and parses stdout as JSON.
    pub fn json(&self) -> Value {
        assert!(self.ok, "CLI failed: {self:#?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }

    /// Asserts failure and returns stderr.
    pub fn failure(&self) -> &str {
        assert!(!self.ok, "CLI should have failed: {self:#?}");
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:#?}");
        &self.stderr
    }
}

/// Runs `exesdb-host plugin <args> --admin <admin>` off the async workers,
/// so the in-process host keeps serving.
pub async fn cli(admin: &str, args: &[&str]) -> Run {
    let admin = admin.to_owned();
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_exesdb-host"))
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("EXESDB_ADMIN_URL")
            .arg("plugin")
            .args(&args)
            .arg("--admin")
            .arg(&admin)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The next message on `sub` satisfying `pred`, skipping others.
pub async fn next_where(sub: &Subscriber, pred: impl Fn(&Envelope) -> bool) -> Arc<Envelope> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let env = tokio::time::timeout_at(deadline, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("no matching message for {} within {WAIT:?}", sub.name()))
            .expect("bus open");
        if pred(&env) {
            return env;
        }
    }
}

/// Asserts nothing arrives on `sub` for `d`.
pub async fn quiet(sub: &Subscriber, d: Duration) {
    if let Ok(Some(env)) = tokio::time::timeout(d, sub.recv()).await {
        panic!(
            "unexpected message {} {} {}",
            env.kind,
            env.topic,
            env.payload()
        );
    }
}
