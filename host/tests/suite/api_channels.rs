//! The gateway's channel routes, black-box, over real HTTP on 127.0.0.1
//! against an in-process host: publishing (one message and batches, every
//! refusal), live streams as Server-Sent Events and WebSockets (patterns,
//! the slow-client `lagged` path, the stream-client bound), bearer tokens
//! and their reports on `security`/`audit`, alert acks, the CLI commands
//! that use these routes, and a property test of request bodies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use exesdb_host::bus::{Channel, Subscriber, SubscriberOptions};
use exesdb_host::config::Config;
use exesdb_host::host::Host;
use exesdb_host::messages::alerts::{AlertCategory, Severity, SystemAlert};
use exesdb_host::messages::Envelope;
use futures_util::SinkExt;
use serde_json::{json, Value};
use sha2::Digest;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::common::{
    agent, api_tokens, drain, exe, host_env, next_where, quiet, take_line, watch, ws_json,
    SseEvent, SseParser, WsStream, WAIT,
};

// ---- fixture ------------------------------------------------------------------

/// Starts a host in `dir` with `extra` environment and, if given, a config
/// file holding `toml`.
async fn try_start(dir: &Path, extra: &[(&str, &str)], toml: Option<&str>) -> anyhow::Result<Host> {
    let file = toml.map(|t| {
        let p = dir.join("host.toml");
        std::fs::write(&p, t).unwrap();
        p
    });
    let config = Config::load_with_env(file.as_deref(), host_env(dir, extra))?;
    Ok(Host::start(config).await?)
}

/// A running host and its gateway.
struct Gw {
    host: Host,
    addr: SocketAddr,
    /// Tokens by name (the config file holds only their digests).
    tokens: BTreeMap<String, String>,
    _dir: TempDir,
}

impl Gw {
    /// An open gateway (no tokens).
    async fn start(extra: &[(&str, &str)]) -> Gw {
        Gw::with_tokens(extra, &[]).await
    }

    /// A gateway with one `[[api.tokens]]` entry per `(name, scopes)`.
    async fn with_tokens(extra: &[(&str, &str)], tokens: &[(&str, &[&str])]) -> Gw {
        let dir = tempfile::tempdir().unwrap();
        let (toml, made) = api_tokens(tokens);
        let host = try_start(
            dir.path(),
            extra,
            (!toml.is_empty()).then_some(toml.as_str()),
        )
        .await
        .expect("the host starts");
        let addr = host.api_addr().expect("the API is on");
        Gw {
            host,
            addr,
            tokens: made,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn token(&self, name: &str) -> Option<String> {
        Some(self.tokens[name].clone())
    }

    /// A native subscriber on `channel`/`pattern` that never fills up.
    fn watch(&self, channel: Channel, pattern: &str) -> Subscriber {
        watch(self.host.bus(), channel, pattern)
    }

    /// Publishes a `custom.t` message on `events` natively.
    async fn emit(&self, topic: &str, payload: Value) -> Arc<Envelope> {
        let env = Arc::new(Envelope::new(
            Channel::Events,
            topic,
            "custom.t",
            payload,
            self.host.bus().node(),
        ));
        self.host.bus().broadcast(Arc::clone(&env)).await.unwrap();
        env
    }

    async fn post(&self, path: &str, token: Option<String>, body: &Value) -> Reply {
        let body = serde_json::to_vec(body).unwrap();
        self.post_raw(path, token, Some("application/json"), body)
            .await
    }

    async fn post_raw(
        &self,
        path: &str,
        token: Option<String>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let url = self.url(path);
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("Content-Type".to_owned(), ct.to_owned()));
        }
        if let Some(t) = token {
            headers.push(("Authorization".to_owned(), format!("Bearer {t}")));
        }
        tokio::task::spawn_blocking(move || {
            http(&agent(), "POST", &url, &headers, Some(body)).expect("an HTTP answer")
        })
        .await
        .unwrap()
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let url = self.url(path);
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || {
            http(&agent(), "GET", &url, &headers, None).expect("an HTTP answer")
        })
        .await
        .unwrap()
    }

    /// Opens `GET path` as an event stream.
    async fn sse(&self, path: &str, token: Option<&str>) -> Sse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        Sse::open(self.addr, path, &headers).await
    }

    /// Names of the gateway's stream subscribers on the bus.
    fn stream_subscribers(&self) -> Vec<exesdb_host::bus::SubscriptionStats> {
        self.host
            .bus()
            .stats()
            .into_iter()
            .filter(|s| s.name.starts_with("api-stream:"))
            .collect()
    }

    /// Waits until a stream client is subscribed to `pattern`.
    async fn await_stream_on(&self, pattern: &str) {
        let deadline = Instant::now() + WAIT;
        while !self
            .stream_subscribers()
            .iter()
            .any(|s| s.subscriptions.iter().any(|i| i.pattern == pattern))
        {
            assert!(Instant::now() < deadline, "no stream client on {pattern}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---- HTTP client ----------------------------------------------------------------

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts `status` and a `{"error","field"}` body naming `field`;
    /// returns the error text.
    #[track_caller]
    fn refused(&self, status: u16, field: Option<&str>) -> String {
        assert_eq!(self.status, status, "{self:#?}");
        let v = self.json();
        let error = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error text: {self:#?}"));
        assert!(!error.is_empty(), "{self:#?}");
        assert_eq!(v["field"].as_str(), field, "{self:#?}");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert!(
            keys.iter().all(|k| *k == "error" || *k == "field"),
            "only error and field: {self:#?}"
        );
        error.to_owned()
    }

    /// Asserts 201 and returns the body.
    #[track_caller]
    fn created(&self) -> Value {
        assert_eq!(self.status, 201, "{self:#?}");
        self.json()
    }
}

/// A blocking request; `Err` when the connection failed or dropped.
fn http(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
) -> Result<Reply, ureq::Error> {
    let response = if method == "GET" {
        let mut r = agent.get(url);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.call()?
    } else {
        let mut r = agent.post(url);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send(&body.unwrap_or_default()[..])?
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let text = response.into_body().read_to_string()?;
    Ok(Reply {
        status,
        headers,
        text,
    })
}

// ---- SSE client (raw HTTP/1.1 over TCP) -------------------------------------------

/// A streaming GET read by hand, so a test decides when (and whether) the
/// client reads: an unread stream is a slow client.
struct Sse {
    status: u16,
    head: String,
    reader: BufReader<tokio::net::TcpStream>,
    chunked: bool,
    length: Option<usize>,
    /// Decoded body bytes not yet consumed.
    body: Vec<u8>,
    eof: bool,
}

impl Sse {
    async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, reader.read_line(&mut line))
                .await
                .expect("response head in time")
                .unwrap();
            if n == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let lower = head.to_ascii_lowercase();
        let chunked = lower.contains("transfer-encoding: chunked");
        let length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap());
        Sse {
            status,
            head,
            reader,
            chunked,
            length,
            body: Vec::new(),
            eof: false,
        }
    }

    /// The whole (short) body of a refusal.
    async fn text(mut self) -> String {
        if let Some(n) = self.length {
            let mut buf = vec![0; n];
            self.reader.read_exact(&mut buf).await.unwrap();
            return String::from_utf8(buf).unwrap();
        }
        while self.fill().await {}
        String::from_utf8(self.body).unwrap()
    }

    /// Reads more of the body; `false` at its end.
    async fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        if self.chunked {
            let mut size = String::new();
            if self.reader.read_line(&mut size).await.unwrap_or(0) == 0 {
                self.eof = true;
                return false;
            }
            let hex = size.trim().split(';').next().unwrap_or("");
            let n =
                usize::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("chunk size {size:?}"));
            if n == 0 {
                self.eof = true;
                return false;
            }
            let start = self.body.len();
            self.body.resize(start + n + 2, 0);
            if self
                .reader
                .read_exact(&mut self.body[start..])
                .await
                .is_err()
            {
                self.eof = true;
                return false;
            }
            self.body.truncate(start + n);
            true
        } else {
            let mut buf = [0u8; 16 * 1024];
            match self.reader.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    self.eof = true;
                    false
                }
                Ok(n) => {
                    self.body.extend_from_slice(&buf[..n]);
                    true
                }
            }
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(line) = take_line(&mut self.body) {
                return Some(line);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next event; `None` at the end of the stream.
    async fn next_event(&mut self) -> Option<SseEvent> {
        let mut parser = SseParser::default();
        loop {
            let line = self.line().await?;
            if let Some(ev) = parser.line(&line) {
                return Some(ev);
            }
        }
    }

    /// The next event within [`WAIT`].
    async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(WAIT, self.next_event())
            .await
            .expect("an event in time")
            .expect("the stream is open")
    }
}

/// `pattern=` for a query (`>` and `*` percent-encoded).
fn q(pattern: &str) -> String {
    format!(
        "pattern={}",
        form_urlencoded::byte_serialize(pattern.as_bytes()).collect::<String>()
    )
}

