//! # test-guest
//!
//! A test-only `subscriber` plugin for the host's integration tests. Its
//! behaviour is chosen by the config key `mode`, read in `init`:
//!
//! | `mode`          | behaviour                                                                 |
//! |-----------------|---------------------------------------------------------------------------|
//! | `noop` (default)| does nothing; `on-batch` reports no failures                              |
//! | `echo`          | echoes every message (see below)                                          |
//! | `loop`          | `on-message`/`on-batch` spin forever (for timeout/epoch tests)            |
//! | `alloc`         | on a message, allocates 1 MiB blocks forever (for memory-limit tests)     |
//! | `trap`          | panics on a message whose payload contains `boom`, otherwise echoes       |
//! | `fail-every`    | fails every `n`-th message (1-based, `n` default 3), otherwise echoes      |
//! | `fail-always`   | fails every message                                                       |
//! | `recover-after` | fails the first `n` messages (default 5), then echoes                     |
//! | `forbidden`     | tries a publish on `security` and a subscribe on `audit` (both outside its grants) and reports the outcomes |
//! | `deny-flood`    | makes `n` (default 100000) publishes on `security` (outside its grants) per message, then reports how many were denied (`custom.deny_flood`, `{"denied": k}`) |
//! | `socket`        | tries a TCP connect and a UDP bind, reports the outcomes (`custom.socket`, `{"tcp": …, "udp": …}`, `"ok"` or `"err:<kind>"`) |
//! | `http`          | makes the outbound HTTP request the message's payload describes and reports its outcome (see below) |
//! | `state`         | runs the `wasi:keyvalue` operation the message's payload describes and reports its outcome (see below) |
//! | `secret`        | reads the secret the payload names through `wasi:config/store`, logs it and reports whether it matched (see below) |
//! | `init-fail`     | `init` fails                                                              |
//! | `stderr`        | writes a line to stderr and one to stdout, then echoes                    |
//!
//! An unknown mode fails `init`. Failures are `error::failed` with a text
//! naming the mode and the message's 1-based count. Counters are per instance.
//!
//! **Echo**: publishes on channel `diagnostics`, topic `echo:<plugin-name>`,
//! kind `custom.echo`, payload
//! `{"id": <message id>, "topic": <topic>, "kind": <kind>, "batch": <delivered via on-batch>}`.
//! A publish error is returned as the handler's error.
//!
//! **Forbidden**: publishes on `diagnostics`, topic `echo:<plugin-name>`, kind
//! `custom.grant_check`, payload `{"publish": <outcome>, "subscribe": <outcome>}`
//! where an outcome is `"ok"`, `"denied: <text>"` or the error's debug text.
//!
//! **Http**: the payload is `{"url": "http://host:port/path", "method": "POST",
//! "body": "…"}` (`method` default `GET`, `body` default none). The request
//! goes through `wasi:http/outgoing-handler` (the `wasip2` crate's
//! bindings), and its whole response body is read. The outcome is published
//! on `diagnostics`, topic `echo:<plugin-name>`, kind `custom.http`:
//! `{"status": <status>, "bytes": <body bytes read>}`, or
//! `{"error": "<ErrorCode debug text>"}` when `handle` or the response
//! failed (`"ErrorCode::HttpRequestDenied"` for a destination outside the
//! grants). When reading the body fails, the error is the stream error's
//! `http-error-code` debug text, or its `to-debug-string` when it has none
//! (wasmtime-wasi-http 48 attaches none to body errors: `"connection read
//! timeout"`, `"HTTP response body size exceeds limit: N bytes"`).
//!
//! **State**: the payload is `{"op": "get"|"set"|"delete"|"exists"|"incr"|"cas"|"list",
//! "bucket": "default", "key": "k", "value": "text", "delta": 1, "expected": "text"|null,
//! "cursor": "k"}` (only what the op needs; `bucket` default `"default"`). `cas`
//! reads the value (`cas.new`), replaces it with `value` only when what it
//! read equals `expected`, then swaps. Reported as `custom.state`:
//! `{"value": <text or null>}` (get; incr: the new count), `{"exists": b}`,
//! `{"ok": true}` (set, delete, cas swapped), `{"cas_failed": <current text or null>}`,
//! `{"keys": [...], "cursor": <text or null>}` (list), or `{"error": "<debug text>"}`.
//! `fill` (for benchmarks) sets `value` under `<key>0` … `<key><delta-1>`,
//! reads each back, and reports `{"ok": true, "ops": 2 * delta}`.
//!
//! **Secret**: the payload is `{"name": "token", "expect": "value", "fail": false}`.
//! Logs `secret <name> is <value>` (info), then reports `custom.secret`
//! `{"found": b, "matches": <value == expect>, "names": [<get-all names>]}`; with
//! `"fail": true` it instead fails the message with `leaking <value>`.
//!
//! ## Config (`[config]` in `plugin.toml`)
//!
//! | key    | type    | default   | meaning                                |
//! |--------|---------|-----------|----------------------------------------|
//! | `mode` | string  | `"noop"`  | the behaviour, above                   |
//! | `n`    | integer | 3 / 5     | period of `fail-every` / count of `recover-after` |

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::json;

