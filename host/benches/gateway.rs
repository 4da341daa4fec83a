//! The gateway against the embedded paths it fronts, in one run.
//!
//! `cargo bench -p exesdb-host --bench gateway` prints:
//! - **append over HTTP**: batches of 100 events from 4 keep-alive clients,
//!   against the same batches appended by 4 tasks through
//!   `Host::stores().append` (durable, group commit) — ratio target ≥ 0.5;
//! - **publish over HTTP**: batches of 100 messages posted by 4 keep-alive
//!   clients and delivered to a native subscriber, against the same
//!   messages published natively;
//! - **publish over a WebSocket feed**: 1 native publisher → 1,000
//!   WebSocket clients at 200 messages/s, deliveries/s and publish →
//!   client latency p50/p99;
//! - **connect/disconnect**: 10,000 WebSocket connect + close cycles, the
//!   process's resident memory before and after, and the bus's subscriber
//!   count back where it started.
//!
//! Every comparison runs quiet and again with one core kept busy by a
//! spinning thread (a host shares its cores with plugin workers). Figures
//! are medians of alternating rounds. `BENCH_GATEWAY_SCALE` multiplies the
//! event counts (default 1.0); `BENCH_GATEWAY_CLIENTS` sets the concurrent
//! appenders and publishers (default 4).

mod support;
use support::{median, Busy};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exesdb_host::bus::{Channel, SubscriberOptions};
use exesdb_host::config::Config;
use exesdb_host::host::Host;
use exesdb_host::messages::Envelope;
use exesdb_host::store::{ExpectedVersion, NewEvent};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;

const ROUNDS: usize = 3;
const BATCH: usize = 100;
const WS_CLIENTS: usize = 1_000;
const CYCLES: usize = 10_000;

