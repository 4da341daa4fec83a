//! The `webhook-delivery` plugin (`plugins/webhook-delivery`, not embedded
//! in the host binary), with its own manifest, fed
//! by an emitter worker from a real store and posting to a real HTTP
//! receiver on 127.0.0.1 started by each test. The receiver records every
//! request and answers with the status its policy gives for (webhook-id,
//! how many times that id has been seen); the test checks the CloudEvents
//! body, verifies the Standard Webhooks signature itself (hmac + sha2), and
//! counts attempts and acknowledgements per id. The host's parts are
//! composed as `Host::start` composes them, with the plugins' durable state
//! in the data directory, so a restart is dropping them all and opening the
//! same directory again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::common::http::{self, Reply, Request};
use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::emitter::{Emitters, Stores, SubscriptionSpec, Target};
use exesdb_host::health::{HealthMonitoring, HealthTracker};
use exesdb_host::metrics::MetricsCollector;
use exesdb_host::runtime::{Actor, Plugins, Runtime};
use exesdb_host::store::kv::KeyValueDb;
use exesdb_host::store::{Durability, ExpectedVersion, NewEvent};
use serde_json::json;

/// The plugin crate.
const KRATE: &str = "webhook-delivery";
/// The plugin's name in its manifest.
const NAME: &str = "webhook-delivery";
/// The signing key, base64 (the Standard Webhooks specification's example
/// secret); the secret file holds it with the `whsec_` prefix.
const KEY_B64: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Path and query of the receiver's URL (the query stands for a token).
const PATH: &str = "/hooks/exesdb?token=t0k";

// ---- the receiver -----------------------------------------------------------

/// What the tests read of a request beyond [`Request`]'s fields.
trait Attempt {
    /// Its `webhook-id`.
    fn id(&self) -> &str;
    /// Whether the receiver acknowledged it (2xx).
    fn acked(&self) -> bool;
}

impl Attempt for Request {
    fn id(&self) -> &str {
        self.header("webhook-id")
    }

    fn acked(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A tiny HTTP/1.1 receiver on 127.0.0.1 answering with the status its
/// policy gives for (webhook-id, 1-based count of that id).
struct Receiver {
    port: u16,
    http: http::Server,
}

impl Receiver {
    async fn start(policy: impl Fn(&str, usize) -> u16 + Send + Sync + 'static) -> Receiver {
        let http = http::Server::start(move |r, earlier| {
            let nth = 1 + earlier.iter().filter(|e| e.id() == r.id()).count();
            Reply::new(policy(r.id(), nth), "ok")
        })
        .await;
        Receiver {
            port: http.port,
            http,
        }
    }

    fn url(&self) -> String {
        self.http.url(PATH)
    }

    fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }

    /// The requests once `done` holds for them; panics after [`WAIT`].
    async fn wait_until(&self, done: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        self.http.wait_until(done).await
    }
}

/// Whether the request's `webhook-signature` verifies with the key, as a
/// Standard Webhooks receiver checks it: HMAC-SHA256 of
/// `<webhook-id>.<webhook-timestamp>.<body>`, one of the space-separated
/// `v1,<base64>` signatures.
fn verifies(key_b64: &str, r: &Request) -> bool {
    signed(
        key_b64,
        r.id(),
        r.header("webhook-timestamp"),
        &r.body,
        r.header("webhook-signature"),
    )
}

fn signed(key_b64: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let key = BASE64.decode(key_b64).unwrap();
    header.split(' ').any(|sig| {
        let Some(sig) = sig.strip_prefix("v1,") else {
            return false;
        };
        let Ok(sig) = BASE64.decode(sig) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    })
}

/// The requests for `id`, in arrival order.
fn of<'a>(requests: &'a [Request], id: &str) -> Vec<&'a Request> {
    requests.iter().filter(|r| r.id() == id).collect()
}

