//! Emitter workers: one per (store, selector, subscriber), delivering a
//! store's events in order and in batches to a native handler or a plugin,
//! with catch-up from history then live, durable checkpoints for persistent
//! subscriptions, and health-aware pausing per subscription.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use exesdb_host::bus::{Bus, BusConfig};
//! use exesdb_host::config::Config;
//! use exesdb_host::emitter::{Emitters, Start, Stores, SubscriptionSpec};
//! use exesdb_host::health::HealthTracker;
//! use exesdb_host::store::{Durability, ExpectedVersion, NewEvent, Selector};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let bus = Bus::new(BusConfig::default());
//! let stores = Stores::new(dir.path(), Durability::Immediate, bus.clone());
//! let health = HealthTracker::new("default", Config::default().health_monitoring, bus.clone());
//! let emitters = Emitters::new(stores.clone(), health, bus, std::sync::Weak::new());
//! let spec = SubscriptionSpec { store: "default".into(), selector: Selector::All, start: Start::Beginning, name: None };
//! let (_id, mut batches) = emitters.subscribe_native(spec, "doc-handler", 8).unwrap();
//! stores.append("default", "orders-1", ExpectedVersion::Any,
//!               vec![NewEvent::json("OrderPlaced", serde_json::json!({"total": 5}))]).await.unwrap();
//! let batch = batches.recv().await.unwrap();
//! assert_eq!(batch.events[0].event_type, "OrderPlaced");
//! batch.ack.send(Ok(())).unwrap();
//! emitters.shutdown().await;
//! # });
//! ```

pub mod banner;
mod stores;
mod subscription;
mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use serde::Serialize;

pub use stores::{announcement, StoreMonitor, Stores};
pub use subscription::{EmittedBatch, Start, SubscriptionSpec, Target};
pub use worker::BATCH;

use crate::bus::Bus;
use crate::health::HealthTracker;
use crate::runtime::Plugins;
use crate::store::StoreError;
use worker::{EmitterWorker, Shared};

/// What `list` reports about an emitter worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmitterInfo {
    /// The worker's id.
    pub id: String,
    /// The store.
    pub store: String,
    /// The selector, in text form.
    pub selector: String,
    /// The subscriber.
    pub subscriber: String,
    /// The persistent subscription's name, if persistent.
    pub persistent: Option<String>,
    /// The next global position to deliver.
    pub position: u64,
    /// Paused because the subscriber is unhealthy.
    pub paused: bool,
    /// Events acknowledged so far.
    pub delivered: u64,
    /// Still running.
    pub running: bool,
}

