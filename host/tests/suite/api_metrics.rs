//! `GET /metrics`, black-box, over real HTTP on 127.0.0.1 against an
//! in-process host with real plugins: a known workload (publishes, appends,
//! a plugin failing every third message, one failing every message, store
//! subscriptions that keep up or get stuck, a slow subscriber, a stream
//! client), then the OpenMetrics text is parsed and every figure of that
//! workload is checked exactly — with its `# TYPE`, its unit and its label
//! set — along with the scope (`read`), the content type and the count of
//! API requests by route and status.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use exesdb_host::artifacts::TEST_GUEST_WASM;
use exesdb_host::bus::{OverflowPolicy, SubscriberOptions};
use exesdb_host::config::Config;
use exesdb_host::emitter::{EmittedBatch, Start, SubscriptionSpec};
use exesdb_host::host::Host;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::{agent, api_tokens, host_env, WAIT};
use exesdb_host::runtime::Actor;

// ---- the host -----------------------------------------------------------------

/// Most stream clients at once, so the limit gauge is recognisable.
const MAX_STREAM_CLIENTS: &str = "7";

struct Gw {
    host: Host,
    addr: SocketAddr,
    /// Tokens by name.
    tokens: BTreeMap<String, String>,
    dir: TempDir,
}

impl Gw {
    /// A host with tokens `reader` (`read`) and `writer` (publish and
    /// append, but not `read`), no bundled plugins, and periodic reports
    /// far apart (their counters stay on: `[metrics] enabled`); the breaker
    /// opens after 3 failures in a row and stays open.
    async fn start() -> Gw {
        let dir = tempfile::tempdir().unwrap();
        let (toml, tokens) = api_tokens(&[
            ("reader", &["read"]),
            ("writer", &["publish:*", "append:default"]),
        ]);
        let file = dir.path().join("host.toml");
        std::fs::write(&file, toml).unwrap();
        let env = host_env(
            dir.path(),
            &[
                ("EXESDB_API__MAX_STREAM_CLIENTS", MAX_STREAM_CLIENTS),
                ("EXESDB_METRICS__ENABLED", "true"),
                ("EXESDB_METRICS__INTERVAL_MS", "3600000"),
                ("EXESDB_HEALTH_MONITORING__ENABLED", "true"),
                ("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "3600000"),
                ("EXESDB_HEALTH_MONITORING__UNHEALTHY_THRESHOLD", "3"),
                ("EXESDB_HEALTH_MONITORING__CIRCUIT_BREAKER_ENABLED", "true"),
                ("EXESDB_HEALTH_MONITORING__COOLDOWN_MS", "3600000"),
                ("EXESDB_HEALTH_MONITORING__MAX_COOLDOWN_MS", "3600000"),
            ],
        );
        let config = Config::load_with_env(Some(&file), env).unwrap();
        let host = Host::start(config).await.expect("the host starts");
        let addr = host.api_addr().expect("the API is on");
        Gw {
            host,
            addr,
            tokens,
            dir,
        }
    }

    fn token(&self, name: &str) -> Option<String> {
        Some(self.tokens[name].clone())
    }

    async fn request(
        &self,
        method: &'static str,
        path: &str,
        token: Option<String>,
        body: Option<Value>,
    ) -> Reply {
        let url = format!("http://{}{path}", self.addr);
        tokio::task::spawn_blocking(move || http(method, &url, token, body))
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        let r = self
            .request("POST", path, self.token("writer"), Some(body))
            .await;
        assert_eq!(r.status, 201, "{r:#?}");
        r
    }

    /// `GET /metrics` with the `reader` token, parsed.
    async fn scrape(&self) -> Exposition {
        let r = self
            .request("GET", "/metrics", self.token("reader"), None)
            .await;
        assert_eq!(r.status, 200, "{r:#?}");
        let ct = r.content_type.as_deref().unwrap_or("");
        assert!(
            ct.starts_with("application/openmetrics-text; version=1.0.0"),
            "content type {ct:?}"
        );
        Exposition::parse(&r.text)
    }

    /// Loads the test guest as `name` in `mode`, listening on `events`
    /// `patterns`.
    async fn load_guest(&self, name: &str, mode: &str, patterns: &[&str]) {
        let wasm = self.dir.path().join(format!("{name}.wasm"));
        std::fs::write(&wasm, std::fs::read(TEST_GUEST_WASM).unwrap()).unwrap();
        let mut toml = format!(
            "name = \"{name}\"\nversion = \"1.0.0\"\nworld = \"subscriber\"\n\n\
             [[publish]]\nchannel = \"diagnostics\"\npattern = \"echo:>\"\n\n"
        );
        for p in patterns {
            toml.push_str(&format!(
                "[[subscribe]]\nchannel = \"events\"\npattern = \"{p}\"\n\n"
            ));
        }
        toml.push_str(&format!("[config]\nmode = \"{mode}\"\nn = 3\n"));
        let manifest = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&manifest, toml).unwrap();
        let plugins = Arc::clone(self.host.plugins());
        tokio::task::spawn_blocking(move || plugins.load_file(Actor::Operator, &manifest))
            .await
            .unwrap()
            .expect("the plugin loads");
    }

