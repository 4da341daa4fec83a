//! The Health Dashboard (`GET /`) in a real browser: a headless Chromium
//! driven over the DevTools protocol ([`browser`]) against a host
//! started in-process, on a free loopback port, with its own data
//! directory. Each test looks at the page only through its contract (ids,
//! `data-*` attributes, classes), drives the host through the HTTP API or
//! natively, and saves full-page screenshots under
//! `target/dashboard-screenshots/` (named on stdout, `screenshot: …`):
//! 1280×800, and some at phone width (390×844, where the page must not
//! scroll sideways) and in dark mode. No test may leave an error in the
//! page's console.
//!
//! Needs Chromium (`/usr/bin/chromium` or `$CHROMIUM`); `.ci/run` installs it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use exesdb_host::artifacts::{BUNDLED, TEST_GUEST_MANIFEST, TEST_GUEST_WASM};
use exesdb_host::bus::{Channel, Subscriber};
use exesdb_host::config::Config;
use exesdb_host::host::Host;
use exesdb_host::messages::alerts::{AlertAck, AlertCategory, Severity, SystemAlert};
use exesdb_host::messages::audit::AccessLog;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::browser::{self, js, Browser, Page};
use crate::common::{agent, api_tokens, next_where, watch, WAIT};

/// The node name the test hosts run as (not the default, so the page must
/// show the host's own).
const NODE: &str = "dashboard-test@127.0.0.1";

/// The example plugins the host bundles, which the page must list.
const BUNDLED_NAMES: [&str; 5] = [
    "alert-escalator",
    "health-console",
    "json-log-formatter",
    "stream-projection",
    "threshold-alerter-rs",
];

/// Phone viewport.
const PHONE: (u32, u32) = (390, 844);

// ---- the host --------------------------------------------------------------

/// How a test's host differs from the quiet default.
#[derive(Debug, Default)]
struct Opts<'a> {
    /// Load the bundled plugins.
    bundled: bool,
    /// One `[[api.tokens]]` entry per `(name, scopes)`.
    tokens: &'a [(&'a str, &'a [&'a str])],
    /// More `EXESDB_*` variables, overriding the defaults.
    env: &'a [(&'a str, &'a str)],
}

/// A running host and its gateway.
struct Dash {
    host: Host,
    /// `http://127.0.0.1:<port>`.
    base: String,
    /// The configured tokens by name (the config file has only digests).
    tokens: BTreeMap<String, String>,
    /// The token the test's own requests send: the `admin` one, if any.
    admin: Option<String>,
    _dir: TempDir,
}

