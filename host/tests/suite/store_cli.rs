//! `exesdb-host store …` on a temporary data directory, each command a new
//! process: appends (single events, JSON Lines batches, standard input),
//! expected-version conflicts, reads of a stream, `$all` and selectors,
//! the streams table, subscription checkpoints, persistence across
//! invocations, bad JSON, a missing store and a store locked by another
//! process.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use exesdb_host::store::{Durability, ExpectedVersion, NewEvent, Store};
use serde_json::{json, Value};

/// `exesdb-host store --data-dir <dir> <args>`, with no environment
/// variable that could point it elsewhere. A store held by another process
/// is reached through a host's API: here no host answers (port 1), even if
/// one runs on the default port of this machine.
fn store_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_exesdb-host"));
    c.env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("EXESDB_DATA_DIR")
        .env_remove("EXESDB_TOKEN")
        .env("EXESDB_ADMIN_URL", "http://127.0.0.1:1")
        .arg("store")
        .arg("--data-dir")
        .arg(dir)
        .args(args);
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    store_cmd(dir, args).output().unwrap()
}

/// Runs a command that must succeed; returns its standard output.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with exit code 1 and an `error: …` line;
/// returns its standard error.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: stdout {} stderr {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

/// The JSON objects of a read, one per line.
fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Appends one event; returns the printed result.
fn append(dir: &Path, stream: &str, event_type: &str, data: Value) -> Value {
    let data = data.to_string();
    let out = ok(
        dir,
        &["append", stream, "--type", event_type, "--data", &data],
    );
    serde_json::from_str(out.trim()).unwrap()
}

