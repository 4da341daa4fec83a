//! Reloading: a loaded plugin is replaced by a new version without losing
//! a message, or loaded when absent.
//!
//! The new version is compiled, linked, instantiated and `init`ed
//! **before** the swap; any failure leaves the running version untouched,
//! is reported as a rejected change (see `reporting`) and returned. The
//! inbox belongs to the slot: a message is handled by exactly one version —
//! the old one up to the swap, the new one after. A subscriber's or
//! escalator's worker is sent the new instance as a command, takes it
//! between two calls and acknowledges the swap; a reload that stops waiting
//! for the acknowledgement (it timed out, or was dropped) withdraws it, and
//! the worker discards the swap, shutting its new instance down, and keeps
//! the running version. A formatter's is replaced in place. The
//! subscriptions follow the new manifest after the swap. The same
//! component and manifest again change nothing, except for a parked
//! plugin, which they revive with a fresh instance. The reload is recorded
//! on `audit` as a `plugin_reload` by the [`Actor`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sha2::Digest;

use super::{live, Actor, PluginInfo, PluginState, Plugins};
use crate::health::HealthInput;
use crate::messages::lifecycle::ProcessEvent;
use crate::runtime::files::read_files;
use crate::runtime::formatter::FormatterPlugin;
use crate::runtime::instance::Prepared;
use crate::runtime::manifest::{Manifest, World};
use crate::runtime::worker::{lifecycle, Command, Swap};
use crate::runtime::PluginError;

impl Plugins {
    /// Replaces a loaded plugin with a new version, or loads it if absent,
    /// on behalf of `actor` (recorded on `audit`).
    ///
    /// The new version is compiled, linked, instantiated and `init`ed
    /// **before** the swap; any failure leaves the running version untouched
    /// and is returned. The inbox belongs to the slot: a message is handled
    /// by exactly one version — the old one up to the swap, the new one
    /// after — none is lost or delivered twice. Subscriptions are adjusted to
    /// the new manifest after the swap. An identical component and manifest
    /// is not reloaded (returns the current status).
    ///
    /// # Errors
    /// [`PluginError`] naming the plugin and the cause; also
    /// [`PluginError::WorldChanged`] when the new version has another world.
    pub async fn reload(
        &self,
        actor: Actor<'_>,
        manifest: Manifest,
        wasm: &[u8],
    ) -> Result<PluginInfo, PluginError> {
        let result = self.replace(actor, manifest, wasm).await;
        if let Err(e) = &result {
            self.reject(e, None);
        }
        result
    }

    /// Loads or reloads from `<manifest>` and the component it names, on
    /// behalf of `actor`; remembers the file for later reloads.
    ///
    /// # Errors
    /// As [`reload`](Self::reload), plus unreadable files.
    pub async fn reload_file(
        &self,
        actor: Actor<'_>,
        manifest_path: &Path,
    ) -> Result<PluginInfo, PluginError> {
        let stem = manifest_path.file_stem().and_then(|s| s.to_str());
        let (manifest, bytes) = read_files(manifest_path).inspect_err(|e| self.reject(e, stem))?;
        let name = manifest.name.clone();
        let info = self.reload(actor, manifest, &bytes).await?;
        Ok(self.set_source(&name, manifest_path).unwrap_or(info))
    }

    /// Reloads a plugin, loaded or held unloaded, from the manifest file it
    /// was loaded from, on behalf of `actor`; a bundled plugin from its
    /// embedded component (which revives it when parked).
    ///
    /// # Errors
    /// [`PluginError::NotFound`], or the plugin has no source file (bundled),
    /// or as [`reload`](Self::reload).
    pub async fn reload_from_source(
        &self,
        actor: Actor<'_>,
        name: &str,
    ) -> Result<PluginInfo, PluginError> {
        let unloaded = self.unloaded.lock().get(name).map(|(i, _)| i.clone());
        let info = self
            .status(name)
            .or(unloaded)
            .ok_or_else(|| PluginError::NotFound {
                plugin: name.to_owned(),
            })?;
        if let Some(source) = info.source {
            return self.reload_file(actor, Path::new(&source)).await;
        }
        // Bundled: the same component again (revives a parked plugin).
        let bundled = crate::artifacts::BUNDLED.iter().find(|b| b.name == name);
        match (bundled, self.manifest(name)) {
            (Some(b), Some(manifest)) => self.reload(actor, manifest, b.wasm).await,
            _ => Err(PluginError::Read {
                plugin: name.to_owned(),
                path: "<uploaded>".into(),
                message: "this plugin was not loaded from a file; give a manifest path".into(),
            }),
        }
    }

