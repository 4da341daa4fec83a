//! The debounced directory watcher (the `notify` crate).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::runtime::{Actor, Fingerprint, Manifest, PluginError, Plugins};

/// Who the audit trail names for changes the watcher makes.
pub const ACTOR: Actor<'static> = Actor::Watcher;

/// A running watcher; dropping it stops watching.
#[derive(Debug)]
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    /// Watches `dir` (which must exist) and applies changes to `plugins`
    /// after `debounce` of quiet. Must be called inside a tokio runtime.
    ///
    /// Only changes of content or names count (create, modify, remove,
    /// rename): reading a file — as loading it does — is not a change, so
    /// applying a change never triggers another.
    ///
    /// # Errors
    /// The `notify` error when the directory cannot be watched.
    pub fn start(
        dir: &Path,
        plugins: Arc<Plugins>,
        debounce: Duration,
    ) -> Result<Watcher, notify::Error> {
        let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let Ok(event) = res else { return };
                if !is_change(&event.kind) {
                    return;
                }
                for path in event.paths {
                    let _ = tx.send(path);
                }
            })?;
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        plugins.set_watched_dir(Some(dir.to_owned()));
        let dir = dir.to_owned();
        let task = tokio::spawn(async move {
            let mut seen = Rejections::default();
            while let Some(first) = rx.recv().await {
                let mut names = BTreeSet::new();
                names.extend(stem(&first));
                // Debounce: keep collecting until the directory is quiet.
                // Kept rather than notify-debouncer-full (issue #13): that
                // one debounces each path on its own (a plugin's .wasm and
                // .toml written one after the other would apply twice) and
                // wakes a thread every debounce/4 even while nothing changes.
                while let Ok(Some(path)) = tokio::time::timeout(debounce, rx.recv()).await {
                    names.extend(stem(&path));
                }
                for name in names {
                    apply(&dir, &name, &plugins, &mut seen).await;
                }
            }
        });
        Ok(Watcher {
            _watcher: watcher,
            task,
        })
    }
}

/// Whether a file-system event changes what a file holds or is called.
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    )
}

/// The plugin name a changed file belongs to (`<name>.wasm` / `<name>.toml`).
fn stem(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    if ext != "wasm" && ext != "toml" {
        return None;
    }
    Some(path.file_stem()?.to_str()?.to_owned())
}

/// The files each rejected plugin name was rejected with: the same files
/// are not tried (nor reported) again, only a change of one of them is.
#[derive(Debug, Default)]
pub struct Rejections(std::collections::HashMap<String, Fingerprint>);

impl Rejections {
    /// Whether `name`'s files are exactly those last rejected.
    fn already(&self, name: &str, now: &Fingerprint) -> bool {
        self.0.get(name) == Some(now)
    }
}

/// Brings plugin `name` in line with the files in `dir`.
async fn apply(dir: &Path, name: &str, plugins: &Plugins, seen: &mut Rejections) {
    let manifest_path = dir.join(format!("{name}.toml"));
    let Some(fingerprint) = Fingerprint::of(&manifest_path) else {
        seen.0.remove(name);
        plugins.held_unloaded(name, None);
        if plugins.status(name).is_some() {
            tracing::info!(
                class = "action",
                "📂 {} removed: unloading {name}",
                manifest_path.display()
            );
            let _ = plugins.unload(ACTOR, name).await;
        }
        return;
    };
    if seen.already(name, &fingerprint) {
        return;
    }
    if plugins.held_unloaded(name, Some(&fingerprint)) {
        return;
    }
    let manifest = match Manifest::from_file(&manifest_path) {
        Ok(m) => m,
        Err(e) => {
            plugins.reject(&e.into(), Some(name));
            seen.0.insert(name.to_owned(), fingerprint);
            return;
        }
    };
    let wasm_path = manifest.component_path(&manifest_path);
    if !wasm_path.exists() {
        if plugins.status(&manifest.name).is_some() {
            tracing::info!(
                class = "action",
                "📂 {} removed: unloading {}",
                wasm_path.display(),
                manifest.name
            );
            let _ = plugins.unload(ACTOR, &manifest.name).await;
        } else {
            plugins.reject(
                &PluginError::Read {
                    plugin: manifest.name.clone(),
                    path: wasm_path.display().to_string(),
                    message: format!(
                        "the manifest {} names this component, which does not exist",
                        manifest_path.display()
                    ),
                },
                None,
            );
        }
        seen.0.insert(name.to_owned(), fingerprint);
        return;
    }
    // Failures are reported (console and SystemAlert) by `Plugins` itself.
    match plugins.reload_file(ACTOR, &manifest_path).await {
        Ok(_) => {
            seen.0.remove(name);
        }
        Err(_) => {
            seen.0.insert(name.to_owned(), fingerprint);
        }
    }
}

/// Applies the current contents of `dir` once (what the watcher does for
/// each changed name), for every `*.toml` present.
pub async fn sync_dir(dir: &Path, plugins: &Plugins) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| stem(&e.path()))
        .collect();
    names.sort();
    names.dedup();
    let mut seen = Rejections::default();
    for name in names {
        apply(dir, &name, plugins, &mut seen).await;
    }
}