/// The `(stream, event number, global position)` of each event read.
fn coordinates(events: &[Value]) -> Vec<(String, u64, u64)> {
    events
        .iter()
        .map(|e| {
            (
                e["stream_id"].as_str().unwrap().to_owned(),
                e["event_number"].as_u64().unwrap(),
                e["global_position"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The rows of a table after its header, split on whitespace.
fn rows(table: &str, header: &[&str]) -> Vec<Vec<String>> {
    let mut lines = table.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head, header);
    lines
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn appends_single_events_and_a_jsonl_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let out = ok(
        d,
        &[
            "append",
            "orders-1",
            "--type",
            "OrderPlaced",
            "--data",
            r#"{"qty": 2}"#,
            "--metadata",
            r#"{"user": "ann"}"#,
            "--expected",
            "no_stream",
        ],
    );
    let result: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        result,
        json!({"first_event_number": 0, "last_event_number": 0, "first_position": 0, "last_position": 0})
    );
    // No --data / --metadata: null.
    let result = ok(d, &["append", "orders-1", "--type", "OrderPaid"]);
    let result: Value = serde_json::from_str(result.trim()).unwrap();
    assert_eq!(result["last_event_number"], 1);

    let file = d.join("batch.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"type": "OrderShipped", "data": {"carrier": "ups"}}"#,
            "\n\n",
            r#"{"type": "OrderDelivered", "data": {"ok": true}, "metadata": {"by": "bob"}}"#,
            "\n",
            r#"{"type": "OrderClosed"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = ok(
        d,
        &[
            "append",
            "orders-1",
            "--file",
            file.to_str().unwrap(),
            "--expected",
            "1",
        ],
    );
    let result: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        result,
        json!({"first_event_number": 2, "last_event_number": 4, "first_position": 2, "last_position": 4})
    );

    // A batch from standard input (`--file -`).
    let mut child = store_cmd(d, &["append", "orders-2", "--file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"type\": \"A\", \"data\": 1}\n{\"type\": \"B\", \"data\": 2}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["first_position"], 5);
    assert_eq!(result["last_position"], 6);

    let read = events(&ok(d, &["read", "orders-1"]));
    let types: Vec<&str> = read
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "OrderPlaced",
            "OrderPaid",
            "OrderShipped",
            "OrderDelivered",
            "OrderClosed"
        ]
    );
    assert_eq!(read[0]["data"], json!({"qty": 2}));
    assert_eq!(read[0]["metadata"], json!({"user": "ann"}));
    assert_eq!(read[1]["data"], Value::Null);
    assert_eq!(read[1]["metadata"], Value::Null);
    assert_eq!(read[3]["data"], json!({"ok": true}));
    assert_eq!(read[3]["metadata"], json!({"by": "bob"}));
    assert_eq!(read[4]["data"], Value::Null);
    // One append: one creation time; event ids are UUIDs.
    assert_eq!(read[2]["created"], read[4]["created"]);
    for e in &read {
        assert_eq!(e["stream_id"], "orders-1");
        uuid::Uuid::parse_str(e["event_id"].as_str().unwrap()).unwrap();
    }
}

#[test]
fn a_wrong_expected_version_fails_naming_the_current_version_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(d, "orders-1", "A", json!(1));
    append(d, "orders-1", "B", json!(2));

    for expected in ["no_stream", "0", "5"] {
        let err = fails(
            d,
            &["append", "orders-1", "--type", "C", "--expected", expected],
        );
        assert!(err.contains("store default"), "{err}");
        assert!(err.contains("orders-1"), "{err}");
        assert!(err.contains("wrong expected version"), "{err}");
        assert!(err.contains("current 1"), "{err}");
        assert!(err.contains(&format!("expected {expected}")), "{err}");
    }
    // A stream that does not exist.
    let err = fails(
        d,
        &[
            "append",
            "orders-9",
            "--type",
            "C",
            "--expected",
            "stream_exists",
        ],
    );
    assert!(
        err.contains("orders-9") && err.contains("current no stream"),
        "{err}"
    );
    // A whole batch is refused.
    let file = d.join("b.jsonl");
    std::fs::write(&file, "{\"type\": \"C\"}\n{\"type\": \"D\"}\n").unwrap();
    let err = fails(
        d,
        &[
            "append",
            "orders-1",
            "--file",
            file.to_str().unwrap(),
            "--expected",
            "0",
        ],
    );
    assert!(err.contains("current 1"), "{err}");
    assert_eq!(events(&ok(d, &["read", "orders-1"])).len(), 2);
    assert_eq!(events(&ok(d, &["read-all"])).len(), 2);

    // The right ones pass.
    ok(
        d,
        &[
            "append",
            "orders-1",
            "--type",
            "C",
            "--expected",
            "stream_exists",
        ],
    );
    ok(d, &["append", "orders-1", "--type", "D", "--expected", "2"]);
    // A malformed version is a usage error (exit code 2), like any bad argument.
    let out = run(
        d,
        &["append", "orders-1", "--type", "E", "--expected", "soon"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"soon\""));
}

#[test]
fn reads_a_stream_forward_and_backward_with_from_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // orders-1 gets event numbers 0..10, interleaved with another stream.
    for i in 0..10 {
        append(d, "orders-1", "Tick", json!({ "i": i }));
        append(d, "other", "Tock", json!({ "i": i }));
    }
    let numbers = |args: &[&str]| -> Vec<u64> {
        events(&ok(d, args))
            .iter()
            .map(|e| {
                assert_eq!(e["stream_id"], "orders-1");
                assert_eq!(e["data"]["i"], e["event_number"]);
                e["event_number"].as_u64().unwrap()
            })
            .collect()
    };
    assert_eq!(numbers(&["read", "orders-1"]), (0..10).collect::<Vec<_>>());
    assert_eq!(numbers(&["read", "orders-1", "--from", "7"]), [7, 8, 9]);
    assert_eq!(
        numbers(&["read", "orders-1", "--from", "2", "--count", "3"]),
        [2, 3, 4]
    );
    assert_eq!(
        numbers(&["read", "orders-1", "--backward"]),
        (0..10).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        numbers(&["read", "orders-1", "--backward", "--count", "2"]),
        [9, 8]
    );
    assert_eq!(
        numbers(&["read", "orders-1", "--backward", "--from", "3"]),
        [3, 2, 1, 0]
    );
    assert_eq!(
        numbers(&[
            "read",
            "orders-1",
            "--backward",
            "--from",
            "5",
            "--count",
            "2"
        ]),
        [5, 4]
    );
    assert!(numbers(&["read", "orders-1", "--from", "10"]).is_empty());
    assert!(numbers(&["read", "orders-1", "--count", "0"]).is_empty());
    // A stream that does not exist reads as empty.
    assert_eq!(ok(d, &["read", "nothing-here"]), "");
    // Global positions of orders-1 are the even ones.
    let read = events(&ok(d, &["read", "orders-1", "--from", "3", "--count", "1"]));
    assert_eq!(read[0]["global_position"], 6);
}

