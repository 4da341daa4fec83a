//! What one plugin's outbound requests add up to, shared by all its
//! instances and versions (like its refusals): per destination the counts,
//! the responses by status class, a latency histogram and the circuit
//! breaker ([`super::circuit`]), shown in `plugin status` as `outbound`;
//! and the token bucket of `limits.http_requests_per_second`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use super::circuit::{Admission, BreakerSettings, Circuit};
use super::trust::Trust;
use crate::health::Transition;
use crate::messages::tracking::BreakerState;
use crate::metrics::histogram::LatencyHistogram;

/// Most destinations counted separately; the requests to any further ones
/// are counted together under [`OTHER`] (which has one breaker for them
/// all), so a plugin trying many hosts cannot grow its status without bound.
const MAX_DESTINATIONS: usize = 64;

/// The destination the requests beyond [`MAX_DESTINATIONS`] are counted under.
const OTHER: &str = "(other destinations)";

/// One destination's figures in `plugin status`.
///
/// `requests` is the sum of the responses that were not failures,
/// `errors`, `denied` and `breaker_rejected`; the status classes and
/// `failed` add up to the requests let through (a final `1xx`, `101
/// Switching Protocols`, is in none of them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboundInfo {
    /// `scheme://host:port`.
    pub destination: String,
    /// Requests the plugin made to it, refused ones included.
    pub requests: u64,
    /// Requests the gate let through that failed: no response (connect,
    /// TLS, timeout, protocol error), a response cut short (over
    /// `limits.http_max_response_bytes`, or the connection failed while
    /// reading it), or a 5xx status. These are what the breaker counts.
    pub errors: u64,
    /// Requests the gate refused: not granted, over
    /// `limits.http_requests_per_second`, or a restricted address.
    pub denied: u64,
    /// Responses with a 2xx status.
    pub status_2xx: u64,
    /// Responses with a 3xx status (redirects are not followed).
    pub status_3xx: u64,
    /// Responses with a 4xx status.
    pub status_4xx: u64,
    /// Responses with a 5xx (or higher) status.
    pub status_5xx: u64,
    /// Requests let through that got no response at all.
    pub failed: u64,
    /// Requests refused because the destination's breaker was open (or
    /// half-open with its trial in flight); not sent, not in `denied`.
    pub breaker_rejected: u64,
    /// The destination's circuit breaker: `closed`, `open` or `half_open`.
    pub breaker: BreakerState,
    /// Failures in a row (they open the breaker at
    /// `[health_monitoring] unhealthy_threshold`).
    pub consecutive_failures: u64,
    /// The last failure's error (`status 503` for a 5xx response).
    pub last_error: Option<String>,
    /// Median latency, in ms: from the gate letting a request through to
    /// its response's head, or to its failure when it got none.
    pub latency_p50_ms: f64,
    /// 99th percentile latency, in ms (same measure).
    pub latency_p99_ms: f64,
    /// Longest latency, in ms (same measure, exact).
    pub latency_max_ms: f64,
}

impl OutboundInfo {
    fn new(destination: &str) -> OutboundInfo {
        OutboundInfo {
            destination: destination.to_owned(),
            requests: 0,
            errors: 0,
            denied: 0,
            status_2xx: 0,
            status_3xx: 0,
            status_4xx: 0,
            status_5xx: 0,
            failed: 0,
            breaker_rejected: 0,
            breaker: BreakerState::Closed,
            consecutive_failures: 0,
            last_error: None,
            latency_p50_ms: 0.0,
            latency_p99_ms: 0.0,
            latency_max_ms: 0.0,
        }
    }
}

impl Default for OutboundInfo {
    /// No requests, no destination, the breaker closed.
    fn default() -> OutboundInfo {
        OutboundInfo::new("")
    }
}

/// One destination's figures and breaker.
#[derive(Debug)]
struct Entry {
    info: OutboundInfo,
    latency: LatencyHistogram,
    circuit: Circuit,
}

impl Entry {
    /// `info` with the breaker's state and the latency figures filled in.
    fn info(&self) -> OutboundInfo {
        let ms = |us: u64| us as f64 / 1000.0;
        let l = self.latency.snapshot();
        OutboundInfo {
            breaker: self.circuit.state(),
            consecutive_failures: self.circuit.consecutive(),
            last_error: self.circuit.last_error().map(str::to_owned),
            latency_p50_ms: ms(l.p50_us),
            latency_p99_ms: ms(l.p99_us),
            latency_max_ms: ms(l.max_us),
            ..self.info.clone()
        }
    }
}

/// The token bucket of `limits.http_requests_per_second`: a burst of up to
/// one second's worth, refilled continuously.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A plugin's outbound figures, breakers and rate limit, and the TLS trust
/// its `https` requests connect with (the host's, see [`Trust`]).
#[derive(Debug, Default)]
pub(crate) struct OutboundStats {
    breaker: BreakerSettings,
    trust: Trust,
    destinations: Mutex<BTreeMap<String, Entry>>,
    bucket: Mutex<Option<Bucket>>,
}

