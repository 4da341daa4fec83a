//! A small Chrome DevTools Protocol client for the browser tests: it starts
//! a headless Chromium, opens pages in it and drives them (navigate,
//! evaluate, click, type, Tab, screenshots), collecting the pages' uncaught
//! exceptions and console errors.
//!
//! It speaks CDP itself over `tokio-tungstenite` rather than using
//! chromiumoxide (whose generated protocol crate is heavy to build on a
//! 2-core machine) or fantoccini (which needs a chromedriver next to the
//! browser).
//!
//! One [`Browser`] is one Chromium process with its own temporary profile;
//! one [`Page`] is one tab in a browser context of its own, so two pages of
//! one browser share no cookies or storage. Everything runs on the tokio
//! runtime of the test that launched the browser: a `Browser` cannot
//! outlive it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long one CDP command may take to be answered.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Page::goto`] waits for the new document to be complete.
const LOAD_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`Browser::launch`] waits for Chromium's `DevToolsActivePort`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The period of [`Page::wait_for`]'s polling.
const POLL: Duration = Duration::from_millis(50);

/// A JavaScript string literal holding `s` (JSON's quoting is valid JS), to
/// splice test data into evaluated code: `format!("f({})", js(name))`.
pub fn js(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Whether `v` is truthy as JavaScript sees it (`null`, `false`, `0` and
/// `""` are not; objects and arrays always are).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The target directory of this build: `CARGO_TARGET_DIR` (a relative one
/// taken from the workspace root), else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = host.parent().unwrap_or(host);
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join("target"),
    }
}

/// What the connection's reader shares with the callers.
#[derive(Debug, Default)]
struct Shared {
    /// Commands sent and not answered yet, by id: the answer's `result`, or
    /// its `error` as text.
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>,
    /// Errors the pages reported, by CDP session id.
    errors: Mutex<HashMap<String, Vec<String>>>,
    /// Set once the socket is closed: no answer will come any more.
    closed: Mutex<Option<String>>,
}