struct Handle {
    spec: SubscriptionSpec,
    subscriber: String,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The emitter workers of a host.
///
/// Each worker reports to its store's [`StoreMonitor`]: health on
/// `store_health:<store>` (the breaker it pauses on is that tracker's), and
/// latency (append → handled), call time and acknowledged events in
/// `store_metrics:<store>`. The one exception: a plugin's deliveries on the
/// store whose tracker and collector are the plugin's own (the default
/// store) are reported by the plugin's worker, to those same ones.
pub struct Emitters {
    stores: Arc<Stores>,
    bus: Bus,
    plugins: Weak<Plugins>,
    workers: Mutex<BTreeMap<String, Handle>>,
    registrations: Arc<worker::Registrations>,
    next: AtomicU64,
}

impl std::fmt::Debug for Emitters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitters")
            .field("workers", &self.workers.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Emitters {
    /// An empty set. `plugins` resolves plugin targets. `health` becomes the
    /// tracker of its store (normally the default store's, shared with the
    /// plugins' bus subscriptions), with the plugins' metrics collector when
    /// the plugins report to that same tracker; every other store has its
    /// own, made by `stores` when the store is opened.
    pub fn new(
        stores: Arc<Stores>,
        health: Arc<HealthTracker>,
        bus: Bus,
        plugins: Weak<Plugins>,
    ) -> Arc<Emitters> {
        let metrics = plugins
            .upgrade()
            .filter(|p| Arc::ptr_eq(p.health(), &health))
            .map(|p| Arc::clone(p.metrics()));
        stores.adopt(health, metrics);
        Arc::new(Emitters {
            stores,
            bus,
            plugins,
            workers: Mutex::default(),
            registrations: Arc::default(),
            next: AtomicU64::new(1),
        })
    }

    /// The stores.
    pub fn stores(&self) -> &Arc<Stores> {
        &self.stores
    }

    /// Starts a worker delivering `spec` to `target`; returns its id.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be opened.
    pub fn subscribe(&self, spec: SubscriptionSpec, target: Target) -> Result<String, StoreError> {
        let store = self.stores.get(&spec.store)?;
        let monitor = self.stores.monitor(&spec.store)?;
        let start_position = worker::initial_position(&store, &spec);
        let id = format!("emitter-{}", self.next.fetch_add(1, Ordering::Relaxed));
        // The position is the start until the worker moves it: a listing
        // right after the spawn shows where it will begin, not 0.
        let shared = Arc::new(Shared {
            position: std::sync::atomic::AtomicU64::new(start_position),
            ..Shared::default()
        });
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let subscriber = target.name().to_owned();
        // A plugin's worker reports its deliveries to the plugin's own
        // tracker and collector: where those are this store's, it already
        // has; elsewhere the emitter reports them.
        let (plugin_health, plugin_metrics) = match (&target, self.plugins.upgrade()) {
            (Target::Plugin(_), Some(p)) => (
                Arc::ptr_eq(p.health(), &monitor.health),
                Arc::ptr_eq(p.metrics(), &monitor.metrics),
            ),
            _ => (false, false),
        };
        let metrics = monitor
            .metrics
            .register_store_subscription(&id, &subscriber);
        let worker = EmitterWorker {
            id: id.clone(),
            spec: spec.clone(),
            store,
            target,
            monitor,
            metrics,
            reports_health: !plugin_health,
            reports_metrics: !plugin_metrics,
            registrations: Arc::clone(&self.registrations),
            bus: self.bus.clone(),
            plugins: self.plugins.clone(),
            shared: Arc::clone(&shared),
            stop: stop_rx,
            start_position,
        };
        let task = tokio::spawn(worker.run());
        self.workers.lock().insert(
            id.clone(),
            Handle {
                spec,
                subscriber,
                shared,
                stop,
                task,
            },
        );
        Ok(id)
    }

    /// Starts a worker for a native handler named `name`; returns its id and
    /// the receiver of its batches (each must be acknowledged).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be opened.
    pub fn subscribe_native(
        &self,
        spec: SubscriptionSpec,
        name: &str,
        capacity: usize,
    ) -> Result<(String, tokio::sync::mpsc::Receiver<EmittedBatch>), StoreError> {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity.max(1));
        let id = self.subscribe(
            spec,
            Target::Native {
                name: name.to_owned(),
                sender,
            },
        )?;
        Ok((id, receiver))
    }

    /// Stops a worker and waits for it; returns whether it existed. A
    /// persistent subscription keeps its checkpoint (see
    /// [`Store::delete_checkpoint`](crate::store::Store::delete_checkpoint)).
    pub async fn unsubscribe(&self, id: &str) -> bool {
        let Some(h) = self.workers.lock().remove(id) else {
            return false;
        };
        let _ = h.stop.send(true);
        let _ = h.task.await;
        true
    }

    /// Stops every worker delivering to `subscriber`.
    pub async fn unsubscribe_all_of(&self, subscriber: &str) {
        let ids: Vec<String> = self
            .workers
            .lock()
            .iter()
            .filter(|(_, h)| h.subscriber == subscriber)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.unsubscribe(&id).await;
        }
    }

    /// The specs of the workers delivering to `subscriber`.
    pub fn specs_of(&self, subscriber: &str) -> Vec<SubscriptionSpec> {
        self.workers
            .lock()
            .values()
            .filter(|h| h.subscriber == subscriber && !h.shared.stopped.load(Ordering::Relaxed))
            .map(|h| h.spec.clone())
            .collect()
    }

    /// Every worker, by id.
    pub fn list(&self) -> Vec<EmitterInfo> {
        self.workers
            .lock()
            .iter()
            .map(|(id, h)| EmitterInfo {
                id: id.clone(),
                store: h.spec.store.clone(),
                selector: h.spec.selector.to_string(),
                subscriber: h.subscriber.clone(),
                persistent: h.spec.name.clone(),
                position: h.shared.position.load(Ordering::Relaxed),
                paused: h.shared.paused.load(Ordering::Relaxed),
                delivered: h.shared.delivered.load(Ordering::Relaxed),
                running: !h.shared.stopped.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Stops every worker.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.workers.lock().keys().cloned().collect();
        for id in ids {
            self.unsubscribe(&id).await;
        }
    }
}
