//! Stores over HTTP: append (idempotent by event id), read a stream or a
//! selector, list streams, and subscribe — catch-up then live, resumable
//! by global position — over Server-Sent Events or a WebSocket; and the
//! emitter workers' state.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Need, Principal};
use super::error::{ApiError, JsonBody};
use super::ApiState;
use crate::store::json::EventJson;
use crate::store::{
    Direction, ExpectedVersion, NewEvent, Payload, RecordedEvent, Selector, Store, StoreError,
};

/// Events read or sent per step of a subscription's catch-up.
const PAGE: usize = 256;
/// The most events one read answers.
const MAX_COUNT: usize = 10_000;

/// The answer for a store error: 404 (no such store), 409 (wrong expected
/// version, with `current_version`; a partial duplicate), 422 (a bad
/// name), 500 otherwise.
fn store_error(e: &StoreError) -> Response {
    let (status, field) = match e {
        StoreError::WrongExpectedVersion { current, .. } => {
            let body = json!({
                "error": e.to_string(),
                "field": "expected",
                "current_version": current,
            });
            return (StatusCode::CONFLICT, Json(body)).into_response();
        }
        StoreError::PartialDuplicate { .. } => (StatusCode::CONFLICT, Some("events")),
        StoreError::InvalidName { kind, .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(match *kind {
                "event type" => "events",
                "store id" => "store",
                _ => "stream",
            }),
        ),
        StoreError::EmptyAppend { .. } => (StatusCode::BAD_REQUEST, Some("events")),
        StoreError::InvalidSelector { .. } => (StatusCode::UNPROCESSABLE_ENTITY, Some("stream")),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    let mut err = ApiError::new(status, e.to_string());
    if let Some(f) = field {
        err = err.at(f);
    }
    err.into_response()
}

/// An existing store (reads never create one): 404 naming `store` otherwise.
// The error is the handler's answer, returned as it is.
#[allow(clippy::result_large_err)]
fn existing(state: &ApiState, id: &str) -> Result<Store, Response> {
    let known = state.stores.ids().iter().any(|s| s == id)
        || state.stores.data_dir().join(format!("{id}.redb")).exists();
    if !known {
        return Err(
            ApiError::new(StatusCode::NOT_FOUND, format!("no store `{id}`"))
                .at("store")
                .into_response(),
        );
    }
    state.stores.get(id).map_err(|e| store_error(&e))
}

/// One event of an append.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its data (JSON).
    pub data: Value,
    /// Its metadata (JSON).
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Its id: a retry with the same ids is not appended twice.
    #[serde(default)]
    pub id: Option<uuid::Uuid>,
}

/// Body of an append.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    /// `any` (default), `no_stream`, `stream_exists`, or the stream's
    /// current version as a number.
    #[serde(default)]
    pub expected: Option<Value>,
    /// The events, appended atomically. Optional only for serde: a body
    /// without `events` is refused naming `events` (not `body`).
    #[serde(default)]
    pub events: Option<Vec<EventRequest>>,
}

fn expected_of(v: Option<Value>) -> Result<ExpectedVersion, ApiError> {
    match v {
        None => Ok(ExpectedVersion::Any),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(ExpectedVersion::Exact)
            .ok_or_else(|| ApiError::bad("expected", "a version is a non-negative integer")),
        Some(Value::String(s)) => s.parse().map_err(|e: String| ApiError::bad("expected", e)),
        Some(_) => Err(ApiError::bad(
            "expected",
            "`expected` is \"any\", \"no_stream\", \"stream_exists\" or a version number",
        )),
    }
}

/// `POST /v1/stores/{store}/streams/{stream}` → 201 with the positions
/// (`replayed: true` for a retry whose event ids were all appended before:
/// nothing is written twice). Each successful append is recorded as a
/// `DataChange` on `audit`.
pub async fn append(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path((store, stream)): Path<(String, String)>,
    JsonBody(body): JsonBody<AppendRequest>,
) -> Result<Response, Response> {
    state
        .require(
            &who,
            &Need::Append(store.clone()),
            &format!("store {store}"),
        )
        .map_err(IntoResponse::into_response)?;
    let expected = expected_of(body.expected).map_err(IntoResponse::into_response)?;
    let Some(events) = body.events else {
        return Err(ApiError::bad(
            "events",
            "an append needs `events`: [{\"type\", \"data\", \"metadata\"?, \"id\"?}, …]",
        )
        .into_response());
    };
    if events.is_empty() {
        return Err(ApiError::bad("events", "an append needs at least one event").into_response());
    }
    // An id twice in one batch would make the batch's own retry look like
    // a partial duplicate: refused up front.
    let mut ids = std::collections::HashSet::new();
    for (i, e) in events.iter().enumerate() {
        if let Some(id) = e.id {
            if !ids.insert(id) {
                return Err(ApiError::bad(
                    format!("events[{i}].id"),
                    format!("event id {id} appears more than once in this append"),
                )
                .into_response());
            }
        }
    }
    let events: Vec<NewEvent> = events
        .into_iter()
        .map(|e| {
            let mut ev = NewEvent::json(e.event_type, e.data);
            if let Some(m) = e.metadata {
                ev = ev.with_metadata(Payload::Json(m));
            }
            if let Some(id) = e.id {
                ev = ev.with_id(id);
            }
            ev
        })
        .collect();
    let result = state
        .stores
        .append_by(
            &who.name,
            Some(who.client.ip().to_string()),
            &store,
            &stream,
            expected,
            events,
        )
        .await
        .map_err(|e| store_error(&e))?;
    Ok((StatusCode::CREATED, Json(result)).into_response())
}

