//! A plugin's files on disk: the manifest `<name>.toml` and the component it
//! names, read together, and a fingerprint of both that tells whether either
//! changed since it was last looked at.

use std::path::Path;

use sha2::Digest;

use super::manifest::Manifest;
use super::PluginError;

/// Reads a manifest and the component it names.
///
/// # Errors
/// [`PluginError::Manifest`] for a bad manifest, [`PluginError::Read`]
/// naming the component file when it cannot be read.
pub(crate) fn read_files(manifest_path: &Path) -> Result<(Manifest, Vec<u8>), PluginError> {
    let manifest = Manifest::from_file(manifest_path)?;
    let wasm = manifest.component_path(manifest_path);
    let bytes = std::fs::read(&wasm).map_err(|e| PluginError::Read {
        plugin: manifest.name.clone(),
        path: wasm.display().to_string(),
        message: e.to_string(),
    })?;
    Ok((manifest, bytes))
}

/// The SHA-256 of a manifest's bytes followed by the bytes of the component
/// it names (or a marker when the manifest does not parse or the component
/// is missing). Equal fingerprints mean neither file changed, whatever their
/// timestamps say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<u8>);

impl Fingerprint {
    /// The fingerprint of `manifest_path` and its component as they are now;
    /// `None` when the manifest itself is missing.
    pub fn of(manifest_path: &Path) -> Option<Fingerprint> {
        let text = std::fs::read(manifest_path).ok()?;
        let mut hash = sha2::Sha256::new();
        hash.update(&text);
        match Manifest::from_file(manifest_path) {
            Ok(m) => match std::fs::read(m.component_path(manifest_path)) {
                Ok(wasm) => hash.update(&wasm),
                Err(_) => hash.update(b"\0component missing"),
            },
            Err(_) => hash.update(b"\0manifest invalid"),
        }
        Some(Fingerprint(hash.finalize().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "name = \"p\"\nversion = \"1.0.0\"\nworld = \"subscriber\"\n";

    #[test]
    fn changes_with_either_file_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("p.toml");
        assert_eq!(Fingerprint::of(&toml), None, "no manifest, no fingerprint");
        std::fs::write(&toml, MANIFEST).unwrap();
        let missing = Fingerprint::of(&toml).unwrap();
        std::fs::write(dir.path().join("p.wasm"), b"one").unwrap();
        let one = Fingerprint::of(&toml).unwrap();
        assert_ne!(missing, one, "the component appeared");
        assert_eq!(Fingerprint::of(&toml).unwrap(), one, "nothing changed");
        std::fs::write(dir.path().join("p.wasm"), b"two").unwrap();
        let two = Fingerprint::of(&toml).unwrap();
        assert_ne!(one, two, "the component changed");
        std::fs::write(&toml, format!("{MANIFEST}description = \"d\"\n")).unwrap();
        assert_ne!(Fingerprint::of(&toml).unwrap(), two, "the manifest changed");
    }
}
