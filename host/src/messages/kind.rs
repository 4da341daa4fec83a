//! The [`MessageKind`] trait: ties a typed payload to its kind name, channel
//! and schema version.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Channel;
use super::SchemaVersion;

/// A typed message payload of one of the spec's message types.
///
/// Every kind belongs to exactly one channel; publishing it on any other
/// channel is an error ([`MessageError::WrongChannel`](super::MessageError)).
pub trait MessageKind: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The spec's type name, e.g. `"NodeHealth"`. It is the envelope's `kind`.
    const KIND: &'static str;
    /// The one channel this kind may be published on.
    const CHANNEL: Channel;
    /// The version of this kind's schema that this build writes and reads
    /// (see [`SchemaVersion`] and `docs/compatibility.md`).
    const SCHEMA: SchemaVersion = SchemaVersion::INITIAL;
}

/// One spec kind in the registry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KindEntry {
    /// The kind's name.
    pub(crate) kind: &'static str,
    /// Its channel.
    pub(crate) channel: Channel,
    /// The version of its schema this build knows.
    pub(crate) schema: SchemaVersion,
    /// Checks a payload's JSON text against the kind's struct.
    pub(crate) validate: fn(&str) -> Result<(), serde_json::Error>,
}

/// Declares `impl MessageKind for $ty` for each `$ty => $channel`, with the
/// kind's schema version when it is not 1.0: `$ty => $channel @ (1, 2)`.
/// Bump the minor when adding an optional field, the major on a breaking
/// change (`docs/compatibility.md`).
macro_rules! message_kinds {
    ($($ty:ident => $channel:ident $(@ ($major:literal, $minor:literal))?),* $(,)?) => {
        $(
            impl $crate::messages::MessageKind for $ty {
                const KIND: &'static str = stringify!($ty);
                const CHANNEL: $crate::messages::Channel = $crate::messages::Channel::$channel;
                $(
                    const SCHEMA: $crate::messages::SchemaVersion =
                        $crate::messages::SchemaVersion::new($major, $minor);
                )?
            }
        )*
        /// The kinds declared in this module, with their channel, for the registry.
        pub(crate) const KINDS: &[$crate::messages::kind::KindEntry] = &[
            $($crate::messages::kind::KindEntry {
                kind: stringify!($ty),
                channel: $crate::messages::Channel::$channel,
                schema: <$ty as $crate::messages::MessageKind>::SCHEMA,
                validate: |text| serde_json::from_str::<$ty>(text).map(|_| ()),
            }),*
        ];
    };
}
pub(crate) use message_kinds;
