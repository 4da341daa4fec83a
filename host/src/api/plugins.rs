//! The gateway's plugin routes (under `/v1`), for `exesdb-host plugin …`
//! and operators' tools. JSON in and out; errors are `{"error": "…"}` with
//! a 4xx status. Reads need the `read` scope, changes `admin`.
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/v1/plugins` | list plugins (name, version, world, state, uptime, counts, restarts, last error) |
//! | GET | `/v1/plugins/{name}` | one plugin's status |
//! | POST | `/v1/plugins` `{"manifest": "/abs/x.toml"}` | load, or replace if loaded |
//! | POST | `/v1/plugins/upload` (multipart: `manifest`, `component`) | load or replace from uploaded files |
//! | POST | `/v1/plugins/{name}/reload` `{"manifest": …}` (optional) | reload from the given or the original manifest |
//! | DELETE | `/v1/plugins/{name}` | unload |
//! | GET | `/v1/health` | the default store's subscription health summary, and the plugins' outbound destinations' breakers |

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::runtime::{Actor, Manifest, PluginError, PluginInfo, Plugins};

/// Who the audit trail names for changes made through the API.
pub const ACTOR: &str = "admin-api";

/// A plugin's status as the API reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginStatus {
    /// The plugin's status.
    #[serde(flatten)]
    pub info: serde_json::Value,
    /// Seconds since it was (re)loaded.
    pub uptime_secs: i64,
}

fn status(info: PluginInfo) -> PluginStatus {
    let uptime_secs = (chrono::Utc::now() - info.loaded_at).num_seconds();
    PluginStatus {
        info: serde_json::to_value(info).unwrap_or_default(),
        uptime_secs,
    }
}

/// Body of load and reload requests.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// Path of the manifest (the component is found from it).
    pub manifest: Option<PathBuf>,
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        let code = match e {
            PluginError::NotFound { .. } => StatusCode::NOT_FOUND,
            PluginError::Duplicate { .. } => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(code, e.to_string())
    }
}

/// The API's routes over `plugins`. Every request is recorded as an
/// `AccessLog` on `audit` (method, path, outcome, duration).
pub fn router(plugins: Arc<Plugins>) -> Router {
    let bus = plugins.bus().clone();
    Router::new()
        .route("/plugins", get(list).post(load))
        .route("/plugins/upload", post(upload))
        .route("/plugins/{name}", get(one).delete(unload))
        .route("/plugins/{name}/reload", post(reload))
        .route("/health", get(health))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let bus = bus.clone();
                async move {
                    let method = req.method().to_string();
                    // The full path: this router is nested under `/v1`.
                    let path = req
                        .extensions()
                        .get::<axum::extract::OriginalUri>()
                        .map_or_else(|| req.uri().path().to_owned(), |u| u.path().to_owned());
                    let started = std::time::Instant::now();
                    let response = next.run(req).await;
                    let access = crate::messages::audit::AccessLog {
                        user_id: ACTOR.to_owned(),
                        resource_type: "admin_api".into(),
                        resource_id: path,
                        action: method,
                        success: response.status().is_success(),
                        duration_ms: u64::try_from(started.elapsed().as_millis())
                            .unwrap_or(u64::MAX),
                        source_ip: None,
                        user_agent: None,
                    };
                    let topic = crate::integration::topics::audit_access_log("admin_api");
                    if let Err(e) = bus.publish_typed_now(&topic, &access) {
                        tracing::warn!("AccessLog of an admin request not published: {e}");
                    }
                    response
                }
            },
        ))
        .with_state(plugins)
}

async fn list(State(p): State<Arc<Plugins>>) -> Json<Vec<PluginStatus>> {
    Json(p.list().into_iter().map(status).collect())
}

async fn one(
    State(p): State<Arc<Plugins>>,
    Path(name): Path<String>,
) -> Result<Json<PluginStatus>, ApiError> {
    p.status_or_unloaded(&name)
        .map(|i| Json(status(i)))
        .ok_or_else(|| PluginError::NotFound { plugin: name }.into())
}

async fn load(
    State(p): State<Arc<Plugins>>,
    Json(req): Json<LoadRequest>,
) -> Result<Json<PluginStatus>, ApiError> {
    let path = req
        .manifest
        .ok_or_else(|| ApiError::bad("manifest", "`manifest` (a path) is required"))?;
    Ok(Json(status(
        p.reload_file(Actor::Named(ACTOR), &path).await?,
    )))
}

/// `POST /v1/plugins/upload`: a `multipart/form-data` body with the parts
/// `manifest` (the TOML text) and `component` (the `.wasm` bytes); loads
/// the plugin, or replaces the loaded one of that name, as `POST
/// /v1/plugins` does from files on the host's disk. The manifest's
/// `component` key is ignored: the uploaded bytes are the component.
async fn upload(
    State(p): State<Arc<Plugins>>,
    mut form: axum::extract::Multipart,
) -> Result<Json<PluginStatus>, ApiError> {
    let bad = |field: &str, e: String| ApiError::bad(field, e);
    let (mut manifest, mut component) = (None, None);
    while let Some(part) = form
        .next_field()
        .await
        .map_err(|e| ApiError::new(e.status(), format!("cannot read the upload: {e}")).at("body"))?
    {
        match part.name() {
            Some("manifest") => {
                let text = part
                    .text()
                    .await
                    .map_err(|e| bad("manifest", e.to_string()))?;
                manifest = Some(text);
            }
            Some("component") => {
                let bytes = part
                    .bytes()
                    .await
                    .map_err(|e| bad("component", e.to_string()))?;
                component = Some(bytes);
            }
            other => {
                return Err(bad(
                    other.unwrap_or("body"),
                    format!(
                        "unexpected part `{}`: the upload has the parts `manifest` and `component`",
                        other.unwrap_or("")
                    ),
                ))
            }
        }
    }
    let text =
        manifest.ok_or_else(|| bad("manifest", "the `manifest` part (TOML) is missing".into()))?;
    let wasm = component.ok_or_else(|| {
        bad(
            "component",
            "the `component` part (.wasm) is missing".into(),
        )
    })?;
    let manifest = Manifest::parse(&text, "<upload>/manifest.toml").map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).at("manifest")
    })?;
    Ok(Json(status(
        p.reload(Actor::Named(ACTOR), manifest, &wasm).await?,
    )))
}