/// `got` (read back from JSON) is `want`, its timestamp to the millisecond.
#[track_caller]
fn assert_same(got: &Envelope, want: &Envelope) {
    let mut got = got.clone();
    assert_eq!(got.timestamp_ms(), want.timestamp_ms());
    got.timestamp = want.timestamp;
    assert_eq!(&got, want);
}

fn message(topic: &str, kind: &str, payload: Value) -> Value {
    json!({ "topic": topic, "kind": kind, "payload": payload })
}

const EVENTS: &str = "/v1/channels/events/messages";

// ---- 1. publishing ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_message_reaches_native_subscribers_as_sent() {
    let gw = Gw::start(&[]).await;
    let sub = gw.watch(Channel::Events, "orders:>");
    let mut body = message(
        "orders:o-1",
        "custom.order_placed",
        json!({"total": 12.5, "items": [1, 2]}),
    );
    body["correlation_id"] = json!("corr-1");
    body["causation_id"] = json!("cause-1");
    let reply = gw.post(EVENTS, None, &body).await;
    let created = reply.created();
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(created.as_object().unwrap().len(), 1, "{created}");
    let env = next_where(&sub, |_| true).await;
    assert_eq!(env.id.to_string(), id);
    assert_eq!(env.channel, Channel::Events);
    assert_eq!(env.topic, "orders:o-1");
    assert_eq!(env.kind, "custom.order_placed");
    assert_eq!(env.payload(), &json!({"total": 12.5, "items": [1, 2]}));
    assert_eq!(env.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(env.causation_id.as_deref(), Some("cause-1"));
    assert_eq!(env.node, gw.host.bus().node());

    // A spec kind with a valid payload on its own channel.
    let alerts = gw.watch(Channel::Alerts, "system_alert:>");
    let alert = SystemAlert::new(
        "al-1",
        Severity::Warning,
        AlertCategory::Performance,
        "slow",
        "it is slow",
        "test",
    );
    let reply = gw
        .post(
            "/v1/channels/alerts/messages",
            None,
            &message(
                "system_alert:al-1",
                "SystemAlert",
                serde_json::to_value(&alert).unwrap(),
            ),
        )
        .await;
    let id = reply.created()["id"].as_str().unwrap().to_owned();
    let env = next_where(&alerts, |_| true).await;
    assert_eq!(env.id.to_string(), id);
    assert_eq!(env.decode::<SystemAlert>().unwrap(), alert);
    // The spec's instance name is an alias of the channel.
    let reply = gw
        .post(
            "/v1/channels/ex_esdb_events/messages",
            None,
            &message("orders:o-2", "custom.x", json!(1)),
        )
        .await;
    reply.created();
    assert_eq!(next_where(&sub, |_| true).await.topic, "orders:o-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_published_in_order_or_not_at_all() {
    let gw = Gw::start(&[]).await;
    let sub = gw.watch(Channel::Events, "b:>");
    let batch = json!({"messages": (0..5)
        .map(|i| message(&format!("b:{i}"), "custom.n", json!({"n": i})))
        .collect::<Vec<_>>()});
    let created = gw.post(EVENTS, None, &batch).await.created();
    let ids: Vec<String> = created["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 5);
    for (i, id) in ids.iter().enumerate() {
        let env = next_where(&sub, |_| true).await;
        assert_eq!(&env.id.to_string(), id, "message {i} in order");
        assert_eq!(env.topic, format!("b:{i}"));
        assert_eq!(env.payload(), &json!({"n": i}));
    }

    // One bad topic refuses the whole batch, naming the message.
    let bad = json!({"messages": [
        message("b:ok", "custom.n", json!(1)),
        message("b:*", "custom.n", json!(2)),
        message("b:ok2", "custom.n", json!(3)),
    ]});
    gw.post(EVENTS, None, &bad)
        .await
        .refused(422, Some("messages[1].topic"));
    // Likewise a kind of another channel, a bad schema, a missing field.
    let bad = json!({"messages": [message("b:ok", "custom.n", json!(1)), message("b:x", "NodeHealth", json!({}))]});
    gw.post(EVENTS, None, &bad)
        .await
        .refused(422, Some("messages[1].kind"));
    let bad = json!({"messages": [
        message("b:ok", "custom.n", json!(1)),
        message("b:ok", "custom.n", json!(1)),
        {"topic": "b:x", "kind": "custom.n"},
    ]});
    let e = gw
        .post(EVENTS, None, &bad)
        .await
        .refused(400, Some("messages[2]"));
    assert!(e.contains("payload"), "{e}");
    let bad = json!({"messages": [{"topic": 5, "kind": "custom.n", "payload": 1}]});
    gw.post(EVENTS, None, &bad)
        .await
        .refused(400, Some("messages[0].topic"));
    let bad = json!({"messages": "nope"});
    gw.post(EVENTS, None, &bad)
        .await
        .refused(400, Some("messages"));
    // Nothing of any refused batch was published.
    quiet(&sub, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_message_gets_its_status_and_field() {
    let gw = Gw::start(&[
        ("EXESDB_BUS__MAX_PAYLOAD_BYTES", "1024"),
        ("EXESDB_API__MAX_BODY_BYTES", "4096"),
    ])
    .await;
    let everything: Vec<Subscriber> = Channel::ALL
        .into_iter()
        .filter(|c| !matches!(c, Channel::Security | Channel::Audit | Channel::Logging))
        .map(|c| gw.watch(c, ">"))
        .collect();

    // Unknown channel.
    let e = gw
        .post(
            "/v1/channels/nowhere/messages",
            None,
            &message("a:b", "custom.x", json!({})),
        )
        .await
        .refused(404, Some("channel"));
    assert!(e.contains("nowhere"), "{e}");
    // Bad topics.
    for topic in [
        "",
        "a::b",
        ":a",
        "a:",
        "a b",
        "a:*",
        "a:>",
        &"t".repeat(2000),
    ] {
        gw.post(EVENTS, None, &message(topic, "custom.x", json!({})))
            .await
            .refused(422, Some("topic"));
    }
    // A spec kind on a channel it does not belong to.
    let e = gw
        .post(EVENTS, None, &message("a:b", "SystemAlert", json!({})))
        .await
        .refused(422, Some("kind"));
    assert!(e.contains("alerts"), "names the kind's channel: {e}");
    let e = gw
        .post(
            "/v1/channels/health/messages",
            None,
            &message("a:b", "AlertAck", json!({"alert_id": "x", "ack_by": "y"})),
        )
        .await
        .refused(422, Some("kind"));
    assert!(e.contains("AlertAck"), "{e}");
    // An unknown non-custom kind outside `events`.
    gw.post(
        "/v1/channels/alerts/messages",
        None,
        &message("a:b", "Whatever", json!({})),
    )
    .await
    .refused(422, Some("kind"));
    // An empty kind.
    gw.post(EVENTS, None, &message("a:b", "", json!({})))
        .await
        .refused(400, Some("kind"));
    // A payload that is not the spec kind's schema.
    let e = gw
        .post(
            "/v1/channels/alerts/messages",
            None,
            &message("a:b", "SystemAlert", json!({"title": 3})),
        )
        .await
        .refused(422, Some("payload"));
    assert!(e.contains("SystemAlert"), "{e}");
    // A payload over [bus] max_payload_bytes (the body is under [api] max_body_bytes).
    let e = gw
        .post(
            EVENTS,
            None,
            &message("a:b", "custom.x", json!("p".repeat(2000))),
        )
        .await
        .refused(413, Some("payload"));
    assert!(e.contains("1024"), "names the limit: {e}");
    // Not JSON.
    gw.post_raw(
        EVENTS,
        None,
        Some("application/json"),
        b"{\"topic\": ".to_vec(),
    )
    .await
    .refused(400, Some("body"));
    // JSON but not an object; a message's fields as an array.
    for body in [
        &b"[1, 2]"[..],
        b"\"a:b\"",
        b"null",
        br#"["a:b", "custom.x", {}]"#,
    ] {
        gw.post_raw(EVENTS, None, Some("application/json"), body.to_vec())
            .await
            .refused(400, Some("body"));
    }
    gw.post(
        EVENTS,
        None,
        &json!({"messages": [message("a:b", "custom.x", json!(1)), ["a:b", "custom.x", 1]]}),
    )
    .await
    .refused(400, Some("messages[1]"));
    // No content type, and another content type.
    let body = serde_json::to_vec(&message("a:b", "custom.x", json!({}))).unwrap();
    gw.post_raw(EVENTS, None, None, body.clone())
        .await
        .refused(415, Some("content-type"));
    gw.post_raw(EVENTS, None, Some("text/plain"), body.clone())
        .await
        .refused(415, Some("content-type"));
    // An unknown field is named.
    let mut extra = message("a:b", "custom.x", json!({}));
    extra["colour"] = json!("red");
    let e = gw
        .post(EVENTS, None, &extra)
        .await
        .refused(400, Some("colour"));
    assert!(e.contains("unknown field `colour`"), "{e}");
    let mut extra = json!({"messages": [message("a:b", "custom.x", json!({}))]});
    extra["messages"][0]["colour"] = json!("red");
    gw.post(EVENTS, None, &extra)
        .await
        .refused(400, Some("messages[0].colour"));
    let e = gw
        .post(EVENTS, None, &json!({"messages": [], "colour": 1}))
        .await
        .refused(400, Some("colour"));
    assert!(e.contains("colour"), "{e}");
    // An empty batch publishes nothing and says so.
    gw.post(EVENTS, None, &json!({"messages": []}))
        .await
        .refused(400, Some("messages"));
    // Wrong types of known fields name the field.
    let mut wrong = message("a:b", "custom.x", json!({}));
    wrong["correlation_id"] = json!(7);
    gw.post(EVENTS, None, &wrong)
        .await
        .refused(400, Some("correlation_id"));
    gw.post(
        EVENTS,
        None,
        &json!({"topic": ["a"], "kind": "custom.x", "payload": 1}),
    )
    .await
    .refused(400, Some("topic"));
    let e = gw
        .post(EVENTS, None, &json!({"topic": "a:b", "kind": "custom.x"}))
        .await
        .refused(400, Some("body"));
    assert!(e.contains("payload"), "names the missing field: {e}");
    // A body over [api] max_body_bytes.
    let big = serde_json::to_vec(&message("a:b", "custom.x", json!("q".repeat(8000)))).unwrap();
    gw.post_raw(EVENTS, None, Some("application/json"), big)
        .await
        .refused(413, Some("body"));
    // Trailing data after the JSON value.
    let mut trailing = serde_json::to_vec(&message("a:b", "custom.x", json!({}))).unwrap();
    trailing.extend_from_slice(b" {}");
    gw.post_raw(EVENTS, None, Some("application/json"), trailing)
        .await
        .refused(400, Some("body"));
    // No route, and a method the route does not have.
    gw.get("/v2/nothing", &[]).await.refused(404, None);
    let e = gw.get(EVENTS, &[]).await.refused(405, None);
    assert!(e.contains("GET"), "{e}");

    // Nothing above was published, on any channel.
    for sub in &everything {
        quiet(sub, Duration::from_millis(100)).await;
    }
    // And the gateway still publishes.
    gw.post(EVENTS, None, &message("a:b", "custom.x", json!({})))
        .await
        .created();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_leave_the_connection_usable() {
    let gw = Gw::with_tokens(
        &[("EXESDB_API__MAX_BODY_BYTES", "4096")],
        &[("reader", &["read"]), ("ingest", &["publish:events"])],
    )
    .await;
    let events = gw.watch(Channel::Events, "k:>");
    let addr = gw.addr;
    let (reader, ingest) = (gw.tokens["reader"].clone(), gw.tokens["ingest"].clone());
    tokio::task::spawn_blocking(move || {
        let body = serde_json::to_vec(&message("k:a", "custom.x", json!({}))).unwrap();
        let big = serde_json::to_vec(&message("k:a", "custom.x", json!("b".repeat(8000)))).unwrap();
        let json = "Content-Type: application/json".to_owned();
        let bearer = |t: &str| format!("Authorization: Bearer {t}");
        // One keep-alive connection for every request, unless an answer
        // says `Connection: close`.
        let mut conn = KeepAlive::connect(addr);
        let mut reconnects = 0;
        for round in 0..25 {
            let cases = [
                (EVENTS, vec![json.clone()], &body, 401),
                (
                    "/v1/plugins",
                    vec![json.clone(), bearer(&reader)],
                    &body,
                    403,
                ),
                (EVENTS, vec![json.clone(), bearer(&reader)], &body, 403),
                (EVENTS, vec![bearer(&ingest)], &body, 415),
                (
                    "/v1/nothing",
                    vec![json.clone(), bearer(&ingest)],
                    &body,
                    404,
                ),
                (
                    "/v1/channels/events/stream",
                    vec![json.clone(), bearer(&ingest)],
                    &body,
                    405,
                ),
                (EVENTS, vec![json.clone(), bearer(&ingest)], &big, 413),
                (EVENTS, vec![json.clone(), bearer(&ingest)], &body, 201),
            ];
            for (path, headers, body, want) in cases {
                let (status, close) = conn
                    .post(path, &headers, body)
                    .unwrap_or_else(|e| panic!("round {round}: POST {path} ({want}): {e}"));
                assert_eq!(status, want, "round {round}: POST {path}");
                // Only an oversized body, left unread, ends the connection.
                assert_eq!(close, want == 413, "round {round}: POST {path} ({want})");
                if close {
                    conn = KeepAlive::connect(addr);
                    reconnects += 1;
                }
            }
        }
        assert_eq!(reconnects, 25);
    })
    .await
    .unwrap();
    assert_eq!(drain(&events, Duration::from_millis(100)).await.len(), 25);
}

/// A keep-alive HTTP/1.1 connection that writes a request's head and its
/// body separately, as many clients do, so the body may arrive after the
/// server has answered.
struct KeepAlive {
    reader: std::io::BufReader<std::net::TcpStream>,
    addr: SocketAddr,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> KeepAlive {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        KeepAlive {
            reader: std::io::BufReader::new(stream),
            addr,
        }
    }

    /// `POST path`: the status and whether the answer closes the
    /// connection; `Err` when the connection dropped instead.
    fn post(&mut self, path: &str, headers: &[String], body: &[u8]) -> Result<(u16, bool), String> {
        use std::io::{BufRead, Read, Write};
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream
            .write_all(head.as_bytes())
            .map_err(|e| format!("head not sent: {e}"))?;
        stream
            .write_all(body)
            .map_err(|e| format!("body not sent: {e}"))?;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(format!("connection closed after {lines:?}")),
                Ok(_) if line == "\r\n" => break,
                Ok(_) => lines.push(line.trim_end().to_ascii_lowercase()),
                Err(e) => return Err(format!("connection dropped: {e}")),
            }
        }
        let status = lines[0].split_whitespace().nth(1).unwrap().parse().unwrap();
        let length: usize = lines
            .iter()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut answer = vec![0; length];
        self.reader
            .read_exact(&mut answer)
            .map_err(|e| format!("answer cut short: {e}"))?;
        let close = lines.iter().any(|l| l == "connection: close");
        Ok((status, close))
    }
}

// ---- 2. Server-Sent Events -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_matching_envelopes_with_their_ids() {
    let gw = Gw::start(&[]).await;
    let path = format!("/v1/channels/events/stream?{}&{}", q("a:>"), q("b:x"));
    let mut sse = gw.sse(&path, None).await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    assert!(
        sse.head
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{}",
        sse.head
    );
    let sent = [
        gw.emit("a:1", json!({"n": 1})).await,
        gw.emit("c:1", json!({"n": 2})).await,
        gw.emit("b:y", json!({"n": 3})).await,
        gw.emit("b:x", json!({"n": 4})).await,
        gw.emit("a:2:deep", json!({"n": 5})).await,
    ];
    // Published over HTTP, too.
    let id = gw
        .post(EVENTS, None, &message("b:x", "custom.h", json!({"n": 6})))
        .await
        .created()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for want in [&sent[0], &sent[3], &sent[4]] {
        let ev = sse.next().await;
        assert_eq!(ev.event, "message", "{ev:#?}");
        assert_eq!(ev.id.as_deref(), Some(want.id.to_string().as_str()));
        let env: Envelope = serde_json::from_str(&ev.data).unwrap();
        assert_same(&env, want);
    }
    let ev = sse.next().await;
    assert_eq!(ev.id.as_deref(), Some(id.as_str()));
    assert_eq!(ev.json()["kind"], "custom.h");
    assert_eq!(ev.json()["payload"], json!({"n": 6}));

    // Without patterns: everything on the channel.
    let mut all = gw.sse("/v1/channels/events/stream", None).await;
    assert_eq!(all.status, 200);
    let env = gw.emit("z:1", json!(null)).await;
    assert_eq!(all.next().await.id, Some(env.id.to_string()));
    // Another channel's messages are not on this stream.
    let h = gw
        .post(
            "/v1/channels/health/messages",
            None,
            &message("z:1", "custom.h", json!(1)),
        )
        .await;
    h.created();
    let env = gw.emit("z:2", json!(null)).await;
    assert_eq!(all.next().await.id, Some(env.id.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_requests_are_refused_with_their_status_and_field() {
    let gw = Gw::start(&[]).await;
    // Neither SSE nor an upgrade.
    let s = Sse::open(gw.addr, "/v1/channels/events/stream", &[]).await;
    assert_eq!(s.status, 406);
    let v: Value = serde_json::from_str(&s.text().await).unwrap();
    assert_eq!(v["field"], "accept", "{v}");
    let s = Sse::open(
        gw.addr,
        "/v1/channels/events/stream",
        &[("Accept", "application/json")],
    )
    .await;
    assert_eq!(s.status, 406);
    // Unknown channel, bad pattern, unknown parameter.
    let s = gw.sse("/v1/channels/nowhere/stream", None).await;
    assert_eq!(s.status, 404);
    let v: Value = serde_json::from_str(&s.text().await).unwrap();
    assert_eq!(v["field"], "channel", "{v}");
    for bad in ["a:>:b", "a::b", "x*"] {
        let s = gw
            .sse(&format!("/v1/channels/events/stream?{}", q(bad)), None)
            .await;
        assert_eq!(s.status, 400, "{bad}");
        let v: Value = serde_json::from_str(&s.text().await).unwrap();
        assert_eq!(v["field"], "pattern", "{v}");
    }
    let s = gw.sse("/v1/channels/events/stream?topic=a", None).await;
    assert_eq!(s.status, 400);
    let v: Value = serde_json::from_str(&s.text().await).unwrap();
    assert_eq!(v["field"], "topic", "{v}");
    // No refused stream left a subscriber behind.
    assert!(
        gw.stream_subscribers().is_empty(),
        "{:?}",
        gw.stream_subscribers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_told_what_it_missed_and_never_blocks_publishers() {
    let gw = Gw::start(&[("EXESDB_API__STREAM_BUFFER", "4")]).await;
    let mut sse = gw
        .sse(&format!("/v1/channels/events/stream?{}", q("lag:>")), None)
        .await;
    assert_eq!(sse.status, 200);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/channels/events/stream?{}",
        gw.addr,
        q("lag:>")
    ))
    .await
    .unwrap();
    gw.await_stream_on("lag:>").await;
    assert_eq!(gw.stream_subscribers().len(), 2);
    let fast = gw.watch(Channel::Events, "lag:>");
    // Large payloads, so the socket buffers cannot absorb the stream.
    let pad = "x".repeat(128 * 1024);
    let started = Instant::now();
    for i in 0..200u64 {
        gw.emit(&format!("lag:{i}"), json!({"seq": i, "pad": pad}))
            .await;
        gw.emit(&format!("other:{i}"), json!({"seq": i})).await;
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "publishers were held up: {took:?}"
    );
    // A native subscriber got every message.
    for i in 0..200u64 {
        assert_eq!(next_where(&fast, |_| true).await.payload()["seq"], i);
    }

    // The SSE client reads now.
    let (mut seqs, mut missed, mut lagged) = (Vec::new(), 0u64, 0);
    while seqs.len() as u64 + missed < 200 {
        let ev = sse.next().await;
        match ev.event.as_str() {
            "message" => {
                let v = ev.json();
                assert!(
                    v["topic"].as_str().unwrap().starts_with("lag:"),
                    "{}",
                    v["topic"]
                );
                seqs.push(v["payload"]["seq"].as_u64().unwrap());
            }
            "lagged" => {
                let n = ev.json()["missed"].as_u64().expect("missed");
                assert!(n > 0);
                missed += n;
                lagged += 1;
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(lagged >= 1, "a lagged event");
    assert!(missed > 0);
    assert_eq!(seqs.len() as u64 + missed, 200);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert_eq!(seqs.last(), Some(&199), "the newest messages are kept");
    // The WebSocket client too.
    let (mut n, mut ws_missed, mut ws_lagged) = (0u64, 0u64, 0);
    let mut last = None;
    while n + ws_missed < 200 {
        let v = ws_json(&mut ws).await;
        if v["type"] == "lagged" {
            ws_missed += v["missed"].as_u64().expect("missed");
            ws_lagged += 1;
        } else {
            n += 1;
            last = v["payload"]["seq"].as_u64();
        }
    }
    assert!(ws_lagged >= 1, "a lagged frame");
    assert_eq!(n + ws_missed, 200);
    assert_eq!(last, Some(199));
    // The drops are counted on the bus, per client.
    let mut dropped: Vec<u64> = gw.stream_subscribers().iter().map(|s| s.dropped).collect();
    dropped.sort_unstable();
    let mut want = vec![missed, ws_missed];
    want.sort_unstable();
    assert_eq!(dropped, want);
    // Both keep streaming.
    let env = gw.emit("lag:after", json!({"seq": 1000})).await;
    assert_eq!(sse.next().await.id, Some(env.id.to_string()));
    assert_eq!(ws_json(&mut ws).await["id"], env.id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_clients_are_bounded_and_a_freed_slot_is_reused() {
    let gw = Gw::start(&[("EXESDB_API__MAX_STREAM_CLIENTS", "1")]).await;
    let first = gw.sse("/v1/channels/events/stream", None).await;
    assert_eq!(first.status, 200);
    let second = gw.sse("/v1/channels/events/stream", None).await;
    assert_eq!(second.status, 503);
    let v: Value = serde_json::from_str(&second.text().await).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("max_stream_clients"),
        "{v}"
    );
    // A WebSocket counts against the same bound.
    match tokio_tungstenite::connect_async(format!("ws://{}/v1/channels/events/stream", gw.addr))
        .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    drop(first);
    // The slot and the subscriber are released when the client goes.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        let s = gw
            .sse(&format!("/v1/channels/events/stream?{}", q("again")), None)
            .await;
        if s.status == 200 {
            break s;
        }
        assert_eq!(s.status, 503);
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let subs = gw.stream_subscribers();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0].subscriptions[0].pattern, "again");
    let env = gw.emit("again", json!(1)).await;
    assert_eq!(again.next().await.id, Some(env.id.to_string()));
}

// ---- 3. WebSocket ---------------------------------------------------------------------

async fn ws_send(ws: &mut WsStream, text: &str) {
    ws.send(Ws::Text(text.into())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_streams_envelopes_and_takes_subscribe_and_unsubscribe() {
    let gw = Gw::start(&[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/channels/events/stream?{}",
        gw.addr,
        q("a:>")
    ))
    .await
    .unwrap();
    let env = gw.emit("a:1", json!({"n": 1})).await;
    gw.emit("b:1", json!({"n": 0})).await;
    let v = ws_json(&mut ws).await;
    let got: Envelope = serde_json::from_value(v).unwrap();
    assert_same(&got, &env);

    ws_send(&mut ws, r#"{"subscribe": "b:>"}"#).await;
    let v = ws_json(&mut ws).await;
    assert_eq!(
        v,
        json!({"type": "subscribed", "channel": "events", "pattern": "b:>", "changed": true})
    );
    let env = gw.emit("b:x", json!({"n": 2})).await;
    assert_eq!(ws_json(&mut ws).await["id"], env.id.to_string());
    // Subscribing twice changes nothing.
    ws_send(&mut ws, r#"{"subscribe": "b:>"}"#).await;
    assert_eq!(ws_json(&mut ws).await["changed"], false);

    ws_send(&mut ws, r#"{"unsubscribe": "a:>"}"#).await;
    let v = ws_json(&mut ws).await;
    assert_eq!(v["type"], "unsubscribed");
    assert_eq!(v["changed"], true);
    gw.emit("a:2", json!({"n": 3})).await;
    let env = gw.emit("b:y", json!({"n": 4})).await;
    let v = ws_json(&mut ws).await;
    assert_eq!(v["id"], env.id.to_string(), "a:2 is no longer sent: {v}");

    // Bad control messages are answered, and the socket stays usable.
    for (bad, field) in [
        ("not json", "body"),
        (r#"{"subscribe": "a:>:b"}"#, "pattern"),
        (r#"{"subscribe": "a", "unsubscribe": "b"}"#, "body"),
        (r#"{}"#, "body"),
        (r#"{"subscribe": "a", "channel": "nowhere"}"#, "channel"),
        (r#"{"subscribe": "a", "colour": "red"}"#, "body"),
    ] {
        ws_send(&mut ws, bad).await;
        let v = ws_json(&mut ws).await;
        assert_eq!(v["type"], "error", "{bad}: {v}");
        assert_eq!(v["field"], field, "{bad}: {v}");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
    let env = gw.emit("b:z", json!({"n": 5})).await;
    assert_eq!(ws_json(&mut ws).await["id"], env.id.to_string());
    // Another channel through the same socket.
    ws_send(&mut ws, r#"{"subscribe": "sys:>", "channel": "system"}"#).await;
    assert_eq!(ws_json(&mut ws).await["channel"], "system");
    let id = gw
        .post(
            "/v1/channels/system/messages",
            None,
            &message("sys:1", "custom.s", json!({})),
        )
        .await
        .created()["id"]
        .clone();
    let v = ws_json(&mut ws).await;
    assert_eq!(v["id"], id);
    assert_eq!(v["channel"], "system");

    // Closing frees the client's subscriber.
    ws.close(None).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while !gw.stream_subscribers().is_empty() {
        assert!(Instant::now() < deadline, "subscriber left behind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A bad pattern refuses the upgrade.
    match tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/channels/events/stream?{}",
        gw.addr,
        q("a:>:b")
    ))
    .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

// ---- 4. tokens ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_decide_and_refusals_are_reported() {
    let gw = Gw::with_tokens(
        &[],
        &[
            ("reader", &["read"]),
            ("ingest", &["publish:events"]),
            ("ops", &["publish:*", "append:*", "append:default"]),
            ("root", &["admin"]),
        ],
    )
    .await;
    let security = gw.watch(Channel::Security, ">");
    let audit = gw.watch(Channel::Audit, ">");
    let events = gw.watch(Channel::Events, ">");

    // `read` may not publish: 403, an AccessViolation and a failed AccessLog.
    let e = gw
        .post(
            EVENTS,
            gw.token("reader"),
            &message("a:b", "custom.x", json!({})),
        )
        .await
        .refused(403, Some("authorization"));
    assert!(e.contains("publish:events"), "names the scope: {e}");
    let v = next_where(&security, |e| e.kind == "AccessViolation").await;
    assert_eq!(v.topic, "access_violation:reader");
    let p = v.payload();
    assert_eq!(p["user_id"], "reader");
    assert_eq!(p["violation_type"], "scope_missing");
    assert_eq!(p["source_ip"], "127.0.0.1");
    assert_eq!(p["metadata"]["count"], 1);
    let log = next_where(&audit, |e| e.kind == "AccessLog").await;
    assert_eq!(log.topic, "audit:access_log:api");
    assert_eq!(log.payload()["success"], false);
    assert_eq!(log.payload()["user_id"], "reader");

    // No token: 401 with WWW-Authenticate and a login_failure.
    let reply = gw
        .post(EVENTS, None, &message("a:b", "custom.x", json!({})))
        .await;
    let e = reply.refused(401, Some("authorization"));
    assert!(e.contains("Bearer"), "{e}");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    let f = next_where(&security, |e| {
        e.kind == "AuthEvent" && e.payload()["event_type"] == "login_failure"
    })
    .await;
    assert_eq!(f.topic, "auth:login_failure");
    assert_eq!(f.payload()["auth_method"], "bearer_token");
    let v = next_where(&security, |e| e.kind == "AccessViolation").await;
    assert_eq!(v.payload()["violation_type"], "authentication_failed");
    let log = next_where(&audit, |e| e.kind == "AccessLog").await;
    assert_eq!(log.payload()["success"], false);
    // A wrong token and a malformed header are 401s too.
    gw.post(
        EVENTS,
        Some("exesdb_wrong".into()),
        &message("a:b", "custom.x", json!({})),
    )
    .await
    .refused(401, Some("authorization"));
    let reply = gw
        .get("/v1/plugins", &[("Authorization", "Basic abc")])
        .await;
    reply.refused(401, Some("authorization"));
    quiet(&events, Duration::from_millis(100)).await;

    // `publish:events` publishes on events, not on alerts, and cannot ack.
    gw.post(
        EVENTS,
        gw.token("ingest"),
        &message("a:b", "custom.x", json!({})),
    )
    .await
    .created();
    assert_eq!(next_where(&events, |_| true).await.topic, "a:b");
    gw.post(
        "/v1/channels/alerts/messages",
        gw.token("ingest"),
        &message("a:b", "custom.x", json!({})),
    )
    .await
    .refused(403, Some("authorization"));
    gw.post(
        "/v1/alerts/al-1/ack",
        gw.token("ingest"),
        &json!({"acknowledged_by": "me"}),
    )
    .await
    .refused(403, Some("authorization"));
    // It may not stream (no `read`); the reader may.
    let s = gw
        .sse(
            "/v1/channels/events/stream",
            gw.tokens["ingest"].as_str().into(),
        )
        .await;
    assert_eq!(s.status, 403);
    let mut s = gw
        .sse(
            "/v1/channels/events/stream",
            gw.tokens["reader"].as_str().into(),
        )
        .await;
    assert_eq!(s.status, 200);
    // A WebSocket carries the token in its handshake.
    let url = format!("ws://{}/v1/channels/events/stream", gw.addr);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", gw.tokens["reader"]).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();

    // `publish:*` (with `append:*`) publishes anywhere and acks.
    let r = gw
        .post(
            "/v1/channels/alerts/messages",
            gw.token("ops"),
            &message("a:b", "custom.x", json!({})),
        )
        .await;
    let id = r.created()["id"].clone();
    gw.post(
        "/v1/alerts/al-1/ack",
        gw.token("ops"),
        &json!({"acknowledged_by": "ops"}),
    )
    .await
    .created();
    // `admin` does everything.
    let r = gw
        .post(
            EVENTS,
            gw.token("root"),
            &message("a:root", "custom.x", json!({})),
        )
        .await;
    let root_id = r.created()["id"].clone();
    assert_eq!(s.next().await.id.as_deref(), root_id.as_str());
    assert_eq!(ws_json(&mut ws).await["id"], root_id);
    assert_ne!(id, root_id);
    let r = gw
        .get(
            "/v1/plugins",
            &[("Authorization", &format!("Bearer {}", gw.tokens["root"]))],
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_token_is_reported_once_not_per_request() {
    let gw = Gw::with_tokens(
        &[],
        &[("ingest", &["publish:events"]), ("reader", &["read"])],
    )
    .await;
    let security = gw.watch(Channel::Security, "auth:>");
    for i in 0..20 {
        gw.post(
            EVENTS,
            gw.token("ingest"),
            &message(&format!("n:{i}"), "custom.x", json!(i)),
        )
        .await
        .created();
    }
    gw.get(
        "/v1/plugins",
        &[("Authorization", &format!("Bearer {}", gw.tokens["reader"]))],
    )
    .await;
    let got = drain(&security, Duration::from_millis(700)).await;
    let successes: Vec<&Arc<Envelope>> = got
        .iter()
        .filter(|e| e.payload()["event_type"] == "login_success")
        .collect();
    let by = |name: &str| {
        successes
            .iter()
            .filter(|e| e.payload()["user_id"] == name)
            .count()
    };
    assert_eq!(by("ingest"), 1, "{successes:#?}");
    assert_eq!(by("reader"), 1, "{successes:#?}");
    assert_eq!(successes.len(), 2);
    let s = successes[0];
    assert_eq!(s.topic, "auth:login_success");
    assert_eq!(s.payload()["source_ip"], "127.0.0.1");
    assert_eq!(s.payload()["auth_method"], "bearer_token");
    assert!(!got
        .iter()
        .any(|e| e.payload()["event_type"] == "login_failure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_is_reported_in_a_few_counted_messages() {
    let gw = Gw::with_tokens(&[], &[("reader", &["read"])]).await;
    let security = gw.watch(Channel::Security, ">");
    let audit = gw.watch(Channel::Audit, ">");
    let url = gw.url(EVENTS);
    let body = serde_json::to_vec(&message("a:b", "custom.x", json!({}))).unwrap();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let agent = agent();
        let headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        for _ in 0..500 {
            let r = http(&agent, "POST", &url, &headers, Some(body.clone())).unwrap();
            assert_eq!(r.status, 401);
        }
    })
    .await
    .unwrap();
    let flood = started.elapsed();
    // Reports are flushed every second.
    let mut violations = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let sum = |v: &[Arc<Envelope>]| -> u64 {
        v.iter()
            .map(|e| e.payload()["metadata"]["count"].as_u64().unwrap())
            .sum()
    };
    while sum(&violations) < 500 && Instant::now() < deadline {
        violations.extend(
            drain(&security, Duration::from_millis(200))
                .await
                .into_iter()
                .filter(|e| e.kind == "AccessViolation"),
        );
    }
    // Nothing more comes after the counts add up.
    violations.extend(
        drain(&security, Duration::from_millis(1300))
            .await
            .into_iter()
            .filter(|e| e.kind == "AccessViolation"),
    );
    assert_eq!(sum(&violations), 500, "{violations:#?}");
    let bound = 3 + flood.as_secs() as usize;
    assert!(
        violations.len() <= bound,
        "{} reports for a {flood:?} flood (at most {bound})",
        violations.len()
    );
    assert!(violations
        .iter()
        .all(|v| v.payload()["violation_type"] == "authentication_failed"));
    let logs: Vec<_> = drain(&audit, Duration::from_millis(50))
        .await
        .into_iter()
        .filter(|e| e.kind == "AccessLog")
        .collect();
    assert_eq!(
        logs.len(),
        violations.len(),
        "one failed AccessLog per report"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_refusals_are_reported_under_the_client_that_made_them() {
    let gw = Gw::with_tokens(&[], &[("reader", &["read"])]).await;
    let security = gw.watch(Channel::Security, "access_violation:>");
    // Two scope refusals of `reader` (the second counted for later) ...
    for _ in 0..2 {
        gw.post(
            EVENTS,
            gw.token("reader"),
            &message("a:b", "custom.x", json!({})),
        )
        .await
        .refused(403, Some("authorization"));
    }
    // ... then an unauthenticated request from the same address.
    gw.post(EVENTS, None, &message("a:b", "custom.x", json!({})))
        .await
        .refused(401, Some("authorization"));
    let got = drain(&security, Duration::from_millis(2500)).await;
    let scope: Vec<&Arc<Envelope>> = got
        .iter()
        .filter(|e| e.payload()["violation_type"] == "scope_missing")
        .collect();
    let total: u64 = scope
        .iter()
        .map(|e| e.payload()["metadata"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2, "{got:#?}");
    for e in &scope {
        assert_eq!(e.payload()["user_id"], "reader", "{e:#?}");
        assert_eq!(e.topic, "access_violation:reader");
    }
    let auth: Vec<_> = got
        .iter()
        .filter(|e| e.payload()["violation_type"] == "authentication_failed")
        .collect();
    assert_eq!(auth.len(), 1, "{got:#?}");
    assert_eq!(auth[0].payload()["user_id"], "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_listen_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let err = try_start(dir.path(), &[("EXESDB_API__LISTEN", "0.0.0.0:0")], None)
        .await
        .expect_err("refused");
    let text = format!("{err:#}");
    assert!(text.contains("exesdb-host token new"), "{text}");
    assert!(text.contains("api.listen"), "{text}");
    // A bad token entry is refused naming it.
    let dir = tempfile::tempdir().unwrap();
    let toml = "[[api.tokens]]\nname = \"ci\"\nsha256 = \"abc\"\nscopes = [\"read\"]\n";
    let err = try_start(dir.path(), &[], Some(toml))
        .await
        .expect_err("refused");
    assert!(format!("{err:#}").contains("api.tokens[0]"), "{err:#}");
    let dir = tempfile::tempdir().unwrap();
    let (_, sha) = exesdb_host::api::auth::new_token();
    let toml = format!(
        "[[api.tokens]]\nname = \"ci\"\nsha256 = \"{sha}\"\nscopes = [\"publish:nowhere\"]\n"
    );
    let err = try_start(dir.path(), &[], Some(&toml))
        .await
        .expect_err("refused");
    assert!(format!("{err:#}").contains("publish:nowhere"), "{err:#}");
}

// ---- 5. alert acks ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_ack_is_published_as_an_alert_ack() {
    let gw = Gw::start(&[]).await;
    let alerts = gw.watch(Channel::Alerts, ">");
    let r = gw
        .post(
            "/v1/alerts/al-7/ack",
            None,
            &json!({"acknowledged_by": "alice", "notes": "on it", "resolution": "restarted"}),
        )
        .await;
    let id = r.created()["id"].as_str().unwrap().to_owned();
    let env = next_where(&alerts, |_| true).await;
    assert_eq!(env.id.to_string(), id);
    assert_eq!(env.kind, "AlertAck");
    assert_eq!(env.topic, "alert_ack:al-7");
    assert_eq!(
        env.payload(),
        &json!({"alert_id": "al-7", "ack_by": "alice", "ack_note": "on it", "resolution": "restarted"})
    );
    // Without notes.
    gw.post(
        "/v1/alerts/al-8/ack",
        None,
        &json!({"acknowledged_by": "bob"}),
    )
    .await
    .created();
    let env = next_where(&alerts, |_| true).await;
    assert_eq!(env.payload(), &json!({"alert_id": "al-8", "ack_by": "bob"}));
    // Refusals.
    for who in ["", "   "] {
        gw.post(
            "/v1/alerts/al-9/ack",
            None,
            &json!({"acknowledged_by": who}),
        )
        .await
        .refused(400, Some("acknowledged_by"));
    }
    gw.post("/v1/alerts/al-9/ack", None, &json!({"notes": "x"}))
        .await
        .refused(400, Some("body"));
    gw.post("/v1/alerts/al-9/ack", None, &json!({"acknowledged_by": 3}))
        .await
        .refused(400, Some("acknowledged_by"));
    gw.post("/v1/alerts/al-9/ack", None, &json!(["bob"]))
        .await
        .refused(400, Some("body"));
    gw.post_raw("/v1/alerts/al-9/ack", None, None, b"{}".to_vec())
        .await
        .refused(415, Some("content-type"));
    // An id that cannot be part of a topic is named as the id.
    gw.post(
        "/v1/alerts/a%20b/ack",
        None,
        &json!({"acknowledged_by": "bob"}),
    )
    .await
    .refused(400, Some("alert_id"));
    gw.post(
        "/v1/alerts/a*/ack",
        None,
        &json!({"acknowledged_by": "bob"}),
    )
    .await
    .refused(400, Some("alert_id"));
    quiet(&alerts, Duration::from_millis(200)).await;
}

// ---- 6. the CLI against a running host ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_publishes_acks_and_tails() {
    let gw = Gw::start(&[]).await;
    let admin = gw.url("");
    let events = gw.watch(Channel::Events, "s:>");
    let alerts = gw.watch(Channel::Alerts, ">");

    // publish
    let out = exe(
        &[
            "publish",
            "events",
            "s:x",
            "--kind",
            "custom.e",
            "--data",
            r#"{"a":1}"#,
            "--admin",
            &admin,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let id = out.stdout.trim().to_owned();
    let env = next_where(&events, |_| true).await;
    assert_eq!(env.id.to_string(), id);
    assert_eq!((env.topic.as_str(), env.kind.as_str()), ("s:x", "custom.e"));
    assert_eq!(env.payload(), &json!({"a": 1}));
    // EXESDB_ADMIN_URL stands for --admin.
    let out = exe(
        &["publish", "events", "s:y", "--kind", "custom.e"],
        &[("EXESDB_ADMIN_URL", &admin)],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let env = next_where(&events, |_| true).await;
    assert_eq!(env.id.to_string(), out.stdout.trim());
    assert_eq!(env.payload(), &json!({}));
    // Refusals: bad --data (nothing sent), the gateway's refusal with its field.
    let out = exe(
        &[
            "publish", "events", "s:x", "--kind", "custom.e", "--data", "{nope", "--admin", &admin,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("--data"), "{out:#?}");
    assert!(out.stdout.is_empty());
    let out = exe(
        &[
            "publish",
            "alerts",
            "s:x",
            "--kind",
            "NodeHealth",
            "--admin",
            &admin,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("field `kind`"), "{out:#?}");
    let out = exe(
        &[
            "publish", "events", "s:*", "--kind", "custom.e", "--admin", &admin,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("field `topic`"), "{out:#?}");
    quiet(&events, Duration::from_millis(100)).await;

    // alert ack
    let out = exe(&["alert", "ack", "al-3", "--admin", &admin], &[]).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.contains("al-3"), "{out:#?}");
    let env = next_where(&alerts, |_| true).await;
    assert_eq!(env.kind, "AlertAck");
    assert_eq!(env.topic, "alert_ack:al-3");
    assert_eq!(env.payload()["alert_id"], "al-3");
    assert_eq!(env.payload()["ack_by"], "operator");
    let out = exe(
        &[
            "alert", "ack", "al-4", "--by", "carol", "--note", "fixed", "--admin", &admin,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let env = next_where(&alerts, |_| true).await;
    assert_eq!(
        env.payload(),
        &json!({"alert_id": "al-4", "ack_by": "carol", "ack_note": "fixed"})
    );
    let out = exe(
        &["alert", "ack", "al-5", "--by", "", "--admin", &admin],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("acknowledged_by"), "{out:#?}");

    // tail, as JSON and pretty, at once
    let spawn_tail = |format: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_exesdb-host"))
            .env("NO_COLOR", "1")
            .env_remove("EXESDB_TOKEN")
            .args([
                "tail", "events", "s:>", "--format", format, "--admin", &admin,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut json_tail = spawn_tail("json");
    let mut pretty_tail = spawn_tail("pretty");
    let deadline = Instant::now() + WAIT;
    while gw.stream_subscribers().len() < 2 {
        assert!(Instant::now() < deadline, "tail never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.emit("t:ignored", json!(0)).await;
    let out = exe(
        &[
            "publish",
            "events",
            "s:tail",
            "--kind",
            "custom.e",
            "--data",
            r#"{"b":2}"#,
            "--admin",
            &admin,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let id = out.stdout.trim().to_owned();
    let mut lines = BufReader::new(json_tail.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("a line");
    let env: Envelope = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(env.id.to_string(), id);
    assert_eq!(env.topic, "s:tail");
    assert_eq!(env.payload(), &json!({"b": 2}));
    let mut lines = BufReader::new(pretty_tail.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("a line");
    assert!(line.contains("events s:tail custom.e {\"b\":2}"), "{line}");
    assert!(
        !line.contains('\u{1b}'),
        "no colour with NO_COLOR: {line:?}"
    );
    // Ctrl-C (SIGINT) or SIGTERM ends a tail with exit code 0.
    for (child, signal) in [(&mut json_tail, "-INT"), (&mut pretty_tail, "-TERM")] {
        let pid = child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("tail ends on the signal")
            .unwrap();
        assert_eq!(status.code(), Some(0), "{signal}: {status:?}");
    }
    // The host dropped their subscriptions.
    let deadline = Instant::now() + WAIT;
    while !gw.stream_subscribers().is_empty() {
        assert!(Instant::now() < deadline, "tail's subscriber left behind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // tail refused
    let out = exe(&["tail", "nowhere", "--admin", &admin], &[]).await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("nowhere"), "{out:#?}");
    // No host there.
    let out = exe(
        &[
            "publish",
            "events",
            "s:x",
            "--kind",
            "custom.e",
            "--admin",
            "http://127.0.0.1:9",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("cannot reach"), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_by_the_cli_authenticates_the_cli() {
    let out = exe(
        &[
            "token",
            "new",
            "ci",
            "--scope",
            "read",
            "--scope",
            "publish:events",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let token = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("the token")
        .trim()
        .to_owned();
    // The rest is the [[api.tokens]] entry, holding the token's digest only.
    let entry: String = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("token: "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!entry.contains(&token), "{entry}");
    let parsed: toml::Table = toml::from_str(&entry).unwrap_or_else(|e| panic!("{e}: {entry}"));
    let t = &parsed["api"]["tokens"][0];
    assert_eq!(t["name"].as_str(), Some("ci"));
    assert_eq!(
        t["scopes"],
        toml::Value::from(vec!["read", "publish:events"])
    );
    let digest: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(t["sha256"].as_str(), Some(digest.as_str()));
    // Two runs make two tokens.
    let again = exe(&["token", "new", "ci", "--scope", "read"], &[]).await;
    assert!(!again.stdout.contains(&token));
    // A bad scope is refused.
    let bad = exe(&["token", "new", "ci", "--scope", "write"], &[]).await;
    assert_eq!(bad.code, Some(1), "{bad:#?}");
    assert!(
        bad.stderr.contains("--scope") && bad.stderr.contains("write"),
        "{bad:#?}"
    );

    // A host configured with that entry accepts the token.
    let dir = tempfile::tempdir().unwrap();
    let host = try_start(dir.path(), &[], Some(&entry)).await.unwrap();
    let admin = format!("http://{}", host.api_addr().unwrap());
    let sub = host
        .bus()
        .subscriber_with(
            "test-events",
            SubscriberOptions {
                capacity: Some(1000),
                policy: None,
            },
        )
        .unwrap();
    sub.subscribe(Channel::Events, ">").unwrap();
    let out = exe(
        &[
            "publish", "events", "c:1", "--kind", "custom.e", "--admin", &admin, "--token", &token,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(
        next_where(&sub, |_| true).await.id.to_string(),
        out.stdout.trim()
    );
    let out = exe(
        &[
            "publish", "events", "c:2", "--kind", "custom.e", "--admin", &admin,
        ],
        &[("EXESDB_TOKEN", &token)],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(next_where(&sub, |_| true).await.topic, "c:2");
    // `read` lists plugins; the scopes stop at what was granted.
    let out = exe(
        &["plugin", "list", "--admin", &admin, "--token", &token],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.starts_with("NAME"), "{out:#?}");
    let out = exe(
        &["alert", "ack", "x", "--admin", &admin, "--token", &token],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("publish:alerts"), "{out:#?}");
    // Without a token, or with another one: the 401's text, exit 1.
    for args in [
        vec![
            "publish", "events", "c:3", "--kind", "custom.e", "--admin", &admin,
        ],
        vec![
            "publish",
            "events",
            "c:3",
            "--kind",
            "custom.e",
            "--admin",
            &admin,
            "--token",
            "exesdb_other",
        ],
        vec!["plugin", "list", "--admin", &admin],
        vec!["tail", "events", "--admin", &admin],
    ] {
        let out = exe(&args, &[]).await;
        assert_eq!(out.code, Some(1), "{args:?}: {out:#?}");
        assert!(
            out.stderr.contains("authentication required") || out.stderr.contains("unknown token"),
            "{args:?}: {out:#?}"
        );
        assert!(out.stdout.is_empty(), "{out:#?}");
    }
    quiet(&sub, Duration::from_millis(100)).await;
    host.shutdown().await.unwrap();
}

// ---- 7. property test of request bodies ----------------------------------------------------

mod bodies {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const FIELDS: [&str; 6] = [
        "topic",
        "kind",
        "payload",
        "messages",
        "correlation_id",
        "causation_id",
    ];

    fn key() -> impl Strategy<Value = String> {
        "[a-z_]{1,10}".prop_filter("not a request field", |k| !FIELDS.contains(&k.as_str()))
    }

    /// Any JSON value whose objects hold none of the request's fields.
    pub fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,24}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::btree_map(key(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn non_string() -> impl Strategy<Value = Value> {
        json_value().prop_filter("not a string", |v| !v.is_string())
    }

    fn topic() -> impl Strategy<Value = String> {
        "[a-z]{1,8}(:[a-z0-9_]{1,8}){0,2}"
    }

    fn bad_topic() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            topic().prop_map(|t| format!("{t}:")),
            topic().prop_map(|t| format!(":{t}")),
            topic().prop_map(|t| format!("{t}::x")),
            topic().prop_map(|t| format!("{t} x")),
            topic().prop_map(|t| format!("{t}\t")),
            topic().prop_map(|t| format!("{t}:*")),
            topic().prop_map(|t| format!("{t}:>")),
            (1025usize..20_000).prop_map(|n| "t".repeat(n)),
        ]
    }

    fn huge() -> impl Strategy<Value = String> {
        (prop::char::range('!', '~'), 5_000usize..40_000).prop_map(|(c, n)| c.to_string().repeat(n))
    }

    /// One message that must be refused.
    fn bad_message() -> impl Strategy<Value = Value> {
        let spec: Vec<&'static str> = exesdb_host::messages::spec_kinds()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        prop_oneof![
            // fields of the wrong type
            (non_string(), json_value()).prop_map(|(t, p)| json!({"topic": t, "kind": "custom.x", "payload": p})),
            (topic(), non_string(), json_value()).prop_map(|(t, k, p)| json!({"topic": t, "kind": k, "payload": p})),
            (topic(), non_string().prop_filter("not null", |v| !v.is_null()))
                .prop_map(|(t, c)| json!({"topic": t, "kind": "custom.x", "payload": {}, "correlation_id": c})),
            (topic(), non_string().prop_filter("not null", |v| !v.is_null()))
                .prop_map(|(t, c)| json!({"topic": t, "kind": "custom.x", "payload": {}, "causation_id": c})),
            // a missing field
            (topic(), json_value(), 0..3usize).prop_map(|(t, p, i)| {
                let mut m = json!({"topic": t, "kind": "custom.x", "payload": p});
                m.as_object_mut().unwrap().remove(["topic", "kind", "payload"][i]);
                m
            }),
            // an unknown field
            (topic(), key(), json_value()).prop_map(|(t, k, v)| {
                let mut m = json!({"topic": t, "kind": "custom.x", "payload": {}});
                m[k] = v;
                m
            }),
            // a bad topic
            (bad_topic(), json_value()).prop_map(|(t, p)| json!({"topic": t, "kind": "custom.x", "payload": p})),
            // a spec kind of another channel, an empty kind
            (topic(), prop::sample::select(spec), json_value())
                .prop_map(|(t, k, p)| json!({"topic": t, "kind": k, "payload": p})),
            (topic(), json_value()).prop_map(|(t, p)| json!({"topic": t, "kind": "", "payload": p})),
            // huge strings
            (topic(), huge()).prop_map(|(t, s)| json!({"topic": t, "kind": "custom.x", "payload": s})),
            huge().prop_map(|s| json!({"topic": s, "kind": "custom.x", "payload": 1})),
            huge().prop_map(|s| json!({"kind": s, "payload": 1})),
        ]
    }

    /// A request body that must be refused.
    pub fn bad_body() -> impl Strategy<Value = Vec<u8>> {
        let good = || {
            topic().prop_map(|t| json!({"topic": t, "kind": "custom.ok", "payload": {"ok": true}}))
        };
        prop_oneof![
            // any JSON (never holding the request's fields)
            json_value().prop_map(|v| v.to_string().into_bytes()),
            bad_message().prop_map(|v| v.to_string().into_bytes()),
            // a batch with one bad message among good ones
            (
                prop::collection::vec(good(), 0..3),
                bad_message(),
                prop::collection::vec(good(), 0..3)
            )
                .prop_map(|(mut a, bad, b)| {
                    a.push(bad);
                    a.extend(b);
                    json!({"messages": a}).to_string().into_bytes()
                }),
            non_string()
                .prop_filter("not an array", |v| !v.is_array())
                .prop_map(|v| json!({"messages": v}).to_string().into_bytes()),
            // a huge string as the whole body, a body over [api] max_body_bytes
            huge().prop_map(|s| Value::from(s).to_string().into_bytes()),
            (70_000usize..100_000).prop_map(|n| {
                json!({"topic": "a", "kind": "custom.x", "payload": "z".repeat(n)})
                    .to_string()
                    .into_bytes()
            }),
            // not JSON at all
            prop::collection::vec(any::<u8>(), 0..64)
                .prop_filter("not JSON", |b| serde_json::from_slice::<Value>(b).is_err()),
        ]
    }
}

#[test]
fn random_bodies_are_refused_with_a_4xx_and_publish_nothing() {
    use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let gw = rt.block_on(Gw::start(&[
        ("EXESDB_BUS__MAX_PAYLOAD_BYTES", "4096"),
        ("EXESDB_API__MAX_BODY_BYTES", "65536"),
    ]));
    let sub = gw.watch(Channel::Events, ">");
    let url = gw.url(EVENTS);
    let agent = agent();
    let headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&bodies::bad_body(), |body| {
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        let reply = http(&agent, "POST", &url, &headers, Some(body))
            .map_err(|e| TestCaseError::fail(format!("no answer ({e}) to {shown}")))?;
        if !(400..500).contains(&reply.status) {
            return Err(TestCaseError::fail(format!(
                "{} for {shown}: {}",
                reply.status, reply.text
            )));
        }
        let v: Value = serde_json::from_str(&reply.text)
            .map_err(|e| TestCaseError::fail(format!("{e}: {} for {shown}", reply.text)))?;
        if v["error"].as_str().is_none_or(|e| e.is_empty()) {
            return Err(TestCaseError::fail(format!(
                "no error text: {v} for {shown}"
            )));
        }
        if let Some(env) = sub.try_recv() {
            return Err(TestCaseError::fail(format!(
                "published {} for {shown}",
                env.topic
            )));
        }
        Ok(())
    });
    rt.block_on(async {
        quiet(&sub, Duration::from_millis(200)).await;
        drop(sub);
        gw.host.shutdown().await.unwrap();
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---- the routes the dashboard reads -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_names_the_token_and_its_scopes() {
    let gw = Gw::with_tokens(
        &[],
        &[
            ("viewer", &["read"]),
            ("ops", &["read", "publish:alerts"]),
            ("root", &["admin"]),
        ],
    )
    .await;
    for (name, scopes, admin) in [
        ("viewer", json!(["read"]), false),
        ("ops", json!(["read", "publish:alerts"]), false),
        ("root", json!(["admin"]), true),
    ] {
        let auth = format!("Bearer {}", gw.token(name).unwrap());
        let r = gw.get("/v1/session", &[("Authorization", &auth)]).await;
        assert_eq!(r.status, 200, "{r:#?}");
        assert_eq!(
            r.json(),
            json!({"name": name, "scopes": scopes, "admin": admin, "tokens_required": true})
        );
    }
    gw.get("/v1/session", &[])
        .await
        .refused(401, Some("authorization"));
    // Open API: anonymous with every right.
    let open = Gw::start(&[]).await;
    let r = open.get("/v1/session", &[]).await;
    assert_eq!(
        r.json(),
        json!({"name": "anonymous", "scopes": ["admin"], "admin": true, "tokens_required": false})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_may_carry_its_token_in_the_query_and_nothing_else_may() {
    let gw = Gw::with_tokens(&[], &[("viewer", &["read"]), ("pub", &["publish:*"])]).await;
    let viewer = gw.token("viewer").unwrap();
    let r = gw
        .get(&format!("/v1/session?access_token={viewer}"), &[])
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(r.json()["name"], "viewer");
    // A stream takes it beside its patterns.
    let mut sse = gw
        .sse(
            &format!("/v1/channels/events/stream?pattern=a:%3E&access_token={viewer}"),
            None,
        )
        .await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    gw.await_stream_on("a:>").await;
    let env = gw.emit("a:1", json!({"n": 1})).await;
    assert_eq!(sse.next().await.id, Some(env.id.to_string()));
    // A store read ignores it as a query parameter.
    let r = gw
        .get(
            &format!("/v1/stores/default/streams?access_token={viewer}"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    // An unknown token in the query is a 401, as in the header.
    gw.get("/v1/session?access_token=nope", &[])
        .await
        .refused(401, Some("authorization"));
    // A POST does not take it from the query.
    let publisher = gw.token("pub").unwrap();
    gw.post_raw(
        &format!("/v1/channels/events/messages?access_token={publisher}"),
        None,
        Some("application/json"),
        serde_json::to_vec(&message("a:2", "custom.t", json!(1))).unwrap(),
    )
    .await
    .refused(401, Some("authorization"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_view_sends_each_message_with_its_console_line() {
    let gw = Gw::start(&[]).await;
    let mut sse = gw
        .sse(
            "/v1/channels/events/stream?pattern=v:%3E&view=console",
            None,
        )
        .await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    gw.await_stream_on("v:>").await;
    let env = gw.emit("v:1", json!({"n": 7})).await;
    let ev = sse.next().await;
    assert_eq!(ev.id, Some(env.id.to_string()));
    let v = ev.json();
    let (class, line) = exesdb_host::logging::lines::message(&env);
    assert_eq!(v["line"], line);
    assert_eq!(v["class"], class.as_str());
    assert!(line.ends_with(r#"events v:1 custom.t {"n":7}"#), "{line}");
    let back: Envelope = serde_json::from_value(v["envelope"].clone()).unwrap();
    assert_same(&back, &env);
    // A SubscriptionHealth reads as the spec's health line.
    let mut health = gw
        .sse(
            "/v1/channels/health/stream?pattern=subscription_health:t:%3E&view=console",
            None,
        )
        .await;
    gw.await_stream_on("subscription_health:t:>").await;
    let sh = exesdb_host::messages::tracking::SubscriptionHealth {
        store: "t".into(),
        subscription: "projector".into(),
        event: exesdb_host::messages::tracking::HealthEventType::CircuitBreakerOpened,
        status: exesdb_host::messages::tracking::SubscriptionStatus::Failed,
        breaker: exesdb_host::messages::tracking::BreakerState::Open,
        event_count: 1,
        error_count: 3,
        consecutive_failures: 3,
        last_event: None,
        last_error: Some("boom".into()),
        last_seen: None,
    };
    gw.host
        .bus()
        .publish_typed_now("subscription_health:t:projector", &sh)
        .unwrap();
    let v = health.next().await.json();
    assert_eq!(v["class"], "health");
    let line = v["line"].as_str().unwrap();
    assert!(
        line.contains("projector") && line.contains("failed"),
        "{line}"
    );
    // A bad view is a 400 naming it.
    gw.get(
        "/v1/channels/events/stream?view=fancy",
        &[("Accept", "text/event-stream")],
    )
    .await
    .refused(400, Some("view"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_route_reports_this_process_and_its_components() {
    let gw = Gw::start(&[]).await;
    let r = gw.get("/v1/node", &[]).await;
    assert_eq!(r.status, 200, "{r:#?}");
    let v = r.json();
    assert_eq!(v["node"], gw.host.bus().node());
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["pid"], std::process::id());
    assert!(v["rss_bytes"].as_u64().unwrap() > 1 << 20, "{v}");
    assert!(v["cpus"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["uptime_secs"].as_i64().unwrap() >= 0, "{v}");
    let components: Vec<&str> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"].as_str().unwrap())
        .collect();
    assert_eq!(components, ["bus", "runtime", "store"]);
    assert_eq!(
        v["components"][1]["details"]["plugins"],
        gw.host.plugins().list().len(),
        "{v}"
    );
    // CPU is measured between requests: a number from the second on.
    let second = gw.get("/v1/node", &[]).await.json();
    assert!(second["cpu_percent"].as_f64().is_some(), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_book_keeps_alerts_with_their_level_and_ack() {
    let gw = Gw::start(&[("EXESDB_PLUGINS__BUNDLED", "false")]).await;
    let alerts = gw.watch(Channel::Alerts, ">");
    let raise = |id: &str, title: &str| {
        message(
            &format!("system_alert:{id}"),
            "SystemAlert",
            json!({"alert_id": id, "severity": "critical", "category": "performance",
                   "title": title, "description": "d", "source": "test", "metadata": {},
                   "requires_ack": true}),
        )
    };
    let first = gw
        .post("/v1/channels/alerts/messages", None, &raise("b-1", "first"))
        .await
        .created()["id"]
        .clone();
    gw.post(
        "/v1/channels/alerts/messages",
        None,
        &raise("b-2", "second"),
    )
    .await
    .created();
    gw.post(
        "/v1/channels/alerts/messages",
        None,
        &message(
            "alert_escalation:b-1",
            "AlertEscalation",
            json!({"alert_id": "b-1", "to_level": "level2", "escalation_reason": "no ack",
                   "escalated_by": "test", "notify_contacts": []}),
        ),
    )
    .await
    .created();
    gw.post(
        "/v1/alerts/b-1/ack",
        None,
        &json!({"acknowledged_by": "alice", "notes": "ok"}),
    )
    .await
    .created();
    // Everything is on the bus; the book has filed it once the ack is seen.
    next_where(&alerts, |e| e.kind == "AlertAck").await;
    let deadline = Instant::now() + WAIT;
    let list = loop {
        let v = gw.get("/v1/alerts", &[]).await.json();
        if v["alerts"][1]["acknowledged"].is_object() {
            break v["alerts"].clone();
        }
        assert!(Instant::now() < deadline, "the ack was not filed: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["alert_id"], "b-2", "newest first");
    assert_eq!(list[0]["level"], Value::Null);
    assert_eq!(list[0]["acknowledged"], Value::Null);
    assert_eq!(list[1]["alert_id"], "b-1");
    assert_eq!(list[1]["envelope_id"], first);
    assert_eq!(list[1]["title"], "first");
    assert_eq!(list[1]["level"], "level2");
    assert_eq!(list[1]["acknowledged"]["by"], "alice");
    assert_eq!(list[1]["acknowledged"]["note"], "ok");
}
