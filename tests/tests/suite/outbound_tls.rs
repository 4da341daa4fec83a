//! Plugins' `https` requests against a real TLS server on 127.0.0.1 whose
//! certificate a certificate authority made for the test run signs: trusted
//! when `[runtime] outbound_ca_files` names the CA, refused with a
//! certificate error (nothing sent) when it does not, or when the
//! certificate is for another name.

use std::sync::Arc;

use crate::common::http::{self, TestCa};
use crate::common::*;
use crate::outbound::{answer, ask, http_guest};
use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::config::RuntimeConfig;
use exesdb_host::runtime::{Actor, Plugins, Runtime};
use serde_json::json;

/// Plugins whose runtime trusts the CA files `ca_files` (besides the
/// Mozilla roots).
fn plugins_trusting(ca_files: Vec<String>) -> (Bus, Plugins) {
    let bus = Bus::new(BusConfig::default());
    let rc = RuntimeConfig {
        outbound_ca_files: ca_files,
        ..RuntimeConfig::default()
    };
    let plugins = Plugins::new(Runtime::with_config(&rc).unwrap(), bus.clone(), 64);
    (bus, plugins)
}

/// The CA's certificate written to a file in `dir`.
fn ca_file(ca: &TestCa, dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("test-ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    path.to_string_lossy().into_owned()
}

async fn https_server(certificate: Arc<rustls::ServerConfig>) -> http::Server {
    http::Server::start_tls(certificate, |r, _| answer(&r.target)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_a_configured_ca_is_reached_over_https() {
    let ca = TestCa::new("exesdb test CA");
    let server = https_server(ca.certificate(&["127.0.0.1"])).await;
    let dir = tempfile::tempdir().unwrap();
    let (bus, plugins) = plugins_trusting(vec![ca_file(&ca, &dir)]);
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let audit = watch(&bus, Channel::Audit, "audit:access_log:outbound_http");
    plugins
        .load(
            Actor::Operator,
            http_guest("secure", &["https://127.0.0.1:*"], &[]),
            &wasm("test-guest"),
        )
        .unwrap();

    let url = server.url("/status/202");
    assert!(url.starts_with("https://"), "{url}");
    let report = ask(
        &bus,
        &echoes,
        json!({"url": url, "method": "POST", "body": "sealed"}),
    )
    .await;
    assert_eq!(report, json!({"status": 202, "bytes": 2}));
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (
            seen[0].method.as_str(),
            seen[0].target.as_str(),
            &seen[0].body[..]
        ),
        ("POST", "/status/202", &b"sealed"[..])
    );
    let p = next(&audit).await.payload().clone();
    let destination = format!("https://127.0.0.1:{}", server.port);
    assert_eq!(p["destination"], destination.as_str(), "{p}");
    assert_eq!(p["status"], 202, "{p}");
    let o = &plugins.status("secure").unwrap().outbound[0];
    assert_eq!((o.requests, o.status_2xx, o.failed), (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_or_misnamed_certificate_is_refused_before_anything_is_sent() {
    let ca = TestCa::new("exesdb test CA");
    // Signed by a CA the host was not told of.
    let stranger = https_server(ca.certificate(&["127.0.0.1"])).await;
    // Signed by the trusted CA, but for another name.
    let misnamed = https_server(ca.certificate(&["other.example"])).await;
    let dir = tempfile::tempdir().unwrap();
    let other_ca = TestCa::new("another CA");
    let (bus, plugins) = plugins_trusting(vec![ca_file(&other_ca, &dir)]);
    let (bus2, plugins2) = plugins_trusting(vec![ca_file(&ca, &dir)]);

    for (bus, plugins, server) in [(&bus, &plugins, &stranger), (&bus2, &plugins2, &misnamed)] {
        let echoes = watch(bus, Channel::Diagnostics, "echo:>");
        let audit = watch(bus, Channel::Audit, "audit:access_log:outbound_http");
        plugins
            .load(
                Actor::Operator,
                http_guest("wary", &["https://127.0.0.1:*"], &[]),
                &wasm("test-guest"),
            )
            .unwrap();
        let report = ask(bus, &echoes, json!({"url": server.url("/status/200")})).await;
        assert_eq!(
            report,
            json!({"error": "ErrorCode::TlsCertificateError"}),
            "port {}",
            server.port
        );
        assert!(server.requests().is_empty(), "{:?}", server.requests());
        let p = next(&audit).await.payload().clone();
        assert_eq!(
            (&p["success"], &p["status"], &p["error"]),
            (&json!(false), &json!(null), &json!("TLS certificate error")),
            "{p}"
        );
        let o = &plugins.status("wary").unwrap().outbound[0];
        assert_eq!((o.requests, o.failed), (1, 1), "{o:?}");
    }
}

#[test]
fn a_ca_file_that_cannot_be_used_fails_the_runtime_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let rc = RuntimeConfig {
        outbound_ca_files: vec![missing.to_string_lossy().into_owned()],
        ..RuntimeConfig::default()
    };
    let e = Runtime::with_config(&rc).unwrap_err().to_string();
    assert!(
        e.starts_with("[runtime] outbound_ca_files: cannot read CA file ")
            && e.contains("missing.pem"),
        "{e}"
    );
}
