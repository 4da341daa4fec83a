//! # test-contract-0-1
//!
//! A test-only `subscriber` built against the old contract,
//! `exesdb:plugin@0.1.0` (`wit/v0.1.0`), unchanged since that version:
//! the host must keep loading and running it beside 0.2.0 plugins.
//!
//! For every message it publishes on `diagnostics`, topic
//! `echo:<plugin-name>`, kind `custom.echo`, payload
//! `{"id": <message id>, "kind": <kind>, "batch": <via on-batch>,
//! "config": <config() text>, "correlation_id": <the message's>}`, with
//! the message's correlation id. A message whose payload contains `fail`
//! fails with `failed("fail requested")`.

use serde_json::json;

wit_bindgen::generate!({ world: "subscriber", path: "../../wit/v0.1.0" });

use exesdb::plugin::host::{self, PublishOptions};
use exesdb::plugin::types::{Channel, Error, Message};
use exports::exesdb::plugin::handler::{BatchFailure, Guest};

struct Legacy;

fn handle(message: &Message, batch: bool) -> Result<(), Error> {
    if message.payload.contains("fail") {
        return Err(Error::Failed("fail requested".into()));
    }
    let payload = json!({
        "id": message.id,
        "kind": message.kind,
        "batch": batch,
        "config": host::config(),
        "correlation_id": message.correlation_id,
    });
    let options = PublishOptions {
        correlation_id: message.correlation_id.clone(),
        causation_id: Some(message.id.clone()),
    };
    host::publish(
        Channel::Diagnostics,
        &format!("echo:{}", host::plugin_name()),
        "custom.echo",
        &payload.to_string(),
        Some(&options),
    )
    .map(drop)
}

impl Guest for Legacy {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }

    fn on_message(message: Message) -> Result<(), Error> {
        handle(&message, false)
    }

    fn on_batch(messages: Vec<Message>) -> Vec<BatchFailure> {
        messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                handle(m, true).err().map(|error| BatchFailure {
                    index: i as u32,
                    error,
                })
            })
            .collect()
    }

    fn shutdown() {}
}

export!(Legacy);
