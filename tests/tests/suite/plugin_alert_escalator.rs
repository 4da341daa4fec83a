//! Black-box tests of the real `alert-escalator` plugin: time-based
//! escalation through the three levels, acknowledgement, alerts that need no
//! acknowledgement, and escalation by repeats.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use exesdb_host::bus::{Bus, Channel};
use exesdb_host::integration::Integration;
use exesdb_host::messages::alerts::{
    AlertAck, AlertCategory, AlertEscalation, EscalationLevel, Severity, SystemAlert,
};
use exesdb_host::messages::Envelope;
use exesdb_host::runtime::{Actor, Manifest, Plugins, World};

const NAME: &str = "alert-escalator";

/// Delays of the manifest's `[config]`, in ms.
struct Delays {
    level1: i64,
    level2: i64,
    level3: i64,
    repeat_threshold: i64,
}

/// The plugin's own manifest with `delays` and a 50 ms tick.
fn manifest(delays: &Delays) -> Manifest {
    common::manifest(NAME, NAME, |t| {
        let config = t
            .get_mut("config")
            .and_then(toml::Value::as_table_mut)
            .expect("the manifest has a [config] table");
        config.insert("level1_after_ms".into(), delays.level1.into());
        config.insert("level2_after_ms".into(), delays.level2.into());
        config.insert("level3_after_ms".into(), delays.level3.into());
        config.insert("repeat_threshold".into(), delays.repeat_threshold.into());
        t.insert("tick_interval_ms".into(), 50.into());
    })
}

const FAST: Delays = Delays {
    level1: 0,
    level2: 300,
    level3: 300,
    repeat_threshold: 3,
};

/// The manifest's contacts for `level` (`[config.contacts] levelN`).
fn contacts(m: &Manifest, level: EscalationLevel) -> Vec<String> {
    let list = m.config["contacts"][level.as_str()]
        .as_array()
        .unwrap_or_else(|| panic!("contacts for {level}"));
    let contacts: Vec<String> = list
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert!(!contacts.is_empty(), "the manifest names {level} contacts");
    contacts
}

/// Loads the plugin; returns the manifest it was loaded with.
fn load(plugins: &Plugins, delays: &Delays) -> Manifest {
    let m = manifest(delays);
    assert_eq!(m.tick_interval_ms, Some(50));
    let info = plugins
        .load(Actor::Operator, m.clone(), &common::wasm(NAME))
        .expect("alert-escalator loads");
    assert_eq!(info.world, World::AlertEscalator);
    m
}

fn alert(id: &str, severity: Severity) -> SystemAlert {
    SystemAlert::new(
        id,
        severity,
        AlertCategory::System,
        "Disk almost full",
        "Disk of store s1 is 97% full",
        "store_worker",
    )
}

async fn raise(bus: &Bus, alert: SystemAlert) -> Arc<Envelope> {
    Integration::new(bus.clone())
        .broadcast_alert(alert)
        .await
        .expect("published")
}

async fn ack(bus: &Bus, alert_id: &str) -> Arc<Envelope> {
    Integration::new(bus.clone())
        .broadcast_alert_ack(AlertAck {
            alert_id: alert_id.to_owned(),
            ack_by: "ops@example".into(),
            ack_note: Some("looking".into()),
            resolution: None,
        })
        .await
        .expect("published")
}

/// The next escalation: checks its envelope and returns its payload.
async fn next_escalation(
    bus: &Bus,
    sub: &exesdb_host::bus::Subscriber,
) -> (Arc<Envelope>, AlertEscalation) {
    let env = common::next(sub).await;
    assert_eq!(env.channel, Channel::Alerts);
    assert_eq!(env.kind, "AlertEscalation");
    assert_eq!(env.node, bus.node());
    let esc: AlertEscalation = env.decode().expect("a valid AlertEscalation");
    assert_eq!(env.topic, format!("alert_escalation:{}", esc.alert_id));
    assert_eq!(esc.escalated_by, NAME);
    (env, esc)
}

