//! threshold-alerter-rs: the Rust twin of the Python `threshold-alerter` and
//! the JavaScript `threshold-alerter-js` (same behaviour, same tests).
//!
//! Watches store throughput (`ThroughputMetric` on `metrics`, topics
//! `store_metrics:>`) and publishes a performance `SystemAlert` on `alerts`
//! when `rate_per_sec` goes above `threshold`; alerts again only after the
//! rate has come back under it. Config: `threshold` (number, default 1000),
//! `severity` (info | warning | error | critical, default warning).

use std::cell::RefCell;
use std::collections::HashSet;

use serde_json::{json, Value};

wit_bindgen::generate!({ world: "subscriber", path: "../../wit", generate_all });

use exesdb::plugin::host::{self, PublishOptions};
use exesdb::plugin::types::{Channel, Error, LogLevel, Message};
use exports::exesdb::plugin::handler::{BatchFailure, Guest};

const SEVERITIES: [&str; 4] = ["info", "warning", "error", "critical"];

struct State {
    threshold: f64,
    severity: String,
    above: HashSet<(String, String)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State { threshold: 1000.0, severity: "warning".into(), above: HashSet::new() });
}

/// `1000` for whole numbers, like Python's `:g` and JavaScript's `String`.
fn num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn handle(m: &Message) -> Result<(), Error> {
    if m.kind != "ThroughputMetric" {
        return Ok(());
    }
    let metric: Value = serde_json::from_str(&m.payload)
        .map_err(|e| Error::InvalidPayload(format!("ThroughputMetric payload: {e}")))?;
    let operation = metric["operation"].as_str().unwrap_or_default().to_owned();
    let rate = metric["rate_per_sec"]
        .as_f64()
        .ok_or_else(|| Error::InvalidPayload("ThroughputMetric payload: no rate_per_sec".into()))?;
    let key = (m.topic.clone(), operation.clone());
    let (threshold, severity) = STATE.with_borrow(|s| (s.threshold, s.severity.clone()));
    if rate <= threshold {
        if STATE.with_borrow_mut(|s| s.above.remove(&key)) {
            host::log(
                LogLevel::Info,
                &format!("{operation} on {} back under {}/s", m.topic, num(threshold)),
            );
        }
        return Ok(());
    }
    if STATE.with_borrow(|s| s.above.contains(&key)) {
        return Ok(());
    }
    let name = host::plugin_name();
    let alert = json!({
        "alert_id": format!("{name}-{}", m.id),
        "severity": severity,
        "category": "performance",
        "title": format!("Throughput of {operation} above {}/s", num(threshold)),
        "description": format!("{operation} on {} runs at {}/s", m.topic, num(rate)),
        "source": name,
        "metadata": {"rate_per_sec": rate, "threshold": threshold, "message_id": m.id},
        "requires_ack": severity == "error" || severity == "critical",
    });
    let options = PublishOptions {
        correlation_id: m.correlation_id.clone(),
        causation_id: Some(m.id.clone()),
    };
    host::publish(
        Channel::Alerts,
        "system_alert:performance",
        "SystemAlert",
        &alert.to_string(),
        Some(&options),
    )?;
    STATE.with_borrow_mut(|s| s.above.insert(key));
    host::log(
        LogLevel::Warning,
        &format!(
            "alert: {operation} at {}/s (threshold {})",
            num(rate),
            num(threshold)
        ),
    );
    Ok(())
}

struct Alerter;

impl Guest for Alerter {
    fn init(config: String) -> Result<(), Error> {
        let cfg: Value = serde_json::from_str(if config.is_empty() { "{}" } else { &config })
            .map_err(|e| Error::Failed(format!("invalid config: {e}")))?;
        let threshold = match &cfg["threshold"] {
            Value::Null => 1000.0,
            Value::Number(n) if n.as_f64().is_some_and(|t| t >= 0.0) => n.as_f64().unwrap_or(0.0),
            other => {
                return Err(Error::Failed(format!(
                    "config `threshold` must be a non-negative number, got {other}"
                )))
            }
        };
        let severity = cfg["severity"].as_str().unwrap_or("warning").to_owned();
        if !SEVERITIES.contains(&severity.as_str()) {
            return Err(Error::Failed(format!(
                "config `severity` must be one of {}, got {:?}",
                SEVERITIES.join(", "),
                severity
            )));
        }
        STATE.with_borrow_mut(|s| {
            s.threshold = threshold;
            s.severity = severity;
            s.above.clear();
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
            .filter_map(|(i, m)| {
                handle(m).err().map(|error| BatchFailure {
                    index: i as u32,
                    error,
                })
            })
            .collect()
    }

    fn shutdown() {}
}

export!(Alerter);
