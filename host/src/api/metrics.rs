//! `GET /metrics` (scope `read`): the host's figures in the OpenMetrics
//! text format (`application/openmetrics-text; version=1.0.0`), which
//! Prometheus scrapes by default, written by `prometheus-client`.
//!
//! # How
//! Nearly everything is collected **at scrape time** from what the host
//! already keeps: the bus's per-channel and per-subscriber counters, each
//! plugin's [`PluginInfo`], the health trackers and metrics collectors of
//! every store ([`Stores::monitors`](crate::emitter::Stores::monitors)),
//! the emitter workers and the stores' heads. A scrape takes a snapshot
//! of those and encodes it through one custom
//! [`Collector`] registered in a fresh registry; nothing is added to the
//! publish or delivery path. (Measured with 10 / 1,000 / 10,000
//! subscribers × 3 series: the collector encodes a scrape in 7.5 µs /
//! 0.44 ms / 3.5 ms, registering fresh `Family`s per scrape takes 20 µs /
//! 1.9 ms / 44 ms — and cannot carry the histograms' own buckets.)
//!
//! The exceptions, each a relaxed atomic or two:
//! - API requests are counted as they finish (`count`, a middleware
//!   outside authentication, so refusals are counted too) in a
//!   `prometheus-client` [`Family`] keyed by method, route pattern
//!   ([`MatchedPath`], `unmatched` for the 404 fallback) and status;
//! - the bus counts deliveries per channel beside its publish counter (same
//!   cache line; both off with `[metrics] enabled = false`, and then the two
//!   `exesdb_bus_*` families are left out);
//! - each store's collector keeps a histogram of append durations.
//!
//! Histograms come from the host's lock-free latency histograms: the plugin
//! call-time histograms that the `[metrics]` publisher resets every
//! interval keep the taken intervals' counts, so the exported histogram is
//! cumulative. Their log-linear buckets are exported at every power of two
//! from 8 µs to 2²⁶ µs (≈ 67 s), plus `+Inf`.
//!
//! The metric list is in `docs/api.md`, section *Metrics*.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelSetEncoder,
    LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::auth::{Need, Principal};
use super::error::ApiError;
use super::ApiState;
use crate::bus::{Channel, SubscriptionStats};
use crate::emitter::EmitterInfo;
use crate::health::SubscriptionHealthState;
use crate::messages::tracking::{BreakerState, SubscriptionStatus};
use crate::metrics::histogram::HistogramCounts;
use crate::metrics::MetricsCollector;
use crate::runtime::{PluginInfo, PluginRunState as PluginState};

/// The content type of the answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `route` of a request no route matched (the 404 fallback).
pub const UNMATCHED: &str = "unmatched";

/// Exported histogram bounds: 2^e µs for e in this range, then `+Inf`.
const FIRST_EXP: u32 = 3;
const LAST_EXP: u32 = 26;

// ---- API requests -------------------------------------------------------------

/// One API request series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RequestKey {
    method: axum::http::Method,
    route: String,
    status: u16,
}

impl EncodeLabelSet for RequestKey {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        let status = self.status.to_string();
        [
            ("method", Value(self.method.as_str())),
            ("route", Value(&self.route)),
            ("status", Value(&status)),
        ]
        .encode(encoder)
    }
}

/// The API requests counted so far, by method, route and status.
#[derive(Debug, Default)]
pub(crate) struct Requests(Family<RequestKey, Counter>);

/// Middleware counting every request once its answer is known.
pub(crate) async fn count(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let answer = next.run(req).await;
    let key = RequestKey {
        method,
        route,
        status: answer.status().as_u16(),
    };
    state.requests.0.get_or_create(&key).inc();
    answer
}

// ---- the route ------------------------------------------------------------------

/// `GET /metrics`: the OpenMetrics text (scope `read`).
pub(crate) async fn scrape(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Result<Response, ApiError> {
    state.require(&who, &Need::Read, "metrics")?;
    // Store heads are read from disk: off the async workers.
    let text = tokio::task::spawn_blocking(move || render(&state))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("collecting the metrics failed: {e}"),
            )
        })?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// The whole exposition, ending with `# EOF`.
pub(crate) fn render(state: &ApiState) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot::take(state)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("encoding into a String cannot fail");
    text
}

// ---- the snapshot ---------------------------------------------------------------

