//! Integrations (issue #14) against native baselines, in one run.
//!
//! `cargo bench -p exesdb-host --bench integrations` prints:
//! - **outbound HTTP**: requests/s from the real `test-guest` component
//!   (mode `http`, one request per message, in sequence) to a local HTTP
//!   server on 127.0.0.1, against a native hyper client making the same
//!   requests in sequence, each on a fresh connection as the plugin's are;
//!   and the host's cost per granted request in µs (the difference of the
//!   two per-request times: delivering the message, the guest's wasi:http
//!   calls, the allow-list and address checks, the breaker, the metrics and
//!   the `AccessLog` on `audit`);
//! - **plugin state**: key-value operations/s (`wasi:keyvalue` set, then
//!   get, in one call of mode `state` op `fill`) against the same
//!   operations on the embedded `KeyValueDb` directly, with relaxed
//!   durability (no `fdatasync`, so the figure is the host's cost rather
//!   than the disk's) and with immediate durability.
//!
//! Every comparison runs quiet and again with one core kept busy by a
//! spinning thread. Figures are medians of alternating rounds.
//! `BENCH_INTEGRATION_REQUESTS` and `BENCH_INTEGRATION_OPS` set the counts
//! (defaults 2,000 and 2,000).

mod support;
use support::{median, Busy};

use std::sync::Arc;
use std::time::Instant;

use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Actor, Manifest, Plugins, Runtime};
use exesdb_host::store::kv::KeyValueDb;
use exesdb_host::store::Durability;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUNDS: usize = 3;
const VALUE: &str =
    "a value of about one hundred bytes, as a dedupe marker or a retry record would be, x";

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An HTTP/1.1 server on 127.0.0.1 answering every request `200 ok` and
/// closing the connection.
async fn server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    port
}

