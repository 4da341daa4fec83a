//! Black-box tests of the real `health-console` plugin: it raises exactly one
//! `SystemAlert` when a component (or node) turns unhealthy, counts every
//! message it handles, and honours (and checks) its `alert_severity` config.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use exesdb_host::bus::{Bus, BusError, Channel};
use exesdb_host::integration::Integration;
use exesdb_host::messages::alerts::{AlertCategory, Severity, SystemAlert};
use exesdb_host::messages::health::{ComponentHealth, HealthStatus, NodeHealth};
use exesdb_host::messages::metrics::ThroughputMetric;
use exesdb_host::messages::{Envelope, MessageError};
use exesdb_host::runtime::{Actor, PluginError, PluginRunState, Plugins, World};
use serde_json::{json, Map};

const NAME: &str = "health-console";

/// Loads the real component with its own manifest, `edit`ed.
fn load(plugins: &Plugins, edit: impl FnOnce(&mut toml::Table)) {
    let manifest = common::manifest(NAME, NAME, edit);
    plugins
        .load(Actor::Operator, manifest, &common::wasm(NAME))
        .expect("health-console loads");
}

/// Sets `[config] alert_severity`.
fn set_severity(table: &mut toml::Table, value: toml::Value) {
    table
        .get_mut("config")
        .and_then(toml::Value::as_table_mut)
        .expect("the manifest has a [config] table")
        .insert("alert_severity".into(), value);
}

/// The alert the plugin must raise for `component` turning unhealthy in `cause`.
fn expected_alert(component: &str, cause: &Envelope, severity: Severity) -> SystemAlert {
    let mut metadata = Map::new();
    metadata.insert("message_id".into(), json!(cause.id.to_string()));
    SystemAlert {
        alert_id: format!("{component}-unhealthy-{}", cause.timestamp_ms()),
        severity,
        category: AlertCategory::System,
        title: format!("Component {component} unhealthy"),
        description: format!("{component} reported status unhealthy"),
        source: NAME.to_owned(),
        metadata,
        requires_ack: true,
    }
}

/// Checks an alert envelope: routing, provenance and the whole payload.
fn check_alert(bus: &Bus, alert: &Envelope, component: &str, cause: &Envelope, severity: Severity) {
    assert_eq!(alert.channel, Channel::Alerts);
    assert_eq!(alert.topic, format!("system_alert:{component}"));
    assert_eq!(alert.kind, "SystemAlert");
    assert_eq!(alert.node, bus.node());
    assert_eq!(alert.causation_id, Some(cause.id.to_string()));
    assert_eq!(alert.correlation_id, cause.correlation_id);
    let payload: SystemAlert = alert.decode().expect("a valid SystemAlert");
    assert_eq!(payload, expected_alert(component, cause, severity));
}

async fn health(bus: &Bus, component: &str, status: HealthStatus) -> Arc<Envelope> {
    Integration::new(bus.clone())
        .broadcast_health_update(component, status, Map::new())
        .await
        .expect("published")
}

