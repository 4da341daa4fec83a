//! `exesdb-host plugin new|build|inspect`: start, build and check plugin
//! projects in Rust, Python or JavaScript.
//!
//! Projects read the contract from this host's `wit/` (its absolute path is
//! written into the project; `--wit DIR` overrides it): nothing copies it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::runtime::manifest::Limits;
use crate::runtime::{Manifest, World};

/// A plugin project's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen, built for wasm32-wasip2.
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
}

fn manifest_text(name: &str, world: World) -> String {
    let mut m = format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\nworld = \"{world}\"\ndescription = \"A new {world} plugin.\"\n"
    );
    match world {
        World::Subscriber => m.push_str(
            "\n[[subscribe]]\nchannel = \"events\"\npattern = \">\"\n\n[[publish]]\nchannel = \"diagnostics\"\npattern = \"seen:>\"\n",
        ),
        World::AlertEscalator => m.push_str("\n[[subscribe]]\nchannel = \"alerts\"\npattern = \">\"\n"),
        World::LogFormatter => {}
    }
    // The parser's defaults, written out so that the knobs are visible; they
    // suit Rust, Python and JavaScript plugins alike.
    let limits = Limits::default();
    m.push_str(&format!(
        "\n# Every key, with its default: docs/manifest.md in the exesdb-host repository.\n\
         [limits]\n\
         memory_mb = {memory}             # default {memory}; growing past it traps\n\
         call_timeout_ms = {timeout}     # default {timeout}; a longer call traps\n\n[config]\n",
        memory = limits.memory_mb,
        timeout = limits.call_timeout_ms,
    ));
    m
}

fn rust_source(world: World) -> &'static str {
    match world {
        World::Subscriber => {
            r##"//! A subscriber: publishes `custom.seen` on `diagnostics`/`seen:<name>` for every message.
wit_bindgen::generate!({ world: "subscriber", path: WIT, generate_all });
use exesdb::plugin::host;
use exesdb::plugin::types::{Channel, Error, LogLevel, Message};
use exports::exesdb::plugin::handler::{BatchFailure, Guest};

struct Plugin;

impl Guest for Plugin {
    fn init(_config: String) -> Result<(), Error> {
        host::log(LogLevel::Info, "started");
        Ok(())
    }
    fn on_message(m: Message) -> Result<(), Error> {
        let payload = format!(r#"{{"id":"{}","topic":"{}","kind":"{}"}}"#, m.id, m.topic, m.kind);
        host::publish(Channel::Diagnostics, &format!("seen:{}", host::plugin_name()), "custom.seen", &payload, None)?;
        Ok(())
    }
    fn on_batch(ms: Vec<Message>) -> Vec<BatchFailure> {
        ms.into_iter()
            .enumerate()
            .filter_map(|(i, m)| Self::on_message(m).err().map(|error| BatchFailure { index: i as u32, error }))
            .collect()
    }
    fn shutdown() {}
}
export!(Plugin);
"##
        }
        World::AlertEscalator => {
            r##"//! An alert escalator: escalates every alert that requires an ack to level1.
wit_bindgen::generate!({ world: "alert-escalator", path: WIT, generate_all });
use exesdb::plugin::types::{Error, Message};
use exports::exesdb::plugin::escalator::{Escalation, Guest, Level};

struct Plugin;

impl Guest for Plugin {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }
    fn on_alert(m: Message) -> Result<Vec<Escalation>, Error> {
        if m.kind != "SystemAlert" || !m.payload.contains(r#""requires_ack":true"#) {
            return Ok(vec![]);
        }
        let id = m.payload.split(r#""alert_id":""#).nth(1).and_then(|s| s.split('"').next()).unwrap_or("");
        Ok(vec![Escalation { alert_id: id.into(), from_level: None, to_level: Level::Level1, reason: "new alert".into(), notify_contacts: vec![] }])
    }
    fn tick(_now_ms: u64) -> Result<Vec<Escalation>, Error> {
        Ok(vec![])
    }
    fn shutdown() {}
}
export!(Plugin);
"##
        }
        World::LogFormatter => {
            r##"//! A log formatter: `[level] message`.
wit_bindgen::generate!({ world: "log-formatter", path: WIT });
use exesdb::plugin::types::{Error, LogEntry};
use exports::exesdb::plugin::formatter::Guest;

struct Plugin;

impl Guest for Plugin {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }
    fn format(e: LogEntry) -> String {
        format!("[{:?}] {}", e.level, e.message)
    }
    fn format_batch(es: Vec<LogEntry>) -> Vec<String> {
        es.into_iter().map(Self::format).collect()
    }
}
export!(Plugin);
"##
        }
    }
}

