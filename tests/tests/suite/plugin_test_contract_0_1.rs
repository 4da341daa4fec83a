//! Contract versions: `test-contract-0-1`, built against the old contract
//! `exesdb:plugin@0.1.0` (`wit/v0.1.0`), loads and runs unchanged on this
//! host, beside a plugin built against 0.2.0, and both report their
//! contract in `plugin status`.

use crate::common::*;
use exesdb_host::bus::Channel;
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Actor, Contract};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_built_against_0_1_0_loads_and_runs_beside_a_0_2_0_one() {
    let (bus, plugins) = setup();
    let echoes = watch(&bus, Channel::Diagnostics, "echo:>");
    let old = plugins
        .load(
            Actor::Operator,
            manifest("test-contract-0-1", "legacy", |t| {
                t.insert("config".into(), toml::toml! { greeting = "hi" }.into());
            }),
            &wasm("test-contract-0-1"),
        )
        .unwrap();
    assert_eq!(old.contract, Contract::V0_1);
    let new = plugins
        .load(
            Actor::Operator,
            manifest("test-guest", "current", |_| {}),
            &wasm("test-guest"),
        )
        .unwrap();
    assert_eq!(new.contract, Contract::V0_2);

    // Every host function of 0.1.0 works: config, plugin-name, publish
    // with options; the message arrives as it was sent.
    let mut env = Envelope::new(
        Channel::System,
        "contract_test:one",
        "custom.probe",
        serde_json::json!({"n": 1}),
        bus.node(),
    );
    env.correlation_id = Some("corr-7".into());
    let env = Arc::new(env);
    bus.broadcast(Arc::clone(&env)).await.unwrap();
    let echo = next_where(&echoes, |e| e.topic == "echo:legacy").await;
    let p = echo.payload();
    assert_eq!(p["id"], env.id.to_string(), "{p}");
    assert_eq!(p["kind"], "custom.probe", "{p}");
    assert_eq!(p["config"], r#"{"greeting":"hi"}"#, "{p}");
    assert_eq!(p["correlation_id"], "corr-7", "{p}");
    assert_eq!(echo.correlation_id.as_deref(), Some("corr-7"));
    assert_eq!(
        echo.causation_id.as_deref(),
        Some(env.id.to_string().as_str())
    );

    // Errors of the old contract are counted as failed deliveries.
    bus.broadcast(Arc::new(Envelope::new(
        Channel::System,
        "contract_test:two",
        "custom.probe",
        serde_json::json!({"please": "fail"}),
        bus.node(),
    )))
    .await
    .unwrap();
    let s = wait_status(&plugins, "legacy", |s| s.failed == 1).await;
    assert_eq!(s.delivered, 1, "{s:?}");
    assert_eq!(s.last_error.as_deref(), Some("fail requested"), "{s:?}");
    assert_eq!(plugins.status("current").unwrap().contract, Contract::V0_2);
}
