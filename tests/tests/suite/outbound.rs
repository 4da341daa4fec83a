//! Plugins' outbound HTTP through `wasi:http/outgoing-handler`, against a
//! real HTTP server on 127.0.0.1 started by each test: the `test-guest`
//! plugin in mode `http` makes the request each event's payload describes
//! and reports its status or error (`custom.http` on `diagnostics`).
//! Each destination's figures (status classes, latency) and circuit breaker
//! are read from `plugin status` and the breaker's `SubscriptionHealth`
//! events on `health`.

use std::time::{Duration, Instant};

use crate::common::http::{self, Reply};
use crate::common::*;
use exesdb_host::bus::{Bus, Channel};
use exesdb_host::health::HealthMonitoring;
use exesdb_host::messages::audit::AccessLog;
use exesdb_host::messages::security::AccessViolation;
use exesdb_host::messages::tracking::{
    BreakerState, HealthEventType, SubscriptionHealth, SubscriptionStatus,
};
use exesdb_host::runtime::{Actor, Manifest, OutboundInfo};
use serde_json::{json, Value};

/// One request the server received: method, path, body.
type Seen = (String, String, String);

/// A tiny HTTP/1.1 server on 127.0.0.1 whose paths choose its answer:
/// `/status/N` (status N, body `ok`), `/slow/MS` (200 after MS ms),
/// `/silent` (never answers), `/big/N` (N bytes, with `content-length`),
/// `/chunked/N` (N bytes, chunked), `/drip` (declares 100 bytes, sends 1).
struct Server {
    port: u16,
    http: http::Server,
}

impl Server {
    async fn start() -> Server {
        Server::start_on(0).await
    }

    /// A server on `port` of 127.0.0.1 (0: any free one).
    async fn start_on(port: u16) -> Server {
        let http = http::Server::start_on(port, |r, _| answer(&r.target)).await;
        Server {
            port: http.port,
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    fn seen(&self) -> Vec<Seen> {
        let seen = self.http.requests().into_iter();
        seen.map(|r| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            (r.method, r.target, body)
        })
        .collect()
    }
}

/// The answer to a request for `path`.
pub(crate) fn answer(path: &str) -> Reply {
    let (what, arg) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path.trim_start_matches('/'), ""));
    let n: u64 = arg.parse().unwrap_or(0);
    let x = |n: u64| vec![b'x'; n as usize];
    match what {
        "status" => Reply::new(n as u16, "ok"),
        "slow" => Reply::new(200, "ok").after(Duration::from_millis(n)),
        "silent" => Reply::silent(),
        "big" => Reply::with_head(200, &format!("content-length: {n}\r\n"), x(n)),
        "chunked" => {
            let mut body = Vec::new();
            let mut sent = 0;
            while sent < n {
                let size = (n - sent).min(1000);
                body.extend(format!("{size:x}\r\n").into_bytes());
                body.extend(x(size));
                body.extend(b"\r\n");
                sent += size;
            }
            body.extend(b"0\r\n\r\n");
            Reply::with_head(200, "transfer-encoding: chunked\r\n", body)
        }
        "drip" => Reply::with_head(200, "content-length: 100\r\n", x(1))
            .then_hold(Duration::from_secs(60)),
        _ => Reply::new(404, "no such path"),
    }
}

/// The test guest in mode `http` with these outbound grants and limits.
pub(crate) fn http_guest(name: &str, hosts: &[&str], limits: &[(&str, i64)]) -> Manifest {
    manifest("test-guest", name, |t| {
        t["config"]["mode"] = "http".into();
        let mut wasi = toml::Table::new();
        let hosts: Vec<toml::Value> = hosts.iter().map(|&h| h.into()).collect();
        wasi.insert("allowed_outbound_hosts".into(), hosts.into());
        t.insert("wasi".into(), wasi.into());
        let mut l = toml::Table::new();
        for &(k, v) in limits {
            l.insert(k.into(), v.into());
        }
        t.insert("limits".into(), l.into());
    })
}

