//! What one plugin's outbound requests add up to, shared by all its
//! instances and versions (like its refusals): counts per destination, shown
//! in `plugin status` as `outbound`, and the token bucket of
//! `limits.http_requests_per_second`.

use std::collections::BTreeMap;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

/// Most destinations counted separately; the requests to any further ones
/// are counted together under [`OTHER`], so a plugin trying many hosts
/// cannot grow its status without bound.
const MAX_DESTINATIONS: usize = 64;

/// The destination the requests beyond [`MAX_DESTINATIONS`] are counted under.
const OTHER: &str = "(other destinations)";

/// One destination's counts in `plugin status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboundInfo {
    /// `scheme://host:port`.
    pub destination: String,
    /// Requests the plugin made to it, refused ones included.
    pub requests: u64,
    /// Requests the gate let through that failed: no response (connect,
    /// TLS, timeout, protocol error), a response cut short (over
    /// `limits.http_max_response_bytes`, or the connection failed while
    /// reading it), or a 5xx status.
    pub errors: u64,
    /// Requests the gate refused: not granted, over
    /// `limits.http_requests_per_second`, or a restricted address.
    pub denied: u64,
}

/// The token bucket of `limits.http_requests_per_second`: a burst of up to
/// one second's worth, refilled continuously.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A plugin's outbound counts and rate limit.
#[derive(Debug, Default)]
pub(crate) struct OutboundStats {
    destinations: Mutex<BTreeMap<String, OutboundInfo>>,
    bucket: Mutex<Option<Bucket>>,
}

/// How a request ended, for its destination's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Denied,
}

impl OutboundStats {
    /// Counts one request to `destination` that ended as `outcome`.
    pub(crate) fn count(&self, destination: &str, outcome: Outcome) {
        let mut d = self.destinations.lock();
        let key = if d.len() >= MAX_DESTINATIONS && !d.contains_key(destination) {
            OTHER
        } else {
            destination
        };
        let e = d.entry(key.to_owned()).or_insert_with(|| OutboundInfo {
            destination: key.to_owned(),
            ..OutboundInfo::default()
        });
        e.requests += 1;
        match outcome {
            Outcome::Ok => {}
            Outcome::Error => e.errors += 1,
            Outcome::Denied => e.denied += 1,
        }
    }

    /// Every destination's counts, by destination.
    pub(crate) fn snapshot(&self) -> Vec<OutboundInfo> {
        self.destinations.lock().values().cloned().collect()
    }

    /// Takes a token for one request at `now`, at most `per_second` a
    /// second; `false` when the bucket is empty.
    pub(crate) fn admit(&self, now: Instant, per_second: u32) -> bool {
        let rate = f64::from(per_second.max(1));
        let mut b = self.bucket.lock();
        let b = b.get_or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_per_destination_with_a_cap() {
        let s = OutboundStats::default();
        s.count("http://a:80", Outcome::Ok);
        s.count("http://a:80", Outcome::Error);
        s.count("http://a:80", Outcome::Denied);
        s.count("http://b:80", Outcome::Denied);
        assert_eq!(
            s.snapshot(),
            vec![
                OutboundInfo {
                    destination: "http://a:80".into(),
                    requests: 3,
                    errors: 1,
                    denied: 1
                },
                OutboundInfo {
                    destination: "http://b:80".into(),
                    requests: 1,
                    errors: 0,
                    denied: 1
                },
            ]
        );
        for i in 0..200 {
            s.count(&format!("http://h{i}:80"), Outcome::Denied);
        }
        let snap = s.snapshot();
        assert_eq!(snap.len(), MAX_DESTINATIONS + 1);
        let other = snap.iter().find(|d| d.destination == OTHER).unwrap();
        assert_eq!(other.denied, 200 - (MAX_DESTINATIONS as u64 - 2));
    }

    #[test]
    fn the_bucket_admits_a_second_worth_then_refills() {
        let s = OutboundStats::default();
        let t0 = Instant::now();
        let admitted = (0..20).filter(|_| s.admit(t0, 5)).count();
        assert_eq!(admitted, 5);
        assert!(!s.admit(t0 + Duration::from_millis(100), 5));
        assert!(s.admit(t0 + Duration::from_millis(200), 5));
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..20).filter(|_| s.admit(later, 5)).count(), 5);
    }
}