fn python_source(world: World) -> &'static str {
    match world {
        World::Subscriber => {
            r##""""A subscriber: publishes `custom.seen` on `diagnostics`/`seen:<name>` for every message."""
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.handler import BatchFailure
from wit_world.imports import host, exesdb_plugin_types as types


class Handler(exports.Handler):
    def init(self, config: str) -> None:
        host.log(types.LogLevel.INFO, "started")

    def on_message(self, m: types.Message) -> None:
        payload = json.dumps({"id": m.id, "topic": m.topic, "kind": m.kind})
        host.publish(types.Channel.DIAGNOSTICS, f"seen:{host.plugin_name()}", "custom.seen", payload, None)

    def on_batch(self, messages):
        failures = []
        for i, m in enumerate(messages):
            try:
                self.on_message(m)
            except Err as e:
                failures.append(BatchFailure(index=i, error=e.value))
        return failures

    def shutdown(self) -> None:
        pass
"##
        }
        World::AlertEscalator => {
            r##""""An alert escalator: escalates every alert that requires an ack to level1."""
import json

from wit_world import exports
from wit_world.exports.escalator import Escalation, Level


class Escalator(exports.Escalator):
    def init(self, config: str) -> None:
        pass

    def on_alert(self, m):
        if m.kind != "SystemAlert":
            return []
        alert = json.loads(m.payload)
        if not alert.get("requires_ack"):
            return []
        return [Escalation(alert_id=alert["alert_id"], from_level=None, to_level=Level.LEVEL1, reason="new alert", notify_contacts=[])]

    def tick(self, now_ms: int):
        return []

    def shutdown(self) -> None:
        pass
"##
        }
        World::LogFormatter => {
            r##""""A log formatter: `[level] message`."""
from wit_world import exports


class Formatter(exports.Formatter):
    def init(self, config: str) -> None:
        pass

    def format(self, entry) -> str:
        return f"[{entry.level.name.lower()}] {entry.message}"

    def format_batch(self, entries):
        return [self.format(e) for e in entries]
"##
        }
    }
}

fn js_source(world: World) -> &'static str {
    match world {
        World::Subscriber => {
            r##"// A subscriber: publishes `custom.seen` on `diagnostics`/`seen:<name>` for every message.
import { log, pluginName, publish } from "exesdb:plugin/host@0.2.0";

function onMessage(m) {
  const payload = JSON.stringify({ id: m.id, topic: m.topic, kind: m.kind });
  publish("diagnostics", `seen:${pluginName()}`, "custom.seen", payload, undefined);
}

export const handler = {
  init(config) {
    log("info", "started");
  },
  onMessage,
  onBatch(messages) {
    const failures = [];
    messages.forEach((m, index) => {
      try {
        onMessage(m);
      } catch (error) {
        failures.push({ index, error: error && error.tag ? error : { tag: "failed", val: String(error) } });
      }
    });
    return failures;
  },
  shutdown() {},
};
"##
        }
        World::AlertEscalator => {
            r##"// An alert escalator: escalates every alert that requires an ack to level1.
export const escalator = {
  init(config) {},
  onAlert(m) {
    if (m.kind !== "SystemAlert") return [];
    const alert = JSON.parse(m.payload);
    if (!alert.requires_ack) return [];
    return [{ alertId: alert.alert_id, fromLevel: undefined, toLevel: "level1", reason: "new alert", notifyContacts: [] }];
  },
  tick(nowMs) {
    return [];
  },
  shutdown() {},
};
"##
        }
        World::LogFormatter => {
            r##"// A log formatter: `[level] message`.
export const formatter = {
  init(config) {},
  format(entry) {
    return `[${entry.level}] ${entry.message}`;
  },
  formatBatch(entries) {
    return entries.map((e) => `[${e.level}] ${e.message}`);
  },
};
"##
        }
    }
}