/// Host starts take turns: they share one component cache, so only the
/// first compiles the plugins and the others load them.
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Dash {
    async fn start(opts: Opts<'_>) -> Dash {
        let dir = tempfile::tempdir().unwrap();
        let cache = browser::target_dir().join("dashboard-cache");
        let mut env: BTreeMap<String, String> = [
            ("EXESDB_NODE__NAME", NODE.to_owned()),
            ("EXESDB_API__LISTEN", "127.0.0.1:0".to_owned()),
            ("EXESDB_PLUGINS__BUNDLED", opts.bundled.to_string()),
            ("EXESDB_PLUGINS__WATCH", "false".to_owned()),
            ("EXESDB_RUNTIME__POOLING", "false".to_owned()),
            ("EXESDB_RUNTIME__CACHE_DIR", cache.display().to_string()),
            (
                "EXESDB_STORES__DATA_DIR",
                dir.path().join("data").display().to_string(),
            ),
            ("EXESDB_STORES__DURABILITY", "relaxed".to_owned()),
            // Samples and summaries often enough for the charts to move.
            ("EXESDB_METRICS__INTERVAL_MS", "500".to_owned()),
            ("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "500".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in opts.env {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let (toml, tokens) = api_tokens(opts.tokens);
        let admin = opts
            .tokens
            .iter()
            .rfind(|(_, scopes)| scopes.contains(&"admin"))
            .map(|(name, _)| tokens[*name].clone());
        let file = (!toml.is_empty()).then(|| {
            let p = dir.path().join("host.toml");
            std::fs::write(&p, &toml).unwrap();
            p
        });
        let config = Config::load_with_env(file.as_deref(), env).expect("the test config loads");
        let host = {
            let _turn = STARTING.lock().await;
            Host::start(config).await.expect("the host starts")
        };
        let addr = host.api_addr().expect("the API is on");
        Dash {
            host,
            base: format!("http://{addr}"),
            tokens,
            admin,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A native subscriber on `channel`/`pattern` that never fills up.
    fn watch(&self, channel: Channel, pattern: &str) -> Subscriber {
        watch(self.host.bus(), channel, pattern)
    }

    /// `POST path` with `body` (and the admin token, if any): status and
    /// the answer as JSON (`null` if it is not).
    async fn send(&self, path: &str, content_type: String, body: Vec<u8>) -> (u16, Value) {
        let url = self.url(path);
        let token = self.admin.clone();
        tokio::task::spawn_blocking(move || {
            let agent = agent();
            let mut r = agent.post(&url).header("Content-Type", content_type);
            if let Some(t) = token {
                r = r.header("Authorization", format!("Bearer {t}"));
            }
            let response = r.send(&body[..]).expect("an HTTP answer");
            let status = response.status().as_u16();
            let text = response.into_body().read_to_string().unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
        .await
        .unwrap()
    }

    /// Publishes one message through `POST /v1/channels/{channel}/messages`
    /// and returns its envelope id.
    async fn publish(&self, channel: &str, message: Value) -> String {
        let (status, answer) = self
            .send(
                &format!("/v1/channels/{channel}/messages"),
                "application/json".into(),
                serde_json::to_vec(&message).unwrap(),
            )
            .await;
        assert_eq!(status, 201, "publishing {message} on {channel}: {answer}");
        answer["id"].as_str().expect("an id").to_owned()
    }

    /// Uploads the test guest as plugin `name` with `[config]` `mode` (and
    /// `n`) through `POST /v1/plugins/upload`; returns its status.
    async fn upload_guest(&self, name: &str, mode: &str, n: Option<i64>) -> Value {
        let mut manifest: toml::Table = std::fs::read_to_string(TEST_GUEST_MANIFEST)
            .unwrap()
            .parse()
            .unwrap();
        manifest.insert("name".into(), name.into());
        let config = manifest["config"].as_table_mut().unwrap();
        config.insert("mode".into(), mode.into());
        if let Some(n) = n {
            config.insert("n".into(), n.into());
        }
        let wasm = std::fs::read(TEST_GUEST_WASM).unwrap();
        let boundary = "dashboard-test-boundary";
        let mut body = Vec::new();
        for (part, kind, bytes) in [
            (
                "manifest",
                "application/toml",
                manifest.to_string().into_bytes(),
            ),
            ("component", "application/wasm", wasm),
        ] {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; \
                     filename=\"{part}\"\r\nContent-Type: {kind}\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(&bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let (status, answer) = self
            .send(
                "/v1/plugins/upload",
                format!("multipart/form-data; boundary={boundary}"),
                body,
            )
            .await;
        assert!(
            (200..300).contains(&status),
            "uploading {name}: {status} {answer}"
        );
        assert_eq!(answer["state"], "running", "{answer}");
        answer
    }

    /// Waits until a stream client of the gateway (the page's) listens on
    /// `channel` with `pattern`.
    async fn await_stream_on(&self, channel: Channel, pattern: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.host.bus().stats().iter().any(|s| {
            s.name.starts_with("api-stream:")
                && s.subscriptions
                    .iter()
                    .any(|i| i.channel == channel && i.pattern == pattern)
        }) {
            assert!(
                Instant::now() < deadline,
                "no stream client on {channel} `{pattern}` within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens the dashboard in a new `width`×`height` tab.
    async fn open(&self, browser: &Browser, test: &'static str, width: u32, height: u32) -> Tab {
        let page = browser.page(width, height).await.expect("a tab");
        page.goto(&self.url("/"))
            .await
            .expect("the dashboard loads");
        Tab { page, test }
    }

    async fn stop(self) {
        self.host.shutdown().await.unwrap();
    }
}

// ---- the page --------------------------------------------------------------

/// A dashboard tab of one test: the page, and the test's name for its
/// screenshots. Its helpers panic where the page's would return an error;
/// when the test panics, its drop saves a `<test>-failed` screenshot.
struct Tab {
    page: Page,
    test: &'static str,
}

impl Drop for Tab {
    /// During a panic, a screenshot of the page as the test left it. The
    /// test's runtime is busy unwinding, so a thread of its own drives the
    /// capture (the connection's tasks still run on the runtime's workers).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let (page, name) = (&self.page, format!("{}-failed", self.test));
        std::thread::scope(|s| {
            let capture = s.spawn(|| -> anyhow::Result<PathBuf> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), page.screenshot(&name)).await?
                })
            });
            // Joined here, so a failure of its own is reported, not raised.
            match capture.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("no failure screenshot: {e:#}"),
                Err(_) => eprintln!("no failure screenshot: the capture panicked"),
            }
        });
    }
}

impl std::ops::Deref for Tab {
    type Target = Page;
    fn deref(&self) -> &Page {
        &self.page
    }
}

impl Tab {
    /// Panics with `e` (the drop takes the screenshot).
    fn fail<T>(&self, e: anyhow::Error) -> T {
        panic!("{}: {e:#}", self.test);
    }

    /// Waits (up to [`WAIT`]) for `predicate` to be truthy; its value.
    async fn until(&self, predicate: &str) -> Value {
        match self.page.wait_for(predicate, WAIT).await {
            Ok(v) => v,
            Err(e) => self.fail(e),
        }
    }

    /// Waits for the page to have loaded its data and opened its streams.
    async fn ready(&self) {
        self.until("document.body.dataset.ready === 'true'").await;
    }

    async fn eval(&self, js: &str) -> Value {
        match self.page.eval(js).await {
            Ok(v) => v,
            Err(e) => self.fail(e.context(js.to_owned())),
        }
    }

    async fn click(&self, css: &str) {
        if let Err(e) = self.page.click(css).await {
            self.fail::<()>(e);
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        if let Err(e) = self.page.type_into(css, text).await {
            self.fail::<()>(e);
        }
    }

    /// Whether an element matches `css`.
    async fn has(&self, css: &str) -> bool {
        self.eval(&format!("document.querySelector({}) !== null", js(css)))
            .await
            == Value::Bool(true)
    }

    /// Whether an element matches `css` and is rendered (not `hidden`,
    /// `display: none` or `visibility: hidden`, itself or an ancestor).
    async fn shown(&self, css: &str) -> bool {
        self.eval(&format!(
            "(e => !!e && e.checkVisibility({{visibilityProperty: true}}))({})",
            q(css)
        ))
        .await
            == Value::Bool(true)
    }

    /// The `name` attribute of the first element matching `css` (`null`
    /// when there is no such element or attribute).
    async fn attr(&self, css: &str, name: &str) -> Value {
        self.eval(&format!(
            "document.querySelector({})?.getAttribute({}) ?? null",
            js(css),
            js(name)
        ))
        .await
    }

    /// The trimmed text of the first element matching `css`.
    async fn text(&self, css: &str) -> String {
        self.until(&format!(
            "document.querySelector({})?.textContent.trim() || null",
            js(css)
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Saves a screenshot `<test>-<what>`.
    async fn shot(&self, what: &str) -> PathBuf {
        let name = format!("{}-{what}", self.test);
        match self.page.screenshot(&name).await {
            Ok(p) => p,
            Err(e) => self.fail(e),
        }
    }

    /// At phone size: no horizontal scroll, and a screenshot
    /// `<test>-<what>-390`; then back to `width`×`height`.
    async fn phone(&self, what: &str, (width, height): (u32, u32)) {
        self.page
            .set_viewport(PHONE.0, PHONE.1, true)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let widths = self
            .eval("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            .await;
        self.shot(&format!("{what}-{}", PHONE.0)).await;
        assert!(
            widths[0].as_u64().unwrap() <= u64::from(PHONE.0) + 1,
            "{}: at {}px wide the page scrolls sideways: [scrollWidth, clientWidth] = {widths}",
            self.test,
            PHONE.0
        );
        self.page.set_viewport(width, height, false).await.unwrap();
    }

    /// In dark mode: a screenshot `<test>-<what>-dark`; then light again.
    async fn dark(&self, what: &str) {
        self.page.set_dark(true).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.shot(&format!("{what}-dark")).await;
        self.page.set_dark(false).await.unwrap();
    }

    /// Asserts the page reported no errors, except those containing one of
    /// `expected`.
    fn assert_clean(&self, expected: &[&str]) {
        let (allowed, errors): (Vec<String>, Vec<String>) = self
            .console_errors()
            .into_iter()
            .partition(|e| expected.iter().any(|x| e.contains(x)));
        for e in allowed {
            println!("{}: an expected page error: {e}", self.test);
        }
        assert!(
            errors.is_empty(),
            "{}: the page reported errors: {errors:#?}",
            self.test
        );
    }
}

/// A `document.querySelector` expression for `css`.
fn q(css: &str) -> String {
    format!("document.querySelector({})", js(css))
}

/// The row of plugin `name`.
fn plugin_row(name: &str) -> String {
    format!("#plugins tbody tr[data-plugin={}]", js(name))
}

/// The row of subscription `name`.
fn subscription_row(name: &str) -> String {
    format!("#subscriptions tbody tr[data-subscription={}]", js(name))
}

async fn launch() -> Browser {
    Browser::launch().await.unwrap_or_else(|e| panic!("{e:#}"))
}

// ---- the harness itself ----------------------------------------------------

/// The CDP client against a small page of its own, so a failure here is
/// the harness's (or the browser's), not the dashboard's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_harness_drives_a_small_page() {
    let browser = launch().await;
    let page = browser.page(640, 480).await.unwrap();
    let html = "<!doctype html><meta name=viewport content='width=device-width'>\
        <style>@media (prefers-color-scheme: dark) { body { background: #000 } }</style>\
        <input id=t><button id=b onclick=\"this.dataset.n = (+(this.dataset.n || 0) + 1)\">go</button>\
        <a href='#x' class='l k'>link</a>\
        <script>document.getElementById('t').addEventListener('change', e => document.body.dataset.changed = e.target.value);\
        setTimeout(() => { document.body.dataset.late = 'yes' }, 300);</script>";
    page.goto(&format!("data:text/html,{}", percent(html)))
        .await
        .unwrap();
    // eval: values, promises, exceptions.
    assert_eq!(page.eval("1 + 2").await.unwrap(), json!(3));
    assert_eq!(page.eval("undefined").await.unwrap(), Value::Null);
    assert_eq!(
        page.eval("new Promise(r => setTimeout(() => r({a: [1]}), 10))")
            .await
            .unwrap(),
        json!({"a": [1]})
    );
    let e = page.eval("null.x").await.unwrap_err().to_string();
    assert!(e.contains("TypeError"), "{e}");
    // wait_for: the truthy value, or a timeout naming the predicate.
    assert_eq!(
        page.wait_for("document.body.dataset.late", WAIT)
            .await
            .unwrap(),
        json!("yes")
    );
    let e = page
        .wait_for("document.body.dataset.never", Duration::from_millis(200))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("document.body.dataset.never") && e.contains("null"),
        "{e}"
    );
    // click, type_into.
    page.click("#b").await.unwrap();
    page.click("#b").await.unwrap();
    assert_eq!(
        page.eval("document.getElementById('b').dataset.n")
            .await
            .unwrap(),
        json!("2")
    );
    assert!(page.click("#missing").await.is_err());
    page.type_into("#t", "old").await.unwrap();
    page.type_into("#t", "hello").await.unwrap();
    assert_eq!(
        page.eval("[document.getElementById('t').value, document.body.dataset.changed]")
            .await
            .unwrap(),
        json!(["hello", "hello"])
    );
    // Tab order.
    let stops = page.tab_stops(10).await.unwrap();
    assert_eq!(
        stops,
        ["input#t \"hello\"", "button#b \"go\"", "a.l.k \"link\""],
        "{stops:?}"
    );
    // Dark mode, the viewport, screenshots.
    let dark = "matchMedia('(prefers-color-scheme: dark)').matches";
    page.set_dark(true).await.unwrap();
    assert_eq!(page.eval(dark).await.unwrap(), json!(true));
    page.set_dark(false).await.unwrap();
    assert_eq!(page.eval(dark).await.unwrap(), json!(false));
    page.set_viewport(PHONE.0, PHONE.1, true).await.unwrap();
    assert_eq!(
        page.eval("document.documentElement.clientWidth")
            .await
            .unwrap(),
        json!(PHONE.0)
    );
    page.eval("document.body.style.height = '2000px'")
        .await
        .unwrap();
    let shot = page.screenshot("harness-small-page").await.unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(height > 2000, "a full-page screenshot: {height} px high");
    // Errors: none so far; then each kind is collected.
    assert_eq!(page.console_errors(), Vec::<String>::new());
    page.eval(
        "console.error('bad', 42); console.warn('only a warning'); \
         setTimeout(() => { throw new Error('thrown later') }, 0); \
         Promise.reject(new Error('not handled')); undefined",
    )
    .await
    .unwrap();
    let errors = page
        .wait_for("new Promise(r => setTimeout(() => r(true), 200))", WAIT)
        .await
        .map(|_| page.console_errors())
        .unwrap();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_eq!(errors[0], "console.error: bad 42");
    assert!(
        errors.iter().any(|e| e.contains("thrown later")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("not handled")),
        "{errors:#?}"
    );
    // A page of its own has its own errors.
    let other = browser.page(320, 200).await.unwrap();
    assert!(other.console_errors().is_empty());
    drop((page, other));
    browser.close().await;
}

/// `s` percent-encoded for a `data:` URL.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- a. the bundled plugins and the node -----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_the_bundled_plugins_and_the_node() {
    let mut bundled: Vec<&str> = BUNDLED.iter().map(|b| b.name).collect();
    bundled.sort_unstable();
    assert_eq!(bundled, BUNDLED_NAMES, "the host bundles other plugins now");
    let dash = Dash::start(Opts {
        bundled: true,
        ..Opts::default()
    })
    .await;
    let browser = launch().await;
    let tab = dash.open(&browser, "a", 1280, 800).await;
    tab.ready().await;

    // Every bundled plugin, running, with its world and language.
    tab.until(&format!(
        "{}.every(n => {}?.dataset.state === 'running')",
        json!(BUNDLED_NAMES),
        "document.querySelector(`#plugins tbody tr[data-plugin=\"${n}\"]`)"
    ))
    .await;
    for info in dash.host.plugins().list() {
        let row = plugin_row(&info.name);
        let world = serde_json::to_value(info.world).unwrap();
        assert_eq!(tab.attr(&row, "data-world").await, world, "{}", info.name);
        let language = tab.attr(&row, "data-language").await;
        assert!(
            language.as_str().is_some_and(|l| !l.is_empty()),
            "{}: data-language = {language}",
            info.name
        );
    }
    // An open API allows everything: the admin controls are there.
    assert_eq!(tab.attr("body", "data-role").await, "admin");
    assert!(
        tab.shown(&format!(
            "{} button[data-action=\"reload\"]",
            plugin_row("health-console")
        ))
        .await
    );
    assert!(
        tab.shown("form#plugin-upload input[name=\"component\"]")
            .await
    );
    assert!(
        tab.shown("form#plugin-upload input[name=\"manifest\"]")
            .await
    );

    // The node section.
    assert_eq!(tab.text("#node-name").await, NODE);
    let version = tab.text("#node-version").await;
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "#node-version: {version}"
    );
    for id in ["#node-uptime", "#node-memory", "#node-cpu", "#node-load"] {
        tab.text(id).await; // not empty
    }
    for component in ["bus", "runtime", "store"] {
        let css = format!("[data-component=\"{component}\"]");
        tab.until(&format!("{}?.dataset.status", q(&css))).await;
    }
    // The bundled subscribers' health rows, and the charts filling.
    tab.until(&format!(
        "{}?.dataset.status === 'healthy'",
        q(&subscription_row("health-console"))
    ))
    .await;
    tab.until(
        "['eps', 'latency', 'queue'].every(c => \
         +document.querySelector('svg#chart-' + c)?.dataset.points >= 1)",
    )
    .await;
    // stream-projection's emitter worker.
    tab.until("document.querySelectorAll('#emitters tbody tr[data-emitter]').length >= 1")
        .await;
    tab.shot("plugins-1280").await;
    tab.dark("plugins-1280").await;
    tab.phone("plugins", (1280, 800)).await;

    // Keyboard: a focused Reload button keeps the focus while its row
    // updates (health-console's counts change with every summary it
    // handles), else Tab from it starts over at the top of the page.
    let reload = format!(
        "{} button[data-action=\"reload\"]",
        plugin_row("health-console")
    );
    tab.eval(&format!("{}.focus()", q(&reload))).await;
    let before = tab
        .eval(&format!("{}.textContent", q(&plugin_row("health-console"))))
        .await;
    tab.until(&format!(
        "{}?.textContent !== {before}",
        q(&plugin_row("health-console"))
    ))
    .await;
    let focused = tab.focused().await.unwrap();
    assert!(
        tab.eval(&format!(
            "document.activeElement === {} && document.activeElement !== null",
            q(&reload)
        ))
        .await
            == Value::Bool(true),
        "health-console's Reload button lost the focus when its row updated; focused now: {focused:?}"
    );
    // Tab reaches the tail's controls and the plugins' buttons.
    let stops = tab.tab_stops(200).await.unwrap();
    for wanted in ["button#tail-apply", "select#tail-channel"] {
        assert!(
            stops.iter().any(|s| s.starts_with(wanted)),
            "Tab does not reach {wanted}: {stops:#?}"
        );
    }
    assert!(
        stops
            .iter()
            .any(|s| s.starts_with("button") && s.contains("[data-action=\"reload\"]")),
        "Tab does not reach a reload button: {stops:#?}"
    );

    // The reload button reloads (the API records the request on audit).
    let access = dash.watch(Channel::Audit, "audit:access_log:admin_api");
    tab.click(&format!(
        "{} button[data-action=\"reload\"]",
        plugin_row("health-console")
    ))
    .await;
    next_where(&access, |e| {
        e.decode::<AccessLog>().is_ok_and(|a| {
            a.action == "POST" && a.resource_id == "/v1/plugins/health-console/reload" && a.success
        })
    })
    .await;
    tab.until(&format!(
        "{}?.dataset.state === 'running'",
        q(&plugin_row("health-console"))
    ))
    .await;
    tab.assert_clean(&[]);
    drop(tab);
    browser.close().await;
    dash.stop().await;
}

// ---- b. a plugin loaded through the API ------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_loaded_through_the_api_appears_within_a_second() {
    let dash = Dash::start(Opts::default()).await;
    let browser = launch().await;
    let tab = dash.open(&browser, "b", 1280, 800).await;
    tab.ready().await;
    assert_eq!(
        tab.eval("document.querySelectorAll('#plugins tbody tr[data-plugin]').length")
            .await,
        json!(0),
        "no plugin yet"
    );
    tab.shot("empty-1280").await;
    // A mark in this document: gone if the page reloads.
    tab.eval("window.__sameDocument = true").await;

    let status = dash.upload_guest("uploaded-guest", "echo", None).await;
    let answered = Instant::now();
    let row = plugin_row("uploaded-guest");
    tab.until(&format!("{} !== null", q(&row))).await;
    let took = answered.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the row appeared {took:?} after the API's answer"
    );
    println!("the uploaded plugin's row appeared {took:?} after the API's answer");
    assert_eq!(
        tab.eval("window.__sameDocument === true").await,
        json!(true),
        "the page reloaded"
    );
    tab.until(&format!("{}.dataset.state === 'running'", q(&row)))
        .await;
    assert_eq!(tab.attr(&row, "data-world").await, status["world"]);
    tab.shot("uploaded-1280").await;

    // Its unload button unloads it, and the row goes.
    tab.click(&format!("{row} button[data-action=\"unload\"]"))
        .await;
    let deadline = Instant::now() + WAIT;
    while dash.host.plugins().status("uploaded-guest").is_some() {
        assert!(Instant::now() < deadline, "the plugin is still loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tab.until(&format!(
        "{} === null || {}.dataset.state === 'unloaded'",
        q(&row),
        q(&row)
    ))
    .await;
    tab.assert_clean(&[]);
    drop(tab);
    browser.close().await;
    dash.stop().await;
}

// ---- c. a failing subscription's breaker -----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subscription_shows_its_breaker_open_then_closed() {
    // Three failures in a row open the breaker; a trial after 3 s. The
    // cooldown is long enough for the page to be seen red under load: once
    // it has passed, the page's next read of /v1/health shows the breaker
    // half-open (amber), as it then is.
    let dash = Dash::start(Opts {
        env: &[
            ("EXESDB_HEALTH_MONITORING__UNHEALTHY_THRESHOLD", "3"),
            ("EXESDB_HEALTH_MONITORING__COOLDOWN_MS", "3000"),
            ("EXESDB_HEALTH_MONITORING__MAX_COOLDOWN_MS", "24000"),
        ],
        ..Opts::default()
    })
    .await;
    // Fails its first 3 messages, then handles every one.
    dash.upload_guest("flaky", "recover-after", Some(3)).await;
    let browser = launch().await;
    let tab = dash.open(&browser, "c", 1280, 800).await;
    tab.ready().await;
    let row = subscription_row("flaky");
    tab.until(&format!("{}?.dataset.breaker === 'closed'", q(&row)))
        .await;
    tab.shot("healthy-1280").await;

    let event = |n: u32| json!({"topic": "dash:flaky", "kind": "custom.t", "payload": {"n": n}});
    for n in 1..=3 {
        dash.publish("events", event(n)).await;
    }
    tab.until(&format!(
        "(e => e && e.dataset.breaker === 'open' && e.classList.contains('breaker-open') \
          && e.dataset.status === 'failed' && e.classList.contains('status-failed'))({})",
        q(&row)
    ))
    .await;
    let opened = Instant::now();
    let colours = tab
        .eval(&format!(
            "(s => [s.color, s.backgroundColor, s.borderLeftColor])(getComputedStyle({}))",
            q(&row)
        ))
        .await;
    println!("the open breaker's row: color, background, left border = {colours}");
    tab.shot("breaker-open-1280").await;
    tab.dark("breaker-open-1280").await;
    tab.phone("breaker-open", (1280, 800)).await;

    // The breaker waits for a message to try once the cooldown has passed;
    // the 4th succeeds and closes it.
    tokio::time::sleep(Duration::from_millis(3300).saturating_sub(opened.elapsed())).await;
    dash.publish("events", event(4)).await;
    tab.until(&format!(
        "(e => e && e.dataset.breaker === 'closed' && e.classList.contains('breaker-closed') \
          && e.dataset.status === 'healthy')({})",
        q(&row)
    ))
    .await;
    tab.shot("breaker-closed-1280").await;
    tab.assert_clean(&[]);
    drop(tab);
    browser.close().await;
    dash.stop().await;
}

// ---- d. acknowledging an alert ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ack_button_acknowledges_an_alert() {
    let dash = Dash::start(Opts::default()).await;
    let browser = launch().await;
    let tab = dash.open(&browser, "d", 1280, 800).await;
    tab.ready().await;

    let alert_id = format!("dash-{}", uuid_like());
    let mut alert = SystemAlert::new(
        alert_id.clone(),
        Severity::Critical,
        AlertCategory::System,
        "Disk almost full",
        "the data volume is at 97%",
        "dashboard-test",
    );
    alert.requires_ack = true;
    dash.publish(
        "alerts",
        json!({
            "topic": format!("system_alert:{alert_id}"),
            "kind": "SystemAlert",
            "payload": serde_json::to_value(&alert).unwrap(),
        }),
    )
    .await;
    let item = format!("#alerts li[data-alert-id={}]", js(&alert_id));
    tab.until(&format!("{} !== null", q(&format!("{item} button.ack"))))
        .await;
    assert_eq!(tab.attr(&item, "data-acked").await, "false");
    assert_eq!(tab.attr(&item, "data-severity").await, "critical");
    tab.shot("alert-1280").await;
    tab.phone("alert", (1280, 800)).await;

    let acks = dash.watch(Channel::Alerts, "alert_ack:>");
    tab.click(&format!("{item} button.ack")).await;
    let ack = next_where(&acks, |e| {
        e.decode::<AlertAck>().is_ok_and(|a| a.alert_id == alert_id)
    })
    .await;
    let ack: AlertAck = ack.decode().unwrap();
    assert!(!ack.ack_by.is_empty(), "{ack:?}");
    tab.until(&format!(
        "(e => e && e.dataset.acked === 'true' && !e.querySelector('button.ack'))({})",
        q(&item)
    ))
    .await;
    tab.shot("acked-1280").await;
    tab.dark("acked-1280").await;
    tab.assert_clean(&[]);
    drop(tab);
    browser.close().await;
    dash.stop().await;
}

