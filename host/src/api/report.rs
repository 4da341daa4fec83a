//! What the gateway reports about its clients, rate-limited per client so
//! that no client can flood `security` or `audit`:
//!
//! - an accepted token: an `AuthEvent` `login_success` on `security`, at
//!   most once per token and client address per minute;
//! - a refused authentication (401) or a missing scope (403): an
//!   `AuthEvent` `login_failure` (401 only), an `AccessViolation` on
//!   `security` and a failed `AccessLog` on `audit` — the first refusal of
//!   a cause from a client at once, the following ones of that second as
//!   one report with `metadata.count` (flushed every second).
//!
//! Reports are published with [`send_now`]: a request never waits on a
//! subscriber, and a report that cannot be published is logged, not
//! returned.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::bus::Bus;
use crate::integration::{send_now, topics};
use crate::messages::alerts::Severity;
use crate::messages::audit::AccessLog;
use crate::messages::security::{AccessViolation, AuthEvent, AuthEventType};
use crate::runtime::violations::{Report, Violations};

/// How often an accepted token is reported per client.
const SUCCESS_EVERY: Duration = Duration::from_secs(60);
/// Clients remembered before the oldest state is dropped.
const MAX_CLIENTS: usize = 10_000;

/// The `violation_type` of a refused authentication.
pub const AUTH_FAILED: &str = "authentication_failed";
/// The `violation_type` of a request outside the token's scopes.
pub const SCOPE_MISSING: &str = "scope_missing";

/// The gateway's reporter.
#[derive(Debug)]
pub struct ClientReports {
    bus: Bus,
    /// Per client address and the name it claimed (a token's name, or
    /// `unauthenticated`), so that a count is reported under the one who
    /// earned it. Bounded: names are configured tokens' or that one.
    refusals: Mutex<HashMap<(IpAddr, String), Arc<Violations>>>,
    successes: Mutex<HashMap<(String, IpAddr), Instant>>,
}

impl ClientReports {
    /// Reports on `bus`.
    pub fn new(bus: Bus) -> ClientReports {
        ClientReports {
            bus,
            refusals: Mutex::default(),
            successes: Mutex::default(),
        }
    }

    /// An accepted token (reported at most once a minute per client).
    pub fn accepted(&self, token: &str, client: IpAddr) {
        let now = Instant::now();
        {
            let mut seen = self.successes.lock();
            if seen.len() > MAX_CLIENTS {
                seen.clear();
            }
            let key = (token.to_owned(), client);
            if seen
                .get(&key)
                .is_some_and(|t| now.duration_since(*t) < SUCCESS_EVERY)
            {
                return;
            }
            seen.insert(key, now);
        }
        self.auth_event(token, AuthEventType::LoginSuccess, client, None);
    }

    /// A refusal of `client` (claiming to be `who`): `violation_type` is
    /// [`AUTH_FAILED`] or [`SCOPE_MISSING`], `action` what was attempted,
    /// `resource` what it targeted.
    pub fn refused(
        &self,
        who: &str,
        client: IpAddr,
        violation_type: &str,
        action: &str,
        resource: &str,
    ) {
        let meter = {
            let mut map = self.refusals.lock();
            if map.len() > MAX_CLIENTS {
                map.clear();
            }
            Arc::clone(
                map.entry((client, who.to_owned()))
                    .or_insert_with(|| Arc::new(Violations::new(0))),
            )
        };
        if let Some(report) = meter.record(Instant::now(), action, violation_type, resource) {
            self.publish(who, client, &report);
        }
    }

    /// Reports the counted refusals that fell due.
    pub fn flush(&self) {
        let now = Instant::now();
        let due: Vec<(String, IpAddr, Report)> = self
            .refusals
            .lock()
            .iter()
            .flat_map(|((ip, who), v)| {
                v.due(now)
                    .into_iter()
                    .map(|r| (who.clone(), *ip, r))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (who, ip, report) in due {
            self.publish(&who, ip, &report);
        }
    }

    fn publish(&self, who: &str, client: IpAddr, r: &Report) {
        let source_ip = Some(client.to_string());
        let mut metadata = serde_json::Map::new();
        metadata.insert("count".into(), r.count.into());
        if r.violation_type == AUTH_FAILED {
            self.auth_event(who, AuthEventType::LoginFailure, client, Some(r));
        }
        tracing::warn!(
            class = "failure",
            "🛡️ API REFUSED{}: client {client} ({who}) may not {} {}",
            if r.count > 1 {
                format!(" ×{}", r.count)
            } else {
                String::new()
            },
            r.action,
            r.resource
        );
        send_now(
            &self.bus,
            &topics::access_violation(who),
            &AccessViolation {
                user_id: who.to_owned(),
                violation_type: r.violation_type.clone(),
                resource: r.resource.clone(),
                action: r.action.clone(),
                source_ip: source_ip.clone(),
                severity: Severity::Warning,
                metadata,
            },
        );
        send_now(
            &self.bus,
            &topics::audit_access_log("api"),
            &AccessLog {
                user_id: who.to_owned(),
                resource_type: "api".into(),
                resource_id: r.resource.clone(),
                action: r.action.clone(),
                success: false,
                duration_ms: 0,
                source_ip,
                user_agent: None,
            },
        );
    }

    fn auth_event(&self, who: &str, event: AuthEventType, client: IpAddr, r: Option<&Report>) {
        let mut metadata = serde_json::Map::new();
        if let Some(r) = r {
            metadata.insert("count".into(), r.count.into());
            metadata.insert("reason".into(), r.resource.clone().into());
        }
        send_now(
            &self.bus,
            &topics::auth(event),
            &AuthEvent {
                user_id: who.to_owned(),
                event_type: event,
                auth_method: "bearer_token".into(),
                source_ip: Some(client.to_string()),
                user_agent: None,
                metadata,
            },
        );
    }
}
