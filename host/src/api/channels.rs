//! Channels over HTTP: publish (one message or a batch), live streams
//! (Server-Sent Events or a WebSocket on the same path), and alert acks.

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
use super::feed::{Feed, Item};
use super::ApiState;
use crate::bus::Channel;
use crate::messages::Envelope;

/// One message to publish.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// `:`-separated topic.
    pub topic: String,
    /// The spec kind, or `custom.<name>`.
    pub kind: String,
    /// The payload (any JSON for custom kinds; the kind's schema otherwise).
    pub payload: Value,
    /// Correlation id to stamp.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Causation id to stamp.
    #[serde(default)]
    pub causation_id: Option<String>,
}

/// A batch to publish.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The messages, published in order.
    pub messages: Vec<PublishRequest>,
}

/// The channel of a path, or a 404 naming `channel`.
fn channel_of(name: &str) -> Result<Channel, ApiError> {
    name.parse::<Channel>()
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()).at("channel"))
}

/// The envelope for `req` on `channel`, checked as the bus checks it.
fn envelope(
    state: &ApiState,
    channel: Channel,
    req: PublishRequest,
    prefix: &str,
) -> Result<Envelope, ApiError> {
    crate::bus::validate_topic(&req.topic).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).at(format!("{prefix}topic"))
    })?;
    if req.kind.is_empty() {
        return Err(ApiError::bad(
            format!("{prefix}kind"),
            "`kind` must not be empty",
        ));
    }
    let mut env = Envelope::new(channel, req.topic, req.kind, req.payload, state.bus.node());
    env.correlation_id = req.correlation_id;
    env.causation_id = req.causation_id;
    crate::messages::validate(&env, state.bus.config().max_payload_bytes)
        .map_err(|e| ApiError::from_bus(&e.into(), prefix))?;
    Ok(env)
}

/// `POST /v1/channels/{channel}/messages`: `201 {"id"}` for one message,
/// `201 {"ids": [...]}` for a batch. A batch is checked whole before any
/// message is published: one bad message refuses the batch, naming it
/// (`messages[3].kind`).
pub async fn publish(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(channel): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let channel = channel_of(&channel)?;
    state.require(&who, &Need::Publish(channel), &format!("channel {channel}"))?;
    let batch = body.get("messages").is_some();
    // A struct would also be read from an array of its fields: a message
    // must be an object.
    if let Some(i) = body["messages"]
        .as_array()
        .and_then(|all| all.iter().position(|m| !m.is_object()))
    {
        return Err(ApiError::bad(
            format!("messages[{i}]"),
            "invalid body: a message is an object {\"topic\", \"kind\", \"payload\", …}",
        ));
    }
    let parse = |v: Value| -> Result<Vec<(PublishRequest, String)>, ApiError> {
        if batch {
            let b: BatchRequest = serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { "body".into() } else { path };
                ApiError::bad(field, format!("invalid body: {}", e.inner()))
            })?;
            if b.messages.is_empty() {
                return Err(ApiError::bad(
                    "messages",
                    "a batch needs at least one message",
                ));
            }
            Ok(b.messages
                .into_iter()
                .enumerate()
                .map(|(i, m)| (m, format!("messages[{i}].")))
                .collect())
        } else {
            let m: PublishRequest = serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { "body".into() } else { path };
                ApiError::bad(field, format!("invalid body: {}", e.inner()))
            })?;
            Ok(vec![(m, String::new())])
        }
    };
    let requests = parse(body)?;
    let envelopes = requests
        .into_iter()
        .map(|(req, prefix)| envelope(&state, channel, req, &prefix))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ids = Vec::with_capacity(envelopes.len());
    for env in envelopes {
        ids.push(env.id.to_string());
        state
            .bus
            .broadcast(env)
            .await
            .map_err(|e| ApiError::from_bus(&e, ""))?;
    }
    let body = if batch {
        json!({ "ids": ids })
    } else {
        json!({ "id": ids[0] })
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// How a stream shows each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The envelope's JSON (the default).
    Envelope,
    /// `{"line", "class", "envelope"}`: the line the console prints for it
    /// (see [`crate::logging::lines`]), its colour class (`success`,
    /// `failure`, `action`, `health`, `plain`) and the envelope.
    Console,
}

/// The `pattern` parameters of a query (repeated; `>` when none) and the
/// `view` (`envelope` or `console`).
fn stream_query(query: Option<&str>) -> Result<(Vec<String>, View), ApiError> {
    let mut out = Vec::new();
    let mut view = View::Envelope;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "pattern" => out.push(v.into_owned()),
            "view" => {
                view = match &*v {
                    "envelope" => View::Envelope,
                    "console" => View::Console,
                    other => {
                        return Err(ApiError::bad(
                            "view",
                            format!("unknown view `{other}`; expected `envelope` or `console`"),
                        ))
                    }
                }
            }
            super::TOKEN_PARAMETER => {}
            other => {
                return Err(ApiError::bad(
                    other.to_owned(),
                    format!(
                    "unknown query parameter `{other}`; this route takes `pattern` (repeatable) and `view`"
                ),
                ))
            }
        }
    }
    if out.is_empty() {
        out.push(">".into());
    }
    Ok((out, view))
}

