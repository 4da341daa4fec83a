//! [`Store`]: one event store in one redb file.

use std::fmt;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::Mutex;
use redb::backends::FileBackend;
use redb::{
    Database, DatabaseError, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition,
};
use tokio::sync::watch;

use super::backend::NoSyncBackend;
use super::codec::{self, EncodedPayload, PreparedEvent};
use super::error::StoreError;
use super::index::{self, STREAM_INDEX};
use super::keys::{StrKey, U64Pair};
use super::selector::Selector;
use super::types::{
    AppendResult, Direction, Durability, ExpectedVersion, NewEvent, ReadBatch, RecordedEvent,
    StreamInfo,
};
use super::writer::{AppendOutcome, AppendRequest, WriteQueue};

/// Global position → encoded event record (see `codec`).
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");
/// Stream → its last event number.
const STREAM_HEADS: TableDefinition<'_, &str, u64> = TableDefinition::new("stream_heads");
/// Persistent subscription name → checkpoint position.
const CHECKPOINTS: TableDefinition<'_, &str, u64> = TableDefinition::new("checkpoints");
/// `format_version` → [`FORMAT_VERSION`].
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// (stream, event id) → (event number, global position): makes a retried
/// append idempotent.
/// (`keys::StrKey` and `keys::U64Pair` are `(&str, u128)` and `(u64, u64)`
/// as redb encodes them, without the tuples' allocations.)
const EVENT_IDS: TableDefinition<'_, StrKey<u128>, U64Pair> = TableDefinition::new("event_ids");

/// The file format version this build reads and writes, recorded in the
/// `meta` table and checked on open.
pub const FORMAT_VERSION: u64 = 1;

/// The longest stream name, event type or subscription name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// The longest store id, in bytes.
pub const MAX_STORE_ID_LEN: usize = 128;

/// Stores open in this process, by database file: a second
/// [`Store::open`] of the same file shares the first one's handle.
static REGISTRY: Mutex<Vec<(PathBuf, Weak<Inner>)>> = parking_lot::const_mutex(Vec::new());

/// An embedded, durable event store: streams of events in one redb file,
/// `<data_dir>/<store_id>.redb`. See the [module docs](super) for the design.
///
/// Cheap to clone (an `Arc` inside) and usable from any number of threads.
/// Every method is synchronous and may block on disk I/O; from async code
/// call it through `tokio::task::spawn_blocking`.
///
/// # Example
///
/// ```
/// use exesdb_host::store::{Direction, Durability, ExpectedVersion, NewEvent, Store};
/// use serde_json::json;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(dir.path(), "my_store", Durability::Immediate).unwrap();
///
/// let res = store
///     .append(
///         "orders-1",
///         ExpectedVersion::NoStream,
///         vec![
///             NewEvent::json("OrderPlaced", json!({ "qty": 2 })),
///             NewEvent::json("OrderShipped", json!({})),
///         ],
///     )
///     .unwrap();
/// assert_eq!((res.first_event_number, res.last_event_number), (0, 1));
///
/// let events = store.read_stream("orders-1", 0, 10, Direction::Forward).unwrap();
/// assert_eq!(events.len(), 2);
/// assert_eq!(events[0].event_type, "OrderPlaced");
/// assert_eq!(store.stream_version("orders-1").unwrap(), Some(1));
/// assert_eq!(store.read_all(0, 10, Direction::Forward).unwrap().len(), 2);
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    path: PathBuf,
    durability: Durability,
    db: Database,
    head: watch::Sender<Option<u64>>,
    writes: WriteQueue,
    // Declared last, so dropped after `db` has closed the file: until then a
    // new open of the same file waits rather than failing on the file lock.
    _registration: Registration,
}

/// Removes a store's registry entry once it is closed.
struct Registration {
    path: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        REGISTRY
            .lock()
            .retain(|(p, w)| !(p == &self.path && w.strong_count() == 0));
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("id", &self.inner.id)
            .field("path", &self.inner.path)
            .field("durability", &self.inner.durability)
            .finish()
    }
}

