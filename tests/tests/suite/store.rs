//! Black-box tests of the embedded event store: expected versions, atomic
//! batches, reads in both directions, streams, checkpoints, reopening,
//! selectors, concurrency, names, append notifications, and a crash test
//! (a child process SIGKILLed while appending).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use exesdb_host::store::{
    Direction, Durability, ExpectedVersion, NewEvent, Payload, RecordedEvent, Selector, Store,
    StoreError, StreamInfo,
};
use serde_json::json;

fn open(dir: &Path) -> Store {
    Store::open(dir, "test_store", Durability::Immediate).unwrap()
}

fn ev(event_type: &str, n: u64) -> NewEvent {
    NewEvent::json(event_type, json!({ "n": n }))
}

fn n_of(e: &RecordedEvent) -> u64 {
    e.data.as_json().unwrap()["n"].as_u64().unwrap()
}

fn numbers(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.event_number).collect()
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.global_position).collect()
}

/// Asserts `r` is a wrong-expected-version error with these fields.
fn assert_conflict<T: std::fmt::Debug>(
    r: Result<T, StoreError>,
    stream: &str,
    expected: ExpectedVersion,
    current: Option<u64>,
) {
    match r {
        Err(StoreError::WrongExpectedVersion {
            store,
            stream: s,
            expected: e,
            current: c,
        }) => {
            assert_eq!(store, "test_store");
            assert_eq!(s, stream);
            assert_eq!(e, expected);
            assert_eq!(c, current);
        }
        other => panic!("expected a wrong-expected-version error, got {other:?}"),
    }
}

#[test]
fn expected_version_conflicts_for_each_variant() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());

    // StreamExists / Exact on a stream that does not exist.
    assert_conflict(
        store.append("s", ExpectedVersion::StreamExists, vec![ev("A", 0)]),
        "s",
        ExpectedVersion::StreamExists,
        None,
    );
    assert_conflict(
        store.append("s", ExpectedVersion::Exact(0), vec![ev("A", 0)]),
        "s",
        ExpectedVersion::Exact(0),
        None,
    );

    // NoStream creates it; a second NoStream conflicts at version 0.
    let r = store
        .append("s", ExpectedVersion::NoStream, vec![ev("A", 0)])
        .unwrap();
    assert_eq!((r.first_event_number, r.last_event_number), (0, 0));
    let err = store
        .append("s", ExpectedVersion::NoStream, vec![ev("A", 1)])
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("test_store") && msg.contains("\"s\""), "{msg}");
    assert!(msg.contains("expected no_stream, current 0"), "{msg}");
    assert_conflict::<()>(Err(err), "s", ExpectedVersion::NoStream, Some(0));

    // Exact: a wrong number conflicts, the right one appends.
    assert_conflict(
        store.append("s", ExpectedVersion::Exact(5), vec![ev("A", 1)]),
        "s",
        ExpectedVersion::Exact(5),
        Some(0),
    );
    let r = store
        .append("s", ExpectedVersion::Exact(0), vec![ev("A", 1)])
        .unwrap();
    assert_eq!(r.last_event_number, 1);
    assert_conflict(
        store.append("s", ExpectedVersion::Exact(0), vec![ev("A", 2)]),
        "s",
        ExpectedVersion::Exact(0),
        Some(1),
    );

    // StreamExists and Any succeed on an existing stream; Any on a new one.
    store
        .append("s", ExpectedVersion::StreamExists, vec![ev("A", 2)])
        .unwrap();
    store
        .append("s", ExpectedVersion::Any, vec![ev("A", 3)])
        .unwrap();
    store
        .append("other", ExpectedVersion::Any, vec![ev("A", 0)])
        .unwrap();

    assert_eq!(store.stream_version("s").unwrap(), Some(3));
    let events = store.read_stream("s", 0, 100, Direction::Forward).unwrap();
    assert_eq!(events.iter().map(n_of).collect::<Vec<_>>(), [0, 1, 2, 3]);
}

