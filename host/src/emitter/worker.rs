//! The emitter worker: one per (store, selector, subscriber). It catches up
//! from history, then follows new appends, delivering in order and in
//! batches; a persistent subscription advances its durable checkpoint on
//! acknowledgement. It pauses while its subscriber is unhealthy (breaker
//! open on its store's tracker) and resumes from its position, so pausing
//! loses nothing.
//!
//! It reports to its store's monitor: health inputs, and per event handled
//! the latency from the event's append (`created`) to its acknowledgement,
//! per batch the handler's call time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::banner::{activation_banner, termination_banner, Activation, Termination};
use super::stores::{announcement, StoreMonitor};
use super::subscription::{EmittedBatch, Start, SubscriptionSpec, Target};
use crate::bus::Bus;
use crate::health::announce::subscribed_health;
use crate::health::{Gate, HealthInput};
use crate::integration::topics;
use crate::messages::lifecycle::{ProcessEvent, ProcessLifecycle};
use crate::metrics::SubscriptionMetrics;
use crate::runtime::Plugins;
use crate::store::{ReadBatch, RecordedEvent, Store};

/// Most events per delivery.
pub const BATCH: usize = 256;
/// Longest sleep while paused or backing off, so a stop is noticed promptly.
const POLL: Duration = Duration::from_millis(50);

/// What the registry can see of a running worker.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) position: AtomicU64,
    pub(crate) paused: AtomicBool,
    pub(crate) delivered: AtomicU64,
    pub(crate) stopped: AtomicBool,
}

/// Live workers per (store, subscriber) whose health entry the emitters own,
/// so that the entry is registered by the first and removed by the last.
pub(crate) type Registrations = Mutex<BTreeMap<(String, String), usize>>;

pub(crate) struct EmitterWorker {
    pub(crate) id: String,
    pub(crate) spec: SubscriptionSpec,
    pub(crate) store: Store,
    pub(crate) target: Target,
    /// The store's tracker and collector.
    pub(crate) monitor: StoreMonitor,
    /// The subscriber's histograms in the store's collector.
    pub(crate) metrics: Arc<SubscriptionMetrics>,
    /// Report health inputs (false: the plugin's worker reports them to this
    /// same tracker).
    pub(crate) reports_health: bool,
    /// Record latency and call time (false: the plugin's worker records them
    /// in this same collector).
    pub(crate) reports_metrics: bool,
    pub(crate) registrations: Arc<Registrations>,
    pub(crate) bus: Bus,
    pub(crate) plugins: Weak<Plugins>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
    /// The first position to deliver, fixed when the subscription was made
    /// (so `Start::Now` means "after the head at subscribe time").
    pub(crate) start_position: u64,
}

enum Outcome {
    /// All handled.
    Ok,
    /// Event `i` failed; the ones before it were handled.
    Failed(usize),
    /// The subscriber is gone: stop.
    Gone(String),
}

impl EmitterWorker {
    fn topic(&self) -> String {
        topics::store_stream(&self.spec.store, &self.spec.selector.to_string())
    }

    fn lifecycle(&self, event: ProcessEvent, reason: Option<String>) {
        let payload = ProcessLifecycle {
            name: self.id.clone(),
            module: "emitter".into(),
            event,
            reason,
            restart_count: 0,
        };
        if let Err(e) = self
            .bus
            .publish_typed_now(&topics::process_lifecycle(&self.id), &payload)
        {
            tracing::warn!(
                emitter = self.id.as_str(),
                "lifecycle event not published: {e}"
            );
        }
    }

    /// `name (kind)` of the subscriber, for the banners.
    fn subscriber_label(&self) -> String {
        let kind = match self.target {
            Target::Native { .. } => "native handler",
            Target::Plugin(_) => "plugin",
        };
        format!("{} ({kind})", self.target.name())
    }

    /// Registers the subscriber's health entry on the store's tracker when
    /// this is its first worker there (and the emitters own the entry).
    fn register(&self) {
        if !self.reports_health {
            return;
        }
        let key = (self.spec.store.clone(), self.target.name().to_owned());
        let first = {
            let mut r = self.registrations.lock();
            let n = r.entry(key).or_default();
            *n += 1;
            *n == 1
        };
        if first {
            let health = &self.monitor.health;
            health.record(self.target.name(), HealthInput::RegistrationStarted);
            health.record(self.target.name(), HealthInput::RegistrationSucceeded);
        }
    }