/// N of a time-based reason `unacknowledged for N ms`.
fn unacked_ms(reason: &str) -> u64 {
    reason
        .strip_prefix("unacknowledged for ")
        .and_then(|r| r.strip_suffix(" ms"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a time-based reason: {reason:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_alert_escalates_through_three_levels_in_order() {
    let (bus, plugins) = common::setup();
    let m = load(&plugins, &FAST);
    let escalations = common::watch(&bus, Channel::Alerts, "alert_escalation:>");

    let started = tokio::time::Instant::now();
    let cause = raise(&bus, alert("disk-full-1", Severity::Error)).await;

    // Level 1 at once (level1_after_ms = 0): caused by the alert (not a tick)
    // after 0 ms.
    let (env, esc) = next_escalation(&bus, &escalations).await;
    assert_eq!(env.topic, "alert_escalation:disk-full-1");
    assert_eq!(env.causation_id, Some(cause.id.to_string()));
    assert_eq!(
        esc,
        AlertEscalation {
            alert_id: "disk-full-1".into(),
            from_level: None,
            to_level: EscalationLevel::Level1,
            escalation_reason: "unacknowledged for 0 ms".into(),
            escalated_by: NAME.into(),
            notify_contacts: contacts(&m, EscalationLevel::Level1),
        }
    );

    // Level 2 by a tick, 300 ms after level 1.
    let (env, esc) = next_escalation(&bus, &escalations).await;
    let at_level2 = started.elapsed();
    assert_eq!(env.causation_id, None, "time-based: no causing message");
    assert_eq!(esc.alert_id, "disk-full-1");
    assert_eq!(esc.from_level, Some(EscalationLevel::Level1));
    assert_eq!(esc.to_level, EscalationLevel::Level2);
    assert_eq!(esc.notify_contacts, contacts(&m, EscalationLevel::Level2));
    let waited = unacked_ms(&esc.escalation_reason);
    assert!(waited >= 300, "{}", esc.escalation_reason);
    assert!(at_level2 >= Duration::from_millis(290), "{at_level2:?}");

    // Level 3 by a tick, 300 ms after level 2.
    let (env, esc) = next_escalation(&bus, &escalations).await;
    let at_level3 = started.elapsed();
    assert_eq!(env.causation_id, None);
    assert_eq!(esc.alert_id, "disk-full-1");
    assert_eq!(esc.from_level, Some(EscalationLevel::Level2));
    assert_eq!(esc.to_level, EscalationLevel::Level3);
    assert_eq!(esc.notify_contacts, contacts(&m, EscalationLevel::Level3));
    let waited3 = unacked_ms(&esc.escalation_reason);
    assert!(
        waited3 >= 600 && waited3 >= waited + 300,
        "{} after {waited} ms",
        esc.escalation_reason
    );
    assert!(
        at_level3 >= at_level2 + Duration::from_millis(290),
        "{at_level2:?} then {at_level3:?}"
    );

    // Level 3 is final.
    common::quiet(&escalations, Duration::from_millis(700)).await;
    let info = plugins.status(NAME).unwrap();
    assert_eq!(
        (info.delivered, info.failed, info.traps),
        (1, 0, 0),
        "{info:?}"
    );
    assert_eq!(info.last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_stops_escalation() {
    let (bus, plugins) = common::setup();
    // Level 2 would come 600 ms after level 1: time enough for the ack to
    // arrive first even on a slow machine, and well inside the quiet second.
    let m = load(
        &plugins,
        &Delays {
            level2: 600,
            ..FAST
        },
    );
    let escalations = common::watch(&bus, Channel::Alerts, "alert_escalation:>");

    let cause = raise(&bus, alert("disk-full-2", Severity::Error)).await;
    let (env, esc) = next_escalation(&bus, &escalations).await;
    assert_eq!(env.causation_id, Some(cause.id.to_string()));
    assert_eq!(esc.to_level, EscalationLevel::Level1);

    ack(&bus, "disk-full-2").await;
    common::quiet(&escalations, Duration::from_secs(1)).await;
    let info = common::wait_delivered(&plugins, NAME, 2).await;
    assert_eq!((info.delivered, info.failed), (2, 0), "{info:?}");

    // Acknowledged alerts are forgotten: the same id raised again starts over.
    let cause = raise(&bus, alert("disk-full-2", Severity::Error)).await;
    let (env, esc) = next_escalation(&bus, &escalations).await;
    assert_eq!(env.causation_id, Some(cause.id.to_string()));
    assert_eq!(
        esc,
        AlertEscalation {
            alert_id: "disk-full-2".into(),
            from_level: None,
            to_level: EscalationLevel::Level1,
            escalation_reason: "unacknowledged for 0 ms".into(),
            escalated_by: NAME.into(),
            notify_contacts: contacts(&m, EscalationLevel::Level1),
        }
    );
    ack(&bus, "disk-full-2").await;

    // An ack of an alert never seen is harmless.
    ack(&bus, "never-raised").await;
    common::quiet(&escalations, Duration::from_secs(1)).await;
    let info = common::wait_delivered(&plugins, NAME, 5).await;
    assert_eq!((info.delivered, info.failed), (5, 0), "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_not_requiring_ack_never_escalate() {
    let (bus, plugins) = common::setup();
    load(&plugins, &FAST);
    let escalations = common::watch(&bus, Channel::Alerts, "alert_escalation:>");

    let info_alert = alert("info-1", Severity::Info);
    assert!(!info_alert.requires_ack);
    raise(&bus, info_alert).await;
    // requires_ack, not severity, decides.
    let mut critical_no_ack = alert("critical-no-ack", Severity::Critical);
    critical_no_ack.requires_ack = false;
    raise(&bus, critical_no_ack).await;
    common::wait_delivered(&plugins, NAME, 2).await;
    common::quiet(&escalations, Duration::from_millis(700)).await;

    let mut info_with_ack = alert("info-ack", Severity::Info);
    info_with_ack.requires_ack = true;
    let cause = raise(&bus, info_with_ack).await;
    let (env, esc) = next_escalation(&bus, &escalations).await;
    assert_eq!(env.causation_id, Some(cause.id.to_string()));
    assert_eq!(esc.alert_id, "info-ack");
    assert_eq!(esc.to_level, EscalationLevel::Level1);
    let info = plugins.status(NAME).unwrap();
    assert_eq!(info.failed, 0, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_escalate_one_level_per_threshold() {
    let (bus, plugins) = common::setup();
    let slow = Delays {
        level1: 60_000,
        level2: 60_000,
        level3: 60_000,
        repeat_threshold: 3,
    };
    let m = load(&plugins, &slow);
    let escalations = common::watch(&bus, Channel::Alerts, "alert_escalation:>");

    // Messages are handled in order and each escalation is published while
    // its alert is handled, so an escalation caused by an earlier repeat
    // would arrive before the one checked here.
    let steps = [
        (None, EscalationLevel::Level1),
        (Some(EscalationLevel::Level1), EscalationLevel::Level2),
        (Some(EscalationLevel::Level2), EscalationLevel::Level3),
    ];
    for (from, to) in steps {
        let mut last = None;
        for _ in 0..3 {
            last = Some(raise(&bus, alert("flapping-1", Severity::Error)).await);
        }
        let (env, esc) = next_escalation(&bus, &escalations).await;
        assert_eq!(env.causation_id, Some(last.unwrap().id.to_string()));
        assert_eq!(
            esc,
            AlertEscalation {
                alert_id: "flapping-1".into(),
                from_level: from,
                to_level: to,
                escalation_reason: "repeated 3 times".into(),
                escalated_by: NAME.into(),
                notify_contacts: contacts(&m, to),
            }
        );
    }

    // Level 3 is final: three more repeats change nothing.
    for _ in 0..3 {
        raise(&bus, alert("flapping-1", Severity::Error)).await;
    }
    common::wait_delivered(&plugins, NAME, 12).await;
    common::quiet(&escalations, Duration::from_millis(500)).await;
    let info = plugins.status(NAME).unwrap();
    assert_eq!((info.delivered, info.failed), (12, 0), "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_tracked_the_oldest_alert_is_forgotten() {
    let (bus, plugins) = common::setup();
    let mut m = manifest(&FAST);
    m.config
        .insert("max_tracked".into(), toml::Value::Integer(2));
    plugins
        .load(Actor::Operator, m.clone(), &common::wasm(NAME))
        .unwrap();
    let escalations = common::watch(&bus, Channel::Alerts, "alert_escalation:>");

    // Three alerts, each at level 1 at once; tracking the third forgets the
    // least recently changed one (`a`).
    for id in ["a", "b", "c"] {
        raise(&bus, alert(id, Severity::Error)).await;
        let (_, esc) = next_escalation(&bus, &escalations).await;
        assert_eq!(
            (esc.alert_id.as_str(), esc.to_level),
            (id, EscalationLevel::Level1)
        );
    }
    // Only `b` and `c` go on to levels 2 and 3.
    for level in [EscalationLevel::Level2, EscalationLevel::Level3] {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let (_, esc) = next_escalation(&bus, &escalations).await;
            assert_eq!(esc.to_level, level, "{esc:?}");
            assert_eq!(esc.notify_contacts, contacts(&m, level));
            ids.push(esc.alert_id);
        }
        ids.sort();
        assert_eq!(ids, ["b", "c"], "{level}");
    }
    common::quiet(&escalations, Duration::from_millis(700)).await;
}
