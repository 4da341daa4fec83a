//! Embedding exesdb-host as a library: start a host, subscribe a native
//! handler, publish through the `PubSubIntegration` helpers, shut down.
//!
//! Run it with `cargo run -p exesdb-examples --bin embed`.

use std::time::Duration;

use exesdb_host::bus::Channel;
use exesdb_host::config::Config;
use exesdb_host::host::Host;
use exesdb_host::messages::alerts::{AlertCategory, Severity};
use exesdb_host::messages::health::{ComponentHealth, HealthStatus};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The embedded default plus EXESDB_* environment overrides.
    let host = Host::start(Config::load(None)?).await?;

    // A native handler: listens to component health and alerts.
    let watcher = host.bus().subscriber("embed-watcher")?;
    watcher.subscribe(Channel::Health, "component_health:*")?;
    watcher.subscribe(Channel::Alerts, "system_alert:>")?;
    let handler = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let Some(msg) = watcher.recv().await else {
                break;
            };
            if let Ok(h) = msg.decode::<ComponentHealth>() {
                println!("handler: {} is {}", h.component, h.status);
            } else {
                println!(
                    "handler: {} on {} ({})",
                    msg.kind,
                    msg.topic,
                    msg.payload()["title"]
                );
            }
            seen.push(msg.kind.clone());
        }
        seen
    });

    let helpers = host.integration();
    helpers
        .broadcast_health_update(
            "store_worker",
            HealthStatus::Healthy,
            serde_json::Map::new(),
        )
        .await?;
    helpers
        .raise_alert(
            AlertCategory::System,
            Severity::Critical,
            "Node down",
            serde_json::Map::new(),
        )
        .await?;

    let seen = tokio::time::timeout(Duration::from_secs(5), handler).await??;
    println!("received: {}", seen.join(", "));
    host.shutdown().await?;
    println!("shut down cleanly");
    Ok(())
}
