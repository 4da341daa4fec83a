//! The plugin manifest: `<name>.toml` beside `<name>.wasm`.
//!
//! ```toml
//! name = "health-console"        # [a-z0-9-]+, unique per host
//! version = "0.1.0"
//! world = "subscriber"            # subscriber | alert-escalator | log-formatter
//! description = "…"               # optional
//! component = "health-console.wasm"  # optional; default <name>.wasm beside the manifest
//! tick_interval_ms = 1000         # optional, alert-escalator only: how often `tick` runs
//!
//! [[subscribe]]                   # initial subscriptions; their channels are also the
//! channel = "health"              # channels the plugin may subscribe to at run time
//! pattern = ">"
//!
//! [[publish]]                     # publish grants: channel + topic pattern
//! channel = "alerts"
//! pattern = "system_alert:>"
//!
//! [[store_subscription]]          # store events via emitter workers (subscriber only)
//! store = "default"               # optional; the host's default store
//! selector = "$all"               # $all | <stream> | $et-<type> | $pattern-<glob>
//! start = "beginning"             # beginning | now | <global position>
//! name = "projector"              # optional: persistent, resumes from its checkpoint
//!
//! [limits]                        # all optional
//! memory_mb = 64                  # linear memory cap per instance
//! call_timeout_ms = 1000          # time budget per call (epoch deadline)
//! max_batch = 256                 # most messages per on-batch call
//! fuel = 1000000                  # fuel per call; needs [runtime] fuel = true
//! http_timeout_ms = 10000         # outbound: connect, first byte, between bytes
//! http_max_response_bytes = 10485760  # outbound: a larger response body is cut
//! http_requests_per_second = 50   # outbound: more are refused
//! state_mb = 16                   # durable key-value state (wasi:keyvalue), MiB
//!
//! [wasi]                          # nothing is granted by default
//! read_only_dirs = ["/etc/ssl"]   # preopened read-only, at the same guest path
//! env = ["TZ"]                    # host environment variables passed through
//! allowed_outbound_hosts = ["https://hooks.example.com", "http://127.0.0.1:*"]
//!                                 # wasi:http destinations, scheme://host[:port]
//!
//! [secrets]                       # read at load; the guest reads them with wasi:config/store
//! token = { env = "HOOK_TOKEN" }  # or { file = "/run/secrets/token" }
//!
//! [config]                        # free-form; passed to init as JSON
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::outbound::OutboundHost;
use crate::bus::{Channel, Pattern};

/// The plugin roles, one per WIT world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `subscriber`: handles messages.
    Subscriber,
    /// `alert-escalator`: decides alert escalations.
    AlertEscalator,
    /// `log-formatter`: formats console lines.
    LogFormatter,
}

impl World {
    /// The WIT world name.
    pub const fn as_str(self) -> &'static str {
        match self {
            World::Subscriber => "subscriber",
            World::AlertEscalator => "alert-escalator",
            World::LogFormatter => "log-formatter",
        }
    }

    /// Every world.
    pub const ALL: [World; 3] = [
        World::Subscriber,
        World::AlertEscalator,
        World::LogFormatter,
    ];

    /// The interface a component of this world exports (in some version of
    /// the contract, see [`super::Contract`]): `handler`, `escalator`, `formatter`.
    pub const fn interface(self) -> &'static str {
        match self {
            World::Subscriber => "handler",
            World::AlertEscalator => "escalator",
            World::LogFormatter => "formatter",
        }
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A channel and topic pattern, as a subscription or a publish grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicGrant {
    /// The channel (short or `ex_esdb_*` name).
    #[serde(with = "channel_name")]
    pub channel: Channel,
    /// Exact topic or pattern (`*`, trailing `>`).
    pub pattern: String,
}

/// A store subscription in a manifest:
/// `[[store_subscription]] store = "default", selector = "$all", start = "beginning", name = "…"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSubscription {
    /// The store (the host's default store when absent).
    #[serde(default)]
    pub store: Option<String>,
    /// `$all`, a stream name, `$et-<type>` or `$pattern-<glob>`.
    pub selector: String,
    /// `beginning` (default), `now`, or a global position.
    #[serde(default = "beginning")]
    pub start: String,
    /// A name makes it persistent: a durable checkpoint resumes it.
    #[serde(default)]
    pub name: Option<String>,
}

