//! The stores of one host: opened on demand in the data directory, each
//! with its own health tracker and metrics collector ([`StoreMonitor`]);
//! appends are announced on the `events` channel, topic `<store>:<stream>`,
//! and counted by the store's collector.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::bus::{Bus, Channel};
use crate::health::HealthMonitoring;
use crate::health::HealthTracker;
use crate::integration::topics;
use crate::messages::{Envelope, MessageError};
use crate::metrics::MetricsCollector;
use crate::store::{
    AppendResult, Durability, ExpectedVersion, NewEvent, RecordedEvent, Store, StoreError,
};

/// One store's monitoring: the tracker of its subscriptions' health
/// (`store_health:<store>`, …) and the collector of its metrics
/// (`store_metrics:<store>`, …), created with the store.
#[derive(Debug, Clone)]
pub struct StoreMonitor {
    /// The store's subscription health.
    pub health: Arc<HealthTracker>,
    /// The store's metrics.
    pub metrics: Arc<MetricsCollector>,
}

/// The stores of a host.
#[derive(Debug)]
pub struct Stores {
    data_dir: PathBuf,
    durability: Durability,
    bus: Bus,
    health: HealthMonitoring,
    open: Mutex<BTreeMap<String, Store>>,
    monitors: Mutex<BTreeMap<String, StoreMonitor>>,
}

/// The envelope announcing a recorded event on `events`: topic
/// `<store>:<stream>` ([`topics::store_stream`]), kind = the event type, payload = the recorded event,
/// timestamp = the event's `created` time (so a subscriber's latency is
/// append → handled).
///
/// # Errors
/// [`MessageError`] if the event cannot be serialised.
pub fn announcement(store: &str, e: &RecordedEvent, node: &str) -> Result<Envelope, MessageError> {
    let mut env = Envelope::serialised(
        Channel::Events,
        topics::store_stream(store, &e.stream_id),
        e.event_type.clone(),
        e,
        node,
    )?;
    env.timestamp = e.created;
    Ok(env)
}

impl Stores {
    /// Stores in `data_dir` (created on first open), tracking health with
    /// the default `[health_monitoring]` settings.
    pub fn new(data_dir: impl Into<PathBuf>, durability: Durability, bus: Bus) -> Arc<Stores> {
        Stores::with_health(data_dir, durability, bus, HealthMonitoring::default())
    }

    /// Stores in `data_dir` whose trackers use `health`.
    pub fn with_health(
        data_dir: impl Into<PathBuf>,
        durability: Durability,
        bus: Bus,
        health: HealthMonitoring,
    ) -> Arc<Stores> {
        Arc::new(Stores {
            data_dir: data_dir.into(),
            durability,
            bus,
            health,
            open: Mutex::default(),
            monitors: Mutex::default(),
        })
    }

    /// The directory of the stores' files.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The store `id`, opened (and created) on first use, with its
    /// [`StoreMonitor`].
    ///
    /// # Errors
    /// [`StoreError`] naming the store (bad id, locked by another process, I/O).
    pub fn get(&self, id: &str) -> Result<Store, StoreError> {
        if let Some(s) = self.open.lock().get(id) {
            return Ok(s.clone());
        }
        let store = Store::open(&self.data_dir, id, self.durability)?;
        let mut open = self.open.lock();
        if let Some(s) = open.get(id) {
            // Opened concurrently: keep the first.
            return Ok(s.clone());
        }
        open.insert(id.to_owned(), store.clone());
        drop(open);
        self.monitor_entry(id);
        Ok(store)
    }

    /// The monitor of store `id`, made if it has none yet.
    fn monitor_entry(&self, id: &str) -> StoreMonitor {
        self.monitors
            .lock()
            .entry(id.to_owned())
            .or_insert_with(|| StoreMonitor {
                health: HealthTracker::new(id, self.health.clone(), self.bus.clone()),
                metrics: MetricsCollector::new(id, self.bus.clone()),
            })
            .clone()
    }