/// Everything one scrape reports, read at once.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Per channel: published, delivered (`None` when counting is off).
    channels: Option<Vec<(Channel, u64, u64)>>,
    subscribers: Vec<SubscriptionStats>,
    /// Each plugin with its call times (every store's collector merged).
    plugins: Vec<(PluginInfo, HistogramCounts)>,
    /// Per store, its tracked subscriptions.
    health: Vec<(String, Vec<SubscriptionHealthState>)>,
    /// Per store: appended events, append durations.
    stores: Vec<(String, u64, HistogramCounts)>,
    /// Each emitter with its lag.
    emitters: Vec<(EmitterInfo, u64)>,
    requests: Family<RequestKey, Counter>,
    stream_clients: usize,
    max_stream_clients: usize,
}

impl Snapshot {
    /// Reads the figures of `state`'s host.
    pub(crate) fn take(state: &ApiState) -> Snapshot {
        let bus = &state.bus;
        let channels = bus.config().count_published.then(|| {
            Channel::ALL
                .iter()
                .map(|&c| (c, bus.published(c), bus.delivered(c)))
                .collect()
        });
        let monitors = state.stores.monitors();
        // Every collector once: the plugins' own is normally the default
        // store's, adopted by the stores.
        let mut collectors: Vec<Arc<MetricsCollector>> = Vec::new();
        for c in monitors
            .iter()
            .map(|m| &m.metrics)
            .chain([state.plugins.metrics()])
        {
            if !collectors.iter().any(|k| Arc::ptr_eq(k, c)) {
                collectors.push(Arc::clone(c));
            }
        }
        let plugins = state
            .plugins
            .list()
            .into_iter()
            .map(|p| {
                let mut calls = HistogramCounts::default();
                for c in &collectors {
                    if let Some(m) = c.subscription(&p.name) {
                        calls.add(&m.call_time_total());
                    }
                }
                (p, calls)
            })
            .collect();
        let health = monitors
            .iter()
            .map(|m| (m.health.store().to_owned(), m.health.list()))
            .collect();
        let stores = monitors
            .iter()
            .map(|m| {
                let c = &m.metrics;
                (c.store().to_owned(), c.total_events(), c.append_times())
            })
            .collect();
        let mut heads: BTreeMap<String, Option<u64>> = BTreeMap::new();
        let emitters = state
            .emitters
            .list()
            .into_iter()
            .map(|e| {
                let head = *heads.entry(e.store.clone()).or_insert_with(|| {
                    state
                        .stores
                        .get(&e.store)
                        .ok()
                        .and_then(|s| s.head_position().ok().flatten())
                });
                // The same figure as `GET /v1/emitters`.
                let lag = head.map_or(0, |h| (h + 1).saturating_sub(e.position));
                (e, lag)
            })
            .collect();
        let max_stream_clients = state.config.max_stream_clients;
        Snapshot {
            channels,
            subscribers: bus.stats(),
            plugins,
            health,
            stores,
            emitters,
            requests: state.requests.0.clone(),
            stream_clients: max_stream_clients
                .saturating_sub(state.stream_slots.available_permits()),
            max_stream_clients,
        }
    }
}

// ---- encoding -------------------------------------------------------------------

/// A label value, escaped as the text format requires (`\\`, `\"`, `\n`);
/// `prometheus-client` writes label values as given.
#[derive(Debug, Clone, Copy)]
struct Value<'a>(&'a str);

impl EncodeLabelValue for Value<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(&rest[..i])?;
            encoder.write_str(match rest.as_bytes()[i] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[i + 1..];
        }
        encoder.write_str(rest)
    }
}

/// A metric family's descriptor.
struct Desc {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
}

const fn desc(name: &'static str, help: &'static str) -> Desc {
    Desc {
        name,
        help,
        unit: None,
    }
}

fn with_unit(name: &'static str, unit: &'static str, help: &'static str) -> Desc {
    Desc {
        name,
        help,
        unit: Some(match unit {
            "seconds" => Unit::Seconds,
            other => Unit::Other(other.to_owned()),
        }),
    }
}

/// One sample: labels and value.
type Row<'a, const N: usize> = ([(&'static str, Value<'a>); N], u64);

/// Writes a family of `kind` (counter or gauge) with `rows`.
fn family<'a, const N: usize>(
    enc: &mut DescriptorEncoder<'_>,
    d: &Desc,
    kind: MetricType,
    rows: impl IntoIterator<Item = Row<'a, N>>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(d.name, d.help, d.unit.as_ref(), kind)?;
    for (labels, v) in rows {
        let e = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(v).encode(e)?,
            _ => ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(e)?,
        }
    }
    Ok(())
}