fn beginning() -> String {
    "beginning".into()
}

/// Resource limits of each instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory cap, MiB.
    pub memory_mb: u64,
    /// Time budget per call, ms.
    pub call_timeout_ms: u64,
    /// Most messages per `on-batch` call (the host's `plugins.max_batch` when absent).
    pub max_batch: Option<usize>,
    /// Fuel per call (deterministic budget); needs `[runtime] fuel = true`.
    pub fuel: Option<u64>,
    /// Outbound HTTP: the longest wait to connect, for the response head,
    /// and between two pieces of its body, ms.
    pub http_timeout_ms: u64,
    /// Outbound HTTP: the largest response body, bytes; a larger one is cut
    /// with an error.
    pub http_max_response_bytes: u64,
    /// Outbound HTTP: the most requests a second (all instances together);
    /// more are refused.
    pub http_requests_per_second: u32,
    /// Durable key-value state (`wasi:keyvalue`): the most bytes of keys
    /// and values, MiB.
    pub state_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 64,
            call_timeout_ms: 1000,
            max_batch: None,
            fuel: None,
            http_timeout_ms: 10_000,
            http_max_response_bytes: 10 * 1024 * 1024,
            http_requests_per_second: 50,
            state_mb: 16,
        }
    }
}

/// WASI capabilities granted to the plugin (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WasiGrants {
    /// Host directories preopened read-only at the same path in the guest.
    pub read_only_dirs: Vec<PathBuf>,
    /// Host environment variables passed to the guest.
    pub env: Vec<String>,
    /// Destinations of outbound HTTP (`wasi:http`), `scheme://host[:port]`
    /// with `*` wildcards; none: no outbound request is allowed.
    pub allowed_outbound_hosts: Vec<OutboundHost>,
}

/// A parsed and checked plugin manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique plugin name, `[a-z0-9-]+`.
    pub name: String,
    /// The plugin's version (free text, semver recommended).
    pub version: String,
    /// The world the component implements.
    pub world: World,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Component file, relative to the manifest; default `<name>.wasm`.
    #[serde(default)]
    pub component: Option<String>,
    /// `alert-escalator` only: period of `tick` calls, ms (default 1000).
    #[serde(default)]
    pub tick_interval_ms: Option<u64>,
    /// Initial subscriptions.
    #[serde(default)]
    pub subscribe: Vec<TopicGrant>,
    /// Publish grants.
    #[serde(default)]
    pub publish: Vec<TopicGrant>,
    /// Store subscriptions: the plugin receives these stores' events through
    /// emitter workers (subscriber world only).
    #[serde(default)]
    pub store_subscription: Vec<StoreSubscription>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// WASI grants.
    #[serde(default)]
    pub wasi: WasiGrants,
    /// Secrets by name, read by the host at load and given to the guest
    /// through `wasi:config/store` (see [`super::secrets`]).
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, super::secrets::SecretSource>,
    /// Free-form configuration passed to `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
}

