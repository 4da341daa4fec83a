//! Subscription health and circuit breakers, with real plugins: the
//! `test-guest` component failing always, every Nth message, or until it
//! recovers; and each `[health_monitoring]` key changing behaviour.

use std::time::{Duration, Instant};

use crate::common::*;
use exesdb_host::bus::{Bus, BusConfig, Channel, Subscriber};
use exesdb_host::config::HealthMonitoring;
use exesdb_host::health::HealthTracker;
use exesdb_host::messages::tracking::{
    BreakerState, HealthEventType, SubscriptionHealth, SubscriptionStatus,
};
use exesdb_host::metrics::MetricsCollector;
use exesdb_host::runtime::{Actor, Plugins, Runtime};
use serde_json::json;

fn monitoring(threshold: u32, breaker: bool, cooldown_ms: u64) -> HealthMonitoring {
    HealthMonitoring {
        enabled: true,
        check_interval: 5000,
        unhealthy_threshold: threshold,
        circuit_breaker_enabled: breaker,
        cooldown_ms,
        max_cooldown_ms: cooldown_ms * 8,
    }
}

fn setup_with(config: HealthMonitoring) -> (Bus, Plugins) {
    let bus = Bus::new(BusConfig::default());
    let health = HealthTracker::new("default", config, bus.clone());
    let metrics = MetricsCollector::new("default", bus.clone());
    let plugins =
        Plugins::with_monitoring(Runtime::new().unwrap(), bus.clone(), 64, health, metrics);
    (bus, plugins)
}

fn load(plugins: &Plugins, name: &str, mode: &str, n: Option<i64>) {
    let m = manifest("test-guest", name, |t| {
        let config = t["config"].as_table_mut().unwrap();
        config.insert("mode".into(), mode.into());
        if let Some(n) = n {
            config.insert("n".into(), n.into());
        }
    });
    plugins
        .load(Actor::Operator, m, &wasm("test-guest"))
        .unwrap();
}

fn health_watch(bus: &Bus, name: &str) -> Subscriber {
    watch(
        bus,
        Channel::Health,
        &format!("subscription_health:default:{name}"),
    )
}

async fn next_health(sub: &Subscriber) -> SubscriptionHealth {
    next(sub).await.decode().unwrap()
}

/// Waits for the health event `event`, returning it; skips others.
async fn until_event(sub: &Subscriber, event: HealthEventType) -> SubscriptionHealth {
    next_where(sub, |e| {
        e.decode::<SubscriptionHealth>()
            .is_ok_and(|h| h.event == event)
    })
    .await
    .decode()
    .unwrap()
}