/// Query of a read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// First event number (a stream) or global position (`$all`, `$et-…`,
    /// `$pattern-…`); default: the start (forward) or the end (backward).
    pub from: Option<u64>,
    /// How many, at most 10,000 (default 100).
    pub count: Option<usize>,
    /// `forward` (default) or `backward` (streams and `$all`).
    pub direction: Option<String>,
}

fn query<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    let q = uri.query().unwrap_or("");
    serde_urlencoded_like(q)
}

/// Deserialises a query string (single values) with the gateway's errors.
fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    let mut map = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        if k == super::TOKEN_PARAMETER {
            continue;
        }
        let value = v
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(v.into_owned()));
        map.insert(k.into_owned(), value);
    }
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "query".into() } else { path };
        ApiError::bad(field, format!("invalid query: {}", e.inner()))
    })
}

/// `GET /v1/stores/{store}/streams/{stream}?from=&count=&direction=` →
/// `{"events": [...]}`; `stream` may be `$all`, `$et-<type>` or
/// `$pattern-<glob>`.
pub async fn read(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path((store, stream)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Result<Response, Response> {
    state
        .require(&who, &Need::Read, &format!("store {store}"))
        .map_err(IntoResponse::into_response)?;
    let q: ReadQuery = query(&uri).map_err(IntoResponse::into_response)?;
    let count = q.count.unwrap_or(100).min(MAX_COUNT);
    let direction = match q.direction.as_deref() {
        None | Some("forward") => Direction::Forward,
        Some("backward") => Direction::Backward,
        Some(other) => {
            return Err(ApiError::bad(
                "direction",
                format!("`direction` is forward or backward, not `{other}`"),
            )
            .into_response())
        }
    };
    let s = existing(&state, &store)?;
    let selector: Selector = stream.parse().map_err(|e| store_error(&e))?;
    let events = tokio::task::spawn_blocking(move || -> Result<Vec<RecordedEvent>, StoreError> {
        let from_start = if direction == Direction::Forward {
            0
        } else {
            u64::MAX
        };
        let from = q.from.unwrap_or(from_start);
        match (&selector, direction) {
            (Selector::Stream(name), d) => s.read_stream(name, from, count, d),
            (Selector::All, d) => s.read_all(from, count, d),
            (_, Direction::Forward) => s.read_from(&selector, from, count),
            (_, Direction::Backward) => Err(StoreError::InvalidSelector {
                selector: selector.to_string(),
                reason: "reads forward only".into(),
            }),
        }
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())?
    .map_err(|e| store_error(&e))?;
    let body: Vec<EventJson<'_>> = events.iter().map(EventJson::new).collect();
    Ok(Json(json!({ "events": body })).into_response())
}

/// `GET /v1/stores/{store}/streams` → `{"streams": [{"name", "version",
/// "event_count"}]}`.
pub async fn streams(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(store): Path<String>,
) -> Result<Response, Response> {
    state
        .require(&who, &Need::Read, &format!("store {store}"))
        .map_err(IntoResponse::into_response)?;
    let s = existing(&state, &store)?;
    let list = tokio::task::spawn_blocking(move || s.list_streams())
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        })?
        .map_err(|e| store_error(&e))?;
    Ok(Json(json!({ "streams": list })).into_response())
}

/// Query of a subscription.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeQuery {
    /// `beginning` (default), `now`, or a global position (included).
    from: Option<Value>,
}

