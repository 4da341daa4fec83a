//! What every bench shares: the binary's allocator, and the median that
//! turns alternating rounds into one figure.
#![allow(dead_code)]

/// The allocator the `exesdb-host` binary ships with (see `host/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The median of `v` (the upper one for an even count); `v` must not be empty.
pub fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|x, y| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}
