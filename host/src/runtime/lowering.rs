//! Envelopes handed to a subscriber's `on-message`/`on-batch` without
//! intermediate copies.
//!
//! The bindgen `message` record owns its strings, so delivering through it
//! would first copy every topic, kind, node and payload into fresh host
//! `String`s, which wasmtime then copies again into guest memory. A
//! [`MessageRef`] is the same WIT record (`exesdb:plugin/types.message`)
//! over borrowed strings: each field is copied straight from the envelope
//! into the guest. Only the id is rendered (UUID → hyphenated text), into
//! one buffer per batch ([`Ids`]).
//!
//! Lowering a record field by field (what `#[derive(Lower)]` generates)
//! looks the guest's memory up again for every field; a message has ten.
//! [`MessageRef`]'s own `Lower` allocates the strings in the guest, then
//! looks its memory up once to copy them and the record's bytes (assembled
//! on the stack). Its layout is computed with the same canonical-ABI
//! arithmetic the derive uses, from each field type's ABI.
//!
//! The typed functions are checked against the component's own types on
//! every call (`Func::typed`), so a record that drifted from `wit/` is a
//! type error, never a silent misread.

use std::mem::MaybeUninit;
use std::sync::{Arc, LazyLock};

use wasmtime::component::__internal::wasmtime_environ::component::StringEncoding;
use wasmtime::component::__internal::{bad_type_info, InterfaceType, LowerContext};
use wasmtime::component::{ComponentType, Func, Instance, Lower};
use wasmtime::{AsContextMut, Store};

use super::bindings::subscriber::exports::exesdb::plugin::handler::BatchFailure;
use super::bindings::wit_types::{Channel as WitChannel, Error as WitError};
use super::host_impl::wit_channel;
use super::state::PluginState;
use crate::messages::Envelope;

/// `exesdb:plugin/types.message` over borrowed strings.
#[derive(ComponentType)]
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

/// Byte offsets of [`MessageRef`]'s fields in linear memory.
struct Layout {
    id: usize,
    channel: usize,
    topic: usize,
    kind: usize,
    timestamp_ms: usize,
    node: usize,
    correlation_id: usize,
    causation_id: usize,
    schema_version: usize,
    payload: usize,
}

/// Size of the record in linear memory.
const RECORD_SIZE: usize = <MessageRef<'static> as ComponentType>::SIZE32;

/// Where an `option<string>`'s string sits after its discriminant byte.
const OPTION_PAYLOAD: usize = <&str as ComponentType>::ALIGN32 as usize;

impl Layout {
    /// The field offsets, in WIT order, as the canonical ABI lays them out.
    fn get() -> Layout {
        let string = <&str as ComponentType>::ABI;
        let option = <Option<&str> as ComponentType>::ABI;
        let mut at = 0;
        // Struct expressions evaluate their fields in the order written.
        Layout {
            id: string.next_field32_size(&mut at),
            channel: <WitChannel as ComponentType>::ABI.next_field32_size(&mut at),
            topic: string.next_field32_size(&mut at),
            kind: string.next_field32_size(&mut at),
            timestamp_ms: <u64 as ComponentType>::ABI.next_field32_size(&mut at),
            node: string.next_field32_size(&mut at),
            correlation_id: option.next_field32_size(&mut at),
            causation_id: option.next_field32_size(&mut at),
            schema_version: <u32 as ComponentType>::ABI.next_field32_size(&mut at),
            payload: string.next_field32_size(&mut at),
        }
    }
}

/// The layout, computed once.
static LAYOUT: LazyLock<Layout> = LazyLock::new(Layout::get);

/// Allocates room for `s` in the guest (its `realloc`); returns its
/// (pointer, length). The bytes are copied later, all at once.
fn alloc_str<T>(cx: &mut LowerContext<'_, T>, s: &str) -> wasmtime::Result<(u32, u32)> {
    let len = u32::try_from(s.len())
        .ok()
        .filter(|l| *l <= i32::MAX as u32)
        .ok_or_else(|| wasmtime::format_err!("string of {} bytes too large for wasm", s.len()))?;
    let ptr = cx.realloc(0, 0, 1, s.len())?;
    Ok((u32::try_from(ptr)?, len))
}

