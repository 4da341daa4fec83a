//! `GET /v1/session`: who the request's token is and what it may do, so a
//! client (the dashboard) shows only the actions it can take.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::auth::{Need, Principal};
use super::ApiState;

/// `{"name", "scopes", "admin", "tokens_required"}`: the token's name
/// (`anonymous` on an open API), its scopes, whether it may change plugins,
/// and whether the API asks for tokens at all. Any authenticated request
/// may ask; no scope is needed.
pub async fn session(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Json<Value> {
    Json(json!({
        "name": who.name,
        "scopes": who.scope_names(),
        "admin": who.allows(&Need::Admin),
        "tokens_required": state.auth.enabled(),
    }))
}
