//! Who asks for a load, reload or unload: the [`Actor`] every lifecycle
//! operation of [`Plugins`](super::Plugins) takes.
//!
//! The actor is recorded as the `admin_user_id` of the operation's
//! `AdminAction` on `audit`. It changes one thing besides: an unload by
//! an operator (or a named actor) of a plugin whose files are still in the
//! watched directory is remembered, and the watcher leaves the plugin
//! unloaded until its files change (see
//! [`PluginState::Unloaded`](super::PluginState::Unloaded)); the watcher's
//! own unloads (files removed) and the host's at shutdown are not.

/// Who asked for a lifecycle operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// An operator using the library: the host loading its plugins at
    /// start-up, the CLI, embedders and tests. Recorded as `operator`.
    Operator,
    /// The plugins directory watcher (`reload`). Recorded as `watcher`.
    Watcher,
    /// Someone the caller names, as the HTTP API does (`admin-api`).
    Named(&'a str),
    /// The host stopping: [`Plugins::unload_all`](super::Plugins::unload_all)
    /// unloads every plugin. Recorded as `shutdown`.
    Shutdown,
}

impl Actor<'_> {
    /// The name the audit trail records.
    pub fn name(&self) -> &str {
        match self {
            Actor::Operator => "operator",
            Actor::Watcher => "watcher",
            Actor::Named(name) => name,
            Actor::Shutdown => "shutdown",
        }
    }
}

impl std::fmt::Display for Actor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
