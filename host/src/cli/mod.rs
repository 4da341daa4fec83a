//! The `exesdb-host` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod scaffold;

use crate::config::Config;
use crate::host::Host;
use crate::runtime::World;

mod remote;
mod store;

/// ExESDB's PubSub architecture as a WebAssembly plugin host.
#[derive(Debug, Parser)]
#[command(name = "exesdb-host", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host until Ctrl-C or SIGTERM.
    Run {
        /// A TOML file overriding the embedded default configuration.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (default + file + EXESDB_* environment) as TOML.
    Config {
        /// A TOML file overriding the embedded default configuration.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the embedded default with its comments instead.
        #[arg(long)]
        default: bool,
    },
    /// Manage the plugins of a running host (through its API).
    Plugin {
        /// The running host.
        #[command(flatten)]
        host: Connection,
        /// What to do.
        #[command(subcommand)]
        action: PluginAction,
    },
    /// Publish one message on a channel of the running host.
    Publish {
        /// The channel (`events`, `system`, …, `logging`).
        channel: String,
        /// The topic (`:`-separated).
        topic: String,
        /// The kind: a spec kind of that channel, or `custom.<name>`.
        #[arg(long)]
        kind: String,
        /// The payload as JSON.
        #[arg(long, default_value = "{}")]
        data: String,
        /// The running host.
        #[command(flatten)]
        host: Connection,
    },
    /// Print a channel's live messages (until Ctrl-C).
    Tail {
        /// The channel.
        channel: String,
        /// Topic patterns (`*` one segment, trailing `>` the rest); default `>`.
        patterns: Vec<String>,
        /// Output: the console's line formats, or one JSON envelope per line.
        #[arg(long, value_enum, default_value = "pretty")]
        format: remote::TailFormat,
        /// The running host.
        #[command(flatten)]
        host: Connection,
    },
    /// Acknowledge alerts on the running host.
    Alert {
        /// What to do.
        #[command(subcommand)]
        action: AlertAction,
        /// The running host.
        #[command(flatten)]
        host: Connection,
    },
    /// Make API tokens.
    Token {
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Append, read and list events and manage subscription checkpoints.
    ///
    /// The store is the file `<DATA_DIR>/<ID>.redb`. When no process holds
    /// it, the command works on the file directly. When a running host
    /// holds it (the file is locked), `append`, `read`, `read-all` and
    /// `streams` go through that host's API instead, at `--admin` /
    /// `EXESDB_ADMIN_URL` (default http://127.0.0.1:7077, with `--token` /
    /// `EXESDB_TOKEN` for a host with tokens), and print the same output;
    /// `subscriptions …` works on the file only: stop the host first.
    Store {
        /// The directory holding the stores (`<ID>.redb` files).
        #[arg(
            long,
            global = true,
            value_name = "DIR",
            default_value = ".exesdb/data",
            env = "EXESDB_DATA_DIR"
        )]
        data_dir: PathBuf,
        /// The store.
        #[arg(long, global = true, value_name = "ID", default_value = "default")]
        store: String,
        /// What to do.
        #[command(subcommand)]
        action: store::StoreAction,
        /// The running host that holds the store, if one does.
        #[command(flatten)]
        host: Connection,
    },
    /// List the running host's emitter workers: store, selector,
    /// subscriber, position (the next global position to deliver), lag
    /// (how many positions the store's head is ahead) and whether paused.
    Emitters {
        /// The running host.
        #[command(flatten)]
        host: Connection,
    },
}

/// How a command reaches a running host.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The host's API.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:7077",
        env = "EXESDB_ADMIN_URL"
    )]
    pub admin: String,
    /// A bearer token (see `exesdb-host token new`).
    #[arg(long, global = true, env = "EXESDB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Connection {
    fn remote(&self) -> remote::Remote {
        remote::Remote::new(&self.admin, self.token.clone())
    }
}

