//! Plugins' outbound HTTP: the one gate every `wasi:http/outgoing-handler`
//! request passes, the `send_request` hook of the plugin's
//! [`WasiHttpHooks`]. Nothing else in a plugin reaches the network (its
//! sockets are refused, see [`super::sockets`]).
//!
//! For each request, in order:
//!
//! 1. **Grant.** Its scheme, host and port must all be covered by one entry
//!    of the manifest's `[wasi] allowed_outbound_hosts` (see
//!    [`OutboundHost`]). Nothing listed: nothing is covered.
//! 2. **Breaker.** The destination's circuit breaker (one per plugin and
//!    destination, with the `[health_monitoring]` thresholds, see
//!    [`circuit`]) must not be open; half-open, one request goes as the
//!    trial.
//! 3. **Rate.** At most `limits.http_requests_per_second` requests a second
//!    per plugin (a token bucket: a burst of one second's worth).
//! 4. **Addresses.** The host is resolved once; if any address it resolves
//!    to is loopback, private, link-local (the metadata service among
//!    them), unspecified, multicast or broadcast (see [`addresses`]), the
//!    request is refused unless a covering grant names that address
//!    literally (`http://127.0.0.1:*` permits 127.0.0.1; a granted name
//!    resolving to 127.0.0.1 is refused). The connection goes to a checked
//!    address, never through a second resolution.
//! 5. **Limits.** `limits.http_timeout_ms` bounds connecting, the wait for
//!    the response head and each wait for more of its body (the guest's
//!    `request-options` may ask for less, never more: wasmtime's 600 s
//!    defaults never apply); a body over `limits.http_max_response_bytes`
//!    is cut with `http-response-body-size` (at once when its
//!    `content-length` says so). A call's time budget does not run while
//!    the guest waits for its requests (see [`budget`]).
//!
//! A refusal (1, 3, 4) is `error-code::http-request-denied` for the guest,
//! and is counted and reported like every other refusal of the plugin's
//! calls ([`super::violations`]: an aggregated `AccessViolation` on
//! `security` and failed `AccessLog` on `audit`, within the same budget),
//! with action `http_request` and violation type [`HOST_NOT_ALLOWED`],
//! [`RATE_LIMITED`] or `outbound_address_blocked`.
//!
//! A request an open breaker stops (2) is not a violation: the plugin
//! asked for something it may do, at a destination that keeps failing. It
//! gets `error-code::connection-refused` — what the dead destination would
//! most likely have answered, and an error a client retries later, unlike
//! `http-request-denied`, which says the request will never be allowed —
//! without anything being resolved or connected, and is counted in the
//! destination's `breaker_rejected` (not `denied`), with no `AccessLog` and
//! no console line of its own; the breaker's transitions are reported
//! instead (see [`circuit::announce`]).
//!
//! Every request let through is logged on `audit` as one `AccessLog` when
//! it ends (see [`exchange`]), and every request is counted per destination
//! in `plugin status` (`outbound`: counts, status classes, latency, the
//! breaker; see [`OutboundInfo`]).

mod addresses;
pub(crate) mod budget;
mod circuit;
mod exchange;
mod grants;
mod stats;
mod transport;
mod trust;

use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

pub(crate) use circuit::BreakerSettings;
pub use grants::OutboundHost;
pub use stats::OutboundInfo;
pub(crate) use stats::OutboundStats;
pub(crate) use trust::Trust;

use super::state::PluginContext;
use circuit::Admission;
use exchange::Exchange;
use grants::Destination;
use transport::{Plan, Timeouts};

/// The `action` of an outbound request's refusals.
pub(crate) const ACTION: &str = "http_request";

/// The `violation_type` of a request no grant covers.
pub(crate) const HOST_NOT_ALLOWED: &str = "outbound_host_not_allowed";

/// The `violation_type` of a request over `limits.http_requests_per_second`.
pub(crate) const RATE_LIMITED: &str = "outbound_rate_limited";

/// The hook every outbound request of one instance goes through.
pub(crate) struct Gate {
    ctx: Arc<PluginContext>,
    /// The instance's requests in flight (see [`budget::WaitClock`]).
    in_flight: Arc<AtomicUsize>,
}

impl Gate {
    pub(crate) fn new(ctx: Arc<PluginContext>, in_flight: Arc<AtomicUsize>) -> Gate {
        Gate { ctx, in_flight }
    }

