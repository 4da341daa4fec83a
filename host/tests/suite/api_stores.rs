//! The gateway's store routes, black-box, over real HTTP on 127.0.0.1
//! against an in-process host: appends (positions, expected versions,
//! idempotent retries, refused bodies, the `DataChange` on `audit`), reads
//! (streams both ways, `$all`, `$et-…`, `$pattern-…`), the stream list, a
//! store that does not exist, subscriptions (catch-up then live over SSE
//! and WebSocket, resumed with `Last-Event-ID` after the connection is
//! killed, `from=now`), an appended event reaching a plugin and a plugin's
//! store subscription, `GET /v1/emitters`; and `exesdb-host store …` /
//! `exesdb-host emitters` with the real binary, through a running host and
//! on the file when none runs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use exesdb_host::artifacts::TEST_GUEST_WASM;
use exesdb_host::bus::{Channel, Subscriber};
use exesdb_host::config::Config;
use exesdb_host::emitter::{Start, SubscriptionSpec};
use exesdb_host::host::Host;
use exesdb_host::messages::audit::{DataAction, DataChange};
use exesdb_host::store::json::EventJson;
use exesdb_host::store::{Direction, Durability, RecordedEvent, Selector, Store};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::{
    agent, api_tokens, exe, host_env, next_where, path_str, quiet, take_line, watch, ws_json, Run,
    SseEvent, SseParser, WAIT,
};

/// Long enough for a message that should not come to have come.
const QUIET: Duration = Duration::from_millis(400);

// ---- fixture ------------------------------------------------------------------

/// A running host (no bundled plugins, no periodic reporters, its own
/// data, cache and plugin directories) and its gateway.
struct Gw {
    host: Host,
    addr: SocketAddr,
    /// Tokens by name (the config file holds only their digests).
    tokens: BTreeMap<String, String>,
    dir: TempDir,
}

impl Gw {
    /// An open gateway (no tokens).
    async fn start() -> Gw {
        Gw::with(&[], None).await
    }

    /// A gateway with one `[[api.tokens]]` entry per `(name, scopes)` and,
    /// if given, a plugins directory filled by `plugins`.
    async fn with(tokens: &[(&str, &[&str])], plugins: Option<&dyn Fn(&Path)>) -> Gw {
        let dir = tempfile::tempdir().unwrap();
        let (toml, made) = api_tokens(tokens);
        let mut env = host_env(dir.path(), &[]);
        if let Some(fill) = plugins {
            let p = dir.path().join("plugins");
            std::fs::create_dir_all(&p).unwrap();
            fill(&p);
            env.insert("EXESDB_PLUGINS__DIR".into(), p.display().to_string());
        }
        let file = (!toml.is_empty()).then(|| {
            let p = dir.path().join("host.toml");
            std::fs::write(&p, &toml).unwrap();
            p
        });
        let config = Config::load_with_env(file.as_deref(), env).unwrap();
        let host = Host::start(config).await.expect("the host starts");
        let addr = host.api_addr().expect("the API is on");
        Gw {
            host,
            addr,
            tokens: made,
            dir,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn admin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn token(&self, name: &str) -> Option<String> {
        Some(self.tokens[name].clone())
    }

    /// The default store, as the host holds it.
    fn store(&self) -> Store {
        self.host.stores().get("default").unwrap()
    }

    /// A native subscriber on `channel`/`pattern` that never fills up.
    fn watch(&self, channel: Channel, pattern: &str) -> Subscriber {
        watch(self.host.bus(), channel, pattern)
    }

    async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, vec![], None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_as(path, None, body).await
    }

    async fn post_as(&self, path: &str, token: Option<String>, body: &Value) -> Reply {
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        if let Some(t) = token {
            headers.push(("Authorization".to_owned(), format!("Bearer {t}")));
        }
        let body = serde_json::to_vec(body).unwrap();
        request(self.addr, "POST", path, headers, Some(body)).await
    }

    /// Appends `events` to `stream` of the default store; asserts 201.
    async fn append(&self, stream: &str, events: Value) -> Value {
        self.post(
            &format!("/v1/stores/default/streams/{stream}"),
            &json!({ "events": events }),
        )
        .await
        .created()
    }

    /// `GET /v1/stores/default/streams/{stream}?{query}` → the events.
    async fn read(&self, stream: &str, query: &str) -> Vec<Value> {
        let r = self
            .get(&format!("/v1/stores/default/streams/{stream}?{query}"))
            .await;
        assert_eq!(r.status, 200, "{r:#?}");
        r.json()["events"].as_array().unwrap().clone()
    }

    /// Runs `exesdb-host <args>` with `env`, off the async workers.
    async fn exe(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        exe(args, env).await
    }

    /// `exesdb-host store --data-dir <the host's> --admin <its API> <args>`.
    async fn store_cli(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let data = self.data_dir();
        let admin = self.admin();
        let mut all = vec!["store", "--data-dir", path_str(&data), "--admin", &admin];
        all.extend_from_slice(args);
        self.exe(&all, env).await
    }
}

/// A loopback address nothing listens on.
fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

// ---- HTTP client ----------------------------------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }

    /// Asserts `status` and a `{"error", "field"}` body naming `field`;
    /// returns the body.
    #[track_caller]
    fn refused(&self, status: u16, field: &str) -> Value {
        assert_eq!(self.status, status, "{self:#?}");
        let v = self.json();
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "an error text: {self:#?}"
        );
        assert_eq!(v["field"].as_str(), Some(field), "{self:#?}");
        v
    }

    #[track_caller]
    fn created(&self) -> Value {
        assert_eq!(self.status, 201, "{self:#?}");
        self.json()
    }
}

/// One blocking request on a fresh connection, off the async workers.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
) -> Reply {
    let url = format!("http://{addr}{path}");
    let method = method.to_owned();
    tokio::task::spawn_blocking(move || {
        let agent = agent();
        let response = if method == "GET" {
            let mut r = agent.get(&url);
            for (k, v) in &headers {
                r = r.header(k, v);
            }
            r.call()
        } else {
            let mut r = agent.post(&url);
            for (k, v) in &headers {
                r = r.header(k, v);
            }
            r.send(&body.unwrap_or_default()[..])
        }
        .expect("an HTTP answer");
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap();
        Reply { status, text }
    })
    .await
    .unwrap()
}

