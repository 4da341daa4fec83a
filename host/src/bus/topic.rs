//! Topics and subscription patterns.
//!
//! A topic is a non-empty string of `:`-separated, non-empty segments, e.g.
//! `store_health:my_store` or `my_store:stream_name`. A pattern is a topic in
//! which a segment may be `*` (exactly one segment) and the last segment may be
//! `>` (one or more segments). A pattern without wildcards is an exact topic and
//! is looked up by hash; wildcard patterns live in a trie.

use std::fmt;
use std::sync::Arc;

/// Longest accepted topic or pattern, in bytes.
pub const MAX_TOPIC_LEN: usize = 1024;

/// Why a topic or pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is the empty string.
    #[error("invalid topic ``: a topic must not be empty")]
    Empty,
    /// Longer than [`MAX_TOPIC_LEN`].
    #[error("invalid topic `{topic}…`: longer than {MAX_TOPIC_LEN} bytes")]
    TooLong {
        /// The first 32 characters.
        topic: String,
    },
    /// Two `:` in a row, or a leading/trailing `:`.
    #[error("invalid topic `{0}`: empty segment (`::`, or a leading or trailing `:`)")]
    EmptySegment(String),
    /// Whitespace or a control character.
    #[error("invalid topic `{0}`: whitespace and control characters are not allowed")]
    BadCharacter(String),
    /// `*` or `>` in a topic that is published to (only patterns may hold them).
    #[error(
        "invalid topic `{0}`: wildcards `*` and `>` are only allowed in subscription patterns"
    )]
    WildcardInTopic(String),
    /// `*`/`>` mixed with other characters in one segment, or `>` not last.
    #[error(
        "invalid pattern `{0}`: `*` must be a whole segment and `>` must be the whole last segment"
    )]
    MisplacedWildcard(String),
}

/// Checks what topics and patterns share; returns whether `s` holds a
/// wildcard character (`*` or `>`), found in the same pass.
fn check_common(s: &str) -> Result<bool, TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong {
            topic: s.chars().take(32).collect(),
        });
    }
    // One pass over the bytes for the common (ASCII) case.
    let bytes = s.as_bytes();
    let mut prev_colon = true;
    let mut wildcard = false;
    for &b in bytes {
        wildcard |= b == b'*' || b == b'>';
        if b.is_ascii_whitespace() || b.is_ascii_control() || b == 0x0b {
            return Err(TopicError::BadCharacter(s.to_owned()));
        }
        if b == b':' {
            if prev_colon {
                return Err(TopicError::EmptySegment(s.to_owned()));
            }
            prev_colon = true;
        } else {
            prev_colon = false;
        }
    }
    if prev_colon {
        return Err(TopicError::EmptySegment(s.to_owned()));
    }
    if !s.is_ascii() && s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TopicError::BadCharacter(s.to_owned()));
    }
    Ok(wildcard)
}

/// Checks a topic that messages are published to: no wildcards.
///
/// # Errors
/// A [`TopicError`] naming the topic and the cause.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    if check_common(topic)? {
        return Err(TopicError::WildcardInTopic(topic.to_owned()));
    }
    Ok(())
}

/// One segment of a wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches this exact segment.
    Literal(Box<str>),
    /// `*`: matches any one segment.
    Star,
    /// `>`: matches one or more trailing segments (last position only).
    Rest,
}

/// A parsed subscription pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// No wildcard: matched by hash lookup.
    Exact(Arc<str>),
    /// At least one wildcard: matched through the pattern trie.
    Wildcard(Arc<[Segment]>),
}

impl Pattern {
    /// Parses and validates a pattern.
    ///
    /// # Errors
    /// A [`TopicError`] naming the pattern and the cause.
    pub fn parse(pattern: &str) -> Result<Pattern, TopicError> {
        if !check_common(pattern)? {
            return Ok(Pattern::Exact(Arc::from(pattern)));
        }
        let parts: Vec<&str> = pattern.split(':').collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let seg = match *part {
                "*" => Segment::Star,
                ">" if i == last => Segment::Rest,
                p if p.contains(['*', '>']) => {
                    return Err(TopicError::MisplacedWildcard(pattern.to_owned()))
                }
                p => Segment::Literal(p.into()),
            };
            segments.push(seg);
        }
        Ok(Pattern::Wildcard(segments.into()))
    }

    /// Whether `topic` (a valid topic) matches this pattern.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Pattern::Exact(t) => **t == *topic,
            Pattern::Wildcard(segs) => {
                let mut parts = topic.split(':');
                for (i, seg) in segs.iter().enumerate() {
                    match seg {
                        Segment::Rest => return parts.next().is_some() && i == segs.len() - 1,
                        Segment::Star => {
                            if parts.next().is_none() {
                                return false;
                            }
                        }
                        Segment::Literal(l) => {
                            if parts.next() != Some(&**l) {
                                return false;
                            }
                        }
                    }
                }
                parts.next().is_none()
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(t) => f.write_str(t),
            Pattern::Wildcard(segs) => {
                for (i, s) in segs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(":")?;
                    }
                    match s {
                        Segment::Literal(l) => f.write_str(l)?,
                        Segment::Star => f.write_str("*")?,
                        Segment::Rest => f.write_str(">")?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_topics() {
        for t in [
            "store_health:my_store",
            "my_store:stream_name",
            "a",
            "a:b:c-d.e",
        ] {
            validate_topic(t).unwrap();
        }
    }

    #[test]
    fn rejects_bad_topics_with_the_cause() {
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert!(matches!(validate_topic("a::b"), Err(TopicError::EmptySegment(t)) if t == "a::b"));
        assert!(matches!(
            validate_topic(":a"),
            Err(TopicError::EmptySegment(_))
        ));
        assert!(matches!(
            validate_topic("a:"),
            Err(TopicError::EmptySegment(_))
        ));
        assert!(matches!(
            validate_topic("a b"),
            Err(TopicError::BadCharacter(_))
        ));
        assert!(matches!(
            validate_topic("a:*"),
            Err(TopicError::WildcardInTopic(_))
        ));
        let long = "x".repeat(MAX_TOPIC_LEN + 1);
        assert!(matches!(
            validate_topic(&long),
            Err(TopicError::TooLong { .. })
        ));
        let msg = validate_topic("a::b").unwrap_err().to_string();
        assert!(
            msg.contains("`a::b`") && msg.contains("empty segment"),
            "{msg}"
        );
    }

    #[test]
    fn parses_patterns() {
        assert_eq!(Pattern::parse("a:b").unwrap(), Pattern::Exact("a:b".into()));
        assert_eq!(Pattern::parse("a:*:>").unwrap().to_string(), "a:*:>");
        for bad in ["a:>:b", "a*", "a:b>", ">>", "*x:y"] {
            assert!(
                matches!(Pattern::parse(bad), Err(TopicError::MisplacedWildcard(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn star_matches_exactly_one_segment() {
        let p = Pattern::parse("store_health:*").unwrap();
        assert!(p.matches("store_health:my_store"));
        assert!(!p.matches("store_health"));
        assert!(!p.matches("store_health:a:b"));
        assert!(!p.matches("other:my_store"));
    }

    #[test]
    fn rest_matches_one_or_more_segments() {
        let p = Pattern::parse("subscription_health:>").unwrap();
        assert!(p.matches("subscription_health:s"));
        assert!(p.matches("subscription_health:s:name"));
        assert!(!p.matches("subscription_health"));
        assert!(Pattern::parse(">").unwrap().matches("anything:at:all"));
    }
}
