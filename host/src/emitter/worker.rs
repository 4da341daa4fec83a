//! The emitter worker: one per (store, selector, subscriber). It catches up
//! from history, then follows new appends, delivering in order and in
//! batches; a persistent subscription advances its durable checkpoint on
//! acknowledgement. It pauses while its subscriber is unhealthy (breaker
//! open) and resumes from its position, so pausing loses nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::stores::announcement;
use super::subscription::{EmittedBatch, Start, SubscriptionSpec, Target};
use crate::bus::Bus;
use crate::health::{Gate, HealthInput, HealthTracker};
use crate::integration::topics;
use crate::logging::format;
use crate::messages::lifecycle::{ProcessEvent, ProcessLifecycle};
use crate::runtime::Plugins;
use crate::store::{ReadBatch, Store};

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

pub(crate) struct EmitterWorker {
    pub(crate) id: String,
    pub(crate) spec: SubscriptionSpec,
    pub(crate) store: Store,
    pub(crate) target: Target,
    pub(crate) health: Arc<HealthTracker>,
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
        format!("{}:{}", self.spec.store, self.spec.selector)
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

    pub(crate) async fn run(mut self) {
        let scheduler = std::thread::current().name().unwrap_or("tokio").to_owned();
        let (title, body) = format::activation_banner(&format::Activation {
            topic: &self.topic(),
            store: &self.spec.store,
            scheduler: &scheduler,
            pid: &self.id,
            subscriber: self.target.name(),
        });
        tracing::info!(class = "success", banner = body.as_str(), "{title}");
        self.lifecycle(ProcessEvent::Started, None);
        let mut position = self.start_position;
        self.shared.position.store(position, Ordering::Relaxed);
        let mut appends = self.store.subscribe_appends();
        let reason = loop {
            if *self.stop.borrow() {
                break ":shutdown".to_owned();
            }
            let max = match self.health.gate(self.target.name()) {
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
        let selector = self.spec.selector.to_string();
        let (title, body) = format::termination_banner(&format::Termination {
            reason: &reason,
            store: &self.spec.store,
            selector: &selector,
            subscriber: self.target.name(),
            pid: &self.id,
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

    async fn deliver(&self, batch: &ReadBatch) -> Outcome {
        match &self.target {
            Target::Plugin(name) => {
                let Some(plugins) = self.plugins.upgrade() else {
                    return Outcome::Gone("host stopping".into());
                };
                let envs = batch
                    .events
                    .iter()
                    .map(|e| Arc::new(announcement(&self.spec.store, e, self.bus.node())))
                    .collect();
                match plugins.deliver_direct(name, envs).await {
                    Ok(failures) => failures
                        .first()
                        .map_or(Outcome::Ok, |(i, _)| Outcome::Failed(*i)),
                    Err(e) if plugins.status(name).is_none() => {
                        Outcome::Gone(format!("subscriber gone: {e}"))
                    }
                    // A trap or a parked plugin: retry from the batch's start.
                    Err(_) => Outcome::Failed(0),
                }
            }
            Target::Native { name, sender } => {
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
                        self.health
                            .record(name, HealthInput::Delivered(batch.events.len() as u64));
                        Outcome::Ok
                    }
                    Ok(Err(i)) => {
                        let i = i.min(batch.events.len() - 1);
                        if i > 0 {
                            self.health.record(name, HealthInput::Delivered(i as u64));
                        }
                        self.health.record(
                            name,
                            HealthInput::DeliveryFailed(format!(
                                "event {} failed",
                                batch.events[i].global_position
                            )),
                        );
                        Outcome::Failed(i)
                    }
                    Err(_) => Outcome::Gone("subscriber gone".into()),
                }
            }
        }
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
