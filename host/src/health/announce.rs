//! The spec's `🩺 SUBSCRIBED to health events for store: <store>` and
//! `📈 SUBSCRIBED to metrics events for store: <store>` lines, printed when
//! a subscriber really subscribes to a store's health or metrics topics.
//!
//! A store's health topics are `store_health:<store>`,
//! `health_summary:<store>` and `subscription_health:<store>:<name>` on
//! `health`; its metrics topics `store_metrics:<store>` and
//! `metrics_summary:<store>` on `metrics`. [`Announcer::scan`] looks at the
//! bus's live subscribers (plugins, whose manifests subscribe, and native
//! ones) and announces each (subscriber, store, kind) once, with the
//! subscriber's name; the host scans whenever a plugin starts or stops and
//! periodically. Emitter workers, which follow their store's health through
//! the tracker rather than the bus, announce themselves when they start.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::sources::StoreTrackers;
use crate::bus::{Bus, Channel, Pattern, Segment, Subscriber, SubscriberId};
use crate::integration::topics;

/// `🩺 SUBSCRIBED to health events for store: my_store`: printed by the
/// [`Announcer`], and by each emitter worker as it starts (it follows its
/// store's health through the tracker).
pub fn subscribed_health(store: &str) -> String {
    format!("🩺 SUBSCRIBED to health events for store: {store}")
}

/// `📈 SUBSCRIBED to metrics events for store: my_store`: printed by the
/// [`Announcer`].
pub fn subscribed_metrics(store: &str) -> String {
    format!("📈 SUBSCRIBED to metrics events for store: {store}")
}

/// Which of a store's event families a subscriber subscribed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `store_health`, `health_summary`, `subscription_health` on `health`.
    Health,
    /// `store_metrics`, `metrics_summary` on `metrics`.
    Metrics,
}

/// One subscription announced by [`Announcer::scan`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Announced {
    /// The subscriber's name.
    pub subscriber: String,
    /// The store.
    pub store: String,
    /// Health or metrics.
    pub family: Family,
}

/// Whether `pattern` matches some topic `<prefix>:<more>` (one or more
/// further segments).
fn matches_under(pattern: &Pattern, prefix: &[&str]) -> bool {
    match pattern {
        Pattern::Exact(t) => {
            let mut parts = t.split(':');
            prefix.iter().all(|p| parts.next() == Some(*p)) && parts.next().is_some()
        }
        Pattern::Wildcard(segs) => {
            for (i, p) in prefix.iter().enumerate() {
                match segs.get(i) {
                    None => return false,
                    Some(Segment::Rest) => return true,
                    Some(Segment::Star) => {}
                    Some(Segment::Literal(l)) if &**l == *p => {}
                    Some(Segment::Literal(_)) => return false,
                }
            }
            segs.len() > prefix.len()
        }
    }
}

/// Whether a subscription on `channel` to `pattern` receives some of
/// `store`'s events of `family`.
pub fn receives(channel: Channel, pattern: &str, store: &str, family: Family) -> bool {
    let Ok(p) = Pattern::parse(pattern) else {
        return false;
    };
    match (family, channel) {
        (Family::Health, Channel::Health) => {
            p.matches(&topics::store_health(store))
                || p.matches(&topics::health_summary(store))
                || matches_under(&p, &[topics::SUBSCRIPTION_HEALTH, store])
        }
        (Family::Metrics, Channel::Metrics) => {
            p.matches(&topics::store_metrics(store)) || p.matches(&topics::metrics_summary(store))
        }
        _ => false,
    }
}

/// Announces subscriptions to the stores' health and metrics topics, once
/// each.
pub struct Announcer {
    bus: Bus,
    stores: Arc<dyn StoreTrackers>,
    families: Vec<Family>,
    seen: Mutex<BTreeSet<(SubscriberId, String, Family)>>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("families", &self.families)
            .field("seen", &self.seen.lock().len())
            .finish_non_exhaustive()
    }
}

impl Announcer {
    /// An announcer for the families that are on (`health`: health
    /// monitoring enabled; `metrics`: metrics enabled).
    pub fn new(bus: Bus, stores: Arc<dyn StoreTrackers>, health: bool, metrics: bool) -> Announcer {
        let mut families = Vec::new();
        if health {
            families.push(Family::Health);
        }
        if metrics {
            families.push(Family::Metrics);
        }
        Announcer {
            bus,
            stores,
            families,
            seen: Mutex::default(),
        }
    }