wit_bindgen::generate!({ world: "subscriber", path: "../../wit", generate_all });

use exesdb::plugin::host;
use exesdb::plugin::types::{Channel, Error, Message};
use exports::exesdb::plugin::handler::{BatchFailure, Guest};

/// The behaviour selected by `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    #[default]
    Noop,
    Echo,
    Loop,
    Alloc,
    Trap,
    FailEvery,
    FailAlways,
    RecoverAfter,
    Forbidden,
    InitFail,
    Stderr,
    Probe,
    DenyFlood,
    Socket,
    Http,
    State,
    Secret,
}

impl Mode {
    const ALL: &'static [(&'static str, Mode)] = &[
        ("noop", Mode::Noop),
        ("echo", Mode::Echo),
        ("loop", Mode::Loop),
        ("alloc", Mode::Alloc),
        ("trap", Mode::Trap),
        ("fail-every", Mode::FailEvery),
        ("fail-always", Mode::FailAlways),
        ("recover-after", Mode::RecoverAfter),
        ("forbidden", Mode::Forbidden),
        ("init-fail", Mode::InitFail),
        ("stderr", Mode::Stderr),
        ("probe", Mode::Probe),
        ("deny-flood", Mode::DenyFlood),
        ("socket", Mode::Socket),
        ("http", Mode::Http),
        ("state", Mode::State),
        ("secret", Mode::Secret),
    ];

    fn parse(name: &str) -> Result<Mode, Error> {
        Mode::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, mode)| mode)
            .ok_or_else(|| {
                let known: Vec<&str> = Mode::ALL.iter().map(|(n, _)| *n).collect();
                Error::Failed(format!(
                    "unknown mode `{name}`; expected one of {}",
                    known.join(", ")
                ))
            })
    }
}

/// The plugin's `[config]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Config {
    mode: Option<String>,
    n: Option<u64>,
    /// Files `probe` tries to read.
    #[serde(default)]
    paths: Vec<String>,
    /// A label copied into every echo (tells versions apart in reload tests).
    tag: Option<String>,
}

/// Per-instance state.
#[derive(Debug, Default)]
struct State {
    mode: Mode,
    /// `n` for `fail-every` and `recover-after`.
    n: u64,
    /// Messages received so far (on-message and on-batch).
    count: u64,
    /// The plugin's name, fetched from the host on first use.
    name: Option<String>,
    /// Files `probe` tries to read.
    paths: Vec<String>,
    /// Copied into every echo.
    tag: Option<String>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct TestGuest;

impl Guest for TestGuest {
    fn init(config: String) -> Result<(), Error> {
        let config: Config = if config.trim().is_empty() {
            Config::default()
        } else {
            serde_json::from_str(&config)
                .map_err(|e| Error::Failed(format!("invalid config: {e}")))?
        };
        let mode = Mode::parse(config.mode.as_deref().unwrap_or("noop"))?;
        let n = match mode {
            Mode::FailEvery => config.n.unwrap_or(3),
            Mode::RecoverAfter => config.n.unwrap_or(5),
            Mode::DenyFlood => config.n.unwrap_or(100_000),
            _ => config.n.unwrap_or(0),
        };
        if mode == Mode::FailEvery && n == 0 {
            return Err(Error::Failed(
                "fail-every: `n` must be at least 1".to_owned(),
            ));
        }
        if mode == Mode::InitFail {
            return Err(Error::Failed("init-fail mode".to_owned()));
        }
        STATE.with_borrow_mut(|state| {
            *state = State {
                mode,
                n,
                count: 0,
                name: None,
                paths: config.paths.clone(),
                tag: config.tag.clone(),
            }
        });
        Ok(())
    }

