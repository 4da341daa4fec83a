//! Unloading: a plugin's slot is removed at once, with its subscriptions;
//! messages already in its inbox are still handled, then `shutdown` is
//! called and its worker thread joined. Its health and metrics are dropped
//! and the unload is recorded on `audit` as a `plugin_unload` by the
//! [`Actor`].
//!
//! An unload by anyone but the watcher of a plugin whose manifest is in
//! the watched directory is remembered with the fingerprint of its files:
//! the plugin is listed as [`PluginState::Unloaded`] and the watcher leaves
//! it unloaded until those files change (see [`Plugins::held_unloaded`]).
//!
//! [`Plugins::unload_all`] is the host's shutdown: it closes the set to
//! loads and unloads every plugin, so no worker outlives the runtime.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::{live, Actor, PluginInfo, PluginState, Plugins};
use crate::messages::lifecycle::ProcessEvent;
use crate::runtime::files::Fingerprint;
use crate::runtime::worker::{lifecycle, Command};
use crate::runtime::PluginError;

impl Plugins {
    /// Unloads a plugin on behalf of `actor` (recorded on `audit`): its
    /// subscriptions are removed at once, messages already in its inbox
    /// are still handled, then `shutdown` is called.
    ///
    /// # Errors
    /// [`PluginError::NotFound`].
    pub async fn unload(&self, actor: Actor<'_>, name: &str) -> Result<(), PluginError> {
        let slot = self
            .slots
            .lock()
            .remove(name)
            .ok_or_else(|| PluginError::NotFound {
                plugin: name.to_owned(),
            })?;
        if let Some(sub) = &slot.ctx.subscriber {
            sub.close();
        }
        // Refused when there is no worker (a formatter) or it has ended.
        let _ = slot.control.send(Command::Stop);
        self.audit(actor, "plugin_unload", name, &slot.ctx.manifest.version);
        let info = live(&slot);
        if let Some(thread) = slot.worker {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if slot.formatter.is_some() {
            slot.info.lock().state = PluginState::Stopped;
            lifecycle(&slot.ctx, ProcessEvent::Stopped, Some("unloaded".into()), 0);
        }
        self.health.remove(name);
        self.metrics.remove(name);
        match self.watched_source(&info) {
            Some((dir, fingerprint)) if !matches!(actor, Actor::Watcher | Actor::Shutdown) => {
                tracing::info!(
                    class = "failure",
                    plugin = name,
                    "🔌 PLUGIN UNLOADED: {name} (its files stay in {}: it stays unloaded until they change)",
                    dir.display()
                );
                let mut info = info;
                info.state = PluginState::Unloaded;
                self.unloaded
                    .lock()
                    .insert(name.to_owned(), (info, fingerprint));
            }
            _ => tracing::info!(
                class = "failure",
                plugin = name,
                "🔌 PLUGIN UNLOADED: {name}"
            ),
        }
        Ok(())
    }

    /// Unloads every plugin and refuses loads from then on: when it
    /// returns, every plugin worker thread has finished, so none outlives
    /// the tokio runtime it reports through.
    pub async fn unload_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        loop {
            // A load that passed the check before `closed` was set may still
            // insert its slot: go round until none is left.
            let names: Vec<String> = self.slots.lock().keys().cloned().collect();
            if names.is_empty() {
                break;
            }
            for name in names {
                let _ = self.unload(Actor::Shutdown, &name).await;
            }
        }
        self.unloaded.lock().clear();
    }

    /// The watched directory and the fingerprint of the plugin's files, when
    /// it was loaded from a manifest in that directory that still exists.
    fn watched_source(&self, info: &PluginInfo) -> Option<(PathBuf, Fingerprint)> {
        let dir = self.watched_dir.lock().clone()?;
        let source = PathBuf::from(info.source.as_ref()?);
        let same_dir = source
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .zip(dir.canonicalize().ok())
            .is_some_and(|(a, b)| a == b);
        if !same_dir {
            return None;
        }
        Some((dir, Fingerprint::of(&source)?))
    }
}
