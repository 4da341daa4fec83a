//! The record of one request the gate let through: it counts itself in
//! flight (for the call budget, see [`super::budget`]) until it ends, and
//! when it ends — its response read to the end, a failure, the guest
//! dropping it, or a refusal after DNS — it is counted for its destination
//! (status class, latency, and its breaker settled, see
//! [`super::circuit`]) and, unless refused, logged on `audit` as one
//! `AccessLog`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::circuit;
use super::stats::Ended;
use crate::bus::Channel;
use crate::integration::topics;
use crate::messages::Envelope;
use crate::runtime::state::PluginContext;

/// The `resource_type` of an outbound request's `AccessLog` (and the last
/// segment of its topic, `audit:access_log:outbound_http`).
pub(crate) const RESOURCE_TYPE: &str = "outbound_http";

/// One request, from admission to its end.
pub(crate) struct Exchange {
    ctx: Arc<PluginContext>,
    in_flight: Arc<AtomicUsize>,
    destination: String,
    method: String,
    started: Instant,
    /// When the response head came, after `started`.
    head_after: Option<Duration>,
    /// It is its destination's half-open trial.
    trial: bool,
    status: Option<u16>,
    bytes: u64,
    error: Option<String>,
    denied: bool,
    done: bool,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("destination", &self.destination)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// A request admitted now (as its breaker's trial when `trial`),
    /// counted in flight.
    pub(crate) fn start(
        ctx: Arc<PluginContext>,
        in_flight: Arc<AtomicUsize>,
        destination: String,
        method: String,
        trial: bool,
    ) -> Exchange {
        in_flight.fetch_add(1, Ordering::Relaxed);
        Exchange {
            ctx,
            in_flight,
            destination,
            method,
            started: Instant::now(),
            head_after: None,
            trial,
            status: None,
            bytes: 0,
            error: None,
            denied: false,
            done: false,
        }
    }

    pub(crate) fn ctx(&self) -> &PluginContext {
        &self.ctx
    }

    /// The response's status arrived.
    pub(crate) fn responded(&mut self, status: u16) {
        self.status = Some(status);
        self.head_after = Some(self.started.elapsed());
    }

    /// `n` more bytes of the response body arrived; the total so far.
    pub(crate) fn read(&mut self, n: usize) -> u64 {
        self.bytes = self.bytes.saturating_add(n as u64);
        self.bytes
    }

    /// The request failed (no response, or its body cut short); the first
    /// failure is the one recorded.
    pub(crate) fn fail(&mut self, error: impl std::fmt::Display) {
        if self.error.is_none() {
            self.error = Some(error.to_string());
        }
    }

    /// The gate refused it after resolving its host: it is counted as
    /// denied and reported as a refusal, not logged as an access.
    pub(crate) fn deny(&mut self) {
        self.denied = true;
    }

    /// Ends the exchange (once): out of flight, counted (a breaker
    /// transition published), logged.
    pub(crate) fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.status.is_none() && self.error.is_none() && !self.denied {
            self.error = Some("cancelled by the plugin before the response".into());
        }
        let ended = Ended {
            status: self.status,
            error: self.error.clone(),
            latency: self.head_after.unwrap_or_else(|| self.started.elapsed()),
            denied: self.denied,
            trial: self.trial,
        };
        let change = self
            .ctx
            .outbound
            .end(&self.destination, ended, Instant::now());
        if let Some((info, transition)) = change {
            circuit::announce(&self.ctx, &info, transition);
        }
        if !self.denied {
            self.log();
        }
    }

    /// The `AccessLog` of this request: the kind's fields (`action` the
    /// method, `resource_id` the destination — never the path or query,
    /// which may carry tokens) plus `method`, `destination`, `status`,
    /// `bytes` and `error`, which `AccessLog` readers of schema 1.0 ignore.
    fn log(&self) {
        let plugin = self.ctx.name();
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let success = self.error.is_none() && self.status.is_some_and(|s| s < 400);
        let mut payload = json!({
            "user_id": plugin,
            "resource_type": RESOURCE_TYPE,
            "resource_id": self.destination,
            "action": self.method,
            "success": success,
            "duration_ms": duration_ms,
            "user_agent": format!("wasm-plugin/{plugin}"),
            "method": self.method,
            "destination": self.destination,
            "status": self.status,
            "bytes": self.bytes,
        });
        if let Some(e) = &self.error {
            payload["error"] = e.as_str().into();
        }
        tracing::debug!(
            plugin,
            "outbound {} {} -> {:?} ({} bytes, {duration_ms} ms){}",
            self.method,
            self.destination,
            self.status,
            self.bytes,
            self.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        let env = Envelope::new(
            Channel::Audit,
            topics::audit_access_log(RESOURCE_TYPE),
            "AccessLog",
            payload,
            self.ctx.bus.node(),
        );
        if let Err(e) = self.ctx.send(env) {
            tracing::warn!(plugin, "could not publish the AccessLog of a request: {e}");
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.finish();
    }
}