/// `plugin new`: creates `<dir>/<name>/` ready to build.
pub fn new(
    name: &str,
    lang: Lang,
    world: World,
    dir: &Path,
    wit: &Path,
) -> anyhow::Result<PathBuf> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!("invalid plugin name `{name}`: use [a-z0-9-]");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let write = |rel: &str, text: &str| -> anyhow::Result<()> {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("plugin.toml", &manifest_text(name, world))?;
    let wit_literal = format!("{:?}", wit.display().to_string());
    match lang {
        Lang::Rust => {
            write(
                "Cargo.toml",
                &format!(
                    "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n\
                     [dependencies]\nwit-bindgen = \"0.63\"\n\n[profile.release]\nopt-level = \"s\"\n\
                     # Strip only the DWARF debug info and keep the name section, so that a\n\
                     # trap names the guest function instead of `<wasm function N>`.\n\
                     strip = \"debuginfo\"\n\n\
                     # Its own workspace: never part of an enclosing one.\n[workspace]\n"
                ),
            )?;
            let src = rust_source(world).replacen("path: WIT", &format!("path: {wit_literal}"), 1);
            write("src/lib.rs", &src)?;
        }
        Lang::Python => write("app.py", python_source(world))?,
        Lang::Js => write("app.js", js_source(world))?,
    }
    write(
        "README.md",
        &format!(
            "# {name}\n\nA {world} plugin for exesdb-host ({lang:?}).\n\n\
             Build: `exesdb-host plugin build .` → `dist/{name}.wasm` + `dist/{name}.toml`.\n\
             Check: `exesdb-host plugin inspect dist/{name}.wasm`.\n\
             Run: copy both files into the host's `[plugins] dir`, or `exesdb-host plugin load dist/{name}.toml`.\n\
             The contract is read from {wit_literal} (`--wit` to change it).\n"
        ),
    )?;
    Ok(root)
}

