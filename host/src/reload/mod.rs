//! Hot-loading: the plugins directory is watched and each change becomes a
//! load, a replace or an unload, without losing a message.
//!
//! - A new `<name>.toml` + `<name>.wasm` pair → loaded and subscribed.
//! - A changed one → [`Plugins::reload`](crate::runtime::Plugins::reload):
//!   the new version is compiled, instantiated and `init`ed before it takes
//!   over the slot; a failure leaves the old version running and is reported
//!   on the console and as a `SystemAlert`.
//! - A removed manifest or component → unloaded (queued messages are still
//!   handled, then `shutdown` is called).
//!
//! Events are debounced: nothing happens until the directory has been quiet
//! for `watch_debounce_ms`, so a file still being written is not loaded.
//! Writing the new file under a temporary name and renaming it into place is
//! the safe way to deploy.

mod watcher;

pub use watcher::{sync_dir, Watcher};