fn counters<'a, const N: usize>(
    enc: &mut DescriptorEncoder<'_>,
    d: &Desc,
    rows: impl IntoIterator<Item = Row<'a, N>>,
) -> std::fmt::Result {
    family(enc, d, MetricType::Counter, rows)
}

fn gauges<'a, const N: usize>(
    enc: &mut DescriptorEncoder<'_>,
    d: &Desc,
    rows: impl IntoIterator<Item = Row<'a, N>>,
) -> std::fmt::Result {
    family(enc, d, MetricType::Gauge, rows)
}

/// Writes a gauge without labels.
fn gauge(enc: &mut DescriptorEncoder<'_>, d: &Desc, v: usize) -> std::fmt::Result {
    let m = enc.encode_descriptor(d.name, d.help, d.unit.as_ref(), MetricType::Gauge)?;
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m)
}

/// Writes a histogram family, one histogram per label set.
fn histograms<'a, const N: usize>(
    enc: &mut DescriptorEncoder<'_>,
    d: &Desc,
    rows: impl IntoIterator<Item = ([(&'static str, Value<'a>); N], &'a HistogramCounts)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(d.name, d.help, d.unit.as_ref(), MetricType::Histogram)?;
    for (labels, counts) in rows {
        let mut e: MetricEncoder<'_> = m.encode_family(&labels)?;
        let buckets = buckets(counts);
        e.encode_histogram::<NoLabelSet>(
            counts.sum_us() as f64 / 1e6,
            counts.samples(),
            &buckets,
            None,
        )?;
    }
    Ok(())
}

/// `counts` in the exported buckets: `(bound in seconds, samples in this
/// bucket only)`, the last bound `f64::MAX` (written `+Inf`). A sample
/// recorded as `v` whole microseconds took less than `v + 1` µs, so it
/// belongs to the first bound `2^e ≥ v + 1` µs; the host's buckets nest in
/// these exactly.
fn buckets(counts: &HistogramCounts) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = (FIRST_EXP..=LAST_EXP)
        .map(|e| ((1u64 << e) as f64 / 1e6, 0))
        .collect();
    out.push((f64::MAX, 0));
    let overflow = out.len() - 1;
    for (upper, n) in counts.buckets().filter(|(_, n)| *n > 0) {
        let slot = match upper.checked_add(1) {
            None => overflow,
            Some(bound) => {
                // ceil(log2(bound)), bound >= 1
                let e = u64::BITS - (bound - 1).leading_zeros();
                if e > LAST_EXP {
                    overflow
                } else {
                    e.saturating_sub(FIRST_EXP) as usize
                }
            }
        };
        out[slot].1 += n;
    }
    out
}

const PLUGIN_STATES: [(PluginState, &str); 5] = [
    (PluginState::Running, "running"),
    (PluginState::Restarting, "restarting"),
    (PluginState::Parked, "parked"),
    (PluginState::Stopped, "stopped"),
    (PluginState::Unloaded, "unloaded"),
];

const BREAKER_STATES: [BreakerState; 3] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
];

const STATUSES: [SubscriptionStatus; 5] = [
    SubscriptionStatus::Registering,
    SubscriptionStatus::Healthy,
    SubscriptionStatus::Degraded,
    SubscriptionStatus::Failed,
    SubscriptionStatus::Unknown,
];

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let enc = &mut enc;
        self.encode_bus(enc)?;
        self.encode_plugins(enc)?;
        self.encode_health(enc)?;
        self.encode_stores(enc)?;
        self.encode_api(enc)
    }
}