/// Adds the store id and a context to engine errors.
trait Ctx<T> {
    fn ctx<C: Into<String>>(
        self,
        store: &str,
        context: impl FnOnce() -> C,
    ) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> Ctx<T> for Result<T, E> {
    fn ctx<C: Into<String>>(
        self,
        store: &str,
        context: impl FnOnce() -> C,
    ) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::db(store, context(), e))
    }
}

impl Store {
    /// Opens the store `store_id` in `data_dir`, creating the directory and
    /// the file `<store_id>.redb` if needed.
    ///
    /// `store_id` is made of `[a-z0-9_-]`. Opening a store that is already
    /// open in this process returns a handle to the same store (with the
    /// same `durability`, else [`StoreError::Locked`]); a store open in
    /// another process is [`StoreError::Locked`]. After a crash the engine
    /// repairs the file on open (time proportional to the file's size).
    pub fn open(
        data_dir: &Path,
        store_id: &str,
        durability: Durability,
    ) -> Result<Store, StoreError> {
        validate_store_id(store_id)?;
        let io = |context: &'static str, path: &Path| {
            let path = path.to_owned();
            move |e: std::io::Error| StoreError::Io {
                store: store_id.to_owned(),
                path,
                context,
                message: e.to_string(),
            }
        };
        std::fs::create_dir_all(data_dir).map_err(io("creating the data directory", data_dir))?;
        let dir = data_dir
            .canonicalize()
            .map_err(io("resolving the data directory", data_dir))?;
        let path = dir.join(format!("{store_id}.redb"));

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut registry = REGISTRY.lock();
            let entry = registry
                .iter()
                .find(|(p, _)| p == &path)
                .map(|(_, w)| w.clone());
            match entry {
                None => {
                    let inner = Arc::new(Inner::open(store_id, &path, durability)?);
                    registry.push((path, Arc::downgrade(&inner)));
                    return Ok(Store { inner });
                }
                Some(weak) => {
                    drop(registry);
                    let Some(inner) = weak.upgrade() else {
                        // Another thread is closing it: wait for the file to be released.
                        if Instant::now() > deadline {
                            return Err(StoreError::Locked {
                                store: store_id.to_owned(),
                                path,
                                reason: "it is still being closed in this process".into(),
                            });
                        }
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    };
                    if inner.durability != durability {
                        return Err(StoreError::Locked {
                            store: store_id.to_owned(),
                            path,
                            reason: format!(
                                "it is open in this process with durability {}",
                                inner.durability
                            ),
                        });
                    }
                    return Ok(Store { inner });
                }
            }
        }
    }

    /// The store's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The store's durability.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Appends `events` to `stream`, atomically: either all of them are
    /// written, with consecutive event numbers and global positions, or none.
    ///
    /// If `expected` does not hold, nothing is written and the error
    /// [`StoreError::WrongExpectedVersion`] carries the stream's current
    /// version. With [`Durability::Immediate`] the events are on disk when
    /// this returns. Appends from several threads serialise on the engine's
    /// single writer; those that arrive while a commit is in progress are
    /// committed together (group commit: one transaction and one flush for
    /// all of them, each keeping its own expected-version check and
    /// all-or-nothing outcome).
    pub fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let store = self.id();
        validate_stream(store, stream)?;
        if events.is_empty() {
            return Err(StoreError::EmptyAppend {
                store: store.to_owned(),
                stream: stream.to_owned(),
            });
        }
        // Encode payloads before taking the writer.
        let prepared = events
            .into_iter()
            .map(|e| {
                validate_name(store, "event type", &e.event_type)?;
                Ok(PreparedEvent {
                    event_id: e.event_id,
                    event_type: e.event_type,
                    data: EncodedPayload::new(e.data),
                    meta: EncodedPayload::new(e.metadata),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let request = AppendRequest {
            stream: stream.to_owned(),
            expected,
            events: prepared,
            created: Utc::now(),
        };
        self.inner
            .writes
            .submit(store, request, |group| self.write_group(group))
    }

    /// Writes a group of appends in one transaction (see `writer`): one
    /// outcome per append, in order.
    pub(super) fn write_group(&self, group: &[AppendRequest]) -> Vec<AppendOutcome> {
        match self.try_write_group(group) {
            Ok(outcomes) => outcomes,
            // The transaction failed: so did every append in it.
            Err(e) => group
                .iter()
                .map(|r| {
                    Err(match &e {
                        StoreError::Db {
                            store,
                            context,
                            message,
                        } => StoreError::Db {
                            store: store.clone(),
                            context: format!("appending to stream {:?}: {context}", r.stream),
                            message: message.clone(),
                        },
                        other => other.clone(),
                    })
                })
                .collect(),
        }
    }

    fn try_write_group(&self, group: &[AppendRequest]) -> Result<Vec<AppendOutcome>, StoreError> {
        let store = self.id();
        let ctx = || match group {
            [one] => format!("appending to stream {:?}", one.stream),
            _ => format!("committing a group of {} appends", group.len()),
        };
        let mut outcomes = Vec::with_capacity(group.len());
        let txn = self.inner.db.begin_write().ctx(store, ctx)?;
        let mut head = None;
        {
            let mut heads = txn.open_table(STREAM_HEADS).ctx(store, ctx)?;
            let mut table = txn.open_table(EVENTS).ctx(store, ctx)?;
            let mut index = txn.open_table(STREAM_INDEX).ctx(store, ctx)?;
            let mut ids = txn.open_table(EVENT_IDS).ctx(store, ctx)?;
            let mut next_position = match table.last().ctx(store, ctx)? {
                Some((k, _)) => k.value() + 1,
                None => 0,
            };
            let mut buf = Vec::with_capacity(256);
            for r in group {
                let stream = r.stream.as_str();
                let current = heads.get(stream).ctx(store, ctx)?.map(|g| g.value());
                if !r.expected.accepts(current) {
                    // A retry of an earlier append answers with the original
                    // positions whatever its expected version (see `replay`).
                    outcomes.push(match replay(&ids, store, r).ctx(store, ctx)? {
                        Some(outcome) => outcome,
                        None => Err(StoreError::WrongExpectedVersion {
                            store: store.to_owned(),
                            stream: r.stream.clone(),
                            expected: r.expected,
                            current,
                        }),
                    });
                    continue;
                }
                let n = r.events.len() as u64;
                let first_position = next_position;
                let first_event_number = current.map_or(0, |v| v + 1);
                // The idempotency entries first, without a lookup before
                // each: an insert returns the entry it replaces, so an id
                // seen before shows up here. An entry this append wrote
                // itself (an id twice in one append) is not one seen before:
                // the later event's entry replaces it, as it always has.
                let mut clash = None;
                for (i, e) in (0u64..).zip(&r.events) {
                    let replaced = ids
                        .insert(
                            (stream, e.event_id.as_u128()),
                            (first_event_number + i, first_position + i),
                        )
                        .ctx(store, ctx)?
                        .map(|g| g.value());
                    if let Some(old) = replaced.filter(|&(_, position)| position < first_position) {
                        clash = Some((i as usize, old));
                        break;
                    }
                }
                if let Some((i, old)) = clash {
                    // Not a new append: undo its entries, put back the one
                    // replaced, and answer as for any retry, from the state
                    // before this append.
                    for e in &r.events[..i] {
                        ids.remove((stream, e.event_id.as_u128())).ctx(store, ctx)?;
                    }
                    ids.insert((stream, r.events[i].event_id.as_u128()), old)
                        .ctx(store, ctx)?;
                    let outcome = replay(&ids, store, r).ctx(store, ctx)?;
                    outcomes.push(outcome.unwrap_or_else(|| {
                        Err(StoreError::Corrupt {
                            store: store.to_owned(),
                            detail: format!(
                                "stream {stream:?}: an event id's entry vanished while appending"
                            ),
                        })
                    }));
                    continue;
                }
                for (i, e) in (0u64..).zip(&r.events) {
                    codec::encode(e, stream, first_event_number + i, &r.created, &mut buf);
                    table
                        .insert(first_position + i, buf.as_slice())
                        .ctx(store, ctx)?;
                }
                // One index entry for the whole append (see `index`).
                index
                    .insert((stream, first_event_number), (first_position, n))
                    .ctx(store, ctx)?;
                let last_event_number = first_event_number + n - 1;
                heads.insert(stream, last_event_number).ctx(store, ctx)?;
                next_position += n;
                head = Some(next_position - 1);
                outcomes.push(Ok(AppendResult {
                    first_event_number,
                    last_event_number,
                    first_position,
                    last_position: next_position - 1,
                    replayed: false,
                    created: r.created,
                }));
            }
        }
        match head {
            Some(head) => {
                txn.commit().ctx(store, ctx)?;
                self.announce(head);
            }
            None => txn.abort().ctx(store, ctx)?,
        }
        Ok(outcomes)
    }

    /// Raises the head announced to [`subscribe_appends`](Self::subscribe_appends)
    /// receivers (never lowers it: commits may announce out of order).
    fn announce(&self, last_position: u64) {
        self.inner.head.send_if_modified(|h| {
            if h.is_none_or(|v| v < last_position) {
                *h = Some(last_position);
                true
            } else {
                false
            }
        });
    }

    /// Reads up to `count` events of `stream`, starting at event number
    /// `from` (included): ascending for [`Direction::Forward`], descending
    /// for [`Direction::Backward`] (`from = u64::MAX`: from the last event).
    /// A stream that does not exist reads as empty.
    pub fn read_stream(
        &self,
        stream: &str,
        from: u64,
        count: usize,
        direction: Direction,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let store = self.id();
        validate_stream(store, stream)?;
        let ctx = || format!("reading stream {stream:?}");
        let mut out = Vec::new();
        if count == 0 {
            return Ok(out);
        }
        let txn = self.inner.db.begin_read().ctx(store, ctx)?;
        let index = txn.open_table(STREAM_INDEX).ctx(store, ctx)?;
        let table = txn.open_table(EVENTS).ctx(store, ctx)?;
        let positions = match direction {
            Direction::Forward => index::forward(&index, store, stream, from, count)?,
            Direction::Backward => index::backward(&index, store, stream, from, count)?,
        };
        for (_, position) in positions {
            out.push(self.load(&table, position)?);
        }
        Ok(out)
    }

    /// Reads up to `count` events of `$all` (every stream, in global order),
    /// starting at global position `from_position` (included): ascending for
    /// [`Direction::Forward`], descending for [`Direction::Backward`]
    /// (`u64::MAX`: from the last event).
    pub fn read_all(
        &self,
        from_position: u64,
        count: usize,
        direction: Direction,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let store = self.id();
        let ctx = || "reading $all";
        let mut out = Vec::new();
        if count == 0 {
            return Ok(out);
        }
        let txn = self.inner.db.begin_read().ctx(store, ctx)?;
        let table = txn.open_table(EVENTS).ctx(store, ctx)?;
        match direction {
            Direction::Forward => {
                for item in table.range(from_position..).ctx(store, ctx)?.take(count) {
                    let (k, v) = item.ctx(store, ctx)?;
                    out.push(self.decode(k.value(), v.value())?);
                }
            }
            Direction::Backward => {
                for item in table
                    .range(..=from_position)
                    .ctx(store, ctx)?
                    .rev()
                    .take(count)
                {
                    let (k, v) = item.ctx(store, ctx)?;
                    out.push(self.decode(k.value(), v.value())?);
                }
            }
        }
        Ok(out)
    }

    /// Reads, forward from global position `from_position` (included), up
    /// to `count` events that `selector` selects. A shorthand for
    /// [`read_batch`](Self::read_batch)`(..).events`.
    pub fn read_from(
        &self,
        selector: &Selector,
        from_position: u64,
        count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.read_batch(selector, from_position, count)?.events)
    }

    /// Reads, forward from global position `from_position` (included), up
    /// to `count` events that `selector` selects, and where to continue.
    ///
    /// A [`Selector::Stream`] read uses the stream index (a binary search for
    /// the first event at or after `from_position`); `$all` reads the events
    /// table directly; event-type and stream-pattern selectors scan `$all`
    /// and filter, decoding only the stream and type of events they skip.
    /// The whole read sees one snapshot, so
    /// [`ReadBatch::next_position`] is exact: a subscriber that resumes
    /// there neither misses nor repeats an event.
    pub fn read_batch(
        &self,
        selector: &Selector,
        from_position: u64,
        count: usize,
    ) -> Result<ReadBatch, StoreError> {
        let store = self.id();
        let ctx = || format!("reading {selector}");
        let mut events = Vec::new();
        if count == 0 {
            return Ok(ReadBatch {
                events,
                next_position: from_position,
            });
        }
        let txn = self.inner.db.begin_read().ctx(store, ctx)?;
        let table = txn.open_table(EVENTS).ctx(store, ctx)?;
        // Where to resume when the read reaches the end of the snapshot.
        let end = match table.last().ctx(store, ctx)? {
            Some((k, _)) => from_position.max(k.value() + 1),
            None => from_position,
        };
        match selector {
            Selector::Stream(stream) => {
                validate_stream(store, stream)?;
                let heads = txn.open_table(STREAM_HEADS).ctx(store, ctx)?;
                let index = txn.open_table(STREAM_INDEX).ctx(store, ctx)?;
                let Some(version) = heads
                    .get(stream.as_str())
                    .ctx(store, ctx)?
                    .map(|g| g.value())
                else {
                    return Ok(ReadBatch {
                        events,
                        next_position: end,
                    });
                };
                let first =
                    index::first_at_or_after(&index, store, stream, version, from_position)?;
                for (_, position) in index::forward(&index, store, stream, first, count)? {
                    events.push(self.load(&table, position)?);
                }
            }
            Selector::All => {
                for item in table.range(from_position..).ctx(store, ctx)?.take(count) {
                    let (k, v) = item.ctx(store, ctx)?;
                    events.push(self.decode(k.value(), v.value())?);
                }
            }
            Selector::EventType(_) | Selector::StreamPattern(_) => {
                for item in table.range(from_position..).ctx(store, ctx)? {
                    let (k, v) = item.ctx(store, ctx)?;
                    let (stream_id, event_type) =
                        codec::peek(k.value(), v.value()).map_err(|d| self.corrupt(d))?;
                    if selector.matches_parts(stream_id, event_type) {
                        events.push(self.decode(k.value(), v.value())?);
                        if events.len() == count {
                            break;
                        }
                    }
                }
            }
        }
        let next_position = if events.len() == count {
            events.last().map_or(end, |e| e.global_position + 1)
        } else {
            end
        };
        Ok(ReadBatch {
            events,
            next_position,
        })
    }

    /// The last event number of `stream`, `None` if it has no event.
    pub fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let store = self.id();
        validate_stream(store, stream)?;
        let ctx = || format!("reading the version of stream {stream:?}");
        let txn = self.inner.db.begin_read().ctx(store, ctx)?;
        let heads = txn.open_table(STREAM_HEADS).ctx(store, ctx)?;
        let version = heads.get(stream).ctx(store, ctx)?.map(|g| g.value());
        Ok(version)
    }

    /// Every stream, by name, with its version and event count.
    pub fn list_streams(&self) -> Result<Vec<StreamInfo>, StoreError> {
        let store = self.id();
        let ctx = || "listing streams";
        let txn = self.inner.db.begin_read().ctx(store, ctx)?;
        let heads = txn.open_table(STREAM_HEADS).ctx(store, ctx)?;
        let mut out = Vec::new();
        for item in heads.iter().ctx(store, ctx)? {
            let (k, v) = item.ctx(store, ctx)?;
            out.push(StreamInfo {
                name: k.value().to_owned(),
                version: v.value(),
                event_count: v.value() + 1,
            });
        }
        Ok(out)
    }

    /// The global position of the last event, `None` if the store is empty.
    pub fn head_position(&self) -> Result<Option<u64>, StoreError> {
        let store = self.id();
        let ctx = || "reading the head position";
        let txn = self.inner.db.begin_read().ctx(store, ctx)?;
        let table = txn.open_table(EVENTS).ctx(store, ctx)?;
        let head = table.last().ctx(store, ctx)?.map(|(k, _)| k.value());
        Ok(head)
    }

    /// Durably records `position` as the checkpoint of the persistent
    /// subscription `subscription` (replacing any previous one).
    pub fn save_checkpoint(&self, subscription: &str, position: u64) -> Result<(), StoreError> {
        let store = self.id();
        validate_name(store, "subscription", subscription)?;
        let ctx = || format!("saving the checkpoint of subscription {subscription:?}");
        let txn = self.inner.db.begin_write().ctx(store, ctx)?;
        {
            let mut table = txn.open_table(CHECKPOINTS).ctx(store, ctx)?;
            table.insert(subscription, position).ctx(store, ctx)?;
        }
        txn.commit().ctx(store, ctx)
    }

    /// The checkpoint of `subscription`, `None` if it has none.
    pub fn checkpoint(&self, subscription: &str) -> Result<Option<u64>, StoreError> {
        let store = self.id();
        validate_name(store, "subscription", subscription)?;
        let ctx = || format!("reading the checkpoint of subscription {subscription:?}");
        let txn = self.inner.db.begin_read().ctx(store, ctx)?;
        let table = txn.open_table(CHECKPOINTS).ctx(store, ctx)?;
        let position = table.get(subscription).ctx(store, ctx)?.map(|g| g.value());
        Ok(position)
    }

    /// Deletes the checkpoint of `subscription`; `false` if it had none.
    pub fn delete_checkpoint(&self, subscription: &str) -> Result<bool, StoreError> {
        let store = self.id();
        validate_name(store, "subscription", subscription)?;
        let ctx = || format!("deleting the checkpoint of subscription {subscription:?}");
        let txn = self.inner.db.begin_write().ctx(store, ctx)?;
        let existed = {
            let mut table = txn.open_table(CHECKPOINTS).ctx(store, ctx)?;
            let removed = table.remove(subscription).ctx(store, ctx)?;
            removed.is_some()
        };
        txn.commit().ctx(store, ctx)?;
        Ok(existed)
    }

    /// Every checkpoint, by subscription name.
    pub fn list_checkpoints(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let store = self.id();
        let ctx = || "listing checkpoints";
        let txn = self.inner.db.begin_read().ctx(store, ctx)?;
        let table = txn.open_table(CHECKPOINTS).ctx(store, ctx)?;
        let mut out = Vec::new();
        for item in table.iter().ctx(store, ctx)? {
            let (k, v) = item.ctx(store, ctx)?;
            out.push((k.value().to_owned(), v.value()));
        }
        Ok(out)
    }

    /// A receiver of the store's head position, updated after every append
    /// commits: for live tailing without polling. It starts at the head at
    /// the time of the call and only moves forward; several commits in quick
    /// succession may be seen as one change to the last of them.
    ///
    /// Catch-up then live, with no gap and no duplicate: read with
    /// [`read_batch`](Self::read_batch) until it returns no event, keeping
    /// its `next_position`; then wait with
    /// `rx.wait_for(|h| h.is_some_and(|h| h >= next_position))` and read
    /// again from `next_position`. The head is announced only once its
    /// commit is visible to reads.
    pub fn subscribe_appends(&self) -> watch::Receiver<Option<u64>> {
        self.inner.head.subscribe()
    }

    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            store: self.id().to_owned(),
            detail,
        }
    }

    fn decode(&self, position: u64, bytes: &[u8]) -> Result<RecordedEvent, StoreError> {
        codec::decode(position, bytes).map_err(|d| self.corrupt(d))
    }

    /// The event at `position`, which the stream index says exists.
    fn load(
        &self,
        table: &ReadOnlyTable<u64, &'static [u8]>,
        position: u64,
    ) -> Result<RecordedEvent, StoreError> {
        let guard = table
            .get(position)
            .ctx(self.id(), || {
                format!("reading the event at position {position}")
            })?
            .ok_or_else(|| {
                self.corrupt(format!(
                    "the stream index names position {position}, which holds no event"
                ))
            })?;
        self.decode(position, guard.value())
    }
}