async fn publish_n(bus: &Bus, n: usize) {
    for i in 0..n {
        publish_event(bus, "s:x", json!({ "n": i })).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_at_the_threshold_holds_messages_and_others_receive_everything() {
    let (bus, plugins) = setup_with(monitoring(3, true, 600));
    let watch_broken = health_watch(&bus, "broken");
    load(&plugins, "broken", "fail-always", None);
    load(&plugins, "steady", "echo", None);
    let echoes = watch(&bus, Channel::Diagnostics, "echo:steady");

    let started = next_health(&watch_broken).await;
    assert_eq!(
        (started.event, started.status),
        (
            HealthEventType::RegistrationStarted,
            SubscriptionStatus::Registering
        )
    );
    let reg = next_health(&watch_broken).await;
    assert_eq!(
        (reg.event, reg.status),
        (
            HealthEventType::RegistrationSuccess,
            SubscriptionStatus::Healthy
        )
    );

    // One at a time, so each failure is its own delivery.
    let mut statuses = Vec::new();
    for i in 0..3 {
        publish_event(&bus, "s:x", json!({ "n": i })).await;
        let h = until_event(&watch_broken, HealthEventType::DeliveryFailed).await;
        statuses.push((h.status, h.consecutive_failures));
    }
    assert_eq!(
        statuses,
        vec![
            (SubscriptionStatus::Degraded, 1),
            (SubscriptionStatus::Degraded, 2),
            (SubscriptionStatus::Failed, 3)
        ]
    );
    let opened = next_health(&watch_broken).await;
    assert_eq!(
        (opened.event, opened.breaker),
        (HealthEventType::CircuitBreakerOpened, BreakerState::Open)
    );
    let opened_at = Instant::now();

    // While open nothing is delivered: messages wait in the inbox.
    publish_n(&bus, 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sub = plugins.status("broken").unwrap().subscriber.unwrap();
    assert_eq!(
        bus.stats_of(sub).unwrap().queue_depth,
        5,
        "held in the inbox"
    );
    assert_eq!(plugins.status("broken").unwrap().failed, 3);
    let tracked = plugins.health().subscription("broken").unwrap();
    assert_eq!(
        (tracked.status, tracked.breaker),
        (SubscriptionStatus::Failed, BreakerState::Open)
    );

    // After the cooldown: half-open, one trial, which fails: open again.
    let half = until_event(&watch_broken, HealthEventType::CircuitBreakerHalfOpen).await;
    assert!(
        opened_at.elapsed() >= Duration::from_millis(550),
        "{:?}",
        opened_at.elapsed()
    );
    assert_eq!(half.breaker, BreakerState::HalfOpen);
    let trial = next_health(&watch_broken).await;
    assert_eq!(trial.event, HealthEventType::DeliveryFailed);
    let reopened = next_health(&watch_broken).await;
    assert_eq!(reopened.event, HealthEventType::CircuitBreakerOpened);
    assert_eq!(
        bus.stats_of(sub).unwrap().queue_depth,
        4,
        "exactly one trial message was taken"
    );

    // The other plugin received all 8 meanwhile.
    for _ in 0..8 {
        next(&echoes).await;
    }
    let summary = plugins.health().summary();
    assert_eq!((summary.total, summary.healthy, summary.failed), (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovering_plugin_half_opens_with_back_off_and_closes() {
    let (bus, plugins) = setup_with(monitoring(3, true, 150));
    let w = health_watch(&bus, "phoenix");
    load(&plugins, "phoenix", "recover-after", Some(5));
    let echoes = watch(&bus, Channel::Diagnostics, "echo:phoenix");
    for i in 0..3 {
        publish_event(&bus, "s:x", json!({ "n": i })).await;
        until_event(&w, HealthEventType::DeliveryFailed).await;
    }
    until_event(&w, HealthEventType::CircuitBreakerOpened).await;
    let started = Instant::now();
    publish_n(&bus, 5).await;

    // Trials: message 4 fails (cooldown 150 → 300), 5 fails (→ 600), 6 succeeds.
    let mut sequence = Vec::new();
    let mut half_open_at = Vec::new();
    loop {
        let h = next_health(&w).await;
        if h.event == HealthEventType::CircuitBreakerHalfOpen {
            half_open_at.push(started.elapsed());
        }
        sequence.push(h.event);
        if h.event == HealthEventType::CircuitBreakerClosed {
            assert_eq!(
                (h.status, h.breaker),
                (SubscriptionStatus::Healthy, BreakerState::Closed)
            );
            break;
        }
    }
    use HealthEventType::*;
    assert_eq!(
        sequence,
        vec![
            CircuitBreakerHalfOpen,
            DeliveryFailed,
            CircuitBreakerOpened,
            CircuitBreakerHalfOpen,
            DeliveryFailed,
            CircuitBreakerOpened,
            CircuitBreakerHalfOpen,
            DeliverySuccess,
            CircuitBreakerClosed,
        ]
    );
    // Back-off: the gaps between trials double (150, 300, 600 ms), lower bounds only.
    assert!(
        half_open_at[1] - half_open_at[0] >= Duration::from_millis(280),
        "{half_open_at:?}"
    );
    assert!(
        half_open_at[2] - half_open_at[1] >= Duration::from_millis(580),
        "{half_open_at:?}"
    );
    // Messages 6, 7 and 8 are handled once closed.
    for _ in 0..3 {
        next(&echoes).await;
    }
    let s = wait_status(&plugins, "phoenix", |s| s.delivered == 3).await;
    assert_eq!(s.failed, 5);
    let t = plugins.health().subscription("phoenix").unwrap();
    assert_eq!(
        (t.event_count, t.error_count, t.consecutive_failures),
        (3, 5, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_every_nth_message_degrades_without_opening_the_breaker() {
    let (bus, plugins) = setup_with(monitoring(3, true, 100));
    let w = health_watch(&bus, "flaky");
    load(&plugins, "flaky", "fail-every", Some(3));
    let echoes = watch(&bus, Channel::Diagnostics, "echo:flaky");
    publish_n(&bus, 9).await;
    for _ in 0..6 {
        next(&echoes).await;
    }
    let s = wait_status(&plugins, "flaky", |s| s.delivered + s.failed == 9).await;
    assert_eq!((s.delivered, s.failed), (6, 3));
    // The tracker hears of each outcome right after the counters move.
    let deadline = Instant::now() + WAIT;
    let t = loop {
        let t = plugins.health().subscription("flaky").unwrap();
        if t.error_count == 3 && t.event_count == 6 || Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!((t.error_count, t.event_count), (3, 6));
    assert_eq!(t.breaker, BreakerState::Closed);
    assert_eq!(
        t.status,
        SubscriptionStatus::Degraded,
        "the 9th message failed last"
    );
    let mut events = Vec::new();
    while let Some(e) = w.try_recv() {
        events.push(e.decode::<SubscriptionHealth>().unwrap().event);
    }
    assert!(
        !events.contains(&HealthEventType::CircuitBreakerOpened),
        "{events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == HealthEventType::DeliveryFailed)
            .count(),
        3,
        "{events:?}"
    );
    let summary = plugins.health().summary();
    assert_eq!((summary.total, summary.degraded), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_threshold_sets_when_the_breaker_opens() {
    let (bus, plugins) = setup_with(monitoring(5, true, 5000));
    let w = health_watch(&bus, "broken");
    load(&plugins, "broken", "fail-always", None);
    for i in 0..5 {
        publish_event(&bus, "s:x", json!({ "n": i })).await;
        let h = until_event(&w, HealthEventType::DeliveryFailed).await;
        let expected = if i < 4 {
            SubscriptionStatus::Degraded
        } else {
            SubscriptionStatus::Failed
        };
        assert_eq!(h.status, expected, "after failure {}", i + 1);
        assert_eq!(
            h.breaker,
            if i < 4 {
                BreakerState::Closed
            } else {
                BreakerState::Open
            }
        );
    }
    assert_eq!(
        next_health(&w).await.event,
        HealthEventType::CircuitBreakerOpened
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_breaker_disabled_every_message_is_still_delivered() {
    let (bus, plugins) = setup_with(monitoring(3, false, 100));
    let w = health_watch(&bus, "broken");
    load(&plugins, "broken", "fail-always", None);
    publish_n(&bus, 10).await;
    let s = wait_status(&plugins, "broken", |s| s.failed == 10).await;
    assert_eq!(s.delivered, 0);
    let deadline = Instant::now() + WAIT;
    while plugins
        .health()
        .subscription("broken")
        .unwrap()
        .consecutive_failures
        < 10
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = plugins.health().subscription("broken").unwrap();
    assert_eq!(
        (t.status, t.breaker, t.consecutive_failures),
        (SubscriptionStatus::Failed, BreakerState::Closed, 10)
    );
    let mut events = Vec::new();
    while let Some(e) = w.try_recv() {
        events.push(e.decode::<SubscriptionHealth>().unwrap().event);
    }
    assert!(
        !events.contains(&HealthEventType::CircuitBreakerOpened),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_monitoring_disabled_nothing_is_tracked_or_published() {
    let mut config = monitoring(1, true, 100);
    config.enabled = false;
    let (bus, plugins) = setup_with(config);
    let all = watch(&bus, Channel::Health, ">");
    load(&plugins, "broken", "fail-always", None);
    publish_n(&bus, 5).await;
    let s = wait_status(&plugins, "broken", |s| s.failed == 5).await;
    assert_eq!(s.delivered, 0, "delivery continued: no breaker");
    quiet(&all, Duration::from_millis(200)).await;
    assert!(plugins.health().list().is_empty());
    assert_eq!(plugins.health().summary().total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_count_as_failures_and_restarts_are_reported() {
    let (bus, plugins) = setup_with(monitoring(3, true, 5000));
    let w = health_watch(&bus, "fragile");
    load(&plugins, "fragile", "trap", None);
    publish_event(&bus, "s:x", json!({ "say": "boom" })).await;
    let trap = until_event(&w, HealthEventType::Trap).await;
    assert_eq!(
        (trap.status, trap.error_count),
        (SubscriptionStatus::Degraded, 1)
    );
    assert!(trap.last_error.unwrap().contains("trapped"));
    until_event(&w, HealthEventType::Restart).await;
    publish_event(&bus, "s:x", json!({ "say": "fine" })).await;
    let ok = until_event(&w, HealthEventType::DeliverySuccess).await;
    assert_eq!(
        (ok.status, ok.consecutive_failures),
        (SubscriptionStatus::Healthy, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_subscribers_report_through_the_same_tracker() {
    let bus = Bus::new(BusConfig::default());
    let tracker = HealthTracker::new("default", monitoring(2, true, 50), bus.clone());
    let store_events = watch(&bus, Channel::Health, "store_health:default");
    tracker.record(
        "native",
        exesdb_host::health::HealthInput::RegistrationSucceeded,
    );
    tracker.record(
        "native",
        exesdb_host::health::HealthInput::DeliveryFailed("x".into()),
    );
    tracker.record(
        "native",
        exesdb_host::health::HealthInput::DeliveryFailed("y".into()),
    );
    assert!(matches!(
        tracker.gate("native"),
        exesdb_host::health::Gate::Wait(_)
    ));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(tracker.gate("native"), exesdb_host::health::Gate::Trial);
    tracker.record("native", exesdb_host::health::HealthInput::Delivered(1));
    assert_eq!(tracker.gate("native"), exesdb_host::health::Gate::Deliver);
    let mut events = Vec::new();
    while let Some(e) = store_events.try_recv() {
        events.push(e.decode::<SubscriptionHealth>().unwrap().event);
    }
    use HealthEventType::*;
    assert_eq!(
        events,
        vec![
            RegistrationSuccess,
            DeliveryFailed,
            DeliveryFailed,
            CircuitBreakerOpened,
            CircuitBreakerHalfOpen,
            DeliverySuccess,
            CircuitBreakerClosed
        ]
    );
}
