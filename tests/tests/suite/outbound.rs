//! Plugins' outbound HTTP through `wasi:http/outgoing-handler`, against a
//! real HTTP server on 127.0.0.1 started by each test: the `test-guest`
//! plugin in mode `http` makes the request each event's payload describes
//! and reports its status or error (`custom.http` on `diagnostics`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use exesdb_host::bus::{Bus, Channel};
use exesdb_host::messages::audit::AccessLog;
use exesdb_host::messages::security::AccessViolation;
use exesdb_host::runtime::{Manifest, OutboundInfo};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the server received: method, path, body.
type Seen = (String, String, String);

/// A tiny HTTP/1.1 server on 127.0.0.1 whose paths choose its answer:
/// `/status/N` (status N, body `ok`), `/slow/MS` (200 after MS ms),
/// `/silent` (never answers), `/big/N` (N bytes, with `content-length`),
/// `/chunked/N` (N bytes, chunked), `/drip` (declares 100 bytes, sends 1).
struct Server {
    port: u16,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, Arc::clone(&log)));
            }
        });
        Server { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(mut s: TcpStream, seen: Arc<std::sync::Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut words = head.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or("").to_owned(),
        words.next().unwrap_or("").to_owned(),
    );
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    seen.lock().unwrap().push((method, path.clone(), body));
    let (what, arg) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path.trim_start_matches('/'), ""));
    let n: u64 = arg.parse().unwrap_or(0);
    let ok = |status: u64, body: &str| {
        format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = match what {
        "status" => s.write_all(ok(n, "ok").as_bytes()).await,
        "slow" => {
            tokio::time::sleep(Duration::from_millis(n)).await;
            s.write_all(ok(200, "ok").as_bytes()).await
        }
        "silent" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        "big" => {
            let head =
                format!("HTTP/1.1 200 X\r\ncontent-length: {n}\r\nconnection: close\r\n\r\n");
            let _ = s.write_all(head.as_bytes()).await;
            s.write_all(&vec![b'x'; n as usize]).await
        }
        "chunked" => {
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 X\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
                )
                .await;
            let mut sent = 0;
            while sent < n {
                let size = (n - sent).min(1000);
                let piece = format!("{size:x}\r\n{}\r\n", "x".repeat(size as usize));
                if s.write_all(piece.as_bytes()).await.is_err() {
                    return;
                }
                sent += size;
            }
            s.write_all(b"0\r\n\r\n").await
        }
        "drip" => {
            let _ = s
                .write_all(b"HTTP/1.1 200 X\r\ncontent-length: 100\r\nconnection: close\r\n\r\nx")
                .await;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        _ => s.write_all(ok(404, "no such path").as_bytes()).await,
    };
}

/// The test guest in mode `http` with these outbound grants and limits.
fn http_guest(name: &str, hosts: &[&str], limits: &[(&str, i64)]) -> Manifest {
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
async fn ask(bus: &Bus, echoes: &exesdb_host::bus::Subscriber, request: Value) -> Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_request_reaches_the_server_and_is_logged_on_audit() {
    let server = Server::start().await;
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let audit = watch(&bus, Channel::Audit, "audit:access_log:outbound_http");
    plugins
        .load(
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
    assert_eq!(
        outbound_of(&plugins, "granted"),
        [OutboundInfo {
            destination,
            requests: 2,
            errors: 1,
            denied: 0
        }]
    );
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

    plugins.unload("elsewhere").await.unwrap();
    plugins
        .load(http_guest("ungranted", &[], &[]), &wasm("test-guest"))
        .unwrap();
    let report = ask(&bus, &echoes, json!({"url": server.url("/status/200")})).await;
    assert_eq!(report, json!({"error": "ErrorCode::HttpRequestDenied"}));
    assert_eq!(violation(&security).await.user_id, "ungranted");

    assert!(server.seen().is_empty(), "nothing reached the server");
    let info = plugins.status("ungranted").unwrap();
    assert_eq!(info.violations, 1);
    assert_eq!(
        info.outbound,
        [OutboundInfo {
            destination,
            requests: 1,
            errors: 0,
            denied: 1
        }]
    );
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
    plugins.unload("ssrf").await.unwrap();
    plugins
        .load(http_guest("wild", &["*://*:*"], &[]), &wasm("test-guest"))
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
    plugins.unload("wild").await.unwrap();
    plugins
        .load(
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
        assert!(
            took >= Duration::from_millis(limit as u64)
                && took < Duration::from_millis(3 * limit as u64),
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
    plugins.load(m, &wasm("test-guest")).unwrap();
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