    /// Waits until `pred` holds of the host (polled natively, so no API
    /// request is added to the counts under test).
    async fn until(&self, what: &str, pred: impl Fn(&Host) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !pred(&self.host) {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts a native store subscription on `default` that acknowledges the
/// events before global position `fail_from` and fails the first one at
/// or after it (forever).
fn store_subscriber(gw: &Gw, name: &str, fail_from: u64) -> String {
    let spec = SubscriptionSpec {
        store: "default".into(),
        selector: "$all".parse().unwrap(),
        start: Start::Beginning,
        name: None,
    };
    let (id, mut batches) = gw.host.emitters().subscribe_native(spec, name, 4).unwrap();
    tokio::spawn(async move {
        while let Some(EmittedBatch { events, ack }) = batches.recv().await {
            let answer = match events.iter().position(|e| e.global_position >= fail_from) {
                None => Ok(()),
                Some(i) => Err(i),
            };
            let _ = ack.send(answer);
        }
    });
    id
}

// ---- HTTP ---------------------------------------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: Option<String>,
    text: String,
}

fn http(method: &str, url: &str, token: Option<String>, body: Option<Value>) -> Reply {
    let agent = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let response = match (method, body) {
        ("GET", None) => {
            let mut r = agent.get(url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        ("POST", Some(body)) => {
            let mut r = agent.post(url).header("Content-Type", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send(serde_json::to_vec(&body).unwrap().as_slice())
        }
        other => panic!("no such request: {other:?}"),
    }
    .expect("an HTTP answer");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.into_body().read_to_string().unwrap();
    Reply {
        status,
        content_type,
        text,
    }
}

/// A live event stream, held open (raw HTTP/1.1, unread).
struct StreamClient {
    _reader: BufReader<tokio::net::TcpStream>,
}

async fn open_stream(addr: SocketAddr, path: &str, token: &str) -> StreamClient {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    tokio::time::timeout(WAIT, reader.read_line(&mut status))
        .await
        .unwrap()
        .unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    StreamClient { _reader: reader }
}

// ---- the text format ------------------------------------------------------------

/// One sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: families by name (type, unit), samples in order.
#[derive(Debug)]
struct Exposition {
    types: BTreeMap<String, String>,
    units: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the OpenMetrics text, checking its structure: every family
    /// has `# HELP` then `# TYPE` before its samples, every sample belongs
    /// to the family declared last (by the suffixes its type allows), each
    /// series appears once, and the text ends with `# EOF`.
    fn parse(text: &str) -> Exposition {
        assert!(text.ends_with("# EOF\n"), "no # EOF at the end");
        let mut types = BTreeMap::new();
        let mut units = BTreeMap::new();
        let mut samples = Vec::new();
        let mut current: Option<(String, String)> = None;
        let mut helped: Option<String> = None;
        let mut seen = BTreeSet::new();
        for line in text.lines() {
            if line == "# EOF" {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                helped = Some(name.to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(helped.as_deref(), Some(name), "# HELP before # TYPE {name}");
                assert!(
                    types.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "family {name} declared twice"
                );
                current = Some((name.to_owned(), kind.to_owned()));
                continue;
            }
            if let Some(rest) = line.strip_prefix("# UNIT ") {
                let (name, unit) = rest.split_once(' ').unwrap();
                assert!(name.ends_with(&format!("_{unit}")), "{line}");
                units.insert(name.to_owned(), unit.to_owned());
                continue;
            }
            assert!(!line.starts_with('#'), "unknown comment {line:?}");
            let s = parse_sample(line);
            let (family, kind) = current
                .as_ref()
                .unwrap_or_else(|| panic!("{line}: no # TYPE"));
            let suffix = s
                .name
                .strip_prefix(family.as_str())
                .unwrap_or_else(|| panic!("sample {} outside its family {family}", s.name));
            let allowed: &[&str] = match kind.as_str() {
                "counter" => &["_total"],
                "gauge" => &[""],
                "histogram" => &["_bucket", "_count", "_sum"],
                other => panic!("unexpected type {other}"),
            };
            assert!(allowed.contains(&suffix), "{line}: {kind} sample");
            assert!(
                seen.insert(format!("{}{:?}", s.name, s.labels)),
                "{line} twice"
            );
            samples.push(s);
        }
        Exposition {
            types,
            units,
            samples,
        }
    }

    /// The value of the sample `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    #[track_caller]
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    /// The value, 0 when the series does not exist (yet).
    fn or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// Asserts the family's type (and unit) and that every sample of it has
    /// exactly the label keys `keys` (plus `le` on buckets).
    #[track_caller]
    fn family(&self, name: &str, kind: &str, unit: Option<&str>, keys: &[&str]) {
        assert_eq!(
            self.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE {name}"
        );
        assert_eq!(
            self.units.get(name).map(String::as_str),
            unit,
            "# UNIT {name}"
        );
        let want: BTreeSet<&str> = keys.iter().copied().collect();
        for s in self.samples.iter().filter(|s| {
            s.name
                .strip_prefix(name)
                .is_some_and(|r| r.is_empty() || r.starts_with('_'))
        }) {
            let mut have: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
            if s.name.ends_with("_bucket") {
                assert!(have.remove("le"), "{s:?} without le");
            }
            assert_eq!(have, want, "labels of {s:?}");
        }
    }

    /// A histogram's `(count, sum, buckets as (le, cumulative count))`,
    /// checked: bounds increase, counts never decrease, `+Inf` is the count.
    #[track_caller]
    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> (u64, f64, Vec<(f64, u64)>) {
        let count = self.value(&format!("{name}_count"), labels) as u64;
        let sum = self.value(&format!("{name}_sum"), labels);
        let mut buckets: Vec<(f64, u64)> = self
            .named(&format!("{name}_bucket"))
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                    && s.labels.len() == labels.len() + 1
            })
            .map(|s| {
                let le = &s.labels["le"];
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (bound, s.value as u64)
            })
            .collect();
        assert!(!buckets.is_empty(), "no buckets for {name}{labels:?}");
        for w in buckets.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1, "{name}: {w:?}");
        }
        let last = buckets.pop().unwrap();
        assert_eq!(last, (f64::INFINITY, count), "{name}: +Inf is the count");
        buckets.push(last);
        (count, sum, buckets)
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("value in {line:?}"));
    let Some((name, rest)) = series.split_once('{') else {
        return Sample {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}"));
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{line:?}");
        let mut v = String::new();
        loop {
            match chars
                .next()
                .unwrap_or_else(|| panic!("unterminated {line:?}"))
            {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => v.push('\n'),
                    Some(c @ ('\\' | '"')) => v.push(c),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                c => v.push(c),
            }
        }
        assert!(labels.insert(key, v).is_none(), "{line:?}");
        match chars.next() {
            None | Some(',') => {}
            Some(c) => panic!("{c:?} after a label in {line:?}"),
        }
    }
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

// ---- the test -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_a_known_workload_exactly() {
    let gw = Gw::start().await;

    // Before the workload: plugins, subscribers and store subscriptions.
    gw.load_guest("metered", "fail-every", &["default:>", "feed:>"])
        .await;
    gw.load_guest("tripper", "fail-always", &["trip:>"]).await;
    let slow = gw
        .host
        .bus()
        .subscriber_with(
            "slow",
            SubscriberOptions {
                capacity: Some(2),
                policy: Some(OverflowPolicy::DropOldest),
            },
        )
        .unwrap();
    slow.subscribe(exesdb_host::bus::Channel::Alerts, "probe:>")
        .unwrap();
    let odd_name = "odd \"quoted\" \\ name\nline two";
    let odd = gw.host.bus().subscriber(odd_name).unwrap();
    odd.subscribe(exesdb_host::bus::Channel::Alerts, "probe:*")
        .unwrap();
    let projector = store_subscriber(&gw, "projector", u64::MAX);
    let stuck = store_subscriber(&gw, "stuck", 3);

    let before = gw.scrape().await;
    for family in ["exesdb_bus_published", "exesdb_bus_delivered"] {
        before.family(family, "counter", None, &["channel"]);
        assert_eq!(
            before.named(&format!("{family}_total")).count(),
            10,
            "{family}"
        );
    }

    // The workload.
    // Two appends: 3 + 2 events, announced on `events` as default:orders.
    for n in [3, 2] {
        let events: Vec<Value> = (0..n)
            .map(|i| json!({"type": "OrderPlaced", "data": {"i": i}}))
            .collect();
        gw.post(
            "/v1/stores/default/streams/orders",
            json!({"expected": "any", "events": events}),
        )
        .await;
    }
    // 4 messages for `metered` and 3 for `tripper` on `events`, 5 on `alerts`.
    let batch = |topic: &str, kind: &str, n: usize| {
        let messages: Vec<Value> = (0..n)
            .map(|i| json!({"topic": topic, "kind": kind, "payload": {"i": i}}))
            .collect();
        json!({ "messages": messages })
    };
    gw.post(
        "/v1/channels/events/messages",
        batch("feed:x", "custom.feed", 4),
    )
    .await;
    gw.post(
        "/v1/channels/events/messages",
        batch("trip:x", "custom.trip", 3),
    )
    .await;
    gw.post(
        "/v1/channels/alerts/messages",
        batch("probe:1", "custom.probe", 5),
    )
    .await;
    // Refusals: a token without `read`, no token, no such route.
    let refused = gw
        .request("GET", "/metrics", gw.token("writer"), None)
        .await;
    assert_eq!(refused.status, 403, "{refused:#?}");
    assert!(refused.text.contains("read"), "{refused:#?}");
    let anonymous = gw.request("GET", "/metrics", None, None).await;
    assert_eq!(anonymous.status, 401, "{anonymous:#?}");
    let missing = gw
        .request("GET", "/v1/no-such-route", gw.token("reader"), None)
        .await;
    assert_eq!(missing.status, 404, "{missing:#?}");
    // One connected stream client.
    let client = open_stream(
        gw.addr,
        "/v1/channels/lifecycle/stream",
        gw.tokens["reader"].as_str(),
    )
    .await;

    // Everything handled: 9 messages for metered (3 failed), 3 for
    // tripper (all failed), the projector caught up, `stuck` stopped
    // before position 3 with its breaker open.
    let calls = |h: &Host, name: &str| {
        h.plugins()
            .status(name)
            .map_or(0, |p| p.delivered + p.failed)
    };
    gw.until("plugins handled the workload", |h| {
        calls(h, "metered") == 9 && calls(h, "tripper") == 3
    })
    .await;
    gw.until("store subscriptions settled", |h| {
        let list = h.emitters().list();
        let by = |id: &str| list.iter().find(|e| e.id == id).cloned().unwrap();
        by(&projector).position == 5 && by(&stuck).paused
    })
    .await;
    gw.until("tripper's breaker is open", |h| {
        h.plugins()
            .health()
            .subscription("tripper")
            .is_some_and(|s| s.breaker.as_str() == "open")
    })
    .await;

    let after = gw.scrape().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.or_zero(name, labels)
    };

    // Per channel: 5 announcements + 4 + 3 on events, delivered to
    // metered (9) and tripper (3); 5 on alerts, delivered to the test's two
    // subscribers and the gateway's alert book (`GET /v1/alerts`).
    let events = [("channel", "events")];
    let alerts = [("channel", "alerts")];
    assert_eq!(delta("exesdb_bus_published_total", &events), 12.0);
    assert_eq!(delta("exesdb_bus_delivered_total", &events), 12.0);
    assert_eq!(delta("exesdb_bus_published_total", &alerts), 5.0);
    assert_eq!(delta("exesdb_bus_delivered_total", &alerts), 15.0);

    // Per subscriber: the slow one kept the last 2 and dropped 3.
    for f in ["exesdb_subscriber_delivered", "exesdb_subscriber_dropped"] {
        after.family(f, "counter", None, &["subscriber", "id"]);
    }
    for f in [
        "exesdb_subscriber_queue_messages",
        "exesdb_subscriber_capacity_messages",
    ] {
        after.family(f, "gauge", Some("messages"), &["subscriber", "id"]);
    }
    let slow_id = slow.id().0.to_string();
    let s = [("subscriber", "slow"), ("id", slow_id.as_str())];
    assert_eq!(after.value("exesdb_subscriber_delivered_total", &s), 5.0);
    assert_eq!(after.value("exesdb_subscriber_dropped_total", &s), 3.0);
    assert_eq!(after.value("exesdb_subscriber_queue_messages", &s), 2.0);
    assert_eq!(after.value("exesdb_subscriber_capacity_messages", &s), 2.0);
    // A name with quotes, a backslash and a newline survives escaping.
    let odd_id = odd.id().0.to_string();
    let o = [("subscriber", odd_name), ("id", odd_id.as_str())];
    assert_eq!(after.value("exesdb_subscriber_queue_messages", &o), 5.0);
    assert_eq!(after.value("exesdb_subscriber_dropped_total", &o), 0.0);

    // Plugins.
    for f in [
        "exesdb_plugin_calls",
        "exesdb_plugin_errors",
        "exesdb_plugin_traps",
        "exesdb_plugin_restarts",
        "exesdb_plugin_violations",
        "exesdb_plugin_dropped",
    ] {
        after.family(f, "counter", None, &["plugin"]);
    }
    after.family("exesdb_plugin_state", "gauge", None, &["plugin", "state"]);
    after.family(
        "exesdb_plugin_call_duration_seconds",
        "histogram",
        Some("seconds"),
        &["plugin"],
    );
    for (plugin, calls, errors) in [("metered", 9.0, 3.0), ("tripper", 3.0, 3.0)] {
        let p = [("plugin", plugin)];
        assert_eq!(
            after.value("exesdb_plugin_calls_total", &p),
            calls,
            "{plugin}"
        );
        assert_eq!(
            after.value("exesdb_plugin_errors_total", &p),
            errors,
            "{plugin}"
        );
        for f in ["traps", "restarts", "violations", "dropped"] {
            let name = format!("exesdb_plugin_{f}_total");
            assert_eq!(after.value(&name, &p), 0.0, "{name} {plugin}");
        }
        let state =
            |s: &str| after.value("exesdb_plugin_state", &[("plugin", plugin), ("state", s)]);
        assert_eq!(state("running"), 1.0, "{plugin}");
        for s in ["restarting", "parked", "stopped", "unloaded"] {
            assert_eq!(state(s), 0.0, "{plugin} {s}");
        }
        // One observation per call into the guest (a call may carry a batch).
        let (n, sum, _) = after.histogram("exesdb_plugin_call_duration_seconds", &p);
        assert!((1..=calls as u64).contains(&n), "{plugin}: {n} calls");
        assert!(sum > 0.0, "{plugin}: {sum}");
    }

    // Breakers and health, per subscription of the default store.
    after.family(
        "exesdb_subscription_breaker_state",
        "gauge",
        None,
        &["store", "subscription", "state"],
    );
    after.family(
        "exesdb_subscription_status",
        "gauge",
        None,
        &["store", "subscription", "status"],
    );
    let breaker = |sub: &str, state: &str| {
        after.value(
            "exesdb_subscription_breaker_state",
            &[
                ("store", "default"),
                ("subscription", sub),
                ("state", state),
            ],
        )
    };
    for (sub, open) in [
        ("metered", false),
        ("tripper", true),
        ("projector", false),
        ("stuck", true),
    ] {
        let (on, off) = if open {
            ("open", "closed")
        } else {
            ("closed", "open")
        };
        assert_eq!(breaker(sub, on), 1.0, "{sub}");
        assert_eq!(breaker(sub, off), 0.0, "{sub}");
        assert_eq!(breaker(sub, "half_open"), 0.0, "{sub}");
    }
    let status = |sub: &str, st: &str| {
        after.value(
            "exesdb_subscription_status",
            &[("store", "default"), ("subscription", sub), ("status", st)],
        )
    };
    // metered's last (ninth) message failed: degraded; three in a row: failed.
    assert_eq!(status("metered", "degraded"), 1.0);
    assert_eq!(status("tripper", "failed"), 1.0);
    assert_eq!(status("projector", "healthy"), 1.0);
    assert_eq!(status("metered", "healthy"), 0.0);

    // The store: 5 events in 2 appends.
    let store = [("store", "default")];
    after.family(
        "exesdb_store_appended_events",
        "counter",
        Some("events"),
        &["store"],
    );
    after.family(
        "exesdb_store_append_duration_seconds",
        "histogram",
        Some("seconds"),
        &["store"],
    );
    assert_eq!(delta("exesdb_store_appended_events_total", &store), 5.0);
    let (appends, sum, _) = after.histogram("exesdb_store_append_duration_seconds", &store);
    let (appends_before, _, _) = before.histogram("exesdb_store_append_duration_seconds", &store);
    assert_eq!(appends - appends_before, 2);
    assert!(sum > 0.0);

    // Emitters: positions, lag (head 4 + 1 - position), acknowledged, paused.
    let keys = ["emitter", "store", "subscriber"];
    after.family("exesdb_emitter_position", "gauge", None, &keys);
    after.family("exesdb_emitter_lag_events", "gauge", Some("events"), &keys);
    after.family(
        "exesdb_emitter_delivered_events",
        "counter",
        Some("events"),
        &keys,
    );
    after.family("exesdb_emitter_paused", "gauge", None, &keys);
    for (id, name, position, lag, paused) in [
        (&projector, "projector", 5.0, 0.0, 0.0),
        (&stuck, "stuck", 3.0, 2.0, 1.0),
    ] {
        let e = [
            ("emitter", id.as_str()),
            ("store", "default"),
            ("subscriber", name),
        ];
        assert_eq!(
            after.value("exesdb_emitter_position", &e),
            position,
            "{name}"
        );
        assert_eq!(after.value("exesdb_emitter_lag_events", &e), lag, "{name}");
        assert_eq!(
            after.value("exesdb_emitter_delivered_events_total", &e),
            position,
            "{name}"
        );
        assert_eq!(after.value("exesdb_emitter_paused", &e), paused, "{name}");
    }

    // API requests by method, route pattern and status: exactly the ones made.
    after.family(
        "exesdb_api_requests",
        "counter",
        None,
        &["method", "route", "status"],
    );
    let requests = |method: &str, route: &str, status: &str| {
        after.or_zero(
            "exesdb_api_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(
        requests("POST", "/v1/stores/{store}/streams/{stream}", "201"),
        2.0
    );
    assert_eq!(
        requests("POST", "/v1/channels/{channel}/messages", "201"),
        3.0
    );
    assert_eq!(requests("GET", "/v1/channels/{channel}/stream", "200"), 1.0);
    assert_eq!(requests("GET", "/metrics", "200"), 1.0, "the first scrape");
    assert_eq!(requests("GET", "/metrics", "403"), 1.0);
    assert_eq!(requests("GET", "/metrics", "401"), 1.0);
    assert_eq!(requests("GET", "unmatched", "404"), 1.0);
    let total: f64 = after
        .named("exesdb_api_requests_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 10.0, "nothing else counted");

    // Stream clients: one connected, of at most 7.
    after.family("exesdb_api_stream_clients", "gauge", None, &[]);
    assert_eq!(after.value("exesdb_api_stream_clients", &[]), 1.0);
    assert_eq!(
        after.value("exesdb_api_stream_clients_limit", &[]),
        MAX_STREAM_CLIENTS.parse::<f64>().unwrap()
    );

    // The [metrics] publisher's interval restarts the call-time histograms;
    // the exported ones are cumulative and keep every call. Requests keep
    // counting per route and status.
    gw.host.plugins().metrics().sample();
    let again = gw.scrape().await;
    for plugin in ["metered", "tripper"] {
        let p = [("plugin", plugin)];
        assert_eq!(
            again.histogram("exesdb_plugin_call_duration_seconds", &p),
            after.histogram("exesdb_plugin_call_duration_seconds", &p),
            "{plugin}"
        );
    }
    let scrapes = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
    assert_eq!(again.value("exesdb_api_requests_total", &scrapes), 2.0);

    // The stream client leaves; its slot is free again.
    drop(client);
    let deadline = Instant::now() + WAIT;
    loop {
        let now = gw.scrape().await;
        if now.value("exesdb_api_stream_clients", &[]) == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the stream client never left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((slow, odd));
    gw.host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_publish_counting_the_bus_families_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p).display().to_string();
    let env: Vec<(String, String)> = [
        ("EXESDB_API__LISTEN", "127.0.0.1:0".to_owned()),
        ("EXESDB_PLUGINS__BUNDLED", "false".to_owned()),
        ("EXESDB_PLUGINS__WATCH", "false".to_owned()),
        ("EXESDB_METRICS__ENABLED", "false".to_owned()),
        ("EXESDB_RUNTIME__CACHE_DIR", path("cache")),
        ("EXESDB_STORES__DATA_DIR", path("data")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let host = Host::start(Config::load_with_env(None::<&Path>, env).unwrap())
        .await
        .unwrap();
    let url = format!("http://{}/metrics", host.api_addr().unwrap());
    // An open API (no tokens, loopback): anyone may read.
    let r = tokio::task::spawn_blocking(move || http("GET", &url, None, None))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:#?}");
    let m = Exposition::parse(&r.text);
    assert!(!m.types.contains_key("exesdb_bus_published"), "{}", r.text);
    assert!(!m.types.contains_key("exesdb_bus_delivered"), "{}", r.text);
    // The rest is there.
    m.family(
        "exesdb_subscriber_dropped",
        "counter",
        None,
        &["subscriber", "id"],
    );
    m.family(
        "exesdb_api_requests",
        "counter",
        None,
        &["method", "route", "status"],
    );
    assert_eq!(m.value("exesdb_api_stream_clients", &[]), 0.0);
    host.shutdown().await.unwrap();
}
