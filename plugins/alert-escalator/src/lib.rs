//! # alert-escalator
//!
//! An `alert-escalator` plugin: escalates `SystemAlert`s that require an
//! acknowledgement until an `AlertAck` for them arrives. The host publishes
//! every returned escalation as an `AlertEscalation` on `alerts`.
//!
//! The policy (in [`policy`], free of any binding code):
//!
//! - Each `SystemAlert` with `requires_ack: true` is tracked by `alert_id`
//!   (alerts with `requires_ack: false` are ignored). The message's
//!   `timestamp-ms` is the time of the occurrence.
//! - First occurrence: if `level1_after_ms` is 0 it goes to level 1 at once;
//!   otherwise nothing happens until a tick.
//! - Repeats: when the same `alert_id` has been seen `repeat_threshold`
//!   times, it moves up one level immediately (reason `repeated N times`)
//!   and its occurrence count restarts from zero.
//! - `tick(now)`: an alert not escalated yet reaches level 1 once
//!   `level1_after_ms` has passed since it was first seen; one at level 1
//!   reaches level 2 after `level2_after_ms` at level 1; one at level 2
//!   reaches level 3 after `level3_after_ms` at level 2 (reason
//!   `unacknowledged for N ms`, N counted from the first occurrence).
//!   Level 3 is final.
//! - An `AlertAck` for a tracked alert forgets it: no more escalations.
//!
//! Each escalation carries the contacts of the level it reaches and is logged
//! at `warning`. Other message kinds are ignored; a `SystemAlert` or
//! `AlertAck` whose payload does not parse fails with `invalid-payload`.
//!
//! ## Config (`[config]` in `plugin.toml`, every key optional)
//!
//! | key                | type    | default  | meaning                                         |
//! |--------------------|---------|----------|-------------------------------------------------|
//! | `level1_after_ms`  | integer | 0        | first seen → level 1 (0: on the first occurrence) |
//! | `level2_after_ms`  | integer | 60000    | time at level 1 before level 2                  |
//! | `level3_after_ms`  | integer | 300000   | time at level 2 before level 3                  |
//! | `repeat_threshold` | integer | 3        | occurrences that escalate at once (0: never)    |
//! | `contacts`         | table   | empty    | `level1`/`level2`/`level3` = lists of contacts  |
//! | `max_tracked`      | integer | 10000    | most alerts tracked at once (0: unbounded)      |
//!
//! Unknown keys are reported with a warning and ignored.

mod policy;

use std::cell::RefCell;

use serde::Deserialize;

use policy::{Decision, Policy};

wit_bindgen::generate!({ world: "alert-escalator", path: "../../wit", generate_all });

use exesdb::plugin::host;
use exesdb::plugin::types::{Error, LogLevel, Message};
use exports::exesdb::plugin::escalator::{Escalation, Guest, Level};

/// The fields of a `SystemAlert` this plugin reads.
#[derive(Debug, Deserialize)]
struct SystemAlert {
    alert_id: String,
    requires_ack: bool,
}

/// The fields of an `AlertAck` this plugin reads.
#[derive(Debug, Deserialize)]
struct AlertAck {
    alert_id: String,
    ack_by: String,
}

/// Per-instance state.
#[derive(Debug, Default)]
struct State {
    /// The plugin's name from its manifest, for log lines.
    name: String,
    policy: Policy,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct AlertEscalator;

impl Guest for AlertEscalator {
    fn init(config: String) -> Result<(), Error> {
        let config: policy::Config = if config.trim().is_empty() {
            policy::Config::default()
        } else {
            serde_json::from_str(&config)
                .map_err(|e| Error::Failed(format!("invalid config: {e}")))?
        };
        let name = host::plugin_name();
        if !config.unknown.is_empty() {
            let keys: Vec<&str> = config.unknown.keys().map(String::as_str).collect();
            host::log(
                LogLevel::Warning,
                &format!("{name}: ignoring unknown config keys: {}", keys.join(", ")),
            );
        }
        STATE.with_borrow_mut(|state| {
            *state = State {
                name,
                policy: Policy::new(config),
            }
        });
        Ok(())
    }

    fn on_alert(message: Message) -> Result<Vec<Escalation>, Error> {
        match message.kind.as_str() {
            "SystemAlert" => {
                let alert: SystemAlert = parse(&message)?;
                if !alert.requires_ack {
                    return Ok(Vec::new());
                }
                let decision = STATE.with_borrow_mut(|state| {
                    state.policy.on_alert(&alert.alert_id, message.timestamp_ms)
                });
                Ok(decision.into_iter().map(report).collect())
            }
            "AlertAck" => {
                let ack: AlertAck = parse(&message)?;
                let (name, forgotten) = STATE.with_borrow_mut(|state| {
                    (state.name.clone(), state.policy.on_ack(&ack.alert_id))
                });
                if forgotten {
                    host::log(
                        LogLevel::Info,
                        &format!(
                            "{name}: alert {} acknowledged by {}, escalation stopped",
                            ack.alert_id, ack.ack_by
                        ),
                    );
                }
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn tick(now_ms: u64) -> Result<Vec<Escalation>, Error> {
        let decisions = STATE.with_borrow_mut(|state| state.policy.tick(now_ms));
        Ok(decisions.into_iter().map(report).collect())
    }

    fn shutdown() {
        STATE.with_borrow_mut(|state| {
            let tracked = state.policy.tracked_count();
            if tracked > 0 {
                host::log(
                    LogLevel::Info,
                    &format!(
                        "{}: shutting down with {tracked} unacknowledged alert(s)",
                        state.name
                    ),
                );
            }
            state.policy = Policy::default();
        });
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

/// Logs a decision and turns it into the WIT record.
fn report(decision: Decision) -> Escalation {
    let name = STATE.with_borrow(|state| state.name.clone());
    let from = decision.from.map_or("none", policy::Level::as_str);
    let contacts = if decision.contacts.is_empty() {
        "nobody".to_owned()
    } else {
        decision.contacts.join(", ")
    };
    host::log(
        LogLevel::Warning,
        &format!(
            "🚨 {name}: alert {} escalated {from} → {} ({}); notifying {contacts}",
            decision.alert_id,
            decision.to.as_str(),
            decision.reason
        ),
    );
    Escalation {
        alert_id: decision.alert_id,
        from_level: decision.from.map(level),
        to_level: level(decision.to),
        reason: decision.reason,
        notify_contacts: decision.contacts,
    }
}

/// The WIT `level` for a policy level.
fn level(level: policy::Level) -> Level {
    match level {
        policy::Level::Level1 => Level::Level1,
        policy::Level::Level2 => Level::Level2,
        policy::Level::Level3 => Level::Level3,
    }
}

export!(AlertEscalator);
