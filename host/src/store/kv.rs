//! Durable key-value state of plugins: one redb file for the host
//! (`<data_dir>/plugins.state.redb`: the dots keep it apart from every store's
//! `<store_id>.redb`), one table per plugin (`state:<plugin>`).
//!
//! A plugin's keys live in named buckets; a key is stored as
//! `<bucket>\0<key>`, so a bucket is a contiguous key range and listing it is
//! a range scan. Every write is its own transaction, committed with the
//! file's [`Durability`] before the call returns: a value a plugin has set
//! survives the plugin trapping, restarting, reloading and the host
//! restarting.
//!
//! Each plugin's total size (key and value bytes) is counted when its table
//! is first used and kept up to date by every write; a write that would take
//! it over the plugin's quota is refused and changes nothing.
//!
//! Counters ([`increment`](KeyValueDb::increment)) are stored as decimal
//! text (`"42"`), so `get` reads them in any language. Compare-and-swap
//! ([`swap`](KeyValueDb::swap)) compares the whole current value with the
//! one the caller read.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::Durability;

/// Most keys one [`list_keys`](KeyValueDb::list_keys) call returns.
pub const LIST_PAGE: usize = 1000;

/// Longest bucket name.
pub const MAX_BUCKET_LEN: usize = 64;

/// Longest key, bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The write would take the plugin's state over its quota.
    #[error("state of plugin `{plugin}` would be {would_be} bytes, over its quota of {quota} bytes ([limits] state_mb)")]
    QuotaExceeded {
        plugin: String,
        would_be: u64,
        quota: u64,
    },
    /// A bucket or key name the store does not accept.
    #[error("{0}")]
    InvalidName(String),
    /// `increment` on a value that is not a decimal integer, or an overflow.
    #[error("{0}")]
    NotACounter(String),
    /// The database failed (I/O, corruption).
    #[error("plugin state database: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> KvError {
    KvError::Storage(e.to_string())
}

/// The outcome of a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The value was still the expected one and is now the new one.
    Swapped,
    /// The value had changed; this is what it is now.
    Changed(Option<Vec<u8>>),
}

/// The value at full key `k` of a plugin's table.
fn read(t: &redb::Table<'_, &str, &[u8]>, k: &str) -> Result<Option<Vec<u8>>, KvError> {
    Ok(t.get(k).map_err(storage)?.map(|v| v.value().to_vec()))
}

/// Writes `value` at `k` over `old`; returns the change in size.
fn replace(
    t: &mut redb::Table<'_, &str, &[u8]>,
    k: &str,
    old: Option<&[u8]>,
    value: &[u8],
) -> Result<i64, KvError> {
    t.insert(k, value).map_err(storage)?;
    let old_len = old.map_or(0, |o| (k.len() + o.len()) as i64);
    Ok((k.len() + value.len()) as i64 - old_len)
}

/// The plugins' state database.
pub struct KeyValueDb {
    db: Database,
    /// Each plugin's size in bytes, counted on first use.
    sizes: Mutex<HashMap<String, u64>>,
    /// Held by a write from reading the plugin's size to recording the new
    /// one, so two writes of one plugin (an old and a new version's
    /// instances during a reload) cannot both start from the same size.
    /// redb serialises write transactions anyway: this costs no concurrency.
    writing: Mutex<()>,
}

impl std::fmt::Debug for KeyValueDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueDb").finish_non_exhaustive()
    }
}

fn table_name(plugin: &str) -> String {
    format!("state:{plugin}")
}

fn full_key(bucket: &str, key: &str) -> Result<String, KvError> {
    check_bucket(bucket)?;
    if key.len() > MAX_KEY_LEN {
        return Err(KvError::InvalidName(format!(
            "key of {} bytes, over the limit of {MAX_KEY_LEN}",
            key.len()
        )));
    }
    Ok(format!("{bucket}\0{key}"))
}

/// A bucket name: 1–64 characters, none of them NUL.
pub fn check_bucket(bucket: &str) -> Result<(), KvError> {
    if bucket.is_empty() || bucket.len() > MAX_BUCKET_LEN || bucket.contains('\0') {
        return Err(KvError::InvalidName(format!(
            "bucket `{}`: must be 1 to {MAX_BUCKET_LEN} bytes without NUL",
            bucket.escape_debug()
        )));
    }
    Ok(())
}

