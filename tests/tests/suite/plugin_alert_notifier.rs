//! The Python `alert-notifier` plugin (componentize-py), loaded as a real
//! component with a secret from a file and its durable state in a data
//! directory, posting to a real HTTP receiver on 127.0.0.1 started by each
//! test: every `AlertEscalation` published on `alerts` arrives once per
//! (alert, level) with the bearer token, also after a host restart; a failed
//! POST is a failed delivery and is not recorded as sent.

use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::http::{self, Reply, Request};
use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig};
use exesdb_host::messages::alerts::{AlertEscalation, EscalationLevel};
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Actor, Manifest, Plugins};
use exesdb_host::store::kv::KeyValueDb;
use exesdb_host::store::Durability;
use serde_json::json;

const NAME: &str = "alert-notifier";
const TOKEN: &str = "xoxb-test-7f3a9c";
const PATH: &str = "/hooks/T000/B000";

// ---- the receiver -----------------------------------------------------------

/// A tiny HTTP/1.1 receiver on 127.0.0.1 (one request per connection) that
/// records every request and answers with the status set by
/// [`answer_with`](Self::answer_with) (200 at first). Also used by the
/// JavaScript `alert-webhook-js` tests.
pub(crate) struct Receiver {
    http: http::Server,
    status: Arc<AtomicU16>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let status = Arc::new(AtomicU16::new(200));
        let answer = Arc::clone(&status);
        let http =
            http::Server::start(move |_, _| Reply::new(answer.load(Ordering::SeqCst), "ok")).await;
        Receiver { http, status }
    }

    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    pub fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }

    /// The requests once there are `n`; panics after [`WAIT`].
    pub async fn wait_for(&self, n: usize) -> Vec<Request> {
        self.http.wait_until(|got| got.len() >= n).await
    }
}

// ---- the plugin -------------------------------------------------------------

/// The plugin's manifest posting to `url`, its secret `token` read from `file`.
fn notifier(url: &str, token_file: &Path) -> Manifest {
    manifest(NAME, NAME, |t| {
        t["config"]["url"] = url.into();
        let mut token = toml::Table::new();
        token.insert("file".into(), token_file.display().to_string().into());
        let mut secrets = toml::Table::new();
        secrets.insert("token".into(), token.into());
        t.insert("secrets".into(), secrets.into());
    })
}

/// A directory with the token file and the host's data directory.
fn deployment() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, TOKEN).unwrap();
    (dir, file)
}

/// A host's plugins whose durable state is in `data` (a restart is opening
/// the same directory again), with the notifier loaded.
fn host(bus: &Bus, data: &Path, manifest: Manifest) -> Plugins {
    let db = KeyValueDb::open(data, Durability::Immediate).unwrap();
    let plugins = cached_plugins(bus).with_state_db(db);
    plugins
        .load(Actor::Operator, manifest, &wasm(NAME))
        .unwrap();
    plugins
}

fn escalation(
    alert_id: &str,
    from: Option<EscalationLevel>,
    to: EscalationLevel,
) -> AlertEscalation {
    AlertEscalation {
        alert_id: alert_id.to_owned(),
        from_level: from,
        to_level: to,
        escalation_reason: "unacknowledged for 60 s".to_owned(),
        escalated_by: "alert-escalator".to_owned(),
        notify_contacts: vec!["team-lead".to_owned(), "sre-oncall".to_owned()],
    }
}