/// Concurrent appenders and publishers (HTTP clients, embedded tasks):
/// `BENCH_GATEWAY_CLIENTS`, default 4. More of them make larger commit
/// groups in the store.
fn clients() -> usize {
    std::env::var("BENCH_GATEWAY_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4)
}

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("BENCH_GATEWAY_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(BATCH * clients())
}

fn event(n: usize) -> serde_json::Value {
    json!({
        "order_id": format!("order-{n:08}"),
        "customer": "customer-0042",
        "qty": n % 7 + 1,
        "price_cents": 1999,
        "note": "a payload of about two hundred bytes, typical of store events",
    })
}

fn rss() -> u64 {
    exesdb_host::health::node::read_figures(std::path::Path::new("/"))
        .map(|f| f.process_rss_bytes)
        .unwrap_or(0)
}

async fn start_host(dir: &std::path::Path) -> Host {
    let env = [
        ("EXESDB_API__LISTEN", "127.0.0.1:0".to_owned()),
        ("EXESDB_PLUGINS__BUNDLED", "false".to_owned()),
        ("EXESDB_STORES__DATA_DIR", dir.display().to_string()),
        ("EXESDB_API__MAX_STREAM_CLIENTS", "100000".to_owned()),
        ("EXESDB_BUS__INBOX_CAPACITY", "1000000".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    Host::start(Config::load_with_env(None, env).unwrap())
        .await
        .unwrap()
}

/// Embedded appends: `clients()` tasks, batches of `BATCH`; events/s.
async fn append_embedded(host: &Host, events: usize) -> f64 {
    let per = events / clients() / BATCH;
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients())
        .map(|c| {
            let stores = Arc::clone(host.stores());
            tokio::spawn(async move {
                for b in 0..per {
                    let batch = (0..BATCH)
                        .map(|i| NewEvent::json("OrderPlaced", event(b * BATCH + i)))
                        .collect();
                    let stream = format!("embedded-{c}-{}", b % 25);
                    stores
                        .append("default", &stream, ExpectedVersion::Any, batch)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per * clients() * BATCH) as f64 / start.elapsed().as_secs_f64()
}

/// The same appends straight into the store (`Store::append` on the
/// blocking pool, no announcements, no `DataChange`, no metrics): what the
/// host adds to an append is the gap between this and
/// [`append_embedded`]; events/s.
async fn append_bare(host: &Host, events: usize) -> f64 {
    let per = events / clients() / BATCH;
    let store = host.stores().get("default").unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients())
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                for b in 0..per {
                    let batch: Vec<NewEvent> = (0..BATCH)
                        .map(|i| NewEvent::json("OrderPlaced", event(b * BATCH + i)))
                        .collect();
                    let stream = format!("bare-{c}-{}", b % 25);
                    let s = store.clone();
                    tokio::task::spawn_blocking(move || {
                        s.append(&stream, ExpectedVersion::Any, batch).unwrap()
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per * clients() * BATCH) as f64 / start.elapsed().as_secs_f64()
}

/// Appends over HTTP: `clients()` keep-alive clients; events/s.
fn append_http(base: &str, events: usize, round: usize) -> f64 {
    let per = events / clients() / BATCH;
    let bodies: Vec<Vec<String>> = (0..clients())
        .map(|_| {
            (0..per)
                .map(|b| {
                    let events: Vec<_> = (0..BATCH)
                        .map(|i| json!({"type": "OrderPlaced", "data": event(b * BATCH + i)}))
                        .collect();
                    json!({ "events": events }).to_string()
                })
                .collect()
        })
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (c, bodies) in bodies.iter().enumerate() {
            s.spawn(move || {
                let agent = ureq::Agent::new_with_defaults();
                for (b, body) in bodies.iter().enumerate() {
                    let url = format!(
                        "{base}/v1/stores/default/streams/http-{round}-{c}-{}",
                        b % 25
                    );
                    let r = agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .send(body.as_str())
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            });
        }
    });
    (per * clients() * BATCH) as f64 / start.elapsed().as_secs_f64()
}

/// A native subscriber counting what arrives on `channel`/`pattern`.
fn counter(host: &Host, pattern: &str) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let sub = host
        .bus()
        .subscriber_with(
            &format!("bench-count-{pattern}"),
            SubscriberOptions {
                capacity: Some(1 << 22),
                policy: None,
            },
        )
        .unwrap();
    sub.subscribe(Channel::System, pattern).unwrap();
    let n = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&n);
    let task = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(1024);
        loop {
            buf.clear();
            let got = sub.recv_many(&mut buf, 1024).await;
            if got == 0 {
                break;
            }
            seen.fetch_add(got as u64, Ordering::Relaxed);
        }
    });
    (n, task)
}

async fn wait_count(n: &AtomicU64, want: u64) {
    while n.load(Ordering::Relaxed) < want {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Native publishes to a native subscriber; messages/s (publish → counted).
async fn publish_native(host: &Host, count: usize, round: usize) -> f64 {
    let pattern = format!("native-{round}:>");
    let (n, task) = counter(host, &pattern);
    let bus = host.bus().clone();
    let start = Instant::now();
    for i in 0..count {
        let env = Envelope::new(
            Channel::System,
            format!("native-{round}:x"),
            "custom.bench",
            json!({ "i": i }),
            bus.node(),
        );
        bus.publish_now(env).unwrap();
    }
    wait_count(&n, count as u64).await;
    let rate = count as f64 / start.elapsed().as_secs_f64();
    task.abort();
    rate
}

/// HTTP publishes in batches from `clients()` keep-alive clients to a native
/// subscriber; messages/s (first request → last counted).
async fn publish_http(host: &Host, base: &str, count: usize, round: usize) -> f64 {
    let pattern = format!("http-{round}:>");
    let (n, task) = counter(host, &pattern);
    let per = count / clients() / BATCH;
    let bodies: Vec<Vec<String>> = (0..clients())
        .map(|_| {
            (0..per)
                .map(|b| {
                    let messages: Vec<_> = (0..BATCH)
                        .map(|i| json!({"topic": format!("http-{round}:x"), "kind": "custom.bench", "payload": {"i": b * BATCH + i}}))
                        .collect();
                    json!({ "messages": messages }).to_string()
                })
                .collect()
        })
        .collect();
    let base = base.to_owned();
    let start = Instant::now();
    tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            for bodies in &bodies {
                let base = &base;
                s.spawn(move || {
                    let agent = ureq::Agent::new_with_defaults();
                    let url = format!("{base}/v1/channels/system/messages");
                    for body in bodies {
                        let r = agent
                            .post(&url)
                            .header("Content-Type", "application/json")
                            .send(body.as_str())
                            .unwrap();
                        assert_eq!(r.status(), 201);
                    }
                });
            }
        })
    })
    .await
    .unwrap();
    let total = (per * clients() * BATCH) as u64;
    wait_count(&n, total).await;
    let rate = total as f64 / start.elapsed().as_secs_f64();
    task.abort();
    rate
}