/// An event of an append body, with an id when given.
fn ev(event_type: &str, data: Value, id: Option<uuid::Uuid>) -> Value {
    let mut e = json!({ "type": event_type, "data": data });
    if let Some(id) = id {
        e["id"] = json!(id);
    }
    e
}

fn positions(events: &[Value], key: &str) -> Vec<u64> {
    events.iter().map(|e| e[key].as_u64().unwrap()).collect()
}

// ---- SSE client: raw HTTP/1.1, read incrementally on a blocking thread ---------

/// A streaming GET read on its own thread, event by event; `kill` shuts
/// the socket down under it.
struct SseClient {
    status: u16,
    /// The body of a refusal (non-2xx).
    body: String,
    events: tokio::sync::mpsc::UnboundedReceiver<SseEvent>,
    socket: TcpStream,
}

impl SseClient {
    async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let socket = TcpStream::connect(addr).unwrap();
        let mut reader = BufReader::new(socket.try_clone().unwrap());
        let mut writer = socket.try_clone().unwrap();
        std::thread::spawn(move || {
            writer.write_all(req.as_bytes()).unwrap();
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let lower = head.to_ascii_lowercase();
            let chunked = lower.contains("transfer-encoding: chunked");
            if !(200..300).contains(&status) {
                let mut body = String::new();
                if let Some(n) = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                {
                    let mut buf = vec![0; n];
                    let _ = reader.read_exact(&mut buf);
                    body = String::from_utf8_lossy(&buf).into_owned();
                }
                let _ = head_tx.send((status, body));
                return;
            }
            let _ = head_tx.send((status, String::new()));
            let mut pending: Vec<u8> = Vec::new();
            let mut parser = SseParser::default();
            loop {
                // The next piece of the body (de-chunked).
                let piece = if chunked {
                    let mut size = String::new();
                    if reader.read_line(&mut size).unwrap_or(0) == 0 {
                        return;
                    }
                    let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let mut buf = vec![0; n + 2];
                    if reader.read_exact(&mut buf).is_err() {
                        return;
                    }
                    buf.truncate(n);
                    buf
                } else {
                    let mut buf = vec![0; 8192];
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            buf.truncate(n);
                            buf
                        }
                    }
                };
                pending.extend_from_slice(&piece);
                while let Some(line) = take_line(&mut pending) {
                    if let Some(ev) = parser.line(&line) {
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let (status, body) = tokio::time::timeout(WAIT, head_rx)
            .await
            .expect("a response head in time")
            .expect("a response head");
        SseClient {
            status,
            body,
            events,
            socket,
        }
    }

    /// The next event within [`WAIT`].
    async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the stream is open")
    }

    /// The next `n` events.
    async fn take(&mut self, n: usize) -> Vec<SseEvent> {
        let mut got = Vec::with_capacity(n);
        for _ in 0..n {
            got.push(self.next().await);
        }
        got
    }

    /// Asserts no event arrives for [`QUIET`].
    async fn quiet(&mut self) {
        if let Ok(Some(e)) = tokio::time::timeout(QUIET, self.events.recv()).await {
            panic!("unexpected event {e:#?}");
        }
    }

    /// Kills the connection: the socket is shut down under the reader.
    fn kill(self) {
        self.socket.shutdown(Shutdown::Both).unwrap();
    }
}

// ---- appends ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_answers_its_positions_and_honours_the_expected_version() {
    let gw = Gw::start().await;
    let path = "/v1/stores/default/streams/orders-1";
    let first = gw
        .post(
            path,
            &json!({ "expected": "no_stream", "events": [ev("OrderPlaced", json!({"qty": 2}), None), ev("OrderPaid", json!({}), None)] }),
        )
        .await
        .created();
    assert_eq!(
        first,
        json!({"first_event_number": 0, "last_event_number": 1, "first_position": 0, "last_position": 1}),
        "a fresh append is not `replayed`"
    );
    // Another stream takes the next global positions.
    let other = gw
        .post(
            "/v1/stores/default/streams/orders-2",
            &json!({ "events": [ev("OrderPlaced", json!({}), None)] }),
        )
        .await
        .created();
    assert_eq!(
        (
            other["first_event_number"].as_u64(),
            other["first_position"].as_u64()
        ),
        (Some(0), Some(2))
    );
    let exists = gw
        .post(
            path,
            &json!({ "expected": "stream_exists", "events": [ev("OrderShipped", json!({}), None)] }),
        )
        .await
        .created();
    assert_eq!(
        (
            exists["first_event_number"].as_u64(),
            exists["first_position"].as_u64()
        ),
        (Some(2), Some(3))
    );
    let exact = gw
        .post(
            path,
            &json!({ "expected": 2, "events": [ev("OrderClosed", json!({}), None)] }),
        )
        .await
        .created();
    assert_eq!(exact["last_event_number"], 3);
    let any = gw
        .post(
            path,
            &json!({ "expected": "any", "events": [ev("Note", json!({}), None)] }),
        )
        .await
        .created();
    assert_eq!(any["last_event_number"], 4);
    // The number may also come as text.
    let text = gw
        .post(
            path,
            &json!({ "expected": "4", "events": [ev("Note", json!({}), None)] }),
        )
        .await
        .created();
    assert_eq!(text["last_event_number"], 5);

