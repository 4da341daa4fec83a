//! Payload builders of the helpers: the grouped events of the helpers that
//! publish one of several kinds, and the expansion of a metrics map.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{topics, Integration};
use crate::bus::BusError;
use crate::messages::audit::{AccessLog, AdminAction, DataChange};
use crate::messages::diagnostics::{DebugTrace, PerformanceAnalysis};
use crate::messages::metrics::{PerformanceMetric, ThroughputMetric};
use crate::messages::security::{AccessViolation, AuthEvent, SecurityAlert};
use crate::messages::{Envelope, MessageKind};

/// An audit-trail record, for
/// [`Integration::broadcast_audit_event`]
/// (channel `audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// Topic `audit:data_change:<resource_type>`.
    DataChange(DataChange),
    /// Topic `audit:admin_action:<action_type>`.
    AdminAction(AdminAction),
    /// Topic `audit:access_log:<resource_type>`.
    AccessLog(AccessLog),
}

impl AuditEvent {
    /// The message kind it is published as (`"DataChange"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::DataChange(_) => DataChange::KIND,
            AuditEvent::AdminAction(_) => AdminAction::KIND,
            AuditEvent::AccessLog(_) => AccessLog::KIND,
        }
    }

    /// The topic it is published on.
    pub fn topic(&self) -> String {
        match self {
            AuditEvent::DataChange(e) => topics::audit_data_change(&e.resource_type),
            AuditEvent::AdminAction(e) => topics::audit_admin_action(&e.action_type),
            AuditEvent::AccessLog(e) => topics::audit_access_log(&e.resource_type),
        }
    }
}

/// A troubleshooting record, for
/// [`Integration::broadcast_diagnostic`]
/// (channel `diagnostics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagnosticEvent {
    /// Topic `debug_trace:<component>`.
    DebugTrace(DebugTrace),
    /// Topic `performance_analysis:<component>`.
    PerformanceAnalysis(PerformanceAnalysis),
}

impl DiagnosticEvent {
    /// The message kind it is published as (`"DebugTrace"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            DiagnosticEvent::DebugTrace(_) => DebugTrace::KIND,
            DiagnosticEvent::PerformanceAnalysis(_) => PerformanceAnalysis::KIND,
        }
    }

    /// The topic it is published on.
    pub fn topic(&self) -> String {
        match self {
            DiagnosticEvent::DebugTrace(e) => topics::debug_trace(&e.component),
            DiagnosticEvent::PerformanceAnalysis(e) => topics::performance_analysis(&e.component),
        }
    }
}

/// A security record, for
/// [`Integration::broadcast_security_event`]
/// (channel `security`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityEvent {
    /// Topic `auth:<event_type>`.
    Auth(AuthEvent),
    /// Topic `access_violation:<user_id>`.
    AccessViolation(AccessViolation),
    /// Topic `security_alert:<alert_type>`.
    Alert(SecurityAlert),
}

impl SecurityEvent {
    /// The message kind it is published as (`"AuthEvent"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            SecurityEvent::Auth(_) => AuthEvent::KIND,
            SecurityEvent::AccessViolation(_) => AccessViolation::KIND,
            SecurityEvent::Alert(_) => SecurityAlert::KIND,
        }
    }

    /// The topic it is published on.
    pub fn topic(&self) -> String {
        match self {
            SecurityEvent::Auth(e) => topics::auth(e.event_type),
            SecurityEvent::AccessViolation(e) => topics::access_violation(&e.user_id),
            SecurityEvent::Alert(e) => topics::security_alert(&e.alert_type),
        }
    }
}

/// `impl From<Payload> for Event` for each `Variant(Payload)`.
macro_rules! from_payloads {
    ($event:ident { $($variant:ident($payload:ty)),* $(,)? }) => {
        $(
            impl From<$payload> for $event {
                fn from(e: $payload) -> Self {
                    $event::$variant(e)
                }
            }
        )*
    };
}

from_payloads!(AuditEvent {
    DataChange(DataChange),
    AdminAction(AdminAction),
    AccessLog(AccessLog),
});
from_payloads!(DiagnosticEvent {
    DebugTrace(DebugTrace),
    PerformanceAnalysis(PerformanceAnalysis),
});
from_payloads!(SecurityEvent {
    Auth(AuthEvent),
    AccessViolation(AccessViolation),
    Alert(SecurityAlert),
});