impl Snapshot {
    fn encode_bus(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        if let Some(channels) = &self.channels {
            counters(
                enc,
                &desc(
                    "exesdb_bus_published",
                    "Messages accepted for publication, by channel.",
                ),
                channels
                    .iter()
                    .map(|(c, p, _)| ([("channel", Value(c.as_str()))], *p)),
            )?;
            counters(
                enc,
                &desc(
                    "exesdb_bus_delivered",
                    "Messages put into subscribers' inboxes (one per receiving subscriber, later evictions included), by channel.",
                ),
                channels
                    .iter()
                    .map(|(c, _, d)| ([("channel", Value(c.as_str()))], *d)),
            )?;
        }
        let ids: Vec<String> = self
            .subscribers
            .iter()
            .map(|s| s.id.0.to_string())
            .collect();
        fn sub<'a>(s: &'a SubscriptionStats, id: &'a str) -> [(&'static str, Value<'a>); 2] {
            [("subscriber", Value(&s.name)), ("id", Value(id))]
        }
        let subs = || self.subscribers.iter().zip(&ids);
        counters(
            enc,
            &desc(
                "exesdb_subscriber_delivered",
                "Messages put into the subscriber's inbox, evicted ones included.",
            ),
            subs().map(|(s, id)| (sub(s, id), s.delivered)),
        )?;
        counters(
            enc,
            &desc(
                "exesdb_subscriber_dropped",
                "Messages evicted from the subscriber's inbox (drop_oldest overflow).",
            ),
            subs().map(|(s, id)| (sub(s, id), s.dropped)),
        )?;
        gauges(
            enc,
            &with_unit(
                "exesdb_subscriber_queue",
                "messages",
                "Messages waiting in the subscriber's inbox.",
            ),
            subs().map(|(s, id)| (sub(s, id), s.queue_depth as u64)),
        )?;
        gauges(
            enc,
            &with_unit(
                "exesdb_subscriber_capacity",
                "messages",
                "Capacity of the subscriber's inbox.",
            ),
            subs().map(|(s, id)| (sub(s, id), s.capacity as u64)),
        )
    }

    fn encode_plugins(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        fn plugin(p: &PluginInfo) -> [(&'static str, Value<'_>); 1] {
            [("plugin", Value(&p.name))]
        }
        let infos = || self.plugins.iter().map(|(p, _)| p);
        counters(
            enc,
            &desc(
                "exesdb_plugin_calls",
                "Messages handed to the plugin (handled or failed).",
            ),
            infos().map(|p| (plugin(p), p.delivered + p.failed)),
        )?;
        counters(
            enc,
            &desc(
                "exesdb_plugin_errors",
                "Messages whose handling failed (an error or a trap).",
            ),
            infos().map(|p| (plugin(p), p.failed)),
        )?;
        counters(
            enc,
            &desc("exesdb_plugin_traps", "Traps of the plugin's instances."),
            infos().map(|p| (plugin(p), p.traps)),
        )?;
        counters(
            enc,
            &desc("exesdb_plugin_restarts", "Instances started after a trap."),
            infos().map(|p| (plugin(p), p.restarts)),
        )?;
        counters(
            enc,
            &desc(
                "exesdb_plugin_violations",
                "Host calls refused because they were outside the plugin's grants.",
            ),
            infos().map(|p| (plugin(p), p.violations)),
        )?;
        counters(
            enc,
            &desc(
                "exesdb_plugin_dropped",
                "Messages the plugin's inbox dropped (drop_oldest overflow).",
            ),
            infos().map(|p| (plugin(p), p.dropped)),
        )?;
        gauges(
            enc,
            &desc(
                "exesdb_plugin_state",
                "1 for the plugin's current run state, 0 for the others.",
            ),
            infos().flat_map(|p| {
                PLUGIN_STATES.iter().map(move |&(s, name)| {
                    (
                        [("plugin", Value(&p.name)), ("state", Value(name))],
                        u64::from(s == p.state),
                    )
                })
            }),
        )?;
        histograms(
            enc,
            &with_unit(
                "exesdb_plugin_call_duration",
                "seconds",
                "Duration of each call into the plugin (one message, a batch or an alert).",
            ),
            self.plugins.iter().map(|(p, calls)| (plugin(p), calls)),
        )
    }

    fn encode_health(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let all = || {
            self.health
                .iter()
                .flat_map(|(store, subs)| subs.iter().map(move |s| (store.as_str(), s)))
        };
        gauges(
            enc,
            &desc(
                "exesdb_subscription_breaker_state",
                "1 for the subscription's current circuit-breaker state, 0 for the others.",
            ),
            all().flat_map(|(store, s)| {
                BREAKER_STATES.iter().map(move |&b| {
                    (
                        [
                            ("store", Value(store)),
                            ("subscription", Value(&s.name)),
                            ("state", Value(b.as_str())),
                        ],
                        u64::from(b == s.breaker),
                    )
                })
            }),
        )?;
        gauges(
            enc,
            &desc(
                "exesdb_subscription_status",
                "1 for the subscription's current health status, 0 for the others.",
            ),
            all().flat_map(|(store, s)| {
                STATUSES.iter().map(move |&st| {
                    (
                        [
                            ("store", Value(store)),
                            ("subscription", Value(&s.name)),
                            ("status", Value(st.as_str())),
                        ],
                        u64::from(st == s.status),
                    )
                })
            }),
        )
    }

    fn encode_stores(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        counters(
            enc,
            &with_unit(
                "exesdb_store_appended",
                "events",
                "Events appended to the store (idempotent retries not counted again).",
            ),
            self.stores
                .iter()
                .map(|(store, n, _)| ([("store", Value(store))], *n)),
        )?;
        histograms(
            enc,
            &with_unit(
                "exesdb_store_append_duration",
                "seconds",
                "Duration of each successful append (the write, one atomic batch); its count is the number of appends.",
            ),
            self.stores
                .iter()
                .map(|(store, _, times)| ([("store", Value(store))], times)),
        )?;
        fn emitter(e: &EmitterInfo) -> [(&'static str, Value<'_>); 3] {
            [
                ("emitter", Value(&e.id)),
                ("store", Value(&e.store)),
                ("subscriber", Value(&e.subscriber)),
            ]
        }
        gauges(
            enc,
            &desc(
                "exesdb_emitter_position",
                "The next global position the emitter worker delivers.",
            ),
            self.emitters.iter().map(|(e, _)| (emitter(e), e.position)),
        )?;
        gauges(
            enc,
            &with_unit(
                "exesdb_emitter_lag",
                "events",
                "Events in the store the emitter worker has not delivered yet (head + 1 - position).",
            ),
            self.emitters.iter().map(|(e, lag)| (emitter(e), *lag)),
        )?;
        counters(
            enc,
            &with_unit(
                "exesdb_emitter_delivered",
                "events",
                "Events the emitter worker's subscriber acknowledged.",
            ),
            self.emitters.iter().map(|(e, _)| (emitter(e), e.delivered)),
        )?;
        gauges(
            enc,
            &desc(
                "exesdb_emitter_paused",
                "1 while the emitter worker is paused because its subscriber is unhealthy.",
            ),
            self.emitters
                .iter()
                .map(|(e, _)| (emitter(e), u64::from(e.paused))),
        )
    }

    fn encode_api(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let m = enc.encode_descriptor(
            "exesdb_api_requests",
            "API requests answered, by method, route pattern and status.",
            None,
            MetricType::Counter,
        )?;
        self.requests.encode(m)?;
        gauge(
            enc,
            &desc(
                "exesdb_api_stream_clients",
                "Connected stream clients (SSE and WebSocket).",
            ),
            self.stream_clients,
        )?;
        gauge(
            enc,
            &desc(
                "exesdb_api_stream_clients_limit",
                "The most stream clients at once ([api] max_stream_clients).",
            ),
            self.max_stream_clients,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::LatencyHistogram;

    #[test]
    fn host_buckets_nest_in_the_exported_powers_of_two() {
        let h = LatencyHistogram::new();
        for us in [0, 7, 8, 9, 15, 16, 1_000, (1 << 26) - 1, 1 << 26, u64::MAX] {
            h.record_micros(us);
        }
        let b = buckets(&h.counts());
        assert_eq!(b.len(), (LAST_EXP - FIRST_EXP + 2) as usize);
        assert_eq!(b[0].0, 8e-6);
        assert_eq!(b[b.len() - 2].0, 67.108864);
        assert_eq!(b[b.len() - 1].0, f64::MAX);
        let filled: Vec<(f64, u64)> = b.iter().copied().filter(|(_, n)| *n > 0).collect();
        assert_eq!(
            filled,
            vec![
                // 0 and 7 µs took less than 8 µs; 8 and 9 share a host bucket
                // (8..=9), so they are under 16 µs, as are 15 …
                (8e-6, 2),
                (16e-6, 3),
                // … and 16 (16..=19) is under 32 µs.
                (32e-6, 1),
                (1.024e-3, 1),
                (67.108864, 1),
                (f64::MAX, 2),
            ]
        );
        assert_eq!(b.iter().map(|(_, n)| n).sum::<u64>(), 10);
        assert!(buckets(&HistogramCounts::default())
            .iter()
            .all(|(_, n)| *n == 0));
    }

    #[derive(Debug)]
    struct One(&'static str);

    impl Collector for One {
        fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
            counters(
                &mut enc,
                &desc("t_things", "Things."),
                [([("name", Value(self.0))], 3)],
            )?;
            gauge(&mut enc, &with_unit("t_size", "bytes", "Size."), 5)
        }
    }

    fn text_of(c: One) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(c));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn label_values_are_escaped() {
        let text = text_of(One("a\"b\\c\nd"));
        assert!(
            text.contains("t_things_total{name=\"a\\\"b\\\\c\\nd\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE t_things counter\n"), "{text}");
        assert!(
            text.contains("# UNIT t_size_bytes bytes\nt_size_bytes 5\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text_of(One("plain")).contains("t_things_total{name=\"plain\"} 3\n"));
    }
}