/// `plugin build`: builds a project into `dist/<name>.wasm` + `dist/<name>.toml`.
pub fn build(dir: &Path, wit: &Path) -> anyhow::Result<PathBuf> {
    let manifest_path = dir.join("plugin.toml");
    let manifest = Manifest::from_file(&manifest_path)?;
    let dist = dir.join("dist");
    std::fs::create_dir_all(&dist)?;
    let out = dist.join(format!("{}.wasm", manifest.name));
    let run = |cmd: &mut Command, what: &str| -> anyhow::Result<()> {
        let status = cmd.status().with_context(|| format!("cannot run {what}"))?;
        if !status.success() {
            bail!("{what} failed for {}", dir.display());
        }
        Ok(())
    };
    if dir.join("Cargo.toml").exists() {
        let target = dir.join("target");
        run(
            Command::new("cargo")
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                    "--manifest-path",
                ])
                .arg(dir.join("Cargo.toml"))
                .arg("--target-dir")
                .arg(&target),
            "cargo build (add the target with `rustup target add wasm32-wasip2` if it is missing)",
        )?;
        let built = target
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", manifest.name.replace('-', "_")));
        std::fs::copy(&built, &out)
            .with_context(|| format!("no component at {}", built.display()))?;
    } else if dir.join("app.py").exists() {
        let tool = tool("EXESDB_COMPONENTIZE_PY", "componentize-py");
        run(
            Command::new(tool)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .arg("-d")
                .arg(wit)
                .args(["-w", manifest.world.as_str(), "componentize", "app", "-p"])
                .arg(dir)
                .arg("-o")
                .arg(&out),
            "componentize-py",
        )?;
    } else if dir.join("app.js").exists() {
        let tool = tool("EXESDB_COMPONENTIZE_JS", "componentize-js");
        run(
            Command::new(tool)
                .arg(dir.join("app.js"))
                .arg("--wit")
                .arg(wit)
                .args(["-n", manifest.world.as_str(), "-d"])
                // StarlingMonkey's `http` feature is `fetch`: kept for a
                // plugin granted outbound hosts, left out otherwise (a
                // smaller component; `fetch` then traps).
                .args(if manifest.wasi.allowed_outbound_hosts.is_empty() {
                    &["http", "fetch-event"][..]
                } else {
                    &["fetch-event"][..]
                })
                .arg("-o")
                .arg(&out),
            "componentize-js",
        )?;
    } else {
        bail!("{} has no Cargo.toml, app.py or app.js", dir.display());
    }
    std::fs::copy(&manifest_path, dist.join(format!("{}.toml", manifest.name)))?;
    Ok(out)
}

/// The toolchain named by the environment variable `var` when it is set and
/// not empty, else `name` as found on `PATH`.
fn tool(var: &str, name: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(name),
    }
}