    /// Steps 1–3: the plan for a request, or its refusal.
    fn admit(
        &self,
        request: &hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(Plan, Exchange), Error> {
        let dest = Destination::of(request.uri()).ok_or(Error::HttpRequestUriInvalid)?;
        let name = dest.to_string();
        let m = &self.ctx.manifest;
        let grants = &m.wasi.allowed_outbound_hosts;
        if !grants.iter().any(|g| g.covers(&dest)) {
            self.ctx.outbound.deny(&name);
            refuse(&self.ctx, HOST_NOT_ALLOWED, &name);
            return Err(Error::HttpRequestDenied);
        }
        let now = Instant::now();
        let pass = self.ctx.outbound.pass(&name, now);
        if let Some((info, transition)) = pass.change {
            circuit::announce(&self.ctx, &info, transition);
        }
        let trial = match pass.admission {
            Admission::Go => false,
            Admission::Trial => true,
            Admission::Refused => {
                tracing::debug!(
                    plugin = self.ctx.name(),
                    "outbound {} {name}: refused, its circuit breaker is open",
                    request.method()
                );
                return Err(Error::ConnectionRefused);
            }
        };
        if !self
            .ctx
            .outbound
            .admit(now, m.limits.http_requests_per_second)
        {
            self.ctx.outbound.release(&name, trial);
            self.ctx.outbound.deny(&name);
            refuse(&self.ctx, RATE_LIMITED, &name);
            return Err(Error::HttpRequestDenied);
        }
        let literal = grants
            .iter()
            .filter(|g| g.covers(&dest))
            .find_map(OutboundHost::literal_ip);
        let plan = Plan {
            destination: dest,
            literal,
            timeouts: Timeouts::new(Duration::from_millis(m.limits.http_timeout_ms), options),
            max_response_bytes: m.limits.http_max_response_bytes,
            trust: self.ctx.outbound.trust().clone(),
        };
        let exchange = Exchange::start(
            Arc::clone(&self.ctx),
            Arc::clone(&self.in_flight),
            name,
            request.method().to_string(),
            trial,
        );
        Ok((plan, exchange))
    }
}

/// Counts and reports one refusal of an outbound request to `resource`.
pub(crate) fn refuse(ctx: &PluginContext, violation_type: &str, resource: &str) {
    if let Some(report) = ctx
        .violations
        .record(Instant::now(), ACTION, violation_type, resource)
    {
        super::host_impl::report_refusal(ctx, &report);
    }
}

/// What `send_request` resolves to.
type Sent = wasmtime_wasi_http::Result<(
    hyper::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

/// Reads a request body that will not be sent to its end (or for `wait`)
/// and drops it, so a guest that writes the body after `handle` returns
/// sees a refusal or a failed connection as the response's error, not as a
/// broken body stream. (JavaScript's `fetch` in componentize-js aborts the
/// whole engine on the latter.) Nothing of the body is kept.
async fn drain_body(mut body: WasiBody, wait: Duration) {
    use http_body_util::BodyExt;
    let drain = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(wait, drain).await;
}

/// A refused request's outcome, once its body is taken ([`drain_body`]).
async fn refuse_after_body(body: WasiBody, wait: Duration, error: Error) -> Sent {
    drain_body(body, wait).await;
    Err(error)
}

impl WasiHttpHooks for Gate {
    /// The gate. Steps 1–3 run here, on the plugin's thread; resolving,
    /// connecting and the exchange run in the returned future, on
    /// wasmtime-wasi's runtime.
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        match self.admit(&request, options) {
            Ok((plan, exchange)) => Box::new(async move {
                let (response, driver) = transport::send(request, plan, exchange).await?;
                Ok((response, driver))
            }),
            Err(e) => {
                let wait = Duration::from_millis(self.ctx.manifest.limits.http_timeout_ms);
                Box::new(refuse_after_body(request.into_body(), wait, e))
            }
        }
    }

    /// A hyper failure as the guest sees it (without wasmtime's default
    /// console line per error: the request's `AccessLog` records it).
    fn p2_error_from_hyper(&mut self, err: &hyper::Error) -> ErrorCode {
        if err.is_timeout() {
            ErrorCode::ConnectionReadTimeout
        } else if err.is_incomplete_message() {
            ErrorCode::HttpResponseIncomplete
        } else if err.is_closed() || err.is_canceled() {
            ErrorCode::ConnectionTerminated
        } else {
            ErrorCode::HttpProtocolError
        }
    }

    fn p2_error_from_connect(&mut self, _err: &std::io::Error) -> ErrorCode {
        ErrorCode::ConnectionRefused
    }

    fn p2_error_from_tls(&mut self, _err: &std::io::Error) -> ErrorCode {
        ErrorCode::TlsProtocolError
    }
}