/// A breaker's transition, with its destination's figures after it.
pub(crate) type Change = (OutboundInfo, Transition);

/// What the breaker decided for a request about to go.
#[derive(Debug)]
pub(crate) struct Pass {
    /// Whether it may go: `Go` or `Trial`, or `Refused` (counted already).
    pub(crate) admission: Admission,
    /// The breaker half-opened for it.
    pub(crate) change: Option<Change>,
}

/// How a request the gate let through ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ended {
    /// Its response's status, if one came.
    pub(crate) status: Option<u16>,
    /// Why it failed (no response, or its body cut short), if it did.
    pub(crate) error: Option<String>,
    /// From admission to the response head, or to the failure.
    pub(crate) latency: Duration,
    /// Refused after resolving (a restricted address): counted as denied,
    /// not held against the destination.
    pub(crate) denied: bool,
    /// It was its breaker's half-open trial.
    pub(crate) trial: bool,
}

impl OutboundStats {
    /// No figures yet; the breakers configured by `breaker`, `https`
    /// requests trusting `trust`.
    pub(crate) fn new(breaker: BreakerSettings, trust: Trust) -> OutboundStats {
        OutboundStats {
            breaker,
            trust,
            ..OutboundStats::default()
        }
    }

    /// The certificate authorities this plugin's `https` requests trust.
    pub(crate) fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Runs `f` on `destination`'s entry (or [`OTHER`]'s, past the cap).
    fn with<T>(&self, destination: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut d = self.destinations.lock();
        let key = if d.len() >= MAX_DESTINATIONS && !d.contains_key(destination) {
            OTHER
        } else {
            destination
        };
        let e = d.entry(key.to_owned()).or_insert_with(|| Entry {
            info: OutboundInfo::new(key),
            latency: LatencyHistogram::new(),
            circuit: Circuit::new(self.breaker),
        });
        f(e)
    }

    /// Counts one request to `destination` the gate refused before it went
    /// (not granted, over the rate).
    pub(crate) fn deny(&self, destination: &str) {
        self.with(destination, |e| {
            e.info.requests += 1;
            e.info.denied += 1;
        });
    }

    /// Asks `destination`'s breaker whether a request may go at `now`; a
    /// refusal is counted (`requests`, `breaker_rejected`).
    pub(crate) fn pass(&self, destination: &str, now: Instant) -> Pass {
        self.with(destination, |e| {
            let (admission, transition) = e.circuit.admit(now);
            if admission == Admission::Refused {
                e.info.requests += 1;
                e.info.breaker_rejected += 1;
            }
            Pass {
                admission,
                change: transition.map(|t| (e.info(), t)),
            }
        })
    }

    /// A request `pass` admitted (as the trial when `trial`) was then
    /// refused by the gate before it went.
    pub(crate) fn release(&self, destination: &str, trial: bool) {
        self.with(destination, |e| e.circuit.release(trial));
    }

    /// Counts the end of a request the gate let through, and settles its
    /// breaker (a failure: no response, a cut response, a 5xx status).
    pub(crate) fn end(&self, destination: &str, ended: Ended, now: Instant) -> Option<Change> {
        self.with(destination, |e| {
            e.info.requests += 1;
            if ended.denied {
                e.info.denied += 1;
                e.circuit.release(ended.trial);
                return None;
            }
            e.latency.record(ended.latency);
            match ended.status {
                None => e.info.failed += 1,
                Some(200..=299) => e.info.status_2xx += 1,
                Some(300..=399) => e.info.status_3xx += 1,
                Some(400..=499) => e.info.status_4xx += 1,
                Some(500..) => e.info.status_5xx += 1,
                Some(_) => {}
            }
            let error = ended.error.or_else(|| {
                ended
                    .status
                    .filter(|&s| s >= 500)
                    .map(|s| format!("status {s}"))
            });
            if error.is_some() {
                e.info.errors += 1;
            }
            let transition = e.circuit.settle(ended.trial, error, now);
            transition.map(|t| (e.info(), t))
        })
    }

    /// Every destination's figures, by destination.
    pub(crate) fn snapshot(&self) -> Vec<OutboundInfo> {
        self.destinations.lock().values().map(Entry::info).collect()
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

    const MS: Duration = Duration::from_millis(1);

    fn response(status: u16, ms: u64) -> Ended {
        Ended {
            status: Some(status),
            latency: Duration::from_millis(ms),
            ..Ended::default()
        }
    }

    fn no_response(ms: u64) -> Ended {
        Ended {
            error: Some("connection refused".into()),
            latency: Duration::from_millis(ms),
            ..Ended::default()
        }
    }

    #[test]
    fn counts_per_destination_with_a_cap() {
        let s = OutboundStats::default();
        let now = Instant::now();
        s.end("http://a:80", response(200, 1), now);
        s.end("http://a:80", no_response(1), now);
        s.deny("http://a:80");
        s.deny("http://b:80");
        let snap = s.snapshot();
        let a = &snap[0];
        assert_eq!(
            (a.destination.as_str(), a.requests, a.errors, a.denied),
            ("http://a:80", 3, 1, 1)
        );
        let b = &snap[1];
        assert_eq!(
            (b.destination.as_str(), b.requests, b.errors, b.denied),
            ("http://b:80", 1, 0, 1)
        );
        for i in 0..200 {
            s.deny(&format!("http://h{i}:80"));
        }
        let snap = s.snapshot();
        assert_eq!(snap.len(), MAX_DESTINATIONS + 1);
        let other = snap.iter().find(|d| d.destination == OTHER).unwrap();
        assert_eq!(other.denied, 200 - (MAX_DESTINATIONS as u64 - 2));
    }

    #[test]
    fn responses_are_counted_by_status_class_with_their_latency() {
        let s = OutboundStats::default();
        let now = Instant::now();
        for (status, ms) in [(503, 40), (200, 10), (204, 10), (302, 20), (404, 30)] {
            s.end("http://a:80", response(status, ms), now);
        }
        s.end("http://a:80", no_response(500), now);
        let cut = Ended {
            error: Some("response body over limits.http_max_response_bytes".into()),
            ..response(200, 10)
        };
        s.end("http://a:80", cut, now);
        let a = &s.snapshot()[0];
        assert_eq!(
            (
                a.status_2xx,
                a.status_3xx,
                a.status_4xx,
                a.status_5xx,
                a.failed
            ),
            (3, 1, 1, 1, 1)
        );
        // Failures: the 503, no response, the cut body.
        assert_eq!((a.requests, a.errors), (7, 3));
        assert_eq!(
            a.last_error.as_deref(),
            Some("response body over limits.http_max_response_bytes")
        );
        assert_eq!(a.consecutive_failures, 2);
        // Within the histogram's bound (under 25 % over), never under.
        assert!((20.0..25.0).contains(&a.latency_p50_ms), "{a:?}");
        assert_eq!(a.latency_p99_ms, 500.0, "the maximum is exact");
        assert_eq!(a.latency_max_ms, 500.0);
        let json = serde_json::to_value(a).unwrap();
        assert_eq!(json["breaker"], "closed");
        assert_eq!(json["status_5xx"], 1);
    }

    #[test]
    fn the_breaker_opens_refuses_and_closes_through_a_trial() {
        let s = OutboundStats::new(
            BreakerSettings {
                enabled: true,
                threshold: 2,
                cooldown: 100 * MS,
                max_cooldown: 100 * MS,
            },
            Trust::default(),
        );
        let t0 = Instant::now();
        let d = "http://a:80";
        assert_eq!(s.pass(d, t0).admission, Admission::Go);
        assert!(s.end(d, response(500, 1), t0).is_none());
        let (info, t) = s.end(d, no_response(1), t0).unwrap();
        assert_eq!((t, info.breaker), (Transition::Opened, BreakerState::Open));
        assert_eq!(info.consecutive_failures, 2);
        assert_eq!(s.pass(d, t0 + 50 * MS).admission, Admission::Refused);
        // Another destination has its own breaker.
        assert_eq!(s.pass("http://b:80", t0).admission, Admission::Go);
        let p = s.pass(d, t0 + 100 * MS);
        assert_eq!(p.admission, Admission::Trial);
        let (info, t) = p.change.unwrap();
        assert_eq!(
            (t, info.breaker),
            (Transition::HalfOpened, BreakerState::HalfOpen)
        );
        assert_eq!(s.pass(d, t0 + 100 * MS).admission, Admission::Refused);
        let trial = Ended {
            trial: true,
            ..response(200, 1)
        };
        let (info, t) = s.end(d, trial, t0 + 101 * MS).unwrap();
        assert_eq!(
            (t, info.breaker),
            (Transition::Closed, BreakerState::Closed)
        );
        assert_eq!(
            (info.requests, info.errors, info.breaker_rejected),
            (5, 2, 2)
        );
        assert_eq!(s.pass(d, t0 + 101 * MS).admission, Admission::Go);
    }

    #[test]
    fn a_refusal_after_resolving_is_denied_and_frees_the_trial() {
        let s = OutboundStats::new(
            BreakerSettings {
                enabled: true,
                threshold: 1,
                cooldown: MS,
                max_cooldown: MS,
            },
            Trust::default(),
        );
        let t0 = Instant::now();
        let d = "http://a:80";
        s.end(d, no_response(1), t0);
        assert_eq!(s.pass(d, t0 + MS).admission, Admission::Trial);
        let denied = Ended {
            denied: true,
            trial: true,
            ..Ended::default()
        };
        assert!(s.end(d, denied, t0 + MS).is_none());
        let a = &s.snapshot()[0];
        assert_eq!(
            (a.denied, a.errors, a.breaker),
            (1, 1, BreakerState::HalfOpen)
        );
        assert_eq!(s.pass(d, t0 + MS).admission, Admission::Trial);
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