/// One WebSocket connection to the browser: commands go out through a
/// writer task, a reader task routes answers (by id) and events.
#[derive(Debug)]
struct Conn {
    out: mpsc::UnboundedSender<Message>,
    next_id: AtomicU64,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Conn {
    async fn open(url: &str) -> anyhow::Result<Conn> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("connecting to Chromium's DevTools at {url}"))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut queue) = mpsc::unbounded_channel::<Message>();
        let shared = Arc::new(Shared::default());
        let writer = tokio::spawn(async move {
            while let Some(m) = queue.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let reader = {
            let shared = Arc::clone(&shared);
            let out = out.clone();
            tokio::spawn(async move {
                let why = loop {
                    match stream.next().await {
                        Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
                            Ok(v) => route(&shared, &out, v),
                            Err(e) => eprintln!("browser: unparsable CDP message ({e}): {text}"),
                        },
                        Some(Ok(Message::Close(_))) | None => break "the socket closed".to_owned(),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break format!("the socket failed: {e}"),
                    }
                };
                *shared.closed.lock().unwrap() = Some(why.clone());
                for (_, tx) in shared.pending.lock().unwrap().drain() {
                    let _ = tx.send(Err(format!("the browser connection closed: {why}")));
                }
            })
        };
        Ok(Conn {
            out,
            next_id: AtomicU64::new(1),
            shared,
            tasks: vec![writer, reader],
        })
    }

    /// Sends `method` with `params` (to the page of `session`, or to the
    /// browser) and returns its answer's `result`.
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().unwrap().insert(id, tx);
        if let Some(why) = self.shared.closed.lock().unwrap().clone() {
            self.shared.pending.lock().unwrap().remove(&id);
            bail!("{method}: the browser connection closed: {why}");
        }
        self.send(id, session, method, params);
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(error))) => bail!("{method}: {error}"),
            Ok(Err(_)) => bail!("{method}: the browser connection closed"),
            Err(_) => {
                self.shared.pending.lock().unwrap().remove(&id);
                bail!("{method}: no answer within {CALL_TIMEOUT:?}")
            }
        }
    }

    /// Sends a command without waiting for (or routing) its answer.
    fn send(&self, id: u64, session: Option<&str>, method: &str, params: Value) {
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        let _ = self.out.send(Message::text(msg.to_string()));
    }

    /// Sends a command whose answer nobody waits for (from `Drop`).
    fn fire(&self, session: Option<&str>, method: &str, params: Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(id, session, method, params);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Handles one message from the browser: an answer goes to its caller; a
/// page's uncaught exception, `console.error`/`console.assert` or error log
/// entry is recorded for its session; a JavaScript dialog (`alert`,
/// `confirm`, `prompt`) is accepted at once, so it never blocks the page.
fn route(shared: &Shared, out: &mpsc::UnboundedSender<Message>, v: Value) {
    if let Some(id) = v["id"].as_u64() {
        if let Some(tx) = shared.pending.lock().unwrap().remove(&id) {
            let answer = match v.get("error") {
                Some(e) => Err(e["message"].as_str().map_or_else(
                    || e.to_string(),
                    |m| match e["data"].as_str() {
                        Some(d) => format!("{m} ({d})"),
                        None => m.to_owned(),
                    },
                )),
                None => Ok(v["result"].clone()),
            };
            let _ = tx.send(answer);
        }
        return;
    }
    let Some(session) = v["sessionId"].as_str() else {
        return;
    };
    let p = &v["params"];
    let error = match v["method"].as_str().unwrap_or("") {
        "Runtime.exceptionThrown" => Some(format!(
            "uncaught: {}",
            exception_text(&p["exceptionDetails"])
        )),
        "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
            let args: Vec<String> = p["args"]
                .as_array()
                .map(|a| a.iter().map(remote_text).collect())
                .unwrap_or_default();
            Some(format!(
                "console.{}: {}",
                p["type"].as_str().unwrap_or(""),
                args.join(" ")
            ))
        }
        "Log.entryAdded" if p["entry"]["level"] == "error" => {
            let e = &p["entry"];
            Some(format!(
                "log ({}): {} {}",
                e["source"].as_str().unwrap_or("?"),
                e["text"].as_str().unwrap_or(""),
                e["url"].as_str().unwrap_or("")
            ))
        }
        "Page.javascriptDialogOpening" => {
            println!(
                "browser: accepting a {} dialog: {}",
                p["type"].as_str().unwrap_or("?"),
                p["message"].as_str().unwrap_or("")
            );
            let msg = json!({
                "id": 0,
                "method": "Page.handleJavaScriptDialog",
                "params": {"accept": true},
                "sessionId": session,
            });
            let _ = out.send(Message::text(msg.to_string()));
            None
        }
        _ => None,
    };
    if let Some(e) = error {
        shared
            .errors
            .lock()
            .unwrap()
            .entry(session.to_owned())
            .or_default()
            .push(e.trim_end().to_owned());
    }
}

/// The text of CDP `exceptionDetails`: the exception's description (its
/// message and stack) when there is one, else the details' text, with
/// where it was thrown.
fn exception_text(d: &Value) -> String {
    let what = d["exception"]["description"]
        .as_str()
        .or_else(|| d["exception"]["value"].as_str())
        .or_else(|| d["text"].as_str())
        .unwrap_or("an exception");
    match d["url"].as_str() {
        Some(url) if !url.is_empty() => format!(
            "{what} (at {url}:{}:{})",
            d["lineNumber"].as_i64().unwrap_or(0) + 1,
            d["columnNumber"].as_i64().unwrap_or(0) + 1
        ),
        _ => what.to_owned(),
    }
}

/// A console argument (a CDP `RemoteObject`) as text.
fn remote_text(o: &Value) -> String {
    match (&o["value"], o["description"].as_str()) {
        (Value::String(s), _) => s.clone(),
        (Value::Null, Some(d)) => d.to_owned(),
        (Value::Null, None) => o["unserializableValue"]
            .as_str()
            .unwrap_or(o["type"].as_str().unwrap_or("?"))
            .to_owned(),
        (v, _) => v.to_string(),
    }
}

/// A headless Chromium, killed (and waited for) when dropped.
#[derive(Debug)]
pub struct Browser {
    conn: Arc<Conn>,
    child: Child,
    profile: TempDir,
}