/// Publishes `e` on `alerts`, topic `alert_escalation:<alert id>`.
async fn publish(bus: &Bus, e: &AlertEscalation) {
    let env = Envelope::typed(format!("alert_escalation:{}", e.alert_id), e, bus.node()).unwrap();
    bus.broadcast(env).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_is_posted_once_per_level_with_the_token_also_across_a_restart() {
    let receiver = Receiver::start().await;
    let (dir, token) = deployment();
    let data = dir.path().join("data");
    let bus = Bus::new(BusConfig::default());
    let level2 = escalation(
        "db-down",
        Some(EscalationLevel::Level1),
        EscalationLevel::Level2,
    );
    {
        let plugins = host(&bus, &data, notifier(&receiver.url(PATH), &token));
        publish(&bus, &level2).await;
        let got = receiver.wait_for(1).await;
        let r = &got[0];
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", PATH));
        assert_eq!(r.header("authorization"), format!("Bearer {TOKEN}"));
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(
            r.json(),
            json!({
                "text": "LEVEL2 alert db-down escalated to level2 (from level1): unacknowledged for 60 s",
                "alert_id": "db-down",
                "level": "level2",
                "from_level": "level1",
                "reason": "unacknowledged for 60 s",
                "escalated_by": "alert-escalator",
                "contacts": ["team-lead", "sre-oncall"],
            })
        );
        let s = wait_delivered(&plugins, NAME, 1).await;
        assert!(s.state_bytes > 0, "the sent escalation is recorded: {s:?}");

        // The same escalation again (a redelivery, a repeat): handled, not sent.
        publish(&bus, &level2).await;
        wait_delivered(&plugins, NAME, 2).await;
        // The next level of the same alert is another notification.
        let level3 = escalation(
            "db-down",
            Some(EscalationLevel::Level2),
            EscalationLevel::Level3,
        );
        publish(&bus, &level3).await;
        let got = receiver.wait_for(2).await;
        assert_eq!(got[1].json()["level"], "level3");
        let s = wait_delivered(&plugins, NAME, 3).await;
        assert_eq!((s.failed, receiver.requests().len()), (0, 2), "{s:?}");
        assert!(
            !format!("{s:?}").contains(TOKEN),
            "the token is not in the status"
        );
        plugins.unload_all().await;
    }
    // The host restarts on the same data directory: still sent once.
    let plugins = host(&bus, &data, notifier(&receiver.url(PATH), &token));
    publish(&bus, &level2).await;
    let s = wait_delivered(&plugins, NAME, 1).await;
    assert_eq!(s.failed, 0, "{s:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.requests().len(),
        2,
        "not sent again after a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_post_fails_the_delivery_and_is_not_marked_sent() {
    let receiver = Receiver::start().await;
    receiver.answer_with(500);
    let (dir, token) = deployment();
    let bus = Bus::new(BusConfig::default());
    let plugins = host(
        &bus,
        &dir.path().join("data"),
        notifier(&receiver.url(PATH), &token),
    );
    let e = escalation("disk-full", None, EscalationLevel::Level1);
    publish(&bus, &e).await;
    receiver.wait_for(1).await;
    let s = wait_status(&plugins, NAME, |s| s.failed == 1).await;
    assert_eq!(s.delivered, 0, "{s:?}");
    let error = s.last_error.clone().unwrap_or_default();
    assert!(error.contains("HTTP 500"), "{error}");
    assert_eq!(s.state_bytes, 0, "nothing is recorded as sent: {s:?}");

    // The receiver recovers; the same escalation again is sent this time.
    receiver.answer_with(200);
    publish(&bus, &e).await;
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].json()["text"], got[0].json()["text"]);
    assert_eq!(
        got[1].json()["text"],
        "LEVEL1 alert disk-full escalated to level1: unacknowledged for 60 s"
    );
    let s = wait_delivered(&plugins, NAME, 1).await;
    assert_eq!(s.failed, 1, "{s:?}");
    assert!(s.state_bytes > 0, "{s:?}");
    // And now it is recorded: a third time is not sent.
    publish(&bus, &e).await;
    wait_delivered(&plugins, NAME, 2).await;
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_fails_the_delivery_and_init_checks_url_and_token() {
    // Nothing listens on this port any more: connection refused.
    let port = {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let (dir, token) = deployment();
    let bus = Bus::new(BusConfig::default());
    let plugins = host(
        &bus,
        &dir.path().join("data"),
        notifier(&format!("http://127.0.0.1:{port}{PATH}"), &token),
    );
    publish(
        &bus,
        &escalation("net-split", None, EscalationLevel::Level1),
    )
    .await;
    let s = wait_status(&plugins, NAME, |s| s.failed == 1).await;
    let error = s.last_error.clone().unwrap_or_default();
    assert!(error.contains("ConnectionRefused"), "{error}");
    assert_eq!(s.state_bytes, 0, "{s:?}");

    // `init` fails the load without a URL or without the secret.
    let mut m = notifier("", &token);
    m.name = "no-url".into();
    let e = plugins
        .load(Actor::Operator, m, &wasm(NAME))
        .unwrap_err()
        .to_string();
    assert!(e.contains("config `url` is required"), "{e}");
    let m = manifest(NAME, "no-token", |t| {
        t.remove("secrets");
    });
    let e = plugins
        .load(Actor::Operator, m, &wasm(NAME))
        .unwrap_err()
        .to_string();
    assert!(e.contains("secret `token` is missing"), "{e}");
}