/// The answer to `r` if it is a retry: `None` if none of its event ids is
/// in `stream`'s idempotency entries; the original positions (`replayed`)
/// if every one is, in order, with consecutive event numbers; else
/// [`StoreError::PartialDuplicate`]. Nothing is written either way.
fn replay(
    ids: &redb::Table<'_, StrKey<u128>, U64Pair>,
    store: &str,
    r: &AppendRequest,
) -> Result<Option<AppendOutcome>, redb::StorageError> {
    let stream = r.stream.as_str();
    let mut seen = Vec::new();
    for e in &r.events {
        if let Some(v) = ids.get((stream, e.event_id.as_u128()))? {
            seen.push((e.event_id, v.value()));
        }
    }
    if seen.is_empty() {
        return Ok(None);
    }
    let in_order =
        seen.len() == r.events.len() && seen.windows(2).all(|w| w[1].1 .0 == w[0].1 .0 + 1);
    Ok(Some(if in_order {
        let (first, last) = (seen[0].1, seen[seen.len() - 1].1);
        Ok(AppendResult {
            first_event_number: first.0,
            last_event_number: last.0,
            first_position: first.1,
            last_position: last.1,
            replayed: true,
            created: Utc::now(),
        })
    } else {
        Err(StoreError::PartialDuplicate {
            store: store.to_owned(),
            stream: r.stream.clone(),
            event_id: seen[0].0,
        })
    }))
}

