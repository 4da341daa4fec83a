//! Plugin secrets: named in the manifest's `[secrets]`, read by the host
//! when the plugin (or a new version of it) loads, handed to the guest
//! only through `wasi:config/store` (`get("token")`).
//!
//! ```toml
//! [secrets]
//! token = { env = "HOOK_TOKEN" }           # an environment variable of the host
//! signing_key = { file = "/run/secrets/k" } # a file (absolute path); one trailing newline is dropped
//! ```
//!
//! A secret that cannot be read (variable unset or empty, file missing or
//! not UTF-8) fails the load with an error naming the secret and its
//! source, never its value. Values are never part of `config()`, the
//! manifest the host reports, `plugin status` or a `SystemConfig`. The
//! host also redacts them from what the guest writes that the host
//! repeats: log lines, stdout/stderr lines, error texts and trap reports
//! show `[redacted:<name>]` in place of any value of 4 bytes or more.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::bindings::config::wasi::config::store;
use super::state::PluginState;

/// Shortest value redacted from text: shorter ones would blank out common
/// words or digits.
const MIN_REDACTED_LEN: usize = 4;

/// Where a secret's value comes from: exactly one of `env` or `file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// A host environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file, by absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl SecretSource {
    /// Checks the source's form (for the manifest's parser).
    pub(crate) fn check(&self) -> Result<(), String> {
        match (&self.env, &self.file) {
            (Some(v), None) if !v.is_empty() => Ok(()),
            (None, Some(f)) if f.is_absolute() => Ok(()),
            (None, Some(f)) => Err(format!("file `{}` must be an absolute path", f.display())),
            _ => Err("give exactly one of `env = \"VAR\"` or `file = \"/path\"`".into()),
        }
    }

    fn read(&self, name: &str, plugin: &str) -> Result<String, super::PluginError> {
        let fail = |message: String| super::PluginError::Init {
            plugin: plugin.to_owned(),
            message: format!("secret `{name}`: {message}"),
        };
        if let Some(var) = &self.env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) => Err(fail(format!("environment variable {var} is empty"))),
                Err(std::env::VarError::NotPresent) => {
                    Err(fail(format!("environment variable {var} is not set")))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(fail(format!("environment variable {var} is not UTF-8")))
                }
            };
        }
        let path = self.file.as_ref().expect("checked: env or file");
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        if text.is_empty() {
            return Err(fail(format!("{} is empty", path.display())));
        }
        Ok(text.to_owned())
    }
}

/// A plugin version's secret values, by name. Its `Debug` shows names only.
#[derive(Clone, Default)]
pub(crate) struct Secrets(BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// Reads every secret the manifest names.
    ///
    /// # Errors
    /// [`super::PluginError::Init`] naming the first secret that cannot be read.
    pub(crate) fn resolve(
        plugin: &str,
        sources: &BTreeMap<String, SecretSource>,
    ) -> Result<Secrets, super::PluginError> {
        sources
            .iter()
            .map(|(name, src)| Ok((name.clone(), src.read(name, plugin)?)))
            .collect::<Result<_, _>>()
            .map(Secrets)
    }

    /// `text` with every secret value replaced by `[redacted:<name>]`.
    pub(crate) fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (name, value) in &self.0 {
            if value.len() >= MIN_REDACTED_LEN && out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), &format!("[redacted:{name}]")));
            }
        }
        out
    }
}

impl store::Host for PluginState {
    fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        Ok(self.ctx.secrets.0.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        Ok(self
            .ctx
            .secrets
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> SecretSource {
        SecretSource {
            env: Some(var.into()),
            file: None,
        }
    }

    #[test]
    fn a_missing_secret_names_itself_and_its_source() {
        let sources = BTreeMap::from([("token".to_owned(), env("EXESDB_TEST_SURELY_UNSET_VAR"))]);
        let e = Secrets::resolve("hook", &sources).unwrap_err().to_string();
        assert!(e.contains("secret `token`"), "{e}");
        assert!(e.contains("EXESDB_TEST_SURELY_UNSET_VAR is not set"), "{e}");
    }

    #[test]
    fn files_are_read_without_their_trailing_newline_and_values_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "s3cr3t-value\n").unwrap();
        let sources = BTreeMap::from([(
            "key".to_owned(),
            SecretSource {
                env: None,
                file: Some(path),
            },
        )]);
        let s = Secrets::resolve("hook", &sources).unwrap();
        assert_eq!(s.0["key"], "s3cr3t-value");
        assert_eq!(
            s.redact("sent s3cr3t-value twice: s3cr3t-value"),
            "sent [redacted:key] twice: [redacted:key]"
        );
        assert_eq!(format!("{s:?}"), "{\"key\"}");
    }

    #[test]
    fn a_source_is_one_of_env_or_an_absolute_file() {
        assert!(env("X").check().is_ok());
        let both = SecretSource {
            env: Some("X".into()),
            file: Some("/x".into()),
        };
        assert!(both.check().is_err());
        let relative = SecretSource {
            env: None,
            file: Some("x".into()),
        };
        assert!(relative.check().unwrap_err().contains("absolute"));
    }
}
