//! Durable per-plugin state (`wasi:keyvalue`) and secrets
//! (`wasi:config/store`), with the real `test-guest` component in modes
//! `state` and `secret`: each event's payload is one operation, the guest
//! reports its outcome on `diagnostics` (`custom.state`, `custom.secret`).

use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig, Channel, Subscriber};
use exesdb_host::runtime::{Actor, Manifest, Plugins, Runtime};
use exesdb_host::store::kv::KeyValueDb;
use exesdb_host::store::Durability;
use serde_json::{json, Value};

fn state_guest(name: &str, state_mb: Option<i64>) -> Manifest {
    manifest("test-guest", name, |t| {
        t["config"]["mode"] = "state".into();
        if let Some(mb) = state_mb {
            let mut l = toml::Table::new();
            l.insert("state_mb".into(), mb.into());
            t.insert("limits".into(), l.into());
        }
    })
}

/// Asks the guest for one operation; the payload of its report.
async fn op(bus: &Bus, echoes: &Subscriber, kind: &str, ask: Value) -> Value {
    publish_event(bus, "state:ask", ask).await;
    next_where(echoes, |e| e.kind == kind)
        .await
        .payload()
        .clone()
}

/// A host's plugins whose state is in `dir`, with the `state` guest
/// `durable` loaded.
fn durable_host(bus: &Bus, dir: &std::path::Path) -> Plugins {
    let db = KeyValueDb::open(dir, Durability::Immediate).unwrap();
    let plugins = Plugins::new(Runtime::new().unwrap(), bus.clone(), 64).with_state_db(db);
    plugins
        .load(
            Actor::Operator,
            state_guest("durable", None),
            &wasm("test-guest"),
        )
        .unwrap();
    plugins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_operations_behave_as_wasi_keyvalue_says() {
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    plugins
        .load(
            Actor::Operator,
            state_guest("kv", None),
            &wasm("test-guest"),
        )
        .unwrap();
    let st = |ask: Value| op(&bus, &echoes, "custom.state", ask);

    assert_eq!(
        st(json!({"op": "get", "key": "a"})).await,
        json!({"value": null})
    );
    assert_eq!(
        st(json!({"op": "set", "key": "a", "value": "one"})).await,
        json!({"ok": true})
    );
    assert_eq!(
        st(json!({"op": "get", "key": "a"})).await,
        json!({"value": "one"})
    );
    assert_eq!(
        st(json!({"op": "exists", "key": "a"})).await,
        json!({"exists": true})
    );
    // Buckets are separate.
    assert_eq!(
        st(json!({"op": "get", "bucket": "other", "key": "a"})).await,
        json!({"value": null})
    );
    assert_eq!(
        st(json!({"op": "incr", "key": "n", "delta": 5})).await,
        json!({"value": "5"})
    );
    assert_eq!(
        st(json!({"op": "incr", "key": "n", "delta": -2})).await,
        json!({"value": "3"})
    );
    let e = st(json!({"op": "incr", "key": "a"})).await;
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("not a decimal integer"),
        "{e}"
    );
    // Compare-and-swap: only from the value expected.
    assert_eq!(
        st(json!({"op": "cas", "key": "c", "value": "v1", "expected": null})).await,
        json!({"ok": true})
    );
    assert_eq!(
        st(json!({"op": "cas", "key": "c", "value": "v2", "expected": "v0"})).await,
        json!({"cas_failed": "v1"})
    );
    assert_eq!(
        st(json!({"op": "cas", "key": "c", "value": "v2", "expected": "v1"})).await,
        json!({"ok": true})
    );
    assert_eq!(
        st(json!({"op": "list"})).await,
        json!({"keys": ["a", "c", "n"], "cursor": null})
    );
    assert_eq!(
        st(json!({"op": "delete", "key": "a"})).await,
        json!({"ok": true})
    );
    assert_eq!(
        st(json!({"op": "exists", "key": "a"})).await,
        json!({"exists": false})
    );
    let bad = st(json!({"op": "get", "bucket": "", "key": "a"})).await;
    assert!(bad["error"].as_str().unwrap().contains("bucket"), "{bad}");

    // `plugin status` shows the size: keys ("default\0c", "default\0n")
    // and values ("v2", "3").
    let s = plugins.status("kv").unwrap();
    assert_eq!(s.state_bytes, (9 + 2) + (9 + 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_reload_and_a_host_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new(BusConfig::default());
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let st = |ask: Value| op(&bus, &echoes, "custom.state", ask);
    {
        let plugins = durable_host(&bus, dir.path());
        assert_eq!(
            st(json!({"op": "incr", "key": "retries"})).await,
            json!({"value": "1"})
        );
        // A reload (a new version, new instances) sees the same state.
        let mut m = state_guest("durable", None);
        m.version = "2".into();
        plugins
            .reload(Actor::Operator, m, &wasm("test-guest"))
            .await
            .unwrap();
        assert_eq!(
            st(json!({"op": "incr", "key": "retries"})).await,
            json!({"value": "2"})
        );
        plugins.unload_all().await;
    }
    // The host restarts: a new database handle on the same directory.
    let plugins = durable_host(&bus, dir.path());
    assert_eq!(
        st(json!({"op": "get", "key": "retries"})).await,
        json!({"value": "2"})
    );
    // Another plugin sees none of it.
    plugins
        .load(
            Actor::Operator,
            state_guest("stranger", None),
            &wasm("test-guest"),
        )
        .unwrap();
    let both = st(json!({"op": "get", "key": "retries"})).await;
    let other = next_where(&echoes, |e| e.kind == "custom.state").await;
    let mut values = [both["value"].clone(), other.payload()["value"].clone()];
    values.sort_by_key(|v| v.is_null());
    assert_eq!(values, [json!("2"), Value::Null]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_over_the_state_quota_is_refused_and_changes_nothing() {
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    plugins
        .load(
            Actor::Operator,
            state_guest("quota", Some(1)),
            &wasm("test-guest"),
        )
        .unwrap();
    let big = "x".repeat(600 * 1024);
    let st = |ask: Value| op(&bus, &echoes, "custom.state", ask);
    assert_eq!(
        st(json!({"op": "set", "key": "a", "value": big})).await,
        json!({"ok": true})
    );
    let e = st(json!({"op": "set", "key": "b", "value": big})).await;
    let text = e["error"].as_str().unwrap_or_default();
    assert!(
        text.contains("over its quota of 1048576 bytes") && text.contains("state_mb"),
        "{e}"
    );
    assert_eq!(
        st(json!({"op": "exists", "key": "b"})).await,
        json!({"exists": false})
    );
    // Overwriting with something smaller still works.
    assert_eq!(
        st(json!({"op": "set", "key": "a", "value": "small"})).await,
        json!({"ok": true})
    );
    assert_eq!(plugins.status("quota").unwrap().state_bytes, 9 + 5);
}

fn secret_guest(name: &str, file: &std::path::Path) -> Manifest {
    manifest("test-guest", name, |t| {
        t["config"]["mode"] = "secret".into();
        let mut token = toml::Table::new();
        token.insert("file".into(), file.display().to_string().into());
        let mut secrets = toml::Table::new();
        secrets.insert("token".into(), token.into());
        t.insert("secrets".into(), secrets.into());
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_the_guest_through_wasi_config_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "tok-3f9a7c\n").unwrap();
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    plugins
        .load(
            Actor::Operator,
            secret_guest("hook", &file),
            &wasm("test-guest"),
        )
        .unwrap();
    let r = op(
        &bus,
        &echoes,
        "custom.secret",
        json!({"name": "token", "expect": "tok-3f9a7c"}),
    )
    .await;
    assert_eq!(
        r,
        json!({"found": true, "matches": true, "names": ["token"]})
    );
    let r = op(&bus, &echoes, "custom.secret", json!({"name": "nope"})).await;
    assert_eq!(r["found"], false, "{r}");

    // Not in config(), the manifest the host keeps, or the status.
    let manifest = plugins.manifest("hook").unwrap();
    assert!(!manifest.config_json().contains("tok-3f9a7c"));
    assert!(!serde_json::to_string(&manifest)
        .unwrap()
        .contains("tok-3f9a7c"));
    // A guest error quoting the value is redacted where the host repeats it.
    publish_event(&bus, "state:ask", json!({"name": "token", "fail": true})).await;
    let s = wait_status(&plugins, "hook", |s| s.failed == 1).await;
    let shown = format!("{s:?}");
    assert!(!shown.contains("tok-3f9a7c"), "{shown}");
    assert_eq!(s.last_error.as_deref(), Some("leaking [redacted:token]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_fails_the_load_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_bus, plugins) = setup();
    let err = plugins
        .load(
            Actor::Operator,
            secret_guest("hook", &dir.path().join("absent")),
            &wasm("test-guest"),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("plugin `hook`"), "{err}");
    assert!(err.contains("secret `token`: cannot read"), "{err}");
    assert!(plugins.status("hook").is_none());
    // A bad source is the manifest's error.
    let e = Manifest::parse(
        "name = \"x\"\nversion = \"1\"\nworld = \"subscriber\"\n[secrets]\ntoken = { file = \"rel/path\" }\n",
        "x.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("secrets.token") && e.contains("absolute"), "{e}");
}
