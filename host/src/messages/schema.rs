//! Schema versions of the message kinds, and the rule a reader applies to a
//! version it meets (the policy is `docs/compatibility.md`).
//!
//! Every spec kind has its own version `major.minor`:
//! - a **minor** bump is additive: new optional fields (`#[serde(default)]`),
//!   never a removed, renamed or retyped field. Readers of any minor of the
//!   same major decode it: unknown fields are ignored, missing optional
//!   fields take their defaults.
//! - a **major** bump is breaking. A reader refuses a payload of a newer
//!   major than it knows with [`MessageError::UnsupportedSchemaVersion`],
//!   naming the kind and both versions, instead of guessing at its meaning.
//!
//! On the wire the envelope carries the major in `schema_version` (an
//! integer, `1` for every kind today, as stamped since the first release
//! and as the WIT `message.schema-version` carries it) and the minor in
//! `schema_minor`, left out when it is 0 — so an envelope of a `x.0` kind
//! serialises exactly as before minors existed.

use std::fmt;

use super::MessageError;

/// The major schema version of every kind that has not been bumped, and of
/// `custom.*` and store-event kinds (whose payloads have no host schema).
pub const SCHEMA_VERSION: u32 = 1;

/// A kind's schema version, `major.minor` (shown as `"1.0"`).
///
/// Ordered by major, then minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaVersion {
    /// Bumped by a breaking change; a reader refuses a newer one.
    pub major: u32,
    /// Bumped by an additive change; a reader accepts any.
    pub minor: u32,
}

impl SchemaVersion {
    /// The version of every kind not bumped yet: `1.0`.
    pub const INITIAL: SchemaVersion = SchemaVersion::new(SCHEMA_VERSION, 0);

    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> SchemaVersion {
        SchemaVersion { major, minor }
    }

    /// Whether a reader of this version can decode a payload of `found`:
    /// `found`'s major is not newer. Any minor is readable; an older major
    /// is decoded with this version's struct (fields that a newer major
    /// removed are ignored, ones it added take their defaults).
    pub const fn reads(self, found: SchemaVersion) -> bool {
        found.major <= self.major
    }

    /// `Ok` when a reader of this version (`self`) can decode `found` for
    /// `kind`.
    ///
    /// # Errors
    /// [`MessageError::UnsupportedSchemaVersion`] naming `kind`, `found` and
    /// this version, when `found`'s major is newer.
    pub fn check(self, kind: &str, found: SchemaVersion) -> Result<(), MessageError> {
        if self.reads(found) {
            Ok(())
        } else {
            Err(MessageError::UnsupportedSchemaVersion {
                kind: kind.to_owned(),
                found,
                supported: self,
            })
        }
    }
}

impl Default for SchemaVersion {
    fn default() -> Self {
        SchemaVersion::INITIAL
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_and_display_as_major_dot_minor() {
        let v = SchemaVersion::new(1, 3);
        assert_eq!(v.to_string(), "1.3");
        assert_eq!(SchemaVersion::default().to_string(), "1.0");
        assert!(SchemaVersion::new(1, 9) < SchemaVersion::new(2, 0));
        assert!(SchemaVersion::new(1, 0) < v);
    }

    #[test]
    fn a_reader_takes_any_minor_and_no_newer_major() {
        let reader = SchemaVersion::new(1, 2);
        for ok in [(0, 7), (1, 0), (1, 2), (1, 99)] {
            let found = SchemaVersion::new(ok.0, ok.1);
            assert!(reader.reads(found), "{found}");
            reader.check("NodeHealth", found).unwrap();
        }
        let err = reader
            .check("NodeHealth", SchemaVersion::new(2, 0))
            .unwrap_err();
        assert_eq!(
            err,
            MessageError::UnsupportedSchemaVersion {
                kind: "NodeHealth".into(),
                found: SchemaVersion::new(2, 0),
                supported: reader,
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("`NodeHealth`") && text.contains("2.0") && text.contains("1.2"),
            "{text}"
        );
    }
}
