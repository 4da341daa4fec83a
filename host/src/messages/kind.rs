//! The [`MessageKind`] trait: ties a typed payload to its kind name and channel.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bus::Channel;

/// A typed message payload of one of the spec's message types.
///
/// Every kind belongs to exactly one channel; publishing it on any other
/// channel is an error ([`MessageError::WrongChannel`](super::MessageError)).
pub trait MessageKind: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The spec's type name, e.g. `"NodeHealth"`. It is the envelope's `kind`.
    const KIND: &'static str;
    /// The one channel this kind may be published on.
    const CHANNEL: Channel;
}

/// Declares `impl MessageKind for $ty` for each `$ty => ($kind, $channel)`.
macro_rules! message_kinds {
    ($($ty:ident => $channel:ident),* $(,)?) => {
        $(
            impl $crate::messages::MessageKind for $ty {
                const KIND: &'static str = stringify!($ty);
                const CHANNEL: $crate::bus::Channel = $crate::bus::Channel::$channel;
            }
        )*
        /// The kinds declared in this module, with their channel, for the registry.
        pub(crate) const KINDS: &[(&str, $crate::bus::Channel, fn(&str) -> Result<(), serde_json::Error>)] = &[
            $((
                stringify!($ty),
                $crate::bus::Channel::$channel,
                |text| serde_json::from_str::<$ty>(text).map(|_| ()),
            )),*
        ];
    };
}
pub(crate) use message_kinds;