/// `n` sequential GETs with hyper, each on a new connection; requests/s.
async fn native_http(port: u16, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let io = wasmtime_wasi_http::io::TokioIo::new(stream);
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get("/status/200")
            .header("host", format!("127.0.0.1:{port}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn guest(name: &str, mode: &str, extra: &str) -> Manifest {
    let text = format!(
        "name = \"{name}\"\nversion = \"1\"\nworld = \"subscriber\"\n\
         [[subscribe]]\nchannel = \"events\"\npattern = \"bench:>\"\n\
         [[publish]]\nchannel = \"diagnostics\"\npattern = \"echo:>\"\n\
         {extra}\n[config]\nmode = \"{mode}\"\n"
    );
    Manifest::parse(&text, name).unwrap()
}

fn wasm() -> Vec<u8> {
    std::fs::read(exesdb_host::artifacts::TEST_GUEST_WASM).unwrap()
}

fn ask(payload: serde_json::Value) -> Arc<Envelope> {
    Arc::new(Envelope::new(
        Channel::Events,
        "bench:ask",
        "custom.bench",
        payload,
        "bench",
    ))
}

/// `n` requests from the plugin, one message each, in sequence; requests/s.
async fn plugin_http(plugins: &Plugins, bus: &Bus, port: u16, n: usize) -> f64 {
    let reports = bus.subscriber("bench-reports").unwrap();
    reports.subscribe(Channel::Diagnostics, "echo:>").unwrap();
    let url = format!("http://127.0.0.1:{port}/status/200");
    let start = Instant::now();
    for _ in 0..n {
        bus.broadcast(ask(serde_json::json!({ "url": url })))
            .await
            .unwrap();
        let r = reports.recv().await.unwrap();
        assert_eq!(r.payload()["status"], 200, "{:?}", r.payload());
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(reports);
    let _ = plugins;
    rate
}

/// `n` sets then `n` gets through the plugin, in one call; operations/s.
async fn plugin_state(bus: &Bus, n: usize, round: usize) -> f64 {
    let reports = bus.subscriber("bench-state").unwrap();
    reports.subscribe(Channel::Diagnostics, "echo:>").unwrap();
    let start = Instant::now();
    bus.broadcast(ask(serde_json::json!({
        "op": "fill", "key": format!("r{round}-"), "value": VALUE, "delta": n,
    })))
    .await
    .unwrap();
    let r = reports.recv().await.unwrap();
    assert_eq!(r.payload()["ops"], 2 * n, "{:?}", r.payload());
    (2 * n) as f64 / start.elapsed().as_secs_f64()
}

/// The same sets and gets on the database directly; operations/s.
fn native_state(db: &KeyValueDb, n: usize, round: usize) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        db.set(
            "native",
            u64::MAX,
            "default",
            &format!("r{round}-{i}"),
            VALUE.as_bytes(),
        )
        .unwrap();
    }
    for i in 0..n {
        let got = db
            .get("native", "default", &format!("r{round}-{i}"))
            .unwrap();
        assert_eq!(got.as_deref(), Some(VALUE.as_bytes()));
    }
    (2 * n) as f64 / start.elapsed().as_secs_f64()
}

fn print_http(label: &str, plugin: f64, native: f64) {
    let overhead_us = (1.0 / plugin - 1.0 / native) * 1e6;
    println!(
        "outbound HTTP {label:>16}: plugin {plugin:>8.0} req/s, native hyper {native:>8.0} req/s, \
         ratio {:.2}, host cost per request {overhead_us:.0} µs",
        plugin / native
    );
}

fn print_state(label: &str, durability: &str, plugin: f64, native: f64) {
    println!(
        "plugin state  {label:>16} ({durability}): plugin {plugin:>8.0} ops/s, \
         KeyValueDb {native:>8.0} ops/s, ratio {:.2}",
        plugin / native
    );
}

fn main() {
    let requests = count("BENCH_INTEGRATION_REQUESTS", 2_000);
    let ops = count("BENCH_INTEGRATION_OPS", 2_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let port = server().await;
        let bus = Bus::new(BusConfig::default());
        let runtime = Runtime::new().unwrap();
        let plugins = Plugins::new(Arc::clone(&runtime), bus.clone(), 64);
        plugins
            .load(
                Actor::Operator,
                guest(
                    "bench-http",
                    "http",
                    "[limits]\nhttp_requests_per_second = 1000000\n\
                     [wasi]\nallowed_outbound_hosts = [\"http://127.0.0.1:*\"]",
                ),
                &wasm(),
            )
            .unwrap();
        // Warm-up.
        plugin_http(&plugins, &bus, port, 50).await;
        native_http(port, 50).await;
        for (label, busy) in [("quiet", false), ("one core busy", true)] {
            let _spin = busy.then(Busy::start);
            let (mut p, mut n) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                p.push(plugin_http(&plugins, &bus, port, requests).await);
                n.push(native_http(port, requests).await);
            }
            print_http(label, median(p), median(n));
        }
        plugins.unload(Actor::Operator, "bench-http").await.unwrap();

        for durability in [Durability::Relaxed, Durability::Immediate] {
            let name = format!("{durability:?}").to_lowercase();
            let dir = tempfile::tempdir().unwrap();
            let db = KeyValueDb::open(dir.path(), durability).unwrap();
            let state_plugins =
                Plugins::new(Arc::clone(&runtime), bus.clone(), 64).with_state_db(Arc::clone(&db));
            state_plugins
                .load(
                    Actor::Operator,
                    guest(
                        "bench-state",
                        "state",
                        "[limits]\nstate_mb = 1024\ncall_timeout_ms = 600000",
                    ),
                    &wasm(),
                )
                .unwrap();
            // Immediate durability flushes every set: fewer operations.
            let n_ops = if durability == Durability::Immediate {
                ops / 10
            } else {
                ops
            };
            let mut round = 0;
            for (label, busy) in [("quiet", false), ("one core busy", true)] {
                let _spin = busy.then(Busy::start);
                let (mut p, mut n) = (Vec::new(), Vec::new());
                for _ in 0..ROUNDS {
                    round += 1;
                    p.push(plugin_state(&bus, n_ops, round).await);
                    n.push(native_state(&db, n_ops, round));
                }
                print_state(label, &name, median(p), median(n));
            }
            state_plugins.unload_all().await;
        }
    });
}