/// Copies `bytes` to `at` in guest memory.
fn write(mem: &mut [u8], at: usize, bytes: &[u8]) -> wasmtime::Result<()> {
    mem.get_mut(at..at + bytes.len())
        .ok_or_else(|| wasmtime::format_err!("guest memory write out of bounds"))?
        .copy_from_slice(bytes);
    Ok(())
}

fn put(rec: &mut [u8; RECORD_SIZE], at: usize, bytes: &[u8]) {
    rec[at..at + bytes.len()].copy_from_slice(bytes);
}

fn put_str(rec: &mut [u8; RECORD_SIZE], at: usize, (ptr, len): (u32, u32)) {
    put(rec, at, &ptr.to_le_bytes());
    put(rec, at + 4, &len.to_le_bytes());
}

fn put_option(rec: &mut [u8; RECORD_SIZE], at: usize, s: Option<(u32, u32)>) {
    if let Some(s) = s {
        rec[at] = 1;
        put_str(rec, at + OPTION_PAYLOAD, s);
    }
}

// SAFETY: `Lower` is unsafe because the bytes written must be a valid
// `message` for the guest. Every field is written at the offset the
// canonical ABI gives it (`Layout`, from the fields' own ABI info, as the
// derive computes it), with the same encoding the standard impls use
// (little-endian integers, enum as its u8 case index, `option` as a
// discriminant byte then the payload at the string's alignment, strings as
// (ptr, len) into their own allocations from the guest's `realloc`). Non-UTF-8
// guests take the standard per-field impls.
unsafe impl Lower for MessageRef<'_> {
    fn linear_lower_to_flat<T>(
        &self,
        _cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        _dst: &mut MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        // A message has 19 flat values, more than a call passes flat: the
        // canonical ABI always passes it (alone or in a list) through memory.
        wasmtime::bail!("`message` records are only passed through linear memory")
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let l = &*LAYOUT;
        if cx.options().string_encoding != StringEncoding::Utf8 {
            return self.lower_fieldwise(cx, ty, offset, l);
        }
        // Allocate every string first (a realloc may grow memory), then look
        // the memory up once to copy them and the record.
        let id = alloc_str(cx, self.id)?;
        let topic = alloc_str(cx, self.topic)?;
        let kind = alloc_str(cx, self.kind)?;
        let node = alloc_str(cx, self.node)?;
        let correlation = self.correlation_id.map(|t| alloc_str(cx, t)).transpose()?;
        let causation = self.causation_id.map(|t| alloc_str(cx, t)).transpose()?;
        let payload = alloc_str(cx, self.payload)?;
        let mut rec = [0u8; RECORD_SIZE];
        put_str(&mut rec, l.id, id);
        rec[l.channel] = self.channel as u8;
        put_str(&mut rec, l.topic, topic);
        put_str(&mut rec, l.kind, kind);
        put(&mut rec, l.timestamp_ms, &self.timestamp_ms.to_le_bytes());
        put_str(&mut rec, l.node, node);
        put_option(&mut rec, l.correlation_id, correlation);
        put_option(&mut rec, l.causation_id, causation);
        put(
            &mut rec,
            l.schema_version,
            &self.schema_version.to_le_bytes(),
        );
        put_str(&mut rec, l.payload, payload);
        let strings = [
            (self.id, id),
            (self.topic, topic),
            (self.kind, kind),
            (self.node, node),
            (self.payload, payload),
        ];
        let optional = [
            self.correlation_id.zip(correlation),
            self.causation_id.zip(causation),
        ];
        let mem = cx.as_slice_mut();
        for (text, (ptr, _)) in strings.into_iter().chain(optional.into_iter().flatten()) {
            write(mem, ptr as usize, text.as_bytes())?;
        }
        write(mem, offset, &rec)
    }
}