#[test]
fn batches_are_atomic_and_consecutive() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append("a", ExpectedVersion::Any, vec![ev("A", 0)])
        .unwrap();

    let batch: Vec<_> = (0..5).map(|n| ev("B", n)).collect();
    let r = store
        .append("b", ExpectedVersion::NoStream, batch.clone())
        .unwrap();
    assert_eq!((r.first_event_number, r.last_event_number), (0, 4));
    assert_eq!((r.first_position, r.last_position), (1, 5));
    let events = store.read_stream("b", 0, 10, Direction::Forward).unwrap();
    assert_eq!(numbers(&events), [0, 1, 2, 3, 4]);
    assert_eq!(positions(&events), [1, 2, 3, 4, 5]);
    for (e, n) in events.iter().zip(&batch) {
        assert_eq!(e.event_id, n.event_id);
        assert_eq!(e.data, n.data);
        assert_eq!(e.stream_id, "b");
    }
    // One append, one creation time.
    assert!(events.iter().all(|e| e.created == events[0].created));

    // A conflicting batch writes nothing.
    let head = store.head_position().unwrap();
    assert_conflict(
        store.append(
            "b",
            ExpectedVersion::Exact(2),
            (0..3).map(|n| ev("C", n)).collect(),
        ),
        "b",
        ExpectedVersion::Exact(2),
        Some(4),
    );
    // A batch with one bad event type writes nothing either.
    let err = store
        .append(
            "b",
            ExpectedVersion::Any,
            vec![ev("C", 0), ev("", 1), ev("C", 2)],
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::InvalidName {
                kind: "event type",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.head_position().unwrap(), head);
    assert_eq!(store.stream_version("b").unwrap(), Some(4));
    assert_eq!(store.read_all(0, 100, Direction::Forward).unwrap().len(), 6);

    // An empty append is an error naming the stream.
    let err = store.append("b", ExpectedVersion::Any, vec![]).unwrap_err();
    assert!(matches!(err, StoreError::EmptyAppend { .. }));
    assert!(err.to_string().contains("\"b\""), "{err}");
}

/// Two interleaved streams: `x` gets n = 0..10 at even positions, `y` at odd.
fn interleaved(store: &Store) {
    for n in 0..10 {
        store
            .append("x", ExpectedVersion::Any, vec![ev("X", n)])
            .unwrap();
        store
            .append("y", ExpectedVersion::Any, vec![ev("Y", n)])
            .unwrap();
    }
}

#[test]
fn reads_stream_forward_and_backward_with_from_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    interleaved(&store);

    let f = store.read_stream("x", 3, 4, Direction::Forward).unwrap();
    assert_eq!(numbers(&f), [3, 4, 5, 6]);
    assert_eq!(positions(&f), [6, 8, 10, 12]);
    assert!(f.iter().all(|e| e.stream_id == "x" && e.event_type == "X"));
    assert_eq!(f.iter().map(n_of).collect::<Vec<_>>(), [3, 4, 5, 6]);

    let f = store.read_stream("x", 8, 100, Direction::Forward).unwrap();
    assert_eq!(numbers(&f), [8, 9]);
    assert!(store
        .read_stream("x", 10, 5, Direction::Forward)
        .unwrap()
        .is_empty());

    let b = store.read_stream("y", 5, 3, Direction::Backward).unwrap();
    assert_eq!(numbers(&b), [5, 4, 3]);
    assert_eq!(positions(&b), [11, 9, 7]);
    let b = store
        .read_stream("y", u64::MAX, 2, Direction::Backward)
        .unwrap();
    assert_eq!(numbers(&b), [9, 8]);
    let b = store.read_stream("y", 1, 10, Direction::Backward).unwrap();
    assert_eq!(numbers(&b), [1, 0]);

    assert!(store
        .read_stream("x", 0, 0, Direction::Forward)
        .unwrap()
        .is_empty());
    assert!(store
        .read_stream("missing", 0, 10, Direction::Forward)
        .unwrap()
        .is_empty());
}

