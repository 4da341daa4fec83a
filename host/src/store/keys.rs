//! redb key and value types for the stream index and the idempotency table
//! that encode, name and order exactly as redb's own tuples `(&str, u64)`,
//! `(&str, u128)` and `(u64, u64)` do — the same bytes on disk and the same
//! table type names, so files written with the tuples open unchanged — but
//! without the tuples' per-call costs: redb's tuple `as_bytes` builds a heap
//! `Vec` (twice per insert) and its `compare` splits both keys through a
//! generic per-element table. These are measured to matter: every appended
//! event costs one insert into the `event_ids` table, whose B-tree search
//! compares `(stream, event id)` keys about a dozen times
//! (docs/benchmarks.md, gateway run 7).
//!
//! A variable-width redb tuple `(A, B)` with `B` fixed-width is encoded as
//! the length of `A` (a redb varint: one byte below 254, else 254 + u16 LE or
//! 255 + u32 LE), `A`'s bytes, then `B`'s bytes; keys order by `A`'s bytes,
//! then by `B`'s value. A fixed-width tuple is its elements' bytes one after
//! the other.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Debug;

use redb::{Key, TypeName, Value};
use smallvec::SmallVec;

/// A key's bytes: stream names are usually short, so inline.
pub(crate) type KeyBytes = SmallVec<[u8; 64]>;

/// Appends redb's varint encoding of `len`.
fn encode_len(len: usize, out: &mut KeyBytes) {
    if len < 254 {
        out.push(len as u8);
    } else if let Ok(l) = u16::try_from(len) {
        out.push(254);
        out.extend_from_slice(&l.to_le_bytes());
    } else {
        out.push(255);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
}

/// Splits an encoded `(&str, fixed)` key into the string's bytes and the rest.
#[inline]
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let (len, header) = match data[0] {
        n @ 0..=253 => (n as usize, 1),
        254 => (u16::from_le_bytes([data[1], data[2]]) as usize, 3),
        255 => (
            u32::from_le_bytes([data[1], data[2], data[3], data[4]]) as usize,
            5,
        ),
    };
    data[header..].split_at(len)
}

/// The fixed-width second element of a `(&str, T)` key.
pub(crate) trait Fixed: Key + Ord + Copy + Debug + 'static {
    const WIDTH: usize;
    fn write(self, out: &mut KeyBytes);
    fn read(data: &[u8]) -> Self;
}

impl Fixed for u64 {
    const WIDTH: usize = 8;
    fn write(self, out: &mut KeyBytes) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(data: &[u8]) -> Self {
        u64::from_le_bytes(data.try_into().expect("8 bytes"))
    }
}

impl Fixed for u128 {
    const WIDTH: usize = 16;
    fn write(self, out: &mut KeyBytes) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(data: &[u8]) -> Self {
        u128::from_le_bytes(data.try_into().expect("16 bytes"))
    }
}

/// `(&str, T)` as redb's tuple encodes and orders it.
#[derive(Debug)]
pub(crate) struct StrKey<T>(std::marker::PhantomData<T>);