/// A fresh unique suffix.
fn uuid_like() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

// ---- e. the tail ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_follows_a_channel_and_shows_envelopes_with_their_correlated_messages() {
    let dash = Dash::start(Opts::default()).await;
    let browser = launch().await;
    let tab = dash.open(&browser, "e", 1280, 800).await;
    tab.ready().await;

    // Every channel is offered; follow `events`, topics `dash:>`.
    let options = tab
        .eval("[...document.querySelectorAll('select#tail-channel option')].map(o => o.value)")
        .await;
    for channel in ["events", "alerts", "health", "system"] {
        assert!(
            options.as_array().unwrap().iter().any(|o| o == channel),
            "select#tail-channel offers {options}"
        );
    }
    tab.eval(
        "(s => { s.value = 'events'; s.dispatchEvent(new Event('change', {bubbles: true})) })\
         (document.querySelector('select#tail-channel'))",
    )
    .await;
    tab.type_into("input#tail-pattern", "dash:>").await;
    tab.click("button#tail-apply").await;
    // Published only once the page follows them.
    dash.await_stream_on(Channel::Events, "dash:>").await;

    let correlation = format!("corr-{}", uuid_like());
    let mut ids = Vec::new();
    for (topic, kind) in [
        ("dash:orders-1", "OrderPlaced"),
        ("dash:orders-1", "OrderPaid"),
        ("dash:orders-1", "OrderShipped"),
    ] {
        ids.push(
            dash.publish(
                "events",
                json!({"topic": topic, "kind": kind, "payload": {"order": 1},
                       "correlation_id": correlation}),
            )
            .await,
        );
    }
    let unrelated = dash
        .publish(
            "events",
            json!({"topic": "dash:orders-2", "kind": "OrderPlaced", "payload": {"order": 2}}),
        )
        .await;
    // Not followed: another topic.
    let elsewhere = dash
        .publish(
            "events",
            json!({"topic": "other:x", "kind": "OrderPlaced", "payload": {}}),
        )
        .await;
    let line = |id: &str| format!("#tail-lines li[data-id={}]", js(id));
    for id in ids.iter().chain([&unrelated]) {
        tab.until(&format!("{} !== null", q(&line(id)))).await;
    }
    let text = tab.text(&line(&ids[0])).await;
    assert!(
        text.contains("dash:orders-1") && text.contains("OrderPlaced"),
        "the line of {}: {text}",
        ids[0]
    );
    assert!(
        !tab.has(&line(&elsewhere)).await,
        "a message outside the pattern is shown"
    );
    tab.shot("lines-1280").await;

    // A line's envelope, and the messages of its correlation id.
    tab.click(&line(&ids[0])).await;
    let envelope = tab
        .until(&format!(
            "(t => t.includes({}) && t)({}?.textContent ?? '')",
            js(&ids[0]),
            q("pre#envelope-json")
        ))
        .await;
    assert!(
        envelope.as_str().unwrap().contains(&correlation),
        "{envelope}"
    );
    for id in &ids[1..] {
        tab.until(&format!(
            "{} !== null",
            q(&format!("ul#correlated li[data-id={}]", js(id)))
        ))
        .await;
    }
    assert!(
        !tab.has(&format!("ul#correlated li[data-id={}]", js(&unrelated)))
            .await,
        "an uncorrelated message is listed as correlated"
    );
    tab.shot("envelope-1280").await;
    tab.dark("envelope-1280").await;
    tab.phone("envelope", (1280, 800)).await;

    // Pause is a toggle button.
    tab.click("button#tail-pause").await;
    tab.until(&format!(
        "{}.getAttribute('aria-pressed') === 'true'",
        q("button#tail-pause")
    ))
    .await;
    tab.click("button#tail-pause").await;
    tab.until(&format!(
        "{}.getAttribute('aria-pressed') === 'false'",
        q("button#tail-pause")
    ))
    .await;
    tab.assert_clean(&[]);
    drop(tab);
    browser.close().await;
    dash.stop().await;
}

