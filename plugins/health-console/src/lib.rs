//! # health-console
//!
//! A `subscriber` plugin that writes the cluster's health and throughput to
//! the host's console and raises an alert when a component turns unhealthy.
//!
//! Behaviour, per message kind (other kinds are ignored and acknowledged):
//!
//! - **`ComponentHealth`** / **`NodeHealth`**: logs
//!   `🏥 health-console: component <name> is <status>` at `info`. The last
//!   status of every component is remembered (a `NodeHealth` uses its `node`
//!   as the component name). When a component moves *into* `unhealthy` (its
//!   previous status, if any, was something else), a `SystemAlert` is
//!   published on channel `alerts`, topic `system_alert:<component>`, with
//!   `causation-id` set to the triggering message's id (and its
//!   `correlation-id` carried over). The new status is only remembered once
//!   that publish succeeded, so a failed publish is retried on the next
//!   unhealthy report.
//! - **`ThroughputMetric`**: logs `📈 health-console: <operation> <rate> /s`.
//!
//! A known kind whose payload is not valid JSON of its schema fails with
//! `error::invalid-payload`. `on-batch` handles each message in order and
//! reports the failed ones by index.
//!
//! ## Config (`[config]` in `plugin.toml`)
//!
//! | key              | type   | default   | meaning                                              |
//! |------------------|--------|-----------|------------------------------------------------------|
//! | `alert_severity` | string | `"error"` | severity of raised alerts: info, warning, error, critical |

use std::cell::RefCell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

wit_bindgen::generate!({ world: "subscriber", path: "../../wit", generate_all });

use exesdb::plugin::host::{self, PublishOptions};
use exesdb::plugin::types::{Channel, Error, LogLevel, Message};
use exports::exesdb::plugin::handler::{BatchFailure, Guest};

/// Health status of a node or component, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Healthy,
    Degraded,
    Unhealthy,
    Unknown,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
            Status::Unknown => "unknown",
        }
    }
}

/// `ComponentHealth` payload (only the fields this plugin reads are required).
#[derive(Debug, Deserialize)]
struct ComponentHealth {
    component: String,
    status: Status,
}

/// `NodeHealth` payload (only the fields this plugin reads are required).
#[derive(Debug, Deserialize)]
struct NodeHealth {
    node: String,
    status: Status,
}

/// `ThroughputMetric` payload (only the fields this plugin reads are required).
#[derive(Debug, Deserialize)]
struct ThroughputMetric {
    operation: String,
    rate_per_sec: f64,
}

/// `SystemAlert` payload, exactly the schema's fields.
#[derive(Debug, Serialize)]
struct SystemAlert<'a> {
    alert_id: String,
    severity: &'a str,
    category: &'a str,
    title: String,
    description: String,
    source: &'a str,
    metadata: Map<String, Value>,
    requires_ack: bool,
}

/// The plugin's `[config]` table.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Config {
    alert_severity: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            alert_severity: "error".to_owned(),
        }
    }
}

/// Per-instance state.
#[derive(Debug, Default)]
struct State {
    /// The plugin's name from its manifest (the `source` of raised alerts).
    name: String,
    /// Severity of raised alerts.
    severity: String,
    /// Last known status per component (or node).
    statuses: HashMap<String, Status>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct HealthConsole;

impl Guest for HealthConsole {
    fn init(config: String) -> Result<(), Error> {
        let config: Config = if config.trim().is_empty() {
            Config::default()
        } else {
            serde_json::from_str(&config)
                .map_err(|e| Error::Failed(format!("invalid config: {e}")))?
        };
        if !matches!(
            config.alert_severity.as_str(),
            "info" | "warning" | "error" | "critical"
        ) {
            return Err(Error::Failed(format!(
                "invalid config: alert_severity `{}` is not one of info, warning, error, critical",
                config.alert_severity
            )));
        }
        let name = host::plugin_name();
        STATE.with_borrow_mut(|state| {
            *state = State {
                name,
                severity: config.alert_severity,
                statuses: HashMap::new(),
            };
        });
        Ok(())
    }

    fn on_message(message: Message) -> Result<(), Error> {
        handle(&message)
    }

    fn on_batch(messages: Vec<Message>) -> Vec<BatchFailure> {
        messages
            .iter()
            .enumerate()
            .filter_map(|(index, message)| {
                handle(message).err().map(|error| BatchFailure {
                    index: index as u32,
                    error,
                })
            })
            .collect()
    }

    fn shutdown() {
        STATE.with_borrow_mut(|state| state.statuses.clear());
    }
}

/// Parses a known kind's payload, mapping failures to `invalid-payload`.
fn parse<'a, T: Deserialize<'a>>(message: &'a Message) -> Result<T, Error> {
    serde_json::from_str(&message.payload).map_err(|e| {
        Error::InvalidPayload(format!(
            "{} payload of message {}: {e}",
            message.kind, message.id
        ))
    })
}

/// Handles one message.
fn handle(message: &Message) -> Result<(), Error> {
    match message.kind.as_str() {
        "ComponentHealth" => {
            let health: ComponentHealth = parse(message)?;
            observe(&health.component, health.status, message)
        }
        "NodeHealth" => {
            let health: NodeHealth = parse(message)?;
            observe(&health.node, health.status, message)
        }
        "ThroughputMetric" => {
            let metric: ThroughputMetric = parse(message)?;
            let name = STATE.with_borrow(|state| state.name.clone());
            host::log(
                LogLevel::Info,
                &format!("📈 {name}: {} {} /s", metric.operation, metric.rate_per_sec),
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Records a component's status, logging it and alerting on a transition
/// into `unhealthy`.
fn observe(component: &str, status: Status, message: &Message) -> Result<(), Error> {
    let (name, severity, previous) = STATE.with_borrow(|state| {
        (
            state.name.clone(),
            state.severity.clone(),
            state.statuses.get(component).copied(),
        )
    });
    host::log(
        LogLevel::Info,
        &format!("🏥 {name}: component {component} is {}", status.as_str()),
    );

    if status == Status::Unhealthy && previous != Some(Status::Unhealthy) {
        raise_alert(component, message, &name, &severity)?;
    }
    STATE.with_borrow_mut(|state| state.statuses.insert(component.to_owned(), status));
    Ok(())
}

/// Publishes the `SystemAlert` for `component` turning unhealthy.
fn raise_alert(
    component: &str,
    message: &Message,
    name: &str,
    severity: &str,
) -> Result<(), Error> {
    let mut metadata = Map::new();
    metadata.insert("message_id".to_owned(), json!(message.id));
    let alert = SystemAlert {
        alert_id: format!("{component}-unhealthy-{}", message.timestamp_ms),
        severity,
        category: "system",
        title: format!("Component {component} unhealthy"),
        description: format!("{component} reported status unhealthy"),
        source: name,
        metadata,
        requires_ack: true,
    };
    let payload = serde_json::to_string(&alert)
        .map_err(|e| Error::Failed(format!("cannot encode SystemAlert: {e}")))?;
    let options = PublishOptions {
        correlation_id: message.correlation_id.clone(),
        causation_id: Some(message.id.clone()),
    };
    host::publish(
        Channel::Alerts,
        &format!("system_alert:{component}"),
        "SystemAlert",
        &payload,
        Some(&options),
    )?;
    Ok(())
}

export!(HealthConsole);