#[test]
fn stream_reads_across_batches_match_a_model_for_every_from_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Batches of several sizes into `m`, interleaved with appends to `o`.
    let mut model = Vec::new(); // (event number, global position) of `m`
    let mut n = 0;
    for size in [3u64, 1, 4, 2, 1, 5] {
        let r = store
            .append(
                "m",
                ExpectedVersion::Any,
                (0..size).map(|k| ev("M", n + k)).collect(),
            )
            .unwrap();
        model.extend((0..size).map(|k| (n + k, r.first_position + k)));
        n += size;
        store
            .append("o", ExpectedVersion::Any, vec![ev("O", 0), ev("O", 1)])
            .unwrap();
    }
    let version = n - 1;
    for from in 0..n + 2 {
        for count in 0..n as usize + 2 {
            let fwd = store
                .read_stream("m", from, count, Direction::Forward)
                .unwrap();
            let want: Vec<_> = model
                .iter()
                .filter(|(num, _)| *num >= from)
                .take(count)
                .copied()
                .collect();
            let got: Vec<_> = fwd
                .iter()
                .map(|e| (e.event_number, e.global_position))
                .collect();
            assert_eq!(got, want, "forward from {from} count {count}");
            assert!(fwd.iter().all(|e| n_of(e) == e.event_number));

            let bwd = store
                .read_stream("m", from, count, Direction::Backward)
                .unwrap();
            let want: Vec<_> = model
                .iter()
                .rev()
                .filter(|(num, _)| *num <= from)
                .take(count)
                .copied()
                .collect();
            let got: Vec<_> = bwd
                .iter()
                .map(|e| (e.event_number, e.global_position))
                .collect();
            assert_eq!(got, want, "backward from {from} count {count}");
        }
    }
    assert_eq!(store.stream_version("m").unwrap(), Some(version));
    // The stream selector from every global position.
    let sel = Selector::Stream("m".into());
    let head = store.head_position().unwrap().unwrap();
    for from in 0..head + 2 {
        let got: Vec<_> = positions(&store.read_from(&sel, from, 3).unwrap());
        let want: Vec<_> = model
            .iter()
            .map(|(_, p)| *p)
            .filter(|p| *p >= from)
            .take(3)
            .collect();
        assert_eq!(got, want, "selector from position {from}");
    }
}

#[test]
fn reads_all_forward_and_backward_with_from_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store
        .read_all(0, 10, Direction::Forward)
        .unwrap()
        .is_empty());
    interleaved(&store);

    let all = store.read_all(0, 1000, Direction::Forward).unwrap();
    assert_eq!(positions(&all), (0..20).collect::<Vec<_>>());
    let streams: Vec<_> = all.iter().take(4).map(|e| e.stream_id.as_str()).collect();
    assert_eq!(streams, ["x", "y", "x", "y"]);

    let f = store.read_all(5, 3, Direction::Forward).unwrap();
    assert_eq!(positions(&f), [5, 6, 7]);
    assert_eq!(
        (f[0].stream_id.as_str(), f[0].event_number),
        ("y", 2),
        "position 5 is y's third event"
    );
    let b = store.read_all(5, 3, Direction::Backward).unwrap();
    assert_eq!(positions(&b), [5, 4, 3]);
    let b = store.read_all(u64::MAX, 2, Direction::Backward).unwrap();
    assert_eq!(positions(&b), [19, 18]);
    assert!(store
        .read_all(20, 10, Direction::Forward)
        .unwrap()
        .is_empty());
    // Each event read through `$all` equals the same event read through its stream.
    let via_stream = store.read_stream("y", 2, 1, Direction::Forward).unwrap();
    assert_eq!(via_stream[0], f[0]);
}

#[test]
fn lists_streams_with_versions_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store.list_streams().unwrap().is_empty());
    store
        .append(
            "b",
            ExpectedVersion::Any,
            (0..3).map(|n| ev("B", n)).collect(),
        )
        .unwrap();
    store
        .append("a", ExpectedVersion::Any, vec![ev("A", 0)])
        .unwrap();
    let mut streams = store.list_streams().unwrap();
    streams.sort_by(|l, r| l.name.cmp(&r.name));
    assert_eq!(
        streams,
        [
            StreamInfo {
                name: "a".into(),
                version: 0,
                event_count: 1
            },
            StreamInfo {
                name: "b".into(),
                version: 2,
                event_count: 3
            },
        ]
    );
}

