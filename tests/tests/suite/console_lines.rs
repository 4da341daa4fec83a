//! The console lines of health and metrics, as an operator sees them at the
//! default console level: `SUBSCRIBED` lines only once something subscribes
//! to a store's health or metrics, the spec's `📡 HEALTH EVENT` lines, and
//! the emitter banner naming the worker, its thread and its subscriber.
//!
//! The test runs alone in a child process ([`ran_alone`]): it installs the
//! process-wide `tracing` subscriber (a console writing into a buffer), as
//! the host binary does.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{ran_alone, WAIT};
use exesdb_host::bus::Channel;
use exesdb_host::config::{Config, ConsoleFormat};
use exesdb_host::emitter::{Start, SubscriptionSpec};
use exesdb_host::host::Host;
use exesdb_host::logging::{filter_directive, sink_to, ConsoleLayer, Painter, Sink};
use exesdb_host::store::Selector;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Clone, Default)]
struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until a line holds every one of `parts`; returns that line.
    async fn line_with(&self, parts: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(l) = self
                .text()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no line with {parts:?} in:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_lines_follow_real_subscriptions_and_health_events_show_by_default() {
    if ran_alone(&[]) {
        return;
    }
    let buf = Buf::default();
    let sink: Sink = sink_to(buf.clone());
    // The console as `[console]` configures it by default.
    let defaults = Config::default().console;
    let console = ConsoleLayer::new(Painter::new(false), ConsoleFormat::Pretty, "n".into(), sink)
        .with_filter(EnvFilter::new(filter_directive(defaults.level)));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(console)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = Config::load_with_env(
        None,
        [
            ("EXESDB_STORES__DATA_DIR", dir.path().to_str().unwrap()),
            ("EXESDB_PLUGINS__BUNDLED", "false"),
            ("EXESDB_API__LISTEN", ""),
            ("EXESDB_RUNTIME__CACHE_DIR", ""),
            ("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "50"),
            ("EXESDB_METRICS__INTERVAL_MS", "50"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    let host = Host::start(config).await.unwrap();
    // Several reports, and nothing subscribed: no SUBSCRIBED line.
    buf.line_with(&["METRICS SUMMARY: Store default"]).await;
    buf.line_with(&["HEALTH SUMMARY: Store default"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!buf.text().contains("SUBSCRIBED"), "{}", buf.text());

    // An operator's console subscribes to every store's health and the
    // default store's metrics summary.
    let ops = host.bus().subscriber("ops-console").unwrap();
    ops.subscribe(Channel::Health, "store_health:>").unwrap();
    ops.subscribe(Channel::Metrics, "metrics_summary:default")
        .unwrap();
    buf.line_with(&[
        "🩺 SUBSCRIBED to health events for store: default",
        "subscriber=ops-console",
    ])
    .await;
    buf.line_with(&[
        "📈 SUBSCRIBED to metrics events for store: default",
        "subscriber=ops-console",
    ])
    .await;

    // An emitter worker on another store follows that store's health: its
    // own line, and its registration's HEALTH EVENTs at the default level.
    let spec = SubscriptionSpec {
        store: "other".into(),
        selector: Selector::All,
        start: Start::Beginning,
        name: None,
    };
    let (id, _batches) = host
        .emitters()
        .subscribe_native(spec, "projection-x", 4)
        .unwrap();
    let line = buf
        .line_with(&[
            "🩺 SUBSCRIBED to health events for store: other",
            "subscriber=projection-x",
        ])
        .await;
    assert!(line.contains(&format!("emitter={id}")), "{line}");
    buf.line_with(&[
        "📡 HEALTH EVENT: projection-x -> registration_success",
        "store=other",
    ])
    .await;
    // `store_health:>` covers the new store too.
    buf.line_with(&[
        "🩺 SUBSCRIBED to health events for store: other",
        "subscriber=ops-console",
    ])
    .await;
    // The banner names the worker, the thread and the subscriber.
    let text = buf.text();
    assert!(
        text.contains(&format!("Worker:     {id} (transient subscription)")),
        "{text}"
    );
    assert!(
        text.contains("Subscriber: projection-x (native handler)"),
        "{text}"
    );
    let thread = text
        .lines()
        .find(|l| l.starts_with("Thread:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        thread.contains(", tid ") && thread.contains(&format!("pid {}", std::process::id())),
        "{thread}"
    );
    assert!(!text.contains("Scheduler:"), "{text}");
    // Once per subscriber, store and family.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(buf.text().matches("subscriber=ops-console").count(), 3);
    host.shutdown().await.unwrap();
}
