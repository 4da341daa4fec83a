//! [`StoreError`]: every failure of the store, naming the store (and the
//! stream, subscription or file where there is one) and the cause.

use std::path::PathBuf;

use super::types::ExpectedVersion;

/// An error of the event store.
///
/// Every variant names the store it happened in; stream-level errors also
/// name the stream, so a message printed on its own says where it came from.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An append's expected version did not match the stream's current
    /// version. Nothing was written.
    #[error(
        "store {store}: stream {stream:?}: wrong expected version: expected {expected}, current {}",
        display_version(*current)
    )]
    WrongExpectedVersion {
        /// The store.
        store: String,
        /// The stream appended to.
        stream: String,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's version at the time of the append (`None`: no stream).
        current: Option<u64>,
    },

    /// Some, but not all, of an append's event ids are already in the
    /// stream: it is neither a new append nor a retry of an earlier one.
    #[error("store {store}: stream {stream:?}: event {event_id} was appended before, but not with the rest of this batch (a retry must repeat the original batch exactly)")]
    PartialDuplicate {
        /// The store.
        store: String,
        /// The stream appended to.
        stream: String,
        /// The first id already in the stream.
        event_id: uuid::Uuid,
    },

    /// A store id, stream name, event type or subscription name is not
    /// acceptable.
    #[error("store {store}: invalid {kind} {name:?}: {reason}")]
    InvalidName {
        /// The store (for an invalid store id, the id itself).
        store: String,
        /// What was named: `"store id"`, `"stream"`, `"event type"`, `"subscription"`.
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// An append with no events.
    #[error("store {store}: stream {stream:?}: an append needs at least one event")]
    EmptyAppend {
        /// The store.
        store: String,
        /// The stream appended to.
        stream: String,
    },

    /// A selector's text form could not be parsed.
    #[error("invalid selector {selector:?}: {reason}")]
    InvalidSelector {
        /// The rejected text.
        selector: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A file-system operation failed (creating the data directory, opening
    /// the database file).
    #[error("store {store}: {context} {}: {message}", path.display())]
    Io {
        /// The store.
        store: String,
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The operating system's message.
        message: String,
    },

    /// The database file is held by another process (or by this process with
    /// a different [`Durability`](super::Durability)).
    #[error("store {store}: database file {} is already open: {reason}", path.display())]
    Locked {
        /// The store.
        store: String,
        /// The database file.
        path: PathBuf,
        /// Who holds it.
        reason: String,
    },

    /// The database engine reported an error.
    #[error("store {store}: {context}: {message}")]
    Db {
        /// The store.
        store: String,
        /// What was being done (names the stream or subscription where there is one).
        context: String,
        /// The engine's message.
        message: String,
    },

    /// Stored data could not be decoded, or the engine found the file damaged.
    #[error("store {store}: corrupt data: {detail}")]
    Corrupt {
        /// The store.
        store: String,
        /// What was found.
        detail: String,
    },

    /// The file was written in a format version this build does not read.
    #[error(
        "store {store}: unsupported file format version {found} (this build reads version {supported})"
    )]
    UnsupportedFormat {
        /// The store.
        store: String,
        /// The version recorded in the file.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
}

fn display_version(v: Option<u64>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "no stream".to_owned(),
    }
}

impl StoreError {
    /// Maps an engine error to a [`StoreError`] of `store`, while doing `context`.
    pub(crate) fn db(store: &str, context: impl Into<String>, err: impl Into<redb::Error>) -> Self {
        let err: redb::Error = err.into();
        match err {
            redb::Error::Corrupted(detail) => StoreError::Corrupt {
                store: store.to_owned(),
                detail: format!("{}: {detail}", context.into()),
            },
            other => StoreError::Db {
                store: store.to_owned(),
                context: context.into(),
                message: other.to_string(),
            },
        }
    }
}
