//! # webhook-delivery
//!
//! A `subscriber` that delivers a store's events to one webhook receiver:
//! each event is POSTed as a [CloudEvents 1.0] JSON document (structured
//! mode, `content-type: application/cloudevents+json`), signed as
//! [Standard Webhooks] asks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`). Its events come from a `[[store_subscription]]`
//! of its manifest, through an emitter worker: in order, one at a time.
//!
//! It is not embedded in the host binary (host/build.rs `NOT_EMBEDDED`):
//! it needs a deployment's receiver, outbound grant and secret.
//!
//! ## What the receiver gets
//!
//! ```text
//! POST <url>
//! content-type: application/cloudevents+json
//! webhook-id: <the event's id>
//! webhook-timestamp: <seconds since the epoch, of this attempt>
//! webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">
//!
//! {"data":{…},"datacontenttype":"application/json","id":"<event id>",
//!  "source":"exesdb://<node>/<store>","specversion":"1.0",
//!  "subject":"<stream>","time":"<appended at, RFC 3339>","type":"<event type>"}
//! ```
//!
//! An event whose data is bytes rather than JSON carries them as
//! `data_base64`, with its content type as `datacontenttype`. The body is
//! the same on every attempt; the timestamp and signature are the
//! attempt's. `webhook-id` is the event's id, the same on every attempt,
//! after a reload and after a host restart, so the receiver dedupes by it.
//!
//! ## Outcomes
//!
//! - **2xx**: delivered. The event's id is recorded (see *Exactly once*)
//!   and delivery moves on.
//! - **Any other status, or a failure after the request may have reached
//!   the receiver** (a read timeout, the connection cut, a protocol error):
//!   a failed attempt. Its count, per event id, is kept in the plugin's
//!   durable state (`wasi:keyvalue`, so it survives traps, reloads and host
//!   restarts). Below `max_attempts` the handler returns an error: the
//!   emitter worker redelivers the same event, and nothing after it, in
//!   order. Its back-off is the subscription's circuit breaker: 10 ms
//!   between the first retries, then, after `[health_monitoring]
//!   unhealthy_threshold` failures in a row, `cooldown_ms` doubling up to
//!   `max_cooldown_ms` (1 s … 30 s by default). At `max_attempts` the event
//!   is **dead-lettered**: a `SystemAlert` (severity `error`, category
//!   `data`, topic `system_alert:data` on `alerts`, `requires_ack`) names
//!   it, the handler returns `Ok` and delivery moves on.
//! - **Not sent**: refused before anything reached the receiver — no grant
//!   for the URL (`HttpRequestDenied`), the destination's open circuit
//!   breaker or a dead receiver (`ConnectionRefused`), DNS, connect
//!   timeout, TLS. Not counted as an attempt: the handler returns an
//!   error and the event waits, in order, with the same back-off, until
//!   the receiver can be reached. A receiver that is down therefore holds
//!   delivery back (its subscription shows as failed in health) rather than
//!   dead-lettering every event of the outage.
//!
//! ## Exactly once
//!
//! Before posting, the plugin looks the event up in a dedupe set kept in
//! its durable state: the ids of the last `dedupe_window` events delivered
//! or dead-lettered per store, keyed by global position modulo the window.
//! An event redelivered after a host restart (a transient subscription
//! starts again from its `start`; a persistent one from its checkpoint,
//! which trails the events handled by up to one batch) whose POST had been
//! acknowledged is not posted again. The one window left: a crash between
//! the receiver's 2xx and the plugin recording it; the event is then posted
//! again with the same `webhook-id`, which is what that header is for.
//!
//! ## Config (`[config]`)
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `url` | string, `http(s)://host[:port]/path` | required | The receiver. Its scheme, host and port must be granted by `[wasi] allowed_outbound_hosts`. |
//! | `max_attempts` | integer, at least 1 | `5` | Failed attempts of one event before it is dead-lettered. |
//! | `source` | string | `exesdb://<node>/<store>` | The CloudEvents `source`. |
//! | `dedupe_window` | integer, at least 1 | `10000` | Delivered ids remembered per store (about 80 bytes each of `[limits] state_mb`: 10000 take under 1 MiB of the default 16). |
//!
//! Unknown keys fail `init`. The secret `signing_key` (`[secrets]`, read
//! through `wasi:config/store`) is required: a Standard Webhooks secret,
//! base64 after an optional `whsec_` prefix.
//!
//! [CloudEvents 1.0]: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md
//! [Standard Webhooks]: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md

