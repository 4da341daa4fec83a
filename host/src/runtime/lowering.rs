//! Envelopes handed to a subscriber's `on-message`/`on-batch` without
//! intermediate copies.
//!
//! The bindgen `message` record owns its strings, so delivering through it
//! would first copy every topic, kind, node and payload into fresh host
//! `String`s, which wasmtime then copies again into guest memory. A
//! [`MessageRef`] is the same WIT record (`exesdb:plugin/types.message`)
//! over borrowed strings: wasmtime copies each field straight from the
//! envelope into the guest. Only the id is rendered (UUID → hyphenated text),
//! into one buffer per batch ([`Ids`]).
//!
//! The typed functions are checked against the component's own types on
//! every call (`Func::typed`), so a record that drifted from `wit/` is a
//! type error, never a silent misread.

use std::sync::Arc;

use wasmtime::component::{ComponentType, Func, Instance, Lower};
use wasmtime::{AsContextMut, Store};

use super::bindings::subscriber::exports::exesdb::plugin::handler::BatchFailure;
use super::bindings::wit_types::{Channel as WitChannel, Error as WitError};
use super::host_impl::wit_channel;
use super::state::PluginState;
use crate::messages::Envelope;

/// The interface a subscriber exports.
const HANDLER: &str = "exesdb:plugin/handler@0.1.0";

/// `exesdb:plugin/types.message` over borrowed strings.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct MessageRef<'a> {
    id: &'a str,
    channel: WitChannel,
    topic: &'a str,
    kind: &'a str,
    #[component(name = "timestamp-ms")]
    timestamp_ms: u64,
    node: &'a str,
    #[component(name = "correlation-id")]
    correlation_id: Option<&'a str>,
    #[component(name = "causation-id")]
    causation_id: Option<&'a str>,
    #[component(name = "schema-version")]
    schema_version: u32,
    payload: &'a str,
}

/// The hyphenated ids of a batch's messages, rendered into one buffer.
#[derive(Debug)]
pub(crate) struct Ids {
    text: String,
}

/// Length of a hyphenated UUID.
const ID_LEN: usize = uuid::fmt::Hyphenated::LENGTH;

impl Ids {
    /// Renders the ids of `msgs`, in order.
    pub(crate) fn of(msgs: &[Arc<Envelope>]) -> Ids {
        let mut text = String::with_capacity(msgs.len() * ID_LEN);
        let mut buf = [0u8; ID_LEN];
        for env in msgs {
            text.push_str(env.id.hyphenated().encode_lower(&mut buf));
        }
        Ids { text }
    }

    /// The `i`th id.
    fn get(&self, i: usize) -> &str {
        &self.text[i * ID_LEN..(i + 1) * ID_LEN]
    }
}

/// Borrowed records of `msgs`; `ids` must come from [`Ids::of`] on `msgs`.
pub(crate) fn message_refs<'a>(msgs: &'a [Arc<Envelope>], ids: &'a Ids) -> Vec<MessageRef<'a>> {
    msgs.iter()
        .enumerate()
        .map(|(i, env)| MessageRef {
            id: ids.get(i),
            channel: wit_channel(env.channel),
            topic: &env.topic,
            kind: &env.kind,
            timestamp_ms: env.timestamp_ms(),
            node: &env.node,
            correlation_id: env.correlation_id.as_deref(),
            causation_id: env.causation_id.as_deref(),
            schema_version: env.schema_version,
            payload: env.payload_text(),
        })
        .collect()
}

/// A subscriber instance's `on-message` and `on-batch` exports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandlerFuncs {
    on_message: Func,
    on_batch: Func,
}

impl HandlerFuncs {
    /// Looks the exports up in a freshly instantiated subscriber.
    pub(crate) fn load(
        store: &mut Store<PluginState>,
        instance: &Instance,
    ) -> wasmtime::Result<HandlerFuncs> {
        let func = |store: &mut Store<PluginState>, name: &str| -> wasmtime::Result<Func> {
            let iface = instance
                .get_export_index(&mut *store, None, HANDLER)
                .ok_or_else(|| wasmtime::format_err!("no export `{HANDLER}`"))?;
            let idx = instance
                .get_export_index(&mut *store, Some(&iface), name)
                .ok_or_else(|| wasmtime::format_err!("no export `{HANDLER}#{name}`"))?;
            instance
                .get_func(&mut *store, idx)
                .ok_or_else(|| wasmtime::format_err!("`{HANDLER}#{name}` is not a function"))
        };
        Ok(HandlerFuncs {
            on_message: func(store, "on-message")?,
            on_batch: func(store, "on-batch")?,
        })
    }

    /// Calls `on-message`.
    pub(crate) fn on_message(
        &self,
        mut store: impl AsContextMut,
        msg: &MessageRef<'_>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let f = self
            .on_message
            .typed::<(&MessageRef<'_>,), (Result<(), WitError>,)>(store.as_context())?;
        Ok(f.call(&mut store, (msg,))?.0)
    }

    /// Calls `on-batch`; returns the messages the guest failed.
    pub(crate) fn on_batch(
        &self,
        mut store: impl AsContextMut,
        msgs: &[MessageRef<'_>],
    ) -> wasmtime::Result<Vec<BatchFailure>> {
        let f = self
            .on_batch
            .typed::<(&[MessageRef<'_>],), (Vec<BatchFailure>,)>(store.as_context())?;
        Ok(f.call(&mut store, (msgs,))?.0)
    }
}
