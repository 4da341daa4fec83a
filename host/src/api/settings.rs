//! The API's section of the configuration file, `[api]`, and its tokens.

use serde::{Deserialize, Serialize};

/// `[api]`: the host's HTTP server — the `/v1` gateway (publish, append,
/// read, live streams, alerts, plugins, health) and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; empty: no HTTP server. A non-loopback address
    /// needs at least one token.
    pub listen: String,
    /// Largest request body accepted, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Live stream clients (SSE and WebSocket) at once (503 beyond).
    pub max_stream_clients: usize,
    /// Messages buffered per stream client; a client that falls further
    /// behind receives a `lagged` event with the number it missed.
    pub stream_buffer: usize,
    /// Bearer tokens; none: the API is open, which is allowed only on a
    /// loopback `listen`.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

impl Default for ApiConfig {
    /// The values of the embedded `default.toml`.
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:7077".into(),
            max_body_bytes: 32 * 1024 * 1024,
            max_stream_clients: 4096,
            stream_buffer: 1024,
            tokens: Vec::new(),
        }
    }
}

/// One `[[api.tokens]]` entry. The token itself never appears in the file:
/// only its SHA-256 (`exesdb-host token new` makes both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who the token belongs to (named in the audit trail).
    pub name: String,
    /// SHA-256 of the token, 64 hex digits.
    pub sha256: String,
    /// What it may do: `read`, `publish:<channel>`, `append:<store>`,
    /// `admin` (`*` for any channel or store).
    pub scopes: Vec<String>,
}
