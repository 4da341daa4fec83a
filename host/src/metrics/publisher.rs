//! What the host publishes every `[metrics] interval_ms`:
//!
//! - each store's metrics ([`MetricsCollector::publish`]: `store_metrics:<store>`
//!   and `metrics_summary:<store>`);
//! - a `PerformanceAnalysis` on `diagnostics`, topic
//!   `performance_analysis:subscriptions`: the slowest handlers of the
//!   interval by call-time p99 and the deepest inboxes on the bus, with
//!   recommendations when an inbox is nearly full or a handler is slow;
//! - a `ResourceUsage` of the host process on `metrics`, topic
//!   `resource_usage:exesdb_host`: the CPU it used over the interval (a
//!   percentage of one core, from `/proc/self/stat`), its resident memory,
//!   the stores' files on disk and its open file descriptors;
//! - the `LogSummary`s of the interval's log records on `logging`
//!   (`log_summary` and `log_summary:<module>`, see
//!   [`crate::logging::summary`]), when logging is installed.
//!
//! [`MetricsCollector::publish`]: super::MetricsCollector::publish

use std::sync::Arc;
use std::time::Duration;

use super::collector::StoreFigures;
use super::sources::StoreCollectors;
use crate::bus::{Bus, SubscriptionStats};
use crate::health::node::{read_open_handles, read_process_rss_bytes, CpuSampler};
use crate::integration::{send_now, topics};
use crate::logging::LogStats;
use crate::messages::alerts::Severity;
use crate::messages::diagnostics::{AnalysisType, PerformanceAnalysis};
use crate::messages::logging::LogSummary;
use crate::messages::metrics::ResourceUsage;

/// The `component` of the interval's `PerformanceAnalysis`.
pub const ANALYSED: &str = "subscriptions";
/// How many of the slowest handlers and deepest inboxes an analysis names.
pub const TOP: usize = 3;
/// An inbox at least this full (a fraction of its capacity) is a warning.
pub const FULL_INBOX: f64 = 0.8;
/// A handler slower than this at p99 gets a recommendation.
pub const SLOW_CALL: Duration = Duration::from_millis(100);

/// What one interval published.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalReport {
    /// Each store's figures.
    pub stores: Vec<StoreFigures>,
    /// The performance analysis.
    pub analysis: PerformanceAnalysis,
    /// The host process's resources, when they could be read.
    pub resources: Option<ResourceUsage>,
    /// The log summary, when log records are counted.
    pub logs: Option<LogSummary>,
}

/// Publishes the interval's metrics, analysis, resource usage and log
/// summaries.
pub struct Publisher {
    stores: Arc<dyn StoreCollectors>,
    bus: Bus,
    logs: Option<Arc<LogStats>>,
    cpu: CpuSampler,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("bus", &self.bus)
            .field("logs", &self.logs.is_some())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher of `stores`' metrics and, when given, the log counts of
    /// `logs`; the first interval's CPU use is measured from now.
    pub fn new(
        stores: Arc<dyn StoreCollectors>,
        bus: Bus,
        logs: Option<Arc<LogStats>>,
    ) -> Publisher {
        Publisher {
            stores,
            bus,
            logs,
            cpu: CpuSampler::new(),
        }
    }

    /// Publishes one interval.
    pub fn publish(&mut self) -> IntervalReport {
        let stores: Vec<StoreFigures> = self
            .stores
            .collectors()
            .iter()
            .map(|c| c.publish())
            .collect();
        let analysis = analyse(&stores, &self.bus.stats());
        send_now(
            &self.bus,
            &topics::performance_analysis(ANALYSED),
            &analysis,
        );
        let resources = self.resource_usage();
        if let Some(r) = &resources {
            send_now(&self.bus, &topics::resource_usage(&r.component), r);
        }
        let logs = self.logs.as_ref().map(|stats| {
            let counts = stats.take();
            for (module, summary) in counts.module_summaries() {
                send_now(&self.bus, &topics::log_summary_of(&module), &summary);
            }
            let summary = counts.summary();
            send_now(&self.bus, topics::LOG_SUMMARY, &summary);
            summary
        });
        IntervalReport {
            stores,
            analysis,
            resources,
            logs,
        }
    }

