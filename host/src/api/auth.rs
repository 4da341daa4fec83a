//! Bearer tokens and their scopes.
//!
//! A token is configured as `[[api.tokens]]` with a name, the SHA-256 of
//! the token (never the token itself) and scopes:
//!
//! | scope | allows |
//! |---|---|
//! | `read` | every `GET`: streams, reads, health, plugins, emitters, `/metrics` |
//! | `publish:<channel>` (`publish:*`) | `POST /v1/channels/<channel>/messages`; acking an alert needs `publish:alerts` |
//! | `append:<store>` (`append:*`) | `POST /v1/stores/<store>/streams/…` |
//! | `admin` | everything, including loading and unloading plugins |
//!
//! A request presents `Authorization: Bearer <token>`; the token's digest
//! is compared with every configured digest in constant time. Without
//! tokens configured the API is open (every request may do everything) —
//! allowed only when `[api] listen` is a loopback address.

use std::net::SocketAddr;

use sha2::Digest;
use subtle::ConstantTimeEq;

use super::TokenConfig;
use crate::bus::Channel;

/// One permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every read-only request.
    Read,
    /// Publishing on a channel (`None`: any).
    Publish(Option<Channel>),
    /// Appending to a store (`None`: any).
    Append(Option<String>),
    /// Everything.
    Admin,
}

impl Scope {
    /// Parses `read`, `publish:<channel>`, `publish:*`, `append:<store>`,
    /// `append:*`, `admin`.
    ///
    /// # Errors
    /// Text naming the scope and what is expected.
    pub fn parse(s: &str) -> Result<Scope, String> {
        let bad = || {
            format!(
                "unknown scope `{s}`: expected read, publish:<channel>, publish:*, append:<store>, append:* or admin"
            )
        };
        match s.split_once(':') {
            None if s == "read" => Ok(Scope::Read),
            None if s == "admin" => Ok(Scope::Admin),
            Some(("publish", "*")) => Ok(Scope::Publish(None)),
            Some(("publish", c)) => c
                .parse::<Channel>()
                .map(|c| Scope::Publish(Some(c)))
                .map_err(|e| format!("scope `{s}`: {e}")),
            Some(("append", "*")) => Ok(Scope::Append(None)),
            Some(("append", store)) if !store.is_empty() => {
                Ok(Scope::Append(Some(store.to_owned())))
            }
            _ => Err(bad()),
        }
    }

    /// Whether this scope grants `need`.
    fn grants(&self, need: &Need) -> bool {
        match (self, need) {
            (Scope::Admin, _) => true,
            (Scope::Read, Need::Read) => true,
            (Scope::Publish(None), Need::Publish(_)) => true,
            (Scope::Publish(Some(c)), Need::Publish(n)) => c == n,
            (Scope::Append(None), Need::Append(_)) => true,
            (Scope::Append(Some(s)), Need::Append(n)) => s == n,
            _ => false,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Read => f.write_str("read"),
            Scope::Publish(None) => f.write_str("publish:*"),
            Scope::Publish(Some(c)) => write!(f, "publish:{c}"),
            Scope::Append(None) => f.write_str("append:*"),
            Scope::Append(Some(s)) => write!(f, "append:{s}"),
            Scope::Admin => f.write_str("admin"),
        }
    }
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// A read-only request.
    Read,
    /// Publishing on a channel.
    Publish(Channel),
    /// Appending to a store.
    Append(String),
    /// An administrative change.
    Admin,
}

impl Need {
    /// The scope that grants this need (for error texts).
    pub fn scope(&self) -> String {
        match self {
            Need::Read => "read".into(),
            Need::Publish(c) => format!("publish:{c}"),
            Need::Append(s) => format!("append:{s}"),
            Need::Admin => "admin".into(),
        }
    }
}

/// Who made a request: a token's name and scopes, or `anonymous` on an
/// open API.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's name (`anonymous` on an open API).
    pub name: String,
    scopes: Vec<Scope>,
    /// The client's address.
    pub client: SocketAddr,
}

impl Principal {
    /// The scopes, as `[[api.tokens]]` writes them (`read`, `publish:alerts`,
    /// `append:*`, `admin`).
    pub fn scope_names(&self) -> Vec<String> {
        self.scopes.iter().map(Scope::to_string).collect()
    }

    /// Whether the principal may do `need`.
    pub fn allows(&self, need: &Need) -> bool {
        self.scopes.iter().any(|s| s.grants(need))
    }
}