    fn on_message(message: Message) -> Result<(), Error> {
        handle(&message, false)
    }

    fn on_batch(messages: Vec<Message>) -> Vec<BatchFailure> {
        messages
            .iter()
            .enumerate()
            .filter_map(|(index, message)| {
                handle(message, true).err().map(|error| BatchFailure {
                    index: index as u32,
                    error,
                })
            })
            .collect()
    }

    fn shutdown() {}
}

/// Handles one message according to the mode.
fn handle(message: &Message, batch: bool) -> Result<(), Error> {
    let (mode, n, count) = STATE.with_borrow_mut(|state| {
        state.count += 1;
        (state.mode, state.n, state.count)
    });
    match mode {
        Mode::Noop | Mode::InitFail => Ok(()),
        Mode::Echo => echo(message, batch),
        Mode::Loop => spin(),
        Mode::Alloc => hog_memory(),
        Mode::Trap => {
            if message.payload.contains("boom") {
                panic!("test-guest: boom in message {}", message.id);
            }
            echo(message, batch)
        }
        Mode::FailEvery => {
            if count % n == 0 {
                Err(Error::Failed(format!("fail-every: message {count}")))
            } else {
                echo(message, batch)
            }
        }
        Mode::FailAlways => Err(Error::Failed(format!("fail-always: message {count}"))),
        Mode::RecoverAfter => {
            if count <= n {
                Err(Error::Failed(format!(
                    "recover-after: message {count} of the first {n}"
                )))
            } else {
                echo(message, batch)
            }
        }
        Mode::Forbidden => grant_check(),
        Mode::DenyFlood => deny_flood(n),
        Mode::Socket => sockets(),
        Mode::Http => http(message),
        Mode::State => state(message),
        Mode::Secret => secret(message),
        Mode::Probe => probe(),
        Mode::Stderr => {
            eprintln!("test-guest stderr: {}", message.id);
            println!("test-guest stdout: {}", message.id);
            echo(message, batch)
        }
    }
}

/// The plugin's name, asked of the host once.
fn plugin_name() -> String {
    STATE.with_borrow_mut(|state| state.name.get_or_insert_with(host::plugin_name).clone())
}

/// Publishes `payload` as `kind` on `diagnostics`/`echo:<plugin-name>`.
fn report(kind: &str, payload: serde_json::Value) -> Result<(), Error> {
    let topic = format!("echo:{}", plugin_name());
    host::publish(
        Channel::Diagnostics,
        &topic,
        kind,
        &payload.to_string(),
        None,
    )?;
    Ok(())
}

/// Echoes `message` as a `custom.echo`.
fn echo(message: &Message, batch: bool) -> Result<(), Error> {
    report(
        "custom.echo",
        json!({
            "id": message.id,
            // Debug prints `Channel::Events`: keep the case name.
            "channel": format!("{:?}", message.channel)
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_lowercase(),
            "topic": message.topic,
            "kind": message.kind,
            "timestamp_ms": message.timestamp_ms,
            "node": message.node,
            "correlation_id": message.correlation_id,
            "causation_id": message.causation_id,
            "schema_version": message.schema_version,
            "payload": message.payload,
            "batch": batch,
            "tag": STATE.with_borrow(|s| s.tag.clone()),
        }),
    )
}

/// Tries calls outside the manifest's grants and reports their outcomes.
fn grant_check() -> Result<(), Error> {
    let publish = host::publish(Channel::Security, "forbidden:x", "custom.x", "{}", None).map(drop);
    let subscribe = host::subscribe(Channel::Audit, ">");
    report(
        "custom.grant_check",
        json!({ "publish": outcome(&publish), "subscribe": outcome(&subscribe) }),
    )
}

/// Tries the network; reports what the sandbox answered.
fn sockets() -> Result<(), Error> {
    let outcome = |r: std::io::Result<()>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("err:{:?}", e.kind()),
    };
    let tcp = outcome(std::net::TcpStream::connect("127.0.0.1:9").map(drop));
    let udp = outcome(std::net::UdpSocket::bind("127.0.0.1:0").map(drop));
    report("custom.socket", json!({ "tcp": tcp, "udp": udp }))
}