impl Browser {
    /// Starts Chromium (`$CHROMIUM`, else `/usr/bin/chromium`) headless with
    /// a fresh profile and connects to it.
    ///
    /// # Errors
    /// No Chromium there (the message says how to install it), it failed
    /// to start, or it did not open its DevTools port within 20 s (the
    /// message ends with its stderr).
    pub async fn launch() -> anyhow::Result<Browser> {
        let exe = std::env::var_os("CHROMIUM")
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        if !exe.is_file() {
            bail!(
                "chromium not found at {}: `.ci/run` installs it (apt-get install chromium); \
                 or set CHROMIUM to a Chromium or Chrome binary",
                exe.display()
            );
        }
        let profile = tempfile::tempdir().context("a temporary Chromium profile")?;
        let log = profile.path().join("chromium.log");
        let stderr = std::fs::File::create(&log)?;
        let mut child = Command::new(&exe)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        // Chromium writes the port it chose and the browser's WebSocket path.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                break format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
            }
            let exited = child.try_wait()?;
            if exited.is_some() || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(20).collect();
                bail!(
                    "{} {} its DevTools port; its stderr ends with:\n{}",
                    exe.display(),
                    match exited {
                        Some(status) => format!("exited ({status}) before opening"),
                        None => format!("did not open within {START_TIMEOUT:?}"),
                    },
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(POLL).await;
        };
        let conn = match Conn::open(&url).await {
            Ok(c) => Arc::new(c),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Browser {
            conn,
            child,
            profile,
        })
    }

    /// Opens a blank tab of `width`×`height` CSS pixels (a desktop
    /// viewport, scale 1) in a new browser context, with the Page, Runtime
    /// and Log domains enabled: from now on its errors are collected (see
    /// [`Page::console_errors`]). The page acts as focused even when it is
    /// not the front tab, so keys and text reach it.
    ///
    /// # Errors
    /// A CDP command failed.
    pub async fn page(&self, width: u32, height: u32) -> anyhow::Result<Page> {
        let c = &self.conn;
        let context = c
            .call(
                None,
                "Target.createBrowserContext",
                json!({"disposeOnDetach": true}),
            )
            .await?["browserContextId"]
            .as_str()
            .ok_or_else(|| anyhow!("Target.createBrowserContext: no browserContextId"))?
            .to_owned();
        let target = c
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context}),
            )
            .await?["targetId"]
            .as_str()
            .ok_or_else(|| anyhow!("Target.createTarget: no targetId"))?
            .to_owned();
        let session = c
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await?["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("Target.attachToTarget: no sessionId"))?
            .to_owned();
        let page = Page {
            conn: Arc::clone(c),
            session,
            target,
            context,
        };
        for domain in ["Page", "Runtime", "Log"] {
            page.call(&format!("{domain}.enable"), json!({})).await?;
        }
        page.call(
            "Emulation.setFocusEmulationEnabled",
            json!({"enabled": true}),
        )
        .await?;
        page.set_viewport(width, height, false).await?;
        Ok(page)
    }

    /// The browser's temporary profile directory (its stderr is
    /// `chromium.log` there).
    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }
}

impl Browser {
    /// Asks Chromium to quit (`Browser.close`), so it ends its helper
    /// processes itself, and waits up to 5 s for it to exit; kills it
    /// after that. Dropping a `Browser` kills it at once.
    pub async fn close(mut self) {
        let _ = self.conn.call(None, "Browser.close", json!({})).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// One tab. Dropping it closes the tab and its browser context.
#[derive(Debug)]
pub struct Page {
    conn: Arc<Conn>,
    session: String,
    target: String,
    context: String,
}

impl Page {
    /// Sends a CDP command to this page and returns its answer's `result`.
    ///
    /// # Errors
    /// The browser answered with an error, did not answer within 30 s, or
    /// the connection closed.
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.conn.call(Some(&self.session), method, params).await
    }

    /// Navigates to `url` and waits (up to 20 s) until the new document's
    /// `readyState` is `complete`: `load` has fired, the page's scripts
    /// have run, though what they fetch may still be on its way. (A marker
    /// set in the old document tells the two apart, so a fragment-only
    /// change of URL, which keeps the document, would time out.)
    ///
    /// # Errors
    /// The navigation failed (unreachable host, bad URL) or did not
    /// complete in time.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.eval("window.__cdpOldDocument = true").await?;
        let r = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(e) = r["errorText"].as_str().filter(|e| !e.is_empty()) {
            bail!("navigating to {url}: {e}");
        }
        self.wait_for(
            "!window.__cdpOldDocument && document.readyState === 'complete'",
            LOAD_TIMEOUT,
        )
        .await
        .with_context(|| format!("loading {url}"))?;
        Ok(())
    }