/// `exesdb-host alert …`
#[derive(Debug, Subcommand)]
pub enum AlertAction {
    /// Acknowledge an alert: publishes an `AlertAck` (stops its escalation).
    Ack {
        /// The alert's id.
        id: String,
        /// Who acknowledges.
        #[arg(long, default_value = "operator")]
        by: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
}

/// `exesdb-host token …`
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a random token; prints it and the `[[api.tokens]]` entry that
    /// accepts it (the file holds only its SHA-256).
    New {
        /// Whose token it is.
        name: String,
        /// Its scopes: read, publish:CHANNEL, publish:*, append:STORE, append:*, admin.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
}

/// `exesdb-host plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginAction {
    /// List plugins with version, state, uptime, restarts and last error.
    List,
    /// Show one plugin's status as JSON.
    Status {
        /// The plugin.
        name: String,
    },
    /// Load a plugin (or replace it if loaded) from a manifest file.
    Load {
        /// The manifest; the component is found from it.
        manifest: PathBuf,
        /// Send the manifest and the component to the host (which may be on
        /// another machine) instead of their paths.
        #[arg(long)]
        upload: bool,
    },
    /// Reload a plugin from its manifest file (or the one given).
    Reload {
        /// The plugin.
        name: String,
        /// A manifest to reload from instead of the original.
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Unload a plugin.
    Unload {
        /// The plugin.
        name: String,
    },
    /// Create a plugin project (manifest, handler, README) ready to build.
    New {
        /// The plugin's name ([a-z0-9-]).
        name: String,
        /// Its language.
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// Its world: subscriber, alert-escalator or log-formatter.
        #[arg(long, default_value = "subscriber", value_parser = world)]
        world: World,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The contract to build against (default: this host's wit/).
        #[arg(long)]
        wit: Option<PathBuf>,
    },
    /// Build a plugin project into dist/NAME.wasm + dist/NAME.toml.
    Build {
        /// The project.
        dir: PathBuf,
        /// The contract to build against (default: this host's wit/).
        #[arg(long)]
        wit: Option<PathBuf>,
    },
    /// Show a component's world, imports, exports, contract version and size,
    /// and check the manifest beside it.
    Inspect {
        /// The component.
        file: PathBuf,
    },
}

/// `--world NAME`: a world by the name manifests use (`World`'s serde
/// names), checked while the arguments are parsed.
fn world(name: &str) -> Result<World, String> {
    use serde::de::{value::StrDeserializer, IntoDeserializer};
    use serde::Deserialize;
    let text: StrDeserializer<'_, serde::de::value::Error> = name.into_deserializer();
    World::deserialize(text).map_err(|_| {
        format!("unknown world `{name}`: subscriber, alert-escalator or log-formatter")
    })
}

/// Runs the command line; returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config { config, default } => {
            if default {
                print!("{}", crate::config::DEFAULT_TOML);
            } else {
                print!("{}", Config::load(config.as_deref())?.to_toml());
            }
            Ok(())
        }
        Command::Plugin {
            action:
                PluginAction::New {
                    name,
                    lang,
                    world,
                    dir,
                    wit,
                },
            ..
        } => {
            let wit = wit.unwrap_or_else(|| PathBuf::from(crate::artifacts::WIT_DIR));
            let root = scaffold::new(&name, lang, world, &dir, &wit)?;
            println!("created {}", root.display());
            Ok(())
        }
        Command::Plugin {
            action: PluginAction::Build { dir, wit },
            ..
        } => {
            let wit = wit.unwrap_or_else(|| PathBuf::from(crate::artifacts::WIT_DIR));
            println!("built {}", scaffold::build(&dir, &wit)?.display());
            Ok(())
        }
        Command::Plugin {
            action: PluginAction::Inspect { file },
            ..
        } => {
            print!("{}", scaffold::inspect(&file)?);
            Ok(())
        }
        Command::Plugin { host, action } => plugin_command(&host.remote(), action),
        Command::Publish {
            channel,
            topic,
            kind,
            data,
            host,
        } => remote::publish(&host.remote(), &channel, &topic, &kind, &data),
        Command::Tail {
            channel,
            patterns,
            format,
            host,
        } => remote::tail(&host.remote(), &channel, &patterns, format),
        Command::Alert {
            action: AlertAction::Ack { id, by, note },
            host,
        } => remote::ack(&host.remote(), &id, &by, note.as_deref()),
        Command::Token {
            action: TokenAction::New { name, scopes },
        } => {
            for s in &scopes {
                crate::api::Scope::parse(s).map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
            }
            let (token, digest) = crate::api::auth::new_token();
            println!("token: {token}");
            println!();
            println!("# add to the host's config file:");
            println!("[[api.tokens]]");
            println!("name = {:?}", name);
            println!("sha256 = {digest:?}");
            println!("scopes = {:?}", scopes);
            Ok(())
        }
        Command::Store {
            data_dir,
            store,
            action,
            host,
        } => store::run(&data_dir, &store, &host.remote(), action),
        Command::Emitters { host } => remote::emitters(&host.remote()),
        Command::Run { config } => {
            let config = Config::load(config.as_deref())?;
            crate::logging::init(&config.console, &config.node.name);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                // Listening before start-up: a signal during it is not lost.
                let signals = crate::host::Signals::new()?;
                let host = Host::start(config).await?;
                host.run_until(signals).await?;
                anyhow::Ok(())
            })?;
            tracing::info!(class = "failure", "🔴 exesdb_host stopped");
            Ok(())
        }
    }
}

