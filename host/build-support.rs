//! What the two build scripts that build guest plugins share: `host/build.rs`
//! (the Rust plugins) and `tests/build.rs` (the Python and JavaScript test
//! plugins) each pull this file in as a module
//! (`#[path = "…/build-support.rs"] mod support;`).

use std::env;
use std::path::{Path, PathBuf};

/// The target directory of this build, read from `OUT_DIR`, which cargo puts
/// at `<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`: the parent of
/// the profile directory, one more level up for `--target <triple>` builds.
/// `OUT_DIR` moves with `--target-dir`, `CARGO_TARGET_DIR` and
/// `build.target-dir` alike (`cargo metadata` run from here would not see a
/// `--target-dir` flag), and the shape is checked rather than assumed.
pub fn target_dir(out_dir: &Path) -> PathBuf {
    let build = out_dir
        .ancestors()
        .nth(2)
        .filter(|d| d.file_name().is_some_and(|n| n == "build"))
        .unwrap_or_else(|| {
            panic!(
                "OUT_DIR {} is not <target>/<profile>/build/<pkg>/out",
                out_dir.display()
            )
        });
    let profile = build.parent().unwrap();
    let above = profile.parent().unwrap();
    let triple = env::var("TARGET").unwrap_or_default();
    if above.file_name().is_some_and(|n| n == triple.as_str()) {
        above.parent().unwrap().to_path_buf()
    } else {
        above.to_path_buf()
    }
}

/// The plugins of `dir`: every subdirectory holding a `plugin.toml`, sorted
/// by name.
pub fn plugin_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("plugin.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
