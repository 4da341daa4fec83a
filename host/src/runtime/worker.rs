//! The thread that runs one subscriber or escalator plugin: it drains the
//! plugin's inbox, calls the guest singly or in batches, replaces a trapped
//! instance (with back-off) and reports crashes and restarts.
//!
//! Its version is a [`WorkerPre`] and its instance a [`WorkerInstance`],
//! each of one of the two worlds; the loop matches the world on every
//! event — messages go to a subscriber's `deliver` or an escalator's
//! `on_alert`, ticks to an escalator — so no call can reach an export the
//! instance's world does not have.
//!
//! # Commands
//!
//! Messages from the bus reach the worker through the plugin's bus inbox
//! (a [`crate::bus::Subscriber`], with its own overflow policy); everything
//! else the outside asks of it is a [`Command`] over one channel, in the
//! order it asked: a hot reload's [`Swap`], an emitter's direct delivery
//! ([`Request`]), and [`Stop`](Command::Stop) once the inbox was closed
//! (unload, shutdown). The plugin's slot holds the sending side,
//! [`Control`]; the worker owns the receiving side, [`Commands`].
//!
//! Every wait of the loop — on the inbox, a back-off after a trap, an open
//! breaker, a parked plugin — ends early when a command arrives. What
//! arrives while the worker waits or calls the guest is kept in the
//! backlog of [`Commands`], so nothing is lost or reordered, and is taken
//! at the top of the next turn: a swap first; then, while parked, every
//! request is refused ("plugin `X` is parked"); else the oldest request is
//! handled before the next inbox batch. A swap whose reload stopped waiting
//! is discarded (see [`Swap::done`]). When every sender is gone (the slot
//! was dropped) the channel counts as one last stop and is not polled
//! again.
//!
//! The worker ends when its inbox is closed and drained. It then closes the
//! channel and drops what it did not take: a request's caller learns that
//! the plugin stopped before handling the events, a swap's new instance is
//! shut down and its reload fails.

use std::collections::VecDeque;
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
    /// A command arrived (kept in the backlog), or the channel closed.
    Command,
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
    ///
    /// A command cannot be taken back once sent, so a reload that stops
    /// waiting (it timed out, or its future was dropped) withdraws its swap
    /// by dropping the receiving side: the worker takes a swap only while
    /// [`is_closed`](tokio::sync::oneshot::Sender::is_closed) is false, and
    /// otherwise [discards](Swap::discard) it, keeping the running version.
    /// The one window left is the worker's own hand-over (the old
    /// instance's `shutdown`, between that check and the signal): a reload
    /// that gives up within it reports a failure although the new version
    /// runs.
    pub(crate) done: tokio::sync::oneshot::Sender<()>,
}

impl Swap {
    /// Drops a swap that will not be taken: its new instance is shut down,
    /// and its reload, if it still waits, learns that it was not taken.
    pub(crate) fn discard(self) {
        self.instance.shutdown();
    }
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

/// What the outside asks of a running worker, in the order it asked (see
/// the [module](self) documentation).
pub(crate) enum Command {
    /// Hot reload: take this version (boxed: a swap is rare and large, a
    /// delivery frequent and small).
    Swap(Box<Swap>),
    /// Handle these events directly (an emitter), in order.
    Deliver(Request),
    /// The inbox was closed (unload, shutdown): drain it and stop. The
    /// closed inbox says so by itself; the command wakes the worker to see it.
    Stop,
}

/// The sending side of a worker's command channel, held by the plugin's
/// slot.
#[derive(Clone)]
pub(crate) struct Control(tokio::sync::mpsc::UnboundedSender<Command>);

impl Control {
    /// A new command channel: the slot's side and the worker's.
    pub(crate) fn channel() -> (Control, Commands) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let commands = Commands {
            rx,
            swaps: VecDeque::new(),
            requests: VecDeque::new(),
            open: true,
        };
        (Control(tx), commands)
    }