use std::cell::RefCell;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Map, Value};

wit_bindgen::generate!({ world: "subscriber", path: "../../wit", generate_all });

use exesdb::plugin::host;
use exesdb::plugin::host::PublishOptions;
use exesdb::plugin::types::{Channel, Error, LogLevel, Message};
use exports::exesdb::plugin::handler::{BatchFailure, Guest};
use wasi::keyvalue::{atomics, store};

/// The secret holding the signing key.
const SECRET: &str = "signing_key";
/// The key-value bucket of the attempt counters and the dedupe set.
const BUCKET: &str = "webhook";
/// Where dead letters are published (needs a `[[publish]]` grant).
const ALERT_TOPIC: &str = "system_alert:data";
const DEFAULT_MAX_ATTEMPTS: u32 = 5;
const DEFAULT_DEDUPE_WINDOW: u64 = 10_000;
/// A `wasi:io` stream takes at most this many bytes per blocking write.
const WRITE_CHUNK: usize = 4096;

/// `[config]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    url: Option<String>,
    max_attempts: Option<i64>,
    source: Option<String>,
    dedupe_window: Option<i64>,
}

/// The receiver's address, split as `wasi:http` wants it.
#[derive(Debug, Clone)]
struct Receiver {
    https: bool,
    authority: String,
    path_with_query: String,
}

impl Receiver {
    fn parse(url: &str) -> Result<Receiver, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("config `url`: `{url}` is not http(s)://host[:port]/path"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            other => {
                return Err(format!(
                    "config `url`: scheme `{other}` is not supported (http or https)"
                ))
            }
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(format!("config `url`: `{url}` has no host"));
        }
        if authority.contains('@') {
            return Err("config `url`: user info (`user:password@`) is not supported; put credentials in a secret".into());
        }
        let tail = tail.split('#').next().unwrap_or_default();
        let path_with_query = match tail.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{tail}"),
            Some(_) => tail.to_owned(),
        };
        Ok(Receiver {
            https,
            authority: authority.to_owned(),
            path_with_query,
        })
    }

    /// `scheme://host:port`, as the host's grants and audit name it (no
    /// path: webhook URLs carry tokens there).
    fn destination(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

/// What `init` read.
struct Settings {
    receiver: Receiver,
    max_attempts: u32,
    source: Option<String>,
    dedupe_window: u64,
    key: Vec<u8>,
}

thread_local! {
    static SETTINGS: RefCell<Option<Settings>> = const { RefCell::new(None) };
}

fn settings(config: &str) -> Result<Settings, String> {
    let raw: RawConfig = serde_json::from_str(if config.trim().is_empty() {
        "{}"
    } else {
        config
    })
    .map_err(|e| format!("invalid config: {e}"))?;
    let url = raw.url.ok_or(
        "config `url` is required: the receiver's address, e.g. \"https://hooks.example.com/exesdb\"",
    )?;
    let receiver = Receiver::parse(&url)?;
    let positive = |key: &str, v: Option<i64>, default: u64| -> Result<u64, String> {
        match v {
            None => Ok(default),
            Some(n) if n >= 1 => Ok(n as u64),
            Some(n) => Err(format!("config `{key}` must be at least 1, got {n}")),
        }
    };
    let max_attempts = positive(
        "max_attempts",
        raw.max_attempts,
        u64::from(DEFAULT_MAX_ATTEMPTS),
    )?;
    let max_attempts = u32::try_from(max_attempts)
        .map_err(|_| format!("config `max_attempts` is too large: {max_attempts}"))?;
    let dedupe_window = positive("dedupe_window", raw.dedupe_window, DEFAULT_DEDUPE_WINDOW)?;
    let secret = wasi::config::store::get(SECRET)
        .map_err(|e| format!("secret `{SECRET}`: {e:?}"))?
        .ok_or_else(|| {
            format!(
                "secret `{SECRET}` is missing: add `[secrets] {SECRET} = {{ env = \"VAR\" }}` (or `{{ file = \"/abs/path\" }}`) to the manifest"
            )
        })?;
    let key = signing_key(&secret)?;
    Ok(Settings {
        receiver,
        max_attempts,
        source: raw.source,
        dedupe_window,
        key,
    })
}

/// The HMAC key of a Standard Webhooks secret: base64 after an optional
/// `whsec_` prefix. The error never shows the value.
fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
    let text = secret.trim();
    let text = text.strip_prefix("whsec_").unwrap_or(text);
    let key = BASE64.decode(text).map_err(|_| {
        format!("secret `{SECRET}` is not base64 (after an optional `whsec_` prefix)")
    })?;
    if key.is_empty() {
        return Err(format!("secret `{SECRET}` is empty"));
    }
    Ok(key)
}

