//! stream-projection: a projection of a store's events, fed by an emitter
//! worker rather than the bus.
//!
//! Its manifest subscribes it to the `default` store
//! (`[[store_subscription]] store = "default", selector = "$all",
//! start = "now"`, no `name`: transient, so every load starts afresh at the
//! store's head and sees only the events appended after it started). It
//! keeps a count of the events per event type (the message's `kind`) and,
//! each time the total reaches a multiple of `every`, logs one info line
//! with `host::log`:
//!
//! ```text
//! projection: 2000 events (OrderPlaced=1500, OrderShipped=500)
//! ```
//!
//! with the types in alphabetical order. Messages that are not store events
//! (channel `events`; e.g. a `Lagged` marker on `system`) are not counted.
//! It publishes nothing, so it needs no `[[publish]]` grant.
//!
//! Config: `every` (a positive integer, default 1000).

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;

wit_bindgen::generate!({ world: "subscriber", path: "../../wit", generate_all });

use exesdb::plugin::host;
use exesdb::plugin::types::{Channel, Error, LogLevel, Message};
use exports::exesdb::plugin::handler::{BatchFailure, Guest};

const DEFAULT_EVERY: u64 = 1000;

struct State {
    every: u64,
    total: u64,
    by_type: BTreeMap<String, u64>,
}

thread_local! {
    static STATE: RefCell<State> = const { RefCell::new(State { every: DEFAULT_EVERY, total: 0, by_type: BTreeMap::new() }) };
}

/// `projection: N events (A=n, B=m)`.
fn line(s: &State) -> String {
    let counts: Vec<String> = s.by_type.iter().map(|(t, n)| format!("{t}={n}")).collect();
    format!("projection: {} events ({})", s.total, counts.join(", "))
}

fn handle(m: &Message) {
    if m.channel != Channel::Events {
        return;
    }
    let due = STATE.with_borrow_mut(|s| {
        s.total += 1;
        *s.by_type.entry(m.kind.clone()).or_insert(0) += 1;
        (s.total % s.every == 0).then(|| line(s))
    });
    if let Some(text) = due {
        host::log(LogLevel::Info, &text);
    }
}

struct Projection;

impl Guest for Projection {
    fn init(config: String) -> Result<(), Error> {
        let cfg: Value = serde_json::from_str(if config.is_empty() { "{}" } else { &config })
            .map_err(|e| Error::Failed(format!("invalid config: {e}")))?;
        let every = match &cfg["every"] {
            Value::Null => DEFAULT_EVERY,
            v => match v.as_u64() {
                Some(n) if n > 0 => n,
                _ => {
                    return Err(Error::Failed(format!(
                        "config `every` must be a positive integer, got {v}"
                    )))
                }
            },
        };
        STATE.with_borrow_mut(|s| {
            s.every = every;
            s.total = 0;
            s.by_type.clear();
        });
        Ok(())
    }

    fn on_message(message: Message) -> Result<(), Error> {
        handle(&message);
        Ok(())
    }

    fn on_batch(messages: Vec<Message>) -> Vec<BatchFailure> {
        messages.iter().for_each(handle);
        Vec::new()
    }

    fn shutdown() {}
}

export!(Projection);