impl Inner {
    /// Opens the database file and checks or initialises its tables.
    fn open(id: &str, path: &Path, durability: Durability) -> Result<Inner, StoreError> {
        let ctx = || format!("opening {}", path.display());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::Io {
                store: id.to_owned(),
                path: path.to_owned(),
                context: "opening the database file",
                message: e.to_string(),
            })?;
        let backend = FileBackend::new(file).ctx(id, ctx)?;
        let builder = redb::Builder::new();
        let db = match durability {
            Durability::Immediate => builder.create_with_backend(backend),
            Durability::Relaxed => builder.create_with_backend(NoSyncBackend(backend)),
        }
        .map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                store: id.to_owned(),
                path: path.to_owned(),
                reason: "another process holds it".into(),
            },
            other => StoreError::db(id, ctx(), other),
        })?;

        let txn = db.begin_write().ctx(id, ctx)?;
        let head = {
            let mut meta = txn.open_table(META).ctx(id, ctx)?;
            let found = meta.get("format_version").ctx(id, ctx)?.map(|g| g.value());
            match found {
                None => {
                    meta.insert("format_version", FORMAT_VERSION).ctx(id, ctx)?;
                }
                Some(v) if v == FORMAT_VERSION => {}
                Some(found) => {
                    return Err(StoreError::UnsupportedFormat {
                        store: id.to_owned(),
                        found,
                        supported: FORMAT_VERSION,
                    })
                }
            }
            txn.open_table(STREAM_INDEX).ctx(id, ctx)?;
            txn.open_table(STREAM_HEADS).ctx(id, ctx)?;
            txn.open_table(CHECKPOINTS).ctx(id, ctx)?;
            txn.open_table(EVENT_IDS).ctx(id, ctx)?;
            let events = txn.open_table(EVENTS).ctx(id, ctx)?;
            let head = events.last().ctx(id, ctx)?.map(|(k, _)| k.value());
            head
        };
        txn.commit().ctx(id, ctx)?;

        Ok(Inner {
            id: id.to_owned(),
            path: path.to_owned(),
            durability,
            db,
            head: watch::Sender::new(head),
            writes: WriteQueue::default(),
            _registration: Registration {
                path: path.to_owned(),
            },
        })
    }
}

/// Checks a store id: 1 to [`MAX_STORE_ID_LEN`] characters of `[a-z0-9_-]`.
pub(crate) fn validate_store_id(id: &str) -> Result<(), StoreError> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_STORE_ID_LEN {
        Some("it is longer than 128 bytes")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Some("only a-z, 0-9, `_` and `-` are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidName {
            store: id.to_owned(),
            kind: "store id",
            name: id.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks a stream name: a valid name (see `validate_name`) not starting with `$`.
pub(crate) fn validate_stream(store: &str, stream: &str) -> Result<(), StoreError> {
    validate_name(store, "stream", stream)?;
    if stream.starts_with('$') {
        return Err(StoreError::InvalidName {
            store: store.to_owned(),
            kind: "stream",
            name: stream.to_owned(),
            reason: "names starting with `$` are reserved",
        });
    }
    Ok(())
}

/// Checks a name: 1 to [`MAX_NAME_LEN`] bytes, no control characters.
pub(crate) fn validate_name(store: &str, kind: &'static str, name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 1024 bytes")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidName {
            store: store.to_owned(),
            kind,
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}
