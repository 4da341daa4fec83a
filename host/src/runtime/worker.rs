//! The thread that runs one subscriber or escalator plugin: it drains the
//! plugin's inbox, calls the guest singly or in batches, replaces a trapped
//! instance (with back-off) and reports crashes and restarts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::component::InstancePre;

use super::bindings::escalator::exports::exesdb::plugin::escalator::{Escalation, Level};
use super::instance::Instance;
use super::manifest::World;
use super::plugins::{PluginInfo, PluginState as RunState};
use super::state::{PluginContext, PluginState};
use super::PluginError;
use crate::health::{Gate, HealthInput, HealthTracker};
use crate::integration::topics;
use crate::messages::alerts::{AlertEscalation, EscalationLevel};
use crate::messages::diagnostics::DebugTrace;
use crate::messages::lifecycle::{ProcessEvent, ProcessLifecycle};
use crate::messages::Envelope;
use crate::metrics::SubscriptionMetrics;

/// First wait before re-instantiating after a failed restart.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between restart attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Everything the worker thread needs.
pub(crate) struct Worker {
    pub(crate) ctx: Arc<PluginContext>,
    pub(crate) pre: InstancePre<PluginState>,
    pub(crate) engine: wasmtime::Engine,
    pub(crate) info: Arc<Mutex<PluginInfo>>,
    pub(crate) max_batch: usize,
    pub(crate) health: Arc<HealthTracker>,
    pub(crate) metrics: Arc<SubscriptionMetrics>,
}

/// Longest sleep while a breaker is open, so unloads are noticed promptly.
const OPEN_POLL: Duration = Duration::from_millis(50);

/// Publishes a `ProcessLifecycle` event for a plugin.
pub(crate) fn lifecycle(
    ctx: &PluginContext,
    event: ProcessEvent,
    reason: Option<String>,
    restart_count: u64,
) {
    ctx.report(
        &topics::process_lifecycle(ctx.name()),
        &ProcessLifecycle {
            name: ctx.name().to_owned(),
            module: format!("wasm:{}", ctx.manifest.world),
            event,
            reason,
            restart_count,
        },
    );
}

impl Worker {
    /// Runs until the inbox is closed and drained.
    pub(crate) fn run(self, first: Instance) {
        let Some(sub) = self.ctx.subscriber.clone() else {
            return;
        };
        let tick = match self.ctx.manifest.world {
            World::AlertEscalator => Some(Duration::from_millis(
                self.ctx.manifest.tick_interval_ms.unwrap_or(1000),
            )),
            _ => None,
        };
        let mut next_tick = tick.map(|t| Instant::now() + t);
        let mut instance = Some(first);
        let mut backoff = FIRST_BACKOFF;
        let mut buf: Vec<Arc<Envelope>> = Vec::with_capacity(self.max_batch);
        loop {
            if instance.is_none() {
                match Instance::start(&self.engine, &self.pre, Arc::clone(&self.ctx)) {
                    Ok(i) => {
                        let restarts = {
                            let mut info = self.info.lock();
                            info.restarts += 1;
                            info.state = RunState::Running;
                            info.restarts
                        };
                        tracing::info!(
                            class = "success",
                            plugin = self.ctx.name(),
                            "🔁 PLUGIN RESTARTED: {} (restart {restarts})",
                            self.ctx.name()
                        );
                        lifecycle(&self.ctx, ProcessEvent::Restarted, None, restarts);
                        self.health.record(self.ctx.name(), HealthInput::Restarted);
                        instance = Some(i);
                        backoff = FIRST_BACKOFF;
                    }
                    Err(e) => {
                        self.info.lock().last_error = Some(e.to_string());
                        tracing::error!(
                            class = "failure",
                            plugin = self.ctx.name(),
                            "restart failed: {e}"
                        );
                        if sub.is_closed() && sub.queue_depth() == 0 {
                            break;
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let max = match self.health.gate(self.ctx.name()) {
                Gate::Deliver => self.max_batch,
                Gate::Trial => 1,
                Gate::Wait(d) => {
                    // Open breaker: leave messages in the inbox.
                    if sub.is_closed() {
                        break;
                    }
                    std::thread::sleep(d.min(OPEN_POLL));
                    continue;
                }
            };
            buf.clear();
            let got = self.ctx.handle.block_on(async {
                match next_tick {
                    Some(at) => tokio::time::timeout_at(at.into(), sub.recv_many(&mut buf, max))
                        .await
                        .ok(),
                    None => Some(sub.recv_many(&mut buf, max).await),
                }
            });
            let inst = instance.as_mut().expect("instance present");
            let result = match got {
                Some(0) => break,
                Some(_) if self.ctx.manifest.world == World::Subscriber => self.deliver(inst, &buf),
                Some(_) => self.alerts(inst, &buf),
                None => {
                    next_tick = tick.map(|t| Instant::now() + t);
                    self.tick(inst)
                }
            };
            if let Err(e) = result {
                self.crashed(&e);
                instance = None;
            }
        }
        if let Some(i) = instance {
            i.shutdown();
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

    fn deliver(&self, inst: &mut Instance, buf: &[Arc<Envelope>]) -> Result<(), PluginError> {
        let started = Instant::now();
        let result = inst.deliver(buf);
        self.metrics.call_time.record(started.elapsed());
        match result {
            Ok(failures) => {
                let (ok, failed_n) = (buf.len() - failures.len(), failures.len());
                let now = chrono::Utc::now();
                let failed: std::collections::HashMap<usize, String> =
                    failures.into_iter().collect();
                let handled = buf
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !failed.contains_key(i));
                self.metrics
                    .latency
                    .record_many_micros(handled.map(|(_, env)| {
                        u64::try_from((now - env.timestamp).num_microseconds().unwrap_or(0))
                            .unwrap_or(0)
                    }));
                let mut ok_run = 0;
                for (i, env) in buf.iter().enumerate() {
                    match failed.get(&i) {
                        None => ok_run += 1,
                        Some(err) => {
                            self.flush_ok(&mut ok_run);
                            tracing::warn!(
                                plugin = self.ctx.name(),
                                "plugin {} failed message {} ({}): {err}",
                                self.ctx.name(),
                                env.id,
                                env.topic
                            );
                            self.info.lock().last_error = Some(err.clone());
                            self.health
                                .record(self.ctx.name(), HealthInput::DeliveryFailed(err.clone()));
                        }
                    }
                }
                self.flush_ok(&mut ok_run);
                // Last: a visible count means latencies and health are recorded.
                self.count(ok, failed_n);
                Ok(())
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

    fn alerts(&self, inst: &mut Instance, buf: &[Arc<Envelope>]) -> Result<(), PluginError> {
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

    fn tick(&self, inst: &mut Instance) -> Result<(), PluginError> {
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

    /// Reports a trap: console, `lifecycle` (crashed) and `diagnostics`.
    fn crashed(&self, e: &PluginError) {
        let restarts = {
            let mut info = self.info.lock();
            info.traps += 1;
            info.state = RunState::Restarting;
            info.last_error = Some(e.to_string());
            info.restarts
        };
        tracing::error!(
            class = "failure",
            plugin = self.ctx.name(),
            "💥 PLUGIN CRASHED: {e}"
        );
        self.health
            .record(self.ctx.name(), HealthInput::Trap(e.to_string()));
        lifecycle(
            &self.ctx,
            ProcessEvent::Crashed,
            Some(e.to_string()),
            restarts,
        );
        let mut trace_data = serde_json::Map::new();
        trace_data.insert("error".into(), e.to_string().into());
        self.ctx.report(
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
        );
    }
}