    /// Logs and returns the subscriptions not announced before; forgets
    /// subscribers that went away (a new one of the same name is announced
    /// again).
    pub fn scan(&self) -> Vec<Announced> {
        let stats = self.bus.stats();
        let mut stores: Vec<String> = self
            .stores
            .trackers()
            .iter()
            .map(|t| t.store().to_owned())
            .collect();
        stores.dedup();
        let mut seen = self.seen.lock();
        seen.retain(|(id, _, _)| stats.iter().any(|s| s.id == *id));
        let mut out = Vec::new();
        for s in &stats {
            for store in &stores {
                for &family in &self.families {
                    let subscribed = s
                        .subscriptions
                        .iter()
                        .any(|i| receives(i.channel, &i.pattern, store, family));
                    if subscribed && seen.insert((s.id, store.clone(), family)) {
                        out.push(Announced {
                            subscriber: s.name.clone(),
                            store: store.clone(),
                            family,
                        });
                    }
                }
            }
        }
        drop(seen);
        for a in &out {
            let line = match a.family {
                Family::Health => subscribed_health(&a.store),
                Family::Metrics => subscribed_metrics(&a.store),
            };
            tracing::info!(
                class = "success",
                subscriber = a.subscriber.as_str(),
                "{line}"
            );
        }
        out
    }

    /// Scans whenever `lifecycle` (subscribed to `process_lifecycle:>`)
    /// reports a plugin starting or stopping, and every `every`, until the
    /// task is aborted or the bus closes.
    pub async fn run(self, lifecycle: Subscriber, every: Duration) {
        if self.families.is_empty() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                env = lifecycle.recv() => if env.is_none() { break },
                _ = tick.tick() => {}
            }
            self.scan();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusConfig;
    use crate::health::{HealthMonitoring, HealthTracker};

    /// Stores known only by their trackers.
    struct Trackers(Vec<Arc<HealthTracker>>);

    impl StoreTrackers for Trackers {
        fn trackers(&self) -> Vec<Arc<HealthTracker>> {
            self.0.clone()
        }

        fn open_stores(&self) -> Vec<crate::store::Store> {
            Vec::new()
        }
    }

    #[test]
    fn subscribed_lines() {
        assert_eq!(
            subscribed_health("my_store"),
            "🩺 SUBSCRIBED to health events for store: my_store"
        );
        assert_eq!(
            subscribed_metrics("my_store"),
            "📈 SUBSCRIBED to metrics events for store: my_store"
        );
    }

    #[test]
    fn patterns_that_receive_a_stores_events() {
        use Channel::{Health, Metrics};
        use Family::{Health as H, Metrics as M};
        for (channel, pattern, store, family, expected) in [
            (Health, "store_health:default", "default", H, true),
            (Health, "store_health:>", "other", H, true),
            (Health, ">", "other", H, true),
            (Health, "health_summary:*", "s", H, true),
            (Health, "subscription_health:s:projector", "s", H, true),
            (Health, "subscription_health:*:>", "s", H, true),
            (Health, "subscription_health:s", "s", H, false),
            (Health, "subscription_health:t:x", "s", H, false),
            (Health, "component_health:>", "s", H, false),
            (Health, "node_health:>", "s", H, false),
            (Health, "store_health:default", "other", H, false),
            (Metrics, "store_health:>", "s", H, false),
            (Metrics, "store_metrics:>", "s", M, true),
            (Metrics, "metrics_summary:s", "s", M, true),
            (Metrics, "store_metrics:t", "s", M, false),
            (Metrics, "component_metrics:>", "s", M, false),
            (Health, "store_metrics:>", "s", M, false),
        ] {
            assert_eq!(
                receives(channel, pattern, store, family),
                expected,
                "{channel} {pattern} for {store} {family:?}"
            );
        }
    }

    #[tokio::test]
    async fn announces_a_subscription_once_and_only_once_it_exists() {
        let bus = Bus::new(BusConfig::default());
        let tracker = |store| HealthTracker::new(store, HealthMonitoring::default(), bus.clone());
        let stores: Arc<dyn StoreTrackers> =
            Arc::new(Trackers(vec![tracker("default"), tracker("other")]));
        let announcer = Announcer::new(bus.clone(), Arc::clone(&stores), true, true);
        // Other subscribers, even on the same channels, are not announced.
        let unrelated = bus.subscriber("unrelated").unwrap();
        unrelated
            .subscribe(Channel::Health, "component_health:>")
            .unwrap();
        assert_eq!(announcer.scan(), []);

        let console = bus.subscriber("console").unwrap();
        console
            .subscribe(Channel::Health, "store_health:other")
            .unwrap();
        console
            .subscribe(Channel::Metrics, "store_metrics:>")
            .unwrap();
        let found = announcer.scan();
        let a = |store: &str, family| Announced {
            subscriber: "console".into(),
            store: store.into(),
            family,
        };
        assert_eq!(
            found,
            [
                a("default", Family::Metrics),
                a("other", Family::Health),
                a("other", Family::Metrics)
            ]
        );
        assert_eq!(announcer.scan(), [], "once");

        // A new subscriber of the same name is a new subscription.
        drop(console);
        let again = bus.subscriber("console").unwrap();
        again.subscribe(Channel::Health, "store_health:>").unwrap();
        let found = announcer.scan();
        assert_eq!(
            found,
            [a("default", Family::Health), a("other", Family::Health)]
        );

        // Families that are off are never announced.
        let quiet = Announcer::new(bus.clone(), stores, false, false);
        assert_eq!(quiet.scan(), []);
    }
}