    /// The monitor of store `id`, opening the store if needed.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn monitor(&self, id: &str) -> Result<StoreMonitor, StoreError> {
        self.get(id)?;
        Ok(self.monitor_entry(id))
    }

    /// Makes `health` (and `metrics`, when given) the monitoring of store
    /// `health.store()`, e.g. the default store's tracker and collector that
    /// the plugins' bus subscriptions report to. Meant for set-up, before
    /// anything reports to the store's previous tracker.
    pub fn adopt(&self, health: Arc<HealthTracker>, metrics: Option<Arc<MetricsCollector>>) {
        let id = health.store().to_owned();
        let mut monitors = self.monitors.lock();
        let metrics = metrics
            .filter(|m| m.store() == id)
            .or_else(|| monitors.get(&id).map(|m| Arc::clone(&m.metrics)))
            .unwrap_or_else(|| MetricsCollector::new(&id, self.bus.clone()));
        monitors.insert(id, StoreMonitor { health, metrics });
    }

    /// Every store's monitor, by store id (adopted ones included).
    pub fn monitors(&self) -> Vec<StoreMonitor> {
        self.monitors.lock().values().cloned().collect()
    }

    /// Bytes the open stores' files take on disk.
    pub fn disk_bytes(&self) -> u64 {
        let paths: Vec<PathBuf> = self
            .open
            .lock()
            .values()
            .map(|s| s.path().to_owned())
            .collect();
        paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The ids of the stores opened so far.
    pub fn ids(&self) -> Vec<String> {
        self.open.lock().keys().cloned().collect()
    }

    /// Appends atomically (see [`Store::append`]), then announces each event
    /// on `events` and records the change as a `DataChange` on `audit`
    /// (user `host`). Runs the write on the blocking pool; its duration
    /// goes into the store's collector (every successful append). A retried
    /// append (`replayed`) is neither announced nor recorded again.
    ///
    /// # Errors
    /// [`StoreError`] (expected-version conflict with the current version, …).
    pub async fn append(
        &self,
        store: &str,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.append_by("host", None, store, stream, expected, events)
            .await
    }

    /// [`append`](Self::append) on behalf of `actor` (from `source_ip`),
    /// as the `DataChange` names them.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub async fn append_by(
        &self,
        actor: &str,
        source_ip: Option<String>,
        store: &str,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let s = self.get(store)?;
        let stream_owned = stream.to_owned();
        // What the announcements carry, kept as a read would give it back,
        // so the events need not be read again after the append.
        let copies: Vec<(
            uuid::Uuid,
            String,
            crate::store::Payload,
            crate::store::Payload,
        )> = events
            .iter()
            .map(|e| {
                (
                    e.event_id,
                    e.event_type.clone(),
                    e.data.clone().as_stored(),
                    e.metadata.clone().as_stored(),
                )
            })
            .collect();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || s.append(&stream_owned, expected, events))
            .await
            .map_err(|e| StoreError::Db {
                store: store.to_owned(),
                context: "append task".into(),
                message: e.to_string(),
            })??;
        let metrics = self.monitor_entry(store).metrics;
        metrics.record_append(started.elapsed());
        if !result.replayed {
            let recorded = copies
                .into_iter()
                .zip(0u64..)
                .map(
                    |((event_id, event_type, data, metadata), i)| RecordedEvent {
                        event_id,
                        event_type,
                        data,
                        metadata,
                        stream_id: stream.to_owned(),
                        event_number: result.first_event_number + i,
                        global_position: result.first_position + i,
                        created: result.created,
                    },
                )
                .collect();
            self.announce(store, recorded, &metrics).await;
            self.record_change(actor, source_ip, store, stream, &result);
        }
        Ok(result)
    }

    /// The `DataChange` of an append, on `audit`.
    fn record_change(
        &self,
        actor: &str,
        source_ip: Option<String>,
        store: &str,
        stream: &str,
        r: &AppendResult,
    ) {
        let mut changes = serde_json::Map::new();
        changes.insert(
            "events".into(),
            (r.last_event_number - r.first_event_number + 1).into(),
        );
        changes.insert("first_position".into(), r.first_position.into());
        changes.insert("last_position".into(), r.last_position.into());
        changes.insert("version".into(), r.last_event_number.into());
        let mut metadata = serde_json::Map::new();
        metadata.insert("store".into(), store.into());
        let change = crate::messages::audit::DataChange {
            user_id: actor.to_owned(),
            resource_type: "stream".into(),
            resource_id: format!("{store}:{stream}"),
            action: crate::messages::audit::DataAction::Create,
            changes,
            metadata,
            source_ip,
        };
        let topic = topics::audit_data_change("stream");
        if let Err(e) = self.bus.publish_typed_now(&topic, &change) {
            tracing::warn!("DataChange of an append to {store}:{stream} not published: {e}");
        }
    }

    /// Announces appended events on `events` (topic `<store>:<stream>`).
    async fn announce(&self, store: &str, events: Vec<RecordedEvent>, metrics: &MetricsCollector) {
        metrics.record_events(events.len() as u64);
        for e in &events {
            let sent = match announcement(store, e, self.bus.node()) {
                Ok(env) => self
                    .bus
                    .broadcast(env)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(err) = sent {
                tracing::warn!(
                    "cannot announce {}:{} #{}: {err}",
                    store,
                    e.stream_id,
                    e.event_number
                );
            }
        }
    }
}

/// The stores' health trackers, for the health reporter and announcer.
impl crate::health::StoreTrackers for Stores {
    fn trackers(&self) -> Vec<Arc<HealthTracker>> {
        self.monitors().into_iter().map(|m| m.health).collect()
    }

    fn open_stores(&self) -> Vec<Store> {
        self.open.lock().values().cloned().collect()
    }
}

/// The stores' metrics collectors, for the metrics publisher.
impl crate::metrics::StoreCollectors for Stores {
    fn collectors(&self) -> Vec<Arc<MetricsCollector>> {
        self.monitors().into_iter().map(|m| m.metrics).collect()
    }

    fn disk_bytes(&self) -> u64 {
        Stores::disk_bytes(self)
    }
}