#[test]
fn stream_version_and_head_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.head_position().unwrap(), None);
    assert_eq!(store.stream_version("s").unwrap(), None);
    store
        .append("s", ExpectedVersion::Any, vec![ev("A", 0), ev("A", 1)])
        .unwrap();
    store
        .append("t", ExpectedVersion::Any, vec![ev("A", 0)])
        .unwrap();
    assert_eq!(store.stream_version("s").unwrap(), Some(1));
    assert_eq!(store.stream_version("t").unwrap(), Some(0));
    assert_eq!(store.head_position().unwrap(), Some(2));
}

#[test]
fn checkpoints_save_load_delete_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        assert_eq!(store.checkpoint("sub-1").unwrap(), None);
        store.save_checkpoint("sub-1", 5).unwrap();
        store.save_checkpoint("sub-1", 7).unwrap();
        store.save_checkpoint("sub-2", 0).unwrap();
        store.save_checkpoint("gone", 3).unwrap();
        assert_eq!(store.checkpoint("sub-1").unwrap(), Some(7));
        assert!(store.delete_checkpoint("gone").unwrap());
        assert!(!store.delete_checkpoint("gone").unwrap());
        assert_eq!(store.checkpoint("gone").unwrap(), None);
    }
    let store = open(dir.path());
    assert_eq!(store.checkpoint("sub-1").unwrap(), Some(7));
    assert_eq!(
        store.list_checkpoints().unwrap(),
        [("sub-1".to_owned(), 7), ("sub-2".to_owned(), 0)]
    );
    assert!(matches!(
        store.save_checkpoint("", 1),
        Err(StoreError::InvalidName {
            kind: "subscription",
            ..
        })
    ));
}

#[test]
fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let bytes_event = NewEvent::bytes("Blob", "application/octet-stream", vec![0, 1, 2, 255])
        .with_metadata(Payload::Json(json!({ "correlation_id": "c-1" })));
    let text_event = NewEvent::bytes("Note", "text/plain", b"hello".to_vec());
    let before = {
        let store = open(dir.path());
        store
            .append(
                "s",
                ExpectedVersion::NoStream,
                vec![ev("A", 0), bytes_event],
            )
            .unwrap();
        store
            .append("t", ExpectedVersion::NoStream, vec![text_event])
            .unwrap();
        store.read_all(0, 100, Direction::Forward).unwrap()
    };
    assert_eq!(before.len(), 3);

    let store = open(dir.path());
    let after = store.read_all(0, 100, Direction::Forward).unwrap();
    assert_eq!(after, before);
    assert_eq!(
        after[1].data,
        Payload::Bytes {
            content_type: "application/octet-stream".into(),
            bytes: vec![0, 1, 2, 255]
        }
    );
    assert_eq!(
        after[1].metadata.as_json().unwrap()["correlation_id"],
        "c-1"
    );
    assert_eq!(after[2].data.content_type(), "text/plain");
    assert_eq!(store.stream_version("s").unwrap(), Some(1));
    assert_eq!(store.head_position().unwrap(), Some(2));
    // Appends continue where they left off.
    let r = store
        .append("s", ExpectedVersion::Exact(1), vec![ev("A", 2)])
        .unwrap();
    assert_eq!((r.last_event_number, r.last_position), (2, 3));
}

#[test]
fn relaxed_durability_stores_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), "relaxed", Durability::Relaxed).unwrap();
        assert_eq!(store.durability(), Durability::Relaxed);
        for n in 0..50 {
            store
                .append("s", ExpectedVersion::Any, vec![ev("A", n)])
                .unwrap();
        }
    }
    let store = Store::open(dir.path(), "relaxed", Durability::Immediate).unwrap();
    assert_eq!(store.stream_version("s").unwrap(), Some(49));
}

#[test]
fn opening_an_open_store_shares_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let b = open(dir.path());
    a.append("s", ExpectedVersion::Any, vec![ev("A", 0)])
        .unwrap();
    assert_eq!(b.stream_version("s").unwrap(), Some(0));
    assert_eq!(a.path(), b.path());
    assert!(a.path().ends_with("test_store.redb"));
    let err = Store::open(dir.path(), "test_store", Durability::Relaxed).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    // Several stores in one directory are independent.
    let other = Store::open(dir.path(), "other", Durability::Immediate).unwrap();
    assert_eq!(other.head_position().unwrap(), None);
    assert_eq!(other.id(), "other");
}

