//! Helpers shared by the host's tests: running the `exesdb-host` binary
//! against an in-process host, a quiet test host's environment and API
//! tokens, the test guest's manifest, and waiting for bus messages and
//! WebSocket frames; [`browser`] drives a headless Chromium.

pub mod browser;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use exesdb_host::bus::{Bus, Channel, Subscriber, SubscriberOptions};
use exesdb_host::messages::Envelope;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as Ws;

pub use exesdb_tests::wait::{next_where, quiet, WAIT};

// ---- the CLI ------------------------------------------------------------------

/// What a CLI run printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
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

/// Runs the `exesdb-host` binary with `args` and `env` off the async
/// workers (so an in-process host keeps serving), without colours, with an
/// empty stdin and none of the test's own `RUST_LOG`, `EXESDB_ADMIN_URL`,
/// `EXESDB_TOKEN` and `EXESDB_DATA_DIR`.
pub async fn exe(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_exesdb-host"))
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("EXESDB_ADMIN_URL")
            .env_remove("EXESDB_TOKEN")
            .env_remove("EXESDB_DATA_DIR")
            .args(&args)
            .envs(env)
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs `exesdb-host plugin <args> --admin <admin>`.
pub async fn cli(admin: &str, args: &[&str]) -> Run {
    let mut all = vec!["plugin"];
    all.extend_from_slice(args);
    all.extend(["--admin", admin]);
    exe(&all, &[]).await
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- a test host ------------------------------------------------------------------

/// The environment of a quiet test host (no bundled plugins, no watcher, no
/// periodic reporters, no instance pooling, its cache and store directories
/// in `dir`, the API on a free loopback port), with `extra` overriding.
pub fn host_env(dir: &Path, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let in_dir = |d: &str| dir.join(d).display().to_string();
    let mut env: BTreeMap<String, String> = [
        ("EXESDB_API__LISTEN", "127.0.0.1:0".to_owned()),
        ("EXESDB_PLUGINS__BUNDLED", "false".to_owned()),
        ("EXESDB_PLUGINS__WATCH", "false".to_owned()),
        ("EXESDB_HEALTH_MONITORING__ENABLED", "false".to_owned()),
        ("EXESDB_METRICS__ENABLED", "false".to_owned()),
        ("EXESDB_RUNTIME__POOLING", "false".to_owned()),
        ("EXESDB_RUNTIME__CACHE_DIR", in_dir("cache")),
        ("EXESDB_STORES__DATA_DIR", in_dir("data")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// One `[[api.tokens]]` entry per `(name, scopes)`, each with a new token:
/// the config TOML (which holds only the tokens' digests) and the tokens by
/// name.
pub fn api_tokens(tokens: &[(&str, &[&str])]) -> (String, BTreeMap<String, String>) {
    let mut toml = String::new();
    let mut made = BTreeMap::new();
    for (name, scopes) in tokens {
        let (token, sha) = exesdb_host::api::auth::new_token();
        toml.push_str(&format!(
            "[[api.tokens]]\nname = {name:?}\nsha256 = {sha:?}\nscopes = {scopes:?}\n\n"
        ));
        made.insert((*name).to_owned(), token);
    }
    (toml, made)
}

/// The test guest's manifest as plugin `name` at `version`, in `mode`,
/// echoing with `tag`, with `extra` TOML at the end of its `[config]`: the
/// world, subscription and publish grant of its own manifest
/// (`plugins/test-guest/plugin.toml`).
pub fn guest_manifest(name: &str, version: &str, mode: &str, tag: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"
version = "{version}"
world = "subscriber"

[[subscribe]]
channel = "events"
pattern = ">"

[[publish]]
channel = "diagnostics"
pattern = "echo:>"

[config]
mode = "{mode}"
tag = "{tag}"
{extra}"#
    )
}

/// A blocking HTTP client that answers every status (an error status is
/// not an `Err`) and gives up after [`WAIT`].
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into()
}

// ---- waiting ------------------------------------------------------------------------

/// A native subscriber on `channel`/`pattern` of `bus` whose inbox holds
/// everything a test makes.
pub fn watch(bus: &Bus, channel: Channel, pattern: &str) -> Subscriber {
    let sub = bus
        .subscriber_with(
            &format!("test-watch-{channel}-{pattern}"),
            SubscriberOptions {
                capacity: Some(1_000_000),
                policy: None,
            },
        )
        .unwrap();
    sub.subscribe(channel, pattern).unwrap();
    sub
}

/// Everything `sub` receives within `d`.
pub async fn drain(sub: &Subscriber, d: Duration) -> Vec<Arc<Envelope>> {
    let deadline = tokio::time::Instant::now() + d;
    let mut got = Vec::new();
    while let Ok(Some(env)) = tokio::time::timeout_at(deadline, sub.recv()).await {
        got.push(env);
    }
    got
}

/// A WebSocket client's connection.
pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame as JSON, within [`WAIT`] (pings and pongs skipped).
pub async fn ws_json(ws: &mut WsStream) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .unwrap();
        match frame {
            Ws::Text(t) => return serde_json::from_str(&t).unwrap(),
            Ws::Ping(_) | Ws::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

// ---- Server-Sent Events ---------------------------------------------------------

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    /// Its `event:`, `message` when it has none.
    pub event: String,
    pub id: Option<String>,
    /// Its `data:` lines, joined by `\n`.
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }

    /// The `id:` as a number.
    pub fn position(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("a numeric id: {self:#?}"))
    }
}

/// Assembles Server-Sent Events from the lines of a stream's body.
#[derive(Debug, Default)]
pub struct SseParser {
    event: SseEvent,
    any: bool,
}

impl SseParser {
    /// Takes the next line (without its line break); returns the event that
    /// a blank line ends.
    pub fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if !std::mem::take(&mut self.any) {
                return None;
            }
            let mut event = std::mem::take(&mut self.event);
            if event.event.is_empty() {
                event.event = "message".into();
            }
            return Some(event);
        }
        if line.starts_with(':') {
            return None; // a keep-alive comment
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        self.any = true;
        let ev = &mut self.event;
        match field {
            "event" => ev.event = value.to_owned(),
            "id" => ev.id = Some(value.to_owned()),
            "data" => {
                if !ev.data.is_empty() {
                    ev.data.push('\n');
                }
                ev.data.push_str(value);
            }
            _ => {}
        }
        None
    }
}

/// Takes the first whole line (`\n` or `\r\n`) out of `buf`, without its
/// line break.
pub fn take_line(buf: &mut Vec<u8>) -> Option<String> {
    let i = buf.iter().position(|b| *b == b'\n')?;
    let mut line: Vec<u8> = buf.drain(..=i).collect();
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Some(String::from_utf8(line).unwrap())
}