/// The helpers publishing one of several kinds.
impl Integration {
    /// An [`AuditEvent`] on `audit`, topic [`AuditEvent::topic`].
    pub async fn broadcast_audit_event(
        &self,
        event: AuditEvent,
    ) -> Result<Arc<Envelope>, BusError> {
        let topic = event.topic();
        match &event {
            AuditEvent::DataChange(e) => self.publish(&topic, e).await,
            AuditEvent::AdminAction(e) => self.publish(&topic, e).await,
            AuditEvent::AccessLog(e) => self.publish(&topic, e).await,
        }
    }

    /// A [`DiagnosticEvent`] on `diagnostics`, topic [`DiagnosticEvent::topic`].
    pub async fn broadcast_diagnostic(
        &self,
        event: DiagnosticEvent,
    ) -> Result<Arc<Envelope>, BusError> {
        let topic = event.topic();
        match &event {
            DiagnosticEvent::DebugTrace(e) => self.publish(&topic, e).await,
            DiagnosticEvent::PerformanceAnalysis(e) => self.publish(&topic, e).await,
        }
    }

    /// A [`SecurityEvent`] on `security`, topic [`SecurityEvent::topic`].
    pub async fn broadcast_security_event(
        &self,
        event: SecurityEvent,
    ) -> Result<Arc<Envelope>, BusError> {
        let topic = event.topic();
        match &event {
            SecurityEvent::Auth(e) => self.publish(&topic, e).await,
            SecurityEvent::AccessViolation(e) => self.publish(&topic, e).await,
            SecurityEvent::Alert(e) => self.publish(&topic, e).await,
        }
    }
}

/// One [`PerformanceMetric`] per numeric entry of `metrics`, in the map's
/// order: `metric_name` is the key, `value` the number as `f64`, `unit` is
/// `"ms"` for keys ending in `_ms` and `"count"` otherwise, `tags` empty.
/// Entries that are not numbers are skipped.
pub fn performance_metrics(
    component: &str,
    metrics: &Map<String, Value>,
) -> Vec<PerformanceMetric> {
    metrics
        .iter()
        .filter_map(|(name, value)| {
            value.as_f64().map(|value| PerformanceMetric {
                metric_name: name.clone(),
                value,
                unit: if name.ends_with("_ms") { "ms" } else { "count" }.to_owned(),
                component: component.to_owned(),
                tags: Map::new(),
            })
        })
        .collect()
}

/// The [`ThroughputMetric`] of `metrics` when it holds both
/// `operations_count` and `duration_ms` as non-negative numbers (fractions
/// are truncated): `operation` is `component`, `rate_per_sec` is
/// `count * 1000 / duration_ms`, or 0 when the duration is 0.
pub fn throughput_metric(
    component: &str,
    metrics: &Map<String, Value>,
) -> Option<ThroughputMetric> {
    let count = whole_number(metrics.get("operations_count")?)?;
    let duration_ms = whole_number(metrics.get("duration_ms")?)?;
    let rate_per_sec = if duration_ms == 0 {
        0.0
    } else {
        count as f64 * 1000.0 / duration_ms as f64
    };
    Some(ThroughputMetric {
        operation: component.to_owned(),
        count,
        duration_ms,
        rate_per_sec,
    })
}

/// A non-negative JSON number as `u64`, truncating any fraction.
fn whole_number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn metrics_map_expands_to_performance_and_throughput() {
        let m = map(json!({"operations_count": 1000, "duration_ms": 250, "label": "x"}));
        let perf = performance_metrics("persistence", &m);
        assert_eq!(perf.len(), 2);
        assert!(perf
            .iter()
            .any(|p| p.metric_name == "duration_ms" && p.unit == "ms"));
        assert!(perf
            .iter()
            .any(|p| p.metric_name == "operations_count" && p.unit == "count"));
        let t = throughput_metric("persistence", &m).unwrap();
        assert_eq!(
            (t.count, t.duration_ms, t.rate_per_sec),
            (1000, 250, 4000.0)
        );
        let zero = map(json!({"operations_count": 5, "duration_ms": 0}));
        assert_eq!(throughput_metric("p", &zero).unwrap().rate_per_sec, 0.0);
        assert!(throughput_metric("p", &map(json!({"operations_count": 5}))).is_none());
        assert!(
            throughput_metric("p", &map(json!({"operations_count": -1, "duration_ms": 5})))
                .is_none()
        );
    }
}