/// Asks the guest for one request; its `custom.http` report's payload.
/// The guest's report of one request. An `error` is cut to its first line:
/// a body error reaches the guest as wasmtime's debug text, which carries a
/// backtrace when `RUST_BACKTRACE` is set.
pub(crate) async fn ask(bus: &Bus, echoes: &exesdb_host::bus::Subscriber, request: Value) -> Value {
    publish_event(bus, "outbound:ask", request).await;
    let mut report = next_where(echoes, |e| e.kind == "custom.http")
        .await
        .payload()
        .clone();
    if let Some(error) = report["error"].as_str() {
        let first = error
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_owned();
        report["error"] = Value::String(first);
    }
    report
}

/// The next `AccessViolation` of an outbound request.
async fn violation(security: &exesdb_host::bus::Subscriber) -> AccessViolation {
    next_where(security, |e| e.kind == "AccessViolation")
        .await
        .decode()
        .unwrap()
}

fn outbound_of(plugins: &exesdb_host::runtime::Plugins, name: &str) -> Vec<OutboundInfo> {
    plugins.status(name).unwrap().outbound
}

/// A destination's destination, `requests`, `errors` and `denied`.
fn counts(o: &OutboundInfo) -> (String, u64, u64, u64) {
    (o.destination.clone(), o.requests, o.errors, o.denied)
}

/// `[health_monitoring]` with these breaker thresholds.
fn breaker(threshold: u32, cooldown_ms: u64, max_cooldown_ms: u64) -> HealthMonitoring {
    HealthMonitoring {
        unhealthy_threshold: threshold,
        cooldown_ms,
        max_cooldown_ms,
        ..HealthMonitoring::default()
    }
}

