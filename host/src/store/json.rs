//! The JSON form of recorded events, shared by the CLI and the API.

use base64::Engine as _;
use serde::Serialize;

use super::{Payload, RecordedEvent};

/// An event as the CLI's `read` prints it and the API answers it: one JSON
/// object. A JSON payload is the
/// value itself (`data`, `metadata`); a non-JSON payload is given as
/// `data_content_type` + `data_base64` (`metadata_…` likewise) instead.
#[derive(Debug, Serialize)]
pub struct EventJson<'a> {
    /// Position in `$all`.
    pub global_position: u64,
    /// The stream.
    pub stream_id: &'a str,
    /// Number in the stream.
    pub event_number: u64,
    /// The type.
    pub event_type: &'a str,
    /// The id.
    pub event_id: uuid::Uuid,
    /// When it was appended.
    pub created: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// A JSON payload.
    pub data: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// A non-JSON payload's content type.
    pub data_content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// A non-JSON payload, base64.
    pub data_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// JSON metadata.
    pub metadata: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Non-JSON metadata's content type.
    pub metadata_content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Non-JSON metadata, base64.
    pub metadata_base64: Option<String>,
}

impl<'a> EventJson<'a> {
    /// The JSON form of `e`.
    pub fn new(e: &'a RecordedEvent) -> Self {
        let parts = |p: &'a Payload| match p {
            Payload::Json(v) => (Some(v), None, None),
            Payload::Bytes {
                content_type,
                bytes,
            } => (
                None,
                Some(content_type.as_str()),
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
        };
        let (data, data_content_type, data_base64) = parts(&e.data);
        let (metadata, metadata_content_type, metadata_base64) = parts(&e.metadata);
        EventJson {
            global_position: e.global_position,
            stream_id: &e.stream_id,
            event_number: e.event_number,
            event_type: &e.event_type,
            event_id: e.event_id,
            created: e.created,
            data,
            data_content_type,
            data_base64,
            metadata,
            metadata_content_type,
            metadata_base64,
        }
    }
}
