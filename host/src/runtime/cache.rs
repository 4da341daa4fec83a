//! The on-disk cache of compiled components.
//!
//! An entry is keyed by the SHA-256 of the component's bytes and a hash of
//! the engine's compilation settings (which include wasmtime's version), so
//! an unchanged file skips compilation across restarts and reloads, and a
//! different engine never loads another's code. Each entry
//! (`<key>.cwasm`) has a SHA-256 digest beside it (`<key>.sha256`) that is
//! checked before the entry is deserialised: a corrupted or truncated entry
//! is reported, removed and rebuilt, never trusted.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Counters of cache use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Components loaded from the cache.
    pub hits: u64,
    /// Components compiled (no entry, or no cache).
    pub misses: u64,
    /// Entries found corrupted and rebuilt.
    pub rebuilt: u64,
    /// Loads that used the component a live plugin loaded from the same
    /// bytes already had in memory (neither the cache nor the compiler).
    pub shared: u64,
}

/// The compiled-component cache of one engine.
#[derive(Debug)]
pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: String,
    hits: AtomicU64,
    misses: AtomicU64,
    rebuilt: AtomicU64,
    shared: AtomicU64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ComponentCache {
    /// A cache in `dir` (created if missing); `None` disables caching.
    pub(crate) fn new(engine: &Engine, dir: Option<&Path>) -> ComponentCache {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let dir = dir.and_then(|d| match std::fs::create_dir_all(d) {
            Ok(()) => Some(d.to_owned()),
            Err(e) => {
                tracing::warn!(
                    "component cache disabled: cannot create {}: {e}",
                    d.display()
                );
                None
            }
        });
        ComponentCache {
            dir,
            engine_key: format!("{:016x}", h.finish()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            rebuilt: AtomicU64::new(0),
            shared: AtomicU64::new(0),
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            rebuilt: self.rebuilt.load(Ordering::Relaxed),
            shared: self.shared.load(Ordering::Relaxed),
        }
    }

    /// Counts a load served by a component already in memory.
    pub(crate) fn count_shared(&self) {
        self.shared.fetch_add(1, Ordering::Relaxed);
    }

    /// The entry path for the component whose bytes have SHA-256 `digest`
    /// (without extension).
    pub(crate) fn entry(&self, digest: &[u8; 32]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{}-{}", hex(digest), self.engine_key)))
    }

    /// Loads the component whose bytes have SHA-256 `digest` compiled,
    /// from the cache when a valid entry exists, otherwise compiling it with
    /// `compile` and storing the result.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        plugin: &str,
        digest: &[u8; 32],
        compile: impl FnOnce() -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<Component> {
        let Some(entry) = self.entry(digest) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return compile();
        };
        let code_path = entry.with_extension("cwasm");
        let digest_path = entry.with_extension("sha256");
        if let Ok(code) = std::fs::read(&code_path) {
            let expected = std::fs::read_to_string(&digest_path).unwrap_or_default();
            if hex(&Sha256::digest(&code)) == expected.trim() {
                // SAFETY: the bytes were produced by `Component::serialize` of
                // an engine with the same compilation settings (the key
                // includes them) and are byte-for-byte what was written, as
                // the digest check above proves.
                match unsafe { Component::deserialize(engine, &code) } {
                    Ok(c) => {
                        self.hits.fetch_add(1, Ordering::Relaxed);
                        return Ok(c);
                    }
                    Err(e) => tracing::warn!(
                        plugin,
                        "cached component {} unusable ({e:#}); rebuilding",
                        code_path.display()
                    ),
                }
            } else {
                tracing::warn!(
                    plugin,
                    "cached component {} is corrupted (digest mismatch); rebuilding",
                    code_path.display()
                );
            }
            self.rebuilt.fetch_add(1, Ordering::Relaxed);
            let _ = std::fs::remove_file(&code_path);
            let _ = std::fs::remove_file(&digest_path);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let component = compile()?;
        if let Err(e) = store(&component, &code_path, &digest_path) {
            tracing::warn!(
                plugin,
                "cannot write component cache entry {}: {e:#}",
                code_path.display()
            );
        }
        Ok(component)
    }
}

/// Writes an entry atomically: temp files, then renames (digest last).
fn store(component: &Component, code_path: &Path, digest_path: &Path) -> anyhow::Result<()> {
    let code = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let tmp = code_path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &code)?;
    std::fs::rename(&tmp, code_path)?;
    let tmp = digest_path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, hex(&Sha256::digest(&code)))?;
    std::fs::rename(&tmp, digest_path)?;
    Ok(())
}