    fn resource_usage(&mut self) -> Option<ResourceUsage> {
        let cpu_percent = self.cpu.sample()?;
        Some(ResourceUsage {
            component: crate::messages::system::SYSTEM_NAME.to_owned(),
            cpu_percent,
            memory_bytes: read_process_rss_bytes().unwrap_or(0),
            disk_bytes: self.stores.disk_bytes(),
            open_handles: read_open_handles().unwrap_or(0),
        })
    }

    /// Publishes every `interval` until the task is aborted.
    pub async fn run(mut self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.publish();
        }
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The analysis of one interval: the [`TOP`] slowest handlers by call-time
/// p99 over `stores`' subscriptions, and the [`TOP`] deepest inboxes among
/// `queues` (every bus subscriber). `warning` when an inbox is at least
/// [`FULL_INBOX`] full or a handler's p99 is a second or more, else `info`.
pub fn analyse(stores: &[StoreFigures], queues: &[SubscriptionStats]) -> PerformanceAnalysis {
    let mut findings = Vec::new();
    let mut recommendations = Vec::new();
    let mut severity = Severity::Info;

    let mut calls: Vec<(&str, &super::SubscriptionFigures)> = stores
        .iter()
        .flat_map(|f| f.subscriptions.iter().map(move |s| (f.store.as_str(), s)))
        .filter(|(_, s)| !s.call_time.is_empty())
        .collect();
    calls.sort_by(|a, b| {
        b.1.call_time
            .p99_us
            .cmp(&a.1.call_time.p99_us)
            .then_with(|| a.1.name.cmp(&b.1.name))
    });
    for (store, s) in calls.iter().take(TOP) {
        let c = &s.call_time;
        findings.push(format!(
            "slow handler: `{}` (store {store}) call time p99 {:.3} ms, max {:.3} ms over {} calls",
            s.name,
            ms(c.p99_us),
            ms(c.max_us),
            c.count
        ));
        if Duration::from_micros(c.p99_us) >= SLOW_CALL {
            recommendations.push(format!(
                "`{}` takes {:.1} ms per call at p99: make its handler cheaper or \
                 move slow work off the message path",
                s.name,
                ms(c.p99_us)
            ));
        }
        if c.p99_us >= 1_000_000 {
            severity = Severity::Warning;
        }
    }

    let mut deep: Vec<&SubscriptionStats> = queues.iter().filter(|q| q.queue_depth > 0).collect();
    deep.sort_by(|a, b| {
        b.queue_depth
            .cmp(&a.queue_depth)
            .then_with(|| a.name.cmp(&b.name))
    });
    for q in deep.iter().take(TOP) {
        findings.push(format!(
            "deep queue: `{}` has {} of {} messages waiting ({} dropped since start)",
            q.name, q.queue_depth, q.capacity, q.dropped
        ));
        let fill = q.queue_depth as f64 / q.capacity.max(1) as f64;
        if fill >= FULL_INBOX {
            severity = Severity::Warning;
            recommendations.push(format!(
                "`{}`'s inbox is {:.0} % full: speed up its handler, narrow its \
                 subscriptions or raise `[bus] inbox_capacity`",
                q.name,
                fill * 100.0
            ));
        }
    }

    PerformanceAnalysis {
        analysis_id: uuid::Uuid::now_v7().to_string(),
        component: ANALYSED.to_owned(),
        analysis_type: AnalysisType::Bottleneck,
        findings,
        recommendations,
        severity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BusConfig, Channel, OverflowPolicy, SubscriberOptions};
    use crate::messages::logging::LogLevel;
    use crate::metrics::MetricsCollector;

    /// Stores known only by their collectors, taking `disk` bytes.
    struct Collectors {
        collectors: Vec<Arc<MetricsCollector>>,
        disk: u64,
    }

    impl StoreCollectors for Collectors {
        fn collectors(&self) -> Vec<Arc<MetricsCollector>> {
            self.collectors.clone()
        }

        fn disk_bytes(&self) -> u64 {
            self.disk
        }
    }

    fn drain(sub: &crate::bus::Subscriber) -> Vec<Arc<crate::messages::Envelope>> {
        std::iter::from_fn(|| sub.try_recv()).collect()
    }

    #[tokio::test]
    async fn an_interval_names_the_slow_handler_uses_real_cpu_and_summarises_logs() {
        let bus = Bus::new(BusConfig::default());
        let default = MetricsCollector::new("default", bus.clone());
        let stores = Arc::new(Collectors {
            collectors: vec![Arc::clone(&default)],
            disk: 4096,
        });
        let watch = bus.subscriber("watch").unwrap();
        watch
            .subscribe(Channel::Diagnostics, "performance_analysis:>")
            .unwrap();
        watch
            .subscribe(Channel::Metrics, "resource_usage:>")
            .unwrap();
        watch.subscribe(Channel::Logging, "log_summary").unwrap();
        watch.subscribe(Channel::Logging, "log_summary:>").unwrap();

        // Two handlers: `slow` takes 40 ms a call, `quick` 1 ms.
        let slow = default.register("slow");
        let quick = default.register("quick");
        for _ in 0..5 {
            slow.call_time.record(Duration::from_millis(40));
            quick.call_time.record(Duration::from_millis(1));
        }
        // A subscriber whose inbox fills up (capacity 4, never read).
        let stuck = bus
            .subscriber_with(
                "stuck",
                SubscriberOptions {
                    capacity: Some(4),
                    policy: Some(OverflowPolicy::DropOldest),
                },
            )
            .unwrap();
        stuck.subscribe(Channel::Events, "default:>").unwrap();
        // Six events appended to the store, as the store announces and
        // counts them.
        for n in 0..6 {
            let env = crate::messages::Envelope::new(
                Channel::Events,
                "default:s",
                "E",
                serde_json::json!(n),
                bus.node(),
            );
            bus.publish_now(env).unwrap();
        }
        default.record_events(6);

        let logs = Arc::new(LogStats::default());
        logs.record(LogLevel::Info, "exesdb_host.store", "appended");
        logs.record(LogLevel::Error, "plugin:slow", "boom");

        let mut publisher = Publisher::new(stores, bus.clone(), Some(logs));
        // Busy for a while: the interval's CPU use is this thread's spinning.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let report = publisher.publish();

        let a = &report.analysis;
        assert_eq!(a.component, ANALYSED);
        assert!(a.findings[0].contains("`slow`"), "slowest first: {a:?}");
        assert!(a.findings[0].contains("40.000 ms"), "{a:?}");
        assert!(a.findings[1].contains("`quick`"), "{a:?}");
        let deep: Vec<_> = a
            .findings
            .iter()
            .filter(|f| f.contains("`stuck`"))
            .collect();
        assert_eq!(deep.len(), 1, "{a:?}");
        assert!(deep[0].contains("4 of 4"), "{a:?}");
        assert_eq!(a.severity, Severity::Warning, "a full inbox: {a:?}");
        assert!(
            a.recommendations.iter().any(|r| r.contains("`stuck`")),
            "{a:?}"
        );

        let r = report.resources.clone().expect("resource figures on Linux");
        assert_eq!(r.component, crate::messages::system::SYSTEM_NAME);
        assert!(r.cpu_percent > 0.0, "{r:?}");
        assert!(r.memory_bytes > 0 && r.open_handles > 0, "{r:?}");
        assert_eq!(r.disk_bytes, 4096, "the stores' files: {r:?}");

        let logs = report.logs.clone().unwrap();
        assert_eq!((logs.total_logs, logs.log_counts["error"]), (2, 1));
        assert_eq!(report.stores.len(), 1);
        assert_eq!(report.stores[0].total_events, 6);

        // All of it on the bus, on the documented topics.
        let envs = drain(&watch);
        let topics: Vec<&str> = envs.iter().map(|e| e.topic.as_str()).collect();
        for t in [
            "performance_analysis:subscriptions",
            "resource_usage:exesdb_host",
            "log_summary",
            "log_summary:exesdb_host.store",
            "log_summary:plugin:slow",
        ] {
            assert!(topics.contains(&t), "no {t} in {topics:?}");
        }
        let sent: ResourceUsage = envs
            .iter()
            .find(|e| e.topic.starts_with("resource_usage:"))
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(sent, r);

        // The next interval: no calls, and only what is queued now.
        let next = publisher.publish();
        assert!(
            next.analysis
                .findings
                .iter()
                .all(|f| !f.contains("slow handler")),
            "{:?}",
            next.analysis
        );
        assert_eq!(next.logs.unwrap().total_logs, 0);
        drop(stuck);
        drain(&watch);
        let calm = publisher.publish();
        assert_eq!(
            calm.analysis.severity,
            Severity::Info,
            "{:?}",
            calm.analysis
        );
        assert!(calm.analysis.findings.is_empty(), "{:?}", calm.analysis);
    }
}