#[test]
fn selectors_parse_print_and_match() {
    let all: Selector = "$all".parse().unwrap();
    let stream: Selector = "orders-1".parse().unwrap();
    let et: Selector = "$et-OrderPlaced".parse().unwrap();
    let pat: Selector = "$pattern-orders-*".parse().unwrap();
    assert_eq!(all, Selector::All);
    assert_eq!(stream, Selector::Stream("orders-1".into()));
    assert_eq!(et, Selector::EventType("OrderPlaced".into()));
    assert_eq!(pat, Selector::StreamPattern("orders-*".into()));
    for s in [&all, &stream, &et, &pat] {
        assert_eq!(s.to_string().parse::<Selector>().unwrap(), *s);
        let j = serde_json::to_string(s).unwrap();
        assert_eq!(serde_json::from_str::<Selector>(&j).unwrap(), *s);
    }
    for bad in ["", "$", "$et-", "$pattern-", "$ce-orders", "a\tb"] {
        let err = bad.parse::<Selector>().unwrap_err();
        assert!(matches!(err, StoreError::InvalidSelector { .. }), "{bad:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append("orders-1", ExpectedVersion::Any, vec![ev("OrderPlaced", 0)])
        .unwrap();
    store
        .append("users-1", ExpectedVersion::Any, vec![ev("UserJoined", 1)])
        .unwrap();
    let events = store.read_all(0, 10, Direction::Forward).unwrap();
    let (order, user) = (&events[0], &events[1]);
    assert!(all.matches(order) && all.matches(user));
    assert!(stream.matches(order) && !stream.matches(user));
    assert!(et.matches(order) && !et.matches(user));
    assert!(pat.matches(order) && !pat.matches(user));
    assert!(Selector::StreamPattern("*-1".into()).matches(user));
}

#[test]
fn read_from_filters_by_selector_and_reports_where_to_continue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Positions: orders-1 at 0,3,6,...; orders-2 at 1,4,...; users-1 at 2,5,...
    for n in 0..10 {
        store
            .append("orders-1", ExpectedVersion::Any, vec![ev("OrderPlaced", n)])
            .unwrap();
        store
            .append(
                "orders-2",
                ExpectedVersion::Any,
                vec![ev("OrderShipped", n)],
            )
            .unwrap();
        store
            .append("users-1", ExpectedVersion::Any, vec![ev("UserJoined", n)])
            .unwrap();
    }

    let s = Selector::Stream("orders-2".into());
    let got = store.read_from(&s, 5, 3).unwrap();
    assert_eq!(positions(&got), [7, 10, 13]);
    assert_eq!(numbers(&got), [2, 3, 4]);
    let batch = store.read_batch(&s, 5, 3).unwrap();
    assert_eq!(batch.next_position, 14);
    let rest = store.read_batch(&s, batch.next_position, 100).unwrap();
    assert_eq!(positions(&rest.events), [16, 19, 22, 25, 28]);
    assert_eq!(rest.next_position, 30, "the end of the store");
    assert!(store.read_from(&s, 29, 10).unwrap().is_empty());
    let none = store
        .read_batch(&Selector::Stream("nope".into()), 3, 10)
        .unwrap();
    assert!(none.events.is_empty());
    assert_eq!(none.next_position, 30);

    let got = store.read_from(&Selector::All, 28, 10).unwrap();
    assert_eq!(positions(&got), [28, 29]);

    let et = Selector::EventType("UserJoined".into());
    let batch = store.read_batch(&et, 3, 2).unwrap();
    assert_eq!(positions(&batch.events), [5, 8]);
    assert_eq!(batch.next_position, 9);
    assert!(batch.events.iter().all(|e| e.event_type == "UserJoined"));

    let pat = Selector::StreamPattern("orders-*".into());
    let got = store.read_from(&pat, 0, 1000).unwrap();
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|e| e.stream_id.starts_with("orders-")));
    assert!(got
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));

    // Following next_position in small batches sees each selected event once.
    let mut seen = Vec::new();
    let mut from = 0;
    loop {
        let b = store.read_batch(&pat, from, 3).unwrap();
        if b.events.is_empty() {
            break;
        }
        seen.extend(positions(&b.events));
        from = b.next_position;
    }
    assert_eq!(seen, positions(&got));
    assert_eq!(store.read_batch(&pat, 7, 0).unwrap().next_position, 7);
}

