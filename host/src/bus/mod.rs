//! The bus: ten channels of topics with Phoenix.PubSub semantics.
//!
//! # Semantics
//! - A [`Subscriber`] owns one bounded inbox and listens on any number of
//!   `(channel, pattern)` subscriptions. Subscribing twice to the same
//!   `(channel, pattern)` is **idempotent**: the second call returns
//!   `Ok(false)` and keeps the first call's overflow policy.
//! - A message matching several of one subscriber's subscriptions is put in
//!   its inbox **once**; if any of those subscriptions uses
//!   [`OverflowPolicy::Backpressure`], that policy applies.
//! - [`Bus::broadcast`] delivers to every matching subscriber;
//!   [`Bus::broadcast_from`] skips the sender; [`Bus::local_broadcast`] is
//!   `broadcast` (this host is one node); [`Bus::direct_broadcast`] delivers
//!   when the node named is this node and is an error otherwise.
//! - Order is FIFO per publisher per topic: a publisher that awaits each
//!   broadcast sees its messages arrive in publish order.
//! - Exact topics are a hash lookup; wildcard patterns are matched through a
//!   trie (cost independent of the number of pattern subscriptions).
//! - Dropping a [`Subscriber`] removes all its subscriptions.
//!
//! ```
//! # tokio_test_block_on(async {
//! use exesdb_host::bus::{Bus, BusConfig, Channel};
//! use exesdb_host::messages::Envelope;
//!
//! let bus = Bus::new(BusConfig::default());
//! let sub = bus.subscriber("dashboard").unwrap();
//! sub.subscribe(Channel::Health, "store_health:*").unwrap();
//! let msg = Envelope::new(Channel::Health, "store_health:my_store", "custom.ping",
//!                         serde_json::json!({}), bus.node());
//! bus.broadcast(msg).await.unwrap();
//! assert_eq!(sub.recv().await.unwrap().topic, "store_health:my_store");
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Runtime::new().unwrap().block_on(f)
//! # }
//! ```

mod error;
mod inbox;
mod settings;
mod stats;
mod subscriber;
mod topic;
mod trie;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::Serialize;

pub use crate::messages::{Channel, UnknownChannel};
pub use error::BusError;
pub use inbox::OverflowPolicy;
pub use settings::BusSection;
pub use stats::{SubscriptionInfo, SubscriptionStats};
pub use subscriber::{Subscriber, SubscriberOptions};
pub use topic::{validate_topic, Pattern, Segment, TopicError, MAX_TOPIC_LEN};

use crate::messages::{self, Envelope, MessageKind};
use inbox::{Inbox, Pushed};
use trie::PatternTrie;

/// Identifies a subscriber on one bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SubscriberId(pub u64);

/// Settings of a bus.
#[derive(Debug, Clone, PartialEq)]
pub struct BusConfig {
    /// This node's name, stamped on every envelope.
    pub node: String,
    /// Default inbox capacity of a subscriber, in messages.
    pub inbox_capacity: usize,
    /// How long a publisher waits for room in a `backpressure` inbox.
    pub backpressure_timeout: Duration,
    /// Largest accepted JSON payload, in bytes.
    pub max_payload_bytes: usize,
    /// Count messages published and inbox deliveries per channel (relaxed
    /// atomic adds on one cache line per channel, per publish), for the
    /// metrics collector and `GET /metrics`.
    pub count_published: bool,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            node: "exesdb@localhost".into(),
            inbox_capacity: 1024,
            backpressure_timeout: Duration::from_secs(5),
            max_payload_bytes: 1 << 20,
            count_published: true,
        }
    }
}

/// Outcome of a broadcast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Inboxes the message was put into.
    pub delivered: usize,
    /// Older messages evicted to make room (`drop_oldest`).
    pub evicted: usize,
}

/// One route from a subscription to an inbox.
#[derive(Debug, Clone)]
struct Target {
    sub: SubscriberId,
    name: Arc<str>,
    inbox: Arc<Inbox>,
    policy: OverflowPolicy,
}