    /// Evaluates the JavaScript expression `js` in the page's main frame
    /// and returns its value as JSON (`null` for `undefined`; a promise is
    /// awaited; a DOM node comes back as `{}`, so return what you need of
    /// it). Runs as a user gesture.
    ///
    /// # Errors
    /// The expression threw (the error's text is the exception's), or the
    /// command failed (e.g. no document while navigating).
    pub async fn eval(&self, js: &str) -> anyhow::Result<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": js,
                    "returnByValue": true,
                    "awaitPromise": true,
                    "userGesture": true,
                }),
            )
            .await?;
        if r.get("exceptionDetails").is_some() {
            bail!("{}", exception_text(&r["exceptionDetails"]));
        }
        Ok(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Evaluates `predicate` every 50 ms until its value is truthy (see
    /// [`truthy`]) and returns that value. An evaluation that throws counts
    /// as not yet (the page may be between documents).
    ///
    /// # Errors
    /// Still falsy after `timeout`: the error names the predicate, its last
    /// value (or error) and the page's errors so far.
    pub async fn wait_for(&self, predicate: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.eval(predicate).await {
                Ok(v) if truthy(&v) => return Ok(v),
                Ok(v) => v.to_string(),
                Err(e) => format!("error: {e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for `{predicate}`; its last value: {last}; \
                     the page's errors: {:?}",
                    self.console_errors()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the first element matching the CSS selector `css` (scrolled
    /// into view; the DOM's `click()`, so it is not hit-tested).
    ///
    /// # Errors
    /// No element matches, or the evaluation failed.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return false; \
                 e.scrollIntoView({{block: 'center'}}); e.click(); return true; }})()",
                js(css)
            ))
            .await?;
        if found != Value::Bool(true) {
            bail!("click: no element matches `{css}`");
        }
        Ok(())
    }

    /// Focuses the first element matching `css`, selects its content and
    /// types `text` in its place, as a keyboard would (`input` events),
    /// then fires `change` on it.
    ///
    /// # Errors
    /// No element matches, or a command failed.
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let el = format!("document.querySelector({})", js(css));
        let found = self
            .eval(&format!(
                "(() => {{ const e = {el}; if (!e) return false; e.focus(); \
                 if (typeof e.select === 'function') e.select(); return true; }})()"
            ))
            .await?;
        if found != Value::Bool(true) {
            bail!("type_into: no element matches `{css}`");
        }
        self.call("Input.insertText", json!({"text": text})).await?;
        self.eval(&format!(
            "{el}.dispatchEvent(new Event('change', {{bubbles: true}}))"
        ))
        .await?;
        Ok(())
    }

    /// Presses and releases Tab, then describes the focused element (see
    /// [`focused`](Self::focused)).
    ///
    /// # Errors
    /// A command failed.
    pub async fn press_tab(&self) -> anyhow::Result<Option<String>> {
        for kind in ["rawKeyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({
                    "type": kind,
                    "key": "Tab",
                    "code": "Tab",
                    "windowsVirtualKeyCode": 9,
                    "nativeVirtualKeyCode": 9,
                }),
            )
            .await?;
        }
        self.focused().await
    }

    /// The focused element as a CSS-like description: tag, `#id`,
    /// `.class`es, `[data-action="…"]` and `[name="…"]`, then its text (or
    /// value) quoted, at most 40 characters, e.g.
    /// `button.ack[data-action="ack"] "Ack"`; `None` when nothing (or the
    /// body) has focus.
    ///
    /// # Errors
    /// The evaluation failed.
    pub async fn focused(&self) -> anyhow::Result<Option<String>> {
        let v = self
            .eval(
                "(() => { const e = document.activeElement; \
                 if (!e || e === document.body || e === document.documentElement) return null; \
                 let s = e.tagName.toLowerCase(); if (e.id) s += '#' + e.id; \
                 for (const c of e.classList) s += '.' + c; \
                 for (const a of ['data-action', 'name']) \
                   if (e.hasAttribute(a)) s += `[${a}=\"${e.getAttribute(a)}\"]`; \
                 const t = (e.innerText || e.value || '').trim().replace(/\\s+/g, ' ').slice(0, 40); \
                 return t ? s + ' ' + JSON.stringify(t) : s; })()",
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// The elements Tab reaches from the top of the page, in order: focus
    /// moves to the start of the body (a temporary unfocusable-by-Tab
    /// element there, removed after the first Tab), then Tab is pressed
    /// until focus leaves the document or comes back to the first element,
    /// at most `max` times. Each is described as by
    /// [`focused`](Self::focused).
    ///
    /// # Errors
    /// A command failed.
    pub async fn tab_stops(&self, max: usize) -> anyhow::Result<Vec<String>> {
        self.eval(
            "(() => { const s = document.createElement('span'); s.id = '__cdpTabStart'; \
             s.tabIndex = -1; document.body.prepend(s); s.focus(); })()",
        )
        .await?;
        let mut stops: Vec<String> = Vec::new();
        for i in 0..max {
            let stop = self.press_tab().await?;
            if i == 0 {
                self.eval("document.getElementById('__cdpTabStart')?.remove()")
                    .await?;
            }
            match stop {
                Some(d) if stops.first() != Some(&d) => stops.push(d),
                _ => break,
            }
        }
        Ok(stops)
    }

    /// Sets the viewport to `width`×`height` CSS pixels at scale 1;
    /// `mobile` emulates a phone (the page's `<meta name="viewport">` is
    /// obeyed, and without one the page is laid out 980 px wide).
    ///
    /// # Errors
    /// The command failed.
    pub async fn set_viewport(&self, width: u32, height: u32, mobile: bool) -> anyhow::Result<()> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await?;
        Ok(())
    }

    /// Emulates `prefers-color-scheme: dark` (or `light`).
    ///
    /// # Errors
    /// The command failed.
    pub async fn set_dark(&self, dark: bool) -> anyhow::Result<()> {
        let value = if dark { "dark" } else { "light" };
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": value}]}),
        )
        .await?;
        Ok(())
    }

    /// Saves a PNG of the whole page (beyond the viewport, as tall as the
    /// document) as `<target dir>/dashboard-screenshots/<name>.png`, prints
    /// `screenshot: <path>` and returns the path.
    ///
    /// # Errors
    /// The capture failed, or the file could not be written.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let m = self.call("Page.getLayoutMetrics", json!({})).await?;
        let size = &m["cssContentSize"];
        let (w, h) = (
            size["width"].as_f64().unwrap_or(0.0).ceil().max(1.0),
            size["height"].as_f64().unwrap_or(0.0).ceil().max(1.0),
        );
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1},
                }),
            )
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or(""))
            .context("Page.captureScreenshot: data is not base64")?;
        let dir = target_dir().join("dashboard-screenshots");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        println!("screenshot: {}", path.display());
        Ok(path)
    }

    /// What the page reported as errors since it was opened, oldest first:
    /// uncaught exceptions and unhandled rejections (`uncaught: …`),
    /// `console.error` and failed `console.assert` calls (`console.error:
    /// …`), and the browser's error log entries, e.g. a failed request
    /// (`log (network): … <url>`).
    pub fn console_errors(&self) -> Vec<String> {
        self.conn
            .shared
            .errors
            .lock()
            .unwrap()
            .get(&self.session)
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.conn
            .fire(None, "Target.closeTarget", json!({"targetId": self.target}));
        self.conn.fire(
            None,
            "Target.disposeBrowserContext",
            json!({"browserContextId": self.context}),
        );
    }
}