#[test]
fn concurrent_appends_get_dense_unique_positions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "concurrent", Durability::Relaxed).unwrap();
    const THREADS: u64 = 4;
    const APPENDS: u64 = 100;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let stream = format!("stream-{t}");
                for i in 0..APPENDS {
                    // Alternate batches of one and two events.
                    let batch = (0..1 + i % 2).map(|k| ev("T", i * 2 + k)).collect();
                    store.append(&stream, ExpectedVersion::Any, batch).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let per_thread = APPENDS + APPENDS / 2;
    let total = THREADS * per_thread;
    let all = store.read_all(0, usize::MAX, Direction::Forward).unwrap();
    assert_eq!(positions(&all), (0..total).collect::<Vec<_>>());
    assert_eq!(store.head_position().unwrap(), Some(total - 1));
    for t in 0..THREADS {
        let events = store
            .read_stream(&format!("stream-{t}"), 0, usize::MAX, Direction::Forward)
            .unwrap();
        assert_eq!(numbers(&events), (0..per_thread).collect::<Vec<_>>());
        assert!(events
            .windows(2)
            .all(|w| w[0].global_position < w[1].global_position));
    }
    let ids: HashSet<_> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len() as u64, total);
}

#[test]
fn concurrent_optimistic_appends_to_one_stream_never_lose_or_duplicate() {
    // Durable appends from 6 threads to one stream, each with the version it
    // last read and retrying on conflict: the contended case group commit
    // must keep exact (one conflict must not affect the others in its group).
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    const THREADS: u64 = 6;
    const PER_THREAD: u64 = 25;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut conflicts = 0;
                for i in 0..PER_THREAD {
                    loop {
                        let expected = match store.stream_version("shared").unwrap() {
                            Some(v) => ExpectedVersion::Exact(v),
                            None => ExpectedVersion::NoStream,
                        };
                        match store.append("shared", expected, vec![ev("T", t * 1000 + i)]) {
                            Ok(_) => break,
                            Err(StoreError::WrongExpectedVersion { current, .. }) => {
                                assert!(current.is_some() || expected != ExpectedVersion::NoStream);
                                conflicts += 1;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    // Independent appends keep flowing alongside.
                    store
                        .append(&format!("own-{t}"), ExpectedVersion::Any, vec![ev("O", i)])
                        .unwrap();
                }
                conflicts
            })
        })
        .collect();
    let conflicts: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let events = store
        .read_stream("shared", 0, usize::MAX, Direction::Forward)
        .unwrap();
    assert_eq!(
        numbers(&events),
        (0..THREADS * PER_THREAD).collect::<Vec<_>>()
    );
    let mut ns: Vec<_> = events.iter().map(n_of).collect();
    ns.sort_unstable();
    let mut want: Vec<_> = (0..THREADS)
        .flat_map(|t| (0..PER_THREAD).map(move |i| t * 1000 + i))
        .collect();
    want.sort_unstable();
    assert_eq!(ns, want, "each append landed exactly once");
    let all = store.read_all(0, usize::MAX, Direction::Forward).unwrap();
    assert_eq!(
        positions(&all),
        (0..2 * THREADS * PER_THREAD).collect::<Vec<_>>()
    );
    eprintln!("{conflicts} conflicts retried");
}

