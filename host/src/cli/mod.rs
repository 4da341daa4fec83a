//! The `exesdb-host` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod scaffold;

use crate::config::Config;
use crate::host::Host;

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
    /// Manage the plugins of a running host (through its admin API).
    Plugin {
        /// The host's admin API.
        #[arg(
            long,
            global = true,
            default_value = "http://127.0.0.1:7077",
            env = "EXESDB_ADMIN_URL"
        )]
        admin: String,
        /// What to do.
        #[command(subcommand)]
        action: PluginAction,
    },
    /// Append, read and list events and manage subscription checkpoints,
    /// directly on a store's data directory.
    ///
    /// Use these when the host is not running: a running host holds the
    /// store's lock, and the command then fails with a "locked" error naming
    /// the store (stop the host and retry).
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
        /// Its world.
        #[arg(long, default_value = "subscriber")]
        world: String,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The contract to build against (default: this host's wit/).
        #[arg(long)]
        wit: Option<PathBuf>,
    },
    /// Build a plugin project into dist/<name>.wasm + dist/<name>.toml.
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
            let world: crate::runtime::World =
                toml::Value::String(world.clone()).try_into().map_err(|_| {
                    anyhow::anyhow!(
                        "unknown world `{world}`: subscriber, alert-escalator or log-formatter"
                    )
                })?;
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
        Command::Plugin { admin, action } => plugin_command(&admin, action),
        Command::Store {
            data_dir,
            store,
            action,
        } => store::run(&data_dir, &store, action),
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

/// Runs `exesdb-host plugin …` against a host's admin API.
fn plugin_command(admin: &str, action: PluginAction) -> anyhow::Result<()> {
    let base = admin.trim_end_matches('/');
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
    let (method, url, body) = match action {
        PluginAction::List => ("GET", format!("{base}/plugins"), None),
        PluginAction::Status { name } => ("GET", format!("{base}/plugins/{name}"), None),
        PluginAction::Load { manifest } => (
            "POST",
            format!("{base}/plugins"),
            Some(serde_json::json!({ "manifest": absolute(manifest) })),
        ),
        PluginAction::Reload { name, manifest } => (
            "POST",
            format!("{base}/plugins/{name}/reload"),
            Some(serde_json::json!({ "manifest": manifest.map(absolute) })),
        ),
        PluginAction::Unload { name } => ("DELETE", format!("{base}/plugins/{name}"), None),
        PluginAction::New { .. } | PluginAction::Build { .. } | PluginAction::Inspect { .. } => {
            unreachable!("handled locally")
        }
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = match (method, body) {
        ("GET", _) => agent.get(&url).call(),
        ("DELETE", _) => agent.delete(&url).call(),
        (_, Some(body)) => agent.post(&url).send_json(body),
        (_, None) => agent.post(&url).send_empty(),
    }
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the admin API at {base}: {e} (is the host running? see [admin] listen)"
        )
    })?;
    let status = response.status();
    let text = response.into_body().read_to_string().unwrap_or_default();
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| format!("the admin API answered HTTP {status} {text}"));
        anyhow::bail!("{message}");
    }
    if url.ends_with("/plugins") && method == "GET" {
        print_table(&text);
    } else if !text.is_empty() {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("ok");
    }
    Ok(())
}

/// The plugin list as a table.
fn print_table(json: &str) {
    let rows: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    println!(
        "{:<24} {:<10} {:<16} {:<11} {:>8} {:>10} {:>8} {:>8}  LAST ERROR",
        "NAME", "VERSION", "WORLD", "STATE", "UPTIME", "DELIVERED", "FAILED", "RESTARTS"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        println!(
            "{:<24} {:<10} {:<16} {:<11} {:>7}s {:>10} {:>8} {:>8}  {}",
            s("name"),
            s("version"),
            s("world"),
            s("state"),
            r["uptime_secs"].as_i64().unwrap_or(0),
            n("delivered"),
            n("failed"),
            n("restarts"),
            s("last_error")
        );
    }
}