fn node_health(node: &str, status: HealthStatus) -> NodeHealth {
    NodeHealth {
        node: node.to_owned(),
        status,
        checks: Map::new(),
        load_avg: 3.5,
        memory_usage: 0.91,
        disk_usage: 0.97,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_turning_unhealthy_raises_one_alert_per_transition() {
    let (bus, plugins) = common::setup();
    load(&plugins, |_| {});
    let alerts = common::watch(&bus, Channel::Alerts, "system_alert:>");

    // First report, already unhealthy: one alert, caused by that report.
    let first = health(&bus, "store_worker", HealthStatus::Unhealthy).await;
    let alert = common::next(&alerts).await;
    check_alert(&bus, &alert, "store_worker", &first, Severity::Error);

    // Still unhealthy: no second alert (the report was handled, though).
    health(&bus, "store_worker", HealthStatus::Unhealthy).await;
    common::wait_delivered(&plugins, NAME, 2).await;
    common::quiet(&alerts, Duration::from_millis(300)).await;

    // Recovery raises nothing; turning unhealthy again raises a new alert.
    health(&bus, "store_worker", HealthStatus::Healthy).await;
    common::wait_delivered(&plugins, NAME, 3).await;
    common::quiet(&alerts, Duration::from_millis(300)).await;
    let again = health(&bus, "store_worker", HealthStatus::Unhealthy).await;
    let alert = common::next(&alerts).await;
    check_alert(&bus, &alert, "store_worker", &again, Severity::Error);
    assert_ne!(
        alert.decode::<SystemAlert>().unwrap().alert_id,
        expected_alert("store_worker", &first, Severity::Error).alert_id,
        "a new transition is a new alert"
    );

    // Degraded -> unhealthy is a transition too.
    health(&bus, "store_worker", HealthStatus::Degraded).await;
    let third = health(&bus, "store_worker", HealthStatus::Unhealthy).await;
    let alert = common::next(&alerts).await;
    check_alert(&bus, &alert, "store_worker", &third, Severity::Error);

    let info = common::wait_delivered(&plugins, NAME, 6).await;
    common::quiet(&alerts, Duration::from_millis(300)).await;
    assert_eq!((info.delivered, info.failed), (6, 0), "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_are_tracked_separately_and_the_correlation_id_is_carried() {
    let (bus, plugins) = common::setup();
    load(&plugins, |_| {});
    let alerts = common::watch(&bus, Channel::Alerts, "system_alert:>");

    health(&bus, "store_a", HealthStatus::Unhealthy).await;
    let a = common::next(&alerts).await;
    assert_eq!(a.topic, "system_alert:store_a");

    // store_b is a different component: its own first unhealthy report alerts,
    // and the report's correlation id is carried over to the alert.
    let payload = ComponentHealth {
        component: "store_b".into(),
        status: HealthStatus::Unhealthy,
        details: Map::new(),
        last_check: "2025-07-27T11:30:00.000Z".into(),
    };
    let cause = Arc::new(
        Envelope::typed("component_health:store_b", &payload, bus.node())
            .unwrap()
            .with_correlation_id("corr-42"),
    );
    bus.broadcast(Arc::clone(&cause)).await.unwrap();
    let b = common::next(&alerts).await;
    check_alert(&bus, &b, "store_b", &cause, Severity::Error);
    assert_eq!(b.correlation_id.as_deref(), Some("corr-42"));

    // store_a is still unhealthy: nothing more.
    health(&bus, "store_a", HealthStatus::Unhealthy).await;
    common::wait_delivered(&plugins, NAME, 3).await;
    common::quiet(&alerts, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_turning_unhealthy_raises_an_alert() {
    let (bus, plugins) = common::setup();
    load(&plugins, |_| {});
    let alerts = common::watch(&bus, Channel::Alerts, "system_alert:>");
    let pubsub = Integration::new(bus.clone());

    // Healthy first: no alert.
    pubsub
        .broadcast_node_health(node_health("node-2", HealthStatus::Healthy))
        .await
        .unwrap();
    common::wait_delivered(&plugins, NAME, 1).await;
    common::quiet(&alerts, Duration::from_millis(300)).await;

    let cause = pubsub
        .broadcast_node_health(node_health("node-2", HealthStatus::Unhealthy))
        .await
        .unwrap();
    let alert = common::next(&alerts).await;
    check_alert(&bus, &alert, "node-2", &cause, Severity::Error);

    // Still unhealthy: nothing more.
    pubsub
        .broadcast_node_health(node_health("node-2", HealthStatus::Unhealthy))
        .await
        .unwrap();
    common::wait_delivered(&plugins, NAME, 3).await;
    common::quiet(&alerts, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handled_message_is_counted_and_none_fails() {
    let (bus, plugins) = common::setup();
    load(&plugins, |_| {});
    let alerts = common::watch(&bus, Channel::Alerts, "system_alert:>");
    let info = plugins.status(NAME).expect("loaded");
    assert_eq!(info.name, NAME);
    assert_eq!(info.version, "0.1.0");
    assert_eq!(info.world, World::Subscriber);
    assert_eq!(info.state, PluginRunState::Running);
    assert_eq!((info.delivered, info.failed, info.traps), (0, 0, 0));
    assert!(info.subscriber.is_some());
    assert!(plugins.status("no-such-plugin").is_none());

    // A malformed payload of a known kind never reaches the plugin: the bus
    // rejects it on publish.
    let bad = Envelope::new(
        Channel::Health,
        "component_health:store_worker",
        "ComponentHealth",
        json!({ "component": "store_worker", "status": "on_fire" }),
        bus.node(),
    );
    let err = bus.broadcast(bad).await.unwrap_err();
    assert!(
        matches!(err, BusError::Message(MessageError::InvalidPayload { ref kind, .. }) if kind == "ComponentHealth"),
        "{err}"
    );

    // Seven valid messages: health reports, throughput metrics, and kinds the
    // plugin ignores (ignored messages are acknowledged, i.e. delivered).
    let pubsub = Integration::new(bus.clone());
    for status in [
        HealthStatus::Healthy,
        HealthStatus::Degraded,
        HealthStatus::Healthy,
    ] {
        pubsub
            .broadcast_health_update("store_worker", status, Map::new())
            .await
            .unwrap();
    }
    for count in [10, 20] {
        pubsub
            .broadcast_throughput(
                "s1",
                ThroughputMetric {
                    operation: "append".into(),
                    count,
                    duration_ms: 1000,
                    rate_per_sec: count as f64,
                },
            )
            .await
            .unwrap();
    }
    let custom = Envelope::new(
        Channel::Health,
        "component_health:custom_probe",
        "custom.probe",
        json!({ "anything": [1, 2, 3] }),
        bus.node(),
    );
    bus.broadcast(custom).await.unwrap();
    let custom_metric = Envelope::new(
        Channel::Metrics,
        "store_metrics:custom",
        "custom.metric",
        json!("not an object"),
        bus.node(),
    );
    bus.broadcast(custom_metric).await.unwrap();

    let info = common::wait_delivered(&plugins, NAME, 7).await;
    common::quiet(&alerts, Duration::from_millis(300)).await;
    let info_after = plugins.status(NAME).unwrap();
    assert_eq!(info_after, info, "nothing more was handled");
    assert_eq!(info.delivered, 7, "{info:?}");
    assert_eq!(info.failed, 0, "{info:?}");
    assert_eq!((info.traps, info.restarts), (0, 0), "{info:?}");
    assert_eq!(info.last_error, None);
    assert_eq!(info.state, PluginRunState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_unload_no_alert_is_raised() {
    let (bus, plugins) = common::setup();
    load(&plugins, |_| {});
    let alerts = common::watch(&bus, Channel::Alerts, "system_alert:>");
    plugins.unload(Actor::Operator, NAME).await.unwrap();
    assert!(plugins.status(NAME).is_none());
    assert!(plugins.list().is_empty());
    assert!(
        !bus.stats().iter().any(|s| s.name == NAME),
        "the plugin's subscriber is gone"
    );
    health(&bus, "store_worker", HealthStatus::Unhealthy).await;
    common::quiet(&alerts, Duration::from_millis(300)).await;
    let err = plugins.unload(Actor::Operator, NAME).await.unwrap_err();
    assert!(matches!(err, PluginError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_severity_comes_from_the_config() {
    let (bus, plugins) = common::setup();
    load(&plugins, |t| set_severity(t, "critical".into()));
    let alerts = common::watch(&bus, Channel::Alerts, "system_alert:>");

    let cause = health(&bus, "store_worker", HealthStatus::Unhealthy).await;
    let alert = common::next(&alerts).await;
    check_alert(&bus, &alert, "store_worker", &cause, Severity::Critical);
    assert_eq!(alert.payload()["severity"], "critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_alert_severity_fails_init_and_leaves_nothing_behind() {
    let (bus, plugins) = common::setup();

    let manifest = common::manifest(NAME, NAME, |t| set_severity(t, "severe".into()));
    let err = plugins
        .load(Actor::Operator, manifest, &common::wasm(NAME))
        .expect_err("an unknown severity is refused");
    match &err {
        PluginError::Init { plugin, message } => {
            assert_eq!(plugin, NAME);
            assert!(
                message.contains("alert_severity")
                    && message.contains("`severe`")
                    && message.contains("info, warning, error, critical"),
                "{message}"
            );
        }
        other => panic!("expected PluginError::Init, got {other:?}"),
    }
    assert_eq!(err.plugin(), Some(NAME));
    let text = err.to_string();
    assert!(
        text.contains("plugin `health-console`") && text.contains("init failed"),
        "{text}"
    );

    // A value of the wrong type is refused too, naming the key.
    let manifest = common::manifest(NAME, NAME, |t| set_severity(t, 5.into()));
    let err = plugins
        .load(Actor::Operator, manifest, &common::wasm(NAME))
        .unwrap_err();
    match &err {
        PluginError::Init { message, .. } => {
            assert!(message.contains("invalid config"), "{message}");
        }
        other => panic!("expected PluginError::Init, got {other:?}"),
    }

    // Nothing was left behind: no plugin, no subscriber; the name is free.
    assert!(plugins.status(NAME).is_none());
    assert!(plugins.list().is_empty());
    assert!(
        !bus.stats().iter().any(|s| s.name == NAME),
        "{:?}",
        bus.stats()
    );
    load(&plugins, |_| {});
    assert_eq!(plugins.status(NAME).unwrap().state, PluginRunState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_alert_fails_the_message_and_is_retried_on_the_next_report() {
    let (bus, plugins) = common::setup();
    // Only allowed to alert about `other`: alerts about store_worker are denied.
    load(&plugins, |t| {
        let publish = t
            .get_mut("publish")
            .and_then(toml::Value::as_array_mut)
            .expect("the manifest has [[publish]] grants");
        publish[0]
            .as_table_mut()
            .unwrap()
            .insert("pattern".into(), "system_alert:other".into());
    });
    let alerts = common::watch(&bus, Channel::Alerts, "system_alert:>");
    let violations = common::watch(&bus, Channel::Security, "access_violation:>");

    health(&bus, "store_worker", HealthStatus::Unhealthy).await;
    let v = common::next(&violations).await;
    assert_eq!(v.topic, format!("access_violation:{NAME}"));
    let violation: exesdb_host::messages::security::AccessViolation = v.decode().unwrap();
    assert_eq!(violation.user_id, NAME);
    assert_eq!(violation.action, "publish");
    assert_eq!(violation.resource, "alerts:system_alert:store_worker");

    // The message failed and the status was not remembered: the next
    // unhealthy report tries (and fails) to alert again.
    let info = wait_failed(&plugins, 1).await;
    assert_eq!(info.delivered, 0, "{info:?}");
    let last = info.last_error.expect("the failure is recorded");
    assert!(
        last.contains("denied") && last.contains("system_alert:store_worker"),
        "{last}"
    );
    health(&bus, "store_worker", HealthStatus::Unhealthy).await;
    common::next(&violations).await;
    let info = wait_failed(&plugins, 2).await;
    assert_eq!(
        (info.delivered, info.failed, info.traps),
        (0, 2, 0),
        "{info:?}"
    );

    // A granted topic still alerts.
    let cause = health(&bus, "other", HealthStatus::Unhealthy).await;
    let alert = common::next(&alerts).await;
    check_alert(&bus, &alert, "other", &cause, Severity::Error);
    common::quiet(&alerts, Duration::from_millis(300)).await;
}

/// Waits until plugin `NAME` has failed `n` messages.
async fn wait_failed(plugins: &Plugins, n: u64) -> exesdb_host::runtime::PluginInfo {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let info = plugins.status(NAME).unwrap();
        if info.failed >= n {
            return info;
        }
        assert!(tokio::time::Instant::now() < deadline, "{info:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