#[test]
fn bad_names_are_rejected_with_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for bad in ["", "$all", "$my-stream", "a\nb", "tab\there"] {
        let err = store
            .append(bad, ExpectedVersion::Any, vec![ev("A", 0)])
            .unwrap_err();
        match &err {
            StoreError::InvalidName {
                kind: "stream",
                name,
                store,
                ..
            } => {
                assert_eq!(name, bad);
                assert_eq!(store, "test_store");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        assert!(store.read_stream(bad, 0, 1, Direction::Forward).is_err());
        assert!(store.stream_version(bad).is_err());
    }
    let long = "x".repeat(2000);
    assert!(store
        .append(&long, ExpectedVersion::Any, vec![ev("A", 0)])
        .is_err());
    assert!(store
        .read_all(0, 10, Direction::Forward)
        .unwrap()
        .is_empty());

    for bad in ["", "Upper", "has space", "dot.dot", "slash/x"] {
        let err = Store::open(dir.path(), bad, Durability::Immediate).unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidName { kind: "store id", name, .. } if name == bad),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    // Unicode names are fine.
    store
        .append("commandes-é", ExpectedVersion::Any, vec![ev("Créée", 0)])
        .unwrap();
}

#[tokio::test]
async fn subscribe_appends_announces_the_head_after_each_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append("s", ExpectedVersion::Any, vec![ev("A", 0)])
        .unwrap();
    let mut rx = store.subscribe_appends();
    assert_eq!(*rx.borrow_and_update(), Some(0));

    let s = store.clone();
    tokio::task::spawn_blocking(move || {
        s.append("s", ExpectedVersion::Any, vec![ev("A", 1), ev("A", 2)])
            .unwrap()
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(*rx.borrow_and_update(), Some(2));

    // A tailer: wait for a head past what it has read, then read the rest.
    let s = store.clone();
    let writer = tokio::task::spawn_blocking(move || {
        for n in 3..20 {
            s.append("s", ExpectedVersion::Any, vec![ev("A", n)])
                .unwrap();
        }
    });
    let mut next = 3;
    let mut got = Vec::new();
    while next < 20 {
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("notified")
            .unwrap();
        let head = rx.borrow_and_update().unwrap();
        let batch = store
            .read_all(next, (head + 1 - next) as usize, Direction::Forward)
            .unwrap();
        next = head + 1;
        got.extend(batch.iter().map(n_of));
    }
    writer.await.unwrap();
    assert_eq!(got, (3..20).collect::<Vec<_>>());

    // A fresh store starts at None.
    let empty = Store::open(dir.path(), "empty", Durability::Immediate).unwrap();
    assert_eq!(*empty.subscribe_appends().borrow(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_then_live_with_a_selector_has_no_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "tail", Durability::Relaxed).unwrap();
    // History before the subscriber starts.
    for n in 0..50 {
        store
            .append(
                &format!("orders-{}", n % 3),
                ExpectedVersion::Any,
                vec![ev("O", n)],
            )
            .unwrap();
        store
            .append("users-1", ExpectedVersion::Any, vec![ev("U", n)])
            .unwrap();
    }
    // Live appends from two threads while it catches up.
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..150u64 {
                    let n = 1000 * (t + 1) + i;
                    let batch = (0..1 + i % 3).map(|k| ev("O", n * 10 + k)).collect();
                    store
                        .append(&format!("orders-{t}"), ExpectedVersion::Any, batch)
                        .unwrap();
                    store
                        .append("users-1", ExpectedVersion::Any, vec![ev("U", n)])
                        .unwrap();
                }
            })
        })
        .collect();

    let selector: Selector = "$pattern-orders-*".parse().unwrap();
    let mut rx = store.subscribe_appends();
    let (mut next, mut got) = (0u64, Vec::new());
    // 50 in history, then per thread 150 appends of 1, 2, 3, 1, 2, 3, … events.
    let expected_total = 50 + 2 * 50 * (1 + 2 + 3);
    while got.len() < expected_total {
        let (s, sel) = (store.clone(), selector.clone());
        let batch = tokio::task::spawn_blocking(move || s.read_batch(&sel, next, 64))
            .await
            .unwrap()
            .unwrap();
        assert!(batch.next_position >= next);
        next = batch.next_position;
        if batch.events.is_empty() {
            tokio::time::timeout(
                Duration::from_secs(10),
                rx.wait_for(|h| h.is_some_and(|h| h >= next)),
            )
            .await
            .expect("a new append is announced")
            .unwrap();
        }
        got.extend(batch.events);
    }
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(got.len(), expected_total);
    assert!(got.iter().all(|e| e.stream_id.starts_with("orders-")));
    assert!(
        got.windows(2)
            .all(|w| w[0].global_position < w[1].global_position),
        "in order, no duplicate"
    );
    // Exactly what the store holds for the selector.
    let all = store.read_from(&selector, 0, usize::MAX).unwrap();
    assert_eq!(got, all);
}

