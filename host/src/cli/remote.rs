//! Commands against a running host's gateway: `publish`, `tail`, `alert
//! ack`, `emitters`, and the HTTP client the `plugin` and `store` commands
//! share. The host is
//! found with `--admin URL` / `EXESDB_ADMIN_URL` (default
//! `http://127.0.0.1:7077`); a token is sent with `--token` /
//! `EXESDB_TOKEN`.

use std::io::{BufRead, BufReader, Write};

use serde_json::Value;

use crate::logging::{Class, Painter};
use crate::messages::Envelope;

/// A running host's gateway.
#[derive(Debug, Clone)]
pub struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// No answer from the gateway at all (nothing listens there, or the
/// connection failed): the error of [`Remote::call`] when the host could
/// not be reached, as opposed to a refusal.
#[derive(Debug)]
pub struct Unreachable {
    /// The gateway's address.
    pub base: String,
    /// What the connection attempt reported.
    pub cause: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reach the host's API at {}: {} (is the host running? see [api] listen)",
            self.base, self.cause
        )
    }
}

impl std::error::Error for Unreachable {}

/// A gateway answer: status and body text.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub text: String,
}

impl Remote {
    /// The gateway at `base` (`http://host:port`), sending `token` if any.
    pub fn new(base: &str, token: Option<String>) -> Remote {
        Remote {
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let response = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = self.agent.post(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some(b) => r.send_json(b),
                    None => r.send_empty(),
                }
            }
        }
        .map_err(|e| {
            anyhow::Error::new(Unreachable {
                base: self.base.clone(),
                cause: e.to_string(),
            })
        })?;
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap_or_default();
        Ok(Answer { status, text })
    }

    /// `method path` with an optional JSON body; the body of a 2xx answer,
    /// or an error with the gateway's `error` text (and `field`).
    ///
    /// # Errors
    /// Unreachable host, or a non-2xx answer.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<String> {
        let a = self.request(method, path, body)?;
        if !(200..300).contains(&a.status) {
            let v: Value = serde_json::from_str(&a.text).unwrap_or(Value::Null);
            let message = match (v["error"].as_str(), v["field"].as_str()) {
                (Some(e), Some(f)) => format!("{e} (field `{f}`)"),
                (Some(e), None) => e.to_owned(),
                _ => format!("the API answered HTTP {} {}", a.status, a.text),
            };
            anyhow::bail!("{message}");
        }
        Ok(a.text)
    }

    /// The gateway's address (`http://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Uploads a plugin: `POST path` with a `multipart/form-data` body of
    /// the parts `manifest` (TOML text) and `component` (bytes).
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub fn upload(&self, path: &str, manifest: &str, component: &[u8]) -> anyhow::Result<String> {
        let boundary = format!("exesdb-{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::with_capacity(component.len() + manifest.len() + 512);
        let part = |body: &mut Vec<u8>, name: &str, kind: &str, bytes: &[u8]| {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: {kind}\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        };
        part(
            &mut body,
            "manifest",
            "application/toml",
            manifest.as_bytes(),
        );
        part(&mut body, "component", "application/wasm", component);
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let url = format!("{}{path}", self.base);
        let mut r = self.agent.post(&url).header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        );
        if let Some(t) = &self.token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        let response = r.send(&body[..]).map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the host's API at {}: {e} (is the host running? see [api] listen)",
                self.base
            )
        })?;
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap_or_default();
        if !(200..300).contains(&status) {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            anyhow::bail!(
                "{}",
                v["error"].as_str().map_or_else(
                    || format!("the API answered HTTP {status} {text}"),
                    str::to_owned
                )
            );
        }
        Ok(text)
    }

    /// Streams `path` as Server-Sent Events, calling `on_event(event, data)`
    /// for each until the stream ends or `on_event` returns `false`.
    ///
    /// # Errors
    /// Unreachable host, a non-2xx answer, or a broken stream.
    pub fn sse(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> bool,
    ) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base);
        let mut r = self.agent.get(&url).header("Accept", "text/event-stream");
        if let Some(t) = &self.token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        let response = r
            .call()
            .map_err(|e| anyhow::anyhow!("cannot reach the host's API at {}: {e}", self.base))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response.into_body().read_to_string().unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            anyhow::bail!(
                "{}",
                v["error"]
                    .as_str()
                    .map_or_else(|| format!("HTTP {status} {text}"), str::to_owned)
            );
        }
        let reader = BufReader::new(response.into_body().into_reader());
        let (mut event, mut data) = (String::from("message"), String::new());
        for line in reader.lines() {
            let line = line?;
            if line.is_empty() {
                if !data.is_empty() && !on_event(&event, &data) {
                    return Ok(());
                }
                event = "message".into();
                data.clear();
            } else if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        Ok(())
    }
}