/// `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.
fn signature(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// A store event as the emitter announces it (the host's `RecordedEvent`).
#[derive(Debug, Deserialize)]
struct Recorded {
    event_id: String,
    event_type: String,
    data: Value,
    stream_id: String,
    #[serde(default)]
    event_number: u64,
    global_position: u64,
    created: String,
}

/// The CloudEvents 1.0 structured-mode document of `event`.
fn cloud_event(source: String, event: &Recorded) -> Vec<u8> {
    let mut ce = Map::new();
    ce.insert("specversion".into(), "1.0".into());
    ce.insert("id".into(), event.event_id.clone().into());
    ce.insert("source".into(), source.into());
    ce.insert("type".into(), event.event_type.clone().into());
    ce.insert("subject".into(), event.stream_id.clone().into());
    ce.insert("time".into(), event.created.clone().into());
    // The host writes an event's data as `{"json": v}` or
    // `{"bytes": {"content_type", "bytes"}}`.
    let bytes = event.data.get("bytes").filter(|_| one_key(&event.data));
    match (
        event.data.get("json").filter(|_| one_key(&event.data)),
        bytes,
    ) {
        (Some(v), _) => {
            ce.insert("datacontenttype".into(), "application/json".into());
            ce.insert("data".into(), v.clone());
        }
        (None, Some(b)) => {
            let content_type = b["content_type"]
                .as_str()
                .unwrap_or("application/octet-stream");
            let raw: Vec<u8> = b["bytes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                        .collect()
                })
                .unwrap_or_default();
            ce.insert("datacontenttype".into(), content_type.into());
            ce.insert("data_base64".into(), BASE64.encode(raw).into());
        }
        (None, None) => {
            ce.insert("datacontenttype".into(), "application/json".into());
            ce.insert("data".into(), event.data.clone());
        }
    }
    serde_json::to_vec(&Value::Object(ce)).expect("JSON serialises")
}

fn one_key(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.len() == 1)
}

/// One POST's outcome.
#[derive(Debug)]
enum Outcome {
    /// A 2xx status.
    Delivered,
    /// May have reached the receiver and was not acknowledged: counted.
    Failed(String),
    /// Refused before anything reached the receiver: not counted.
    NotSent(String),
}

/// A `wasi:http` error, classified.
fn failure(code: &wasip2::http::types::ErrorCode) -> Outcome {
    use wasip2::http::types::ErrorCode as E;
    let text = format!("{code:?}")
        .trim_start_matches("ErrorCode::")
        .to_owned();
    match code {
        E::DnsTimeout
        | E::DnsError(_)
        | E::DestinationNotFound
        | E::DestinationUnavailable
        | E::DestinationIpProhibited
        | E::DestinationIpUnroutable
        | E::ConnectionRefused
        | E::ConnectionTimeout
        | E::ConnectionLimitReached
        | E::TlsProtocolError
        | E::TlsCertificateError
        | E::TlsAlertReceived(_)
        | E::HttpRequestDenied
        | E::HttpRequestUriInvalid
        | E::HttpRequestUriTooLong
        | E::HttpRequestMethodInvalid
        | E::ConfigurationError => Outcome::NotSent(text),
        _ => Outcome::Failed(text),
    }
}

