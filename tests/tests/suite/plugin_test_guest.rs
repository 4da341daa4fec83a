//! The plugin runtime, exercised with the real `test-guest` component: each
//! test picks the guest's behaviour through its config `mode`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use exesdb_host::bus::Channel;
use exesdb_host::messages::audit::AccessLog;
use exesdb_host::messages::diagnostics::DebugTrace;
use exesdb_host::messages::lifecycle::{ProcessEvent, ProcessLifecycle};
use exesdb_host::messages::security::AccessViolation;
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Actor, PluginError, PluginRunState, World};
use serde_json::json;

/// The test guest's manifest with `mode`, subscribed to `events`/`>`.
fn guest(
    name: &str,
    mode: &str,
    edit: impl FnOnce(&mut toml::Table),
) -> exesdb_host::runtime::Manifest {
    manifest("test-guest", name, |t| {
        t["config"]["mode"] = mode.into();
        edit(t);
    })
}

fn limits(t: &mut toml::Table, memory_mb: i64, call_timeout_ms: i64) {
    let mut l = toml::Table::new();
    l.insert("memory_mb".into(), memory_mb.into());
    l.insert("call_timeout_ms".into(), call_timeout_ms.into());
    t.insert("limits".into(), l.into());
}

async fn wait_for_lifecycle(
    sub: &exesdb_host::bus::Subscriber,
    event: ProcessEvent,
) -> ProcessLifecycle {
    let env = next_where(sub, |e| {
        e.decode::<ProcessLifecycle>()
            .is_ok_and(|p| p.event == event)
    })
    .await;
    env.decode().unwrap()
}

