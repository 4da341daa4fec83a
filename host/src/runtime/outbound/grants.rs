//! The entries of `[wasi] allowed_outbound_hosts` and the destination of a
//! request, and whether a grant covers a destination.
//!
//! A grant is `scheme://host[:port]`, as Spin writes them:
//!
//! - **scheme**: `http`, `https`, or `*` for both.
//! - **host**: a name (`hooks.example.com`), an IPv4 literal (`127.0.0.1`),
//!   an IPv6 literal in brackets (`[::1]`), or a pattern: `*` stands for one
//!   whole label (`*.example.com` covers `a.example.com`, not
//!   `example.com` nor `a.b.example.com`), and a host of `*` alone covers
//!   every host. Names are compared case-insensitively, without a trailing
//!   dot. A name or pattern never covers an IP literal (only `*` alone does).
//! - **port**: a number, `*` for any port, or nothing for the scheme's
//!   default port (80 for `http`, 443 for `https`; with scheme `*`, the
//!   default port of the request's scheme).
//!
//! Nothing else: no user info, path, query or fragment.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A scheme a grant or a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(s: &str) -> Option<Scheme> {
        match s {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub(crate) const fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// The host part of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: every host.
    Any,
    /// An IP literal: exactly that address.
    Ip(IpAddr),
    /// A name, lowercase labels, `None` where the grant has `*`.
    Name(Vec<Option<String>>),
}

/// One entry of `[wasi] allowed_outbound_hosts`, checked when the manifest
/// is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OutboundHost {
    /// The entry as written.
    text: String,
    /// `None` for `*`.
    scheme: Option<Scheme>,
    host: HostPattern,
    /// `None` for `*`; `Some(None)` for the scheme's default port.
    port: Option<Option<u16>>,
}

impl OutboundHost {
    /// The entry as the manifest writes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this grant covers `dest`: scheme, host and port all match.
    pub(crate) fn covers(&self, dest: &Destination) -> bool {
        let scheme = self.scheme.is_none_or(|s| s == dest.scheme);
        let port = match self.port {
            None => true,
            Some(None) => dest.port == dest.scheme.default_port(),
            Some(Some(p)) => dest.port == p,
        };
        let host = match (&self.host, &dest.host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Ip(granted), Host::Ip(ip)) => granted == ip,
            (HostPattern::Name(labels), Host::Name(name)) => {
                let parts: Vec<&str> = name.split('.').collect();
                parts.len() == labels.len()
                    && labels
                        .iter()
                        .zip(&parts)
                        .all(|(l, p)| l.as_deref().is_none_or(|l| l == *p))
            }
            _ => false,
        };
        scheme && host && port
    }

    /// The address this grant names literally, if its host is an IP literal:
    /// the one restricted address (loopback, private, …) it permits.
    pub(crate) fn literal_ip(&self) -> Option<IpAddr> {
        match self.host {
            HostPattern::Ip(ip) => Some(ip),
            _ => None,
        }
    }
}

impl fmt::Display for OutboundHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<OutboundHost> for String {
    fn from(h: OutboundHost) -> String {
        h.text
    }
}

impl TryFrom<String> for OutboundHost {
    type Error = String;

    fn try_from(text: String) -> Result<OutboundHost, String> {
        parse(&text).map_err(|why| {
            format!(
                "invalid outbound host `{text}`: {why}; expected `scheme://host[:port]`, \
                 e.g. `https://hooks.example.com` or `http://127.0.0.1:*`"
            )
        })
    }
}

fn parse(text: &str) -> Result<OutboundHost, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| "no `://` after the scheme".to_owned())?;
    let scheme = match scheme {
        "*" => None,
        s => Some(
            Scheme::parse(s)
                .ok_or_else(|| format!("scheme `{s}` is not one of `http`, `https`, `*`"))?,
        ),
    };
    if rest.contains(['/', '?', '#']) {
        return Err("a grant names no path, query or fragment".into());
    }
    if rest.contains('@') {
        return Err("a grant names no user info".into());
    }
    let (host, port) = split_port(rest)?;
    let port = match port {
        None => Some(None),
        Some("*") => None,
        Some(p) => {
            Some(Some(p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(
                || format!("port `{p}` is not `*` or 1–65535"),
            )?))
        }
    };
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        HostPattern::Ip(IpAddr::V6(
            v6.parse()
                .map_err(|_| format!("`{host}` is not an IPv6 address"))?,
        ))
    } else if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        HostPattern::Ip(IpAddr::V4(ip))
    } else {
        let name = normalise_name(host).ok_or_else(|| format!("`{host}` is not a host name"))?;
        if name
            .split('.')
            .all(|l| l == "*" || l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "`{host}` is not an address nor a name (a `*` stands for a name's label, \
                 not for part of an address)"
            ));
        }
        HostPattern::Name(
            name.split('.')
                .map(|l| (l != "*").then(|| l.to_owned()))
                .collect(),
        )
    };
    Ok(OutboundHost {
        text: text.to_owned(),
        scheme,
        host,
        port,
    })
}

/// `host[:port]` into its parts (an IPv6 host keeps its brackets).
fn split_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or_else(|| "an IPv6 address without its `]`".to_owned())?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(format!("`{rest}` after the IPv6 address")),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// A host name lowercased without its trailing dot, if every label is
/// 1–63 of `[a-z0-9_-]` (or `*`) and the name is at most 253 characters.
fn normalise_name(host: &str) -> Option<String> {
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            l == "*"
                || (!l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        });
    ok.then_some(name)
}