async fn reload(
    State(p): State<Arc<Plugins>>,
    Path(name): Path<String>,
    body: Option<Json<LoadRequest>>,
) -> Result<Json<PluginStatus>, ApiError> {
    let info = match body.and_then(|Json(r)| r.manifest) {
        Some(path) => {
            let manifest = crate::runtime::Manifest::from_file(&path).map_err(PluginError::from)?;
            if manifest.name != name {
                return Err(ApiError::bad(
                    "manifest",
                    format!(
                        "manifest {} is for plugin `{}`, not `{name}`",
                        path.display(),
                        manifest.name
                    ),
                ));
            }
            p.reload_file(Actor::Named(ACTOR), &path).await?
        }
        None => p.reload_from_source(Actor::Named(ACTOR), &name).await?,
    };
    Ok(Json(status(info)))
}

async fn unload(
    State(p): State<Arc<Plugins>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.unload(Actor::Named(ACTOR), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn health(State(p): State<Arc<Plugins>>) -> Json<serde_json::Value> {
    let summary = p.health().summary();
    let subs: Vec<serde_json::Value> = p
        .health()
        .list()
        .into_iter()
        .map(|s| {
            // A plugin subscription's inbox drops (null for native ones).
            let info = p.status(&s.name);
            let dropped = info.as_ref().map(|i| i.dropped);
            // Messages waiting in its inbox now (null for native ones).
            let queue_depth = info
                .and_then(|i| i.subscriber)
                .and_then(|id| p.bus().stats_of(id))
                .map(|st| st.queue_depth);
            serde_json::json!({
                "name": s.name, "status": s.status, "breaker": s.breaker,
                "event_count": s.event_count, "error_count": s.error_count,
                "consecutive_failures": s.consecutive_failures, "last_error": s.last_error,
                "dropped": dropped, "queue_depth": queue_depth,
            })
        })
        .collect();
    // Each plugin's outbound destinations and their circuit breakers.
    let outbound: Vec<serde_json::Value> = p
        .list()
        .into_iter()
        .flat_map(|info| {
            let plugin = info.name;
            info.outbound.into_iter().map(move |o| {
                serde_json::json!({
                    "plugin": plugin, "destination": o.destination, "breaker": o.breaker,
                    "consecutive_failures": o.consecutive_failures, "requests": o.requests,
                    "errors": o.errors, "failed": o.failed,
                    "breaker_rejected": o.breaker_rejected, "last_error": o.last_error,
                })
            })
        })
        .collect();
    Json(serde_json::json!({ "summary": summary, "subscriptions": subs, "outbound": outbound }))
}