#[test]
fn reads_all_in_global_order_and_by_selector() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plan = [
        ("orders-1", "OrderPlaced"),
        ("users-1", "UserJoined"),
        ("orders-2", "OrderPlaced"),
        ("orders-1", "OrderShipped"),
        ("users-1", "UserLeft"),
        ("orders-2", "OrderShipped"),
    ];
    for (i, (stream, event_type)) in plan.iter().enumerate() {
        let result = append(d, stream, event_type, json!(i));
        assert_eq!(result["first_position"], i as u64);
    }
    let all = events(&ok(d, &["read-all"]));
    assert_eq!(all.len(), plan.len());
    for (i, (e, (stream, event_type))) in all.iter().zip(&plan).enumerate() {
        assert_eq!(e["global_position"], i as u64);
        assert_eq!(e["stream_id"], *stream);
        assert_eq!(e["event_type"], *event_type);
        assert_eq!(e["data"], i as u64);
    }
    assert_eq!(
        coordinates(&events(&ok(
            d,
            &["read-all", "--from", "2", "--count", "2"]
        ))),
        [("orders-2".into(), 0, 2), ("orders-1".into(), 1, 3)]
    );
    let backward: Vec<u64> = events(&ok(d, &["read-all", "--backward"]))
        .iter()
        .map(|e| e["global_position"].as_u64().unwrap())
        .collect();
    assert_eq!(backward, [5, 4, 3, 2, 1, 0]);
    let backward: Vec<u64> = events(&ok(
        d,
        &["read-all", "--backward", "--from", "3", "--count", "2"],
    ))
    .iter()
    .map(|e| e["global_position"].as_u64().unwrap())
    .collect();
    assert_eq!(backward, [3, 2]);

    // `read` takes the selector forms too.
    assert_eq!(ok(d, &["read", "$all"]), ok(d, &["read-all"]));
    let positions = |args: &[&str]| -> Vec<u64> {
        events(&ok(d, args))
            .iter()
            .map(|e| e["global_position"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(positions(&["read", "$et-OrderPlaced"]), [0, 2]);
    assert_eq!(positions(&["read", "$pattern-orders-*"]), [0, 2, 3, 5]);
    assert_eq!(
        positions(&["read", "$pattern-orders-*", "--from", "1", "--count", "2"]),
        [2, 3]
    );
    let err = fails(d, &["read", "$et-OrderPlaced", "--backward"]);
    assert!(err.contains("forward"), "{err}");
    let err = fails(d, &["read", "$ce-orders"]);
    assert!(
        err.contains("$ce-orders") && err.contains("store default"),
        "{err}"
    );
}

#[test]
fn lists_streams_as_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A store without streams: just the header.
    drop(Store::open(d, "default", Durability::Immediate).unwrap());
    assert_eq!(
        rows(&ok(d, &["streams"]), &["NAME", "VERSION", "EVENTS"]).len(),
        0
    );

    append(d, "orders-1", "A", json!(null));
    ok(d, &["--store", "second", "append", "x", "--type", "A"]);
    let long_name = "a-rather-long-stream-name-for-the-table";
    for _ in 0..3 {
        append(d, long_name, "A", json!(null));
    }
    append(d, "orders-1", "B", json!(null));
    let table = ok(d, &["streams"]);
    assert_eq!(
        rows(&table, &["NAME", "VERSION", "EVENTS"]),
        [
            vec![long_name.to_owned(), "2".into(), "3".into()],
            vec!["orders-1".into(), "1".into(), "2".into()],
        ]
    );
    // Columns line up.
    let ends: Vec<usize> = table.lines().map(str::len).collect();
    assert!(ends.windows(2).all(|w| w[0] == w[1]), "{table}");
    // Stores are separate.
    let other = ok(d, &["--store", "second", "streams"]);
    assert_eq!(
        rows(&other, &["NAME", "VERSION", "EVENTS"]),
        [vec!["x".to_owned(), "0".into(), "1".into()]]
    );
}

#[test]
fn creates_lists_and_deletes_subscription_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An empty store has no head to start at.
    drop(Store::open(d, "default", Durability::Immediate).unwrap());
    let err = fails(d, &["subscriptions", "create", "early", "--at-head"]);
    assert!(err.contains("empty") && err.contains("early"), "{err}");
    let err = fails(d, &["subscriptions", "create", "early", "--after", "0"]);
    assert!(err.contains("past the store's head"), "{err}");

    for i in 0..5 {
        append(d, "orders-1", "A", json!(i));
    }
    assert_eq!(
        rows(&ok(d, &["subscriptions", "list"]), &["NAME", "CHECKPOINT"]),
        Vec::<Vec<String>>::new()
    );
    let out = ok(d, &["subscriptions", "create", "projector", "--after", "1"]);
    assert!(
        out.contains("checkpoint 1") && out.contains("position 2"),
        "{out}"
    );
    let out = ok(d, &["subscriptions", "create", "audit", "--at-head"]);
    assert!(out.contains("checkpoint 4"), "{out}");
    assert_eq!(
        rows(&ok(d, &["subscriptions", "list"]), &["NAME", "CHECKPOINT"]),
        [
            vec!["audit".to_owned(), "4".into()],
            vec!["projector".to_owned(), "1".into()],
        ]
    );

    // What the CLI saved is what the engine reads.
    {
        let store = Store::open(d, "default", Durability::Immediate).unwrap();
        assert_eq!(store.checkpoint("projector").unwrap(), Some(1));
        assert_eq!(store.checkpoint("audit").unwrap(), Some(4));
    }

    let err = fails(d, &["subscriptions", "create", "projector", "--after", "3"]);
    assert!(
        err.contains("already exists") && err.contains("checkpoint 1"),
        "{err}"
    );
    let err = fails(d, &["subscriptions", "create", "late", "--after", "5"]);
    assert!(
        err.contains("position 5") && err.contains("position 4"),
        "{err}"
    );
    let out = run(
        d,
        &[
            "subscriptions",
            "create",
            "both",
            "--after",
            "1",
            "--at-head",
        ],
    );
    assert!(!out.status.success());
    let out = run(d, &["subscriptions", "create", "neither"]);
    assert!(!out.status.success());

    let out = ok(d, &["subscriptions", "delete", "projector"]);
    assert!(out.contains("projector") && out.contains("was 1"), "{out}");
    let err = fails(d, &["subscriptions", "delete", "projector"]);
    assert!(
        err.contains("store default")
            && err.contains("projector")
            && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(
        rows(&ok(d, &["subscriptions", "list"]), &["NAME", "CHECKPOINT"]),
        [vec!["audit".to_owned(), "4".into()]]
    );
    // Deleted, it can be created again.
    ok(d, &["subscriptions", "create", "projector", "--after", "0"]);
}

#[test]
fn data_survives_across_invocations_and_stores_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("nested").join("data");
    append(&d, "orders-1", "A", json!({"n": 1}));
    ok(
        &d,
        &["--store", "second", "append", "orders-1", "--type", "Z"],
    );
    append(&d, "orders-1", "B", json!({"n": 2}));
    assert!(d.join("default.redb").is_file());
    assert!(d.join("second.redb").is_file());

    let read = events(&ok(&d, &["read", "orders-1"]));
    assert_eq!(
        coordinates(&read),
        [("orders-1".into(), 0, 0), ("orders-1".into(), 1, 1)]
    );
    let second = events(&ok(&d, &["--store", "second", "read-all"]));
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["event_type"], "Z");

    // The engine sees what the CLI wrote, and the CLI what the engine wrote.
    {
        let store = Store::open(&d, "default", Durability::Immediate).unwrap();
        assert_eq!(store.stream_version("orders-1").unwrap(), Some(1));
        store
            .append(
                "bin",
                ExpectedVersion::NoStream,
                vec![NewEvent::bytes(
                    "Blob",
                    "application/octet-stream",
                    b"hello".to_vec(),
                )],
            )
            .unwrap();
    }
    let blob = events(&ok(&d, &["read", "bin"]));
    assert_eq!(blob[0]["data_content_type"], "application/octet-stream");
    assert_eq!(blob[0]["data_base64"], "aGVsbG8=");
    assert!(blob[0].get("data").is_none());
    assert_eq!(blob[0]["metadata"], Value::Null);

    // EXESDB_DATA_DIR stands for --data-dir.
    let out = Command::new(env!("CARGO_BIN_EXE_exesdb-host"))
        .env("EXESDB_DATA_DIR", &d)
        .args(["store", "streams"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(rows(&table, &["NAME", "VERSION", "EVENTS"]).len(), 2);
}

#[test]
fn bad_json_is_an_error_naming_the_argument_or_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(d, "orders-1", "A", json!(null));

    let err = fails(
        d,
        &["append", "orders-1", "--type", "B", "--data", "{qty: 2}"],
    );
    assert!(
        err.contains("--data") && err.contains("invalid JSON"),
        "{err}"
    );
    let err = fails(
        d,
        &["append", "orders-1", "--type", "B", "--metadata", "[1,"],
    );
    assert!(
        err.contains("--metadata") && err.contains("invalid JSON"),
        "{err}"
    );

    let file = d.join("batch.jsonl");
    let path = file.to_str().unwrap();
    let cases: [(&str, &[&str]); 4] = [
        // Line 3 is broken: lines 1 and 2 are not appended either.
        (
            "{\"type\": \"B\"}\n{\"type\": \"C\"}\n{\"type\": \"D\", \"data\": }\n",
            &["line 3", "invalid"],
        ),
        ("{\"data\": 1}\n", &["line 1", "type"]),
        ("{\"type\": \"B\", \"dta\": 1}\n", &["line 1", "dta"]),
        ("\n\n", &["no event"]),
    ];
    for (text, needles) in cases {
        std::fs::write(&file, text).unwrap();
        let err = fails(d, &["append", "orders-1", "--file", path]);
        assert!(err.contains("batch.jsonl"), "{err}");
        for needle in needles {
            assert!(err.contains(needle), "{needle:?} in {err}");
        }
    }
    let err = fails(
        d,
        &[
            "append",
            "orders-1",
            "--file",
            d.join("absent.jsonl").to_str().unwrap(),
        ],
    );
    assert!(err.contains("absent.jsonl"), "{err}");
    // Nothing was appended.
    assert_eq!(events(&ok(d, &["read-all"])).len(), 1);

    // Bad input creates no store.
    let fresh = d.join("fresh");
    fails(&fresh, &["append", "s", "--type", "A", "--data", "nope"]);
    assert!(!fresh.join("default.redb").exists());

    // --file does not go with --type / --data; append needs one of them.
    assert_eq!(
        run(d, &["append", "orders-1", "--file", path, "--type", "B"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(d, &["append", "orders-1"]).status.code(), Some(2));
}

#[test]
fn bad_names_and_a_missing_store_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Reading does not create a store.
    for args in [
        &["streams"][..],
        &["read", "orders-1"],
        &["read-all"],
        &["subscriptions", "list"],
    ] {
        let err = fails(d, args);
        assert!(
            err.contains("store default does not exist") && err.contains("default.redb"),
            "{err}"
        );
    }
    assert!(!d.join("default.redb").exists());

    let err = fails(d, &["--store", "Bad", "append", "s", "--type", "A"]);
    assert!(
        err.contains("invalid store id") && err.contains("Bad"),
        "{err}"
    );
    let err = fails(d, &["append", "$reserved", "--type", "A"]);
    assert!(
        err.contains("store default") && err.contains("$reserved"),
        "{err}"
    );
    let err = fails(d, &["append", "s", "--type", ""]);
    assert!(err.contains("event type"), "{err}");
}

#[test]
fn a_store_held_by_another_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(d, "orders-1", "A", json!(1));

    // This test process holds the store, as a running host would.
    let store = Store::open(d, "default", Durability::Immediate).unwrap();
    for args in [
        &["append", "orders-1", "--type", "B"][..],
        &["read", "orders-1"],
        &["streams"],
        &["subscriptions", "create", "s", "--at-head"],
    ] {
        let err = fails(d, args);
        assert!(err.contains("locked"), "{err}");
        assert!(err.contains("store default"), "{err}");
        assert!(err.contains("stop the host"), "{err}");
    }
    // Other stores of the directory are not.
    ok(d, &["--store", "other", "append", "s", "--type", "A"]);
    assert_eq!(store.stream_version("orders-1").unwrap(), Some(0));
    drop(store);

    // Released, the store works again, and nothing was written meanwhile.
    append(d, "orders-1", "C", json!(3));
    let read = events(&ok(d, &["read", "orders-1"]));
    let types: Vec<&str> = read
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["A", "C"]);
}

