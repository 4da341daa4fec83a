//! Black-box tests of the bus: routing, Phoenix.PubSub operations, inbox
//! policies, statistics and clean-up.

use std::sync::Arc;
use std::time::Duration;

use exesdb_host::bus::{Bus, BusConfig, BusError, Channel, OverflowPolicy, SubscriberOptions};
use exesdb_host::messages::{Envelope, MessageError};
use serde_json::json;

fn bus() -> Bus {
    Bus::new(BusConfig::default())
}

fn msg(bus: &Bus, channel: Channel, topic: &str, n: u64) -> Envelope {
    Envelope::new(channel, topic, "custom.test", json!({ "n": n }), bus.node())
}

fn n_of(env: &Envelope) -> u64 {
    env.payload()["n"].as_u64().unwrap()
}

#[tokio::test]
async fn exact_and_wildcard_subscriptions_route_by_channel_and_topic() {
    let bus = bus();
    let exact = bus.subscriber("exact").unwrap();
    exact
        .subscribe(Channel::Health, "store_health:my_store")
        .unwrap();
    let star = bus.subscriber("star").unwrap();
    star.subscribe(Channel::Health, "store_health:*").unwrap();
    let rest = bus.subscriber("rest").unwrap();
    rest.subscribe(Channel::Health, "subscription_health:>")
        .unwrap();
    let other_channel = bus.subscriber("metrics").unwrap();
    other_channel
        .subscribe(Channel::Metrics, "store_health:*")
        .unwrap();

    let d = bus
        .broadcast(msg(&bus, Channel::Health, "store_health:my_store", 1))
        .await
        .unwrap();
    assert_eq!(d.delivered, 2);
    bus.broadcast(msg(
        &bus,
        Channel::Health,
        "subscription_health:my_store:sub_a",
        2,
    ))
    .await
    .unwrap();
    bus.broadcast(msg(&bus, Channel::Health, "store_health:other:deep", 3))
        .await
        .unwrap();

    assert_eq!(n_of(&exact.try_recv().unwrap()), 1);
    assert!(exact.try_recv().is_none());
    assert_eq!(n_of(&star.try_recv().unwrap()), 1);
    assert!(star.try_recv().is_none(), "`*` is one segment only");
    assert_eq!(n_of(&rest.try_recv().unwrap()), 2);
    assert!(rest.try_recv().is_none());
    assert!(other_channel.try_recv().is_none(), "channels are separate");
}

#[tokio::test]
async fn a_subscriber_matching_twice_gets_one_copy() {
    let bus = bus();
    let sub = bus.subscriber("both").unwrap();
    sub.subscribe(Channel::Events, "s:x").unwrap();
    sub.subscribe(Channel::Events, "s:*").unwrap();
    sub.subscribe(Channel::Events, ">").unwrap();
    let d = bus
        .broadcast(msg(&bus, Channel::Events, "s:x", 1))
        .await
        .unwrap();
    assert_eq!(d.delivered, 1);
    assert!(sub.try_recv().is_some());
    assert!(sub.try_recv().is_none());
}

#[tokio::test]
async fn subscribing_twice_is_idempotent_and_unsubscribe_stops_delivery() {
    let bus = bus();
    let sub = bus.subscriber("s").unwrap();
    assert!(sub.subscribe(Channel::Alerts, "system_alert:*").unwrap());
    assert!(!sub.subscribe(Channel::Alerts, "system_alert:*").unwrap());
    assert_eq!(sub.subscriptions().len(), 1);
    bus.broadcast(msg(&bus, Channel::Alerts, "system_alert:data", 1))
        .await
        .unwrap();
    assert!(sub.try_recv().is_some());
    assert!(
        sub.try_recv().is_none(),
        "one copy despite two subscribe calls"
    );
    assert!(sub.unsubscribe(Channel::Alerts, "system_alert:*").unwrap());
    assert!(!sub.unsubscribe(Channel::Alerts, "system_alert:*").unwrap());
    let d = bus
        .broadcast(msg(&bus, Channel::Alerts, "system_alert:data", 2))
        .await
        .unwrap();
    assert_eq!(d.delivered, 0);
}

#[tokio::test]
async fn broadcast_from_skips_the_sender() {
    let bus = bus();
    let a = bus.subscriber("a").unwrap();
    let b = bus.subscriber("b").unwrap();
    for s in [&a, &b] {
        s.subscribe(Channel::System, "room").unwrap();
    }
    let d = bus
        .broadcast_from(a.id(), msg(&bus, Channel::System, "room", 1))
        .await
        .unwrap();
    assert_eq!(d.delivered, 1);
    assert!(a.try_recv().is_none());
    assert!(b.try_recv().is_some());
}

