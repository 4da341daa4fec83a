//! `wasi:keyvalue` (0.2.0-draft2: `store`, `atomics`, `batch`) for
//! plugins, over the host's plugin state database
//! ([`crate::store::kv::KeyValueDb`]): each plugin sees only its own
//! table, whatever bucket it opens.
//!
//! - `store.open(name)` opens a bucket of the plugin's state (any name of 1
//!   to 64 bytes; `"default"` by convention). Opening never fails for a
//!   valid name: buckets exist once a key is set in them.
//! - Every write is committed durably before it returns, and counted
//!   against `[limits] state_mb`; a write over the quota fails with
//!   `error::other` naming the quota and changes nothing.
//! - `atomics.increment` keeps the counter as decimal text; `cas.new`
//!   reads the current value, `swap` writes only if it is unchanged (whole
//!   value compared) and otherwise fails with `cas-failed` holding a fresh
//!   `cas` of the value found.

use wasmtime::component::Resource;

use super::bindings::keyvalue::wasi::keyvalue::{atomics, batch, store};
use super::state::PluginState;
use crate::store::kv::{KvError, Swap};

/// An open bucket: its name.
#[derive(Debug)]
pub struct Bucket {
    name: String,
}

/// A compare-and-swap in progress: the key and the value read.
#[derive(Debug)]
pub struct Cas {
    bucket: String,
    key: String,
    current: Option<Vec<u8>>,
}

fn to_wit(e: KvError) -> store::Error {
    store::Error::Other(e.to_string())
}

fn table_error(e: wasmtime::component::ResourceTableError) -> store::Error {
    store::Error::Other(format!("resource table: {e}"))
}

impl PluginState {
    fn quota(&self) -> u64 {
        self.ctx
            .manifest
            .limits
            .state_mb
            .saturating_mul(1024 * 1024)
    }

    fn bucket_name(&self, b: &Resource<Bucket>) -> Result<String, store::Error> {
        Ok(self.table.get(b).map_err(table_error)?.name.clone())
    }
}

impl store::Host for PluginState {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, store::Error> {
        crate::store::kv::check_bucket(&identifier).map_err(to_wit)?;
        self.table
            .push(Bucket { name: identifier })
            .map_err(table_error)
    }
}

impl store::HostBucket for PluginState {
    fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        let b = self.bucket_name(&bucket)?;
        self.ctx
            .state_db
            .get(self.ctx.name(), &b, &key)
            .map_err(to_wit)
    }

    fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        let b = self.bucket_name(&bucket)?;
        self.ctx
            .state_db
            .set(self.ctx.name(), self.quota(), &b, &key, &value)
            .map_err(to_wit)
    }

    fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), store::Error> {
        let b = self.bucket_name(&bucket)?;
        self.ctx
            .state_db
            .delete_many(self.ctx.name(), &b, &[key])
            .map_err(to_wit)
    }

    fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, store::Error> {
        Ok(self.get(bucket, key)?.is_some())
    }

    fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, store::Error> {
        let b = self.bucket_name(&bucket)?;
        let (keys, cursor) = self
            .ctx
            .state_db
            .list_keys(self.ctx.name(), &b, cursor.as_deref())
            .map_err(to_wit)?;
        Ok(store::KeyResponse { keys, cursor })
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for PluginState {
    fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Result<i64, store::Error> {
        let b = self.bucket_name(&bucket)?;
        self.ctx
            .state_db
            .increment(self.ctx.name(), self.quota(), &b, &key, delta)
            .map_err(to_wit)
    }

    fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let cas = self
            .table
            .delete(cas)
            .map_err(|e| atomics::CasError::StoreError(table_error(e)))?;
        let outcome = self
            .ctx
            .state_db
            .swap(
                self.ctx.name(),
                self.quota(),
                &cas.bucket,
                &cas.key,
                cas.current.as_deref(),
                &value,
            )
            .map_err(|e| atomics::CasError::StoreError(to_wit(e)))?;
        match outcome {
            Swap::Swapped => Ok(()),
            Swap::Changed(current) => {
                let fresh = self
                    .table
                    .push(Cas { current, ..cas })
                    .map_err(|e| atomics::CasError::StoreError(table_error(e)))?;
                Err(atomics::CasError::CasFailed(fresh))
            }
        }
    }
}

impl atomics::HostCas for PluginState {
    fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Resource<Cas>, store::Error> {
        let b = self.bucket_name(&bucket)?;
        let current = self
            .ctx
            .state_db
            .get(self.ctx.name(), &b, &key)
            .map_err(to_wit)?;
        self.table
            .push(Cas {
                bucket: b,
                key,
                current,
            })
            .map_err(table_error)
    }

    fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>, store::Error> {
        Ok(self.table.get(&cas).map_err(table_error)?.current.clone())
    }

    fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for PluginState {
    fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, store::Error> {
        let b = self.bucket_name(&bucket)?;
        keys.into_iter()
            .map(|k| {
                let v = self
                    .ctx
                    .state_db
                    .get(self.ctx.name(), &b, &k)
                    .map_err(to_wit)?;
                Ok(v.map(|v| (k, v)))
            })
            .collect()
    }

    fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        let b = self.bucket_name(&bucket)?;
        self.ctx
            .state_db
            .set_many(self.ctx.name(), self.quota(), &b, &key_values)
            .map_err(to_wit)
    }

    fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), store::Error> {
        let b = self.bucket_name(&bucket)?;
        self.ctx
            .state_db
            .delete_many(self.ctx.name(), &b, &keys)
            .map_err(to_wit)
    }
}