    /// [`reload`](Self::reload) without reporting its failure.
    async fn replace(
        &self,
        actor: Actor<'_>,
        manifest: Manifest,
        wasm: &[u8],
    ) -> Result<PluginInfo, PluginError> {
        let name = manifest.name.clone();
        let digest: [u8; 32] = sha2::Sha256::digest(wasm).into();
        let current = self.slots.lock().get(&name).map(|s| {
            (
                Arc::clone(&s.ctx),
                s.control.clone(),
                *s.compiled.digest(),
                s.info.lock().state,
            )
        });
        let Some((old, control, old_digest, state)) = current else {
            return self.load(actor, manifest, wasm);
        };
        // The same files again change nothing — except for a parked plugin,
        // which a reload revives with a fresh instance.
        if old_digest == digest && old.manifest == manifest && state != PluginState::Parked {
            return self
                .status(&name)
                .ok_or(PluginError::NotFound { plugin: name });
        }
        if old.manifest.world != manifest.world {
            return Err(PluginError::WorldChanged {
                plugin: name,
                from: old.manifest.world,
                to: manifest.world,
            });
        }
        self.check_fuel(&manifest)?;
        let component = self.runtime.compile(&name, wasm)?;
        let prepared = self.runtime.prepare(&manifest, &component)?;
        let contract = prepared.contract();
        let language = crate::runtime::producers::language(wasm);
        let ctx = self.context(
            manifest,
            old.subscriber.clone(),
            Arc::clone(&old.violations),
            Arc::clone(&old.outbound),
        )?;
        let (from, to) = (old.manifest.version.clone(), ctx.manifest.version.clone());
        match prepared {
            Prepared::Formatter(pre) => {
                let formatter = FormatterPlugin::start(&self.runtime, pre, Arc::clone(&ctx))?;
                if let Some(slot) = self.slots.lock().get_mut(&name) {
                    slot.formatter = Some(formatter);
                }
            }
            Prepared::Worker(pre) => {
                let instance = pre.start(self.runtime.engine(), Arc::clone(&ctx))?;
                let (done, swapped) = tokio::sync::oneshot::channel();
                let swap = Swap {
                    ctx: Arc::clone(&ctx),
                    pre,
                    instance,
                    max_batch: ctx.manifest.limits.max_batch.unwrap_or(self.max_batch),
                    done,
                };
                // Refused when the worker has ended (an unload meanwhile):
                // `swapped` then fails at once.
                if let Err(Command::Swap(swap)) = control.send(Command::Swap(Box::new(swap))) {
                    swap.discard();
                }
                // The running call's budget, plus one outbound request's waits
                // (connect, head, body), which do not count against it.
                let longest_call = |m: &Manifest| {
                    let waits = if m.wasi.allowed_outbound_hosts.is_empty() {
                        0
                    } else {
                        m.limits.http_timeout_ms.saturating_mul(3)
                    };
                    m.limits.call_timeout_ms.saturating_add(waits)
                };
                let wait = Duration::from_millis(
                    longest_call(&ctx.manifest).max(longest_call(&old.manifest)),
                ) + Duration::from_secs(5);
                // Giving up drops `swapped`, which withdraws the swap: the
                // worker discards a swap whose waiter has gone (see
                // `Swap::done`), so the running version stays.
                let acked = matches!(tokio::time::timeout(wait, swapped).await, Ok(Ok(())));
                if !acked {
                    return Err(PluginError::Instantiate {
                        plugin: name,
                        message: "the running version did not hand over its slot in time".into(),
                    });
                }
                self.adjust_subscriptions(&old.manifest, &ctx.manifest, ctx.subscriber.as_deref());
            }
        }
        let snapshot = {
            let mut slots = self.slots.lock();
            let slot = slots.get_mut(&name).ok_or_else(|| PluginError::NotFound {
                plugin: name.clone(),
            })?;
            slot.ctx = Arc::clone(&ctx);
            slot.compiled = component;
            {
                let mut info = slot.info.lock();
                info.version = to.clone();
                info.language = language;
                info.contract = contract;
                info.state = PluginState::Running;
                info.loaded_at = Utc::now();
                info.restarts = 0;
                info.last_error = None;
            }
            live(slot)
        };
        self.unloaded.lock().remove(&name);
        if ctx.manifest.world != World::LogFormatter {
            self.health
                .record(&name, HealthInput::RegistrationSucceeded);
        }
        tracing::info!(
            class = "success",
            plugin = name.as_str(),
            "♻️ PLUGIN RELOADED: {name} {from} -> {to}"
        );
        lifecycle(
            &ctx,
            ProcessEvent::Restarted,
            Some(format!("reloaded: {from} -> {to}")),
            0,
        );
        self.audit(actor, "plugin_reload", &name, &to);
        Ok(snapshot)
    }