/// Every field of `env` as the echo reports the guest received it.
fn assert_echoed(echo: &Envelope, env: &Envelope) {
    let p = echo.payload();
    let what = format!("{} -> {p}", env.id);
    assert_eq!(p["id"], env.id.to_string(), "{what}");
    assert_eq!(p["channel"], env.channel.to_string(), "{what}");
    assert_eq!(p["topic"], env.topic, "{what}");
    assert_eq!(p["kind"], env.kind, "{what}");
    assert_eq!(p["timestamp_ms"], env.timestamp_ms(), "{what}");
    assert_eq!(p["node"], env.node, "{what}");
    assert_eq!(
        p["correlation_id"].as_str(),
        env.correlation_id.as_deref(),
        "{what}"
    );
    assert_eq!(
        p["causation_id"].as_str(),
        env.causation_id.as_deref(),
        "{what}"
    );
    assert_eq!(p["schema_version"], env.schema_version, "{what}");
    assert_eq!(p["payload"], env.payload_text(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_a_message_reaches_the_guest_singly_and_in_batches() {
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    plugins
        .load(
            Actor::Operator,
            guest("fields", "echo", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();
    // Mixed optional ids, empty and non-ASCII strings, a long payload: the
    // first arrives alone (on-message), the burst through on-batch.
    let make = |n: usize| {
        let mut env = Envelope::new(
            Channel::Events,
            format!("store_ü:stream-{n}"),
            "custom.fields",
            json!({"n": n, "text": "ß→✓".repeat(n % 7), "pad": "x".repeat(n * 13)}),
            bus.node(),
        );
        if n % 2 == 1 {
            env = env.with_correlation_id(format!("corr-{n}"));
        }
        if n % 3 == 1 {
            env = env.with_causation_id("");
        }
        Arc::new(env)
    };
    let first = make(0);
    bus.broadcast(Arc::clone(&first)).await.unwrap();
    let echo = next(&echoes).await;
    assert_eq!(echo.payload()["batch"], false);
    assert_echoed(&echo, &first);

    let burst: Vec<_> = (1..=120).map(make).collect();
    for env in &burst {
        bus.broadcast(Arc::clone(env)).await.unwrap();
    }
    let mut batched = 0;
    for env in &burst {
        let echo = next(&echoes).await;
        batched += usize::from(echo.payload()["batch"] == true);
        assert_echoed(&echo, env);
    }
    assert!(batched > 0, "some messages arrived through on-batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_receives_singly_and_in_batches_and_publishes_within_its_grant() {
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let info = plugins
        .load(
            Actor::Operator,
            guest("echo", "echo", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();
    assert_eq!(
        (info.world, info.state),
        (World::Subscriber, PluginRunState::Running)
    );

    let first = publish_event(&bus, "store:orders", json!({"n": 0})).await;
    let e = next(&echoes).await;
    assert_eq!(e.topic, "echo:echo");
    assert_eq!(e.kind, "custom.echo");
    assert_eq!(e.payload()["id"], first.id.to_string());
    assert_eq!(e.payload()["topic"], "store:orders");

    // A burst lands in the inbox faster than one call: it is handed over in batches.
    let mut ids = Vec::new();
    for n in 1..=200 {
        ids.push(
            publish_event(&bus, "store:orders", json!({"n": n}))
                .await
                .id
                .to_string(),
        );
    }
    let mut got = Vec::new();
    let mut batched = 0;
    while got.len() < ids.len() {
        let e = next(&echoes).await;
        batched += usize::from(e.payload()["batch"] == true);
        got.push(e.payload()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, ids, "every message, in order");
    assert!(batched > 0, "some messages arrived through on-batch");
    let status = wait_status(&plugins, "echo", |s| s.delivered + s.failed == 201).await;
    assert_eq!(status.failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_outside_the_grants_are_refused_and_reported() {
    let (bus, plugins) = setup();
    let reports = watch(&bus, Channel::Diagnostics, "echo:>");
    let violations = watch(&bus, Channel::Security, "access_violation:>");
    let audit = watch(&bus, Channel::Audit, "audit:access_log:>");
    plugins
        .load(
            Actor::Operator,
            guest("nosy", "forbidden", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();
    publish_event(&bus, "store:x", json!({})).await;

    let r = next(&reports).await;
    assert_eq!(r.kind, "custom.grant_check");
    let publish = r.payload()["publish"].as_str().unwrap();
    let subscribe = r.payload()["subscribe"].as_str().unwrap();
    assert!(
        publish.starts_with("denied") && publish.contains("security"),
        "{publish}"
    );
    assert!(
        subscribe.starts_with("denied") && subscribe.contains("audit"),
        "{subscribe}"
    );

    let mut seen = Vec::new();
    for _ in 0..2 {
        let v: AccessViolation = next(&violations).await.decode().unwrap();
        assert_eq!(v.user_id, "nosy");
        assert_eq!(v.violation_type, "grant_exceeded");
        seen.push((v.action, v.resource));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("publish".to_owned(), "security:forbidden:x".to_owned()),
            ("subscribe".to_owned(), "audit:>".to_owned())
        ]
    );
    for _ in 0..2 {
        let a: AccessLog = next(&audit).await.decode().unwrap();
        assert_eq!(a.user_id, "nosy");
        assert!(!a.success);
    }
    // The refused subscription was not made.
    let sub = plugins.status("nosy").unwrap().subscriber.unwrap();
    let stats = bus.stats_of(sub).unwrap();
    assert!(stats
        .subscriptions
        .iter()
        .all(|s| s.channel != Channel::Audit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_wasm_wrong_world_and_failing_init_are_clear_errors() {
    let (_bus, plugins) = setup();
    let err = plugins
        .load(
            Actor::Operator,
            guest("junk", "noop", |_| {}),
            b"\0asm not really",
        )
        .unwrap_err();
    assert!(
        matches!(err, PluginError::Malformed { ref plugin, .. } if plugin == "junk"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("plugin `junk`: malformed component"),
        "{err}"
    );

    let err = plugins
        .load(
            Actor::Operator,
            guest("formatter-as-subscriber", "noop", |_| {}),
            &wasm("json-log-formatter"),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PluginError::WrongWorld { .. }), "{text}");
    assert!(
        text.contains("exesdb:plugin/handler@0.2.0")
            && text.contains("exesdb:plugin/formatter@0.2.0"),
        "{text}"
    );

    let err = plugins
        .load(
            Actor::Operator,
            guest("fails", "init-fail", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap_err();
    assert!(
        matches!(err, PluginError::Init { ref message, .. } if message.contains("init-fail mode")),
        "{err}"
    );
    assert!(plugins.list().is_empty(), "nothing is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_with_a_bad_plugin_still_loads_the_good_ones() {
    let (_bus, plugins) = setup();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.wasm"), wasm("test-guest")).unwrap();
    std::fs::write(
        dir.path().join("good.toml"),
        "name = \"good\"\nversion = \"1\"\nworld = \"subscriber\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "name = \"bad\"\nversion = \"1\"\nworld = \"subscriber\"\ncolour = 1\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.wasm"), b"garbage").unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        "name = \"broken\"\nversion = \"1\"\nworld = \"subscriber\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("missing.toml"),
        "name = \"missing\"\nversion = \"1\"\nworld = \"subscriber\"\n",
    )
    .unwrap();
    let results = plugins.load_dir(Actor::Operator, dir.path());
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("bad.toml") && e.contains("colour")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`broken`") && e.contains("malformed")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`missing`") && e.contains("missing.wasm")),
        "{errors:#?}"
    );
    let names: Vec<String> = plugins.list().into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["good"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_is_interrupted_within_its_budget_and_others_keep_receiving() {
    let (bus, plugins) = setup();
    let life = watch(&bus, Channel::Lifecycle, "process_lifecycle:looper");
    let echoes = watch(&bus, Channel::Diagnostics, "echo:bystander");
    plugins
        .load(
            Actor::Operator,
            guest("looper", "loop", |t| limits(t, 64, 100)),
            &wasm("test-guest"),
        )
        .unwrap();
    plugins
        .load(
            Actor::Operator,
            guest("bystander", "echo", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();
    wait_for_lifecycle(&life, ProcessEvent::Started).await;

    let started = Instant::now();
    publish_event(&bus, "s:x", json!({"n": 1})).await;
    let crash = wait_for_lifecycle(&life, ProcessEvent::Crashed).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "interrupted after {took:?}"
    );
    let reason = crash.reason.unwrap();
    assert!(
        reason.contains("looper") && reason.contains("100 ms call budget"),
        "{reason}"
    );
    assert_eq!(
        next(&echoes).await.payload()["topic"],
        "s:x",
        "the bystander got the message"
    );
    let restarted = wait_for_lifecycle(&life, ProcessEvent::Restarted).await;
    assert_eq!(restarted.restart_count, 1);
    let status = wait_status(&plugins, "looper", |s| s.restarts == 1).await;
    assert_eq!((status.traps, status.failed), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocating_plugin_traps_at_its_memory_cap_and_is_replaced() {
    let (bus, plugins) = setup();
    let life = watch(&bus, Channel::Lifecycle, "process_lifecycle:hog");
    let traces = watch(&bus, Channel::Diagnostics, "debug_trace:hog");
    plugins
        .load(
            Actor::Operator,
            guest("hog", "alloc", |t| limits(t, 16, 5000)),
            &wasm("test-guest"),
        )
        .unwrap();
    publish_event(&bus, "s:x", json!({})).await;
    let crash = wait_for_lifecycle(&life, ProcessEvent::Crashed).await;
    assert!(
        crash.reason.as_deref().unwrap_or("").contains("hog"),
        "{crash:?}"
    );
    let trace: DebugTrace = next(&traces).await.decode().unwrap();
    assert_eq!(trace.component, "hog");
    wait_for_lifecycle(&life, ProcessEvent::Restarted).await;
    assert_eq!(
        plugins.status("hog").unwrap().state,
        PluginRunState::Running
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_plugin_is_replaced_and_handles_later_messages() {
    let (bus, plugins) = setup();
    let life = watch(&bus, Channel::Lifecycle, "process_lifecycle:fragile");
    let echoes = watch(&bus, Channel::Diagnostics, "echo:fragile");
    let others = watch(&bus, Channel::Diagnostics, "echo:steady");
    plugins
        .load(
            Actor::Operator,
            guest("fragile", "trap", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();
    plugins
        .load(
            Actor::Operator,
            guest("steady", "echo", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();

    publish_event(&bus, "s:x", json!({"say": "boom"})).await;
    let crash = wait_for_lifecycle(&life, ProcessEvent::Crashed).await;
    assert!(crash.reason.unwrap().contains("trapped in on-message"));
    wait_for_lifecycle(&life, ProcessEvent::Restarted).await;
    let after = publish_event(&bus, "s:x", json!({"say": "fine"})).await;
    assert_eq!(
        next(&echoes).await.payload()["id"],
        after.id.to_string(),
        "the fresh instance handles it"
    );
    assert_eq!(next(&others).await.payload()["topic"], "s:x");
    assert_eq!(
        next(&others).await.payload()["id"],
        after.id.to_string(),
        "the other plugin got both"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_count_as_failures_without_restarts() {
    let (bus, plugins) = setup();
    plugins
        .load(
            Actor::Operator,
            guest("picky", "fail-every", |t| {
                t["config"]
                    .as_table_mut()
                    .unwrap()
                    .insert("n".into(), 3.into());
            }),
            &wasm("test-guest"),
        )
        .unwrap();
    for n in 0..9 {
        publish_event(&bus, "s:x", json!({"n": n})).await;
    }
    let s = wait_status(&plugins, "picky", |s| s.delivered + s.failed == 9).await;
    assert_eq!((s.delivered, s.failed, s.traps, s.restarts), (6, 3, 0, 0));
    assert!(s.last_error.unwrap().contains("fail-every"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unload_drains_the_inbox_and_stops_the_plugin() {
    let (bus, plugins) = setup();
    let life = watch(&bus, Channel::Lifecycle, "process_lifecycle:leaving");
    let echoes = watch(&bus, Channel::Diagnostics, "echo:leaving");
    plugins
        .load(
            Actor::Operator,
            guest("leaving", "echo", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();
    for n in 0..50 {
        publish_event(&bus, "s:x", json!({"n": n})).await;
    }
    plugins.unload(Actor::Operator, "leaving").await.unwrap();
    let mut count = 0;
    while echoes.try_recv().is_some() {
        count += 1;
    }
    assert_eq!(count, 50, "messages queued before unload were handled");
    wait_for_lifecycle(&life, ProcessEvent::Stopped).await;
    assert!(plugins.status("leaving").is_none());
    let d = bus
        .broadcast(exesdb_host::messages::Envelope::new(
            Channel::Events,
            "s:x",
            "custom.e",
            json!({}),
            "n",
        ))
        .await;
    assert_eq!(
        d.unwrap().delivered,
        0,
        "the unloaded plugin no longer subscribes to events"
    );
    assert!(matches!(
        plugins.unload(Actor::Operator, "leaving").await,
        Err(PluginError::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_names_are_refused() {
    let (_bus, plugins) = setup();
    plugins
        .load(
            Actor::Operator,
            guest("twice", "noop", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();
    let err = plugins
        .load(
            Actor::Operator,
            guest("twice", "noop", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap_err();
    assert!(matches!(err, PluginError::Duplicate { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_granted_by_default_and_grants_are_exact() {
    // The variable the grant lists, set in a process of the test's own (no
    // `set_var` while other tests run, nor an `EXESDB_*` left behind for them).
    if ran_alone(&[("EXESDB_PROBE_VISIBLE", "1")]) {
        return;
    }
    let (bus, plugins) = setup();
    let reports = watch(&bus, Channel::Diagnostics, "echo:>");
    let granted = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(granted.path().join("in.txt"), "inside").unwrap();
    std::fs::write(outside.path().join("out.txt"), "outside").unwrap();
    let inside = granted.path().join("in.txt").display().to_string();
    let out = outside.path().join("out.txt").display().to_string();
    let paths = toml::Value::Array(vec![inside.clone().into(), out.clone().into()]);

    let set_paths = |t: &mut toml::Table| {
        t["config"]
            .as_table_mut()
            .unwrap()
            .insert("paths".into(), paths.clone());
    };
    plugins
        .load(
            Actor::Operator,
            guest("bare", "probe", set_paths),
            &wasm("test-guest"),
        )
        .unwrap();
    let grant_dir = granted.path().display().to_string();
    plugins
        .load(
            Actor::Operator,
            guest("granted", "probe", |t| {
                set_paths(t);
                let mut w = toml::Table::new();
                w.insert(
                    "read_only_dirs".into(),
                    toml::Value::Array(vec![grant_dir.clone().into()]),
                );
                w.insert(
                    "env".into(),
                    toml::Value::Array(vec!["EXESDB_PROBE_VISIBLE".into()]),
                );
                t.insert("wasi".into(), w.into());
            }),
            &wasm("test-guest"),
        )
        .unwrap();
    publish_event(&bus, "s:x", json!({})).await;
    for _ in 0..2 {
        let r = next(&reports).await;
        let p = r.payload();
        if r.topic == "echo:bare" {
            assert_eq!(p["env"], json!([]), "no environment by default");
            assert!(
                p["files"][&inside].as_str().unwrap().starts_with("err:"),
                "{p}"
            );
            assert!(
                p["files"][&out].as_str().unwrap().starts_with("err:"),
                "{p}"
            );
        } else {
            assert_eq!(r.topic, "echo:granted");
            assert_eq!(
                p["env"],
                json!(["EXESDB_PROBE_VISIBLE"]),
                "only the listed variable"
            );
            assert_eq!(p["files"][&inside], "ok:inside", "{p}");
            assert!(
                p["files"][&out].as_str().unwrap().starts_with("err:"),
                "outside the grant: {p}"
            );
        }
        assert_eq!(p["stdin"], "ok:0", "stdin is empty, not inherited");
    }
}
