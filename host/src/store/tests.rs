//! Unit tests that need the engine underneath: the format-version check and
//! files that are not stores.

use redb::{Database, ReadableTable, TableDefinition};

use super::*;

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

#[test]
fn a_newer_format_version_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = Store::open(dir.path(), "s", Durability::Immediate)
        .unwrap()
        .path()
        .to_owned();
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("format_version", FORMAT_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(dir.path(), "s", Durability::Immediate).unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedFormat { found, supported, .. }
            if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("store s:"), "{err}");
}

#[test]
fn a_file_that_is_not_a_store_is_an_error_naming_the_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.redb"), vec![0x5a; 8192]).unwrap();
    let err = Store::open(dir.path(), "junk", Durability::Immediate).unwrap_err();
    assert!(err.to_string().contains("store junk:"), "{err}");
}

#[test]
fn records_round_trip_through_the_codec() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "codec", Durability::Relaxed).unwrap();
    let big = vec![7u8; 100_000];
    let ev = NewEvent::bytes("Big", "application/octet-stream", big.clone()).with_metadata(
        Payload::Bytes {
            content_type: "text/plain".into(),
            bytes: b"meta".to_vec(),
        },
    );
    let id = ev.event_id;
    store.append("s", ExpectedVersion::Any, vec![ev]).unwrap();
    let got = &store.read_all(0, 1, Direction::Forward).unwrap()[0];
    assert_eq!(got.event_id, id);
    assert_eq!(got.data.to_bytes(), big);
    assert_eq!(got.metadata.content_type(), "text/plain");
    // JSON stored as bytes with the JSON content type reads back as JSON.
    store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![NewEvent::bytes(
                "J",
                Payload::JSON_CONTENT_TYPE,
                b"{\"a\":1}".to_vec(),
            )],
        )
        .unwrap();
    let got = &store.read_all(1, 1, Direction::Forward).unwrap()[0];
    assert_eq!(got.data, Payload::Json(serde_json::json!({"a": 1})));
}

#[test]
fn a_conflict_inside_a_group_commit_leaves_the_other_appends_alone() {
    use super::codec::{EncodedPayload, PreparedEvent};
    use super::writer::AppendRequest;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "g", Durability::Immediate).unwrap();
    let req = |stream: &str, expected, n: usize| AppendRequest {
        stream: stream.into(),
        expected,
        events: (0..n)
            .map(|i| PreparedEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: "E".into(),
                data: EncodedPayload::new(Payload::Json(serde_json::json!({ "i": i }))),
                meta: EncodedPayload::new(Payload::empty()),
            })
            .collect(),
        created: chrono::Utc::now(),
    };
    let out = store.write_group(&[
        req("a", ExpectedVersion::NoStream, 2),
        req("a", ExpectedVersion::NoStream, 1),
        req("b", ExpectedVersion::Any, 3),
        req("a", ExpectedVersion::Exact(1), 1),
        req("c", ExpectedVersion::StreamExists, 1),
    ]);
    let a0 = out[0].as_ref().unwrap();
    assert_eq!((a0.first_position, a0.last_event_number), (0, 1));
    assert!(matches!(
        out[1],
        Err(StoreError::WrongExpectedVersion {
            current: Some(1),
            ..
        })
    ));
    let b = out[2].as_ref().unwrap();
    assert_eq!((b.first_position, b.last_position), (2, 4));
    let a2 = out[3].as_ref().unwrap();
    assert_eq!((a2.first_event_number, a2.first_position), (2, 5));
    assert!(matches!(
        out[4],
        Err(StoreError::WrongExpectedVersion { current: None, .. })
    ));
    assert_eq!(store.stream_version("a").unwrap(), Some(2));
    assert_eq!(store.stream_version("c").unwrap(), None);
    assert_eq!(store.head_position().unwrap(), Some(5));
    assert_eq!(*store.subscribe_appends().borrow(), Some(5));
    // A group where every append conflicts writes nothing.
    let out = store.write_group(&[req("a", ExpectedVersion::NoStream, 1)]);
    assert!(out[0].is_err());
    assert_eq!(store.head_position().unwrap(), Some(5));
}

