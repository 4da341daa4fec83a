//! The host: one bus, its helpers, and everything started from the config.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use exesdb_host::{config::Config, host::Host};
//! let mut config = Config::default();
//! config.admin.listen = "127.0.0.1:0".into(); // any free port
//! let host = Host::start(config).await.unwrap();
//! assert_eq!(host.bus().node(), "exesdb@localhost");
//! host.shutdown().await.unwrap();
//! # });
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::bus::{Bus, BusError};
use crate::config::{Config, ConsoleFormat};
use crate::emitter::{Emitters, Start, Stores, SubscriptionSpec, Target};
use crate::health::{HealthTracker, Reporter};
use crate::integration::Integration;
use crate::logging::format;
use crate::messages::alerts::{AlertCategory, Severity};
use crate::messages::system::LifecycleEvent;
use crate::metrics::MetricsCollector;
use crate::runtime::{Manifest, PluginError, Plugins, Runtime};

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
    /// The plugin runtime could not start.
    #[error(transparent)]
    Plugin(#[from] PluginError),
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
    plugins: Arc<Plugins>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    watcher: Option<crate::reload::Watcher>,
    admin: Option<std::net::SocketAddr>,
    stores: Arc<Stores>,
    emitters: Arc<Emitters>,
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
        let store = config.stores.default.clone();
        let health = HealthTracker::new(&store, config.health_monitoring.clone(), bus.clone());
        let metrics = MetricsCollector::new(&store, bus.clone());
        let stores = Stores::new(
            &config.stores.data_dir,
            config.stores.durability,
            bus.clone(),
        );
        stores
            .get(&store)
            .map_err(|e| anyhow::anyhow!("cannot open the default store: {e}"))?;
        let runtime = Runtime::with_config(&config.runtime)?;
        let plugins = Arc::new(Plugins::with_monitoring(
            runtime,
            bus.clone(),
            config.plugins.max_batch,
            Arc::clone(&health),
            Arc::clone(&metrics),
        ));
        let emitters = Emitters::new(
            Arc::clone(&stores),
            Arc::clone(&health),
            bus.clone(),
            Arc::downgrade(&plugins),
        );
        // Subscribed before any plugin loads, so no lifecycle event is missed.
        let lifecycle = bus.subscriber("store-subscription-reconciler")?;
        lifecycle.subscribe(crate::bus::Channel::Lifecycle, "process_lifecycle:>")?;
        let mut tasks = vec![tokio::spawn(reconcile_store_subscriptions(
            lifecycle,
            Arc::clone(&plugins),
            Arc::clone(&emitters),
            store.clone(),
        ))];
        load_plugins(&config, &plugins, &integration).await;
        let watcher = start_watcher(&config, &plugins, &integration);
        let admin = match config.admin.listen.parse::<std::net::SocketAddr>() {
            Ok(addr) => {
                let (local, task) = crate::admin::serve(addr, Arc::clone(&plugins)).await?;
                tracing::info!(class = "success", "🛠️ admin API on http://{local}");
                tasks.push(task);
                Some(local)
            }
            Err(_) => None,
        };
        if config.health_monitoring.enabled {
            tracing::info!(class = "success", "{}", format::subscribed_health(&store));
            let reporter = Reporter {
                tracker: health,
                bus: bus.clone(),
                plugins: Arc::clone(&plugins),
                disk_path: std::env::current_dir().unwrap_or_else(|_| "/".into()),
            };
            tasks.push(tokio::spawn(reporter.run(Duration::from_millis(
                config.health_monitoring.check_interval,
            ))));
        }
        if config.metrics.enabled {
            tracing::info!(class = "success", "{}", format::subscribed_metrics(&store));
            let every = Duration::from_millis(config.metrics.interval_ms);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    metrics.publish();
                }
            }));
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
            plugins,
            tasks,
            watcher,
            admin,
            stores,
            emitters,
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

    /// Where the admin API listens, if it is on.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin
    }

    /// The stores: append (announced on `events`), and each store's reads.
    pub fn stores(&self) -> &Arc<Stores> {
        &self.stores
    }

    /// The emitter workers: store subscriptions for native handlers and plugins.
    pub fn emitters(&self) -> &Arc<Emitters> {
        &self.emitters
    }

    /// The loaded plugins: load, unload, list, status.
    pub fn plugins(&self) -> &Arc<Plugins> {
        &self.plugins
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
    pub async fn shutdown(mut self) -> Result<(), HostError> {
        self.watcher.take();
        self.integration
            .broadcast_system_lifecycle(LifecycleEvent::Stopping, SYSTEM_NAME, VERSION)
            .await?;
        tracing::info!(class = "failure", "🔴 {SYSTEM_NAME} stopping");
        if let Some(logging) = crate::logging::installed() {
            *logging.formatter.write() = None;
        }
        for task in &self.tasks {
            task.abort();
        }
        self.emitters.shutdown().await;
        self.plugins.unload_all().await;
        if let Some(logging) = crate::logging::installed() {
            logging.bridge.detach(&self.bus);
        }
        self.integration
            .broadcast_system_lifecycle(LifecycleEvent::Stopped, SYSTEM_NAME, VERSION)
            .await?;
        Ok(())
    }

    /// Runs until `signals` reports Ctrl-C or SIGTERM, then shuts down.
    /// Create the [`Signals`] before starting the host, so a signal that
    /// arrives during start-up is not missed.
    ///
    /// # Errors
    /// [`HostError`] if the shutdown fails.
    pub async fn run_until(self, mut signals: Signals) -> Result<(), HostError> {
        signals.recv().await;
        tracing::info!("signal received, shutting down");
        self.shutdown().await
    }
}

