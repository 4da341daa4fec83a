//! `exesdb-host plugin new|build|inspect`: one project per language is
//! generated, built, inspected, and run in a real runtime.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use exesdb_host::bus::{Bus, BusConfig, Channel};
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Actor, Manifest, Plugins, Runtime};

/// Runs the CLI with the Python and JavaScript toolchains that the
/// test-support crate's build installed (`plugin build` finds them through
/// these variables, else on `PATH`).
fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_exesdb-host"))
        .env(
            "EXESDB_COMPONENTIZE_PY",
            exesdb_tests::guests::COMPONENTIZE_PY,
        )
        .env(
            "EXESDB_COMPONENTIZE_JS",
            exesdb_tests::guests::COMPONENTIZE_JS,
        )
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

async fn generate_build_inspect_run(lang: &str, dir: &Path) {
    let name = format!("demo-{lang}");
    let (ok, out) = cli(&[
        "plugin",
        "new",
        &name,
        "--lang",
        lang,
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let project = dir.join(&name);
    for f in ["plugin.toml", "README.md"] {
        assert!(project.join(f).exists(), "{lang}: {f} missing");
    }
    let (ok, out) = cli(&["plugin", "build", project.to_str().unwrap()]);
    assert!(ok, "{lang}: {out}");
    let wasm = project.join("dist").join(format!("{name}.wasm"));
    let (ok, out) = cli(&["plugin", "inspect", wasm.to_str().unwrap()]);
    assert!(ok, "{out}");
    for expected in [
        "world: subscriber",
        "contract: exesdb:plugin@0.2.0",
        "exesdb:plugin/handler@0.2.0",
        "manifest:",
        "ok (",
    ] {
        assert!(out.contains(expected), "{lang}: `{expected}` not in\n{out}");
    }

    // It does something visible: a `custom.seen` for every message.
    let bus = Bus::new(BusConfig::default());
    let plugins = Plugins::new(Runtime::new().unwrap(), bus.clone(), 16);
    let seen = bus.subscriber("seen").unwrap();
    seen.subscribe(Channel::Diagnostics, &format!("seen:{name}"))
        .unwrap();
    let manifest = Manifest::from_file(&project.join("dist").join(format!("{name}.toml"))).unwrap();
    plugins
        .load(Actor::Operator, manifest, &std::fs::read(&wasm).unwrap())
        .unwrap();
    let sent = Envelope::new(
        Channel::Events,
        "s:x",
        "custom.e",
        serde_json::json!({}),
        bus.node(),
    );
    let id = sent.id.to_string();
    bus.broadcast(sent).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.kind, "custom.seen");
    assert_eq!(got.payload()["id"], id.as_str(), "{lang}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_project_in_each_language_builds_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    for lang in ["rust", "python", "js"] {
        generate_build_inspect_run(lang, dir.path()).await;
    }
}

#[test]
fn inspect_names_the_contract_a_component_was_built_against() {
    for (wasm, contract) in [
        (exesdb_host::artifacts::TEST_CONTRACT_0_1_WASM, "0.1.0"),
        (exesdb_host::artifacts::TEST_GUEST_WASM, "0.2.0"),
    ] {
        let (ok, out) = cli(&["plugin", "inspect", wasm]);
        assert!(ok, "{out}");
        assert!(out.contains("world: subscriber\n"), "{out}");
        assert!(
            out.contains(&format!("contract: exesdb:plugin@{contract}\n")),
            "{wasm}: {out}"
        );
    }
}

#[test]
fn inspect_checks_the_manifest_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("fmt.wasm");
    std::fs::copy(exesdb_host::artifacts::JSON_LOG_FORMATTER_WASM, &wasm).unwrap();
    let (ok, out) = cli(&["plugin", "inspect", wasm.to_str().unwrap()]);
    assert!(
        ok && out.contains("world: log-formatter") && out.contains("manifest: none"),
        "{out}"
    );
    std::fs::write(
        dir.path().join("fmt.toml"),
        "name = \"fmt\"\nversion = \"1\"\nworld = \"subscriber\"\n",
    )
    .unwrap();
    let (ok, out) = cli(&["plugin", "inspect", wasm.to_str().unwrap()]);
    assert!(
        !ok && out.contains("declares world `subscriber`") && out.contains("`log-formatter`"),
        "{out}"
    );
    std::fs::write(&wasm, b"not a component").unwrap();
    let (ok, out) = cli(&["plugin", "inspect", wasm.to_str().unwrap()]);
    assert!(!ok && out.contains("is not a valid component"), "{out}");
    let (ok, out) = cli(&[
        "plugin",
        "new",
        "Bad Name",
        "--lang",
        "rust",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("invalid plugin name"), "{out}");
    let (ok, out) = cli(&[
        "plugin", "new", "x", "--lang", "rust", "--world", "listener",
    ]);
    assert!(!ok && out.contains("unknown world"), "{out}");
}