impl KeyValueDb {
    /// Opens (or creates) `<data_dir>/plugins.state.redb`. Hosts of one
    /// process on the same data directory share one handle (the file can
    /// be open once); another process holding it is an error.
    ///
    /// # Errors
    /// [`KvError::Storage`] when the file cannot be created or opened.
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Arc<KeyValueDb>, KvError> {
        static OPEN: Mutex<Vec<(std::path::PathBuf, std::sync::Weak<KeyValueDb>)>> =
            Mutex::new(Vec::new());
        std::fs::create_dir_all(data_dir).map_err(storage)?;
        let path = data_dir
            .canonicalize()
            .map_err(storage)?
            .join("plugins.state.redb");
        let mut open = OPEN.lock();
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(db) = open
            .iter()
            .find(|(p, _)| *p == path)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(db);
        }
        let db = Arc::new(KeyValueDb {
            db: super::backend::open_database(&path, durability).map_err(KvError::Storage)?,
            sizes: Mutex::default(),
            writing: Mutex::default(),
        });
        open.push((path, Arc::downgrade(&db)));
        Ok(db)
    }

    /// A database in memory, lost when dropped (tests, and hosts without a
    /// data directory).
    pub fn in_memory() -> Arc<KeyValueDb> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory redb database opens");
        Arc::new(KeyValueDb {
            db,
            sizes: Mutex::default(),
            writing: Mutex::default(),
        })
    }

    /// The bytes (keys and values) `plugin` stores.
    ///
    /// # Errors
    /// [`KvError::Storage`].
    pub fn size(&self, plugin: &str) -> Result<u64, KvError> {
        if let Some(s) = self.sizes.lock().get(plugin) {
            return Ok(*s);
        }
        let txn = self.db.begin_read().map_err(storage)?;
        let name = table_name(plugin);
        let def: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(&name);
        let size = match txn.open_table(def) {
            Ok(t) => {
                let mut total = 0u64;
                for row in t.iter().map_err(storage)? {
                    let (k, v) = row.map_err(storage)?;
                    total += (k.value().len() + v.value().len()) as u64;
                }
                total
            }
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(storage(e)),
        };
        Ok(*self.sizes.lock().entry(plugin.to_owned()).or_insert(size))
    }

    /// The plugins that have a state table.
    ///
    /// # Errors
    /// [`KvError::Storage`].
    pub fn plugins(&self) -> Result<Vec<String>, KvError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let names = txn
            .list_tables()
            .map_err(storage)?
            .filter_map(|t| t.name().strip_prefix("state:").map(str::to_owned))
            .collect();
        Ok(names)
    }

    /// The value of `key` in `bucket`, if set.
    ///
    /// # Errors
    /// [`KvError::InvalidName`], [`KvError::Storage`].
    pub fn get(&self, plugin: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let k = full_key(bucket, key)?;
        let txn = self.db.begin_read().map_err(storage)?;
        let name = table_name(plugin);
        let def: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(&name);
        match txn.open_table(def) {
            Ok(t) => Ok(t
                .get(k.as_str())
                .map_err(storage)?
                .map(|v| v.value().to_vec())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(storage(e)),
        }
    }

    /// Runs `f` on the plugin's table in one write transaction and commits
    /// it, unless the size it reports would exceed `quota`.
    fn write<R>(
        &self,
        plugin: &str,
        quota: u64,
        f: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>) -> Result<(R, i64), KvError>,
    ) -> Result<R, KvError> {
        let _writing = self.writing.lock();
        let before = self.size(plugin)?;
        let txn = self.db.begin_write().map_err(storage)?;
        let name = table_name(plugin);
        let def: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(&name);
        let (result, delta) = {
            let mut table = txn.open_table(def).map_err(storage)?;
            f(&mut table)?
        };
        let after = before.saturating_add_signed(delta);
        if delta > 0 && after > quota {
            txn.abort().map_err(storage)?;
            return Err(KvError::QuotaExceeded {
                plugin: plugin.to_owned(),
                would_be: after,
                quota,
            });
        }
        txn.commit().map_err(storage)?;
        self.sizes.lock().insert(plugin.to_owned(), after);
        Ok(result)
    }

    /// Sets several keys of `bucket` at once, all or none.
    ///
    /// # Errors
    /// [`KvError::QuotaExceeded`], [`KvError::InvalidName`], [`KvError::Storage`].
    pub fn set_many(
        &self,
        plugin: &str,
        quota: u64,
        bucket: &str,
        pairs: &[(String, Vec<u8>)],
    ) -> Result<(), KvError> {
        let keys = pairs
            .iter()
            .map(|(k, _)| full_key(bucket, k))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(plugin, quota, |t| {
            let mut delta = 0i64;
            for (k, (_, v)) in keys.iter().zip(pairs) {
                let old = t.insert(k.as_str(), v.as_slice()).map_err(storage)?;
                delta += (k.len() + v.len()) as i64;
                if let Some(old) = old {
                    delta -= (k.len() + old.value().len()) as i64;
                }
            }
            Ok(((), delta))
        })
    }

    /// Sets `key` in `bucket`.
    ///
    /// # Errors
    /// As [`set_many`](Self::set_many).
    pub fn set(
        &self,
        plugin: &str,
        quota: u64,
        bucket: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), KvError> {
        self.set_many(plugin, quota, bucket, &[(key.to_owned(), value.to_vec())])
    }

    /// Deletes keys of `bucket` (absent ones are no error).
    ///
    /// # Errors
    /// [`KvError::InvalidName`], [`KvError::Storage`].
    pub fn delete_many(&self, plugin: &str, bucket: &str, keys: &[String]) -> Result<(), KvError> {
        let keys = keys
            .iter()
            .map(|k| full_key(bucket, k))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(plugin, u64::MAX, |t| {
            let mut delta = 0i64;
            for k in &keys {
                if let Some(old) = t.remove(k.as_str()).map_err(storage)? {
                    delta -= (k.len() + old.value().len()) as i64;
                }
            }
            Ok(((), delta))
        })
    }

    /// Up to [`LIST_PAGE`] keys of `bucket` after `cursor` (a key a previous
    /// call returned last), in order, and the cursor to continue from when
    /// there are more.
    ///
    /// # Errors
    /// [`KvError::InvalidName`], [`KvError::Storage`].
    pub fn list_keys(
        &self,
        plugin: &str,
        bucket: &str,
        cursor: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), KvError> {
        check_bucket(bucket)?;
        let txn = self.db.begin_read().map_err(storage)?;
        let name = table_name(plugin);
        let def: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(&name);
        let t = match txn.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), None)),
            Err(e) => return Err(storage(e)),
        };
        let prefix = format!("{bucket}\0");
        // Keys of the bucket sort between `<bucket>\0` and `<bucket>\x01`.
        let end = format!("{bucket}\u{1}");
        let start = match cursor {
            Some(c) => format!("{prefix}{c}"),
            None => prefix.clone(),
        };
        let mut keys = Vec::new();
        let mut more = false;
        for row in t.range(start.as_str()..end.as_str()).map_err(storage)? {
            let (k, _) = row.map_err(storage)?;
            let key = &k.value()[prefix.len()..];
            if Some(key) == cursor {
                continue;
            }
            if keys.len() == LIST_PAGE {
                more = true;
                break;
            }
            keys.push(key.to_owned());
        }
        let next = more.then(|| keys.last().cloned()).flatten();
        Ok((keys, next))
    }

    /// Adds `delta` to the counter at `key` (absent: 0) and returns the new
    /// value, atomically.
    ///
    /// # Errors
    /// [`KvError::NotACounter`] when the value is not a decimal integer or
    /// the sum overflows; [`KvError::QuotaExceeded`], [`KvError::Storage`].
    pub fn increment(
        &self,
        plugin: &str,
        quota: u64,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64, KvError> {
        let k = full_key(bucket, key)?;
        self.write(plugin, quota, |t| {
            let old = read(t, &k)?;
            let current = match &old {
                None => 0,
                Some(bytes) => std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .ok_or_else(|| {
                        KvError::NotACounter(format!(
                            "the value of `{key}` is not a decimal integer"
                        ))
                    })?,
            };
            let new = current.checked_add(delta).ok_or_else(|| {
                KvError::NotACounter(format!("`{key}`: {current} + {delta} overflows"))
            })?;
            let text = new.to_string();
            Ok((new, replace(t, &k, old.as_deref(), text.as_bytes())?))
        })
    }

    /// Sets `key` to `value` if its value is still `expected` (`None`:
    /// absent), atomically.
    ///
    /// # Errors
    /// [`KvError::QuotaExceeded`], [`KvError::InvalidName`], [`KvError::Storage`].
    pub fn swap(
        &self,
        plugin: &str,
        quota: u64,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Swap, KvError> {
        let k = full_key(bucket, key)?;
        self.write(plugin, quota, |t| {
            let old = read(t, &k)?;
            if old.as_deref() != expected {
                return Ok((Swap::Changed(old), 0));
            }
            Ok((Swap::Swapped, replace(t, &k, old.as_deref(), value)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_persist_across_reopen_and_sizes_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = KeyValueDb::open(dir.path(), Durability::Immediate).unwrap();
            db.set("p", 1 << 20, "default", "a", b"12345").unwrap();
            db.set("p", 1 << 20, "other", "a", b"x").unwrap();
            assert_eq!(db.size("p").unwrap(), (9 + 5) + (7 + 1));
            db.set("p", 1 << 20, "default", "a", b"1").unwrap();
            assert_eq!(db.size("p").unwrap(), (9 + 1) + (7 + 1));
        }
        let db = KeyValueDb::open(dir.path(), Durability::Immediate).unwrap();
        let again = KeyValueDb::open(dir.path(), Durability::Immediate).unwrap();
        assert!(Arc::ptr_eq(&db, &again), "one handle per file and process");
        assert_eq!(db.get("p", "default", "a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(db.get("p", "other", "a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(db.get("q", "default", "a").unwrap(), None);
        assert_eq!(db.size("p").unwrap(), 18);
        assert_eq!(db.plugins().unwrap(), vec!["p".to_owned()]);
    }

    #[test]
    fn a_write_over_the_quota_changes_nothing() {
        let db = KeyValueDb::in_memory();
        db.set("p", 20, "b", "k", b"0123456789").unwrap();
        let err = db.set("p", 20, "b", "k2", b"0123456789").unwrap_err();
        assert!(
            matches!(
                err,
                KvError::QuotaExceeded {
                    would_be: 27,
                    quota: 20,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(db.get("p", "b", "k2").unwrap(), None);
        assert_eq!(db.size("p").unwrap(), 13);
        // Shrinking is always allowed.
        db.set("p", 1, "b", "k", b"").unwrap();
        db.delete_many("p", "b", &["k".into()]).unwrap();
        assert_eq!(db.size("p").unwrap(), 0);
    }

    #[test]
    fn counters_and_compare_and_swap() {
        let db = KeyValueDb::in_memory();
        assert_eq!(db.increment("p", 1000, "b", "n", 5).unwrap(), 5);
        assert_eq!(db.increment("p", 1000, "b", "n", -2).unwrap(), 3);
        assert_eq!(db.get("p", "b", "n").unwrap(), Some(b"3".to_vec()));
        db.set("p", 1000, "b", "s", b"text").unwrap();
        assert!(matches!(
            db.increment("p", 1000, "b", "s", 1),
            Err(KvError::NotACounter(_))
        ));
        assert_eq!(
            db.swap("p", 1000, "b", "c", None, b"v1").unwrap(),
            Swap::Swapped
        );
        assert_eq!(
            db.swap("p", 1000, "b", "c", None, b"v2").unwrap(),
            Swap::Changed(Some(b"v1".to_vec()))
        );
        assert_eq!(
            db.swap("p", 1000, "b", "c", Some(b"v1"), b"v2").unwrap(),
            Swap::Swapped
        );
        assert_eq!(db.get("p", "b", "c").unwrap(), Some(b"v2".to_vec()));
    }

    #[test]
    fn keys_are_listed_per_bucket_in_pages() {
        let db = KeyValueDb::in_memory();
        let pairs: Vec<(String, Vec<u8>)> = (0..LIST_PAGE + 5)
            .map(|i| (format!("k{i:05}"), vec![1]))
            .collect();
        db.set_many("p", u64::MAX, "b", &pairs).unwrap();
        db.set("p", u64::MAX, "b2", "other", b"x").unwrap();
        let (first, cursor) = db.list_keys("p", "b", None).unwrap();
        assert_eq!(first.len(), LIST_PAGE);
        assert_eq!(first[0], "k00000");
        let (rest, end) = db.list_keys("p", "b", cursor.as_deref()).unwrap();
        assert_eq!(rest.len(), 5);
        assert_eq!(rest[0], format!("k{LIST_PAGE:05}"));
        assert_eq!(end, None);
        assert!(check_bucket("").is_err());
    }
}