/// The ids in the order their requests arrived, each once.
fn id_order(requests: &[Request]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for r in requests {
        if ids.last().map(String::as_str) != Some(r.id()) {
            ids.push(r.id().to_owned());
        }
    }
    ids
}

// ---- the host ---------------------------------------------------------------

/// The stores, emitters and plugins of a host on `dir`, composed as
/// `Host::start` composes them: one health tracker for the default store and
/// the plugins, the plugins' durable state in `dir`, and the outbound
/// breakers on the same `[health_monitoring]` thresholds.
struct World {
    bus: Bus,
    stores: Arc<Stores>,
    emitters: Arc<Emitters>,
    plugins: Arc<Plugins>,
}

/// `[health_monitoring]`: 3 failures in a row open a breaker for
/// `cooldown_ms`, doubling up to 8 times that.
fn health(cooldown_ms: u64) -> HealthMonitoring {
    HealthMonitoring {
        unhealthy_threshold: 3,
        cooldown_ms,
        max_cooldown_ms: 8 * cooldown_ms,
        ..HealthMonitoring::default()
    }
}

fn world(dir: &Path, health: HealthMonitoring) -> World {
    let bus = Bus::new(BusConfig::default());
    let stores = Stores::with_health(dir, Durability::Immediate, bus.clone(), health.clone());
    let tracker = HealthTracker::new("default", health.clone(), bus.clone());
    let metrics = MetricsCollector::new("default", bus.clone());
    let state = KeyValueDb::open(dir, Durability::Immediate).unwrap();
    let plugins = Arc::new(
        Plugins::with_monitoring(
            Runtime::new().unwrap(),
            bus.clone(),
            64,
            Arc::clone(&tracker),
            metrics,
        )
        .with_state_db(state),
    );
    plugins.set_outbound_breaker(&health);
    let emitters = Emitters::new(
        Arc::clone(&stores),
        tracker,
        bus.clone(),
        Arc::downgrade(&plugins),
    );
    World {
        bus,
        stores,
        emitters,
        plugins,
    }
}

impl World {
    /// Loads the plugin with its own manifest, pointed at `receiver`
    /// (`url`, an outbound grant for 127.0.0.1, the secret from a file in
    /// `dir`), `edit` applied, and starts the emitter workers of its
    /// `[[store_subscription]]`s, as the host does when a plugin loads.
    fn load(&self, dir: &Path, receiver: &Receiver, edit: impl FnOnce(&mut toml::Table)) {
        let secret = dir.join("signing_key");
        std::fs::write(&secret, format!("whsec_{KEY_B64}\n")).unwrap();
        let m = manifest(KRATE, NAME, |t| {
            t["config"]["url"] = receiver.url().into();
            t["wasi"]["allowed_outbound_hosts"] =
                toml::Value::Array(vec!["http://127.0.0.1:*".into()]);
            let mut source = toml::Table::new();
            source.insert("file".into(), secret.to_str().unwrap().into());
            t["secrets"]["signing_key"] = source.into();
            edit(t);
        });
        assert_eq!(m.name, NAME);
        let subscriptions = m.store_subscription.clone();
        self.plugins.load(Actor::Operator, m, &wasm(KRATE)).unwrap();
        for s in subscriptions {
            let spec = SubscriptionSpec {
                store: s.store.unwrap_or_else(|| "default".into()),
                selector: s.selector.parse().unwrap(),
                start: s.start.parse().unwrap(),
                name: s.name,
            };
            self.emitters
                .subscribe(spec, Target::Plugin(NAME.into()))
                .unwrap();
        }
    }

    /// Appends `events` to `stream`, one append each.
    async fn append(&self, stream: &str, events: &[NewEvent]) {
        for e in events {
            self.stores
                .append("default", stream, ExpectedVersion::Any, vec![e.clone()])
                .await
                .unwrap();
        }
    }

