//! The JavaScript `alert-webhook-js` plugin (componentize-js, built with
//! StarlingMonkey's `http` feature kept): its `async` `onMessage` awaits
//! `fetch`, and the request reaches a real HTTP receiver on 127.0.0.1 (the
//! one of the `alert-notifier` tests) started by each test.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::plugin_alert_notifier::Receiver;
use exesdb_host::bus::{Bus, BusConfig};
use exesdb_host::messages::alerts::{AlertCategory, Severity, SystemAlert};
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Actor, Manifest, Plugins};
use serde_json::json;

const NAME: &str = "alert-webhook-js";
const PATH: &str = "/hooks/alerts";

/// The plugin's manifest posting to `url`, with the secret `token` read from
/// `token_file` when given.
fn webhook(name: &str, url: &str, token_file: Option<&Path>, hosts: &[&str]) -> Manifest {
    manifest(NAME, name, |t| {
        t["config"]["url"] = url.into();
        let hosts: Vec<toml::Value> = hosts.iter().map(|&h| h.into()).collect();
        t["wasi"]["allowed_outbound_hosts"] = hosts.into();
        if let Some(file) = token_file {
            let mut token = toml::Table::new();
            token.insert("file".into(), file.display().to_string().into());
            let mut secrets = toml::Table::new();
            secrets.insert("token".into(), token.into());
            t.insert("secrets".into(), secrets.into());
        }
    })
}

fn plugins(bus: &Bus) -> Plugins {
    cached_plugins(bus)
}

async fn publish(bus: &Bus, alert: &SystemAlert) {
    let topic = format!("system_alert:{}", alert.alert_id);
    bus.broadcast(Envelope::typed(topic, alert, bus.node()).unwrap())
        .await
        .unwrap();
}

fn disk_full() -> SystemAlert {
    SystemAlert::new(
        "disk-full",
        Severity::Error,
        AlertCategory::System,
        "Disk full",
        "/var/lib/exesdb is 98 % full",
        "node-1",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_in_an_async_export_posts_the_alert_to_the_receiver() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "js-s3cret").unwrap();
    let bus = Bus::new(BusConfig::default());
    let plugins = plugins(&bus);
    plugins
        .load(
            Actor::Operator,
            webhook(
                NAME,
                &receiver.url(PATH),
                Some(&token),
                &["http://127.0.0.1:*"],
            ),
            &wasm(NAME),
        )
        .unwrap();

    publish(&bus, &disk_full()).await;
    let got = receiver.wait_for(1).await;
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", PATH));
    assert_eq!(r.header("authorization"), "Bearer js-s3cret");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(
        r.json(),
        json!({
            "text": "ERROR alert disk-full: Disk full (node-1)",
            "alert_id": "disk-full",
            "severity": "error",
            "category": "system",
            "title": "Disk full",
            "description": "/var/lib/exesdb is 98 % full",
            "source": "node-1",
            "requires_ack": true,
        })
    );
    // The export returned only once the response had arrived: delivered.
    let s = wait_delivered(&plugins, NAME, 1).await;
    assert_eq!((s.failed, s.traps), (0, 0), "{s:?}");
    let o = &s.outbound[0];
    assert_eq!((o.requests, o.status_2xx), (1, 1), "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_2xx_answer_and_a_refused_post_fail_the_delivery_without_a_trap() {
    let receiver = Receiver::start().await;
    receiver.answer_with(503);
    let bus = Bus::new(BusConfig::default());
    let plugins = plugins(&bus);
    plugins
        .load(
            Actor::Operator,
            webhook(NAME, &receiver.url(PATH), None, &["http://127.0.0.1:*"]),
            &wasm(NAME),
        )
        .unwrap();
    publish(&bus, &disk_full()).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].header("authorization"), "", "no secret, no token");
    let s = wait_status(&plugins, NAME, |s| s.failed == 1).await;
    let error = s.last_error.clone().unwrap_or_default();
    assert!(error.contains("HTTP 503"), "{error}");
    assert_eq!(s.traps, 0, "a rejected promise is an error, not a trap");

    // Not granted. The host takes the request's body before refusing it
    // (StarlingMonkey writes a `fetch` body after `handle` returns, and
    // aborts its engine when that write fails), so the `fetch` Promise
    // rejects with a `TypeError`, like a dead receiver's. Nothing is sent.
    let denied = "alert-webhook-js-denied";
    plugins
        .load(
            Actor::Operator,
            webhook(
                denied,
                &receiver.url(PATH),
                None,
                &["https://hooks.example.com"],
            ),
            &wasm(NAME),
        )
        .unwrap();
    publish(&bus, &disk_full()).await;
    let s = wait_status(&plugins, denied, |s| s.failed == 1).await;
    assert_eq!((s.violations, s.traps), (1, 0), "{s:?}");
    let error = s.last_error.clone().unwrap_or_default();
    assert!(error.contains("TypeError"), "{error}");
    // The first plugin got the second alert too (503 again); the denied one
    // sent nothing.
    wait_status(&plugins, NAME, |s| s.failed == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_and_its_open_breaker_reject_fetch_without_a_trap() {
    // Nothing listens on this port any more: connection refused.
    let port = {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let bus = Bus::new(BusConfig::default());
    let plugins = plugins(&bus);
    // The destination's breaker opens after one failure, for a minute.
    plugins.set_outbound_breaker(&exesdb_host::health::HealthMonitoring {
        unhealthy_threshold: 1,
        cooldown_ms: 60_000,
        max_cooldown_ms: 60_000,
        ..exesdb_host::health::HealthMonitoring::default()
    });
    plugins
        .load(
            Actor::Operator,
            webhook(
                NAME,
                &format!("http://127.0.0.1:{port}{PATH}"),
                None,
                &["http://127.0.0.1:*"],
            ),
            &wasm(NAME),
        )
        .unwrap();
    // The request went out and failed: `fetch` rejects, the delivery fails.
    publish(&bus, &disk_full()).await;
    let s = wait_status(&plugins, NAME, |s| s.failed == 1).await;
    let error = s.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("no response: TypeError: NetworkError"),
        "{error}"
    );
    assert_eq!(s.traps, 0, "{s:?}");
    // The breaker is open: the host refuses the POST at once, after taking
    // its body (see the test above): a rejection again, no trap.
    publish(&bus, &disk_full()).await;
    let s = wait_status(&plugins, NAME, |s| s.failed == 2).await;
    assert_eq!(s.outbound[0].breaker_rejected, 1, "{s:?}");
    assert_eq!(s.traps, 0, "{s:?}");
}