    /// Undoes [`register`](Self::register) and the metrics registration.
    fn unregister(&self) {
        self.monitor
            .metrics
            .remove_store_subscription(&self.id, self.target.name());
        if !self.reports_health {
            return;
        }
        let key = (self.spec.store.clone(), self.target.name().to_owned());
        let last = {
            let mut r = self.registrations.lock();
            match r.get_mut(&key) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    r.remove(&key);
                    true
                }
                None => false,
            }
        };
        if last {
            self.monitor.health.remove(self.target.name());
        }
    }

    pub(crate) async fn run(mut self) {
        let worker = match &self.spec.name {
            Some(name) => format!("{} (persistent subscription {name})", self.id),
            None => format!("{} (transient subscription)", self.id),
        };
        let subscriber = self.subscriber_label();
        let (title, body) = activation_banner(&Activation {
            topic: &self.topic(),
            store: &self.spec.store,
            worker: &worker,
            thread: &thread_identity(),
            subscriber: &subscriber,
        });
        tracing::info!(class = "success", banner = body.as_str(), "{title}");
        self.register();
        if self.monitor.health.enabled() {
            // The worker follows its subscriber's health on this store (it
            // pauses on that breaker): it is a subscriber of those events.
            tracing::info!(
                class = "success",
                emitter = self.id.as_str(),
                subscriber = self.target.name(),
                "{}",
                subscribed_health(&self.spec.store)
            );
        }
        self.lifecycle(ProcessEvent::Started, None);
        let mut position = self.start_position;
        self.shared.position.store(position, Ordering::Relaxed);
        let mut appends = self.store.subscribe_appends();
        let reason = loop {
            if *self.stop.borrow() {
                break ":shutdown".to_owned();
            }
            let max = match self.monitor.health.gate(self.target.name()) {
                Gate::Deliver => BATCH,
                Gate::Trial => 1,
                Gate::Wait(d) => {
                    if !self.shared.paused.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            class = "failure",
                            emitter = self.id.as_str(),
                            "Emission PAUSED due to unhealthy status"
                        );
                    }
                    self.sleep(d.min(POLL)).await;
                    continue;
                }
            };
            if self.shared.paused.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    class = "health",
                    emitter = self.id.as_str(),
                    "Emission RESUMED due to healthy status"
                );
            }
            let batch = match self.read(position, max).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(
                        class = "failure",
                        emitter = self.id.as_str(),
                        "read failed: {e}"
                    );
                    self.sleep(POLL).await;
                    continue;
                }
            };
            if batch.events.is_empty() {
                position = batch.next_position;
                self.shared.position.store(position, Ordering::Relaxed);
                // Live: wait for the next commit (or a stop).
                tokio::select! {
                    r = appends.changed() => if r.is_err() { break "store closed".to_owned() },
                    _ = self.stop.changed() => {}
                }
                continue;
            }
            match self.deliver(&batch).await {
                Outcome::Ok => {
                    self.acked(
                        batch.events.last().map(|e| e.global_position),
                        batch.events.len(),
                    );
                    position = batch.next_position;
                }
                Outcome::Failed(i) => {
                    if i > 0 {
                        self.acked(Some(batch.events[i - 1].global_position), i);
                    }
                    position = batch.events[i].global_position;
                    self.sleep(Duration::from_millis(10)).await;
                }
                Outcome::Gone(why) => break why,
            }
            self.shared.position.store(position, Ordering::Relaxed);
        };
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.unregister();
        let selector = self.spec.selector.to_string();
        let worker = format!(
            "{} ({} events delivered)",
            self.id,
            self.shared.delivered.load(Ordering::Relaxed)
        );
        let (title, body) = termination_banner(&Termination {
            reason: &reason,
            store: &self.spec.store,
            selector: &selector,
            subscriber: &subscriber,
            worker: &worker,
        });
        tracing::info!(class = "failure", banner = body.as_str(), "{title}");
        self.lifecycle(ProcessEvent::Stopped, Some(reason));
    }

    async fn sleep(&mut self, d: Duration) {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            _ = self.stop.changed() => {}
        }
    }

    async fn read(&self, from: u64, max: usize) -> Result<ReadBatch, crate::store::StoreError> {
        let store = self.store.clone();
        let selector = self.spec.selector.clone();
        tokio::task::spawn_blocking(move || store.read_batch(&selector, from, max))
            .await
            .unwrap_or_else(|e| {
                Err(crate::store::StoreError::Db {
                    store: "?".into(),
                    context: "read task".into(),
                    message: e.to_string(),
                })
            })
    }

    /// Records acknowledged events: counters and, if persistent, the checkpoint.
    fn acked(&self, last: Option<u64>, n: usize) {
        self.shared.delivered.fetch_add(n as u64, Ordering::Relaxed);
        if let (Some(name), Some(last)) = (&self.spec.name, last) {
            if let Err(e) = self.store.save_checkpoint(name, last) {
                tracing::error!(
                    class = "failure",
                    emitter = self.id.as_str(),
                    "checkpoint not saved: {e}"
                );
            }
        }
    }

    /// Records, when this worker reports them, the latency (append →
    /// handled) of the first `handled` events and the call time.
    fn measured(&self, events: &[RecordedEvent], handled: usize, call: Duration) {
        // Counted here, before the health report: a delivery that health
        // shows is already in the metrics.
        self.metrics
            .acked
            .fetch_add(handled as u64, Ordering::Relaxed);
        if !self.reports_metrics {
            return;
        }
        self.metrics.call_time.record(call);
        let now_us = chrono::Utc::now().timestamp_micros();
        self.metrics.latency.record_many_micros(
            events[..handled]
                .iter()
                .map(|e| u64::try_from(now_us - e.created.timestamp_micros()).unwrap_or(0)),
        );
    }

    /// Reports a delivery's outcome to the store's tracker, when this worker
    /// reports health: `handled` events delivered, then the failure if any.
    fn report(&self, handled: usize, failure: Option<HealthInput>) {
        if !self.reports_health {
            return;
        }
        let name = self.target.name();
        if handled > 0 {
            self.monitor
                .health
                .record(name, HealthInput::Delivered(handled as u64));
        }
        if let Some(f) = failure {
            self.monitor.health.record(name, f);
        }
    }

    async fn deliver(&self, batch: &ReadBatch) -> Outcome {
        let n = batch.events.len();
        let started = Instant::now();
        match &self.target {
            Target::Plugin(name) => {
                let Some(plugins) = self.plugins.upgrade() else {
                    return Outcome::Gone("host stopping".into());
                };
                let envs = match batch
                    .events
                    .iter()
                    .map(|e| announcement(&self.spec.store, e, self.bus.node()).map(Arc::new))
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(envs) => envs,
                    Err(e) => return Outcome::Gone(format!("event not serialisable: {e}")),
                };
                match plugins
                    .deliver_direct(name, envs, !self.reports_health)
                    .await
                {
                    Ok(failures) => {
                        let call = started.elapsed();
                        match failures.first() {
                            None => {
                                self.measured(&batch.events, n, call);
                                self.report(n, None);
                                Outcome::Ok
                            }
                            Some((i, err)) => {
                                let i = (*i).min(n - 1);
                                self.measured(&batch.events, i, call);
                                self.report(i, Some(HealthInput::DeliveryFailed(err.clone())));
                                Outcome::Failed(i)
                            }
                        }
                    }
                    Err(e) if plugins.status(name).is_none() => {
                        Outcome::Gone(format!("subscriber gone: {e}"))
                    }
                    // A trap or a parked plugin: retry from the batch's start.
                    // (Reported as a trap, not parked: the breaker's trials
                    // find the plugin again once it is reloaded.)
                    Err(e) => {
                        self.report(0, Some(HealthInput::Trap(e)));
                        Outcome::Failed(0)
                    }
                }
            }
            Target::Native { sender, .. } => {
                let (ack, answer) = tokio::sync::oneshot::channel();
                let sent = EmittedBatch {
                    events: batch.events.clone(),
                    ack,
                };
                if sender.send(sent).await.is_err() {
                    return Outcome::Gone("subscriber gone".into());
                }
                match answer.await {
                    Ok(Ok(())) => {
                        self.measured(&batch.events, n, started.elapsed());
                        self.report(n, None);
                        Outcome::Ok
                    }
                    Ok(Err(i)) => {
                        let i = i.min(n - 1);
                        self.measured(&batch.events, i, started.elapsed());
                        self.report(
                            i,
                            Some(HealthInput::DeliveryFailed(format!(
                                "event {} failed",
                                batch.events[i].global_position
                            ))),
                        );
                        Outcome::Failed(i)
                    }
                    Err(_) => Outcome::Gone("subscriber gone".into()),
                }
            }
        }
    }
}

/// The OS thread running the caller, as an operator finds it in `ps -L`,
/// `top -H` or `/proc`: its name, thread id and the process id.
pub(crate) fn thread_identity() -> String {
    let current = std::thread::current();
    let name = current.name().unwrap_or("unnamed");
    let pid = std::process::id();
    // `/proc/thread-self` links to `<pid>/task/<tid>` (Linux).
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|t| t.to_string_lossy().into_owned()));
    match tid {
        Some(tid) => format!("{name}, tid {tid}, pid {pid}"),
        None => format!("{name}, {:?}, pid {pid}", current.id()),
    }
}

/// The first position to deliver for `spec`: after its checkpoint when it is
/// persistent and has one, else from its start.
pub(crate) fn initial_position(store: &Store, spec: &SubscriptionSpec) -> u64 {
    if let Some(name) = &spec.name {
        if let Ok(Some(acked)) = store.checkpoint(name) {
            return acked + 1;
        }
    }
    match spec.start {
        Start::Beginning => 0,
        Start::Position(p) => p,
        Start::Now => store.head_position().ok().flatten().map_or(0, |h| h + 1),
    }
}
