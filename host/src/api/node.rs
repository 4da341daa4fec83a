//! `GET /v1/node`: this node at a glance — name, version, uptime, the
//! process's resident memory and CPU, the machine's load, memory and disk,
//! and the `ComponentHealth` of the bus, the runtime and the stores, as the
//! periodic health report computes them (read now, not cached, by a
//! [`Reporter`] made once with the gateway's state).

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::auth::{Need, Principal};
use super::error::ApiError;
use super::ApiState;
use crate::bus::Bus;
use crate::emitter::Stores;
use crate::health::node::{node_health, read_figures, CpuSampler, Thresholds};
use crate::health::{ComponentReport, Reporter, StoreTrackers};
use crate::runtime::Plugins;

/// When the node started and its CPU sampler (each answer gives the CPU
/// used since the previous one).
#[derive(Debug)]
pub struct NodeClock {
    started: DateTime<Utc>,
    cpu: Mutex<CpuSampler>,
}

impl NodeClock {
    /// A clock started now.
    pub fn new() -> NodeClock {
        NodeClock {
            started: Utc::now(),
            cpu: Mutex::new(CpuSampler::new()),
        }
    }
}

impl Default for NodeClock {
    fn default() -> Self {
        NodeClock::new()
    }
}

/// The reporter `GET /v1/node` reads from, made once with the gateway's
/// state: the `ComponentHealth` of the bus, the plugin runtime and the
/// stores, and the disk usage of the stores' data directory.
pub(crate) fn reporter(bus: &Bus, plugins: &Arc<Plugins>, stores: &Arc<Stores>) -> Reporter {
    Reporter {
        stores: Arc::clone(stores) as Arc<dyn StoreTrackers>,
        bus: bus.clone(),
        components: vec![Arc::clone(plugins) as Arc<dyn ComponentReport>],
        disk_path: stores.data_dir().to_owned(),
    }
}

/// `GET /v1/node` → `{"node", "version", "started_at", "uptime_secs",
/// "pid", "rss_bytes", "cpu_percent", "cpus", "load_avg",
/// "memory_used_fraction", "disk_used_fraction", "status", "components":
/// [{"component", "status", "details"}]}`. `cpu_percent` is of one core,
/// since the previous request (`null` on the first).
pub async fn node(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    state.require(&who, &Need::Read, "the node")?;
    let reporter = &state.reporter;
    let figures = read_figures(&reporter.disk_path).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the node's figures: {e}"),
        )
    })?;
    let health = node_health(state.bus.node(), &figures, &Thresholds::default());
    let components: Vec<Value> = reporter
        .components()
        .into_iter()
        .map(|(component, status, details)| {
            json!({ "component": component, "status": status, "details": details })
        })
        .collect();
    let now = Utc::now();
    Ok(Json(json!({
        "node": state.bus.node(),
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": state.clock.started,
        "uptime_secs": (now - state.clock.started).num_seconds(),
        "pid": std::process::id(),
        "rss_bytes": figures.process_rss_bytes,
        "cpu_percent": state.clock.cpu.lock().sample(),
        "cpus": figures.cpus,
        "load_avg": figures.load_avg,
        "memory_used_fraction": figures.memory_used_fraction,
        "disk_used_fraction": figures.disk_used_fraction,
        "status": health.status,
        "components": components,
    })))
}
