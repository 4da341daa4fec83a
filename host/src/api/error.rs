//! The gateway's error answer: `{"error": "…", "field": "…"}` with a 4xx
//! (or 503) status. `field` names the part of the request at fault, when
//! one is: a body field (`topic`, `messages[3].kind`), a path or query
//! parameter (`channel`, `pattern`), or a header (`authorization`).

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::bus::BusError;
use crate::messages::MessageError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// The HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub error: String,
    /// The part of the request at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// `status` with `error`, naming no field.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            field: None,
        }
    }

    /// 400 naming `field`.
    pub fn bad(field: impl Into<String>, error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error).at(field)
    }

    /// The same error, naming `field`.
    #[must_use]
    pub fn at(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// A bus refusal of a message, naming `prefix` + the field at fault
    /// (`topic` for a bad topic, `payload` for a bad or oversized payload,
    /// `kind` for a kind that does not belong): 413 for a payload over the
    /// limit, 503 when a back-pressured subscriber did not make room, 422
    /// otherwise.
    pub fn from_bus(e: &BusError, prefix: &str) -> ApiError {
        let (status, field) = match e {
            BusError::Topic(_) => (StatusCode::UNPROCESSABLE_ENTITY, "topic"),
            BusError::Message(MessageError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload")
            }
            BusError::Message(
                MessageError::WrongChannel { .. } | MessageError::UnknownKind { .. },
            ) => (StatusCode::UNPROCESSABLE_ENTITY, "kind"),
            BusError::Message(_) => (StatusCode::UNPROCESSABLE_ENTITY, "payload"),
            BusError::Backpressure { .. } => (StatusCode::SERVICE_UNAVAILABLE, ""),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, ""),
        };
        let err = ApiError::new(status, e.to_string());
        if field.is_empty() {
            err
        } else {
            err.at(format!("{prefix}{field}"))
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({field})", self.error),
            None => f.write_str(&self.error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

/// The JSON object body of a request, with errors in the gateway's shape:
/// the serde path of a wrong field becomes `field`; a body that is not a
/// JSON object is a 400 naming `body`, one without `Content-Type:
/// application/json` a 415 naming `content-type`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if !is_json {
            drain(req).await;
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON with `Content-Type: application/json`",
            )
            .at("content-type"));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                let status = e.status();
                ApiError::new(status, format!("cannot read the body: {e}")).at("body")
            })?;
        // Every body of the gateway is an object; serde would also read a
        // struct from an array of its fields in order, which no client
        // means to send.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad(
                "body",
                "invalid body: the body must be a JSON object",
            ));
        }
        // The common case, a good body, is parsed once at full speed; only a
        // refused one is parsed again, tracking the path to the fault.
        if let Ok(value) = serde_json::from_slice(&bytes) {
            return Ok(JsonBody(value));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // A body that is not JSON is the body's fault, wherever the
            // parser stopped; a wrong value is its field's.
            let syntax = matches!(
                inner.classify(),
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof
            );
            let field = if path == "." || syntax {
                "body".to_owned()
            } else {
                path
            };
            ApiError::bad(field, format!("invalid body: {inner}"))
        })?;
        // Nothing but whitespace may follow the JSON value.
        de.end()
            .map_err(|e| ApiError::bad("body", format!("invalid body: {e}")))?;
        Ok(JsonBody(value))
    }
}

/// Bodies up to this size are read and dropped when their request is
/// refused before its handler read them (see [`drain`]).
const DRAIN_LIMIT: usize = 64 * 1024;

/// Reads and drops the body of a request refused before anything read it,
/// so that the client can keep using its connection: hyper closes a
/// keep-alive connection whose request body was left unread, and a client
/// that has already sent its next request on it sees the connection drop
/// instead of an answer. `false` when the body was not drained (declared
/// or found larger than [`DRAIN_LIMIT`], or not sent within a second): the
/// connection will close.
pub(crate) async fn drain(req: axum::extract::Request) -> bool {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return false;
    }
    let read = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT);
    matches!(
        tokio::time::timeout(Duration::from_secs(1), read).await,
        Ok(Ok(_))
    )
}

/// `answer` to a request refused before its body was read: the body is
/// drained first ([`drain`]); when it cannot be, the answer says
/// `Connection: close`, so that the client does not reuse the connection.
pub(crate) async fn refuse(req: axum::extract::Request, answer: impl IntoResponse) -> Response {
    let drained = drain(req).await;
    let mut response = answer.into_response();
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_names_the_error_and_the_field() {
        let e = ApiError::bad("messages[2].topic", "bad topic");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"error": "bad topic", "field": "messages[2].topic"})
        );
        let e = ApiError::new(StatusCode::NOT_FOUND, "no such store");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"error": "no such store"})
        );
    }
}
