//! The host: one bus, its helpers, and everything started from the config.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use exesdb_host::{config::Config, host::Host};
//! let mut config = Config::default();
//! config.api.listen = "127.0.0.1:0".into(); // any free port
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
use crate::health::{Announcer, ComponentReport, Reporter, StoreTrackers};
use crate::integration::{topics, Integration};
use crate::messages::system::LifecycleEvent;
use crate::metrics::{Publisher, StoreCollectors};
use crate::runtime::{Actor, Manifest, PluginError, Plugins, Runtime};

pub use crate::messages::system::SYSTEM_NAME;
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
    api: Option<std::net::SocketAddr>,
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
        Self::start_on(Bus::new(config.bus_config()), config).await
    }

    /// [`start`](Self::start) on a bus made by the caller (with
    /// `config.bus_config()`), who can subscribe before the host announces
    /// anything — its `SystemLifecycle` and `SystemConfig` included.
    ///
    /// # Errors
    /// [`HostError`] if a start-up step fails.
    pub async fn start_on(bus: Bus, config: Config) -> Result<Host, HostError> {
        let integration = Integration::new(bus.clone());
        integration
            .broadcast_system_lifecycle(LifecycleEvent::Starting, SYSTEM_NAME, VERSION)
            .await?;
        announce_node(&bus, crate::messages::lifecycle::NodeEvent::Starting);
        if let Some(logging) = crate::logging::installed() {
            logging.bridge.attach(&bus);
        }
        let store = config.stores.default.clone();
        // Every store gets its own health tracker and metrics collector when
        // it is opened; the default store's also follow the plugins' bus
        // subscriptions.
        let stores = Stores::with_health(
            &config.stores.data_dir,
            config.stores.durability,
            bus.clone(),
            config.health_monitoring.clone(),
        );
        let default = stores
            .monitor(&store)
            .map_err(|e| anyhow::anyhow!("cannot open the default store: {e}"))?;
        let runtime = Runtime::with_config(&config.runtime)?;
        let state_db = crate::store::kv::KeyValueDb::open(
            std::path::Path::new(&config.stores.data_dir),
            config.stores.durability,
        )
        .map_err(|e| anyhow::anyhow!("cannot open the plugins' state: {e}"))?;
        let plugins = Arc::new(
            Plugins::with_monitoring(
                runtime,
                bus.clone(),
                config.plugins.max_batch,
                Arc::clone(&default.health),
                default.metrics,
            )
            .with_state_db(state_db),
        );
        plugins.set_outbound_breaker(&config.health_monitoring);
        let emitters = Emitters::new(
            Arc::clone(&stores),
            default.health,
            bus.clone(),
            Arc::downgrade(&plugins),
        );
        // Subscribed before any plugin loads, so no lifecycle event is missed.
        let lifecycle = bus.subscriber("store-subscription-reconciler")?;
        lifecycle.subscribe(
            crate::bus::Channel::Lifecycle,
            &topics::process_lifecycle(">"),
        )?;
        let mut tasks = vec![tokio::spawn(reconcile_store_subscriptions(
            lifecycle,
            Arc::clone(&plugins),
            Arc::clone(&emitters),
            store.clone(),
        ))];
        load_plugins(&config, &plugins).await;
        let watcher = start_watcher(&config, &plugins);
        let api = match config.api.listen.parse::<std::net::SocketAddr>() {
            Ok(addr) => {
                let state = crate::api::ApiState::new(
                    bus.clone(),
                    Arc::clone(&plugins),
                    Arc::clone(&emitters),
                    config.api.clone(),
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                let (local, task) = crate::api::serve(addr, Arc::new(state)).await?;
                tracing::info!(class = "success", "🌐 API on http://{local}/v1");
                tasks.push(task);
                Some(local)
            }
            Err(_) => None,
        };
        if config.health_monitoring.enabled {
            // The reporter reads the stores' trackers and the plugins'
            // health through the traits `health` defines.
            let reporter = Reporter {
                stores: Arc::clone(&stores) as Arc<dyn StoreTrackers>,
                bus: bus.clone(),
                components: vec![Arc::clone(&plugins) as Arc<dyn ComponentReport>],
                disk_path: std::env::current_dir().unwrap_or_else(|_| "/".into()),
            };
            tasks.push(tokio::spawn(reporter.run(Duration::from_millis(
                config.health_monitoring.check_interval,
            ))));
        }
        if config.metrics.enabled {
            let logs = crate::logging::installed().map(|l| Arc::clone(l.bridge.stats()));
            let publisher = Publisher::new(
                Arc::clone(&stores) as Arc<dyn StoreCollectors>,
                bus.clone(),
                logs,
            );
            let every = Duration::from_millis(config.metrics.interval_ms);
            tasks.push(tokio::spawn(publisher.run(every)));
        }
        if config.health_monitoring.enabled || config.metrics.enabled {
            // `SUBSCRIBED to health/metrics events` once something does.
            let announcer = Announcer::new(
                bus.clone(),
                Arc::clone(&stores) as Arc<dyn StoreTrackers>,
                config.health_monitoring.enabled,
                config.metrics.enabled,
            );
            let starts = bus.subscriber("subscription-announcer")?;
            starts.subscribe(
                crate::bus::Channel::Lifecycle,
                &topics::process_lifecycle(">"),
            )?;
            let every = Duration::from_millis(config.health_monitoring.check_interval.min(1000));
            tasks.push(tokio::spawn(announcer.run(starts, every)));
        }
        announce_config(&bus, &config);
        announce_node(&bus, crate::messages::lifecycle::NodeEvent::Started);
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
            api,
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

    /// Where the HTTP server (`/v1` gateway) listens, if it is on.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api
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
        announce_node(&self.bus, crate::messages::lifecycle::NodeEvent::Stopping);
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
        announce_node(&self.bus, crate::messages::lifecycle::NodeEvent::Stopped);
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
async fn load_plugins(config: &Config, plugins: &Arc<Plugins>) {
    let mut results = Vec::new();
    if config.plugins.bundled {
        for b in crate::artifacts::BUNDLED {
            let origin = format!("<bundled>/{}.toml", b.name);
            results.push(
                Manifest::parse(b.manifest, &origin)
                    .map_err(PluginError::from)
                    .and_then(|m| plugins.load(Actor::Operator, m, b.wasm)),
            );
        }
    }
    if !config.plugins.dir.is_empty() {
        results.extend(plugins.load_dir(Actor::Operator, Path::new(&config.plugins.dir)));
    }
    for err in results.into_iter().filter_map(Result::err) {
        plugins.report_not_loaded(&err);
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

    fn format_batch(
        &self,
        entries: &[(crate::messages::logging::LogEntry, u64)],
        node: &str,
    ) -> Vec<Option<String>> {
        match self.plugins.upgrade().and_then(|p| p.formatter(&self.name)) {
            Some(f) => crate::logging::LineFormatter::format_batch(&*f, entries, node),
            None => vec![None; entries.len()],
        }
    }
}

/// Watches the plugins directory when `[plugins] watch` is on.
fn start_watcher(config: &Config, plugins: &Arc<Plugins>) -> Option<crate::reload::Watcher> {
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
    match crate::reload::Watcher::start(dir, Arc::clone(plugins), debounce) {
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

/// Publishes this node's `NodeLifecycle` `event` on `lifecycle`, topic
/// `node_lifecycle:<node>`.
fn announce_node(bus: &Bus, event: crate::messages::lifecycle::NodeEvent) {
    let payload = crate::messages::lifecycle::NodeLifecycle {
        node: bus.node().to_owned(),
        event,
        reason: None,
    };
    let topic = topics::node_lifecycle(bus.node());
    if let Err(e) = bus.publish_typed_now(&topic, &payload) {
        tracing::error!(class = "failure", "NodeLifecycle not published: {e}");
    }
}

/// Setting names whose values never leave the host: a key containing one of
/// these words is shown as `"<redacted>"`.
const SECRET_WORDS: [&str; 5] = ["token", "secret", "password", "credential", "key"];

/// `value` with every secret-looking setting (a key containing `token`,
/// `secret`, `password`, `credential` or `key`) redacted.
pub fn redact(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
                        (k, Value::String("<redacted>".into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

/// Publishes the effective configuration (secrets redacted) as a
/// `SystemConfig` on `system`, topic `system_config:exesdb_host`: the
/// operator's record of what this host runs with.
fn announce_config(bus: &Bus, config: &Config) {
    let changes = match serde_json::to_value(config).map(redact) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let payload = crate::messages::system::SystemConfig {
        component: SYSTEM_NAME.to_owned(),
        changes,
        previous_config: serde_json::Map::new(),
        changed_by: "system".to_owned(),
    };
    let topic = topics::system_config(SYSTEM_NAME);
    if let Err(e) = bus.publish_typed_now(&topic, &payload) {
        tracing::error!(class = "failure", "SystemConfig not published: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn secret_looking_settings_are_redacted_at_any_depth() {
        let v = serde_json::json!({
            "api": {"listen": "127.0.0.1:0", "tokens": [{"name": "ci", "sha256": "ab"}]},
            "cluster": {"nats_password": "hunter2", "url": "nats://x"},
            "node": {"name": "n"},
        });
        let r = redact(v);
        assert_eq!(r["api"]["listen"], "127.0.0.1:0");
        assert_eq!(r["api"]["tokens"], "<redacted>");
        assert_eq!(r["cluster"]["nats_password"], "<redacted>");
        assert_eq!(r["cluster"]["url"], "nats://x");
        assert_eq!(r["node"]["name"], "n");
    }
}