impl<T: Fixed> Value for StrKey<T> {
    type SelfType<'a> = (&'a str, T);
    type AsBytes<'a> = KeyBytes;

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> (&'a str, T)
    where
        Self: 'a,
    {
        let (s, rest) = split(data);
        // Keys are only ever written from `&str`s (as redb's tuple assumes).
        let s = std::str::from_utf8(s).expect("a stream name key is UTF-8");
        (s, T::read(rest))
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a (&'b str, T)) -> KeyBytes
    where
        Self: 'b,
    {
        let (s, t) = *value;
        let mut out = KeyBytes::new();
        encode_len(s.len(), &mut out);
        out.extend_from_slice(s.as_bytes());
        t.write(&mut out);
        out
    }

    fn type_name() -> TypeName {
        <(&str, T) as Value>::type_name()
    }
}

impl<T: Fixed> Key for StrKey<T> {
    #[inline]
    fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
        let (s1, t1) = split(data1);
        let (s2, t2) = split(data2);
        s1.cmp(s2).then_with(|| T::read(t1).cmp(&T::read(t2)))
    }

    /// Between keys of different streams, the shortest prefix of the right
    /// one's stream that still sorts above the left key (as `&str`'s own
    /// separator), with the second element 0; otherwise `left`.
    fn separator<'a>(left: &'a [u8], right: &'a [u8]) -> Cow<'a, [u8]> {
        let (l, _) = split(left);
        let (r, _) = split(right);
        let common = l.iter().zip(r).take_while(|(x, y)| x == y).count();
        // Keep the cut on a character boundary (the key must stay a `&str`).
        let mut cut = (common + 1).min(r.len());
        while cut < r.len() && (r[cut] & 0xC0) == 0x80 {
            cut += 1;
        }
        if cut < l.len() && cut < r.len() {
            let mut out = KeyBytes::new();
            encode_len(cut, &mut out);
            out.extend_from_slice(&r[..cut]);
            out.extend(std::iter::repeat_n(0u8, T::WIDTH));
            if out.len() < left.len() {
                return Cow::Owned(out.into_vec());
            }
        }
        Cow::Borrowed(left)
    }
}

/// `(u64, u64)` as redb's fixed-width tuple encodes it.
#[derive(Debug)]
pub(crate) struct U64Pair;

impl Value for U64Pair {
    type SelfType<'a> = (u64, u64);
    type AsBytes<'a> = [u8; 16];

    fn fixed_width() -> Option<usize> {
        Some(16)
    }

    fn from_bytes<'a>(data: &'a [u8]) -> (u64, u64)
    where
        Self: 'a,
    {
        (u64::read(&data[..8]), u64::read(&data[8..16]))
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a (u64, u64)) -> [u8; 16]
    where
        Self: 'b,
    {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&value.0.to_le_bytes());
        out[8..].copy_from_slice(&value.1.to_le_bytes());
        out
    }

    fn type_name() -> TypeName {
        <(u64, u64) as Value>::type_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! same_as_tuple {
        ($t:ty, $keys:expr) => {{
            let keys: &[(&str, $t)] = $keys;
            for k in keys {
                let ours = StrKey::<$t>::as_bytes(k);
                let theirs = <(&str, $t) as Value>::as_bytes(k);
                assert_eq!(ours.as_slice(), theirs.as_slice(), "{k:?}");
                assert_eq!(StrKey::<$t>::from_bytes(&ours), *k);
            }
            for a in keys {
                for b in keys {
                    let (ea, eb) = (StrKey::<$t>::as_bytes(a), StrKey::<$t>::as_bytes(b));
                    assert_eq!(
                        StrKey::<$t>::compare(&ea, &eb),
                        <(&str, $t) as Key>::compare(&ea, &eb),
                        "{a:?} {b:?}"
                    );
                    if StrKey::<$t>::compare(&ea, &eb).is_lt() {
                        let sep = StrKey::<$t>::separator(&ea, &eb);
                        assert!(sep.len() <= ea.len());
                        assert!(StrKey::<$t>::compare(&ea, &sep).is_le(), "{a:?} {b:?}");
                        assert!(StrKey::<$t>::compare(&sep, &eb).is_lt(), "{a:?} {b:?}");
                        // A separator is a valid key.
                        StrKey::<$t>::from_bytes(&sep);
                    }
                }
            }
            assert_eq!(
                StrKey::<$t>::type_name(),
                <(&str, $t) as Value>::type_name()
            );
        }};
    }

    #[test]
    fn keys_encode_name_and_order_as_redb_tuples() {
        let long = "x".repeat(300);
        let longer = "x".repeat(70_000);
        let names = [
            "",
            "a",
            "ab",
            "abc",
            "b",
            "orders-1",
            "orders-10",
            "orders-2",
            "é",
            "éa",
            "ü",
            &long,
            &longer,
        ];
        let mut k64 = Vec::new();
        let mut k128 = Vec::new();
        for n in names {
            for v in [0u64, 1, 255, 256, u64::MAX - 1, u64::MAX] {
                k64.push((n, v));
                k128.push((n, v as u128));
                k128.push((n, (v as u128) << 64 | 7));
            }
        }
        same_as_tuple!(u64, &k64);
        same_as_tuple!(u128, &k128);
    }

    #[test]
    fn pairs_encode_and_name_as_redb_tuples() {
        for v in [(0u64, 0u64), (1, 2), (u64::MAX, 3)] {
            assert_eq!(
                U64Pair::as_bytes(&v),
                <(u64, u64) as Value>::as_bytes(&v).as_ref()
            );
            assert_eq!(U64Pair::from_bytes(&U64Pair::as_bytes(&v)), v);
        }
        assert_eq!(U64Pair::type_name(), <(u64, u64) as Value>::type_name());
    }
}