/// `exesdb-host publish CHANNEL TOPIC --kind KIND --data JSON`: prints the
/// new message's id.
///
/// # Errors
/// Invalid `--data`, or the gateway's refusal.
pub fn publish(
    remote: &Remote,
    channel: &str,
    topic: &str,
    kind: &str,
    data: &str,
) -> anyhow::Result<()> {
    let payload: Value =
        serde_json::from_str(data).map_err(|e| anyhow::anyhow!("--data is not JSON: {e}"))?;
    let body = serde_json::json!({ "topic": topic, "kind": kind, "payload": payload });
    let text = remote.call(
        "POST",
        &format!("/v1/channels/{channel}/messages"),
        Some(&body),
    )?;
    let v: Value = serde_json::from_str(&text)?;
    println!("{}", v["id"].as_str().unwrap_or_default());
    Ok(())
}

/// `exesdb-host alert ack ID --by WHO [--note TEXT]`.
///
/// # Errors
/// The gateway's refusal.
pub fn ack(remote: &Remote, alert_id: &str, by: &str, note: Option<&str>) -> anyhow::Result<()> {
    let body = serde_json::json!({ "acknowledged_by": by, "notes": note });
    remote.call("POST", &format!("/v1/alerts/{alert_id}/ack"), Some(&body))?;
    println!("acknowledged {alert_id}");
    Ok(())
}

/// `exesdb-host emitters`: the emitter workers of the running host as a
/// table — store, selector, subscriber, position (the next global
/// position to deliver), lag (how many positions the store's head is
/// ahead) and whether it is paused — one row per worker, with a header.
///
/// # Errors
/// The gateway's refusal, or an answer that is not the emitters list.
pub fn emitters(remote: &Remote) -> anyhow::Result<()> {
    let text = remote.call("GET", "/v1/emitters", None)?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("the API's emitters list is not JSON: {e}"))?;
    let rows: Vec<[String; 6]> = v["emitters"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("the API answered no emitters list: {text}"))?
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            let n = |k: &str| e[k].as_u64().unwrap_or(0).to_string();
            let paused = if e["paused"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            };
            [
                s("store"),
                s("selector"),
                s("subscriber"),
                n("position"),
                n("lag"),
                paused.to_owned(),
            ]
        })
        .collect();
    let header = [
        "STORE",
        "SELECTOR",
        "SUBSCRIBER",
        "POSITION",
        "LAG",
        "PAUSED",
    ];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let line = |r: [&str; 6]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>10}  {:>10}  {}",
            r[0], r[1], r[2], r[3], r[4], r[5]
        )
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", line(header))?;
    for r in &rows {
        writeln!(out, "{}", line(std::array::from_fn(|i| r[i].as_str())))?;
    }
    Ok(())
}

/// How `tail` prints messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TailFormat {
    /// One line per message in the console's own formats and colours.
    Pretty,
    /// One envelope per line as JSON.
    Json,
}

/// `exesdb-host tail CHANNEL [PATTERN…]`: the live feed until the stream
/// ends (or Ctrl-C, which exits 0).
///
/// # Errors
/// The gateway's refusal, or a broken stream.
pub fn tail(
    remote: &Remote,
    channel: &str,
    patterns: &[String],
    fmt: TailFormat,
) -> anyhow::Result<()> {
    let query: String = patterns
        .iter()
        .map(|p| {
            format!(
                "pattern={}",
                form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let path = if query.is_empty() {
        format!("/v1/channels/{channel}/stream")
    } else {
        format!("/v1/channels/{channel}/stream?{query}")
    };
    exit_on_signal()?;
    let painter = Painter::detect(crate::config::ColorMode::Auto);
    let stdout = std::io::stdout();
    remote.sse(&path, |event, data| {
        let line = match (event, fmt) {
            ("lagged", _) => {
                let n = serde_json::from_str::<Value>(data)
                    .map(|v| v["missed"].clone())
                    .unwrap_or_default();
                painter.paint(
                    Class::Failure,
                    &format!("⚠️ LAGGED: {n} messages missed (this client fell behind)"),
                )
            }
            (_, TailFormat::Json) => data.to_owned(),
            (_, TailFormat::Pretty) => match serde_json::from_str::<Envelope>(data) {
                Ok(env) => {
                    let (class, text) = crate::logging::lines::message(&env);
                    painter.paint(class, &text)
                }
                Err(_) => data.to_owned(),
            },
        };
        let mut out = stdout.lock();
        writeln!(out, "{line}").is_ok() && out.flush().is_ok()
    })
}

/// Ctrl-C or SIGTERM ends the process with exit code 0 (instead of the
/// signal's default, death by signal). The listeners are registered before
/// this returns, so a signal right after it is not lost; they are waited for
/// on a thread of their own while the caller reads the feed.
fn exit_on_signal() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut signals = {
        let _inside = rt.enter();
        crate::host::Signals::new()?
    };
    std::thread::spawn(move || {
        rt.block_on(signals.recv());
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    });
    Ok(())
}