const CRASH_ENV: &str = "STORE_CRASH_CHILD_DIR";
const CRASH_DURABILITY_ENV: &str = "STORE_CRASH_CHILD_DURABILITY";

/// The child of the crash tests: does nothing unless `STORE_CRASH_CHILD_DIR`
/// is set; then appends to stream `crash` of store `crash` there (with the
/// durability in `STORE_CRASH_CHILD_DURABILITY`, default immediate) until it
/// is killed, printing `acked N` after each acknowledged append (N: the last
/// event number written).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_ENV) else {
        return;
    };
    let durability =
        std::env::var(CRASH_DURABILITY_ENV).map_or(Durability::Immediate, |d| d.parse().unwrap());
    let store = Store::open(Path::new(&dir), "crash", durability).unwrap();
    let mut next = store.stream_version("crash").unwrap().map_or(0, |v| v + 1);
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        // Batches of 1, 2 and 3 events.
        let batch = (0..1 + i % 3).map(|k| ev("Tick", next + k)).collect();
        let r = store.append("crash", ExpectedVersion::Any, batch).unwrap();
        assert_eq!(r.first_event_number, next);
        next = r.last_event_number + 1;
        // Fails (and ends the child) if the parent is gone.
        writeln!(out, "acked {}", r.last_event_number).unwrap();
        out.flush().unwrap();
    }
}

/// The name of [`crash_child`] in this test binary: `store::crash_child`
/// (its module path without the crate's name).
fn crash_child_test() -> String {
    let (_crate, module) = module_path!().split_once("::").unwrap();
    format!("{module}::crash_child")
}

/// Kills the child when dropped, so a failing test leaves no appender behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the crash child against `dir`, kills it with SIGKILL ~300 ms after
/// its first acknowledgement, and returns the last acknowledged event number.
fn run_and_kill_child(dir: &Path, durability: Durability) -> u64 {
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                &crash_child_test(),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_ENV, dir)
            .env(CRASH_DURABILITY_ENV, durability.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("acked ") {
                tx.send(n.trim().parse::<u64>().unwrap()).unwrap();
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child acknowledges an append");
    // While the child has the store open, another process cannot.
    match Store::open(dir, "crash", durability) {
        Err(e @ StoreError::Locked { .. }) => assert!(e.to_string().contains("crash.redb"), "{e}"),
        other => panic!("expected Locked while the child runs, got {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(300));
    child.0.kill().unwrap(); // SIGKILL on Unix
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "the child was killed: {status:?}");
    reader.join().unwrap();
    let last = rx.try_iter().last().unwrap_or(first);
    assert!(last >= first);
    last
}

/// Kills `rounds` appending children in turn; after each, every acknowledged
/// event must be readable and the store must open cleanly.
fn crash_rounds(durability: Durability, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut acked_total = 0;
    for round in 0..rounds {
        let started = Instant::now();
        let last_acked = run_and_kill_child(dir.path(), durability);
        let store = Store::open(dir.path(), "crash", durability)
            .unwrap_or_else(|e| panic!("round {round}: the store opens cleanly: {e}"));
        let version = store.stream_version("crash").unwrap().unwrap();
        assert!(
            version >= last_acked,
            "round {round}: acknowledged up to {last_acked}, stream at {version}"
        );
        let events = store
            .read_stream("crash", 0, usize::MAX, Direction::Forward)
            .unwrap();
        assert_eq!(numbers(&events), (0..=version).collect::<Vec<_>>());
        assert!(events.iter().all(|e| n_of(e) == e.event_number));
        assert_eq!(positions(&events), numbers(&events));
        assert_eq!(store.head_position().unwrap(), Some(version));
        assert!(last_acked >= acked_total, "round {round} appended");
        acked_total = last_acked + 1;
        // Close before the next child opens the file.
        drop(store);
        eprintln!(
            "{durability} round {round}: {} events acknowledged in total, stream at {version}, {:?}",
            last_acked + 1,
            started.elapsed()
        );
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    crash_rounds(Durability::Immediate, 3);
}

#[test]
fn relaxed_acknowledged_appends_survive_sigkill_of_the_process() {
    crash_rounds(Durability::Relaxed, 2);
}
