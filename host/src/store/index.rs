//! The stream index: where each stream's events are in `$all`.
//!
//! An append writes its events with consecutive event numbers at consecutive
//! global positions, so the index keeps one entry per append, not per event:
//! `(stream, first event number) → (first global position, event count)`.
//! Event `n` of a stream is in the entry with the greatest key `≤ (stream, n)`,
//! at position `first_position + (n - first_number)`. A batch of 100 events
//! costs one index insert instead of 100.

use redb::{ReadableTable, TableDefinition};

use super::error::StoreError;
use super::keys::{StrKey, U64Pair};

/// `(stream, first event number of an append) → (first global position, count)`.
pub(crate) const STREAM_INDEX: TableDefinition<'_, StrKey<u64>, U64Pair> =
    TableDefinition::new("stream_index");

/// Maps an engine error of a stream read to a [`StoreError`].
fn err<'a>(store: &'a str, stream: &'a str) -> impl Fn(redb::StorageError) -> StoreError + 'a {
    move |e| StoreError::db(store, format!("reading the index of stream {stream:?}"), e)
}

/// The key number of the entry holding event `n` of `stream` (or of the
/// entry before it), if any.
fn entry_at_or_before<T: ReadableTable<StrKey<u64>, U64Pair>>(
    index: &T,
    store: &str,
    stream: &str,
    n: u64,
) -> Result<Option<(u64, u64, u64)>, StoreError> {
    let e = err(store, stream);
    let last = index
        .range((stream, 0)..=(stream, n))
        .map_err(&e)?
        .next_back();
    match last {
        Some(item) => {
            let (k, v) = item.map_err(&e)?;
            let (pos, count) = v.value();
            Ok(Some((k.value().1, pos, count)))
        }
        None => Ok(None),
    }
}

/// The global position of event `n` of `stream`, if it exists.
pub(crate) fn position_of<T: ReadableTable<StrKey<u64>, U64Pair>>(
    index: &T,
    store: &str,
    stream: &str,
    n: u64,
) -> Result<Option<u64>, StoreError> {
    Ok(entry_at_or_before(index, store, stream, n)?
        .and_then(|(first, pos, count)| (n - first < count).then(|| pos + (n - first))))
}

/// Up to `limit` `(event number, global position)` pairs of `stream`,
/// ascending from event number `from`.
pub(crate) fn forward<T: ReadableTable<StrKey<u64>, U64Pair>>(
    index: &T,
    store: &str,
    stream: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let e = err(store, stream);
    let start = entry_at_or_before(index, store, stream, from)?.map_or(0, |(k, _, _)| k);
    for item in index
        .range((stream, start)..=(stream, u64::MAX))
        .map_err(&e)?
    {
        let (k, v) = item.map_err(&e)?;
        let first = k.value().1;
        let (pos, count) = v.value();
        for i in from.saturating_sub(first)..count {
            out.push((first + i, pos + i));
            if out.len() == limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Up to `limit` `(event number, global position)` pairs of `stream`,
/// descending from event number `from` (`u64::MAX`: from the last).
pub(crate) fn backward<T: ReadableTable<StrKey<u64>, U64Pair>>(
    index: &T,
    store: &str,
    stream: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let e = err(store, stream);
    for item in index.range((stream, 0)..=(stream, from)).map_err(&e)?.rev() {
        let (k, v) = item.map_err(&e)?;
        let first = k.value().1;
        let (pos, count) = v.value();
        if count == 0 {
            continue;
        }
        let last = (first + (count - 1)).min(from);
        for n in (first..=last).rev() {
            out.push((n, pos + (n - first)));
            if out.len() == limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// The smallest event number of `stream` (version `version`) whose global
/// position is at least `position` (`version + 1` if none): positions grow
/// with event numbers, so a binary search.
pub(crate) fn first_at_or_after<T: ReadableTable<StrKey<u64>, U64Pair>>(
    index: &T,
    store: &str,
    stream: &str,
    version: u64,
    position: u64,
) -> Result<u64, StoreError> {
    let (mut lo, mut hi) = (0u64, version + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let pos = position_of(index, store, stream, mid)?.ok_or_else(|| StoreError::Corrupt {
            store: store.to_owned(),
            detail: format!("stream {stream:?}: event {mid} missing from the index"),
        })?;
        if pos < position {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}