/// What `http` mode's message payload asks for.
#[derive(Debug, Deserialize)]
struct HttpAsk {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

/// Makes the request `message` describes; reports its status or error.
fn http(message: &Message) -> Result<(), Error> {
    let ask: HttpAsk = serde_json::from_str(&message.payload)
        .map_err(|e| Error::InvalidPayload(format!("http mode: {e}")))?;
    let outcome = match fetch(&ask) {
        Ok((status, bytes)) => json!({ "status": status, "bytes": bytes }),
        Err(error) => json!({ "error": error }),
    };
    report("custom.http", outcome)
}

/// One request through `wasi:http/outgoing-handler`: the status and the
/// number of body bytes read, or the error's debug text.
fn fetch(ask: &HttpAsk) -> Result<(u16, usize), String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasip2::io::streams::StreamError;

    let (scheme, rest) = ask
        .url
        .split_once("://")
        .ok_or_else(|| format!("no scheme in `{}`", ask.url))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let headers = Fields::new();
    if let Some(text) = &ask.body {
        let length = text.len().to_string().into_bytes();
        headers
            .append("content-length", &length)
            .map_err(|e| format!("{e:?}"))?;
    }
    let request = OutgoingRequest::new(headers);
    let method = match ask.method.as_deref().unwrap_or("GET") {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_owned()),
    };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    let set = |r: Result<(), ()>, what: &str| r.map_err(|()| format!("cannot set the {what}"));
    set(request.set_method(&method), "method")?;
    set(request.set_scheme(Some(&scheme)), "scheme")?;
    set(request.set_authority(Some(authority)), "authority")?;
    set(request.set_path_with_query(Some(path)), "path")?;
    let body = request.body().map_err(|()| "no request body".to_owned())?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    if let Some(text) = &ask.body {
        let out = body.write().map_err(|()| "no body stream".to_owned())?;
        for chunk in text.as_bytes().chunks(4096) {
            // A refused request's body has nowhere to go: its error comes
            // from the response.
            if out.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
    let response = loop {
        match future.get() {
            Some(r) => break r,
            None => future.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| "response already taken".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let incoming = response.consume().map_err(|()| "no body".to_owned())?;
    let stream = incoming
        .stream()
        .map_err(|()| "no body stream".to_owned())?;
    let mut bytes = 0;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes += chunk.len(),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasip2::http::types::http_error_code(&e) {
                    Some(code) => format!("{code:?}"),
                    None => e.to_debug_string(),
                });
            }
        }
    }
    Ok((status, bytes))
}

/// Makes `n` publishes outside the grants; reports how many were denied.
fn deny_flood(n: u64) -> Result<(), Error> {
    let denied = (0..n)
        .filter(|i| {
            let topic = format!("forbidden:{i}");
            matches!(
                host::publish(Channel::Security, &topic, "custom.x", "{}", None),
                Err(Error::Denied(_))
            )
        })
        .count();
    report("custom.deny_flood", json!({ "denied": denied }))
}

/// `"ok"`, `"denied: <text>"` or the error's debug text.
fn outcome(result: &Result<(), Error>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(Error::Denied(text)) => format!("denied: {text}"),
        Err(other) => format!("{other:?}"),
    }
}

/// Reports what the sandbox lets the guest see: environment variable names,
/// the outcome of reading each configured path, and stdin.
fn probe() -> Result<(), Error> {
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let paths = STATE.with_borrow(|s| s.paths.clone());
    let files: serde_json::Map<String, serde_json::Value> = paths
        .iter()
        .map(|p| {
            let outcome = match std::fs::read_to_string(p) {
                Ok(text) => format!("ok:{}", text.trim()),
                Err(e) => format!("err:{:?}", e.kind()),
            };
            (p.clone(), outcome.into())
        })
        .collect();
    let mut input = String::new();
    let stdin = match std::io::Read::read_to_string(&mut std::io::stdin(), &mut input) {
        Ok(n) => format!("ok:{n}"),
        Err(e) => format!("err:{:?}", e.kind()),
    };
    report(
        "custom.probe",
        json!({ "env": env, "files": files, "stdin": stdin }),
    )
}

/// Spins forever in a way the optimiser cannot remove.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = core::hint::black_box(counter.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks, touching every page, until the host's memory
/// limit stops the instance.
fn hog_memory() -> ! {
    const BLOCK: usize = 1 << 20;
    const PAGE: usize = 4096;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; BLOCK];
        for (i, byte) in block.iter_mut().step_by(PAGE).enumerate() {
            *byte = i as u8 | 1;
        }
        blocks.push(core::hint::black_box(block));
        core::hint::black_box(&mut blocks);
    }
}