/// `plugin inspect`: the component's world, imports, exports, contract
/// version and size, and the manifest beside it checked against it.
pub fn inspect(file: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let engine = wasmtime::Engine::new(wasmtime::Config::new().wasm_component_model(true))
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let component = wasmtime::component::Component::from_binary(&engine, &bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a valid component: {e:#}", file.display()))?;
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(&engine).map(|(n, _)| n.to_owned()).collect();
    let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_owned()).collect();
    let detected = crate::runtime::Contract::detect(exports.iter().map(String::as_str));
    let world = detected.map(|(w, _)| w);
    let version = detected.map(|(_, c)| c.version().to_owned()).or_else(|| {
        exports.iter().chain(&imports).find_map(|n| {
            n.strip_prefix("exesdb:plugin/")
                .and_then(|r| r.split_once('@'))
                .map(|(_, v)| v.to_owned())
        })
    });
    let mut out = format!(
        "component: {}\nsize: {} bytes\n",
        file.display(),
        bytes.len()
    );
    out += &format!(
        "world: {}\n",
        world.map_or("none (exports no exesdb:plugin world)".to_owned(), |w| w
            .to_string())
    );
    out += &format!(
        "contract: exesdb:plugin@{}\n",
        version.as_deref().unwrap_or("?")
    );
    out += &format!(
        "exports: {}\nimports: {}\n",
        exports.join(", "),
        imports.join(", ")
    );
    let manifest_path = file.with_extension("toml");
    if manifest_path.exists() {
        let m = Manifest::from_file(&manifest_path)?;
        match world {
            Some(w) if w == m.world => {
                out += &format!(
                    "manifest: {} ok ({} {} {})\n",
                    manifest_path.display(),
                    m.name,
                    m.version,
                    m.world
                )
            }
            _ => bail!(
                "manifest {} declares world `{}` but the component implements {}",
                manifest_path.display(),
                m.world,
                world.map_or("no exesdb:plugin world".to_owned(), |w| format!("`{w}`"))
            ),
        }
    } else {
        out += &format!(
            "manifest: none beside it (expected {})\n",
            manifest_path.display()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bus::{Bus, BusConfig, Channel};
    use crate::messages::diagnostics::DebugTrace;
    use crate::messages::Envelope;
    use crate::runtime::{Plugins, Runtime};

    const LANGS: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];
    const WORLDS: [World; 3] = [
        World::Subscriber,
        World::AlertEscalator,
        World::LogFormatter,
    ];

    #[test]
    fn generated_manifests_ask_for_the_documented_default_limits() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits::default();
        for lang in LANGS {
            for world in WORLDS {
                let name = format!("p-{}-{world}", format!("{lang:?}").to_lowercase());
                let root = new(&name, lang, world, dir.path(), Path::new("/wit")).unwrap();
                let path = root.join("plugin.toml");
                let m = Manifest::from_file(&path).unwrap();
                assert_eq!((m.name.as_str(), m.world), (name.as_str(), world));
                assert_eq!(m.limits, limits, "{name}: the parser's defaults");
                let text = std::fs::read_to_string(&path).unwrap();
                for (key, value) in [
                    ("memory_mb", limits.memory_mb),
                    ("call_timeout_ms", limits.call_timeout_ms),
                ] {
                    let line = text
                        .lines()
                        .find(|l| l.starts_with(key))
                        .unwrap_or_else(|| panic!("{name}: no {key}"));
                    assert!(
                        line.contains(&format!("= {value} "))
                            && line.contains(&format!("# default {value};")),
                        "{name}: {line}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_rust_project_strips_only_debug_info() {
        let dir = tempfile::tempdir().unwrap();
        let root = new(
            "p",
            Lang::Rust,
            World::Subscriber,
            dir.path(),
            Path::new("/wit"),
        )
        .unwrap();
        let cargo: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let strip = cargo["profile"]["release"].get("strip");
        assert!(
            matches!(strip, None | Some(toml::Value::Boolean(false)))
                || strip
                    .and_then(toml::Value::as_str)
                    .is_some_and(|s| s == "debuginfo" || s == "none"),
            "strip = {strip:?} removes the name section"
        );
    }

    /// A trap in a built project names the guest function that trapped: the
    /// release profile keeps the component's name section.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trap_in_a_built_rust_project_names_the_guest_function() {
        let dir = tempfile::tempdir().unwrap();
        let wit = Path::new(crate::artifacts::WIT_DIR);
        let root = new("trapper", Lang::Rust, World::Subscriber, dir.path(), wit).unwrap();
        let lib = root.join("src/lib.rs");
        let handler = "fn on_message(m: Message) -> Result<(), Error> {";
        let src = std::fs::read_to_string(&lib).unwrap();
        assert!(src.contains(handler));
        let src = src.replacen(
            handler,
            &format!("{handler}\n        if m.topic == \"s:boom\" {{ panic!(\"boom\") }}"),
            1,
        );
        std::fs::write(&lib, src).unwrap();
        let wasm = tokio::task::spawn_blocking(move || build(&root, wit))
            .await
            .unwrap()
            .unwrap();

        let bus = Bus::new(BusConfig::default());
        let plugins = Plugins::new(Runtime::new().unwrap(), bus.clone(), 16);
        let traces = bus.subscriber("traces").unwrap();
        traces
            .subscribe(Channel::Diagnostics, "debug_trace:trapper")
            .unwrap();
        let manifest = Manifest::from_file(&wasm.with_extension("toml")).unwrap();
        plugins
            .load(
                crate::runtime::Actor::Operator,
                manifest,
                &std::fs::read(&wasm).unwrap(),
            )
            .unwrap();
        let boom = Envelope::new(
            Channel::Events,
            "s:boom",
            "custom.e",
            serde_json::json!({}),
            bus.node(),
        );
        bus.broadcast(boom).await.unwrap();
        let env = tokio::time::timeout(Duration::from_secs(30), traces.recv())
            .await
            .expect("a DebugTrace for the trap")
            .unwrap();
        let trace: DebugTrace = env.decode().unwrap();
        let stack = trace.stack_trace.unwrap_or_default();
        assert!(
            stack.contains("on_message") && !stack.contains("<wasm function"),
            "the trap does not name the guest's functions:\n{stack}"
        );
    }
}
