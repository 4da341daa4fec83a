//! The debounced directory watcher (the `notify` crate).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::integration::Integration;
use crate::messages::alerts::{AlertCategory, Severity};
use crate::runtime::{Manifest, PluginError, Plugins};

/// Who the audit trail names for changes the watcher makes.
pub const ACTOR: &str = "watcher";

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
    /// # Errors
    /// The `notify` error when the directory cannot be watched.
    pub fn start(
        dir: &Path,
        plugins: Arc<Plugins>,
        integration: Integration,
        debounce: Duration,
    ) -> Result<Watcher, notify::Error> {
        let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(event) = res {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            })?;
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        let dir = dir.to_owned();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut names = BTreeSet::new();
                names.extend(stem(&first));
                // Debounce: keep collecting until the directory is quiet.
                while let Ok(Some(path)) = tokio::time::timeout(debounce, rx.recv()).await {
                    names.extend(stem(&path));
                }
                for name in names {
                    apply(&dir, &name, &plugins, &integration).await;
                }
            }
        });
        Ok(Watcher {
            _watcher: watcher,
            task,
        })
    }
}

/// The plugin name a changed file belongs to (`<name>.wasm` / `<name>.toml`).
fn stem(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    if ext != "wasm" && ext != "toml" {
        return None;
    }
    Some(path.file_stem()?.to_str()?.to_owned())
}

/// Brings plugin `name` in line with the files in `dir`.
async fn apply(dir: &Path, name: &str, plugins: &Plugins, integration: &Integration) {
    let manifest_path = dir.join(format!("{name}.toml"));
    if !manifest_path.exists() {
        if plugins.status(name).is_some() {
            tracing::info!(
                class = "action",
                "📂 {} removed: unloading {name}",
                manifest_path.display()
            );
            let _ = plugins.unload_by(ACTOR, name).await;
        }
        return;
    }
    let manifest = match Manifest::from_file(&manifest_path) {
        Ok(m) => m,
        Err(e) => return report(&e.into(), name, integration).await,
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
            let _ = plugins.unload_by(ACTOR, &manifest.name).await;
        }
        return;
    }
    // Failures are reported (console and SystemAlert) by `Plugins` itself.
    let _ = plugins.reload_file_by(ACTOR, &manifest_path).await;
}

/// Reports a rejected change: console and `SystemAlert`.
pub(crate) async fn report(err: &PluginError, name: &str, integration: &Integration) {
    tracing::error!(class = "failure", "❌ PLUGIN CHANGE REJECTED: {err}");
    let mut metadata = serde_json::Map::new();
    metadata.insert("error".into(), err.to_string().into());
    metadata.insert("plugin".into(), err.plugin().unwrap_or(name).into());
    let _ = integration
        .raise_alert(
            AlertCategory::System,
            Severity::Error,
            "Plugin change rejected",
            metadata,
        )
        .await;
}

/// Applies the current contents of `dir` once (what the watcher does for
/// each changed name), for every `*.toml` present.
pub async fn sync_dir(dir: &Path, plugins: &Plugins, integration: &Integration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| stem(&e.path()))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        apply(dir, &name, plugins, integration).await;
    }
}
