//! The storage backend of [`Durability::Relaxed`](super::Durability::Relaxed).
//!
//! redb's own non-durable commits (`redb::Durability::None`) keep the commit
//! in the process's memory until a later durable commit, so a process crash
//! loses them. Relaxed mode instead keeps redb's normal, crash-safe commit
//! protocol and only skips the `fdatasync` calls: every commit is written to
//! the file (the kernel's page cache) before it is acknowledged, so it
//! survives the process being killed, but an operating-system crash or power
//! loss can lose recent commits.

use std::ops::Bound;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// redb's file backend with `sync_data` turned into a no-op.
#[derive(Debug)]
pub(crate) struct NoSyncBackend(pub(crate) FileBackend);

impl StorageBackend for NoSyncBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.0.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.0.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.query_lock_range(start, end)
    }
}

/// Opens (or creates) a redb file with `durability`'s backend.
pub(crate) fn open_database(
    path: &std::path::Path,
    durability: super::Durability,
) -> Result<redb::Database, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let backend = FileBackend::new(file).map_err(|e| format!("{}: {e}", path.display()))?;
    let builder = redb::Builder::new();
    match durability {
        super::Durability::Immediate => builder.create_with_backend(backend),
        super::Durability::Relaxed => builder.create_with_backend(NoSyncBackend(backend)),
    }
    .map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            format!("{}: another process holds it", path.display())
        }
        other => format!("{}: {other}", path.display()),
    })
}
