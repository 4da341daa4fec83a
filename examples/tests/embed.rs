//! Runs the `embed` example and checks what it printed.

#[test]
fn embed_example_runs_and_shuts_down_cleanly() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_embed"))
        .env("NO_COLOR", "1")
        .env("EXESDB_API__LISTEN", "127.0.0.1:0")
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("handler: store_worker is healthy"),
        "{stdout}"
    );
    assert!(
        stdout.contains("handler: SystemAlert on system_alert:system (\"Node down\")"),
        "{stdout}"
    );
    assert!(
        stdout.contains("received: ComponentHealth, SystemAlert"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("shut down cleanly"), "{stdout}");
}