/// The host a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Ip(IpAddr),
    /// Lowercase, without a trailing dot.
    Name(String),
}

/// Where a request goes: scheme, host and port (the scheme's default when
/// the URL names none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub(crate) scheme: Scheme,
    pub(crate) host: Host,
    pub(crate) port: u16,
}

impl Destination {
    /// The destination of a request URI, or `None` when it has no `http` or
    /// `https` scheme, no valid host, or user info.
    pub(crate) fn of(uri: &hyper::Uri) -> Option<Destination> {
        let scheme = Scheme::parse(uri.scheme_str()?)?;
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host();
        let host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Host::Ip(IpAddr::V6(v6.parse().ok()?))
        } else if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
            Host::Ip(IpAddr::V4(ip))
        } else {
            Host::Name(normalise_name(host).filter(|n| !n.split('.').any(|l| l == "*"))?)
        };
        Some(Destination {
            scheme,
            host,
            port: authority.port_u16().unwrap_or(scheme.default_port()),
        })
    }

    /// The host as a name or an address, for lookups and TLS (an IPv6
    /// address without brackets).
    pub(crate) fn host_str(&self) -> String {
        match &self.host {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.clone(),
        }
    }
}

/// `scheme://host:port`, an IPv6 host in brackets: how refusals, the audit
/// trail and `plugin status` name a destination.
impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.as_str();
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "{scheme}://[{ip}]:{}", self.port),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{scheme}://{ip}:{}", self.port),
            Host::Name(n) => write!(f, "{scheme}://{n}:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(s: &str) -> OutboundHost {
        OutboundHost::try_from(s.to_owned()).unwrap()
    }

    fn dest(url: &str) -> Destination {
        Destination::of(&url.parse().unwrap()).unwrap()
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        let g = grant("https://hooks.example.com");
        assert!(g.covers(&dest("https://hooks.example.com/x")));
        assert!(g.covers(&dest("https://HOOKS.example.com.:443/")));
        assert!(!g.covers(&dest("http://hooks.example.com/")), "scheme");
        assert!(!g.covers(&dest("https://hooks.example.com:8443/")), "port");
        assert!(!g.covers(&dest("https://evil.example.com/")), "host");
        assert!(!g.covers(&dest("https://hooks.example.com.evil.net/")));

        let g = grant("http://127.0.0.1:*");
        assert!(g.covers(&dest("http://127.0.0.1:1234/")));
        assert!(g.covers(&dest("http://127.0.0.1/")));
        assert!(
            !g.covers(&dest("http://localhost:1234/")),
            "a name is not the literal"
        );
        assert!(!g.covers(&dest("http://127.0.0.2:1234/")));
        assert_eq!(g.literal_ip(), Some("127.0.0.1".parse().unwrap()));

        let g = grant("*://[::1]:8080");
        assert!(g.covers(&dest("http://[::1]:8080/")));
        assert!(g.covers(&dest("https://[::1]:8080/")));
        assert!(!g.covers(&dest("https://[::1]:8081/")));
    }

    #[test]
    fn a_star_is_one_whole_label_or_every_host() {
        let g = grant("https://*.example.com");
        assert!(g.covers(&dest("https://a.example.com/")));
        assert!(!g.covers(&dest("https://example.com/")));
        assert!(!g.covers(&dest("https://a.b.example.com/")));
        assert!(!g.covers(&dest("https://a.example.org/")));
        assert_eq!(g.literal_ip(), None);

        let g = grant("*://*:*");
        assert!(g.covers(&dest("http://anything.test:1/")));
        assert!(g.covers(&dest("https://10.0.0.1/")));
        assert_eq!(g.literal_ip(), None, "`*` names no address literally");

        // Default ports per the request's scheme.
        let g = grant("*://api.test");
        assert!(g.covers(&dest("http://api.test/")));
        assert!(g.covers(&dest("https://api.test/")));
        assert!(!g.covers(&dest("https://api.test:80/")));
    }

    #[test]
    fn bad_entries_are_refused_naming_the_entry() {
        for (bad, why) in [
            ("hooks.example.com", "no `://`"),
            ("ftp://x.test", "scheme `ftp`"),
            ("https://x.test/path", "no path"),
            ("https://user@x.test", "no user info"),
            ("https://x.test:0", "port `0`"),
            ("https://x.test:99999", "port `99999`"),
            ("https://x.test:a", "port `a`"),
            ("https://", "not a host name"),
            ("https://-x.test", "not a host name"),
            ("https://x..test", "not a host name"),
            ("https://[::1", "without its `]`"),
            ("https://[zz]:1", "not an IPv6 address"),
            ("http://10.0.0.*", "not for part of an address"),
            ("http://10.0.0.256", "not an address nor a name"),
        ] {
            let err = OutboundHost::try_from(bad.to_owned()).unwrap_err();
            assert!(
                err.contains(&format!("`{bad}`")) && err.contains(why),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn destinations_are_named_with_their_port() {
        assert_eq!(dest("https://A.test/x?y").to_string(), "https://a.test:443");
        assert_eq!(dest("http://[::1]:80/").to_string(), "http://[::1]:80");
        assert_eq!(dest("http://[::1]/").host_str(), "::1");
        for bad in ["ftp://x/", "http://u@x/", "http://*.x/"] {
            assert_eq!(Destination::of(&bad.parse().unwrap()), None, "{bad}");
        }
        assert_eq!(
            grant("http://127.0.0.1:*").to_string(),
            "http://127.0.0.1:*"
        );
    }
}