/// `GET /v1/stores/{store}/streams/{stream}/subscribe?from=beginning|now|N`:
/// catch-up from history, then live, with no gap and no duplicate at the
/// switch. Server-Sent Events (`Accept: text/event-stream`; each event's
/// `id:` is its global position, and a reconnect with `Last-Event-ID: P`
/// resumes at `P + 1`) or a WebSocket (one event JSON per text frame). The
/// events are read from the store at the client's pace, so a slow client
/// holds nothing back and misses nothing.
pub async fn subscribe(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path((store, stream)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, Response> {
    state
        .require(&who, &Need::Read, &format!("store {store}"))
        .map_err(IntoResponse::into_response)?;
    let q: SubscribeQuery = query(&uri).map_err(IntoResponse::into_response)?;
    let s = existing(&state, &store)?;
    let selector: Selector = stream.parse().map_err(|e| store_error(&e))?;
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad(
                        "last-event-id",
                        "Last-Event-ID is the global position of the last event received",
                    )
                    .into_response()
                })?,
        ),
    };
    let start = match (resume, q.from) {
        // Saturating: `Last-Event-ID: 18446744073709551615` must not
        // overflow (a panic would drop the connection without an answer).
        (Some(p), _) => p.saturating_add(1),
        (None, None) => 0,
        (None, Some(Value::String(s_))) if s_ == "beginning" => 0,
        (None, Some(Value::String(s_))) if s_ == "now" => s
            .head_position()
            .map_err(|e| store_error(&e))?
            .map_or(0, |h| h + 1),
        (None, Some(Value::Number(n))) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
        (None, Some(_)) => {
            return Err(
                ApiError::bad("from", "`from` is beginning, now or a global position")
                    .into_response(),
            )
        }
    };
    super::stream_wanted(&headers, ws.is_ok(), "a subscription")
        .map_err(IntoResponse::into_response)?;
    let permit = state.stream_slot().map_err(IntoResponse::into_response)?;
    let reader = Reader::new(s, selector, start);
    if let Ok(ws) = ws {
        return Ok(ws.on_upgrade(move |socket| async move {
            let _permit = permit;
            websocket(socket, reader).await;
        }));
    }
    let events =
        futures_util::stream::unfold((reader, permit), |(mut reader, permit)| async move {
            let e = reader.next().await?;
            let event = Event::default()
                .event("event")
                .id(e.global_position.to_string())
                .data(serde_json::to_string(&EventJson::new(&e)).unwrap_or_default());
            Some((Ok::<_, Infallible>(event), (reader, permit)))
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn websocket(mut socket: WebSocket, mut reader: Reader) {
    loop {
        tokio::select! {
            e = reader.next() => {
                let Some(e) = e else { break };
                let text = serde_json::to_string(&EventJson::new(&e)).unwrap_or_default();
                if socket.send(WsMessage::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Reads a selector forward from a position: history first, then each new
/// append as the store announces it.
struct Reader {
    store: Store,
    selector: Selector,
    next: u64,
    page: std::collections::VecDeque<RecordedEvent>,
    appends: tokio::sync::watch::Receiver<Option<u64>>,
}

impl Reader {
    fn new(store: Store, selector: Selector, next: u64) -> Reader {
        // Subscribed before the first read, so no append is missed.
        let appends = store.subscribe_appends();
        Reader {
            store,
            selector,
            next,
            page: Default::default(),
            appends,
        }
    }

    /// The next event; `None` when the store is gone.
    async fn next(&mut self) -> Option<RecordedEvent> {
        loop {
            if let Some(e) = self.page.pop_front() {
                return Some(e);
            }
            let (store, selector, from) = (self.store.clone(), self.selector.clone(), self.next);
            let batch =
                tokio::task::spawn_blocking(move || store.read_batch(&selector, from, PAGE))
                    .await
                    .ok()?
                    .ok()?;
            self.next = batch.next_position;
            if !batch.events.is_empty() {
                self.page.extend(batch.events);
                continue;
            }
            let want = self.next;
            self.appends
                .wait_for(|h| h.is_some_and(|h| h >= want))
                .await
                .ok()?;
        }
    }
}

/// `GET /v1/emitters` → `{"emitters": [{"id", "store", "selector",
/// "subscriber", "persistent", "position", "lag", "paused", "delivered",
/// "running"}]}`; `lag` is how many positions the store's head is ahead.
pub async fn emitters(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Result<Response, ApiError> {
    state.require(&who, &Need::Read, "emitters")?;
    let list: Vec<Value> = state
        .emitters
        .list()
        .into_iter()
        .map(|e| {
            let head = state
                .stores
                .get(&e.store)
                .ok()
                .and_then(|s| s.head_position().ok().flatten());
            let lag = head.map_or(0, |h| (h + 1).saturating_sub(e.position));
            let mut v = serde_json::to_value(&e).unwrap_or_default();
            v["lag"] = lag.into();
            v
        })
        .collect();
    Ok(Json(json!({ "emitters": list })).into_response())
}
