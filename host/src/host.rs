//! The host: one bus, its helpers, and everything started from the config.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use exesdb_host::{config::Config, host::Host};
//! let host = Host::start(Config::default()).await.unwrap();
//! assert_eq!(host.bus().node(), "exesdb@localhost");
//! host.shutdown().await.unwrap();
//! # });
//! ```

use crate::bus::{Bus, BusError};
use crate::config::Config;
use crate::integration::Integration;
use crate::messages::system::LifecycleEvent;

/// Name under which the host announces its lifecycle.
pub const SYSTEM_NAME: &str = "exesdb_host";
/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the host could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A bus operation failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Anything else, with context.
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// A running host.
#[derive(Debug)]
pub struct Host {
    config: Config,
    bus: Bus,
    integration: Integration,
}

impl Host {
    /// Starts a host: creates the bus, attaches the log bridge (if logging
    /// is installed), and broadcasts `SystemLifecycle` starting, then started.
    ///
    /// # Errors
    /// [`HostError`] if a start-up step fails.
    pub async fn start(config: Config) -> Result<Host, HostError> {
        let bus = Bus::new(config.bus_config());
        let integration = Integration::new(bus.clone());
        integration
            .broadcast_system_lifecycle(LifecycleEvent::Starting, SYSTEM_NAME, VERSION)
            .await?;
        if let Some(logging) = crate::logging::installed() {
            logging.bridge.attach(&bus);
        }
        integration
            .broadcast_system_lifecycle(LifecycleEvent::Started, SYSTEM_NAME, VERSION)
            .await?;
        tracing::info!(
            class = "success",
            "🟢 {SYSTEM_NAME} {VERSION} started on node {}",
            bus.node()
        );
        Ok(Host {
            config,
            bus,
            integration,
        })
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The `PubSubIntegration` helpers bound to this host's bus.
    pub fn integration(&self) -> &Integration {
        &self.integration
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Broadcasts `SystemLifecycle` stopping, stops everything, then
    /// broadcasts stopped.
    ///
    /// # Errors
    /// [`HostError`] if a shutdown step fails.
    pub async fn shutdown(self) -> Result<(), HostError> {
        self.integration
            .broadcast_system_lifecycle(LifecycleEvent::Stopping, SYSTEM_NAME, VERSION)
            .await?;
        tracing::info!(class = "failure", "🔴 {SYSTEM_NAME} stopping");
        if let Some(logging) = crate::logging::installed() {
            logging.bridge.detach(&self.bus);
        }
        self.integration
            .broadcast_system_lifecycle(LifecycleEvent::Stopped, SYSTEM_NAME, VERSION)
            .await?;
        Ok(())
    }

    /// Runs until Ctrl-C or SIGTERM, then shuts down.
    ///
    /// # Errors
    /// [`HostError`] if the shutdown fails or signals cannot be watched.
    pub async fn run_until_signal(self) -> Result<(), HostError> {
        wait_for_signal().await?;
        tracing::info!("signal received, shutting down");
        self.shutdown().await
    }
}

async fn wait_for_signal() -> Result<(), HostError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(anyhow::Error::from)?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(anyhow::Error::from)?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.map_err(anyhow::Error::from)?;
    Ok(())
}