/// Why a manifest was rejected: names the file, the key and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin manifest {file}: {}{message}", key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
pub struct ManifestError {
    /// The manifest file (or a description of where it came from).
    pub file: String,
    /// The offending key, when one is to blame.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Manifest {
    /// Reads and checks a manifest file.
    ///
    /// # Errors
    /// [`ManifestError`] for a missing file, bad TOML, unknown keys or bad values.
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            file: path.display().to_string(),
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks manifest text; `file` names it in errors.
    ///
    /// # Errors
    /// [`ManifestError`] for bad TOML, unknown keys or bad values.
    pub fn parse(text: &str, file: &str) -> Result<Manifest, ManifestError> {
        let err = |key: Option<String>, message: String| ManifestError {
            file: file.to_owned(),
            key,
            message,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(None, e.message().to_owned()))?;
        let m: Manifest = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| err(Some(e.path().to_string()), e.inner().to_string()))?;
        if m.name.is_empty()
            || !m
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(err(
                Some("name".into()),
                format!("`{}` must be non-empty [a-z0-9-]", m.name),
            ));
        }
        for (list, grants) in [("subscribe", &m.subscribe), ("publish", &m.publish)] {
            for (i, g) in grants.iter().enumerate() {
                Pattern::parse(&g.pattern)
                    .map_err(|e| err(Some(format!("{list}[{i}].pattern")), e.to_string()))?;
            }
        }
        for (i, s) in m.store_subscription.iter().enumerate() {
            let key = |k: &str| Some(format!("store_subscription[{i}].{k}"));
            s.selector
                .parse::<crate::store::Selector>()
                .map_err(|e| err(key("selector"), e.to_string()))?;
            s.start
                .parse::<crate::store::Start>()
                .map_err(|e| err(key("start"), e))?;
            if m.world != World::Subscriber {
                return Err(err(
                    key("selector"),
                    "only a subscriber receives store events".into(),
                ));
            }
        }
        if m.limits.memory_mb == 0 || m.limits.memory_mb > 4096 {
            return Err(err(
                Some("limits.memory_mb".into()),
                "must be between 1 and 4096".into(),
            ));
        }
        if m.limits.call_timeout_ms == 0 {
            return Err(err(
                Some("limits.call_timeout_ms".into()),
                "must be at least 1".into(),
            ));
        }
        if m.limits.fuel == Some(0) {
            return Err(err(Some("limits.fuel".into()), "must be at least 1".into()));
        }
        let at_least_one = [
            ("limits.http_timeout_ms", m.limits.http_timeout_ms),
            (
                "limits.http_requests_per_second",
                u64::from(m.limits.http_requests_per_second),
            ),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(err(Some((*key).into()), "must be at least 1".into()));
        }
        for (name, src) in &m.secrets {
            let key = Some(format!("secrets.{name}"));
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(err(key, "a secret's name is [A-Za-z0-9_-]+".into()));
            }
            src.check().map_err(|e| err(key, e))?;
        }
        if m.limits.max_batch == Some(0) {
            return Err(err(
                Some("limits.max_batch".into()),
                "must be at least 1".into(),
            ));
        }
        if m.world != World::AlertEscalator && m.tick_interval_ms.is_some() {
            return Err(err(
                Some("tick_interval_ms".into()),
                "only applies to world `alert-escalator`".into(),
            ));
        }
        if m.world == World::LogFormatter && !(m.subscribe.is_empty() && m.publish.is_empty()) {
            return Err(err(
                Some("subscribe".into()),
                "a log-formatter neither subscribes nor publishes".into(),
            ));
        }
        Ok(m)
    }

    /// The `[config]` table as JSON text.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".into())
    }

    /// The component file for a manifest located at `manifest_path`.
    pub fn component_path(&self, manifest_path: &Path) -> PathBuf {
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        dir.join(
            self.component
                .clone()
                .unwrap_or_else(|| format!("{}.wasm", self.name)),
        )
    }

    /// Whether the plugin may publish on `channel`/`topic`.
    pub fn may_publish(&self, channel: Channel, topic: &str) -> bool {
        self.publish.iter().any(|g| {
            g.channel == channel && Pattern::parse(&g.pattern).is_ok_and(|p| p.matches(topic))
        })
    }

    /// Whether the plugin may subscribe on `channel` (a channel of its manifest subscriptions).
    pub fn may_subscribe(&self, channel: Channel) -> bool {
        self.subscribe.iter().any(|g| g.channel == channel)
    }
}

