//! The thread that runs one subscriber or escalator plugin: it drains the
//! plugin's inbox, calls the guest singly or in batches, replaces a trapped
//! instance (with back-off) and reports crashes and restarts.
//!
//! Its version is a [`WorkerPre`] and its instance a [`WorkerInstance`],
//! each of one of the two worlds; the loop matches the world on every
//! event — messages go to a subscriber's `deliver` or an escalator's
//! `on_alert`, ticks to an escalator — so no call can reach an export the
//! instance's world does not have.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::bindings::escalator::exports::exesdb::plugin::escalator::{Escalation, Level};
use super::error::one_line;
use super::instance::{EscalatorExports, Instance, SubscriberExports, WorkerInstance, WorkerPre};
use super::manifest::World;
use super::plugins::{PluginInfo, PluginState as RunState};
use super::state::PluginContext;
use super::PluginError;
use crate::health::{Gate, HealthInput, HealthTracker};
use crate::integration::topics;
use crate::messages::alerts::{AlertEscalation, EscalationLevel, Severity};
use crate::messages::diagnostics::DebugTrace;
use crate::messages::lifecycle::{ProcessEvent, ProcessLifecycle};
use crate::messages::security::SecurityAlert;
use crate::messages::Envelope;
use crate::metrics::SubscriptionMetrics;

/// What woke the worker.
#[derive(Clone, Copy)]
enum Wake {
    /// Messages were drained (0: the inbox is closed and empty).
    Messages(usize),
    /// The escalator's tick is due.
    Tick,
    /// A swap or an unload asks for attention.
    Control,
    /// Counted access refusals fall due for their aggregated report.
    Violations,
}

/// A new version handed to a running worker (hot reload).
pub(crate) struct Swap {
    pub(crate) ctx: Arc<PluginContext>,
    pub(crate) pre: WorkerPre,
    pub(crate) instance: WorkerInstance,
    pub(crate) max_batch: usize,
    /// Signalled once the new version has the slot.
    pub(crate) done: std::sync::mpsc::SyncSender<()>,
}

/// Failures of a direct delivery: (index in the batch, error text).
pub(crate) type Failures = Vec<(usize, String)>;

/// Messages handed to the plugin directly (by an emitter worker), with the
/// channel that receives the outcome.
pub(crate) struct Request {
    pub(crate) events: Vec<Arc<Envelope>>,
    /// Record health and latency on the plugin's own tracker and collector
    /// (`false` when the emitter reports them to another store's).
    pub(crate) report: bool,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Failures, String>>,
}

/// How the outside reaches a running worker.
#[derive(Default)]
pub(crate) struct Control {
    pub(crate) swap: Mutex<Option<Swap>>,
    pub(crate) requests: Mutex<std::collections::VecDeque<Request>>,
    pub(crate) wake: tokio::sync::Notify,
}

/// The restart policy's state: back-off that doubles per consecutive trap,
/// and parking when traps within the window exceed the maximum.
struct RestartPolicy {
    base: Duration,
    max: Duration,
    window: Duration,
    max_restarts: usize,
    consecutive: u32,
    recent: std::collections::VecDeque<Instant>,
    parked: bool,
}

impl RestartPolicy {
    fn new(c: &super::RuntimeConfig) -> RestartPolicy {
        RestartPolicy {
            base: Duration::from_millis(c.restart_backoff_ms),
            max: Duration::from_millis(c.max_restart_backoff_ms),
            window: Duration::from_millis(c.restart_window_ms),
            max_restarts: c.max_restarts as usize,
            consecutive: 0,
            recent: Default::default(),
            parked: false,
        }
    }

    /// A call succeeded: the next trap starts the back-off anew.
    fn healthy(&mut self) {
        self.consecutive = 0;
    }