/// Runs `exesdb-host plugin …` against a host's API.
fn plugin_command(remote: &remote::Remote, action: PluginAction) -> anyhow::Result<()> {
    if let PluginAction::Status { name }
    | PluginAction::Reload { name, .. }
    | PluginAction::Unload { name } = &action
    {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            anyhow::bail!("invalid plugin name `{name}`: plugin names are [a-z0-9-]");
        }
    }
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let (method, path, body) = match action {
        PluginAction::List => ("GET", "/v1/plugins".to_owned(), None),
        PluginAction::Status { name } => ("GET", format!("/v1/plugins/{name}"), None),
        PluginAction::Load {
            manifest,
            upload: true,
        } => {
            let text = std::fs::read_to_string(&manifest)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", manifest.display()))?;
            let parsed = crate::runtime::Manifest::parse(&text, &manifest.display().to_string())?;
            let wasm_path = parsed.component_path(&manifest);
            let wasm = std::fs::read(&wasm_path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", wasm_path.display()))?;
            let text = remote.upload("/v1/plugins/upload", &text, &wasm)?;
            let v: serde_json::Value = serde_json::from_str(&text)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        PluginAction::Load { manifest, .. } => (
            "POST",
            "/v1/plugins".to_owned(),
            Some(serde_json::json!({ "manifest": absolute(manifest) })),
        ),
        PluginAction::Reload { name, manifest } => (
            "POST",
            format!("/v1/plugins/{name}/reload"),
            Some(serde_json::json!({ "manifest": manifest.map(absolute) })),
        ),
        PluginAction::Unload { name } => ("DELETE", format!("/v1/plugins/{name}"), None),
        PluginAction::New { .. } | PluginAction::Build { .. } | PluginAction::Inspect { .. } => {
            unreachable!("handled locally")
        }
    };
    let text = remote.call(method, &path, body.as_ref())?;
    if path == "/v1/plugins" && method == "GET" {
        print_table(&text);
    } else if !text.is_empty() {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("ok");
    }
    Ok(())
}

/// The plugin list as a table. A plugin held unloaded shows its state as
/// `unloaded (files still in DIR)`.
fn print_table(json: &str) {
    let rows: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    println!(
        "{:<24} {:<10} {:<16} {:<11} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8}  LAST ERROR",
        "NAME",
        "VERSION",
        "WORLD",
        "STATE",
        "UPTIME",
        "DELIVERED",
        "FAILED",
        "DROPPED",
        "DENIED",
        "RESTARTS"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        let mut state = s("state");
        if state == "unloaded" {
            let source = s("source");
            let dir = std::path::Path::new(&source)
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or(source);
            state = format!("unloaded (files still in {dir})");
        }
        println!(
            "{:<24} {:<10} {:<16} {:<11} {:>7}s {:>10} {:>8} {:>8} {:>8} {:>8}  {}",
            s("name"),
            s("version"),
            s("world"),
            state,
            r["uptime_secs"].as_i64().unwrap_or(0),
            n("delivered"),
            n("failed"),
            n("dropped"),
            n("violations"),
            n("restarts"),
            crate::runtime::one_line(&s("last_error"))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_with_world(world: &str) -> Result<World, String> {
        let cli = Cli::try_parse_from([
            "exesdb-host",
            "plugin",
            "new",
            "x",
            "--lang",
            "rust",
            "--world",
            world,
        ])
        .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Plugin {
                action: PluginAction::New { world, .. },
                ..
            } => Ok(world),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn world_takes_the_manifest_names() {
        for w in [
            World::Subscriber,
            World::AlertEscalator,
            World::LogFormatter,
        ] {
            assert_eq!(new_with_world(w.as_str()), Ok(w));
        }
        let err = new_with_world("listener").unwrap_err();
        assert!(err.contains("unknown world `listener`"), "{err}");
        assert!(err.contains("--world"), "{err}");
        let cli =
            Cli::try_parse_from(["exesdb-host", "plugin", "new", "x", "--lang", "js"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Plugin {
                action: PluginAction::New {
                    world: World::Subscriber,
                    ..
                },
                ..
            }
        ));
    }
}