struct Token {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

/// The configured tokens.
pub struct Auth {
    tokens: Vec<Token>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Auth").field("tokens", &names).finish()
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer <token>`.
    Malformed,
    /// No configured token has this digest.
    Unknown,
}

impl AuthFailure {
    /// Text for the client.
    pub fn text(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "authentication required: send `Authorization: Bearer <token>`",
            AuthFailure::Malformed => "the Authorization header must be `Bearer <token>`",
            AuthFailure::Unknown => "unknown token",
        }
    }
}

impl Auth {
    /// The tokens of `[[api.tokens]]`.
    ///
    /// # Errors
    /// Text naming the token entry and the bad value.
    pub fn new(tokens: &[TokenConfig]) -> Result<Auth, String> {
        let tokens = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let at = format!("api.tokens[{i}] (`{}`)", t.name);
                if t.name.is_empty() {
                    return Err(format!("api.tokens[{i}].name: must not be empty"));
                }
                let digest = decode_hex(&t.sha256).ok_or_else(|| {
                    format!("{at}.sha256: must be the token's SHA-256 as 64 hex digits")
                })?;
                let scopes = t
                    .scopes
                    .iter()
                    .map(|s| Scope::parse(s).map_err(|e| format!("{at}.scopes: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                if scopes.is_empty() {
                    return Err(format!("{at}.scopes: a token needs at least one scope"));
                }
                Ok(Token {
                    name: t.name.clone(),
                    digest,
                    scopes,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Auth { tokens })
    }

    /// Whether any token is configured (otherwise the API is open).
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Who sent `authorization` (the header's value, if any) from `client`.
    ///
    /// # Errors
    /// [`AuthFailure`] when tokens are configured and the header does not
    /// carry one of them.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client: SocketAddr,
    ) -> Result<Principal, AuthFailure> {
        if !self.enabled() {
            return Ok(Principal {
                name: "anonymous".into(),
                scopes: vec![Scope::Admin],
                client,
            });
        }
        let header = authorization.ok_or(AuthFailure::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthFailure::Malformed)?;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        // Every digest is compared, so the time taken says nothing about
        // which token (if any) matched.
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.digest.ct_eq(&digest)) {
                found = Some(t);
            }
        }
        let t = found.ok_or(AuthFailure::Unknown)?;
        Ok(Principal {
            name: t.name.clone(),
            scopes: t.scopes.clone(),
            client,
        })
    }
}

/// A new random token and its SHA-256 (hex), for `[[api.tokens]]`.
pub fn new_token() -> (String, String) {
    let token = format!(
        "exesdb_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let digest = hex(&sha2::Sha256::digest(token.as_bytes()));
    (token, digest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_written_as_it_is_parsed() {
        for text in [
            "read",
            "admin",
            "publish:*",
            "publish:alerts",
            "append:*",
            "append:default",
        ] {
            assert_eq!(Scope::parse(text).unwrap().to_string(), text);
        }
    }

    fn client() -> SocketAddr {
        "127.0.0.1:5555".parse().unwrap()
    }

    fn config(name: &str, token: &str, scopes: &[&str]) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            sha256: hex(&sha2::Sha256::digest(token.as_bytes())),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn tokens_authenticate_by_digest_and_grant_their_scopes() {
        let auth = Auth::new(&[
            config("reader", "r-token", &["read"]),
            config("ingest", "i-token", &["append:default", "publish:events"]),
        ])
        .unwrap();
        let reader = auth.authenticate(Some("Bearer r-token"), client()).unwrap();
        assert_eq!(reader.name, "reader");
        assert!(reader.allows(&Need::Read));
        assert!(!reader.allows(&Need::Append("default".into())));
        let ingest = auth.authenticate(Some("Bearer i-token"), client()).unwrap();
        assert!(ingest.allows(&Need::Append("default".into())));
        assert!(!ingest.allows(&Need::Append("other".into())));
        assert!(ingest.allows(&Need::Publish(Channel::Events)));
        assert!(!ingest.allows(&Need::Publish(Channel::Alerts)));
        assert!(!ingest.allows(&Need::Admin));
        assert_eq!(
            auth.authenticate(None, client()).unwrap_err(),
            AuthFailure::Missing
        );
        assert_eq!(
            auth.authenticate(Some("Basic abc"), client()).unwrap_err(),
            AuthFailure::Malformed
        );
        assert_eq!(
            auth.authenticate(Some("Bearer nope"), client())
                .unwrap_err(),
            AuthFailure::Unknown
        );
    }

    #[test]
    fn without_tokens_everything_is_allowed() {
        let auth = Auth::new(&[]).unwrap();
        let p = auth.authenticate(None, client()).unwrap();
        assert_eq!(p.name, "anonymous");
        assert!(p.allows(&Need::Admin));
    }

    #[test]
    fn bad_entries_are_refused_naming_the_key() {
        let mut t = config("x", "t", &["read"]);
        t.sha256 = "abc".into();
        assert!(Auth::new(&[t])
            .unwrap_err()
            .contains("api.tokens[0] (`x`).sha256"));
        let t = config("x", "t", &["write"]);
        assert!(Auth::new(&[t])
            .unwrap_err()
            .contains("unknown scope `write`"));
        let t = config("x", "t", &["publish:nowhere"]);
        assert!(Auth::new(&[t]).unwrap_err().contains("publish:nowhere"));
        let t = config("x", "t", &[]);
        assert!(Auth::new(&[t]).unwrap_err().contains("at least one scope"));
    }

    #[test]
    fn a_new_token_matches_its_digest() {
        let (token, digest) = new_token();
        let auth = Auth::new(&[TokenConfig {
            name: "n".into(),
            sha256: digest,
            scopes: vec!["read".into()],
        }])
        .unwrap();
        let header = format!("Bearer {token}");
        assert!(auth.authenticate(Some(&header), client()).is_ok());
    }
}
