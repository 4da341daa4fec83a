//! The behaviour every threshold-alerter plugin shares, whatever its
//! language: the Python and the JavaScript one both run these tests.

use std::time::Duration;

use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::integration::Integration;
use exesdb_host::messages::alerts::{AlertCategory, Severity, SystemAlert};
use exesdb_host::messages::metrics::ThroughputMetric;
use exesdb_host::runtime::{Actor, PluginError, Plugins};

/// Plugins sharing the compiled-component cache of the target directory.
pub fn plugins(bus: &Bus) -> Plugins {
    cached_plugins(bus)
}

fn load(plugins: &Plugins, name: &str, threshold: i64, severity: &str) -> Result<(), PluginError> {
    let m = manifest(name, name, |t| {
        let c = t["config"].as_table_mut().unwrap();
        c.insert("threshold".into(), threshold.into());
        c.insert("severity".into(), severity.into());
    });
    plugins.load(Actor::Operator, m, &wasm(name)).map(drop)
}

async fn throughput(bus: &Bus, rate: f64) -> std::sync::Arc<exesdb_host::messages::Envelope> {
    Integration::new(bus.clone())
        .broadcast_throughput(
            "orders",
            ThroughputMetric {
                operation: "append".into(),
                count: rate as u64,
                duration_ms: 1000,
                rate_per_sec: rate,
            },
        )
        .await
        .unwrap()
}

/// Alerts once per crossing of the threshold, with every field right.
pub async fn alerts_once_per_crossing_of_the_threshold(name: &str) {
    let bus = Bus::new(BusConfig::default());
    let plugins = plugins(&bus);
    let alerts = watch(&bus, Channel::Alerts, "system_alert:>");
    load(&plugins, name, 500, "error").unwrap();

    throughput(&bus, 100.0).await;
    let high = throughput(&bus, 800.0).await;
    let env = next(&alerts).await;
    assert_eq!(env.topic, "system_alert:performance");
    assert_eq!(env.causation_id.as_deref(), Some(&*high.id.to_string()));
    let alert: SystemAlert = env.decode().unwrap();
    assert_eq!(alert.alert_id, format!("{name}-{}", high.id));
    assert_eq!(
        (alert.severity, alert.category),
        (Severity::Error, AlertCategory::Performance)
    );
    assert_eq!(alert.title, "Throughput of append above 500/s");
    assert_eq!(
        alert.description,
        "append on store_metrics:orders runs at 800/s"
    );
    assert_eq!(alert.source, name);
    assert!(alert.requires_ack);
    assert_eq!(alert.metadata["rate_per_sec"], 800.0);
    assert_eq!(alert.metadata["threshold"], 500.0);

    // Still above: no second alert; back under, then above again: a new one.
    throughput(&bus, 900.0).await;
    let s = wait_status(&plugins, name, |s| s.delivered == 3).await;
    assert_eq!(s.failed, 0);
    quiet(&alerts, Duration::from_millis(200)).await;
    throughput(&bus, 10.0).await;
    let again = throughput(&bus, 700.0).await;
    let alert: SystemAlert = next(&alerts).await.decode().unwrap();
    assert_eq!(alert.alert_id, format!("{name}-{}", again.id));
}

/// Configuration is checked at `init` and changes the alerts.
pub async fn configuration_is_checked_at_init(name: &str) {
    let bus = Bus::new(BusConfig::default());
    let plugins = plugins(&bus);
    let err = load(&plugins, name, 500, "loud").unwrap_err();
    assert!(matches!(err, PluginError::Init { .. }), "{err}");
    assert!(
        err.to_string().contains("severity") && err.to_string().contains("loud"),
        "{err}"
    );
    let err = load(&plugins, name, -1, "warning").unwrap_err();
    assert!(err.to_string().contains("threshold"), "{err}");
    load(&plugins, name, 1, "info").unwrap();
    let alerts = watch(&bus, Channel::Alerts, "system_alert:>");
    throughput(&bus, 2.0).await;
    let alert: SystemAlert = next(&alerts).await.decode().unwrap();
    assert_eq!(alert.severity, Severity::Info);
    assert!(!alert.requires_ack);
}