mod channel_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::bus::Channel;

    pub(super) fn serialize<S: Serializer>(c: &Channel, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Channel, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "p1"
        version = "1.0.0"
        world = "subscriber"
        [[subscribe]]
        channel = "ex_esdb_health"
        pattern = "store_health:*"
        [[publish]]
        channel = "alerts"
        pattern = "system_alert:>"
        [config]
        threshold = 3
    "#;

    #[test]
    fn parses_a_good_manifest() {
        let m = Manifest::parse(GOOD, "p1.toml").unwrap();
        assert_eq!(m.world, World::Subscriber);
        assert_eq!(m.subscribe[0].channel, Channel::Health);
        assert_eq!(m.limits, Limits::default());
        assert_eq!(m.config_json(), r#"{"threshold":3}"#);
        assert!(m.may_publish(Channel::Alerts, "system_alert:system"));
        assert!(!m.may_publish(Channel::Alerts, "alert_ack:x"));
        assert!(!m.may_publish(Channel::Security, "system_alert:x"));
        assert!(m.may_subscribe(Channel::Health));
        assert!(!m.may_subscribe(Channel::Audit));
        assert_eq!(
            m.component_path(Path::new("/d/p1.toml")),
            PathBuf::from("/d/p1.wasm")
        );
    }

    #[test]
    fn outbound_hosts_are_granted_in_wasi() {
        assert!(Manifest::parse(GOOD, "p1.toml")
            .unwrap()
            .wasi
            .allowed_outbound_hosts
            .is_empty());
        let text = GOOD.replace(
            "[config]",
            "[wasi]\nallowed_outbound_hosts = [\"https://*.example.com\", \"http://127.0.0.1:*\"]\n[config]",
        );
        let m = Manifest::parse(&text, "p1.toml").unwrap();
        let hosts: Vec<&str> = m
            .wasi
            .allowed_outbound_hosts
            .iter()
            .map(OutboundHost::as_str)
            .collect();
        assert_eq!(hosts, ["https://*.example.com", "http://127.0.0.1:*"]);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json["wasi"]["allowed_outbound_hosts"][1],
            "http://127.0.0.1:*"
        );
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let cases = [
            (GOOD.replace("version", "versoin"), "versoin"),
            (GOOD.replace("\"subscriber\"", "\"listener\""), "world"),
            (
                GOOD.replace("store_health:*", "a:>:b"),
                "subscribe[0].pattern",
            ),
            (
                GOOD.replace("ex_esdb_health", "ex_esdb_weather"),
                "subscribe[0].channel",
            ),
            (GOOD.replace("name = \"p1\"", "name = \"P 1\""), "name"),
            (
                format!("{GOOD}\n[limits]\nmemory_mb = 0\n"),
                "limits.memory_mb",
            ),
            (format!("{GOOD}\n[limits]\nmemory = 5\n"), "limits"),
            (format!("tick_interval_ms = 5\n{GOOD}"), "tick_interval_ms"),
            (
                format!("{GOOD}\n[limits]\nhttp_timeout_ms = 0\n"),
                "limits.http_timeout_ms",
            ),
            (
                format!("{GOOD}\n[limits]\nhttp_requests_per_second = 0\n"),
                "limits.http_requests_per_second",
            ),
        ];
        for (text, key) in cases {
            let err = Manifest::parse(&text, "dir/p1.toml").unwrap_err();
            assert_eq!(
                err.key.as_deref().map(|k| k.starts_with(key)),
                Some(true),
                "{key}: {err}"
            );
            let msg = err.to_string();
            assert!(msg.contains("dir/p1.toml") && msg.contains(key), "{msg}");
        }
        // A bad outbound grant names the key, the entry's index and the entry.
        let text = GOOD.replace(
            "[config]",
            "[wasi]\nallowed_outbound_hosts = [\"https://ok.test\", \"ftp://bad.test\"]\n[config]",
        );
        let err = Manifest::parse(&text, "dir/p1.toml").unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("wasi.allowed_outbound_hosts[1]"),
            "{err}"
        );
        assert!(err.to_string().contains("`ftp://bad.test`"), "{err}");
        let err = Manifest::parse("name = ", "x.toml").unwrap_err();
        assert!(err.key.is_none() && err.to_string().contains("x.toml"));
        let err = Manifest::from_file(Path::new("/nonexistent/m.toml")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/m.toml")
                && err.to_string().contains("cannot read")
        );
    }
}
