//! `exesdb-host plugin …` against the admin API of an in-process host: load,
//! list, status, reload and unload a copy of the test guest, the audit trail
//! of those actions, refused manifests, an unreachable API and `GET /health`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use exesdb_host::artifacts::{TEST_GUEST_MANIFEST, TEST_GUEST_WASM};
use exesdb_host::bus::{Channel, Subscriber};
use exesdb_host::config::Config;
use exesdb_host::host::Host;
use exesdb_host::messages::audit::AdminAction;
use exesdb_host::messages::Envelope;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::{cli, guest_manifest as guest, next_where, path_str, quiet, watch, Run};

/// A running host with its admin API on a free loopback port.
struct Fixture {
    host: Host,
    /// `http://127.0.0.1:<port>`.
    admin: String,
    /// Where the test's manifests and components go.
    dir: TempDir,
    _cache: TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let cache = tempfile::tempdir().unwrap();
        // The stores live beside the cache, in a directory of this test.
        let data_dir = cache.path().join("data").display().to_string();
        let env = [
            ("EXESDB_API__LISTEN", "127.0.0.1:0"),
            ("EXESDB_PLUGINS__BUNDLED", "false"),
            ("EXESDB_PLUGINS__WATCH", "false"),
            ("EXESDB_RUNTIME__CACHE_DIR", cache.path().to_str().unwrap()),
            ("EXESDB_STORES__DATA_DIR", &data_dir),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config = Config::load_with_env(None, env).unwrap();
        let host = Host::start(config).await.unwrap();
        let addr = host.api_addr().expect("admin API is on");
        assert!(host.plugins().list().is_empty(), "no plugin at start");
        Fixture {
            host,
            admin: format!("http://{addr}"),
            dir: tempfile::tempdir().unwrap(),
            _cache: cache,
        }
    }

    /// Runs `exesdb-host plugin <args> --admin <this host>`.
    async fn cli(&self, args: &[&str]) -> Run {
        cli(&self.admin, args).await
    }

    /// Writes `guest.wasm` (the test guest) once and `guest.toml` with
    /// `version` and echo `tag`; returns the manifest path.
    fn write_guest(&self, version: &str, tag: &str) -> PathBuf {
        let wasm = self.dir.path().join("guest.wasm");
        if !wasm.exists() {
            std::fs::copy(TEST_GUEST_WASM, &wasm).unwrap();
        }
        let manifest = self.dir.path().join("guest.toml");
        std::fs::write(&manifest, guest_manifest(version, tag)).unwrap();
        manifest
    }

    /// A subscriber on `channel`/`pattern` of the host's bus.
    fn watch(&self, channel: Channel, pattern: &str) -> Subscriber {
        watch(self.host.bus(), channel, pattern)
    }

    /// Publishes an event on `events` and returns the guest's echo of it.
    async fn echo(&self, echoes: &Subscriber) -> Value {
        let bus = self.host.bus();
        let env = Arc::new(Envelope::new(
            Channel::Events,
            "s:x",
            "custom.e",
            json!({}),
            bus.node(),
        ));
        bus.broadcast(Arc::clone(&env)).await.unwrap();
        let id = env.id.to_string();
        let echo = next_where(echoes, |e| e.payload()["id"] == id.as_str()).await;
        assert_eq!(echo.topic, "echo:guest");
        assert_eq!(echo.kind, "custom.echo");
        assert_eq!(echo.payload()["topic"], "s:x");
        echo.payload().clone()
    }

    /// `GET /health` as JSON.
    async fn health(&self) -> Value {
        let url = format!("{}/v1/health", self.admin);
        tokio::task::spawn_blocking(move || {
            let mut response = ureq::get(&url).call().unwrap();
            assert_eq!(response.status(), 200);
            response.body_mut().read_json::<Value>().unwrap()
        })
        .await
        .unwrap()
    }

    async fn stop(self) {
        self.host.shutdown().await.unwrap();
    }
}

/// The test guest's manifest as plugin `guest`, echoing with `tag`.
fn guest_manifest(version: &str, tag: &str) -> String {
    guest("guest", version, "echo", tag, "")
}

