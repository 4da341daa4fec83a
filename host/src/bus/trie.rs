//! A segment trie of wildcard patterns.
//!
//! Matching a topic walks the trie once per segment, following the literal
//! child, the `*` child and collecting `>` entries: the cost depends on the
//! topic's depth and on how many *distinct* patterns match, not on the number
//! of pattern subscriptions stored.

use std::collections::HashMap;

use smallvec::SmallVec;

use super::topic::Segment;

/// Entries stored at the node of one pattern.
#[derive(Debug)]
struct Node<V> {
    literal: HashMap<Box<str>, Node<V>>,
    star: Option<Box<Node<V>>>,
    /// Entries of patterns that end here with `>`.
    rest: Vec<V>,
    /// Entries of patterns that end exactly here.
    here: Vec<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            literal: HashMap::new(),
            star: None,
            rest: Vec::new(),
            here: Vec::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.star.is_none()
            && self.rest.is_empty()
            && self.here.is_empty()
    }
}

/// Wildcard patterns mapped to values (subscription targets).
#[derive(Debug)]
pub(crate) struct PatternTrie<V> {
    root: Node<V>,
    len: usize,
}

impl<V> Default for PatternTrie<V> {
    fn default() -> Self {
        PatternTrie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> PatternTrie<V> {
    /// Number of stored entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no pattern is stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` under `pattern`.
    pub(crate) fn insert(&mut self, pattern: &[Segment], value: V) {
        let mut node = &mut self.root;
        for seg in pattern {
            node = match seg {
                Segment::Literal(l) => node.literal.entry(l.clone()).or_default(),
                Segment::Star => node.star.get_or_insert_with(Default::default),
                Segment::Rest => {
                    node.rest.push(value);
                    self.len += 1;
                    return;
                }
            };
        }
        node.here.push(value);
        self.len += 1;
    }

    /// Removes the entries under `pattern` for which `remove` is true; returns
    /// how many were removed. Empty nodes are pruned.
    pub(crate) fn remove(
        &mut self,
        pattern: &[Segment],
        mut remove: impl FnMut(&V) -> bool,
    ) -> usize {
        let removed = Self::remove_in(&mut self.root, pattern, &mut remove);
        self.len -= removed;
        removed
    }

    fn remove_in(
        node: &mut Node<V>,
        pattern: &[Segment],
        remove: &mut impl FnMut(&V) -> bool,
    ) -> usize {
        let Some((seg, tail)) = pattern.split_first() else {
            let before = node.here.len();
            node.here.retain(|v| !remove(v));
            return before - node.here.len();
        };
        match seg {
            Segment::Rest => {
                let before = node.rest.len();
                node.rest.retain(|v| !remove(v));
                before - node.rest.len()
            }
            Segment::Star => {
                let Some(child) = node.star.as_deref_mut() else {
                    return 0;
                };
                let n = Self::remove_in(child, tail, remove);
                if child.is_empty() {
                    node.star = None;
                }
                n
            }
            Segment::Literal(l) => {
                let Some(child) = node.literal.get_mut(l) else {
                    return 0;
                };
                let n = Self::remove_in(child, tail, remove);
                if child.is_empty() {
                    node.literal.remove(l);
                }
                n
            }
        }
    }

    /// Calls `f` for every entry whose pattern matches `topic` (a valid topic).
    pub(crate) fn for_each_match<'a>(&'a self, topic: &str, f: &mut impl FnMut(&'a V)) {
        // Topics rarely have more than 8 segments: no allocation for those.
        // Pushed one by one: `collect()` measured 1.3-1.8x slower for short
        // topics (docs/benchmarks.md, issue #13).
        let mut segments: SmallVec<[&str; 8]> = SmallVec::new();
        for segment in topic.split(':') {
            segments.push(segment);
        }
        Self::walk(&self.root, &segments, f);
    }

    fn walk<'a>(node: &'a Node<V>, segs: &[&str], f: &mut impl FnMut(&'a V)) {
        let Some((first, tail)) = segs.split_first() else {
            node.here.iter().for_each(&mut *f);
            return;
        };
        // `>` needs at least one remaining segment, which `first` is.
        node.rest.iter().for_each(&mut *f);
        if let Some(child) = node.literal.get(*first) {
            Self::walk(child, tail, f);
        }
        if let Some(child) = node.star.as_deref() {
            Self::walk(child, tail, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::topic::Pattern;

    fn segs(p: &str) -> Vec<Segment> {
        match Pattern::parse(p).unwrap() {
            Pattern::Wildcard(s) => s.to_vec(),
            Pattern::Exact(_) => panic!("{p} is exact"),
        }
    }

    fn matches(t: &PatternTrie<u32>, topic: &str) -> Vec<u32> {
        let mut out = vec![];
        t.for_each_match(topic, &mut |v| out.push(*v));
        out.sort();
        out
    }

    #[test]
    fn matches_like_pattern_matches() {
        let patterns = ["a:*", "a:>", "*:b", ">", "a:*:c", "*:*:*:*:*:*:*:*:*:>"];
        let mut t = PatternTrie::default();
        for (i, p) in patterns.iter().enumerate() {
            t.insert(&segs(p), i as u32);
        }
        for topic in [
            "a",
            "a:b",
            "a:b:c",
            "x:b",
            "a:x:c:d",
            "1:2:3:4:5:6:7:8:9:10:11",
        ] {
            let expected: Vec<u32> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| Pattern::parse(p).unwrap().matches(topic))
                .map(|(i, _)| i as u32)
                .collect();
            assert_eq!(matches(&t, topic), expected, "topic {topic}");
        }
    }

    #[test]
    fn remove_prunes_and_counts() {
        let mut t = PatternTrie::default();
        t.insert(&segs("a:*:c"), 1);
        t.insert(&segs("a:*:c"), 2);
        t.insert(&segs("a:>"), 3);
        assert_eq!(t.len(), 3);
        assert_eq!(t.remove(&segs("a:*:c"), |v| *v == 1), 1);
        assert_eq!(matches(&t, "a:b:c"), vec![2, 3]);
        assert_eq!(t.remove(&segs("a:*:c"), |_| true), 1);
        assert_eq!(t.remove(&segs("a:>"), |_| true), 1);
        assert!(t.is_empty());
        assert!(t.root.is_empty(), "empty nodes are pruned");
        assert_eq!(t.remove(&segs("z:*"), |_| true), 0);
    }
}