/// Ctrl-C and SIGTERM listeners, registered when created.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the listeners now. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`HostError`] if the signal handlers cannot be installed.
    pub fn new() -> Result<Signals, HostError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate()).map_err(anyhow::Error::from)?,
                int: signal(SignalKind::interrupt()).map_err(anyhow::Error::from)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for the first signal.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Loads the bundled plugins and the plugins directory, reporting (not
/// failing on) each plugin that cannot load, then installs the console's
/// formatter plugin if the config names one.
async fn load_plugins(config: &Config, plugins: &Arc<Plugins>, integration: &Integration) {
    let mut results = Vec::new();
    if config.plugins.bundled {
        for b in crate::artifacts::BUNDLED {
            let origin = format!("<bundled>/{}.toml", b.name);
            results.push(
                Manifest::parse(b.manifest, &origin)
                    .map_err(PluginError::from)
                    .and_then(|m| plugins.load(m, b.wasm)),
            );
        }
    }
    if !config.plugins.dir.is_empty() {
        results.extend(plugins.load_dir(Path::new(&config.plugins.dir)));
    }
    for err in results.into_iter().filter_map(Result::err) {
        tracing::error!(class = "failure", "❌ PLUGIN NOT LOADED: {err}");
        let mut metadata = serde_json::Map::new();
        metadata.insert("error".into(), err.to_string().into());
        if let Some(p) = err.plugin() {
            metadata.insert("plugin".into(), p.into());
        }
        let _ = integration
            .raise_alert(
                AlertCategory::System,
                Severity::Error,
                "Plugin failed to load",
                metadata,
            )
            .await;
    }
    if let ConsoleFormat::Plugin(name) = &config.console.format {
        match (plugins.formatter(name), crate::logging::installed()) {
            (Some(_), Some(logging)) => {
                *logging.formatter.write() = Some(Arc::new(FormatterProxy {
                    plugins: Arc::downgrade(plugins),
                    name: name.clone(),
                }))
            }
            (None, _) => tracing::error!(class = "failure", "console format `plugin:{name}`: no log-formatter plugin `{name}` is loaded; using the built-in format"),
            _ => {}
        }
    }
}

/// Keeps each plugin's emitter workers in line with its manifest's
/// `[[store_subscription]]`s: created when it is loaded, recreated when a
/// reload changes them, stopped when it is unloaded. Driven by the plugins'
/// `ProcessLifecycle` events.
async fn reconcile_store_subscriptions(
    watch: crate::bus::Subscriber,
    plugins: Arc<Plugins>,
    emitters: Arc<Emitters>,
    default_store: String,
) {
    let wanted = |name: &str| -> Vec<SubscriptionSpec> {
        let Some(m) = plugins.manifest(name) else {
            return Vec::new();
        };
        m.store_subscription
            .iter()
            .filter_map(|s| {
                Some(SubscriptionSpec {
                    store: s.store.clone().unwrap_or_else(|| default_store.clone()),
                    selector: s.selector.parse().ok()?,
                    start: s.start.parse::<Start>().ok()?,
                    name: s.name.clone(),
                })
            })
            .collect()
    };
    while let Some(env) = watch.recv().await {
        let Ok(event) = env.decode::<crate::messages::lifecycle::ProcessLifecycle>() else {
            continue;
        };
        if !event.module.starts_with("wasm:") {
            continue;
        }
        let name = event.name;
        let want = wanted(&name);
        if want != emitters.specs_of(&name) {
            emitters.unsubscribe_all_of(&name).await;
            for spec in want {
                if let Err(e) = emitters.subscribe(spec, Target::Plugin(name.clone())) {
                    tracing::error!(
                        class = "failure",
                        plugin = name.as_str(),
                        "store subscription not started: {e}"
                    );
                }
            }
        }
    }
}

/// The console's formatter: whichever version of the named log-formatter
/// plugin is loaded now (so a reload takes effect at once).
struct FormatterProxy {
    plugins: std::sync::Weak<Plugins>,
    name: String,
}

impl crate::logging::LineFormatter for FormatterProxy {
    fn format(
        &self,
        entry: &crate::messages::logging::LogEntry,
        timestamp_ms: u64,
        node: &str,
    ) -> Option<String> {
        let f = self.plugins.upgrade()?.formatter(&self.name)?;
        crate::logging::LineFormatter::format(&*f, entry, timestamp_ms, node)
    }
}

/// Watches the plugins directory when `[plugins] watch` is on.
fn start_watcher(
    config: &Config,
    plugins: &Arc<Plugins>,
    integration: &Integration,
) -> Option<crate::reload::Watcher> {
    if !config.plugins.watch || config.plugins.dir.is_empty() {
        return None;
    }
    let dir = Path::new(&config.plugins.dir);
    if let Err(e) = std::fs::create_dir_all(dir) {
        tracing::error!(
            class = "failure",
            "cannot create plugins directory {}: {e}",
            dir.display()
        );
        return None;
    }
    let debounce = Duration::from_millis(config.plugins.watch_debounce_ms);
    match crate::reload::Watcher::start(dir, Arc::clone(plugins), integration.clone(), debounce) {
        Ok(w) => {
            tracing::info!(
                class = "success",
                "👀 watching {} for plugin changes",
                dir.display()
            );
            Some(w)
        }
        Err(e) => {
            tracing::error!(class = "failure", "cannot watch {}: {e}", dir.display());
            None
        }
    }
}