    /// Stops the emitter workers, then the plugins (each running call
    /// finishes first), as a host's shutdown does.
    async fn stop(self) {
        self.emitters.shutdown().await;
        self.plugins.unload_all().await;
    }
}

/// `[config] max_attempts = n`.
fn max_attempts(n: i64) -> impl FnOnce(&mut toml::Table) {
    move |t: &mut toml::Table| t["config"]["max_attempts"] = n.into()
}

fn order(n: u64) -> NewEvent {
    NewEvent::json("OrderPlaced", json!({ "order": n, "total": 5 * n }))
}

fn ids(events: &[NewEvent]) -> Vec<String> {
    events.iter().map(|e| e.event_id.to_string()).collect()
}

// ---- the tests --------------------------------------------------------------

/// The verifier the tests use agrees with the Standard Webhooks
/// specification's example, so a signature it accepts is the standard's.
#[test]
fn the_test_verifier_accepts_the_specifications_example() {
    let body = br#"{"test": 2432232314}"#;
    let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert!(signed(
        KEY_B64,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        body,
        sig
    ));
    assert!(!signed(
        KEY_B64,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265331",
        body,
        sig
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_events_arrive_as_signed_cloudevents() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(|_, _| 200).await;
    let w = world(dir.path(), health(1000));
    w.load(dir.path(), &receiver, |_| {});
    let mut events = vec![order(1), order(2)];
    events.push(
        NewEvent::bytes("Scanned", "application/octet-stream", vec![0, 1, 2, 255])
            .with_metadata(exesdb_host::store::Payload::Json(json!({ "by": "till-4" }))),
    );
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    w.append("orders-1", &events[..2]).await;
    w.append("scans", &events[2..]).await;

    let got = receiver.wait_until(|r| r.len() >= 3).await;
    assert_eq!(got.len(), 3, "{got:#?}");
    let recorded = w
        .stores
        .get("default")
        .unwrap()
        .read_batch(&exesdb_host::store::Selector::All, 0, 10)
        .unwrap()
        .events;
    assert_eq!(ids(&events), id_order(&got), "in order, one request each");
    for ((r, e), rec) in got.iter().zip(&events).zip(&recorded) {
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", PATH));
        assert_eq!(r.header("content-type"), "application/cloudevents+json");
        assert!(r
            .header("user-agent")
            .starts_with("exesdb-webhook-delivery/"));
        assert_eq!(
            r.id(),
            e.event_id.to_string(),
            "webhook-id is the event's id"
        );
        let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
        assert!((started - 5..=started + 30).contains(&ts), "{ts} {started}");
        assert!(r.header("webhook-signature").starts_with("v1,"));
        assert!(verifies(KEY_B64, r), "signature of {r:#?}");
        assert!(
            !verifies("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", r),
            "not with another key"
        );
        let ce = r.json();
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], e.event_id.to_string());
        assert_eq!(ce["source"], format!("exesdb://{}/default", w.bus.node()));
        assert_eq!(ce["type"], rec.event_type);
        assert_eq!(ce["subject"], rec.stream_id);
        // When it was appended, in RFC 3339 as the host writes it.
        assert_eq!(ce["time"], json!(rec.created));
        assert!(ce["time"].as_str().unwrap().ends_with('Z'));
    }
    let (a, b, c) = (got[0].json(), got[1].json(), got[2].json());
    assert_eq!(a["datacontenttype"], "application/json");
    assert_eq!(a["data"], json!({ "order": 1, "total": 5 }));
    assert_eq!(b["data"], json!({ "order": 2, "total": 10 }));
    assert_eq!(
        (&c["datacontenttype"], &c["data_base64"], c.get("data")),
        (&json!("application/octet-stream"), &json!("AAEC/w=="), None),
        "bytes travel as data_base64"
    );
    assert_eq!(
        a.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "data",
            "datacontenttype",
            "id",
            "source",
            "specversion",
            "subject",
            "time",
            "type"
        ]
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_redelivered_in_order_with_the_same_webhook_id() {
    let dir = tempfile::tempdir().unwrap();
    // Every event: 500 twice, then 200.
    let receiver = Receiver::start(|_, nth| if nth <= 2 { 500 } else { 200 }).await;
    let w = world(dir.path(), health(50));
    let alerts = watch(&w.bus, Channel::Alerts, ">");
    w.load(dir.path(), &receiver, |_| {});
    let events: Vec<NewEvent> = (0..3).map(order).collect();
    w.append("orders-1", &events).await;

    let got = receiver
        .wait_until(|r| r.iter().filter(|r| r.acked()).count() >= 3)
        .await;
    // Nothing more comes: each event was acknowledged once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_after = receiver.requests();
    assert_eq!(got.len(), got_after.len(), "{got_after:#?}");
    assert_eq!(got.len(), 9, "three attempts per event: {got:#?}");
    // In order: every attempt of an event before the next event's first.
    assert_eq!(id_order(&got), ids(&events));
    for e in ids(&events) {
        let attempts = of(&got, &e);
        assert_eq!(
            attempts.iter().map(|r| r.status).collect::<Vec<_>>(),
            [500, 500, 200],
            "{e}: exactly one acknowledged delivery, after two failures"
        );
        assert!(attempts.iter().all(|r| verifies(KEY_B64, r)));
        assert!(
            attempts.iter().all(|r| r.body == attempts[0].body),
            "the same document on every attempt"
        );
    }
    quiet(&alerts, Duration::from_millis(100)).await;
    // Only the dedupe set is left in the plugin's state (the attempt
    // counters are gone): per event, key `webhook\0delivered/default/<n>`
    // and value `<id> delivered`.
    let state = w.plugins.status(NAME).unwrap().state_bytes;
    assert_eq!(state, 3 * ((8 + 19) + (36 + 10)), "state: {state} bytes");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_keeps_failing_gets_max_attempts_then_a_dead_letter_alert() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<NewEvent> = (0..3).map(order).collect();
    let poison = events[0].event_id.to_string();
    let refused = poison.clone();
    // The first event is always refused with a 500; the others are taken.
    let receiver = Receiver::start(move |id, _| if id == refused { 500 } else { 200 }).await;
    let w = world(dir.path(), health(50));
    let alerts = watch(&w.bus, Channel::Alerts, "system_alert:data");
    w.load(dir.path(), &receiver, max_attempts(4));
    w.append("orders-1", &events).await;

    let alert = next(&alerts).await;
    assert_eq!(alert.kind, "SystemAlert");
    let a = alert.payload();
    assert_eq!(
        (
            &a["severity"],
            &a["category"],
            &a["requires_ack"],
            &a["source"]
        ),
        (&json!("error"), &json!("data"), &json!(true), &json!(NAME))
    );
    assert_eq!(
        a["alert_id"],
        format!("webhook-dead-letter:{NAME}:{poison}")
    );
    let meta = &a["metadata"];
    assert_eq!(meta["event_id"], poison);
    assert_eq!(meta["attempts"], 4);
    assert_eq!(meta["last_error"], "HTTP 500");
    assert_eq!(meta["stream"], "orders-1");
    assert_eq!(
        meta["destination"],
        format!("http://127.0.0.1:{}", receiver.port),
        "the destination, without the path (it may hold a token)"
    );
    assert!(!a.to_string().contains("t0k"), "{a}");

    // Later events still go through, once each.
    let got = receiver
        .wait_until(|r| r.iter().filter(|r| r.acked()).count() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = {
        let after = receiver.requests();
        assert_eq!(got.len(), after.len(), "nothing more: {after:#?}");
        after
    };
    assert_eq!(id_order(&got), ids(&events), "in order");
    let failed = of(&got, &poison);
    assert_eq!(failed.len(), 4, "max_attempts attempts: {got:#?}");
    assert!(failed
        .iter()
        .all(|r| r.status == 500 && verifies(KEY_B64, r)));
    for e in &ids(&events)[1..] {
        let took = of(&got, e);
        assert_eq!(took.len(), 1, "{e}: {got:#?}");
        assert!(took[0].acked());
    }
    // Back-off: the first three attempts come at once, then the
    // subscription's breaker (3 failures in a row) holds the fourth for
    // its cooldown (50 ms).
    let gap = failed[3].at - failed[2].at;
    assert!(gap >= Duration::from_millis(45), "{gap:?}");
    quiet(&alerts, Duration::from_millis(100)).await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_received_exactly_once_across_a_host_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<NewEvent> = (0..5).map(order).collect();
    let later: Vec<NewEvent> = (5..7).map(order).collect();
    let flaky = first[4].event_id.to_string();
    // Before the restart the receiver refuses the fifth event; after it,
    // it takes everything.
    let restarted = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (restarted, flaky) = (Arc::clone(&restarted), flaky.clone());
        Receiver::start(move |id, _| {
            if id == flaky && !restarted.load(Ordering::SeqCst) {
                500
            } else {
                200
            }
        })
        .await
    };
    // A transient subscription from the first event: after the restart the
    // emitter delivers every event again, and only the plugin's durable
    // dedupe set keeps the delivered ones from being posted twice.
    let transient = |t: &mut toml::Table| {
        let s = &mut t["store_subscription"][0];
        s.as_table_mut().unwrap().remove("name");
        t["config"]["max_attempts"] = 5.into();
    };
    let health = health(200);

    let w = world(dir.path(), health.clone());
    w.load(dir.path(), &receiver, transient);
    w.append("orders-1", &first).await;
    // Four delivered, the fifth failed three times in a row (then the
    // breaker holds it for 200 ms): stop there.
    let before = receiver
        .wait_until(|r| r.iter().filter(|r| r.id() == flaky).count() >= 3)
        .await;
    w.stop().await;
    let failed_before = of(&receiver.requests(), &flaky).len();
    assert!(
        (3..5).contains(&failed_before),
        "stopped before max_attempts: {before:#?}"
    );
    // The attempt counter is in the state file.
    {
        let state = KeyValueDb::open(dir.path(), Durability::Immediate).unwrap();
        let counter = state
            .get(NAME, "webhook", &format!("attempts/{flaky}"))
            .unwrap();
        assert_eq!(counter, Some(failed_before.to_string().into_bytes()));
    }

    restarted.store(true, Ordering::SeqCst);
    let w = world(dir.path(), health);
    w.load(dir.path(), &receiver, transient);
    w.append("orders-1", &later).await;
    let got = receiver
        .wait_until(|r| r.iter().filter(|r| r.acked()).count() >= 7)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = receiver.requests();
    assert_eq!(got.len(), all.len(), "nothing more: {all:#?}");

    let every: Vec<String> = ids(&first).into_iter().chain(ids(&later)).collect();
    assert_eq!(id_order(&all), every, "in order, across the restart");
    for id in &every {
        let acked = of(&all, id).iter().filter(|r| r.acked()).count();
        assert_eq!(acked, 1, "{id} acknowledged exactly once: {all:#?}");
        if *id != flaky {
            assert_eq!(of(&all, id).len(), 1, "{id} posted once: {all:#?}");
        }
    }
    let retried = of(&all, &flaky);
    assert_eq!(retried.len(), failed_before + 1, "{retried:#?}");
    assert!(retried.iter().all(|r| verifies(KEY_B64, r)));
    assert!(retried.iter().all(|r| r.body == retried[0].body));
    // Its counter is gone; the dedupe set holds the seven events.
    let state = w.plugins.status(NAME).unwrap().state_bytes;
    assert_eq!(state, 7 * ((8 + 19) + (36 + 10)), "state: {state} bytes");
    w.stop().await;
}