#[tokio::test]
async fn local_and_direct_broadcast_on_a_single_node() {
    let bus = bus();
    let s = bus.subscriber("s").unwrap();
    s.subscribe(Channel::System, "t").unwrap();
    bus.local_broadcast(msg(&bus, Channel::System, "t", 1))
        .await
        .unwrap();
    let node = bus.node().to_owned();
    bus.direct_broadcast(&node, msg(&bus, Channel::System, "t", 2))
        .await
        .unwrap();
    let err = bus
        .direct_broadcast("other@host", msg(&bus, Channel::System, "t", 3))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::UnknownNode { node, .. } if node == "other@host"),
        "{err}"
    );
    assert_eq!(n_of(&s.try_recv().unwrap()), 1);
    assert_eq!(n_of(&s.try_recv().unwrap()), 2);
    assert!(s.try_recv().is_none());
}

#[tokio::test]
async fn invalid_topics_patterns_and_messages_are_rejected_with_the_cause() {
    let bus = bus();
    let s = bus.subscriber("s").unwrap();
    let err = s
        .subscribe(Channel::Events, "a:>:b")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a:>:b") && err.contains("last segment"),
        "{err}"
    );
    let err = bus
        .broadcast(msg(&bus, Channel::Events, "a::b", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a::b") && err.contains("empty segment"),
        "{err}"
    );
    let err = bus
        .broadcast(msg(&bus, Channel::Events, "a:*", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("wildcards"), "{err}");
    let wrong = Envelope::new(Channel::Audit, "x", "NodeHealth", json!({}), bus.node());
    let err = bus.broadcast(wrong).await.unwrap_err();
    assert!(
        matches!(err, BusError::Message(MessageError::WrongChannel { .. })),
        "{err}"
    );
    assert!(matches!(
        bus.subscriber(""),
        Err(BusError::EmptySubscriberName)
    ));
}

#[tokio::test]
async fn oversized_payloads_are_rejected_and_nothing_is_delivered() {
    let bus = Bus::new(BusConfig {
        max_payload_bytes: 100,
        ..BusConfig::default()
    });
    let s = bus.subscriber("s").unwrap();
    s.subscribe(Channel::Events, ">").unwrap();
    let big = Envelope::new(
        Channel::Events,
        "a:b",
        "custom.big",
        json!({"x": "y".repeat(200)}),
        bus.node(),
    );
    let err = bus.broadcast(big).await.unwrap_err();
    assert!(
        matches!(
            err,
            BusError::Message(MessageError::TooLarge { limit: 100, .. })
        ),
        "{err}"
    );
    assert!(s.try_recv().is_none());
}

#[tokio::test]
async fn drop_oldest_evicts_and_counts() {
    let bus = bus();
    let s = bus
        .subscriber_with(
            "small",
            SubscriberOptions {
                capacity: Some(3),
                policy: None,
            },
        )
        .unwrap();
    s.subscribe(Channel::Metrics, "m").unwrap();
    for n in 0..5 {
        bus.broadcast(msg(&bus, Channel::Metrics, "m", n))
            .await
            .unwrap();
    }
    let stats = bus.stats_of(s.id()).unwrap();
    assert_eq!(stats.delivered, 5);
    assert_eq!(stats.dropped, 2);
    assert_eq!(stats.queue_depth, 3);
    assert!(stats.last_delivery.is_some());
    let got: Vec<u64> = std::iter::from_fn(|| s.try_recv())
        .map(|e| n_of(&e))
        .collect();
    assert_eq!(got, vec![2, 3, 4], "the oldest were evicted, order kept");
}

#[tokio::test]
async fn audit_and_security_default_to_backpressure_and_never_drop() {
    let bus = Bus::new(BusConfig {
        backpressure_timeout: Duration::from_millis(100),
        ..BusConfig::default()
    });
    let s = bus
        .subscriber_with(
            "auditor",
            SubscriberOptions {
                capacity: Some(2),
                policy: None,
            },
        )
        .unwrap();
    s.subscribe(Channel::Audit, "audit:>").unwrap();
    s.subscribe(Channel::Security, ">").unwrap();
    assert!(s
        .subscriptions()
        .iter()
        .all(|i| i.policy == OverflowPolicy::Backpressure));
    bus.broadcast(msg(&bus, Channel::Audit, "audit:x", 0))
        .await
        .unwrap();
    bus.broadcast(msg(&bus, Channel::Security, "auth:login", 1))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = bus
        .broadcast(msg(&bus, Channel::Audit, "audit:x", 2))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "the publisher waited"
    );
    assert!(
        matches!(&err, BusError::Backpressure { subscriber, .. } if subscriber == "auditor"),
        "{err}"
    );
    assert_eq!(bus.stats_of(s.id()).unwrap().dropped, 0);
}

