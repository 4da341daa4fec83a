//! The `exesdb-host` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::host::Host;

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
        Command::Run { config } => {
            let config = Config::load(config.as_deref())?;
            crate::logging::init(&config.console, &config.node.name);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let host = Host::start(config).await?;
                host.run_until_signal().await?;
                anyhow::Ok(())
            })?;
            tracing::info!(class = "failure", "🔴 exesdb_host stopped");
            Ok(())
        }
    }
}