    // Conflicts: 409 with the current version, nothing written.
    for (expected, stream, current) in [
        (json!("no_stream"), "orders-1", json!(5)),
        (json!(3), "orders-1", json!(5)),
        (json!(9), "orders-1", json!(5)),
        (json!("stream_exists"), "missing-1", Value::Null),
        (json!(0), "missing-1", Value::Null),
    ] {
        let r = gw
            .post(
                &format!("/v1/stores/default/streams/{stream}"),
                &json!({ "expected": expected, "events": [ev("X", json!({}), None)] }),
            )
            .await;
        assert_eq!(r.status, 409, "{expected}: {r:#?}");
        let v = r.json();
        assert_eq!(v["field"], "expected", "{v}");
        assert_eq!(v["current_version"], current, "{expected}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("wrong expected version"),
            "{v}"
        );
    }
    let store = gw.store();
    assert_eq!(store.stream_version("orders-1").unwrap(), Some(5));
    assert_eq!(store.stream_version("missing-1").unwrap(), None);
    assert_eq!(store.head_position().unwrap(), Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_append_is_answered_as_before_and_not_appended_twice() {
    let gw = Gw::start().await;
    let announced = gw.watch(Channel::Events, "default:retry-1");
    let audit = gw.watch(Channel::Audit, "audit:data_change:stream");
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let body = json!({
        "expected": "no_stream",
        "events": [ev("A", json!({"n": 1}), Some(a)), ev("B", json!({"n": 2}), Some(b))],
    });
    let path = "/v1/stores/default/streams/retry-1";
    let first = gw.post(path, &body).await.created();
    assert_eq!(first.get("replayed"), None, "{first}");
    for want in ["A", "B"] {
        let env = next_where(&announced, |_| true).await;
        assert_eq!(env.kind, want);
    }
    next_where(&audit, |_| true).await;

    // The same request again — even with an expected version that no
    // longer holds — is the same answer, marked `replayed`.
    let again = gw.post(path, &body).await.created();
    assert_eq!(again["replayed"], true, "{again}");
    for k in [
        "first_event_number",
        "last_event_number",
        "first_position",
        "last_position",
    ] {
        assert_eq!(again[k], first[k], "{k}: {again} vs {first}");
    }
    let events = gw.read("retry-1", "").await;
    assert_eq!(events.len(), 2, "nothing appended twice: {events:?}");
    assert_eq!(events[0]["event_id"], json!(a));
    assert_eq!(events[1]["event_id"], json!(b));
    // Neither announced nor recorded again.
    quiet(&announced, QUIET).await;
    quiet(&audit, QUIET).await;

    // Some ids seen before, some not; or the seen ones out of order: 409.
    let c = uuid::Uuid::new_v4();
    for events in [
        json!([ev("B", json!({}), Some(b)), ev("C", json!({}), Some(c))]),
        json!([ev("C", json!({}), Some(c)), ev("A", json!({}), Some(a))]),
        json!([ev("B", json!({}), Some(b)), ev("A", json!({}), Some(a))]),
    ] {
        let r = gw.post(path, &json!({ "events": events })).await;
        let v = r.refused(409, "events");
        assert!(
            v["error"].as_str().unwrap().contains("was appended before"),
            "{v}"
        );
    }
    // The same id twice in one batch is refused before anything is written.
    let d = uuid::Uuid::new_v4();
    gw.post(
        path,
        &json!({ "events": [ev("D", json!({}), Some(d)), ev("D", json!({}), Some(d))] }),
    )
    .await
    .refused(400, "events[1].id");
    assert_eq!(gw.read("retry-1", "").await.len(), 2);
    assert_eq!(gw.store().head_position().unwrap(), Some(1));
    quiet(&announced, QUIET).await;

    // An id is per stream: the same id in another stream is a new event.
    let elsewhere = gw
        .post(
            "/v1/stores/default/streams/retry-2",
            &json!({ "events": [ev("A", json!({}), Some(a))] }),
        )
        .await
        .created();
    assert_eq!(elsewhere["first_position"], 2, "{elsewhere}");
    assert_eq!(elsewhere.get("replayed"), None, "{elsewhere}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_append_bodies_are_refused_naming_the_field_and_write_nothing() {
    let gw = Gw::start().await;
    let path = "/v1/stores/default/streams/s-1";
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({}), 400, "events"),
        (json!({ "expected": "any" }), 400, "events"),
        (json!({ "events": "A" }), 400, "events"),
        (json!({ "events": {} }), 400, "events"),
        (json!({ "events": [] }), 400, "events"),
        (
            json!({ "events": [ { "type": 5, "data": {} } ] }),
            400,
            "events[0].type",
        ),
        (
            json!({ "events": [ ev("A", json!({}), None), { "type": "B" } ] }),
            400,
            "events[1]",
        ),
        (
            json!({ "events": [ { "type": "A", "data": {}, "id": "not-a-uuid" } ] }),
            400,
            "events[0].id",
        ),
        (
            json!({ "events": [ { "type": "A", "data": {}, "colour": "red" } ] }),
            400,
            "events[0].colour",
        ),
        (
            json!({ "expected": true, "events": [ev("A", json!({}), None)] }),
            400,
            "expected",
        ),
        (
            json!({ "expected": -1, "events": [ev("A", json!({}), None)] }),
            400,
            "expected",
        ),
        (
            json!({ "expected": "sometimes", "events": [ev("A", json!({}), None)] }),
            400,
            "expected",
        ),
        (
            json!({ "events": [ev("", json!({}), None)] }),
            422,
            "events",
        ),
        (
            json!({ "events": [ev("bad\ntype", json!({}), None)] }),
            422,
            "events",
        ),
    ];
    for (body, status, field) in cases {
        let r = gw.post(path, &body).await;
        assert_eq!(r.status, status, "{body}: {r:#?}");
        assert_eq!(r.json()["field"], field, "{body}: {r:#?}");
    }
    // Not JSON at all.
    let r = request(
        gw.addr,
        "POST",
        path,
        vec![("Content-Type".into(), "application/json".into())],
        Some(b"not json".to_vec()),
    )
    .await;
    r.refused(400, "body");
    // A reserved stream name, a bad store id.
    gw.post(
        "/v1/stores/default/streams/$all",
        &json!({ "events": [ev("A", json!({}), None)] }),
    )
    .await
    .refused(422, "stream");
    gw.post(
        "/v1/stores/Bad/streams/s-1",
        &json!({ "events": [ev("A", json!({}), None)] }),
    )
    .await
    .refused(422, "store");
    assert_eq!(
        gw.store().head_position().unwrap(),
        None,
        "nothing appended"
    );
    let files: Vec<String> = std::fs::read_dir(gw.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // The host's own file of the plugins' key-value state.
        .filter(|f| f != "plugins.state.redb")
        .collect();
    assert_eq!(files, ["default.redb"], "no store made by a refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_is_a_data_change_on_audit_naming_the_user() {
    let gw = Gw::with(
        &[
            ("ingest", &["append:default", "read"]),
            ("reader", &["read"]),
        ],
        None,
    )
    .await;
    let audit = gw.watch(Channel::Audit, "audit:data_change:stream");
    let body = json!({ "events": [ev("A", json!({}), None), ev("B", json!({}), None), ev("C", json!({}), None)] });
    let r = gw
        .post_as(
            "/v1/stores/default/streams/orders-7",
            gw.token("ingest"),
            &body,
        )
        .await
        .created();
    let env = next_where(&audit, |_| true).await;
    assert_eq!(env.topic, "audit:data_change:stream");
    assert_eq!(env.kind, "DataChange");
    let change: DataChange = env.decode().unwrap();
    assert_eq!(change.user_id, "ingest");
    assert_eq!(change.resource_type, "stream");
    assert_eq!(change.resource_id, "default:orders-7");
    assert_eq!(change.action, DataAction::Create);
    assert_eq!(change.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(change.changes["events"], 3);
    assert_eq!(change.changes["first_position"], r["first_position"]);
    assert_eq!(change.changes["last_position"], r["last_position"]);
    assert_eq!(change.changes["version"], 2);
    assert_eq!(change.metadata["store"], "default");

    // Without `append:default`: 403, nothing written, no DataChange.
    gw.post_as(
        "/v1/stores/default/streams/orders-7",
        gw.token("reader"),
        &body,
    )
    .await
    .refused(403, "authorization");
    gw.post_as("/v1/stores/default/streams/orders-7", None, &body)
        .await
        .refused(401, "authorization");
    quiet(&audit, QUIET).await;
    assert_eq!(gw.store().stream_version("orders-7").unwrap(), Some(2));
}

// ---- reads ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_forward_backward_and_by_selector() {
    let gw = Gw::start().await;
    let id = uuid::Uuid::new_v4();
    gw.post(
        "/v1/stores/default/streams/orders-1",
        &json!({ "events": [
            { "type": "OrderPlaced", "data": {"n": 0}, "metadata": {"by": "web"}, "id": id },
            ev("OrderPaid", json!({"n": 1}), None),
        ] }),
    )
    .await
    .created();
    gw.append("users-1", json!([ev("UserCreated", json!({"n": 2}), None)]))
        .await;
    gw.append(
        "orders-2",
        json!([
            ev("OrderPlaced", json!({"n": 3}), None),
            ev("OrderPaid", json!({"n": 4}), None)
        ]),
    )
    .await;
    gw.append(
        "orders-1",
        json!([ev("OrderShipped", json!({"n": 5}), None)]),
    )
    .await;

    // A stream, forward.
    let all = gw.read("orders-1", "").await;
    assert_eq!(positions(&all, "event_number"), [0, 1, 2]);
    assert_eq!(positions(&all, "global_position"), [0, 1, 5]);
    let e = &all[0];
    assert_eq!(e["stream_id"], "orders-1");
    assert_eq!(e["event_type"], "OrderPlaced");
    assert_eq!(e["event_id"], json!(id));
    assert_eq!(e["data"], json!({"n": 0}));
    assert_eq!(e["metadata"], json!({"by": "web"}));
    assert!(e["created"].as_str().is_some(), "{e}");
    assert_eq!(all[1]["metadata"], Value::Null);
    let page = gw.read("orders-1", "from=1&count=1").await;
    assert_eq!(positions(&page, "event_number"), [1]);
    // Backward: from the end by default, or from an event number.
    let back = gw.read("orders-1", "direction=backward").await;
    assert_eq!(positions(&back, "event_number"), [2, 1, 0]);
    let back = gw.read("orders-1", "direction=backward&from=1").await;
    assert_eq!(positions(&back, "event_number"), [1, 0]);
    // A stream with no event reads as empty.
    assert!(gw.read("nothing-here", "").await.is_empty());

    // $all, by global position.
    let all = gw.read("$all", "").await;
    assert_eq!(positions(&all, "global_position"), [0, 1, 2, 3, 4, 5]);
    let ns: Vec<u64> = all
        .iter()
        .map(|e| e["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, [0, 1, 2, 3, 4, 5], "in append order");
    let page = gw.read("$all", "from=2&count=2").await;
    assert_eq!(positions(&page, "global_position"), [2, 3]);
    let back = gw.read("$all", "direction=backward&count=2").await;
    assert_eq!(positions(&back, "global_position"), [5, 4]);
    let back = gw.read("$all", "direction=backward&from=3").await;
    assert_eq!(positions(&back, "global_position"), [3, 2, 1, 0]);

    // By event type and by stream pattern, forward from a global position.
    let placed = gw.read("$et-OrderPlaced", "").await;
    assert_eq!(positions(&placed, "global_position"), [0, 3]);
    let placed = gw.read("$et-OrderPlaced", "from=1").await;
    assert_eq!(positions(&placed, "global_position"), [3]);
    let orders = gw.read("$pattern-orders-*", "").await;
    assert_eq!(positions(&orders, "global_position"), [0, 1, 3, 4, 5]);
    let orders = gw.read("$pattern-orders-*", "from=2&count=2").await;
    assert_eq!(positions(&orders, "global_position"), [3, 4]);
    assert!(gw.read("$et-Nothing", "").await.is_empty());

    // Refused queries name the parameter.
    for (query, status, field) in [
        ("direction=sideways", 400, "direction"),
        ("count=many", 400, "count"),
        ("from=-1", 400, "from"),
        ("colour=red", 400, "colour"),
    ] {
        gw.get(&format!("/v1/stores/default/streams/orders-1?{query}"))
            .await
            .refused(status, field);
    }
    gw.get("/v1/stores/default/streams/$et-OrderPlaced?direction=backward")
        .await
        .refused(422, "stream");
    gw.get("/v1/stores/default/streams/$bogus")
        .await
        .refused(422, "stream");

    // The stream list: names, versions, event counts.
    let r = gw.get("/v1/stores/default/streams").await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(
        r.json(),
        json!({ "streams": [
            {"name": "orders-1", "version": 2, "event_count": 3},
            {"name": "orders-2", "version": 1, "event_count": 2},
            {"name": "users-1", "version": 0, "event_count": 1},
        ] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_does_not_exist_is_404_and_stays_absent() {
    let gw = Gw::start().await;
    let before: Vec<_> = std::fs::read_dir(gw.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for path in [
        "/v1/stores/nope/streams",
        "/v1/stores/nope/streams/s-1",
        "/v1/stores/nope/streams/$all",
    ] {
        let v = gw.get(path).await.refused(404, "store");
        assert!(v["error"].as_str().unwrap().contains("nope"), "{v}");
    }
    let sse = SseClient::open(gw.addr, "/v1/stores/nope/streams/$all/subscribe", &[]).await;
    assert_eq!(sse.status, 404, "{}", sse.body);
    assert!(sse.body.contains("\"field\":\"store\""), "{}", sse.body);
    let after: Vec<_> = std::fs::read_dir(gw.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "reading made no store");
    assert!(!gw.data_dir().join("nope.redb").exists());
    assert!(!gw.host.stores().ids().contains(&"nope".to_owned()));
}

// ---- subscriptions --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_catches_up_goes_live_and_resumes_after_a_killed_connection() {
    let gw = Gw::start().await;
    // History: ten events, and one of another stream in between.
    let batch = |from: u64, to: u64| -> Value {
        (from..to)
            .map(|n| ev("Tick", json!({ "n": n }), None))
            .collect::<Vec<_>>()
            .into()
    };
    gw.append("ticks-1", batch(0, 5)).await;
    gw.append("other-1", json!([ev("Other", json!({}), None)]))
        .await;
    gw.append("ticks-1", batch(5, 10)).await;
    let path = "/v1/stores/default/streams/ticks-1/subscribe";
    let mut sse = SseClient::open(gw.addr, path, &[]).await;
    assert_eq!(sse.status, 200, "{}", sse.body);

    let mut seen: Vec<u64> = Vec::new();
    let check = |e: &SseEvent, seen: &mut Vec<u64>| {
        assert_eq!(e.event, "event", "{e:#?}");
        let v = e.json();
        assert_eq!(
            v["global_position"].as_u64(),
            Some(e.position()),
            "the id is the global position"
        );
        assert_eq!(v["stream_id"], "ticks-1");
        seen.push(v["data"]["n"].as_u64().unwrap());
        e.position()
    };
    // Catch-up: positions 0..=4, then 6..=10 (5 is the other stream's).
    let mut ids = Vec::new();
    for e in sse.take(10).await {
        ids.push(check(&e, &mut seen));
    }
    assert_eq!(ids, [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]);
    // Live: appended after the catch-up.
    gw.append("ticks-1", batch(10, 13)).await;
    gw.append("other-1", json!([ev("Other", json!({}), None)]))
        .await;
    gw.append("ticks-1", batch(13, 15)).await;
    // Positions 11, 12, 13 (other: 14), 15, 16: the client handles up to 13,
    let mut last = 0;
    for _ in 0..3 {
        last = check(&sse.next().await, &mut seen);
    }
    assert_eq!(last, 13);
    // …and the connection dies under it, while more is appended.
    sse.kill();
    gw.append("ticks-1", batch(15, 18)).await;

    let resume = last.to_string();
    let mut sse = SseClient::open(gw.addr, path, &[("Last-Event-ID", &resume)]).await;
    assert_eq!(sse.status, 200, "{}", sse.body);
    let mut ids = Vec::new();
    for e in sse.take(5).await {
        ids.push(check(&e, &mut seen));
    }
    assert_eq!(ids, [15, 16, 17, 18, 19], "resumed after {last}");
    assert_eq!(seen, (0..18).collect::<Vec<u64>>(), "no gap, no duplicate");
    sse.quiet().await;
    // Still live after the resume.
    gw.append("ticks-1", batch(18, 19)).await;
    let e = sse.next().await;
    assert_eq!(e.position(), 20);
    assert_eq!(e.json()["data"]["n"], 18);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_from_now_skips_history_and_bad_requests_are_refused() {
    let gw = Gw::start().await;
    gw.append(
        "s-1",
        json!([
            ev("Old", json!({}), None),
            ev("Old", json!({}), None),
            ev("Old", json!({}), None)
        ]),
    )
    .await;
    let mut now = SseClient::open(
        gw.addr,
        "/v1/stores/default/streams/$all/subscribe?from=now",
        &[],
    )
    .await;
    assert_eq!(now.status, 200, "{}", now.body);
    // From a global position (included).
    let mut at = SseClient::open(
        gw.addr,
        "/v1/stores/default/streams/$all/subscribe?from=1",
        &[],
    )
    .await;
    assert_eq!(at.status, 200, "{}", at.body);
    assert_eq!(
        at.take(2)
            .await
            .iter()
            .map(SseEvent::position)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    now.quiet().await;
    gw.append("s-2", json!([ev("New", json!({}), None)])).await;
    let e = now.next().await;
    assert_eq!(
        (e.position(), e.json()["event_type"].clone()),
        (3, json!("New"))
    );
    assert_eq!(at.next().await.position(), 3);
    now.quiet().await;

    // Refusals name what is wrong.
    for (query, headers, status, field) in [
        ("?from=yesterday", vec![], 400, "from"),
        ("?from=-3", vec![], 400, "from"),
        ("", vec![("Last-Event-ID", "twelve")], 400, "last-event-id"),
        ("?colour=red", vec![], 400, "colour"),
    ] {
        let path = format!("/v1/stores/default/streams/$all/subscribe{query}");
        let c = SseClient::open(gw.addr, &path, &headers).await;
        assert_eq!(c.status, status, "{path}: {}", c.body);
        let v: Value = serde_json::from_str(&c.body).unwrap();
        assert_eq!(v["field"], field, "{v}");
    }
    // Neither Server-Sent Events nor a WebSocket.
    gw.get("/v1/stores/default/streams/$all/subscribe")
        .await
        .refused(406, "accept");
    // The highest position there is resumes after the end, without a panic.
    let mut end = SseClient::open(
        gw.addr,
        "/v1/stores/default/streams/$all/subscribe",
        &[("Last-Event-ID", &u64::MAX.to_string())],
    )
    .await;
    assert_eq!(end.status, 200, "{}", end.body);
    end.quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_subscription_catches_up_then_goes_live() {
    let gw = Gw::start().await;
    gw.append(
        "ws-1",
        json!([
            ev("Keep", json!({"n": 0}), None),
            ev("Skip", json!({}), None),
            ev("Keep", json!({"n": 1}), None)
        ]),
    )
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/stores/default/streams/$et-Keep/subscribe?from=beginning",
        gw.addr
    ))
    .await
    .unwrap();
    let a = ws_json(&mut ws).await;
    let b = ws_json(&mut ws).await;
    assert_eq!(
        positions(&[a.clone(), b.clone()], "global_position"),
        [0, 2]
    );
    assert_eq!(
        (a["data"]["n"].clone(), b["data"]["n"].clone()),
        (json!(0), json!(1))
    );
    gw.append(
        "ws-2",
        json!([
            ev("Skip", json!({}), None),
            ev("Keep", json!({"n": 2}), None)
        ]),
    )
    .await;
    let c = ws_json(&mut ws).await;
    assert_eq!(c["global_position"], 4);
    assert_eq!(c["stream_id"], "ws-2");
    assert_eq!(c["data"]["n"], 2);
}

// ---- plugins and emitters -------------------------------------------------------

/// The test guest as plugin `name` in echo mode, with `extra` manifest TOML.
fn deploy_echo(dir: &Path, name: &str, extra: &str) {
    std::fs::write(
        dir.join(format!("{name}.wasm")),
        std::fs::read(TEST_GUEST_WASM).unwrap(),
    )
    .unwrap();
    let manifest = format!(
        r#"name = "{name}"
version = "1.0.0"
world = "subscriber"

[[publish]]
channel = "diagnostics"
pattern = "echo:>"
{extra}
[config]
mode = "echo"
tag = "{name}"
"#
    );
    std::fs::write(dir.join(format!("{name}.toml")), manifest).unwrap();
}

/// The emitters list, polled until `pred` holds for it.
async fn emitters_until(gw: &Gw, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = gw.get("/v1/emitters").await;
        assert_eq!(r.status, 200, "{r:#?}");
        let list = r.json()["emitters"].as_array().unwrap().clone();
        if pred(&list) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the emitters never matched: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn of<'a>(list: &'a [Value], subscriber: &str) -> Option<&'a Value> {
    list.iter().find(|e| e["subscriber"] == subscriber)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appended_event_reaches_a_plugin_and_a_store_subscription() {
    let gw = Gw::with(
        &[],
        Some(&|dir: &Path| {
            deploy_echo(dir, "bus-echo", "\n[[subscribe]]\nchannel = \"events\"\npattern = \">\"\n");
            deploy_echo(
                dir,
                "store-echo",
                "\n[[store_subscription]]\nstore = \"default\"\nselector = \"$pattern-plug-*\"\nstart = \"beginning\"\n",
            );
        }),
    )
    .await;
    let echoes = gw.watch(Channel::Diagnostics, "echo:>");
    let list = emitters_until(&gw, |l| of(l, "store-echo").is_some()).await;
    let worker = of(&list, "store-echo").unwrap();
    assert_eq!(worker["store"], "default");
    assert_eq!(worker["selector"], "$pattern-plug-*");

    let marker = uuid::Uuid::new_v4().to_string();
    let appended = gw
        .append(
            "plug-1",
            json!([
                ev("Plugged", json!({"marker": marker, "n": 0}), None),
                ev("Plugged", json!({"marker": marker, "n": 1}), None)
            ]),
        )
        .await;
    assert_eq!(appended["last_position"], 1);

    // Each plugin echoes each event once: the bus subscriber from the
    // announcement on `events`, the store subscriber from its emitter.
    let mut got: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
    while got.values().map(Vec::len).sum::<usize>() < 4 {
        let echo = next_where(&echoes, |e| e.kind == "custom.echo").await;
        let p = echo.payload();
        assert_eq!(p["channel"], "events", "{p}");
        assert_eq!(p["topic"], "default:plug-1", "{p}");
        assert_eq!(p["kind"], "Plugged", "{p}");
        let recorded: RecordedEvent = serde_json::from_str(p["payload"].as_str().unwrap()).unwrap();
        assert_eq!(
            recorded.data.as_json().unwrap()["marker"],
            marker.as_str(),
            "{p}"
        );
        got.entry(echo.topic.clone()).or_default().push(recorded);
    }
    for plugin in ["echo:bus-echo", "echo:store-echo"] {
        let events = &got[plugin];
        let ns: Vec<u64> = events.iter().map(|e| e.global_position).collect();
        assert_eq!(ns, [0, 1], "{plugin}: in order, once each");
    }
    quiet(&echoes, QUIET).await;

    // The worker is caught up: position = head + 1, no lag.
    let list = emitters_until(&gw, |l| {
        of(l, "store-echo").is_some_and(|w| w["position"] == 2 && w["delivered"] == 2)
    })
    .await;
    let w = of(&list, "store-echo").unwrap();
    assert_eq!(
        (w["lag"].clone(), w["paused"].clone(), w["running"].clone()),
        (json!(0), json!(false), json!(true))
    );
    assert_eq!(w["persistent"], Value::Null);

    // A native handler that has not acknowledged its first batch lags.
    let (_id, mut batches) = gw
        .host
        .emitters()
        .subscribe_native(
            SubscriptionSpec {
                store: "default".into(),
                selector: Selector::All,
                start: Start::Beginning,
                name: None,
            },
            "held-reader",
            4,
        )
        .unwrap();
    let held = tokio::time::timeout(WAIT, batches.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.events.len(), 2);
    // Not the plugin's stream: the plugin's worker moves past it anyway.
    gw.append("other-1", json!([ev("Other", json!({}), None)]))
        .await;
    let list = emitters_until(&gw, |l| {
        of(l, "store-echo").is_some_and(|w| w["position"] == 3)
            && of(l, "held-reader").is_some_and(|w| w["lag"] == 3)
    })
    .await;
    let h = of(&list, "held-reader").unwrap();
    assert_eq!(
        (h["position"].clone(), h["selector"].clone()),
        (json!(0), json!("$all"))
    );
    assert_eq!(of(&list, "store-echo").unwrap()["lag"], 0);

    // `exesdb-host emitters` shows the same.
    let run = gw.exe(&["emitters", "--admin", &gw.admin()], &[]).await;
    assert!(run.ok, "{run:#?}");
    let lines: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "STORE",
            "SELECTOR",
            "SUBSCRIBER",
            "POSITION",
            "LAG",
            "PAUSED"
        ],
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&vec![
            "default",
            "$pattern-plug-*",
            "store-echo",
            "3",
            "0",
            "no"
        ]),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&vec!["default", "$all", "held-reader", "0", "3", "no"]),
        "{}",
        run.stdout
    );
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    // Columns line up under their headers.
    let header = run.stdout.lines().next().unwrap();
    for line in run.stdout.lines().skip(1) {
        assert_eq!(
            line.find("held-reader").or(line.find("store-echo")),
            header.find("SUBSCRIBER"),
            "{}",
            run.stdout
        );
    }
    drop(held);

    // Without a host: a clear error, exit 1.
    let run = exe(&["emitters", "--admin", &dead_address()], &[]).await;
    assert!(
        run.failure().contains("cannot reach the host's API"),
        "{run:#?}"
    );
}

// ---- the store CLI --------------------------------------------------------------

/// What the CLI must print for `events`: one `EventJson` line each.
fn lines_of(events: &[RecordedEvent]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(&EventJson::new(e)).unwrap() + "\n")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_cli_goes_through_a_running_host() {
    let gw = Gw::with(
        &[("cli", &["append:default", "read"]), ("viewer", &["read"])],
        None,
    )
    .await;
    let token = gw.tokens["cli"].clone();
    let auth = [("EXESDB_TOKEN", token.as_str())];
    let announced = gw.watch(Channel::Events, "default:>");
    let audit = gw.watch(Channel::Audit, "audit:data_change:stream");

    // An append: the host writes it (the file is the host's), announces
    // it and records who did it.
    let run = gw
        .store_cli(
            &[
                "append",
                "orders-1",
                "--type",
                "OrderPlaced",
                "--data",
                r#"{"qty":2}"#,
                "--metadata",
                r#"{"by":"cli"}"#,
            ],
            &auth,
        )
        .await;
    assert!(run.ok, "{run:#?}");
    assert_eq!(
        run.stdout,
        "{\"first_event_number\":0,\"last_event_number\":0,\"first_position\":0,\"last_position\":0}\n"
    );
    let env = next_where(&announced, |_| true).await;
    assert_eq!(
        (env.topic.as_str(), env.kind.as_str()),
        ("default:orders-1", "OrderPlaced")
    );
    let change: DataChange = next_where(&audit, |_| true).await.decode().unwrap();
    assert_eq!(change.user_id, "cli");

    // A JSON Lines file, one batch, with an expected version.
    let file = gw.dir.path().join("events.jsonl");
    std::fs::write(
        &file,
        "{\"type\":\"OrderPaid\",\"data\":{\"n\":1}}\n\n{\"type\":\"OrderShipped\"}\n",
    )
    .unwrap();
    let run = gw
        .store_cli(
            &[
                "append",
                "orders-1",
                "--file",
                path_str(&file),
                "--expected",
                "0",
            ],
            &auth,
        )
        .await;
    assert_eq!(
        run.json(),
        json!({"first_event_number": 1, "last_event_number": 2, "first_position": 1, "last_position": 2})
    );
    // Standard input as the file, to another stream.
    let run = tokio::task::spawn_blocking({
        let (data, admin) = (gw.data_dir(), gw.admin());
        let token = token.clone();
        move || {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_exesdb-host"))
                .env_remove("EXESDB_ADMIN_URL")
                .env("EXESDB_TOKEN", token)
                .args(["store", "--data-dir", path_str(&data), "--admin", &admin])
                .args([
                    "append",
                    "users-1",
                    "--file",
                    "-",
                    "--expected",
                    "no_stream",
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"{\"type\":\"UserCreated\",\"data\":{\"n\":3}}\n")
                .unwrap();
            child.wait_with_output().unwrap()
        }
    })
    .await
    .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&run.stdout).unwrap()["first_position"],
        3
    );
    // A conflict: exit 1, the current version in the message, nothing written.
    let run = gw
        .store_cli(
            &[
                "append",
                "orders-1",
                "--type",
                "X",
                "--expected",
                "no_stream",
            ],
            &auth,
        )
        .await;
    let err = run.failure();
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("wrong expected version") && err.contains("current 2"),
        "{err}"
    );
    // A token without `append:default`.
    let viewer = gw.tokens["viewer"].clone();
    let run = gw
        .store_cli(
            &["append", "orders-1", "--type", "X"],
            &[("EXESDB_TOKEN", viewer.as_str())],
        )
        .await;
    assert!(run.failure().contains("append:default"), "{run:#?}");
    let store = gw.store();
    assert_eq!(store.head_position().unwrap(), Some(3));
    assert_eq!(store.stream_version("orders-1").unwrap(), Some(2));

    // Reads print what a read of the file prints: the same lines.
    let stream = store
        .read_stream("orders-1", 0, 100, Direction::Forward)
        .unwrap();
    let all = store.read_all(0, 100, Direction::Forward).unwrap();
    for (args, want) in [
        (vec!["read", "orders-1"], lines_of(&stream)),
        (
            vec!["read", "orders-1", "--from", "1", "--count", "1"],
            lines_of(&stream[1..2]),
        ),
        (
            vec!["read", "orders-1", "--backward"],
            lines_of(&stream.iter().rev().cloned().collect::<Vec<_>>()),
        ),
        (vec!["read-all"], lines_of(&all)),
        (
            vec!["read-all", "--backward", "--count", "2"],
            lines_of(&[all[3].clone(), all[2].clone()]),
        ),
        (vec!["read", "$all", "--from", "2"], lines_of(&all[2..])),
        (vec!["read", "$et-OrderPaid"], lines_of(&all[1..2])),
        (vec!["read", "$pattern-users-*"], lines_of(&all[3..])),
        (vec!["read", "no-such-stream"], String::new()),
    ] {
        let run = gw.store_cli(&args, &auth).await;
        assert!(run.ok, "{args:?}: {run:#?}");
        assert_eq!(run.stdout, want, "{args:?}");
    }
    assert!(stream[0].metadata.as_json().unwrap()["by"] == "cli");
    let run = gw.store_cli(&["streams"], &auth).await;
    assert!(run.ok, "{run:#?}");
    assert_eq!(
        run.stdout,
        "NAME         VERSION      EVENTS\norders-1           2           3\nusers-1            0           1\n"
    );

    // More than one page (the CLI reads 512 at a time), in order.
    let many: Vec<Value> = (0..1100)
        .map(|n| ev("Bulk", json!({ "n": n }), None))
        .collect();
    gw.post_as(
        "/v1/stores/default/streams/bulk-1",
        Some(token.clone()),
        &json!({ "events": many }),
    )
    .await
    .created();
    let run = gw.store_cli(&["read", "bulk-1"], &auth).await;
    assert!(run.ok, "{run:#?}");
    let bulk = store
        .read_stream("bulk-1", 0, 2000, Direction::Forward)
        .unwrap();
    assert_eq!(bulk.len(), 1100);
    assert_eq!(run.stdout, lines_of(&bulk));
    let run = gw
        .store_cli(&["read-all", "--backward", "--count", "600"], &auth)
        .await;
    let all = store.read_all(u64::MAX, 600, Direction::Backward).unwrap();
    assert_eq!(run.stdout, lines_of(&all));

    // Any stream name goes through the URL intact.
    let odd = "odd name/1?#%é";
    let run = gw
        .store_cli(&["append", odd, "--type", "Odd", "--data", "7"], &auth)
        .await;
    assert!(run.ok, "{run:#?}");
    let run = gw.store_cli(&["read", odd], &auth).await;
    let odd_events = store.read_stream(odd, 0, 10, Direction::Forward).unwrap();
    assert_eq!(odd_events.len(), 1);
    assert_eq!(run.stdout, lines_of(&odd_events), "{run:#?}");

    // Subscriptions need the file: a clear "locked" error.
    let run = gw.store_cli(&["subscriptions", "list"], &auth).await;
    let err = run.failure();
    assert!(
        err.contains("store default is locked")
            && err.contains("subscriptions")
            && err.contains("stop the host"),
        "{err}"
    );
    // The host's API not where --admin says: a "locked" error saying where
    // it looked.
    let dead = dead_address();
    let data = gw.data_dir();
    let run = exe(
        &[
            "store",
            "--data-dir",
            path_str(&data),
            "--admin",
            &dead,
            "read-all",
        ],
        &auth,
    )
    .await;
    let err = run.failure();
    assert!(
        err.contains("store default is locked")
            && err.contains(&dead)
            && err.contains("--admin")
            && err.contains("stop the host"),
        "{err}"
    );
    // A store of the directory that the host has not opened is not locked:
    // it is worked on directly, and the host does not see the command.
    let run = exe(
        &[
            "store",
            "--data-dir",
            path_str(&data),
            "--admin",
            &dead,
            "--store",
            "side",
            "append",
            "s-1",
            "--type",
            "A",
        ],
        &[],
    )
    .await;
    assert!(run.ok, "{run:#?}");
    assert!(!gw.host.stores().ids().contains(&"side".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_cli_works_on_the_file_when_no_host_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Nothing listens at --admin: the file is enough.
    let dead = dead_address();
    let store_cli = |args: &[&str]| {
        let mut all = vec!["store", "--data-dir", path_str(&data), "--admin", &dead];
        all.extend_from_slice(args);
        let all: Vec<String> = all.iter().map(|s| (*s).to_owned()).collect();
        async move { exe(&all.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await }
    };
    let run = store_cli(&[
        "append",
        "orders-1",
        "--type",
        "OrderPlaced",
        "--data",
        r#"{"qty":2}"#,
    ])
    .await;
    assert_eq!(
        run.stdout,
        "{\"first_event_number\":0,\"last_event_number\":0,\"first_position\":0,\"last_position\":0}\n",
        "{run:#?}"
    );
    let file = dir.path().join("e.jsonl");
    std::fs::write(
        &file,
        "{\"type\":\"OrderPaid\",\"data\":{\"n\":1}}\n{\"type\":\"UserCreated\"}\n",
    )
    .unwrap();
    store_cli(&[
        "append",
        "orders-1",
        "--file",
        path_str(&file),
        "--expected",
        "0",
    ])
    .await
    .json();
    let run = store_cli(&[
        "append",
        "orders-1",
        "--type",
        "X",
        "--expected",
        "no_stream",
    ])
    .await;
    assert!(run.failure().contains("current 2"), "{run:#?}");
    let read = store_cli(&["read", "orders-1"]).await;
    let all = store_cli(&["read-all", "--backward"]).await;
    let paid = store_cli(&["read", "$et-OrderPaid"]).await;
    let streams = store_cli(&["streams"]).await;
    let created = store_cli(&["subscriptions", "create", "proj", "--after", "1"]).await;
    assert!(created.ok, "{created:#?}");
    let subs = store_cli(&["subscriptions", "list"]).await;

    // What the file holds, printed as the gateway's reads would be.
    let store = Store::open(&data, "default", Durability::Immediate).unwrap();
    let events = store
        .read_stream("orders-1", 0, 10, Direction::Forward)
        .unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(read.stdout, lines_of(&events), "{read:#?}");
    assert_eq!(
        all.stdout,
        lines_of(&events.iter().rev().cloned().collect::<Vec<_>>()),
        "{all:#?}"
    );
    assert_eq!(paid.stdout, lines_of(&events[1..2]), "{paid:#?}");
    assert_eq!(
        streams.stdout,
        "NAME         VERSION      EVENTS\norders-1           2           3\n"
    );
    assert_eq!(subs.stdout, "NAME  CHECKPOINT\nproj           1\n");
    assert_eq!(store.checkpoint("proj").unwrap(), Some(1));
    drop(store);
    // No store: still the file's error, not the network's.
    let run = store_cli(&["--store", "absent", "read-all"]).await;
    let err = run.failure();
    assert!(err.contains("store absent does not exist"), "{err}");
    assert!(!data.join("absent.redb").exists());
}