/// A message on its way through [`Bus::deliver_now`].
struct Routed {
    delivery: Delivery,
    /// `backpressure` targets that were full.
    waiting: Vec<Target>,
    /// The message, kept while it may still be needed: it is moved (not
    /// cloned) into the last inbox when no target is waiting, so a 1 → 1
    /// publish costs no reference-count traffic. Always `Some` when
    /// `waiting` is non-empty.
    env: Option<Arc<Envelope>>,
}

impl Routed {
    /// Pushes into one target's inbox without waiting.
    fn push(&mut self, t: &Target, last: bool, skip: Option<SubscriberId>, now: u64) {
        if Some(t.sub) == skip {
            return;
        }
        let msg = if last && self.waiting.is_empty() {
            self.env.take()
        } else {
            self.env.clone()
        };
        let Some(msg) = msg else {
            return;
        };
        let (pushed, back) = t.inbox.try_push(msg, t.policy, now);
        if self.env.is_none() {
            self.env = back;
        }
        match pushed {
            Pushed::Queued => self.delivery.delivered += 1,
            Pushed::QueuedDroppingOldest => {
                self.delivery.delivered += 1;
                self.delivery.evicted += 1;
            }
            Pushed::Full => self.waiting.push(t.clone()),
            Pushed::Closed => {}
        }
    }
}

#[derive(Debug)]
struct SubscriberEntry {
    name: Arc<str>,
    inbox: Arc<Inbox>,
    subscriptions: Vec<(Channel, Pattern, OverflowPolicy)>,
}

#[derive(Debug, Default)]
struct Registry {
    /// Exact topics by channel. foldhash: several times faster than SipHash
    /// on short keys, and seeded per process (topics can come from plugins).
    exact: [HashMap<Arc<str>, Vec<Target>, foldhash::fast::RandomState>; 10],
    patterns: [PatternTrie<Target>; 10],
    subscribers: HashMap<SubscriberId, SubscriberEntry>,
}

#[derive(Debug)]
pub(crate) struct BusInner {
    config: BusConfig,
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    /// Per-channel publish and delivery counters, each channel's on its
    /// own cache line.
    counters: Box<[ChannelCounters; 10]>,
}

/// One channel's counters, alone on a cache line, so that counting never
/// contends with the registry lock or the other channels' counters.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ChannelCounters {
    /// Messages accepted for publication.
    published: AtomicU64,
    /// Messages put into inboxes (one per receiving subscriber).
    delivered: AtomicU64,
}

/// The PubSub bus. Cheap to clone; all clones are the same bus.
#[derive(Debug, Clone)]
pub struct Bus {
    inner: Arc<BusInner>,
}