#[test]
fn a_retried_append_is_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "idem", Durability::Relaxed).unwrap();
    store
        .append(
            "other",
            ExpectedVersion::Any,
            vec![NewEvent::json("X", serde_json::json!({}))],
        )
        .unwrap();
    let batch = vec![
        NewEvent::json("A", serde_json::json!({"n": 1})),
        NewEvent::json("B", serde_json::json!({"n": 2})),
    ];
    let first = store
        .append("s", ExpectedVersion::NoStream, batch.clone())
        .unwrap();
    assert!(!first.replayed);
    // The same batch again — even with an expected version that no longer
    // holds — answers with the original positions and writes nothing.
    let again = store
        .append("s", ExpectedVersion::NoStream, batch.clone())
        .unwrap();
    assert!(again.replayed);
    assert_eq!((again.first_event_number, again.last_event_number), (0, 1));
    assert_eq!(
        (again.first_position, again.last_position),
        (first.first_position, first.last_position)
    );
    assert_eq!(store.read_all(0, 100, Direction::Forward).unwrap().len(), 3);
    // The same ids in another stream are other events.
    let elsewhere = store
        .append("t", ExpectedVersion::Any, batch.clone())
        .unwrap();
    assert!(!elsewhere.replayed);
    // Part of the batch with a new event is neither: refused, nothing written.
    let mixed = vec![batch[1].clone(), NewEvent::json("C", serde_json::json!({}))];
    let err = store.append("s", ExpectedVersion::Any, mixed).unwrap_err();
    assert!(
        matches!(&err, StoreError::PartialDuplicate { event_id, .. } if *event_id == batch[1].event_id),
        "{err:?}"
    );
    assert_eq!(store.stream_version("s").unwrap(), Some(1));
    // A reopened store still knows the ids.
    drop(store);
    let store = Store::open(dir.path(), "idem", Durability::Relaxed).unwrap();
    assert!(
        store
            .append("s", ExpectedVersion::Any, batch)
            .unwrap()
            .replayed
    );
}

#[test]
fn a_refused_duplicate_leaves_no_trace_of_its_new_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "undo", Durability::Relaxed).unwrap();
    let ev = |t: &str| NewEvent::json(t, serde_json::json!({}));
    let (a, b) = (ev("A"), ev("B"));
    let first = store
        .append("s", ExpectedVersion::NoStream, vec![a.clone(), b.clone()])
        .unwrap();
    // New ids before the one seen before: refused, and their entries (written
    // before the duplicate was found) are undone.
    let (c, d) = (ev("C"), ev("D"));
    let err = store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![c.clone(), d.clone(), b.clone()],
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::PartialDuplicate { event_id, .. } if *event_id == b.event_id),
        "{err:?}"
    );
    assert_eq!(store.stream_version("s").unwrap(), Some(1));
    let fresh = store
        .append("s", ExpectedVersion::Exact(1), vec![c, d])
        .unwrap();
    assert!(!fresh.replayed);
    assert_eq!((fresh.first_event_number, fresh.last_event_number), (2, 3));
    // The entry the refused append replaced is back: the original retry
    // still answers with the original positions.
    let again = store
        .append("s", ExpectedVersion::NoStream, vec![a, b])
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.first_position, again.last_position),
        (first.first_position, first.last_position)
    );
    // The same id twice in one append: both written, the id names the later.
    let e = ev("E");
    let twice = store
        .append("s", ExpectedVersion::Any, vec![e.clone(), e.clone()])
        .unwrap();
    assert_eq!((twice.first_event_number, twice.last_event_number), (4, 5));
    let err = store
        .append("s", ExpectedVersion::Any, vec![e.clone(), e.clone()])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PartialDuplicate { .. }),
        "{err:?}"
    );
    let once = store.append("s", ExpectedVersion::Any, vec![e]).unwrap();
    assert!(once.replayed);
    assert_eq!(once.first_event_number, 5);
    assert_eq!(store.read_all(0, 100, Direction::Forward).unwrap().len(), 6);
}

#[test]
fn the_index_and_id_tables_are_redb_tuple_tables_on_disk() {
    // `keys` encodes as redb's tuples do: the tables open, and read back,
    // with the tuple types (and so do files written with them).
    const INDEX: TableDefinition<'_, (&str, u64), (u64, u64)> =
        TableDefinition::new("stream_index");
    const IDS: TableDefinition<'_, (&str, u128), (u64, u64)> = TableDefinition::new("event_ids");
    let dir = tempfile::tempdir().unwrap();
    let (path, id) = {
        let store = Store::open(dir.path(), "tuples", Durability::Immediate).unwrap();
        store
            .append(
                "s",
                ExpectedVersion::Any,
                vec![NewEvent::json("X", serde_json::json!({}))],
            )
            .unwrap();
        let e = NewEvent::json("Y", serde_json::json!({}));
        let id = e.event_id;
        store.append("s", ExpectedVersion::Any, vec![e]).unwrap();
        (store.path().to_owned(), id)
    };
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let index = txn.open_table(INDEX).unwrap();
            assert_eq!(index.get(("s", 1)).unwrap().unwrap().value(), (1, 1));
            let mut ids = txn.open_table(IDS).unwrap();
            assert_eq!(
                ids.get(("s", id.as_u128())).unwrap().unwrap().value(),
                (1, 1)
            );
            // An entry written with the tuple type is seen by the store.
            ids.insert(("s", 42u128), (0, 0)).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path(), "tuples", Durability::Immediate).unwrap();
    let retry = store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![NewEvent::json("X", serde_json::json!({})).with_id(uuid::Uuid::from_u128(42))],
        )
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.first_position, 0);
    let events = store.read_stream("s", 0, 10, Direction::Forward).unwrap();
    assert_eq!(events.len(), 2);
}
