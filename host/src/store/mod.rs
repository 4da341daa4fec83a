//! # The embedded durable event store
//!
//! Streams of events, `$all` in global order, and the durable checkpoints of
//! persistent subscriptions, in one file per store: `<data_dir>/<store_id>.redb`.
//! Open one with [`Store::open`]; the example there appends and reads.
//!
//! ## Why redb
//!
//! The engine is [redb](https://www.redb.org) (4.x):
//! - **pure Rust, embedded**: a library linked into the host, no server to
//!   install or run, no C toolchain;
//! - **ACID, durable on commit**: a write transaction commits all of its
//!   changes or none (copy-on-write B-trees, checksummed commit slots), and
//!   with immediate durability it is flushed with `fdatasync` before
//!   `commit` returns; after a crash the file reopens at the last commit;
//! - **MVCC**: readers see a snapshot and never block the single writer, or
//!   are blocked by it;
//! - **single file**, well kept (frequent releases; 4.x fixes data-loss bugs
//!   of 3.x).
//!
//! ## Layout
//!
//! | table | key → value |
//! |---|---|
//! | `events` | global position `u64` → event record (below) |
//! | `stream_index` | `(stream, first event number of an append)` → `(first global position, count)`: one entry per append, since an append's events are consecutive in both |
//! | `stream_heads` | stream → last event number (its version) |
//! | `checkpoints` | persistent subscription name → position |
//! | `meta` | `"format_version"` → [`FORMAT_VERSION`], checked on open |
//!
//! An event record is a [postcard](https://docs.rs/postcard) encoding (a
//! compact, specified binary format: varints, length-prefixed strings) of the
//! event's id, stream, event number, type, creation time (seconds +
//! nanoseconds) and its data and metadata, each as a content type plus bytes
//! (JSON: `application/json` and its serde_json text). See [`Payload`].
//!
//! ## Guarantees
//!
//! - An [`append`](Store::append) is atomic: inside one write transaction
//!   its expected version is checked and all its events are written, with
//!   consecutive event numbers and global positions, or nothing is.
//! - Global positions are 0-based and dense: the writer is single, so
//!   concurrent appends from many threads serialise and never leave a gap.
//! - Group commit: appends that arrive while a commit is in progress are
//!   written together in the next transaction, with one flush for all of
//!   them. Each keeps its own expected-version check (in arrival order) and
//!   its own all-or-nothing outcome, and none is acknowledged before the
//!   flush that makes it durable.
//! - [`Durability::Immediate`] (the default): an acknowledged append
//!   survives a process crash and an OS crash / power loss.
//!   [`Durability::Relaxed`]: redb's normal commit protocol with the
//!   `fdatasync` calls skipped (a storage backend whose `sync_data` does
//!   nothing), so a commit is in the file, and survives the process being
//!   killed, but may be lost on an OS crash. (redb's own non-durable commits
//!   stay in memory and would not survive a process crash.)
//! - After a crash, opening the store repairs the file (time proportional to
//!   its size) and it reads as of the last acknowledged commit.
//! - Reads see a consistent snapshot, taken when the read begins.
//!
//! Every method is synchronous; async callers use
//! `tokio::task::spawn_blocking`. [`Store::subscribe_appends`] announces the
//! head position after each commit, for live tailing without polling, and
//! [`Store::read_batch`] reads what a [`Selector`] selects from a position
//! and says where to continue.

mod backend;
mod codec;
mod engine;
mod error;
mod index;
pub mod json;
mod keys;
pub mod kv;
mod selector;
mod settings;
mod start;
mod types;
mod writer;

pub use engine::{Store, FORMAT_VERSION, MAX_NAME_LEN, MAX_STORE_ID_LEN};
pub use error::StoreError;
pub use selector::{glob_match, Selector};
pub use settings::{StoresConfig, DEFAULT_STORE};
pub use start::Start;
pub use types::{
    AppendResult, Direction, Durability, ExpectedVersion, NewEvent, Payload, ReadBatch,
    RecordedEvent, StreamInfo,
};

#[cfg(test)]
mod tests;