impl MessageRef<'_> {
    /// The standard per-field lowering, for guests whose strings are not UTF-8.
    fn lower_fieldwise<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
        l: &Layout,
    ) -> wasmtime::Result<()> {
        let fields: Vec<InterfaceType> = match ty {
            InterfaceType::Record(i) => cx.types[i].fields.iter().map(|f| f.ty).collect(),
            _ => bad_type_info(),
        };
        self.id
            .linear_lower_to_memory(cx, fields[0], offset + l.id)?;
        self.channel
            .linear_lower_to_memory(cx, fields[1], offset + l.channel)?;
        self.topic
            .linear_lower_to_memory(cx, fields[2], offset + l.topic)?;
        self.kind
            .linear_lower_to_memory(cx, fields[3], offset + l.kind)?;
        self.timestamp_ms
            .linear_lower_to_memory(cx, fields[4], offset + l.timestamp_ms)?;
        self.node
            .linear_lower_to_memory(cx, fields[5], offset + l.node)?;
        self.correlation_id
            .linear_lower_to_memory(cx, fields[6], offset + l.correlation_id)?;
        self.causation_id
            .linear_lower_to_memory(cx, fields[7], offset + l.causation_id)?;
        self.schema_version
            .linear_lower_to_memory(cx, fields[8], offset + l.schema_version)?;
        self.payload
            .linear_lower_to_memory(cx, fields[9], offset + l.payload)?;
        Ok(())
    }
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

/// The function `name` of the exported interface `iface` (e.g.
/// `exesdb:plugin/handler@0.2.0`) of an instance.
pub(crate) fn export_func(
    store: &mut Store<PluginState>,
    instance: &Instance,
    iface: &str,
    name: &str,
) -> wasmtime::Result<Func> {
    let i = instance
        .get_export_index(&mut *store, None, iface)
        .ok_or_else(|| wasmtime::format_err!("no export `{iface}`"))?;
    let idx = instance
        .get_export_index(&mut *store, Some(&i), name)
        .ok_or_else(|| wasmtime::format_err!("no export `{iface}#{name}`"))?;
    instance
        .get_func(&mut *store, idx)
        .ok_or_else(|| wasmtime::format_err!("`{iface}#{name}` is not a function"))
}

/// A subscriber instance's `on-message` and `on-batch` exports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandlerFuncs {
    on_message: Func,
    on_batch: Func,
}

impl HandlerFuncs {
    /// Looks the exports up in a freshly instantiated subscriber, in its
    /// exported `handler` interface `iface`.
    pub(crate) fn load(
        store: &mut Store<PluginState>,
        instance: &Instance,
        iface: &str,
    ) -> wasmtime::Result<HandlerFuncs> {
        Ok(HandlerFuncs {
            on_message: export_func(store, instance, iface, "on-message")?,
            on_batch: export_func(store, instance, iface, "on-batch")?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_canonical_abi_of_the_wit_record() {
        // By hand from the canonical ABI: strings are (u32, u32) at align 4,
        // the enum one byte, u64 at align 8, option<string> a byte then the
        // string at 4; the record is aligned to 8.
        let l = Layout::get();
        assert_eq!(
            [
                l.id,
                l.channel,
                l.topic,
                l.kind,
                l.timestamp_ms,
                l.node,
                l.correlation_id,
                l.causation_id,
                l.schema_version,
                l.payload
            ],
            [0, 8, 12, 20, 32, 40, 48, 60, 72, 76]
        );
        assert_eq!(RECORD_SIZE, 88);
        assert_eq!(OPTION_PAYLOAD, 4);
    }

    #[test]
    fn ids_are_rendered_in_order() {
        let msgs: Vec<Arc<Envelope>> = (0..3)
            .map(|i| {
                Arc::new(Envelope::new(
                    crate::bus::Channel::Events,
                    "s:x",
                    "custom.x",
                    serde_json::json!({ "i": i }),
                    "n",
                ))
            })
            .collect();
        let ids = Ids::of(&msgs);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(ids.get(i), m.id.to_string());
        }
    }
}