    /// The wait before the next restart attempt.
    fn next_backoff(&mut self) -> Duration {
        self.consecutive = self.consecutive.saturating_add(1);
        let factor = 1u32.checked_shl(self.consecutive - 1).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Records a trap at `now`: the back-off before restarting, or `None`
    /// when the plugin must be parked.
    fn after_trap(&mut self, now: Instant) -> Option<Duration> {
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() > self.max_restarts {
            self.parked = true;
            return None;
        }
        Some(self.next_backoff())
    }
}

/// Everything the worker thread needs.
pub(crate) struct Worker {
    pub(crate) ctx: Arc<PluginContext>,
    pub(crate) pre: WorkerPre,
    pub(crate) engine: wasmtime::Engine,
    pub(crate) info: Arc<Mutex<PluginInfo>>,
    pub(crate) max_batch: usize,
    pub(crate) health: Arc<HealthTracker>,
    pub(crate) metrics: Arc<SubscriptionMetrics>,
    pub(crate) control: Arc<Control>,
    pub(crate) policy: super::RuntimeConfig,
}

/// The kind of the lag marker a subscriber receives after its inbox dropped
/// messages (see [`Worker::mark_lag`]).
pub const LAGGED_KIND: &str = "Lagged";

/// Longest sleep while a breaker is open, so unloads are noticed promptly.
const OPEN_POLL: Duration = Duration::from_millis(50);

/// Publishes a `ProcessLifecycle` event for a plugin.
pub(crate) fn lifecycle(
    ctx: &PluginContext,
    event: ProcessEvent,
    reason: Option<String>,
    restart_count: u64,
) {
    lifecycle_caused(ctx, event, reason, restart_count, None);
}

/// [`lifecycle`] for an event caused by message `cause` (a crash).
fn lifecycle_caused(
    ctx: &PluginContext,
    event: ProcessEvent,
    reason: Option<String>,
    restart_count: u64,
    cause: Option<&Envelope>,
) {
    ctx.report_caused(
        &topics::process_lifecycle(ctx.name()),
        &ProcessLifecycle {
            name: ctx.name().to_owned(),
            module: format!("wasm:{}", ctx.manifest.world),
            event,
            reason,
            restart_count,
        },
        cause,
    );
}

impl Worker {
    /// Runs until the inbox is closed and drained.
    pub(crate) fn run(mut self, first: WorkerInstance) {
        let Some(sub) = self.ctx.subscriber.clone() else {
            return;
        };
        let mut next_tick = self.tick_interval().map(|t| Instant::now() + t);
        let mut instance = Some(first);
        let mut restarts = RestartPolicy::new(&self.policy);
        let mut buf: Vec<Arc<Envelope>> = Vec::with_capacity(self.max_batch);
        let mut seen_dropped = sub.dropped();
        loop {
            if let Some(swap) = self.control.swap.lock().take() {
                if let Some(old) = instance.take() {
                    old.shutdown();
                }
                self.ctx = swap.ctx;
                self.pre = swap.pre;
                self.max_batch = swap.max_batch;
                instance = Some(swap.instance);
                restarts = RestartPolicy::new(&self.policy);
                self.ctx.violations.reset_budget();
                next_tick = self.tick_interval().map(|t| Instant::now() + t);
                let _ = swap.done.send(());
            }
            if restarts.parked {
                // Parked: deliver nothing until a reload (swap) or unload.
                for req in self.control.requests.lock().drain(..) {
                    let _ = req
                        .reply
                        .send(Err(format!("plugin `{}` is parked", self.ctx.name())));
                }
                if sub.is_closed() {
                    break;
                }
                // Refusals counted before parking are still reported.
                match self.ctx.violations.next_due() {
                    Some(at) => {
                        self.pause(at.saturating_duration_since(Instant::now()));
                        self.after_call();
                    }
                    None => self.ctx.handle.block_on(self.control.wake.notified()),
                }
                continue;
            }
            if instance.is_none() {
                match self.pre.start(&self.engine, Arc::clone(&self.ctx)) {
                    Ok(i) => {
                        let count = {
                            let mut info = self.info.lock();
                            info.restarts += 1;
                            info.state = RunState::Running;
                            info.restarts
                        };
                        tracing::info!(
                            class = "success",
                            plugin = self.ctx.name(),
                            "🔁 PLUGIN RESTARTED: {} (restart {count})",
                            self.ctx.name()
                        );
                        lifecycle(&self.ctx, ProcessEvent::Restarted, None, count);
                        self.health.record(self.ctx.name(), HealthInput::Restarted);
                        instance = Some(i);
                    }
                    Err(e) => {
                        let line = one_line(&e.to_string());
                        self.info.lock().last_error = Some(line.clone());
                        tracing::error!(
                            class = "failure",
                            plugin = self.ctx.name(),
                            "restart failed: {line}"
                        );
                        if sub.is_closed() && sub.queue_depth() == 0 {
                            break;
                        }
                        let wait = restarts.next_backoff();
                        self.pause(wait);
                        continue;
                    }
                }
            }
            let request = self.control.requests.lock().pop_front();
            if let Some(req) = request {
                let outcome = match instance.as_mut().expect("instance present") {
                    WorkerInstance::Subscriber(inst) => {
                        self.deliver_in_order(inst, &req.events, req.report)
                    }
                    // `Plugins::deliver_direct` hands events to subscribers only.
                    WorkerInstance::Escalator(_) => {
                        let _ = req.reply.send(Err(format!(
                            "plugin `{}` is a {}, not a subscriber",
                            self.ctx.name(),
                            World::AlertEscalator
                        )));
                        continue;
                    }
                };
                match outcome {
                    Ok(failures) => {
                        restarts.healthy();
                        let _ = req.reply.send(Ok(failures));
                    }
                    Err((at, e)) => {
                        let _ = req.reply.send(Err(e.to_string()));
                        instance = None;
                        self.crashed(&e, req.events.get(at).map(|e| &**e));
                        match restarts.after_trap(Instant::now()) {
                            Some(wait) => self.pause(wait),
                            None => self.park(&restarts),
                        }
                    }
                }
                if self.after_call() {
                    restarts.parked = true;
                }
                continue;
            }
            let max = match self.health.gate(self.ctx.name()) {
                Gate::Deliver => self.max_batch,
                Gate::Trial => 1,
                Gate::Wait(d) => {
                    // Open breaker: leave messages in the inbox.
                    if sub.is_closed() {
                        break;
                    }
                    self.pause(d.min(OPEN_POLL));
                    continue;
                }
            };
            buf.clear();
            let violations_due = self.ctx.violations.next_due();
            let event = self.ctx.handle.block_on(async {
                let recv = sub.recv_many(&mut buf, max);
                let flush = async {
                    match violations_due {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                let tick = async {
                    match next_tick {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    n = recv => Wake::Messages(n),
                    () = tick => Wake::Tick,
                    () = self.control.wake.notified() => Wake::Control,
                    () = flush => Wake::Violations,
                }
            });
            if let Wake::Messages(n) = event {
                if n > 0 && self.ctx.manifest.world == World::Subscriber {
                    self.mark_lag(&sub, &mut buf, &mut seen_dropped);
                }
            }
            let inst = instance.as_mut().expect("instance present");
            let result = match (event, inst) {
                (Wake::Messages(0), _) => break,
                (Wake::Messages(_), WorkerInstance::Subscriber(inst)) => {
                    self.deliver(inst, &buf).map(drop)
                }
                (Wake::Messages(_), WorkerInstance::Escalator(inst)) => self.alerts(inst, &buf),
                (Wake::Tick, inst) => {
                    next_tick = self.tick_interval().map(|t| Instant::now() + t);
                    match inst {
                        WorkerInstance::Escalator(inst) => self.tick(inst),
                        // Only escalators tick (see `tick_interval`).
                        WorkerInstance::Subscriber(_) => Ok(()),
                    }
                }
                (Wake::Control, _) => continue,
                (Wake::Violations, _) => Ok(()),
            };
            match result {
                Ok(()) => restarts.healthy(),
                Err(e) => {
                    instance = None;
                    // The message that trapped: the one delivered, or the
                    // first of the batch (all its ids are in the DebugTrace).
                    let cause = match event {
                        Wake::Messages(_) => buf.iter().find(|m| m.kind != LAGGED_KIND),
                        _ => None,
                    };
                    let batch: Vec<String> = match event {
                        Wake::Messages(_) => buf.iter().map(|m| m.id.to_string()).collect(),
                        _ => Vec::new(),
                    };
                    self.crashed_in_batch(&e, cause.map(|c| &**c), batch);
                    match restarts.after_trap(Instant::now()) {
                        Some(wait) => self.pause(wait),
                        None => self.park(&restarts),
                    }
                }
            }
            if self.after_call() {
                restarts.parked = true;
            }
        }
        if let Some(i) = instance {
            i.shutdown();
        }
        // What is still counted is reported now rather than lost.
        let now = Instant::now() + super::violations::REPORT_INTERVAL;
        for report in self.ctx.violations.due(now) {
            super::host_impl::report_refusal(&self.ctx, &report);
        }
        self.ctx.stdout.flush_partial();
        self.ctx.stderr.flush_partial();
        self.info.lock().state = RunState::Stopped;
        lifecycle(
            &self.ctx,
            ProcessEvent::Stopped,
            Some("unloaded".into()),
            self.info.lock().restarts,
        );
    }

    /// The escalator's tick period, if this plugin ticks.
    fn tick_interval(&self) -> Option<Duration> {
        (self.ctx.manifest.world == World::AlertEscalator)
            .then(|| Duration::from_millis(self.ctx.manifest.tick_interval_ms.unwrap_or(1000)))
    }

    /// Sleeps for `d`, waking early for a swap or an unload.
    fn pause(&self, d: Duration) {
        let wake = self.control.wake.notified();
        self.ctx.handle.block_on(async {
            let _ = tokio::time::timeout(d, wake).await;
        });
    }

    /// Parks the plugin after too many traps: nothing is delivered until an
    /// operator reloads it; its subscription shows as failed, breaker open.
    fn park(&self, restarts: &RestartPolicy) {
        self.park_with(format!(
            "parked after {} traps within {} ms; reload to resume",
            restarts.recent.len(),
            self.policy.restart_window_ms
        ));
    }

    /// Puts a marker before `buf` when the inbox dropped messages since the
    /// last look (`drop_oldest` overflow), so the plugin learns how many it
    /// missed — the lag marker of the contract: kind `Lagged` on `system`,
    /// topic `lagged:<plugin>`, payload `{"missed", "total_missed"}`.
    fn mark_lag(&self, sub: &crate::bus::Subscriber, buf: &mut Vec<Arc<Envelope>>, seen: &mut u64) {
        let dropped = sub.dropped();
        if dropped <= *seen {
            return;
        }
        let missed = dropped - *seen;
        *seen = dropped;
        let marker = Envelope::new(
            crate::bus::Channel::System,
            topics::lagged(self.ctx.name()),
            LAGGED_KIND,
            serde_json::json!({ "missed": missed, "total_missed": dropped }),
            self.ctx.bus.node(),
        );
        buf.insert(0, Arc::new(marker));
    }

    /// After each guest call: reports the access refusals that fell due, and
    /// parks the plugin (returns `true`) when it exceeded its violation
    /// budget, raising a `SecurityAlert`.
    fn after_call(&self) -> bool {
        let due = self.ctx.violations.due(Instant::now());
        for report in &due {
            super::host_impl::report_refusal(&self.ctx, report);
        }
        let Some(count) = self.ctx.violations.take_over_budget() else {
            return false;
        };
        let budget = self.policy.max_violations_per_minute;
        let description = format!(
            "plugin `{}` made {count} refused calls within a minute, over the budget of {budget} ([runtime] max_violations_per_minute)",
            self.ctx.name()
        );
        let mut metadata = serde_json::Map::new();
        metadata.insert("plugin".into(), self.ctx.name().into());
        metadata.insert("count".into(), count.into());
        metadata.insert("budget".into(), budget.into());
        self.ctx.report(
            &topics::security_alert("violation_budget_exceeded"),
            &SecurityAlert {
                alert_type: "violation_budget_exceeded".into(),
                severity: Severity::Critical,
                description: description.clone(),
                affected_users: vec![self.ctx.name().to_owned()],
                source_ip: None,
                metadata,
            },
        );
        self.park_with(format!("{description}; reload to resume"));
        true
    }

    /// Parks the plugin for `reason`.
    fn park_with(&self, reason: String) {
        {
            let mut info = self.info.lock();
            info.state = RunState::Parked;
            info.last_error = Some(reason.clone());
        }
        tracing::error!(
            class = "failure",
            plugin = self.ctx.name(),
            "🅿️ PLUGIN PARKED: {}: {reason}",
            self.ctx.name()
        );
        self.health
            .record(self.ctx.name(), HealthInput::Parked(reason.clone()));
        lifecycle(
            &self.ctx,
            ProcessEvent::Crashed,
            Some(reason),
            self.info.lock().restarts,
        );
    }

    /// Calls the guest one message at a time and stops at the first failure,
    /// so nothing after a failed event is handled (store subscriptions need
    /// exactly-once, in-order delivery). Returns that failure, if any.
    /// A trap is returned with the index of the event that trapped.
    fn deliver_in_order(
        &self,
        inst: &mut Instance<SubscriberExports>,
        events: &[Arc<Envelope>],
        report: bool,
    ) -> Result<Failures, (usize, PluginError)> {
        for (i, env) in events.iter().enumerate() {
            let outcome = self
                .deliver_with(inst, std::slice::from_ref(env), report)
                .map_err(|e| (i, e))?;
            if let Some((_, err)) = outcome.into_iter().next() {
                return Ok(vec![(i, err)]);
            }
        }
        Ok(Vec::new())
    }

    /// Calls the guest with `buf`; returns the messages it failed.
    fn deliver(
        &self,
        inst: &mut Instance<SubscriberExports>,
        buf: &[Arc<Envelope>],
    ) -> Result<Failures, PluginError> {
        self.deliver_with(inst, buf, true)
    }

    /// [`deliver`](Self::deliver); health and latency are recorded only
    /// when `report` (an emitter of another store records them itself).
    fn deliver_with(
        &self,
        inst: &mut Instance<SubscriberExports>,
        buf: &[Arc<Envelope>],
        report: bool,
    ) -> Result<Failures, PluginError> {
        let started = Instant::now();
        let result = inst.deliver(buf);
        self.metrics.call_time.record(started.elapsed());
        match result {
            Ok(failures) => {
                let (ok, failed_n) = (buf.len() - failures.len(), failures.len());
                let now_us = chrono::Utc::now().timestamp_micros();
                let failed: std::collections::HashMap<usize, String> =
                    failures.into_iter().collect();
                let handled = buf
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !failed.contains_key(i));
                if report {
                    self.metrics
                        .latency
                        .record_many_micros(handled.map(|(_, env)| {
                            u64::try_from(now_us - env.timestamp.timestamp_micros()).unwrap_or(0)
                        }));
                }
                let mut ok_run = 0;
                for (i, env) in buf.iter().enumerate() {
                    match failed.get(&i) {
                        None => ok_run += 1,
                        Some(err) => {
                            if report {
                                self.flush_ok(&mut ok_run);
                            }
                            let err = &one_line(err);
                            tracing::warn!(
                                plugin = self.ctx.name(),
                                "plugin {} failed message {} ({}): {err}",
                                self.ctx.name(),
                                env.id,
                                env.topic
                            );
                            self.info.lock().last_error = Some(err.clone());
                            if report {
                                self.health.record_caused(
                                    self.ctx.name(),
                                    HealthInput::DeliveryFailed(err.clone()),
                                    Some(env),
                                );
                            }
                        }
                    }
                }
                if !report {
                    ok_run = 0;
                }
                self.flush_ok(&mut ok_run);
                // Last: a visible count means latencies and health are recorded.
                self.count(ok, failed_n);
                let mut failures: Failures = failed.into_iter().collect();
                failures.sort_by_key(|(i, _)| *i);
                Ok(failures)
            }
            Err(e) => {
                self.count(0, buf.len());
                Err(e)
            }
        }
    }

    /// Reports a run of successful deliveries to the health tracker.
    fn flush_ok(&self, run: &mut u64) {
        if *run > 0 {
            self.health
                .record(self.ctx.name(), HealthInput::Delivered(*run));
            *run = 0;
        }
    }

    fn alerts(
        &self,
        inst: &mut Instance<EscalatorExports>,
        buf: &[Arc<Envelope>],
    ) -> Result<(), PluginError> {
        for (i, env) in buf.iter().enumerate() {
            if env.kind != "SystemAlert" && env.kind != "AlertAck" {
                continue;
            }
            let started = Instant::now();
            let result = inst.on_alert(env);
            self.metrics.call_time.record(started.elapsed());
            match result {
                Ok(Ok(escalations)) => {
                    self.publish_escalations(escalations, Some(env));
                    self.count(1, 0);
                    self.health
                        .record(self.ctx.name(), HealthInput::Delivered(1));
                }
                Ok(Err(err)) => {
                    let err = one_line(&err);
                    self.count(0, 1);
                    tracing::warn!(
                        plugin = self.ctx.name(),
                        "plugin {} failed alert {}: {err}",
                        self.ctx.name(),
                        env.id
                    );
                    self.info.lock().last_error = Some(err.clone());
                    self.health
                        .record(self.ctx.name(), HealthInput::DeliveryFailed(err));
                }
                Err(e) => {
                    let relevant = buf[i..]
                        .iter()
                        .filter(|e| e.kind == "SystemAlert" || e.kind == "AlertAck")
                        .count();
                    self.count(0, relevant);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn tick(&self, inst: &mut Instance<EscalatorExports>) -> Result<(), PluginError> {
        match inst.tick(crate::bus::now_ms())? {
            Ok(escalations) => self.publish_escalations(escalations, None),
            Err(err) => self.info.lock().last_error = Some(err),
        }
        Ok(())
    }

    /// Publishes the escalator's decisions as `AlertEscalation`s on `alerts`.
    fn publish_escalations(&self, escalations: Vec<Escalation>, cause: Option<&Arc<Envelope>>) {
        let level = |l: Level| match l {
            Level::Level1 => EscalationLevel::Level1,
            Level::Level2 => EscalationLevel::Level2,
            Level::Level3 => EscalationLevel::Level3,
        };
        for e in escalations {
            let payload = AlertEscalation {
                alert_id: e.alert_id.clone(),
                from_level: e.from_level.map(level),
                to_level: level(e.to_level),
                escalation_reason: e.reason,
                escalated_by: self.ctx.name().to_owned(),
                notify_contacts: e.notify_contacts,
            };
            tracing::warn!(
                class = "action",
                plugin = self.ctx.name(),
                "🚨 ALERT ESCALATION: {} -> {}",
                payload.alert_id,
                payload.to_level
            );
            let env = Envelope::typed(
                topics::alert_escalation(&e.alert_id),
                &payload,
                self.ctx.bus.node(),
            );
            let env = match (env, cause) {
                (Ok(env), Some(c)) => Ok(env.with_causation_id(c.id.to_string())),
                (env, _) => env,
            };
            if let Err(err) = env.map_err(Into::into).and_then(|env| self.ctx.send(env)) {
                tracing::warn!(
                    plugin = self.ctx.name(),
                    "could not publish AlertEscalation: {err}"
                );
            }
        }
    }

    fn count(&self, ok: usize, failed: usize) {
        let mut info = self.info.lock();
        info.delivered += ok as u64;
        info.failed += failed as u64;
    }

    /// Reports a trap while handling `cause` (see [`crashed_in_batch`](Self::crashed_in_batch)).
    fn crashed(&self, e: &PluginError, cause: Option<&Envelope>) {
        let batch = cause.map(|c| vec![c.id.to_string()]).unwrap_or_default();
        self.crashed_in_batch(e, cause, batch);
    }

    /// Reports a trap: console (one line), `lifecycle` (crashed) and
    /// `diagnostics` (`DebugTrace` with the full error text and the ids of
    /// the messages of the call). Both carry `cause`'s id as causation id and
    /// its correlation id.
    fn crashed_in_batch(&self, e: &PluginError, cause: Option<&Envelope>, batch: Vec<String>) {
        let line = one_line(&e.to_string());
        let restarts = {
            let mut info = self.info.lock();
            info.traps += 1;
            info.state = RunState::Restarting;
            info.last_error = Some(line.clone());
            info.restarts
        };
        tracing::error!(
            class = "failure",
            plugin = self.ctx.name(),
            "💥 PLUGIN CRASHED: {line}"
        );
        self.health
            .record_caused(self.ctx.name(), HealthInput::Trap(line.clone()), cause);
        lifecycle_caused(
            &self.ctx,
            ProcessEvent::Crashed,
            Some(line),
            restarts,
            cause,
        );
        let mut trace_data = serde_json::Map::new();
        trace_data.insert("error".into(), e.to_string().into());
        if !batch.is_empty() {
            trace_data.insert("messages".into(), batch.into());
        }
        self.ctx.report_caused(
            &topics::debug_trace(self.ctx.name()),
            &DebugTrace {
                trace_id: uuid::Uuid::now_v7().to_string(),
                component: self.ctx.name().to_owned(),
                operation: "plugin_call".into(),
                trace_data,
                stack_trace: Some(e.to_string()),
                duration_ms: None,
                metadata: serde_json::Map::new(),
            },
            cause,
        );
    }
}