    /// Sends `command` without waiting; gives it back when the worker has
    /// ended (or never ran: a formatter's slot).
    pub(crate) fn send(&self, command: Command) -> Result<(), Command> {
        self.0.send(command).map_err(|e| e.0)
    }
}

/// The worker's side of its command channel, with the backlog: the
/// commands received but not taken yet.
pub(crate) struct Commands {
    rx: tokio::sync::mpsc::UnboundedReceiver<Command>,
    /// Swaps received, oldest first.
    swaps: VecDeque<Swap>,
    /// Direct deliveries received, oldest first.
    requests: VecDeque<Request>,
    /// Whether the channel is still polled: false once every sender is
    /// gone, or the worker closed it.
    open: bool,
}

impl Commands {
    /// Puts a received command in the backlog.
    fn keep(&mut self, command: Command) {
        match command {
            Command::Swap(swap) => self.swaps.push_back(*swap),
            Command::Deliver(req) => self.requests.push_back(req),
            // Nothing to keep: the closed inbox is seen by the loop.
            Command::Stop => {}
        }
    }

    /// Moves every command that has arrived into the backlog, without
    /// waiting.
    fn drain(&mut self) {
        use tokio::sync::mpsc::error::TryRecvError;
        while self.open {
            match self.rx.try_recv() {
                Ok(command) => self.keep(command),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.open = false,
            }
        }
    }

    /// Waits for the next command and keeps it. When every sender is gone
    /// it returns once, as for a [`Command::Stop`], and never again (the
    /// channel is no longer polled). Cancel-safe: a command is kept as soon
    /// as it is received.
    async fn arrival(&mut self) {
        if !self.open {
            return std::future::pending().await;
        }
        match self.rx.recv().await {
            Some(command) => self.keep(command),
            None => self.open = false,
        }
    }

    /// The swap to take: the newest one whose reload still waits. The
    /// others are discarded — older ones are superseded by it, as a second
    /// reload replaced a first one the worker had not taken yet.
    fn take_swap(&mut self) -> Option<Swap> {
        let mut taken = None;
        while let Some(swap) = self.swaps.pop_back() {
            if taken.is_none() && !swap.done.is_closed() {
                taken = Some(swap);
            } else {
                swap.discard();
            }
        }
        taken
    }

    /// The oldest direct delivery, including those that arrived just now.
    fn next_request(&mut self) -> Option<Request> {
        self.drain();
        self.requests.pop_front()
    }

    /// Closes the channel when the worker ends: later sends fail, and what
    /// was not taken is dropped (a request's caller learns that the plugin
    /// stopped) or discarded (a swap).
    fn close(&mut self) {
        self.rx.close();
        // Drained to the end, even when it was no longer polled.
        self.open = true;
        self.drain();
        self.requests.clear();
        for swap in self.swaps.drain(..) {
            swap.discard();
        }
    }
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
    pub(crate) commands: Commands,
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
            self.commands.drain();
            if let Some(swap) = self.commands.take_swap() {
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
                for req in self.commands.requests.drain(..) {
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
                    None => self.idle(),
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
            if let Some(req) = self.commands.next_request() {
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
            let commands = &mut self.commands;
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
                    () = commands.arrival() => Wake::Command,
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
                (Wake::Command, _) => continue,
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
        self.commands.close();
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

    /// Sleeps for `d`, waking early when a command arrives (a swap, a
    /// direct delivery, a stop); the command is kept in the backlog.
    fn pause(&mut self, d: Duration) {
        let commands = &mut self.commands;
        self.ctx.handle.block_on(async {
            let _ = tokio::time::timeout(d, commands.arrival()).await;
        });
    }

    /// Waits for the next command, however long it takes.
    fn idle(&mut self) {
        let commands = &mut self.commands;
        self.ctx.handle.block_on(commands.arrival());
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