/// POSTs `body` to the receiver, signed for `id`.
fn post(s: &Settings, id: &str, body: &[u8]) -> Outcome {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

    let timestamp = host::now_ms() / 1000;
    let headers = Fields::new();
    let length = body.len().to_string();
    let timestamp_text = timestamp.to_string();
    let sig = signature(&s.key, id, timestamp, body);
    let user_agent = concat!("exesdb-webhook-delivery/", env!("CARGO_PKG_VERSION"));
    for (name, value) in [
        ("content-type", "application/cloudevents+json"),
        ("content-length", length.as_str()),
        ("user-agent", user_agent),
        ("webhook-id", id),
        ("webhook-timestamp", timestamp_text.as_str()),
        ("webhook-signature", sig.as_str()),
    ] {
        if let Err(e) = headers.append(name, value.as_bytes()) {
            return Outcome::Failed(format!("header `{name}`: {e:?}"));
        }
    }
    let request = OutgoingRequest::new(headers);
    let scheme = if s.receiver.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    if request.set_method(&Method::Post).is_err()
        || request.set_scheme(Some(&scheme)).is_err()
        || request.set_authority(Some(&s.receiver.authority)).is_err()
        || request
            .set_path_with_query(Some(&s.receiver.path_with_query))
            .is_err()
    {
        return Outcome::NotSent(format!("invalid request for {}", s.receiver.destination()));
    }
    let Ok(out_body) = request.body() else {
        return Outcome::Failed("no request body".into());
    };
    let future = match outgoing_handler::handle(request, None) {
        Ok(f) => f,
        Err(code) => return failure(&code),
    };
    if let Ok(out) = out_body.write() {
        for chunk in body.chunks(WRITE_CHUNK) {
            // A refused request's body has nowhere to go: its error comes
            // from the response.
            if out.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(out_body, None);
    let response = loop {
        match future.get() {
            Some(r) => break r,
            None => future.subscribe().block(),
        }
    };
    let response = match response {
        Ok(Ok(r)) => r,
        Ok(Err(code)) => return failure(&code),
        Err(()) => return Outcome::Failed("response already taken".into()),
    };
    let status = response.status();
    // Read the answer to its end (the host bounds its size and time), so
    // the exchange is complete before the next one.
    if let Ok(incoming) = response.consume() {
        if let Ok(stream) = incoming.stream() {
            // Until it ends (`StreamError::Closed`) or fails: the status
            // is the answer either way.
            while stream.blocking_read(64 * 1024).is_ok() {}
        }
    }
    if (200..300).contains(&status) {
        Outcome::Delivered
    } else {
        Outcome::Failed(format!("HTTP {status}"))
    }
}

fn kv(e: store::Error) -> Error {
    Error::Failed(format!("plugin state: {e:?}"))
}

fn log(level: LogLevel, text: &str) {
    host::log(level, text);
}

/// Records `event` as finished (`what`: delivered or dead-lettered) in the
/// dedupe set and drops its attempt counter. A failure here is logged, not
/// returned: the event was handled, and failing would post it again.
fn finish(bucket: &store::Bucket, slot: &str, attempts: &str, id: &str, what: &str) {
    if let Err(e) = bucket.set(slot, format!("{id} {what}").as_bytes()) {
        log(
            LogLevel::Warning,
            &format!("event {id} {what} but not recorded in the dedupe set: {e:?}"),
        );
    }
    if bucket.exists(attempts).unwrap_or(true) {
        if let Err(e) = bucket.delete(attempts) {
            log(
                LogLevel::Warning,
                &format!("attempt counter of event {id} not removed: {e:?}"),
            );
        }
    }
}

/// Publishes the dead-letter alert of `event`. A refusal is logged: the
/// event is dead-lettered all the same (holding every later event back
/// for a missing grant would be worse).
fn dead_letter(
    s: &Settings,
    m: &Message,
    store_name: &str,
    event: &Recorded,
    attempts: i64,
    last: &str,
) {
    let plugin = host::plugin_name();
    let id = &event.event_id;
    let payload = json!({
        "alert_id": format!("webhook-dead-letter:{plugin}:{id}"),
        "severity": "error",
        "category": "data",
        "title": format!("Webhook delivery gave up on event {id}"),
        "description": format!(
            "{plugin}: event {id} ({}, stream {}, store {store_name}, position {}) was not delivered to {} after {attempts} attempts (last: {last}); delivery moved on to the next event",
            event.event_type, event.stream_id, event.global_position, s.receiver.destination()
        ),
        "source": plugin,
        "metadata": {
            "plugin": plugin,
            "event_id": id,
            "event_type": event.event_type,
            "stream": event.stream_id,
            "event_number": event.event_number,
            "store": store_name,
            "global_position": event.global_position,
            "attempts": attempts,
            "last_error": last,
            "destination": s.receiver.destination(),
        },
        "requires_ack": true,
    });
    let options = PublishOptions {
        correlation_id: m.correlation_id.clone(),
        causation_id: Some(m.id.clone()),
    };
    let published = host::publish(
        Channel::Alerts,
        ALERT_TOPIC,
        "SystemAlert",
        &payload.to_string(),
        Some(&options),
    );
    let level = LogLevel::Error;
    match published {
        Ok(_) => log(
            level,
            &format!("event {id} dead-lettered after {attempts} attempts (last: {last})"),
        ),
        Err(e) => log(
            level,
            &format!("event {id} dead-lettered after {attempts} attempts (last: {last}); its alert was not published: {e:?}"),
        ),
    }
}

/// Delivers one store event (or skips it when it is already done).
fn deliver(s: &Settings, m: &Message, event: &Recorded) -> Result<(), Error> {
    let store_name = m.topic.split_once(':').map_or(m.topic.as_str(), |(s, _)| s);
    let id = event.event_id.as_str();
    let bucket = store::open(BUCKET).map_err(kv)?;
    let slot = format!(
        "delivered/{store_name}/{}",
        event.global_position % s.dedupe_window
    );
    let done = bucket
        .get(&slot)
        .map_err(kv)?
        .is_some_and(|v| v.split(|&b| b == b' ').next() == Some(id.as_bytes()));
    if done {
        return Ok(());
    }
    let source = s
        .source
        .clone()
        .unwrap_or_else(|| format!("exesdb://{}/{store_name}", m.node));
    let body = cloud_event(source, event);
    let attempts_key = format!("attempts/{id}");
    match post(s, id, &body) {
        Outcome::Delivered => {
            finish(&bucket, &slot, &attempts_key, id, "delivered");
            Ok(())
        }
        Outcome::NotSent(why) => Err(Error::Failed(format!(
            "event {id} not sent ({why}): not counted as an attempt; it will be retried"
        ))),
        Outcome::Failed(why) => {
            let n = atomics::increment(&bucket, &attempts_key, 1).map_err(kv)?;
            if n < i64::from(s.max_attempts) {
                let text = format!(
                    "event {id}: attempt {n} of {} failed ({why}); it will be retried",
                    s.max_attempts
                );
                log(LogLevel::Warning, &text);
                Err(Error::Failed(text))
            } else {
                dead_letter(s, m, store_name, event, n, &why);
                finish(&bucket, &slot, &attempts_key, id, "dead-lettered");
                Ok(())
            }
        }
    }
}

fn handle(m: &Message) -> Result<(), Error> {
    // Store events only; a `Lagged` marker (on `system`) needs nothing.
    if m.channel != Channel::Events {
        return Ok(());
    }
    let Ok(event) = serde_json::from_str::<Recorded>(&m.payload) else {
        // A bus message on `events` (a plugin's publish), not a stored
        // event: it has no id to deliver exactly once.
        return Ok(());
    };
    SETTINGS.with_borrow(|s| {
        let s = s
            .as_ref()
            .ok_or_else(|| Error::Failed("not initialised".into()))?;
        deliver(s, m, &event)
    })
}

struct WebhookDelivery;

impl Guest for WebhookDelivery {
    fn init(config: String) -> Result<(), Error> {
        let s = settings(&config).map_err(Error::Failed)?;
        SETTINGS.with_borrow_mut(|cell| *cell = Some(s));
        Ok(())
    }

    fn on_message(message: Message) -> Result<(), Error> {
        handle(&message)
    }

    /// In order; the first failure stops the batch (the ones after it are
    /// reported failed, not attempted), so no event overtakes another.
    fn on_batch(messages: Vec<Message>) -> Vec<BatchFailure> {
        let mut failures = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            match failures.is_empty().then(|| handle(m)) {
                Some(Ok(())) => {}
                Some(Err(error)) => failures.push(BatchFailure {
                    index: i as u32,
                    error,
                }),
                None => failures.push(BatchFailure {
                    index: i as u32,
                    error: Error::Failed("not attempted: an earlier message failed".into()),
                }),
            }
        }
        failures
    }

    fn shutdown() {}
}

export!(WebhookDelivery);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let r = Receiver::parse("https://hooks.example.com:8443/a/b?t=1#x").unwrap();
        assert!(r.https);
        assert_eq!(r.authority, "hooks.example.com:8443");
        assert_eq!(r.path_with_query, "/a/b?t=1");
        assert_eq!(r.destination(), "https://hooks.example.com:8443");
        let r = Receiver::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!((r.https, r.path_with_query.as_str()), (false, "/"));
        assert_eq!(
            Receiver::parse("http://h?x=1").unwrap().path_with_query,
            "/?x=1"
        );
        assert!(Receiver::parse("ftp://h/").is_err());
        assert!(Receiver::parse("https:///x").is_err());
        assert!(Receiver::parse("https://u:p@h/").is_err());
        assert!(Receiver::parse("hooks.example.com").is_err());
    }

    /// The example of the Standard Webhooks specification's test vectors.
    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(signing_key("whsec_***").is_err());
        assert!(signing_key("").is_err());
    }
}