/// The text of one message in `view`.
fn message_text(env: &Envelope, view: View) -> String {
    match view {
        View::Envelope => env.json_text().to_owned(),
        View::Console => {
            let (class, line) = crate::logging::lines::message(env);
            json!({ "line": line, "class": class.as_str(), "envelope": env }).to_string()
        }
    }
}

/// `GET /v1/channels/{channel}/stream?pattern=P[&pattern=Q…]`: a WebSocket
/// when the request is an upgrade, Server-Sent Events when it accepts
/// `text/event-stream`, 406 otherwise. 503 when `[api]
/// max_stream_clients` are connected.
pub async fn stream(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(channel): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let channel = channel_of(&channel)?;
    state.require(&who, &Need::Read, &format!("stream of channel {channel}"))?;
    let (patterns, view) = stream_query(uri.query())?;
    super::stream_wanted(&headers, ws.is_ok(), "a stream")?;
    let permit = state.stream_slot()?;
    let feed = Feed::new(
        &state.bus,
        &format!("api-stream:{}:{}", who.name, who.client),
        state.config.stream_buffer,
    )
    .map_err(|e| ApiError::from_bus(&e, ""))?;
    for p in &patterns {
        feed.subscribe(channel, p)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()).at("pattern"))?;
    }
    if let Ok(ws) = ws {
        return Ok(ws.on_upgrade(move |socket| async move {
            let _permit = permit;
            websocket(socket, feed, channel, view).await;
        }));
    }
    let events =
        futures_util::stream::unfold((feed, permit), move |(mut feed, permit)| async move {
            let item = feed.next().await?;
            Some((Ok::<_, Infallible>(sse_event(&item, view)), (feed, permit)))
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One feed item as an SSE event: `message` (the envelope, `id:` its id)
/// or `lagged` (`{"missed": n}`).
fn sse_event(item: &Item, view: View) -> Event {
    match item {
        Item::Message(env) => Event::default()
            .event("message")
            .id(env.id.to_string())
            .data(message_text(env, view)),
        Item::Lagged(n) => Event::default()
            .event("lagged")
            .data(json!({ "missed": n }).to_string()),
    }
}

/// A control message from a WebSocket client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Control {
    subscribe: Option<String>,
    unsubscribe: Option<String>,
    channel: Option<String>,
}

/// Serves one WebSocket: envelopes as text frames, `{"type": "lagged",
/// "missed": n}` after drops; the client may send `{"subscribe": P}` or
/// `{"unsubscribe": P}` (with `"channel"` for another channel), answered
/// by `{"type": "subscribed"|"unsubscribed", …}` or `{"type": "error", …}`.
async fn websocket(mut socket: WebSocket, mut feed: Feed, channel: Channel, view: View) {
    loop {
        tokio::select! {
            item = feed.next() => {
                let Some(item) = item else { break };
                let text = match &item {
                    Item::Message(env) => message_text(env, view),
                    Item::Lagged(n) => json!({ "type": "lagged", "missed": n }).to_string(),
                };
                if socket.send(WsMessage::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(WsMessage::Text(t))) => t.to_string(),
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let answer = control(&feed, channel, &text);
                if socket.send(WsMessage::Text(answer.to_string().into())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Applies one control message; returns the answer.
fn control(feed: &Feed, default: Channel, text: &str) -> Value {
    let error = |e: String, field: &str| json!({ "type": "error", "error": e, "field": field });
    let c: Control = match serde_json::from_str(text) {
        Ok(c) => c,
        Err(e) => return error(format!("invalid control message: {e}"), "body"),
    };
    let channel = match c.channel.as_deref().map(str::parse::<Channel>) {
        None => default,
        Some(Ok(ch)) => ch,
        Some(Err(e)) => return error(e.to_string(), "channel"),
    };
    let (verb, pattern, result) = match (c.subscribe, c.unsubscribe) {
        (Some(p), None) => ("subscribed", p.clone(), feed.subscribe(channel, &p)),
        (None, Some(p)) => ("unsubscribed", p.clone(), feed.unsubscribe(channel, &p)),
        _ => {
            return error(
                "send exactly one of `subscribe` or `unsubscribe`".into(),
                "body",
            )
        }
    };
    match result {
        Ok(changed) => {
            json!({ "type": verb, "channel": channel, "pattern": pattern, "changed": changed })
        }
        Err(e) => error(e.to_string(), "pattern"),
    }
}