/// The next `AdminAction` on `sub`.
async fn next_admin_action(sub: &Subscriber) -> (String, AdminAction) {
    let env = next_where(sub, |_| true).await;
    let action = env
        .decode::<AdminAction>()
        .unwrap_or_else(|e| panic!("{e}: {env:?}"));
    (env.topic.clone(), action)
}

/// The `subscriptions` of a `/health` answer, by name.
fn health_names(health: &Value) -> Vec<&str> {
    health["subscriptions"]
        .as_array()
        .unwrap_or_else(|| panic!("`subscriptions` is a list: {health}"))
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_list_status_and_health_through_the_cli() {
    let f = Fixture::start().await;
    let manifest = f.write_guest("1.0.0", "v1");

    let loaded = f.cli(&["load", path_str(&manifest)]).await.json();
    assert_eq!(loaded["name"], "guest", "{loaded}");
    assert_eq!(loaded["version"], "1.0.0", "{loaded}");
    assert_eq!(loaded["state"], "running", "{loaded}");
    assert_eq!(loaded["world"], "subscriber", "{loaded}");
    assert_eq!(loaded["source"], path_str(&manifest), "{loaded}");

    let list = f.cli(&["list"]).await;
    assert!(list.ok, "{list:#?}");
    let mut lines = list.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header[..4],
        ["NAME", "VERSION", "WORLD", "STATE"],
        "{list:#?}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 1, "one row per plugin: {list:#?}");
    assert_eq!(
        rows[0][..4],
        ["guest", "1.0.0", "subscriber", "running"],
        "{list:#?}"
    );

    let status = f.cli(&["status", "guest"]).await.json();
    assert_eq!(status["name"], "guest", "{status}");
    assert_eq!(status["version"], "1.0.0", "{status}");
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["source"], path_str(&manifest), "{status}");
    assert!(
        status["uptime_secs"].as_i64().is_some_and(|s| s >= 0),
        "{status}"
    );

    let health = f.health().await;
    assert!(health["summary"].is_object(), "{health}");
    assert!(health["summary"]["total"].as_u64() >= Some(1), "{health}");
    assert!(health_names(&health).contains(&"guest"), "{health}");

    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_through_the_cli_swaps_version_and_behaviour() {
    let f = Fixture::start().await;
    let echoes = f.watch(Channel::Diagnostics, "echo:guest");
    let manifest = f.write_guest("1.0.0", "v1");
    f.cli(&["load", path_str(&manifest)]).await.json();

    let echo = f.echo(&echoes).await;
    assert_eq!(echo["tag"], "v1", "{echo}");

    f.write_guest("2.0.0", "v2");
    let reloaded = f.cli(&["reload", "guest"]).await.json();
    assert_eq!(reloaded["name"], "guest", "{reloaded}");
    assert_eq!(reloaded["version"], "2.0.0", "{reloaded}");
    assert_eq!(reloaded["state"], "running", "{reloaded}");
    assert_eq!(reloaded["source"], path_str(&manifest), "{reloaded}");

    let echo = f.echo(&echoes).await;
    assert_eq!(
        echo["tag"], "v2",
        "the new version handles the next message: {echo}"
    );

    let status = f.cli(&["status", "guest"]).await.json();
    assert_eq!(status["version"], "2.0.0", "{status}");

    // `load` of a loaded plugin's changed manifest replaces it too.
    f.write_guest("3.0.0", "v3");
    let replaced = f.cli(&["load", path_str(&manifest)]).await.json();
    assert_eq!(replaced["version"], "3.0.0", "{replaced}");
    let echo = f.echo(&echoes).await;
    assert_eq!(echo["tag"], "v3", "{echo}");
    assert_eq!(f.host.plugins().list().len(), 1);

    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_are_audited_and_unload_removes_the_plugin() {
    let f = Fixture::start().await;
    let audit = f.watch(Channel::Audit, "audit:admin_action:>");
    let manifest = f.write_guest("1.0.0", "v1");

    f.cli(&["load", path_str(&manifest)]).await.json();
    f.cli(&["status", "guest"]).await.json();
    f.write_guest("2.0.0", "v2");
    f.cli(&["reload", "guest"]).await.json();
    // Reloading identical files changes nothing and is not recorded.
    let same = f.cli(&["reload", "guest"]).await.json();
    assert_eq!(same["version"], "2.0.0", "{same}");
    let unload = f.cli(&["unload", "guest"]).await;
    assert!(unload.ok, "{unload:#?}");

    let err = f.cli(&["status", "guest"]).await;
    assert!(
        err.failure().contains("no plugin named `guest`"),
        "{err:#?}"
    );
    let err = f.cli(&["unload", "guest"]).await;
    assert!(
        err.failure().contains("no plugin named `guest`"),
        "{err:#?}"
    );
    let list = f.cli(&["list"]).await;
    assert!(list.ok, "{list:#?}");
    assert_eq!(list.stdout.lines().count(), 1, "header only: {list:#?}");
    assert!(f.host.plugins().list().is_empty());

    for (action_type, version) in [
        ("plugin_load", "1.0.0"),
        ("plugin_reload", "2.0.0"),
        ("plugin_unload", "2.0.0"),
    ] {
        let (topic, action) = next_admin_action(&audit).await;
        assert_eq!(topic, format!("audit:admin_action:{action_type}"));
        assert_eq!(action.admin_user_id, "admin-api", "{action:?}");
        assert_eq!(action.action_type, action_type, "{action:?}");
        assert_eq!(action.target_resource, "plugin:guest", "{action:?}");
        assert_eq!(action.details["plugin"], "guest", "{action:?}");
        assert_eq!(action.details["version"], version, "{action:?}");
    }
    // Reads and refused requests are not admin actions.
    quiet(&audit, Duration::from_millis(300)).await;

    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_are_refused_naming_the_cause() {
    let f = Fixture::start().await;
    let audit = f.watch(Channel::Audit, "audit:admin_action:>");

    // An unknown key: the error names the file and the key.
    let unknown = f.dir.path().join("unknown.toml");
    let text = guest_manifest("1.0.0", "v1").replace(
        "world = \"subscriber\"\n",
        "world = \"subscriber\"\ncolour = \"red\"\n",
    );
    std::fs::write(&unknown, text).unwrap();
    let err = f.cli(&["load", path_str(&unknown)]).await;
    let stderr = err.failure();
    assert!(stderr.contains(path_str(&unknown)), "{err:#?}");
    assert!(stderr.contains("colour"), "{err:#?}");

    // A component that is not WebAssembly.
    let junk = f.dir.path().join("junk.toml");
    std::fs::write(
        &junk,
        guest_manifest("1.0.0", "v1").replace("name = \"guest\"", "name = \"junk\""),
    )
    .unwrap();
    std::fs::write(
        f.dir.path().join("junk.wasm"),
        b"\x00not a component at all",
    )
    .unwrap();
    let err = f.cli(&["load", path_str(&junk)]).await;
    let stderr = err.failure();
    assert!(stderr.contains("malformed"), "{err:#?}");
    assert!(stderr.contains("junk"), "names the plugin: {err:#?}");

    // A manifest that does not exist.
    let missing = f.dir.path().join("missing.toml");
    let err = f.cli(&["load", path_str(&missing)]).await;
    assert!(err.failure().contains(path_str(&missing)), "{err:#?}");

    // Reloading a plugin that is not loaded.
    let err = f.cli(&["reload", "guest"]).await;
    assert!(
        err.failure().contains("no plugin named `guest`"),
        "{err:#?}"
    );

    // Nothing was loaded, nothing audited, nothing left in the health list.
    assert!(f.host.plugins().list().is_empty());
    let list = f.cli(&["list"]).await;
    assert_eq!(list.stdout.lines().count(), 1, "header only: {list:#?}");
    quiet(&audit, Duration::from_millis(300)).await;
    let health = f.health().await;
    assert!(health_names(&health).is_empty(), "{health}");

    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_admin_api_is_reported() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let admin = format!("http://127.0.0.1:{port}");
    for args in [&["list"][..], &["status", "guest"], &["unload", "guest"]] {
        let err = cli(&admin, args).await;
        let stderr = err.failure();
        assert!(stderr.contains("cannot reach the host's API"), "{err:#?}");
        assert!(stderr.contains(&admin), "names the URL: {err:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_manifest_keeps_the_test_guest_world_and_grants() {
    // The fixture copies the component and writes its own manifest; the
    // crate's manifest is the reference for grants and world.
    let text = std::fs::read_to_string(TEST_GUEST_MANIFEST).unwrap();
    let reference: toml::Table = text.parse().unwrap();
    let ours: toml::Table = guest_manifest("1.0.0", "v1").parse().unwrap();
    for key in ["world", "subscribe", "publish"] {
        assert_eq!(ours[key], reference[key], "{key}");
    }
}

// ---- Known bugs: these assert the intended behaviour and fail today. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_with_the_manifest_of_another_plugin_is_refused() {
    let f = Fixture::start().await;
    let manifest = f.write_guest("1.0.0", "v1");
    f.cli(&["load", path_str(&manifest)]).await.json();
    let other = f.dir.path().join("other.toml");
    std::fs::write(
        &other,
        guest_manifest("3.0.0", "v3").replace("name = \"guest\"", "name = \"other\""),
    )
    .unwrap();
    std::fs::copy(TEST_GUEST_WASM, f.dir.path().join("other.wasm")).unwrap();

    let err = f
        .cli(&["reload", "guest", "--manifest", path_str(&other)])
        .await;
    let stderr = err.failure();
    assert!(
        stderr.contains("guest") && stderr.contains("other"),
        "{err:#?}"
    );
    let names: Vec<String> = f
        .host
        .plugins()
        .list()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["guest"], "nothing else was loaded");

    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unloaded_plugin_leaves_the_health_list() {
    let f = Fixture::start().await;
    let manifest = f.write_guest("1.0.0", "v1");
    f.cli(&["load", path_str(&manifest)]).await.json();
    assert!(health_names(&f.health().await).contains(&"guest"));

    assert!(f.cli(&["unload", "guest"]).await.ok);
    let health = f.health().await;
    assert!(!health_names(&health).contains(&"guest"), "{health}");
    assert_eq!(health["summary"]["total"], 0, "{health}");

    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_plugin_names_get_a_meaningful_error() {
    let f = Fixture::start().await;
    for name in ["a b", "x/y"] {
        let err = f.cli(&["status", name]).await;
        let stderr = err.failure();
        assert!(
            !stderr.contains("cannot reach the host's API"),
            "the API was reached: {err:#?}"
        );
        assert!(
            stderr.trim() != "error:",
            "the error says something: {err:#?}"
        );
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_upload_sends_the_files_to_the_host() {
    let f = Fixture::start().await;
    let echoes = f.watch(Channel::Diagnostics, "echo:guest");
    let manifest = f.write_guest("1.0.0", "uploaded");
    let loaded = f
        .cli(&["load", path_str(&manifest), "--upload"])
        .await
        .json();
    assert_eq!(loaded["name"], "guest", "{loaded}");
    assert_eq!(loaded["state"], "running", "{loaded}");
    assert_eq!(
        loaded["source"],
        Value::Null,
        "the host has no file of it: {loaded}"
    );
    assert_eq!(f.echo(&echoes).await["tag"], "uploaded");
    // The same upload again changes nothing; a new version replaces it.
    f.write_guest("2.0.0", "uploaded-2");
    let replaced = f
        .cli(&["load", path_str(&manifest), "--upload"])
        .await
        .json();
    assert_eq!(replaced["version"], "2.0.0", "{replaced}");
    assert_eq!(f.echo(&echoes).await["tag"], "uploaded-2");
    // A broken manifest is refused naming the part and the key.
    std::fs::write(&manifest, "name = \"guest\"\ncolour = 1\n").unwrap();
    let err = f.cli(&["load", path_str(&manifest), "--upload"]).await;
    assert!(err.failure().contains("colour"), "{err:#?}");
    // A request without the component part is refused naming it.
    let url = format!("{}/v1/plugins/upload", f.admin);
    let answer = tokio::task::spawn_blocking(move || {
        let body = "--b\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\r\nname = \"x\"\r\n--b--\r\n";
        let mut r = ureq::post(&url)
            .header("Content-Type", "multipart/form-data; boundary=b")
            .config()
            .http_status_as_error(false)
            .build()
            .send(body)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_json::<Value>().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(answer.0, 400);
    assert_eq!(answer.1["field"], "component", "{:?}", answer.1);
    f.stop().await;
}
