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
use crate::integration::topics;
use crate::messages::alerts::{AlertEscalation, EscalationLevel};
use crate::messages::diagnostics::DebugTrace;
use crate::messages::lifecycle::{ProcessEvent, ProcessLifecycle};
use crate::messages::Envelope;

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
}

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
            buf.clear();
            let got = self.ctx.handle.block_on(async {
                match next_tick {
                    Some(at) => {
                        tokio::time::timeout_at(at.into(), sub.recv_many(&mut buf, self.max_batch))
                            .await
                            .ok()
                    }
                    None => Some(sub.recv_many(&mut buf, self.max_batch).await),
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
        match inst.deliver(buf) {
            Ok(failures) => {
                self.count(buf.len() - failures.len(), failures.len());
                for (i, err) in failures {
                    if let Some(env) = buf.get(i) {
                        tracing::warn!(
                            plugin = self.ctx.name(),
                            "plugin {} failed message {} ({}): {err}",
                            self.ctx.name(),
                            env.id,
                            env.topic
                        );
                    }
                    self.info.lock().last_error = Some(err);
                }
                Ok(())
            }
            Err(e) => {
                self.count(0, buf.len());
                Err(e)
            }
        }
    }

    fn alerts(&self, inst: &mut Instance, buf: &[Arc<Envelope>]) -> Result<(), PluginError> {
        for (i, env) in buf.iter().enumerate() {
            if env.kind != "SystemAlert" && env.kind != "AlertAck" {
                continue;
            }
            match inst.on_alert(env) {
                Ok(Ok(escalations)) => {
                    self.count(1, 0);
                    self.publish_escalations(escalations, Some(env));
                }
                Ok(Err(err)) => {
                    self.count(0, 1);
                    tracing::warn!(
                        plugin = self.ctx.name(),
                        "plugin {} failed alert {}: {err}",
                        self.ctx.name(),
                        env.id
                    );
                    self.info.lock().last_error = Some(err);
                }
                Err(e) => {
                    self.count(0, buf.len() - i);
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