#[tokio::test]
async fn backpressure_publisher_proceeds_when_the_subscriber_makes_room() {
    let bus = bus();
    let s = Arc::new(
        bus.subscriber_with(
            "slow",
            SubscriberOptions {
                capacity: Some(1),
                policy: None,
            },
        )
        .unwrap(),
    );
    s.subscribe(Channel::Audit, "a").unwrap();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for n in 0..20 {
                bus.broadcast(msg(&bus, Channel::Audit, "a", n))
                    .await
                    .unwrap();
            }
        })
    };
    let mut got = vec![];
    while got.len() < 20 {
        let env = tokio::time::timeout(Duration::from_secs(5), s.recv())
            .await
            .unwrap()
            .unwrap();
        got.push(n_of(&env));
    }
    publisher.await.unwrap();
    assert_eq!(got, (0..20).collect::<Vec<_>>(), "nothing lost, FIFO");
}

#[tokio::test]
async fn fifo_per_publisher_per_topic_with_concurrent_publishers() {
    let bus = bus();
    let s = bus
        .subscriber_with(
            "s",
            SubscriberOptions {
                capacity: Some(100_000),
                policy: None,
            },
        )
        .unwrap();
    s.subscribe(Channel::Events, "st:*").unwrap();
    let mut tasks = vec![];
    for p in 0..4u64 {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..1000u64 {
                let e = Envelope::new(
                    Channel::Events,
                    format!("st:{p}"),
                    "custom.t",
                    json!({"p": p, "n": n}),
                    "x",
                );
                bus.broadcast(e).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut next = [0u64; 4];
    let mut out = vec![];
    while s.recv_many(&mut out, 512).await > 0 && out.len() < 4000 {}
    for e in &out {
        let p = e.payload()["p"].as_u64().unwrap() as usize;
        assert_eq!(
            e.payload()["n"].as_u64().unwrap(),
            next[p],
            "publisher {p} out of order"
        );
        next[p] += 1;
    }
    assert_eq!(next, [1000; 4]);
}

#[tokio::test]
async fn dropping_a_subscriber_removes_it() {
    let bus = bus();
    let keep = bus.subscriber("keep").unwrap();
    keep.subscribe(Channel::Events, ">").unwrap();
    {
        let gone = bus.subscriber("gone").unwrap();
        gone.subscribe(Channel::Events, "a:b").unwrap();
        gone.subscribe(Channel::Events, "a:*").unwrap();
        assert_eq!(bus.subscriber_count(), 2);
    }
    assert_eq!(bus.subscriber_count(), 1);
    let d = bus
        .broadcast(msg(&bus, Channel::Events, "a:b", 1))
        .await
        .unwrap();
    assert_eq!(d.delivered, 1);
    assert_eq!(bus.stats().len(), 1);
    assert_eq!(bus.stats()[0].name, "keep");
}

#[tokio::test]
async fn recv_waits_for_a_message() {
    let bus = bus();
    let s = Arc::new(bus.subscriber("waiter").unwrap());
    s.subscribe(Channel::Lifecycle, "x").unwrap();
    let waiter = {
        let s = Arc::clone(&s);
        tokio::spawn(async move { s.recv().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    bus.broadcast(msg(&bus, Channel::Lifecycle, "x", 9))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(n_of(&got), 9);
}

#[tokio::test]
async fn ten_thousand_patterns_still_route_exactly() {
    let bus = bus();
    let subs: Vec<_> = (0..100)
        .map(|i| {
            let s = bus.subscriber(&format!("s{i}")).unwrap();
            for j in 0..100 {
                s.subscribe(
                    Channel::Metrics,
                    &format!("store_metrics:store{}:*", i * 100 + j),
                )
                .unwrap();
            }
            s
        })
        .collect();
    let d = bus
        .broadcast(msg(
            &bus,
            Channel::Metrics,
            "store_metrics:store4242:eps",
            1,
        ))
        .await
        .unwrap();
    assert_eq!(d.delivered, 1);
    assert!(subs[42].try_recv().is_some());
    assert!(subs.iter().all(|s| s.try_recv().is_none()));
}
