//! Alerts for operators: the book of recent alerts (`GET /v1/alerts`),
//! kept from the `alerts` channel with their escalation level and
//! acknowledgement, and acknowledging one (`POST /v1/alerts/{id}/ack`).
//!
//! The book is what lets a page opened after an alert was raised still
//! show it: a stream only carries what is published after it connects.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{Need, Principal};
use super::error::{ApiError, JsonBody};
use super::ApiState;
use crate::bus::{Bus, BusError, Channel, Subscriber};
use crate::messages::alerts::{AlertAck, AlertEscalation, EscalationLevel, SystemAlert};
use crate::messages::Envelope;

/// How many alerts the book keeps (the oldest go first).
pub const KEPT: usize = 500;

/// An alert as the book knows it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEntry {
    /// The alert's id.
    pub alert_id: String,
    /// The id of the envelope that raised it.
    pub envelope_id: String,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
    /// The alert as published.
    #[serde(flatten)]
    pub alert: SystemAlert,
    /// The highest escalation level reached, if it was escalated.
    pub level: Option<EscalationLevel>,
    /// The acknowledgement, once acknowledged.
    pub acknowledged: Option<Acknowledgement>,
}

/// Who acknowledged an alert, and when.
#[derive(Debug, Clone, Serialize)]
pub struct Acknowledgement {
    /// Who acknowledged it.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Their note.
    pub note: Option<String>,
}

/// The recent alerts, newest last.
#[derive(Debug)]
pub struct AlertBook {
    alerts: Mutex<VecDeque<AlertEntry>>,
    sub: Mutex<Option<Subscriber>>,
}

impl AlertBook {
    /// A book that starts listening on `alerts` now (call [`run`](Self::run)
    /// to file what arrives).
    ///
    /// # Errors
    /// [`BusError`] if the subscription cannot be made.
    pub fn new(bus: &Bus) -> Result<Arc<AlertBook>, BusError> {
        let sub = bus.subscriber("api-alert-book")?;
        sub.subscribe(Channel::Alerts, ">")?;
        Ok(Arc::new(AlertBook {
            alerts: Mutex::default(),
            sub: Mutex::new(Some(sub)),
        }))
    }

    /// Files every alert message until the bus closes.
    pub async fn run(self: Arc<Self>) {
        let Some(sub) = self.sub.lock().take() else {
            return;
        };
        while let Some(env) = sub.recv().await {
            self.file(&env);
        }
    }

    /// Files one message of the `alerts` channel.
    pub fn file(&self, env: &Envelope) {
        let mut alerts = self.alerts.lock();
        match env.kind.as_str() {
            "SystemAlert" => {
                let Ok(alert) = env.decode::<SystemAlert>() else {
                    return;
                };
                if alerts.len() == KEPT {
                    alerts.pop_front();
                }
                alerts.push_back(AlertEntry {
                    alert_id: alert.alert_id.clone(),
                    envelope_id: env.id.to_string(),
                    raised_at: env.timestamp,
                    alert,
                    level: None,
                    acknowledged: None,
                });
            }
            "AlertEscalation" => {
                let Ok(e) = env.decode::<AlertEscalation>() else {
                    return;
                };
                if let Some(a) = alerts.iter_mut().rev().find(|a| a.alert_id == e.alert_id) {
                    a.level = a.level.max(Some(e.to_level));
                }
            }
            "AlertAck" => {
                let Ok(ack) = env.decode::<AlertAck>() else {
                    return;
                };
                if let Some(a) = alerts.iter_mut().rev().find(|a| a.alert_id == ack.alert_id) {
                    a.acknowledged.get_or_insert(Acknowledgement {
                        by: ack.ack_by,
                        at: env.timestamp,
                        note: ack.ack_note,
                    });
                }
            }
            _ => {}
        }
    }

    /// The alerts kept, newest first.
    pub fn list(&self) -> Vec<AlertEntry> {
        self.alerts.lock().iter().rev().cloned().collect()
    }
}

/// `GET /v1/alerts` → `{"alerts": [...]}`, newest first (at most
/// [`KEPT`]), each with `level` and `acknowledged`.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    state.require(&who, &Need::Read, "the alerts")?;
    Ok(Json(json!({ "alerts": state.alerts.list() })))
}

/// Body of an alert ack.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Who acknowledges.
    pub acknowledged_by: String,
    /// A note.
    #[serde(default)]
    pub notes: Option<String>,
    /// How the problem was resolved.
    #[serde(default)]
    pub resolution: Option<String>,
}

/// `POST /v1/alerts/{alert_id}/ack`: publishes an `AlertAck` on `alerts`
/// (topic `alert_ack:<id>`); `201 {"id"}`.
pub async fn ack(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(alert_id): Path<String>,
    JsonBody(body): JsonBody<AckRequest>,
) -> Result<axum::response::Response, ApiError> {
    state.require(
        &who,
        &Need::Publish(Channel::Alerts),
        &format!("alert {alert_id}"),
    )?;
    if body.acknowledged_by.trim().is_empty() {
        return Err(ApiError::bad(
            "acknowledged_by",
            "must name who acknowledges",
        ));
    }
    let topic = crate::integration::topics::alert_ack(&alert_id);
    // The id becomes a topic segment: refuse one that cannot be, naming the
    // path parameter (the request has no `topic`).
    crate::bus::validate_topic(&topic).map_err(|e| {
        ApiError::bad(
            "alert_id",
            format!("alert id `{alert_id}` cannot be acknowledged: {e}"),
        )
    })?;
    let env = Envelope::typed(
        topic,
        &crate::messages::alerts::AlertAck {
            alert_id: alert_id.clone(),
            ack_by: body.acknowledged_by,
            ack_note: body.notes,
            resolution: body.resolution,
        },
        state.bus.node(),
    )
    .map_err(|e| ApiError::from_bus(&e.into(), ""))?;
    let id = env.id.to_string();
    state
        .bus
        .broadcast(env)
        .await
        .map_err(|e| ApiError::from_bus(&e, ""))?;
    Ok(axum::response::IntoResponse::into_response((
        StatusCode::CREATED,
        Json(json!({ "id": id })),
    )))
}
