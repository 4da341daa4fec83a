//! The on-disk encoding of an event record (the value of the `events` table).
//!
//! A record is a [postcard](https://docs.rs/postcard) encoding of
//! [`StoredEvent`]: integers as varints, strings and byte strings as a varint
//! length then the bytes, fields in declaration order. postcard's wire format
//! is specified and stable since 1.0, so it is safe as a file format. The
//! global position is the record's key and is not repeated inside it.
//!
//! ```text
//! version: u8 (= 1)          event_id: [u8; 16]
//! stream_id: str             event_number: varint u64
//! event_type: str            created_secs: varint i64 (zigzag)
//! created_nanos: varint u32  data_type: str, data: bytes
//! meta_type: str, meta: bytes
//! ```

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::types::{Payload, RecordedEvent};

/// The record layout version written in each record.
const RECORD_VERSION: u8 = 1;

/// One event as stored, borrowing its strings and bytes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredEvent<'a> {
    version: u8,
    event_id: [u8; 16],
    #[serde(borrow)]
    stream_id: &'a str,
    event_number: u64,
    event_type: &'a str,
    created_secs: i64,
    created_nanos: u32,
    data_type: &'a str,
    data: RawBytes<'a>,
    meta_type: &'a str,
    meta: RawBytes<'a>,
}

/// A byte string serialised with `serialize_bytes` (one copy, not one call
/// per byte); the same wire form as a `[u8]` sequence in postcard.
#[derive(Debug)]
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawBytes<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de [u8]>::deserialize(d).map(RawBytes)
    }
}

/// A payload in its stored form: content type and bytes.
#[derive(Debug)]
pub(crate) struct EncodedPayload {
    pub(crate) content_type: String,
    pub(crate) bytes: Vec<u8>,
}

impl EncodedPayload {
    /// Encodes `p` (JSON with serde_json), taking its bytes without copying.
    pub(crate) fn new(p: Payload) -> Self {
        match p {
            Payload::Json(v) => EncodedPayload {
                content_type: Payload::JSON_CONTENT_TYPE.to_owned(),
                bytes: serde_json::to_vec(&v).unwrap_or_default(),
            },
            Payload::Bytes {
                content_type,
                bytes,
            } => EncodedPayload {
                content_type,
                bytes,
            },
        }
    }
}

/// An event ready to be written, its payloads already encoded.
#[derive(Debug)]
pub(crate) struct PreparedEvent {
    pub(crate) event_id: Uuid,
    pub(crate) event_type: String,
    pub(crate) data: EncodedPayload,
    pub(crate) meta: EncodedPayload,
}

/// Appends the record of `e` as event `event_number` of `stream_id` to `out`
/// (cleared first).
pub(crate) fn encode(
    e: &PreparedEvent,
    stream_id: &str,
    event_number: u64,
    created: &DateTime<chrono::Utc>,
    out: &mut Vec<u8>,
) {
    out.clear();
    let rec = StoredEvent {
        version: RECORD_VERSION,
        event_id: *e.event_id.as_bytes(),
        stream_id,
        event_number,
        event_type: &e.event_type,
        created_secs: created.timestamp(),
        created_nanos: created.timestamp_subsec_nanos(),
        data_type: &e.data.content_type,
        data: RawBytes(&e.data.bytes),
        meta_type: &e.meta.content_type,
        meta: RawBytes(&e.meta.bytes),
    };
    // Serialising into a Vec only fails on allocation failure.
    let buf = std::mem::take(out);
    *out = postcard::to_extend(&rec, buf).expect("postcard encoding into a Vec");
}

/// Decodes the record stored at `global_position`; the error is a description
/// for [`StoreError::Corrupt`](super::StoreError::Corrupt).
pub(crate) fn decode(global_position: u64, bytes: &[u8]) -> Result<RecordedEvent, String> {
    let rec: StoredEvent<'_> = postcard::from_bytes(bytes)
        .map_err(|e| format!("event at position {global_position}: {e}"))?;
    if rec.version != RECORD_VERSION {
        return Err(format!(
            "event at position {global_position}: record version {} (expected {RECORD_VERSION})",
            rec.version
        ));
    }
    let created = DateTime::from_timestamp(rec.created_secs, rec.created_nanos)
        .ok_or_else(|| format!("event at position {global_position}: timestamp out of range"))?;
    Ok(RecordedEvent {
        event_id: Uuid::from_bytes(rec.event_id),
        event_type: rec.event_type.to_owned(),
        data: Payload::from_stored(rec.data_type, rec.data.0),
        metadata: Payload::from_stored(rec.meta_type, rec.meta.0),
        stream_id: rec.stream_id.to_owned(),
        event_number: rec.event_number,
        global_position,
        created,
    })
}

/// Decodes only the stream and type of the record at `global_position`, for
/// selector filtering without building payloads.
pub(crate) fn peek(global_position: u64, bytes: &[u8]) -> Result<(&str, &str), String> {
    let rec: StoredEvent<'_> = postcard::from_bytes(bytes)
        .map_err(|e| format!("event at position {global_position}: {e}"))?;
    Ok((rec.stream_id, rec.event_type))
}