/// The next outbound breaker transition on `health`.
async fn transition(health: &exesdb_host::bus::Subscriber) -> SubscriptionHealth {
    next_where(health, |e| e.kind == "SubscriptionHealth")
        .await
        .decode()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_request_reaches_the_server_and_is_logged_on_audit() {
    let server = Server::start().await;
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let audit = watch(&bus, Channel::Audit, "audit:access_log:outbound_http");
    plugins
        .load(
            Actor::Operator,
            http_guest("granted", &["http://127.0.0.1:*"], &[]),
            &wasm("test-guest"),
        )
        .unwrap();

    let report = ask(
        &bus,
        &echoes,
        json!({"url": server.url("/status/201"), "method": "POST", "body": "hello"}),
    )
    .await;
    assert_eq!(report, json!({"status": 201, "bytes": 2}));
    assert_eq!(
        server.seen(),
        [("POST".into(), "/status/201".into(), "hello".into())]
    );

    // One AccessLog per request: method, destination, status, bytes, time.
    let log = next(&audit).await;
    assert_eq!(log.kind, "AccessLog");
    let p = log.payload();
    let destination = format!("http://127.0.0.1:{}", server.port);
    assert_eq!(p["method"], "POST", "{p}");
    assert_eq!(p["destination"], destination.as_str(), "{p}");
    assert_eq!(p["status"], 201, "{p}");
    assert_eq!(p["bytes"], 2, "{p}");
    assert!(p.get("error").is_none(), "{p}");
    let typed: AccessLog = log.decode().unwrap();
    assert_eq!(
        (
            typed.user_id.as_str(),
            typed.resource_type.as_str(),
            typed.resource_id.as_str(),
            typed.action.as_str(),
            typed.success
        ),
        (
            "granted",
            "outbound_http",
            destination.as_str(),
            "POST",
            true
        )
    );
    assert!(typed.duration_ms < 5000);

    // A 5xx answer is a response too, counted as an error of its destination.
    let report = ask(&bus, &echoes, json!({"url": server.url("/status/503")})).await;
    assert_eq!(report["status"], 503);
    let p = next(&audit).await.payload().clone();
    assert_eq!(
        (
            p["method"].clone(),
            p["status"].clone(),
            p["success"].clone()
        ),
        (json!("GET"), json!(503), json!(false))
    );
    let outbound = outbound_of(&plugins, "granted");
    assert_eq!(
        outbound.iter().map(counts).collect::<Vec<_>>(),
        [(destination, 2, 1, 0)]
    );
    let o = &outbound[0];
    assert_eq!((o.status_2xx, o.status_5xx, o.failed), (1, 1, 0));
    assert_eq!(o.breaker, BreakerState::Closed);
    let info = plugins.status("granted").unwrap();
    assert_eq!((info.violations, info.traps), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_not_in_the_list_is_refused_and_reported() {
    let server = Server::start().await;
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let security = watch(&bus, Channel::Security, "access_violation:>");
    // Another port of the same address, and a plugin with no grant at all.
    plugins
        .load(
            Actor::Operator,
            http_guest(
                "elsewhere",
                &["http://127.0.0.1:1", "https://*.example.com"],
                &[],
            ),
            &wasm("test-guest"),
        )
        .unwrap();
    let report = ask(&bus, &echoes, json!({"url": server.url("/status/200")})).await;
    assert_eq!(report, json!({"error": "ErrorCode::HttpRequestDenied"}));
    let v = violation(&security).await;
    let destination = format!("http://127.0.0.1:{}", server.port);
    assert_eq!(
        (
            v.user_id.as_str(),
            v.action.as_str(),
            v.violation_type.as_str(),
            v.resource.as_str()
        ),
        (
            "elsewhere",
            "http_request",
            "outbound_host_not_allowed",
            destination.as_str()
        )
    );
    assert_eq!(v.metadata["count"], 1);

    plugins.unload(Actor::Operator, "elsewhere").await.unwrap();
    plugins
        .load(
            Actor::Operator,
            http_guest("ungranted", &[], &[]),
            &wasm("test-guest"),
        )
        .unwrap();
    let report = ask(&bus, &echoes, json!({"url": server.url("/status/200")})).await;
    assert_eq!(report, json!({"error": "ErrorCode::HttpRequestDenied"}));
    assert_eq!(violation(&security).await.user_id, "ungranted");

    assert!(server.seen().is_empty(), "nothing reached the server");
    let info = plugins.status("ungranted").unwrap();
    assert_eq!(info.violations, 1);
    assert_eq!(
        info.outbound.iter().map(counts).collect::<Vec<_>>(),
        [(destination, 1, 0, 1)]
    );
    assert_eq!(info.outbound[0].latency_max_ms, 0.0, "never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_name_that_resolves_to_loopback_is_refused() {
    let server = Server::start().await;
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let security = watch(&bus, Channel::Security, "access_violation:>");
    let audit = watch(&bus, Channel::Audit, "audit:access_log:>");
    plugins
        .load(
            Actor::Operator,
            http_guest("ssrf", &["http://localhost:*"], &[]),
            &wasm("test-guest"),
        )
        .unwrap();
    let url = format!("http://localhost:{}/status/200", server.port);
    let report = ask(&bus, &echoes, json!({ "url": url })).await;
    assert_eq!(report, json!({"error": "ErrorCode::HttpRequestDenied"}));
    let v = violation(&security).await;
    assert_eq!(v.violation_type, "outbound_address_blocked");
    assert!(
        v.resource
            .starts_with(&format!("http://localhost:{} (", server.port))
            && v.resource.ends_with("is loopback)"),
        "{}",
        v.resource
    );
    // The refusal's audit record is the refusal's (failed), not an access.
    let log: AccessLog = next(&audit).await.decode().unwrap();
    assert!(!log.success);
    assert_eq!(log.action, "http_request");
    assert!(server.seen().is_empty(), "nothing reached the server");
    let outbound = outbound_of(&plugins, "ssrf");
    assert_eq!((outbound[0].requests, outbound[0].denied), (1, 1));

    // A wildcard covers the literal address but does not name it: refused
    // too; only the literal grant lets the same request through.
    plugins.unload(Actor::Operator, "ssrf").await.unwrap();
    plugins
        .load(
            Actor::Operator,
            http_guest("wild", &["*://*:*"], &[]),
            &wasm("test-guest"),
        )
        .unwrap();
    let report = ask(&bus, &echoes, json!({"url": server.url("/status/200")})).await;
    assert_eq!(report, json!({"error": "ErrorCode::HttpRequestDenied"}));
    let v = violation(&security).await;
    assert_eq!(v.violation_type, "outbound_address_blocked");
    assert!(
        v.resource.ends_with("(127.0.0.1 is loopback)"),
        "{}",
        v.resource
    );
    plugins.unload(Actor::Operator, "wild").await.unwrap();
    plugins
        .load(
            Actor::Operator,
            http_guest("literal", &["*://*:*", "http://127.0.0.1:*"], &[]),
            &wasm("test-guest"),
        )
        .unwrap();
    let report = ask(&bus, &echoes, json!({"url": server.url("/status/200")})).await;
    assert_eq!(report, json!({"status": 200, "bytes": 2}));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_hits_the_timeout_not_the_call_budget() {
    let server = Server::start().await;
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let audit = watch(&bus, Channel::Audit, "audit:access_log:outbound_http");
    // The call budget is shorter than the HTTP timeout: waiting for the
    // response does not count against it.
    let limit = 500;
    plugins
        .load(
            Actor::Operator,
            http_guest(
                "patient",
                &["http://127.0.0.1:*"],
                &[("http_timeout_ms", limit), ("call_timeout_ms", 200)],
            ),
            &wasm("test-guest"),
        )
        .unwrap();
    // No response head; then a head and one byte of the body (a body error
    // reaches the guest as its stream's error text, see test-guest).
    for (path, error) in [
        ("/silent", "ErrorCode::ConnectionReadTimeout"),
        ("/drip", "connection read timeout"),
    ] {
        let start = Instant::now();
        let report = ask(&bus, &echoes, json!({"url": server.url(path)})).await;
        let took = start.elapsed();
        assert_eq!(report["error"], error, "{path}");
        // Not before the limit; the upper bound only has to tell the
        // limit from wasmtime's 600 s default, with room for a loaded
        // machine (the delivery and the guest's report are in `took`).
        assert!(
            took >= Duration::from_millis(limit as u64)
                && took < Duration::from_millis(20 * limit as u64),
            "{path}: the timeout fired after {took:?}, limit {limit} ms"
        );
        let p = next(&audit).await.payload().clone();
        assert_eq!(p["error"], "connection read timeout", "{p}");
    }
    // A response slower than the call budget (but within the timeout) arrives.
    let report = ask(&bus, &echoes, json!({"url": server.url("/slow/400")})).await;
    assert_eq!(report["status"], 200);
    let info = plugins.status("patient").unwrap();
    assert_eq!(info.traps, 0, "{info:?}");
    assert_eq!(info.outbound[0].errors, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_is_cut_with_an_error() {
    let server = Server::start().await;
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let audit = watch(&bus, Channel::Audit, "audit:access_log:outbound_http");
    plugins
        .load(
            Actor::Operator,
            http_guest(
                "frugal",
                &["http://127.0.0.1:*"],
                &[("http_max_response_bytes", 4000)],
            ),
            &wasm("test-guest"),
        )
        .unwrap();
    // Within the limit, then over it: declared up front, and streamed.
    let report = ask(&bus, &echoes, json!({"url": server.url("/chunked/4000")})).await;
    assert_eq!(report, json!({"status": 200, "bytes": 4000}));
    next(&audit).await;
    for (path, error) in [
        ("/big/4001", "ErrorCode::HttpResponseBodySize(Some(4001))"),
        (
            "/chunked/10000",
            "HTTP response body size exceeds limit: 4000 bytes",
        ),
    ] {
        let report = ask(&bus, &echoes, json!({"url": server.url(path)})).await;
        assert_eq!(report, json!({ "error": error }), "{path}");
        let p = next(&audit).await.payload().clone();
        assert!(
            p["error"]
                .as_str()
                .unwrap_or_default()
                .contains("http_max_response_bytes"),
            "{path}: {p}"
        );
        assert_eq!(p["status"], 200, "{path}: {p}");
        assert!(
            p["bytes"].as_u64().unwrap() <= 5000,
            "{path}: cut short: {p}"
        );
    }
    assert_eq!(outbound_of(&plugins, "frugal")[0].errors, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_rate_are_refused_with_their_own_reason() {
    let server = Server::start().await;
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let security = watch(&bus, Channel::Security, "access_violation:>");
    plugins
        .load(
            Actor::Operator,
            http_guest(
                "hasty",
                &["http://127.0.0.1:*"],
                &[("http_requests_per_second", 2)],
            ),
            &wasm("test-guest"),
        )
        .unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(ask(&bus, &echoes, json!({"url": server.url("/status/200")})).await);
    }
    let denied = outcomes
        .iter()
        .filter(|p| p["error"] == "ErrorCode::HttpRequestDenied")
        .count();
    assert_eq!(
        outcomes[..2],
        [
            json!({"status": 200, "bytes": 2}),
            json!({"status": 200, "bytes": 2})
        ]
    );
    assert!(denied >= 2, "{outcomes:?}");
    let v = violation(&security).await;
    assert_eq!(v.violation_type, "outbound_rate_limited");
    assert_eq!(server.seen().len(), 5 - denied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_budget_still_bounds_the_guests_own_work() {
    let (bus, plugins) = setup();
    let lifecycle = watch(&bus, Channel::Lifecycle, ">");
    // Outbound grants install the waiting credit; a guest computing (not
    // waiting on a request) still traps at its budget.
    let mut m = http_guest(
        "spinner",
        &["http://127.0.0.1:*"],
        &[("call_timeout_ms", 100)],
    );
    m.config.insert("mode".into(), "loop".into());
    plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
    let start = Instant::now();
    publish_event(&bus, "outbound:ask", json!({})).await;
    let crash = next_where(&lifecycle, |e| e.payload()["event"] == "crashed").await;
    let reason = crash.payload()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("exceeded the 100 ms call budget"),
        "{reason}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_opens_the_breaker_and_it_closes_when_the_receiver_returns() {
    let (bus, plugins) = setup();
    // Long enough for the refused request to come well inside it.
    let cooldown = 1000;
    plugins.set_outbound_breaker(&breaker(3, cooldown, 5000));
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let health = watch(&bus, Channel::Health, "store_health:outbound");
    // A port nothing listens on (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    plugins
        .load(
            Actor::Operator,
            http_guest("hook", &["http://127.0.0.1:*"], &[]),
            &wasm("test-guest"),
        )
        .unwrap();
    let destination = format!("http://127.0.0.1:{port}");
    let url = format!("{destination}/status/200");
    let refused = json!({"error": "ErrorCode::ConnectionRefused"});
    for _ in 0..3 {
        assert_eq!(ask(&bus, &echoes, json!({ "url": url })).await, refused);
    }
    // The third failure in a row opened it, reported once.
    let opened = transition(&health).await;
    assert_eq!(
        (
            opened.store.as_str(),
            opened.subscription.as_str(),
            opened.event,
            opened.status,
            opened.breaker,
            opened.error_count,
            opened.consecutive_failures,
        ),
        (
            "outbound",
            format!("hook:{destination}").as_str(),
            HealthEventType::CircuitBreakerOpened,
            SubscriptionStatus::Failed,
            BreakerState::Open,
            3,
            3
        )
    );
    let opened_at = Instant::now();

    // The receiver is back, but the breaker is open: refused before
    // connecting, so nothing reaches it.
    let server = Server::start_on(port).await;
    assert_eq!(ask(&bus, &echoes, json!({ "url": url })).await, refused);
    assert!(server.seen().is_empty(), "{:?}", server.seen());
    let o = outbound_of(&plugins, "hook").remove(0);
    assert_eq!(
        (
            o.breaker,
            o.requests,
            o.errors,
            o.failed,
            o.breaker_rejected,
            o.denied
        ),
        (BreakerState::Open, 4, 3, 3, 1, 0)
    );
    assert_eq!(o.last_error.as_deref(), Some("connection refused"), "{o:?}");
    let json = serde_json::to_value(&o).unwrap();
    assert_eq!(
        (&json["breaker"], &json["breaker_rejected"]),
        (&json!("open"), &json!(1))
    );
    quiet(&health, Duration::from_millis(50)).await;

    // After the cooldown the next request is the trial; it succeeds and
    // closes the breaker.
    tokio::time::sleep(Duration::from_millis(cooldown).saturating_sub(opened_at.elapsed())).await;
    let report = ask(&bus, &echoes, json!({ "url": url })).await;
    assert_eq!(report, json!({"status": 200, "bytes": 2}));
    assert_eq!(server.seen().len(), 1);
    let events: Vec<_> = [transition(&health).await, transition(&health).await]
        .iter()
        .map(|h| (h.event, h.breaker, h.status))
        .collect();
    assert_eq!(
        events,
        [
            (
                HealthEventType::CircuitBreakerHalfOpen,
                BreakerState::HalfOpen,
                SubscriptionStatus::Degraded
            ),
            (
                HealthEventType::CircuitBreakerClosed,
                BreakerState::Closed,
                SubscriptionStatus::Healthy
            )
        ]
    );
    let report = ask(&bus, &echoes, json!({ "url": url })).await;
    assert_eq!(report["status"], 200);
    let o = outbound_of(&plugins, "hook").remove(0);
    assert_eq!(
        (o.breaker, o.consecutive_failures, o.status_2xx, o.requests),
        (BreakerState::Closed, 0, 2, 6)
    );
    // One message per transition, none for requests in a closed breaker.
    quiet(&health, Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_open_the_breaker_and_a_failed_trial_reopens_it_for_longer() {
    let server = Server::start().await;
    let (bus, plugins) = setup();
    let cooldown = 600;
    plugins.set_outbound_breaker(&breaker(2, cooldown, 5000));
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let health = watch(&bus, Channel::Health, "subscription_health:outbound:>");
    plugins
        .load(
            Actor::Operator,
            http_guest("retrier", &["http://127.0.0.1:*"], &[]),
            &wasm("test-guest"),
        )
        .unwrap();
    let refused = json!({"error": "ErrorCode::ConnectionRefused"});
    // 5xx answers are responses for the guest, failures for the breaker.
    for _ in 0..2 {
        let report = ask(&bus, &echoes, json!({"url": server.url("/status/500")})).await;
        assert_eq!(report["status"], 500);
    }
    let opened = transition(&health).await;
    assert_eq!(opened.event, HealthEventType::CircuitBreakerOpened);
    assert_eq!(opened.last_error.as_deref(), Some("status 500"));
    let t0 = Instant::now();
    // Any path of the destination is refused now.
    let ok = server.url("/status/200");
    assert_eq!(ask(&bus, &echoes, json!({ "url": ok })).await, refused);
    assert_eq!(server.seen().len(), 2);

    // The trial fails: open again, with the cooldown doubled.
    tokio::time::sleep(Duration::from_millis(cooldown).saturating_sub(t0.elapsed())).await;
    let report = ask(&bus, &echoes, json!({"url": server.url("/status/503")})).await;
    assert_eq!(report["status"], 503);
    assert_eq!(server.seen().len(), 3);
    assert_eq!(
        transition(&health).await.event,
        HealthEventType::CircuitBreakerHalfOpen
    );
    let reopened = transition(&health).await;
    let t1 = Instant::now();
    assert_eq!(
        (reopened.event, reopened.breaker),
        (HealthEventType::CircuitBreakerOpened, BreakerState::Open)
    );
    tokio::time::sleep(Duration::from_millis(cooldown)).await;
    assert_eq!(ask(&bus, &echoes, json!({ "url": ok })).await, refused);
    assert_eq!(server.seen().len(), 3, "still open after one cooldown");

    tokio::time::sleep(Duration::from_millis(2 * cooldown).saturating_sub(t1.elapsed())).await;
    assert_eq!(
        ask(&bus, &echoes, json!({ "url": ok })).await,
        json!({"status": 200, "bytes": 2})
    );
    assert_eq!(server.seen().len(), 4);
    assert_eq!(
        transition(&health).await.event,
        HealthEventType::CircuitBreakerHalfOpen
    );
    assert_eq!(
        transition(&health).await.event,
        HealthEventType::CircuitBreakerClosed
    );
    let o = outbound_of(&plugins, "retrier").remove(0);
    assert_eq!(
        (
            o.requests,
            o.errors,
            o.status_5xx,
            o.status_2xx,
            o.breaker_rejected
        ),
        (6, 3, 3, 1, 2)
    );
    assert_eq!(o.breaker, BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_classes_and_latency_are_shown_per_destination() {
    let server = Server::start().await;
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let timeout = 300;
    plugins
        .load(
            Actor::Operator,
            http_guest(
                "measured",
                &["http://127.0.0.1:*"],
                &[("http_timeout_ms", timeout)],
            ),
            &wasm("test-guest"),
        )
        .unwrap();
    // The failures are never two in a row, so the breaker stays closed.
    for (path, expected) in [
        ("/status/200", json!({"status": 200, "bytes": 2})),
        ("/status/302", json!({"status": 302, "bytes": 2})),
        ("/status/404", json!({"status": 404, "bytes": 2})),
        ("/status/503", json!({"status": 503, "bytes": 2})),
        ("/slow/150", json!({"status": 200, "bytes": 2})),
        (
            "/silent",
            json!({"error": "ErrorCode::ConnectionReadTimeout"}),
        ),
        ("/status/204", json!({"status": 204, "bytes": 0})), // no body with a 204
    ] {
        let report = ask(&bus, &echoes, json!({"url": server.url(path)})).await;
        assert_eq!(report, expected, "{path}");
    }
    let o = outbound_of(&plugins, "measured").remove(0);
    assert_eq!(
        (
            o.requests,
            o.status_2xx,
            o.status_3xx,
            o.status_4xx,
            o.status_5xx,
            o.failed,
            o.errors
        ),
        (7, 3, 1, 1, 1, 1, 2),
        "{o:?}"
    );
    assert_eq!(
        (o.breaker, o.consecutive_failures),
        (BreakerState::Closed, 0)
    );
    assert_eq!(
        o.last_error.as_deref(),
        Some("connection read timeout"),
        "{o:?}"
    );
    // The latency runs to the response head, or to the timeout: the
    // longest is the timed-out request, the median a quick answer.
    let (p50, p99, max) = (o.latency_p50_ms, o.latency_p99_ms, o.latency_max_ms);
    assert!(max >= timeout as f64 && max < 3.0 * timeout as f64, "{o:?}");
    assert_eq!(p99, max, "7 samples: the 99th percentile is the largest");
    assert!(p50 < 150.0 && p50 > 0.0, "{o:?}");
    let json = serde_json::to_value(&o).unwrap();
    for key in [
        "status_2xx",
        "status_3xx",
        "status_4xx",
        "status_5xx",
        "failed",
        "breaker_rejected",
        "breaker",
        "consecutive_failures",
        "last_error",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_max_ms",
    ] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    assert_eq!(json["breaker"], "closed");
}