#[test]
fn reads_page_through_long_streams() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n: u64 = 1300;
    let file = d.join("many.jsonl");
    let lines: String = (0..n)
        .map(|i| format!("{{\"type\": \"T\", \"data\": {i}}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    ok(d, &["append", "s", "--file", file.to_str().unwrap()]);
    ok(d, &["append", "t", "--type", "U"]);

    let numbers = |args: &[&str]| -> Vec<u64> {
        events(&ok(d, args))
            .iter()
            .map(|e| e["data"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(numbers(&["read", "s"]), (0..n).collect::<Vec<_>>());
    assert_eq!(
        numbers(&["read", "s", "--backward"]),
        (0..n).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        numbers(&["read", "s", "--from", "100", "--count", "1000"]),
        (100..1100).collect::<Vec<_>>()
    );
    assert_eq!(
        numbers(&[
            "read",
            "s",
            "--backward",
            "--from",
            "1200",
            "--count",
            "1100"
        ]),
        (101..=1200).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        numbers(&["read", "$et-T", "--from", "5"]),
        (5..n).collect::<Vec<_>>()
    );
    let all = events(&ok(d, &["read-all", "--backward"]));
    assert_eq!(all.len() as u64, n + 1);
    assert_eq!(all[0]["stream_id"], "t");
    assert_eq!(all[n as usize]["global_position"], 0);
}
