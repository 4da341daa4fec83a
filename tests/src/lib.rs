//! Test support for exesdb-host: the guest plugins the tests run, waiting
//! for bus messages, and the layout of the test suites.

/// Every built guest plugin: the Rust ones from `exesdb_host::artifacts`
/// (built by `host/build.rs`) and the Python and JavaScript test plugins
/// (built by `tests/build.rs`, so building the host needs neither Python nor
/// Node).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));

    /// Every plugin, Rust, Python and JavaScript: (name, component path,
    /// manifest path).
    pub fn all() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
        exesdb_host::artifacts::ALL.iter().chain(PYTHON_JS.iter())
    }
}

/// Waiting for bus messages, for the test suites of both crates.
pub mod wait {
    use std::sync::Arc;
    use std::time::Duration;

    use exesdb_host::bus::Subscriber;
    use exesdb_host::messages::Envelope;

    /// How long a test waits for an expected message (or anything else it
    /// waits for) before it fails.
    pub const WAIT: Duration = Duration::from_secs(20);

    /// The next message on `sub` satisfying `pred`, skipping others; panics
    /// after [`WAIT`].
    pub async fn next_where(sub: &Subscriber, pred: impl Fn(&Envelope) -> bool) -> Arc<Envelope> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let env = tokio::time::timeout_at(deadline, sub.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("no matching message for {} within {WAIT:?}", sub.name())
                })
                .expect("bus open");
            if pred(&env) {
                return env;
            }
        }
    }

    /// Asserts nothing arrives on `sub` for `d`.
    pub async fn quiet(sub: &Subscriber, d: Duration) {
        if let Ok(Some(env)) = tokio::time::timeout(d, sub.recv()).await {
            panic!(
                "unexpected message {} {} {}",
                env.kind,
                env.topic,
                env.payload()
            );
        }
    }
}

/// The layout of a crate's integration tests: one test binary, `suite`.
pub mod suite {
    use std::path::Path;

    /// Asserts that `tests` (a crate's `tests/` directory) holds one test
    /// binary, `suite/main.rs` (each binary links wasmtime again), and that
    /// every file beside that `main.rs` is one of its modules (cargo builds
    /// no file that is not): no `tests/*.rs` nor other `tests/*/main.rs`
    /// beside it, and a `mod` line in `main.rs` for each `suite/<name>.rs`
    /// and `suite/<name>/mod.rs`.
    pub fn assert_one_binary(tests: &Path) {
        let mut binaries = Vec::new();
        for entry in std::fs::read_dir(tests).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if (path.is_file() && name.ends_with(".rs")) || path.join("main.rs").is_file() {
                binaries.push(name);
            }
        }
        binaries.sort();
        assert_eq!(
            binaries,
            ["suite"],
            "{}: one test binary, suite/main.rs; make the others modules of it",
            tests.display()
        );
        let suite = tests.join("suite");
        let declared = modules(&suite);
        let mut undeclared = Vec::new();
        for entry in std::fs::read_dir(&suite).unwrap() {
            let path = entry.unwrap().path();
            let module = if path.is_dir() && path.join("mod.rs").is_file() {
                path.file_name().unwrap().to_string_lossy().into_owned()
            } else if path.extension().is_some_and(|e| e == "rs") {
                path.file_stem().unwrap().to_string_lossy().into_owned()
            } else {
                continue;
            };
            if module != "main" && !declared.contains(&module) {
                undeclared.push(module);
            }
        }
        undeclared.sort();
        assert!(
            undeclared.is_empty(),
            "files of {} that its main.rs does not declare (`mod …;`), so never built: {undeclared:?}",
            suite.display()
        );
    }

    /// The modules that `suite/main.rs` declares (its `mod <name>;` lines).
    pub fn modules(suite: &Path) -> Vec<String> {
        let main = std::fs::read_to_string(suite.join("main.rs"))
            .unwrap_or_else(|e| panic!("{}/main.rs: {e}", suite.display()));
        main.lines()
            .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
            .map(str::to_owned)
            .collect()
    }
}