impl Bus {
    /// A new bus with no subscribers.
    pub fn new(config: BusConfig) -> Bus {
        Bus {
            inner: Arc::new(BusInner {
                config,
                registry: RwLock::new(Registry::default()),
                next_id: AtomicU64::new(1),
                counters: Default::default(),
            }),
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.config.node
    }

    /// The bus's settings.
    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    /// A new subscriber with the default inbox capacity and policies.
    ///
    /// # Errors
    /// [`BusError::EmptySubscriberName`] for an empty name.
    pub fn subscriber(&self, name: &str) -> Result<Subscriber, BusError> {
        self.subscriber_with(name, SubscriberOptions::default())
    }

    /// A new subscriber with explicit options.
    ///
    /// # Errors
    /// [`BusError::EmptySubscriberName`] for an empty name.
    pub fn subscriber_with(
        &self,
        name: &str,
        options: SubscriberOptions,
    ) -> Result<Subscriber, BusError> {
        if name.is_empty() {
            return Err(BusError::EmptySubscriberName);
        }
        let id = SubscriberId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let capacity = options.capacity.unwrap_or(self.inner.config.inbox_capacity);
        let inbox = Inbox::new(capacity);
        let name: Arc<str> = Arc::from(name);
        self.inner.registry.write().subscribers.insert(
            id,
            SubscriberEntry {
                name: Arc::clone(&name),
                inbox: Arc::clone(&inbox),
                subscriptions: Vec::new(),
            },
        );
        Ok(Subscriber::new(
            id,
            name,
            inbox,
            Arc::downgrade(&self.inner),
            options.policy,
        ))
    }

    /// Validates and broadcasts `env` to every matching subscriber.
    ///
    /// Waits only for `backpressure` inboxes that are full, up to the
    /// configured timeout each.
    ///
    /// # Errors
    /// An invalid topic or message, or [`BusError::Backpressure`] when a
    /// lossless subscriber stayed full (the others still received it).
    pub async fn broadcast(&self, env: impl Into<Arc<Envelope>>) -> Result<Delivery, BusError> {
        self.deliver(env.into(), None, true).await
    }

    /// Like [`broadcast`](Self::broadcast) but skips the subscriber `from`.
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    pub async fn broadcast_from(
        &self,
        from: SubscriberId,
        env: impl Into<Arc<Envelope>>,
    ) -> Result<Delivery, BusError> {
        self.deliver(env.into(), Some(from), true).await
    }

    /// Broadcast to subscribers on this node only. With one node this is
    /// exactly [`broadcast`](Self::broadcast).
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    pub async fn local_broadcast(
        &self,
        env: impl Into<Arc<Envelope>>,
    ) -> Result<Delivery, BusError> {
        self.deliver(env.into(), None, true).await
    }

    /// Broadcast on the named node. Only this node exists: naming it
    /// broadcasts locally; any other name is [`BusError::UnknownNode`].
    ///
    /// # Errors
    /// [`BusError::UnknownNode`], or as [`broadcast`](Self::broadcast).
    pub async fn direct_broadcast(
        &self,
        node: &str,
        env: impl Into<Arc<Envelope>>,
    ) -> Result<Delivery, BusError> {
        if node != self.node() {
            return Err(BusError::UnknownNode {
                node: node.to_owned(),
                local: self.node().to_owned(),
            });
        }
        self.deliver(env.into(), None, true).await
    }

    /// Broadcast without ever waiting, for callers that cannot await
    /// (the logging layer). A full `backpressure` inbox yields
    /// [`BusError::Backpressure`] with a zero timeout instead of waiting.
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    pub fn publish_now(&self, env: impl Into<Arc<Envelope>>) -> Result<Delivery, BusError> {
        let routed = self.deliver_now(env.into(), None)?;
        match (routed.waiting.first(), &routed.env) {
            (Some(t), Some(env)) => Err(BusError::Backpressure {
                subscriber: t.name.to_string(),
                topic: env.topic.clone(),
                timeout: Duration::ZERO,
            }),
            _ => Ok(routed.delivery),
        }
    }

    /// Publishes a typed payload on its kind's channel without ever waiting
    /// (see [`publish_now`](Self::publish_now)); for synchronous reporters.
    ///
    /// # Errors
    /// As [`publish_now`](Self::publish_now).
    pub fn publish_typed_now<K: MessageKind>(
        &self,
        topic: &str,
        payload: &K,
    ) -> Result<Delivery, BusError> {
        self.publish_now(Envelope::typed(topic, payload, self.node())?)
    }

    /// Publishes a typed payload on its kind's channel; returns the envelope.
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    pub async fn publish<K: MessageKind>(
        &self,
        topic: &str,
        payload: &K,
    ) -> Result<Arc<Envelope>, BusError> {
        let env = Arc::new(Envelope::typed(topic, payload, self.node())?);
        self.deliver(Arc::clone(&env), None, true).await?;
        Ok(env)
    }

    async fn deliver(
        &self,
        env: Arc<Envelope>,
        skip: Option<SubscriberId>,
        wait: bool,
    ) -> Result<Delivery, BusError> {
        let Routed {
            mut delivery,
            waiting,
            env,
        } = self.deliver_now(env, skip)?;
        let Some(env) = env.filter(|_| wait && !waiting.is_empty()) else {
            return Ok(delivery);
        };
        let timeout = self.inner.config.backpressure_timeout;
        let mut first_error = None;
        for t in waiting {
            match t
                .inbox
                .push_waiting(Arc::clone(&env), timeout, coarse_now_ms())
                .await
            {
                Pushed::Queued | Pushed::QueuedDroppingOldest => {
                    delivery.delivered += 1;
                    self.count_delivered(env.channel, 1);
                }
                Pushed::Closed => {}
                Pushed::Full => {
                    first_error.get_or_insert(BusError::Backpressure {
                        subscriber: t.name.to_string(),
                        topic: env.topic.clone(),
                        timeout,
                    });
                }
            }
        }
        first_error.map_or(Ok(delivery), Err)
    }

    /// Validates, then pushes into every matching inbox without waiting;
    /// returns the targets that were full under `backpressure`.
    fn deliver_now(
        &self,
        env: Arc<Envelope>,
        skip: Option<SubscriberId>,
    ) -> Result<Routed, BusError> {
        validate_topic(&env.topic)?;
        messages::validate(&env, self.inner.config.max_payload_bytes)?;
        let channel = env.channel;
        if self.inner.config.count_published {
            self.inner.counters[channel.index()]
                .published
                .fetch_add(1, Ordering::Relaxed);
        }
        let reg = self.inner.registry.read();
        let ch = channel.index();
        let exact = reg.exact[ch]
            .get(env.topic.as_str())
            .map_or(&[][..], Vec::as_slice);
        let mut matched: Vec<&Target> = Vec::new();
        if !reg.patterns[ch].is_empty() {
            reg.patterns[ch].for_each_match(&env.topic, &mut |t| matched.push(t));
        }
        let mut routed = Routed {
            delivery: Delivery::default(),
            waiting: Vec::new(),
            env: Some(env),
        };
        let now = coarse_now_ms();
        if matched.is_empty() {
            // Exact subscriptions are unique per subscriber: no dedup needed.
            let last = exact.len().saturating_sub(1);
            for (i, t) in exact.iter().enumerate() {
                routed.push(t, i == last, skip, now);
            }
        } else {
            matched.extend(exact);
            // Sort by subscriber, backpressure first, then keep one per subscriber.
            matched.sort_unstable_by_key(|t| (t.sub, t.policy != OverflowPolicy::Backpressure));
            matched.dedup_by_key(|t| t.sub);
            let last = matched.len() - 1;
            for (i, t) in matched.into_iter().enumerate() {
                routed.push(t, i == last, skip, now);
            }
        }
        drop(reg);
        self.count_delivered(channel, routed.delivery.delivered);
        Ok(routed)
    }

    /// Counts `n` inbox deliveries on `channel` (when counting is on).
    #[inline]
    fn count_delivered(&self, channel: Channel, n: usize) {
        if n > 0 && self.inner.config.count_published {
            self.inner.counters[channel.index()]
                .delivered
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Statistics of every live subscriber, by id.
    pub fn stats(&self) -> Vec<SubscriptionStats> {
        let reg = self.inner.registry.read();
        let mut all: Vec<_> = reg
            .subscribers
            .iter()
            .map(|(id, e)| stats_of(*id, e))
            .collect();
        all.sort_by_key(|s| s.id);
        all
    }

    /// Statistics of one subscriber, if it is alive.
    pub fn stats_of(&self, id: SubscriberId) -> Option<SubscriptionStats> {
        self.inner
            .registry
            .read()
            .subscribers
            .get(&id)
            .map(|e| stats_of(id, e))
    }

    /// Messages accepted for publication on `channel` since the bus started
    /// (0 when `count_published` is off).
    pub fn published(&self, channel: Channel) -> u64 {
        self.inner.counters[channel.index()]
            .published
            .load(Ordering::Relaxed)
    }

    /// Messages put into subscribers' inboxes from `channel` since the bus
    /// started, one per receiving subscriber, evicted ones included (0 when
    /// `count_published` is off). Unlike the per-subscriber
    /// [`stats`](Self::stats) it keeps counting deliveries to subscribers
    /// that have gone.
    pub fn delivered(&self, channel: Channel) -> u64 {
        self.inner.counters[channel.index()]
            .delivered
            .load(Ordering::Relaxed)
    }

    /// Number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.inner.registry.read().subscribers.len()
    }
}

impl BusInner {
    /// Adds a subscription; `Ok(false)` if it already existed.
    fn subscribe(
        &self,
        id: SubscriberId,
        channel: Channel,
        pattern: &str,
        policy: OverflowPolicy,
    ) -> Result<bool, BusError> {
        let parsed = Pattern::parse(pattern)?;
        let mut reg = self.registry.write();
        let reg = &mut *reg;
        let Some(entry) = reg.subscribers.get_mut(&id) else {
            return Ok(false);
        };
        if entry
            .subscriptions
            .iter()
            .any(|(c, p, _)| *c == channel && *p == parsed)
        {
            return Ok(false);
        }
        entry.subscriptions.push((channel, parsed.clone(), policy));
        let target = Target {
            sub: id,
            name: Arc::clone(&entry.name),
            inbox: Arc::clone(&entry.inbox),
            policy,
        };
        match parsed {
            Pattern::Exact(topic) => reg.exact[channel.index()]
                .entry(topic)
                .or_default()
                .push(target),
            Pattern::Wildcard(segs) => reg.patterns[channel.index()].insert(&segs, target),
        }
        Ok(true)
    }

    /// Removes a subscription; `Ok(false)` if there was none.
    fn unsubscribe(
        &self,
        id: SubscriberId,
        channel: Channel,
        pattern: &str,
    ) -> Result<bool, BusError> {
        let parsed = Pattern::parse(pattern)?;
        let mut reg = self.registry.write();
        let Some(entry) = reg.subscribers.get_mut(&id) else {
            return Ok(false);
        };
        let before = entry.subscriptions.len();
        entry
            .subscriptions
            .retain(|(c, p, _)| !(*c == channel && *p == parsed));
        if entry.subscriptions.len() == before {
            return Ok(false);
        }
        remove_route(&mut reg, id, channel, &parsed);
        Ok(true)
    }

    /// Removes a subscriber and all its routes.
    fn remove_subscriber(&self, id: SubscriberId) {
        let mut reg = self.registry.write();
        if let Some(entry) = reg.subscribers.remove(&id) {
            for (channel, pattern, _) in &entry.subscriptions {
                remove_route(&mut reg, id, *channel, pattern);
            }
        }
    }

    fn subscriptions_of(&self, id: SubscriberId) -> Vec<SubscriptionInfo> {
        self.registry
            .read()
            .subscribers
            .get(&id)
            .map(|e| infos(&e.subscriptions))
            .unwrap_or_default()
    }
}

fn remove_route(reg: &mut Registry, id: SubscriberId, channel: Channel, pattern: &Pattern) {
    match pattern {
        Pattern::Exact(topic) => {
            let map = &mut reg.exact[channel.index()];
            if let Some(list) = map.get_mut(topic) {
                list.retain(|t| t.sub != id);
                if list.is_empty() {
                    map.remove(topic);
                }
            }
        }
        Pattern::Wildcard(segs) => {
            reg.patterns[channel.index()].remove(segs, |t| t.sub == id);
        }
    }
}

fn infos(subs: &[(Channel, Pattern, OverflowPolicy)]) -> Vec<SubscriptionInfo> {
    subs.iter()
        .map(|(channel, pattern, policy)| SubscriptionInfo {
            channel: *channel,
            pattern: pattern.to_string(),
            policy: *policy,
        })
        .collect()
}

fn stats_of(id: SubscriberId, e: &SubscriberEntry) -> SubscriptionStats {
    let last = e.inbox.last_delivery_ms();
    SubscriptionStats {
        id,
        name: e.name.to_string(),
        delivered: e.inbox.delivered(),
        dropped: e.inbox.dropped(),
        queue_depth: e.inbox.depth(),
        capacity: e.inbox.capacity(),
        last_delivery: (last > 0)
            .then(|| chrono::DateTime::from_timestamp_millis(last as i64))
            .flatten(),
        subscriptions: infos(&e.subscriptions),
    }
}

/// Milliseconds since the Unix epoch, from the coarse real-time clock
/// (a few milliseconds of resolution, several times cheaper than the precise
/// clock): good enough for "last delivery" statistics, taken once per publish.
pub(crate) fn coarse_now_ms() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        (t.tv_sec as u64) * 1000 + (t.tv_nsec as u64) / 1_000_000
    }
    #[cfg(not(target_os = "linux"))]
    {
        now_ms()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(channel: Channel, topic: &str) -> Envelope {
        Envelope::new(channel, topic, "custom.t", serde_json::json!({}), "n")
    }

    #[tokio::test]
    async fn counts_publishes_and_deliveries_per_channel() {
        let bus = Bus::new(BusConfig::default());
        let small = bus
            .subscriber_with(
                "small",
                SubscriberOptions {
                    capacity: Some(1),
                    policy: Some(OverflowPolicy::DropOldest),
                },
            )
            .unwrap();
        small.subscribe(Channel::Alerts, "a:>").unwrap();
        // Two matching subscriptions of one subscriber: one delivery.
        let both = bus.subscriber("both").unwrap();
        both.subscribe(Channel::Alerts, "a:*").unwrap();
        both.subscribe(Channel::Alerts, "a:x").unwrap();
        let lossless = bus
            .subscriber_with(
                "lossless",
                SubscriberOptions {
                    capacity: Some(1),
                    policy: Some(OverflowPolicy::Backpressure),
                },
            )
            .unwrap();
        lossless.subscribe(Channel::Audit, "b").unwrap();

        for _ in 0..3 {
            bus.broadcast(env(Channel::Alerts, "a:x")).await.unwrap();
        }
        bus.broadcast(env(Channel::Alerts, "nobody")).await.unwrap();
        assert_eq!(bus.published(Channel::Alerts), 4);
        // Evicted messages were delivered first.
        assert_eq!(bus.delivered(Channel::Alerts), 6);
        assert_eq!(bus.stats_of(small.id()).unwrap().dropped, 2);

        // A delivery that waited for room is counted once it lands.
        bus.broadcast(env(Channel::Audit, "b")).await.unwrap();
        let waiting = {
            let bus = bus.clone();
            tokio::spawn(async move { bus.broadcast(env(Channel::Audit, "b")).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(bus.delivered(Channel::Audit), 1);
        lossless.recv().await.unwrap();
        waiting.await.unwrap().unwrap();
        assert_eq!(
            (bus.published(Channel::Audit), bus.delivered(Channel::Audit)),
            (2, 2)
        );
        // Other channels saw nothing; nothing is counted when counting is off.
        assert_eq!(bus.delivered(Channel::Events), 0);
        let off = Bus::new(BusConfig {
            count_published: false,
            ..BusConfig::default()
        });
        let sub = off.subscriber("s").unwrap();
        sub.subscribe(Channel::Alerts, ">").unwrap();
        off.broadcast(env(Channel::Alerts, "a")).await.unwrap();
        assert_eq!(
            (
                off.published(Channel::Alerts),
                off.delivered(Channel::Alerts)
            ),
            (0, 0)
        );
    }

    #[test]
    fn the_bus_refuses_a_newer_major_and_delivers_nothing() {
        use crate::messages::{MessageError, SchemaVersion};
        let bus = Bus::new(BusConfig::default());
        let sub = bus.subscriber("reader").unwrap();
        sub.subscribe(Channel::Alerts, ">").unwrap();
        let payload = serde_json::json!({"alert_id": "a", "severity": "error", "category": "data",
                                         "title": "t", "description": "d", "source": "s"});
        let alert = |payload| Envelope::new(Channel::Alerts, "t:x", "SystemAlert", payload, "n");
        let newer = alert(payload.clone()).with_schema(SchemaVersion::new(3, 1));
        let err = bus.publish_now(newer).unwrap_err();
        assert!(
            matches!(
                &err,
                BusError::Message(MessageError::UnsupportedSchemaVersion { kind, found, .. })
                    if kind == "SystemAlert" && *found == SchemaVersion::new(3, 1)
            ),
            "{err}"
        );
        assert!(sub.try_recv().is_none());
        let minor = alert(payload).with_schema(SchemaVersion::new(1, 3));
        bus.publish_now(minor).unwrap();
        assert_eq!(sub.try_recv().unwrap().schema(), SchemaVersion::new(1, 3));
    }
}