export!(TestGuest);

/// A `state` mode request.
#[derive(Debug, Deserialize)]
struct StateAsk {
    op: String,
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    delta: Option<i64>,
    #[serde(default)]
    expected: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// Runs one `wasi:keyvalue` operation; reports its outcome.
fn state(message: &Message) -> Result<(), Error> {
    use wasi::keyvalue::{atomics, store};

    let ask: StateAsk = serde_json::from_str(&message.payload)
        .map_err(|e| Error::InvalidPayload(format!("state mode: {e}")))?;
    let text = |v: Option<Vec<u8>>| v.map(|b| String::from_utf8_lossy(&b).into_owned());
    let run = || -> Result<serde_json::Value, String> {
        let e = |e: store::Error| format!("{e:?}");
        let bucket = store::open(ask.bucket.as_deref().unwrap_or("default")).map_err(e)?;
        let value = ask.value.clone().unwrap_or_default().into_bytes();
        Ok(match ask.op.as_str() {
            "get" => json!({ "value": text(bucket.get(&ask.key).map_err(e)?) }),
            "set" => {
                bucket.set(&ask.key, &value).map_err(e)?;
                json!({ "ok": true })
            }
            "delete" => {
                bucket.delete(&ask.key).map_err(e)?;
                json!({ "ok": true })
            }
            "exists" => json!({ "exists": bucket.exists(&ask.key).map_err(e)? }),
            "incr" => {
                let n = atomics::increment(&bucket, &ask.key, ask.delta.unwrap_or(1)).map_err(e)?;
                json!({ "value": n.to_string() })
            }
            "cas" => {
                let cas = atomics::Cas::new(&bucket, &ask.key).map_err(e)?;
                let current = text(cas.current().map_err(e)?);
                if current != ask.expected {
                    return Ok(json!({ "cas_failed": current }));
                }
                match atomics::swap(cas, &value) {
                    Ok(()) => json!({ "ok": true }),
                    Err(atomics::CasError::CasFailed(fresh)) => {
                        json!({ "cas_failed": text(fresh.current().map_err(e)?) })
                    }
                    Err(atomics::CasError::StoreError(err)) => return Err(e(err)),
                }
            }
            "list" => {
                let r = bucket.list_keys(ask.cursor.as_deref()).map_err(e)?;
                json!({ "keys": r.keys, "cursor": r.cursor })
            }
            "fill" => {
                // `delta` sets of `value` under keys `<key>0…`, then as many gets.
                let n = ask.delta.unwrap_or(1).max(0);
                for i in 0..n {
                    bucket.set(&format!("{}{i}", ask.key), &value).map_err(e)?;
                }
                for i in 0..n {
                    let got = bucket.get(&format!("{}{i}", ask.key)).map_err(e)?;
                    if got.as_deref() != Some(value.as_slice()) {
                        return Err(format!("key {}{i} read back wrong", ask.key));
                    }
                }
                json!({ "ok": true, "ops": 2 * n })
            }
            other => return Err(format!("unknown op `{other}`")),
        })
    };
    let outcome = run().unwrap_or_else(|error| json!({ "error": error }));
    report("custom.state", outcome)
}

/// A `secret` mode request.
#[derive(Debug, Deserialize)]
struct SecretAsk {
    name: String,
    #[serde(default)]
    expect: Option<String>,
    #[serde(default)]
    fail: bool,
}

/// Reads a secret through `wasi:config/store`; logs it (the host redacts
/// it) and reports whether it matched.
fn secret(message: &Message) -> Result<(), Error> {
    use wasi::config::store;

    let ask: SecretAsk = serde_json::from_str(&message.payload)
        .map_err(|e| Error::InvalidPayload(format!("secret mode: {e}")))?;
    let value = store::get(&ask.name).map_err(|e| Error::Failed(format!("{e:?}")))?;
    let names: Vec<String> = store::get_all()
        .map_err(|e| Error::Failed(format!("{e:?}")))?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let shown = value.clone().unwrap_or_default();
    host::log(
        exesdb::plugin::types::LogLevel::Info,
        &format!("secret {} is {shown}", ask.name),
    );
    if ask.fail {
        return Err(Error::Failed(format!("leaking {shown}")));
    }
    report(
        "custom.secret",
        json!({
            "found": value.is_some(),
            "matches": value.is_some() && value == ask.expect,
            "names": names,
        }),
    )
}