/// 1 publisher → `WS_CLIENTS` WebSocket clients: deliveries/s and the
/// publish → client latency p50/p99 in µs.
async fn fan_out(host: &Host, addr: std::net::SocketAddr, messages: usize) -> (f64, u64, u64) {
    let url = format!("ws://{addr}/v1/channels/system/stream?pattern=fan%3A%3E");
    let mut clients = Vec::with_capacity(WS_CLIENTS);
    for _ in 0..WS_CLIENTS {
        let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        clients.push(ws);
    }
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::with_capacity(
        WS_CLIENTS * messages,
    )));
    let delivered = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = clients
        .into_iter()
        .map(|ws| {
            let (lat, delivered) = (Arc::clone(&latencies), Arc::clone(&delivered));
            tokio::spawn(async move {
                let (_, mut rx) = ws.split();
                let mut mine = Vec::with_capacity(messages);
                while mine.len() < messages {
                    let Some(Ok(msg)) = rx.next().await else {
                        break;
                    };
                    let text = msg.into_text().unwrap();
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if let Some(sent) = v["payload"]["sent_us"].as_i64() {
                        let now = chrono::Utc::now().timestamp_micros();
                        mine.push((now - sent).max(0) as u64);
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                lat.lock().extend(mine);
            })
        })
        .collect();
    // Every client is subscribed once its handshake completed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bus = host.bus().clone();
    let start = Instant::now();
    for i in 0..messages {
        let env = Envelope::new(
            Channel::System,
            "fan:x",
            "custom.bench",
            json!({ "i": i, "sent_us": chrono::Utc::now().timestamp_micros() }),
            bus.node(),
        );
        bus.publish_now(env).unwrap();
        // Paced at 200 messages/s (200 k deliveries/s offered), so the
        // latency is that of a steady load, not of a queue being drained.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(60), r).await;
    }
    let rate = delivered.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let mut l = std::mem::take(&mut *latencies.lock());
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    (rate, pct(0.50), pct(0.99))
}

/// `CYCLES` connect + close cycles; (RSS before, RSS after, subscribers
/// before, subscribers after).
async fn churn(host: &Host, addr: std::net::SocketAddr) -> (u64, u64, usize, usize) {
    let url = format!("ws://{addr}/v1/channels/system/stream?pattern=churn%3A%3E");
    let subs_before = host.bus().subscriber_count();
    let rss_before = rss();
    for _ in 0..CYCLES {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        ws.send(tungstenite::Message::Close(None)).await.ok();
        while let Some(Ok(_)) = ws.next().await {}
    }
    // The server side notices each close; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (
        rss_before,
        rss(),
        subs_before,
        host.bus().subscriber_count(),
    )
}

fn line(name: &str, value: f64, unit: &str, base_name: &str, base: f64) {
    println!(
        "{name:<40} {:>9.1} k {unit} | {base_name:<28} {:>9.1} k {unit} | ratio {:.2}",
        value / 1e3,
        base / 1e3,
        value / base
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let host = start_host(dir.path()).await;
        let addr = host.api_addr().unwrap();
        let base = format!("http://{addr}");
        let events = scaled(100_000);
        let messages = scaled(200_000);
        // Warm-up.
        append_embedded(&host, clients() * BATCH * 10).await;
        {
            let base = base.clone();
            tokio::task::spawn_blocking(move || append_http(&base, clients() * BATCH * 10, 99))
                .await
                .unwrap();
        }
        for busy in [false, true] {
            let _spin = busy.then(Busy::start);
            let label = if busy { " (one core busy)" } else { "" };
            let (mut http, mut emb, mut bare, mut pub_http, mut pub_native) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for round in 0..ROUNDS {
                let r = round + if busy { 10 } else { 0 };
                emb.push(append_embedded(&host, events).await);
                bare.push(append_bare(&host, events).await);
                let b = base.clone();
                http.push(
                    tokio::task::spawn_blocking(move || append_http(&b, events, r))
                        .await
                        .unwrap(),
                );
                pub_native.push(publish_native(&host, messages, r).await);
                pub_http.push(publish_http(&host, &base, messages, r).await);
            }
            line(
                &format!("append over HTTP, batch 100{label}"),
                median(http),
                "events/s",
                "embedded append, batch 100",
                median(emb.clone()),
            );
            line(
                &format!("embedded append, batch 100{label}"),
                median(emb),
                "events/s",
                "bare store append, batch 100",
                median(bare),
            );
            line(
                &format!("publish over HTTP, batch 100{label}"),
                median(pub_http),
                "msgs/s",
                "native publish",
                median(pub_native),
            );
        }
        let (rate, p50, p99) = fan_out(&host, addr, 200).await;
        println!(
            "fan-out 1 -> {WS_CLIENTS} WebSocket clients: {:.1} k deliveries/s, latency p50 {p50} µs, p99 {p99} µs",
            rate / 1e3
        );
        let (before, after, subs_before, subs_after) = churn(&host, addr).await;
        println!(
            "{CYCLES} WebSocket connect/close cycles: RSS {:.1} MiB -> {:.1} MiB ({:+.1} %), bus subscribers {subs_before} -> {subs_after}",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            (after as f64 / before as f64 - 1.0) * 100.0
        );
        host.shutdown().await.unwrap();
    });
}