// ---- f. tokens -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_what_the_page_offers() {
    let dash = Dash::start(Opts {
        tokens: &[("reader", &["read"]), ("root", &["admin"])],
        ..Opts::default()
    })
    .await;
    dash.upload_guest("guarded-guest", "noop", None).await;
    let browser = launch().await;
    let row = plugin_row("guarded-guest");
    // The page's requests without a token are refused, as they should be.
    let refused = ["the server responded with a status of 401"];

    // No token: the dialog.
    let tab = dash.open(&browser, "f", 1280, 800).await;
    tab.until(&format!("{}?.hidden === false", q("#token-dialog")))
        .await;
    assert_eq!(tab.attr("body", "data-role").await, "none");
    assert!(!tab.has(&row).await, "plugins shown without a token");
    tab.shot("token-dialog-1280").await;
    tab.phone("token-dialog", (1280, 800)).await;
    // A wrong token: still the dialog.
    tab.type_into("input#token-input", "exesdb_not-a-token")
        .await;
    tab.click("button#token-submit").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tab.until(&format!(
        "{}?.hidden === false && document.body.dataset.role === 'none'",
        q("#token-dialog")
    ))
    .await;

    // The read token: the plugins, without the admin controls.
    tab.type_into("input#token-input", &dash.tokens["reader"])
        .await;
    tab.click("button#token-submit").await;
    tab.ready().await;
    tab.until(&format!(
        "document.body.dataset.role === 'read' && {}.hidden && {} !== null",
        q("#token-dialog"),
        q(&row)
    ))
    .await;
    assert!(
        !tab.shown("button[data-action=\"reload\"]").await,
        "a read token is shown button[data-action=\"reload\"]"
    );
    assert!(
        !tab.shown("button[data-action=\"unload\"]").await,
        "a read token is shown button[data-action=\"unload\"]"
    );
    assert!(
        !tab.shown("form#plugin-upload").await,
        "a read token is shown form#plugin-upload"
    );
    tab.shot("read-1280").await;
    tab.assert_clean(&refused);
    drop(tab);

    // The admin token, in a fresh tab (its own storage): the controls too.
    let tab = dash.open(&browser, "f", 1280, 800).await;
    tab.until(&format!("{}?.hidden === false", q("#token-dialog")))
        .await;
    tab.type_into("input#token-input", &dash.tokens["root"])
        .await;
    tab.click("button#token-submit").await;
    tab.ready().await;
    tab.until(&format!(
        "document.body.dataset.role === 'admin' && {}.hidden && {} !== null",
        q("#token-dialog"),
        q(&format!("{row} button[data-action=\"reload\"]"))
    ))
    .await;
    assert!(
        tab.shown(&format!("{row} button[data-action=\"unload\"]"))
            .await
    );
    assert!(tab.shown("form#plugin-upload").await);
    tab.shot("admin-1280").await;
    tab.dark("admin-1280").await;
    tab.phone("admin", (1280, 800)).await;
    let stops = tab.tab_stops(200).await.unwrap();
    assert!(
        stops
            .iter()
            .any(|s| s.starts_with("button") && s.contains("[data-action=\"reload\"]")),
        "Tab does not reach the reload button: {stops:#?}"
    );
    tab.assert_clean(&refused);
    drop(tab);
    browser.close().await;
    dash.stop().await;
}