    /// Makes the subscriber's subscriptions those of the new manifest.
    fn adjust_subscriptions(
        &self,
        old: &Manifest,
        new: &Manifest,
        sub: Option<&crate::bus::Subscriber>,
    ) {
        let Some(sub) = sub else { return };
        for g in old.subscribe.iter().filter(|g| !new.subscribe.contains(g)) {
            let _ = sub.unsubscribe(g.channel, &g.pattern);
        }
        for g in new.subscribe.iter().filter(|g| !old.subscribe.contains(g)) {
            if let Err(e) = sub.subscribe(g.channel, &g.pattern) {
                tracing::warn!(
                    plugin = new.name.as_str(),
                    "cannot subscribe to {}: {e}",
                    g.pattern
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::{Actor, Plugins};
    use crate::bus::{Bus, BusConfig, Channel};
    use crate::messages::Envelope;
    use crate::runtime::instance::Prepared;
    use crate::runtime::manifest::Manifest;
    use crate::runtime::worker::{Command, Swap};
    use crate::runtime::Runtime;

    /// A swap whose reload stopped waiting is discarded: the running version
    /// keeps the slot and the new instance is dropped. One whose reload
    /// waits is taken and acknowledged (the control case, measured the same
    /// way: whether the worker still holds the new version's context).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_swap_whose_reload_gave_up_is_discarded() {
        let bus = Bus::new(BusConfig::default());
        let plugins = Plugins::new(Runtime::new().unwrap(), bus.clone(), 16);
        let manifest =
            Manifest::from_file(Path::new(crate::artifacts::TEST_GUEST_MANIFEST)).unwrap();
        let wasm = std::fs::read(crate::artifacts::TEST_GUEST_WASM).unwrap();
        plugins
            .load(Actor::Operator, manifest.clone(), &wasm)
            .unwrap();
        let name = manifest.name.clone();
        let component = plugins.runtime.compile(&name, &wasm).unwrap();
        let send_swap = |waiting: bool| {
            let (old, control) = {
                let slots = plugins.slots.lock();
                let slot = &slots[&name];
                (Arc::clone(&slot.ctx), slot.control.clone())
            };
            let Prepared::Worker(pre) = plugins.runtime.prepare(&manifest, &component).unwrap()
            else {
                panic!("the test guest is a subscriber");
            };
            let ctx = plugins
                .context(
                    manifest.clone(),
                    old.subscriber.clone(),
                    Arc::clone(&old.violations),
                    Arc::clone(&old.outbound),
                )
                .unwrap();
            let instance = pre
                .start(plugins.runtime.engine(), Arc::clone(&ctx))
                .unwrap();
            let (done, swapped) = tokio::sync::oneshot::channel();
            let swapped = waiting.then_some(swapped);
            let swap = Swap {
                ctx: Arc::clone(&ctx),
                pre,
                instance,
                max_batch: 16,
                done,
            };
            assert!(control.send(Command::Swap(Box::new(swap))).is_ok());
            (ctx, swapped)
        };
        // Answered by the worker after it looked at the swap sent before.
        let deliver = || async {
            let env = Envelope::new(
                Channel::Events,
                "s:direct",
                "custom.e",
                serde_json::json!({}),
                bus.node(),
            );
            plugins
                .deliver_direct(&name, vec![Arc::new(env)], true)
                .await
                .unwrap()
        };

        let (stale, _) = send_swap(false);
        assert!(deliver().await.is_empty());
        assert_eq!(
            Arc::strong_count(&stale),
            1,
            "the discarded swap's version is still held"
        );

        let (taken, swapped) = send_swap(true);
        tokio::time::timeout(Duration::from_secs(30), swapped.unwrap())
            .await
            .expect("the swap is acknowledged")
            .unwrap();
        assert!(deliver().await.is_empty());
        assert!(
            Arc::strong_count(&taken) > 1,
            "the worker does not hold the version it acknowledged"
        );
        plugins.unload_all().await;
    }
}
