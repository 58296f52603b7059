//! One behavioural suite, run against both buses: the embedded bus on a temp
//! dir and JetStream on a throwaway `nats-server`. Plus what only one of them
//! can show: JetStream surviving a server crash, the embedded bus surviving a
//! restart of its process.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon_eventbus::embedded::EmbeddedBus;
use argon_eventbus::jetstream::JetStreamBus;
use argon_eventbus::testing::NatsServer;
use argon_eventbus::{
    ConsumerSpec, DeliverPolicy, Delivery, EmbeddedConfig, Error, Event, EventBus, HistoryQuery, JetStreamConfig,
    SubjectFilter, Subscription,
};
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::json;

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// A bus under test and what keeps it alive (server or temp dir).
struct Env {
    bus: Arc<dyn EventBus>,
    _guard: Box<dyn Any + Send>,
}

async fn embedded() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::open(EmbeddedConfig::new(dir.path())).await.unwrap();
    Env {
        bus: Arc::new(bus),
        _guard: Box::new(dir),
    }
}

async fn jetstream() -> Env {
    let server = NatsServer::start();
    let bus = JetStreamBus::connect(JetStreamConfig::new(server.url())).await.unwrap();
    Env {
        bus: Arc::new(bus),
        _guard: Box::new(server),
    }
}

fn event(source: &str, name: &str, n: u64) -> Event {
    Event::new(source, name, "webhook", &json!({"body": {"n": n}}))
}

fn spec(name: &str) -> ConsumerSpec {
    ConsumerSpec::new(name).ack_wait(Duration::from_secs(1))
}

async fn next(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("no delivery within the deadline")
        .expect("subscription ended")
        .expect("delivery error")
}

/// Receives until the delivery with `id`, returning what came before it.
async fn until(sub: &mut Subscription, id: &str) -> Vec<Delivery> {
    let mut before = Vec::new();
    loop {
        let d = next(sub).await;
        if d.event.context.id == id {
            d.ack().await.unwrap();
            return before;
        }
        before.push(d);
    }
}

fn n_of(d: &Delivery) -> u64 {
    d.event.data.to_value().unwrap()["body"]["n"].as_u64().unwrap()
}

async fn round_trip(env: Env) {
    let bus = &env.bus;
    let wanted = event("github", "push", 1);
    bus.publish(&event("calendar", "tick", 0)).await.unwrap();
    let ack = bus.publish(&wanted).await.unwrap();
    assert!(!ack.duplicate);
    let mut sub = bus
        .subscribe(&spec("rt").filter(SubjectFilter::new("github", "push")))
        .await
        .unwrap();
    let d = next(&mut sub).await;
    assert_eq!(d.event, wanted);
    assert_eq!(d.subject, format!("{}.github.push", bus.name()));
    assert_eq!(d.delivered, 1);
    assert_eq!(d.sequence, ack.sequence);
    d.ack().await.unwrap();

    // A consumer without filters sees everything, in order.
    let mut all = bus.subscribe(&spec("all")).await.unwrap();
    assert_eq!(next(&mut all).await.event.context.source, "calendar");
    assert_eq!(next(&mut all).await.event.context.source, "github");
}

async fn redelivery_after_nak(env: Env) {
    let bus = &env.bus;
    let first = event("s", "e", 1);
    bus.publish(&first).await.unwrap();
    let mut sub = bus.subscribe(&spec("nak")).await.unwrap();
    let d = next(&mut sub).await;
    assert_eq!(d.delivered, 1);
    d.nak(None).await.unwrap();
    let d = next(&mut sub).await;
    assert_eq!(
        (d.event.context.id.as_str(), d.delivered),
        (first.context.id.as_str(), 2)
    );

    // A delayed nak comes back after the delay, behind a later event.
    let started = Instant::now();
    d.nak(Some(Duration::from_millis(700))).await.unwrap();
    let marker = event("s", "e", 2);
    bus.publish(&marker).await.unwrap();
    let d = next(&mut sub).await;
    assert_eq!(d.event.context.id, marker.context.id);
    d.ack().await.unwrap();
    let d = next(&mut sub).await;
    assert_eq!(
        (d.event.context.id.as_str(), d.delivered),
        (first.context.id.as_str(), 3)
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
    d.ack().await.unwrap();
}

async fn redelivery_after_ack_wait(env: Env) {
    let bus = &env.bus;
    let e = event("s", "e", 1);
    bus.publish(&e).await.unwrap();
    let mut sub = bus.subscribe(&spec("wait")).await.unwrap();
    let started = Instant::now();
    let d = next(&mut sub).await;
    drop(d); // neither acked nor naked
    let d = next(&mut sub).await;
    assert_eq!((d.event.context.id.as_str(), d.delivered), (e.context.id.as_str(), 2));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "redelivered before ack_wait"
    );

    // in_progress pushes the deadline out.
    d.in_progress().await.unwrap();
    d.ack().await.unwrap();
}

/// A subscriber that takes a while over each event (here 10 ms, so a few
/// hundred take longer than the 1 s ack wait) still has the whole ack wait
/// for each one, counted from when it gets it: nothing it acks in time
/// comes back, whatever the bus reads or fetches ahead of it.
async fn slow_subscriber_sees_no_early_redelivery(env: Env) {
    let bus = &env.bus;
    const EVENTS: u64 = 300;
    for n in 0..EVENTS {
        bus.publish(&event("s", "e", n)).await.unwrap();
    }
    let mut sub = bus.subscribe(&spec("slow")).await.unwrap();
    let started = Instant::now();
    for n in 0..EVENTS {
        let d = next(&mut sub).await;
        assert_eq!(
            (n_of(&d), d.delivered),
            (n, 1),
            "after {:?}, at seq {}",
            started.elapsed(),
            d.sequence
        );
        // The subscriber's own work on the event; not a synchronisation.
        tokio::time::sleep(Duration::from_millis(10)).await;
        d.ack().await.unwrap();
    }
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the run outlasted the ack wait"
    );
}

/// A subscriber busy with one event for longer than the ack wait (keeping it
/// in progress, as the sensor does) has not taken the next one yet: that
/// one's ack wait starts when it is taken, so it is not redelivered while it
/// waits for the subscriber, to be handled twice.
async fn busy_subscriber_keeps_what_it_has_not_taken(env: Env) {
    let bus = &env.bus;
    for n in 0..2 {
        bus.publish(&event("s", "e", n)).await.unwrap();
    }
    let mut sub = bus.subscribe(&spec("busy")).await.unwrap();
    let first = next(&mut sub).await;
    assert_eq!((n_of(&first), first.delivered), (0, 1));
    // The subscriber's own work on the event, 2.5 ack waits long; not a
    // synchronisation.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        first.in_progress().await.unwrap();
    }
    first.ack().await.unwrap();
    bus.publish(&event("s", "e", 2)).await.unwrap();
    for n in 1..3 {
        let d = next(&mut sub).await;
        assert_eq!((n_of(&d), d.delivered), (n, 1), "seq {}", d.sequence);
        d.ack().await.unwrap();
    }
}

/// A subscription that goes away hands back at once what the bus had read
/// ahead for it and not given out: the next subscription of the consumer
/// gets those events well within the 60 s ack wait. Returns the events
/// (of 1..50) it got within the deadline, stopping at `want`.
async fn hand_back_after_drop(env: &Env, want: usize) -> BTreeSet<u64> {
    let bus = &env.bus;
    const EVENTS: u64 = 50;
    for n in 0..EVENTS {
        bus.publish(&event("s", "e", n)).await.unwrap();
    }
    let spec = ConsumerSpec::new("handoff").ack_wait(Duration::from_secs(60));
    let mut first = bus.subscribe(&spec).await.unwrap();
    let d = next(&mut first).await;
    assert_eq!(n_of(&d), 0);
    d.ack().await.unwrap();
    drop(first);
    let mut second = bus.subscribe(&spec).await.unwrap();
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while seen.len() < want {
        let Ok(d) = tokio::time::timeout_at(deadline, second.next()).await else {
            break;
        };
        let d = d.expect("subscription ended").expect("delivery error");
        seen.insert(n_of(&d));
        d.ack().await.unwrap();
    }
    seen
}

#[tokio::test]
async fn embedded_dropped_subscription_hands_back_what_it_read_ahead() {
    let seen = hand_back_after_drop(&embedded().await, 49).await;
    assert_eq!(seen, (1..50).collect::<BTreeSet<_>>());
}

/// On JetStream the first message the server sends after the drop still
/// goes to the dropped subscription's pending pull request (nats-server
/// 2.9.10; it then drops that request): that one comes back after the ack
/// wait, the others at once.
#[tokio::test]
async fn jetstream_dropped_subscription_hands_back_what_it_read_ahead() {
    let seen = hand_back_after_drop(&jetstream().await, 48).await;
    assert!(
        seen.len() >= 48,
        "only {} of 49 within the deadline: {seen:?}",
        seen.len()
    );
}

async fn term_and_max_deliver(env: Env) {
    let bus = &env.bus;
    let poison = event("s", "e", 1);
    let flaky = event("s", "e", 2);
    bus.publish(&poison).await.unwrap();
    bus.publish(&flaky).await.unwrap();
    let mut sub = bus.subscribe(&spec("limits").max_deliver(Some(2))).await.unwrap();
    let mut flaky_deliveries = 0;
    let mut seen = 0;
    while seen < 3 {
        let d = next(&mut sub).await;
        seen += 1;
        if d.event.context.id == poison.context.id {
            d.term().await.unwrap();
        } else {
            flaky_deliveries += 1;
            d.nak(None).await.unwrap();
        }
    }
    assert_eq!(flaky_deliveries, 2);
    // Neither comes back: the next delivery is a later event.
    let marker = event("s", "e", 3);
    bus.publish(&marker).await.unwrap();
    let before = until(&mut sub, &marker.context.id).await;
    assert!(before.is_empty(), "unexpected redelivery: {before:?}");
}

async fn duplicate_id_dropped(env: Env) {
    let bus = &env.bus;
    let e = event("s", "e", 1);
    let first = bus.publish(&e).await.unwrap();
    let again = bus.publish(&e).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.sequence, first.sequence);
    let marker = event("s", "e", 2);
    bus.publish(&marker).await.unwrap();
    let mut sub = bus.subscribe(&spec("dup")).await.unwrap();
    let before = until(&mut sub, &marker.context.id).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].event.context.id, e.context.id);
}

async fn restarted_consumer_resumes(env: Env) {
    let bus = &env.bus;
    for n in 0..10 {
        bus.publish(&event("s", "e", n)).await.unwrap();
    }
    let mut acked = BTreeSet::new();
    {
        let mut sub = bus.subscribe(&spec("resume")).await.unwrap();
        while acked.len() < 5 {
            let d = next(&mut sub).await;
            acked.insert(n_of(&d));
            d.ack().await.unwrap();
        }
    }
    let mut sub = bus.subscribe(&spec("resume")).await.unwrap();
    let mut rest = BTreeSet::new();
    while acked.len() + rest.len() < 10 {
        let d = next(&mut sub).await;
        let n = n_of(&d);
        assert!(!acked.contains(&n), "acked event {n} delivered again");
        rest.insert(n);
        d.ack().await.unwrap();
    }
    // A consumer created with DeliverPolicy::New skips what is already there.
    let marker = event("s", "e", 99);
    let mut fresh = bus
        .subscribe(&spec("fresh").deliver_policy(DeliverPolicy::New))
        .await
        .unwrap();
    bus.publish(&marker).await.unwrap();
    assert_eq!(next(&mut fresh).await.event.context.id, marker.context.id);
}

async fn key_value(env: Env) {
    let kv = env.bus.kv(&argon_eventbus::kv_bucket_name("my.sensor")).await.unwrap();
    assert_eq!(kv.get("dep-a").await.unwrap(), None);
    let r1 = kv.put("dep-a", Bytes::from_static(b"1")).await.unwrap();
    let got = kv.get("dep-a").await.unwrap().unwrap();
    assert_eq!((got.value.as_ref(), got.revision), (&b"1"[..], r1));
    assert!(matches!(
        kv.create("dep-a", Bytes::from_static(b"x")).await,
        Err(Error::Conflict { .. })
    ));
    let r2 = kv.update("dep-a", Bytes::from_static(b"2"), r1).await.unwrap();
    assert!(r2 > r1);
    assert!(matches!(
        kv.update("dep-a", Bytes::from_static(b"3"), r1).await,
        Err(Error::Conflict { .. })
    ));
    kv.create("dep-b", Bytes::from_static(b"b")).await.unwrap();
    assert_eq!(kv.keys().await.unwrap(), vec!["dep-a".to_owned(), "dep-b".to_owned()]);
    kv.delete("dep-a").await.unwrap();
    assert_eq!(kv.get("dep-a").await.unwrap(), None);
    assert_eq!(kv.keys().await.unwrap(), vec!["dep-b".to_owned()]);
    assert!(kv.put("bad key", Bytes::new()).await.is_err());
    // Another bucket is separate.
    let other = env.bus.kv("other").await.unwrap();
    assert_eq!(other.get("dep-b").await.unwrap(), None);
}

/// The history lists stored events newest first, filtered by source and
/// time, a page at a time; an event is found by id, a replay with its own.
async fn history(env: Env) {
    let bus = &env.bus;
    let mut ids = Vec::new();
    for n in 0..6 {
        let source = if n % 2 == 0 { "even" } else { "odd" };
        let e = event(source, "e", n);
        ids.push(e.context.id.clone());
        bus.publish(&e).await.unwrap();
    }
    let all = bus.history(&HistoryQuery::newest(100)).await.unwrap();
    let ns: Vec<u64> = all.events.iter().map(|s| n_of_event(&s.event)).collect();
    assert_eq!(ns, vec![5, 4, 3, 2, 1, 0]);
    assert_eq!(all.next, None);
    assert!(all.events.windows(2).all(|w| w[0].sequence > w[1].sequence));
    assert_eq!(all.events[0].subject, "default.odd.e");

    // Pages of two of the even ones.
    let mut query = HistoryQuery::newest(2);
    query.filter.source = Some("even".into());
    let first = bus.history(&query).await.unwrap();
    assert_eq!(
        first.events.iter().map(|s| n_of_event(&s.event)).collect::<Vec<_>>(),
        vec![4, 2]
    );
    query.before = first.next;
    assert!(query.before.is_some());
    let second = bus.history(&query).await.unwrap();
    assert_eq!(
        second.events.iter().map(|s| n_of_event(&s.event)).collect::<Vec<_>>(),
        vec![0]
    );
    assert_eq!(second.next, None);

    // Since: nothing is newer than the future, everything newer than the past.
    let mut query = HistoryQuery::newest(100);
    query.since = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    assert!(bus.history(&query).await.unwrap().events.is_empty());
    query.since = Some(chrono::Utc::now() - chrono::Duration::hours(1));
    assert_eq!(bus.history(&query).await.unwrap().events.len(), 6);

    let found = bus.stored_event(&ids[3]).await.unwrap().expect("event 3 is stored");
    assert_eq!(n_of_event(&found.event), 3);
    assert_eq!(found.event.context.id, ids[3]);
    assert!(bus.stored_event("no-such-event").await.unwrap().is_none());
    // An id that is not a UUID is found too (webhook sources derive ids).
    let named = event("even", "e", 9).with_id("delivery-42");
    bus.publish(&named).await.unwrap();
    assert_eq!(
        n_of_event(&bus.stored_event("delivery-42").await.unwrap().unwrap().event),
        9
    );

    // A replay is a new event that names the original.
    let replay = found.event.replay(Some("ci"));
    assert!(!bus.publish(&replay).await.unwrap().duplicate);
    let stored = bus.stored_event(&replay.context.id).await.unwrap().unwrap();
    assert_eq!(stored.event.context.argonreplayof.as_deref(), Some(ids[3].as_str()));
    assert_eq!(stored.event.context.argonsensor.as_deref(), Some("ci"));
}

fn n_of_event(e: &Event) -> u64 {
    e.data.to_value().unwrap()["body"]["n"].as_u64().unwrap()
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod embedded_bus {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::embedded().await).await;
                }
            )*
        }
        mod jetstream_bus {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::jetstream().await).await;
                }
            )*
        }
    };
}

suite!(
    round_trip,
    redelivery_after_nak,
    redelivery_after_ack_wait,
    slow_subscriber_sees_no_early_redelivery,
    busy_subscriber_keeps_what_it_has_not_taken,
    term_and_max_deliver,
    duplicate_id_dropped,
    restarted_consumer_resumes,
    key_value,
    history,
);

/// The embedded bus closed and reopened: consumers resume from their cursor,
/// unsettled deliveries come back, the dedup window still holds.
#[tokio::test]
async fn embedded_reopen_resumes_consumers_and_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<Event> = (0..6).map(|n| event("s", "e", n)).collect();
    {
        let bus = EmbeddedBus::open(EmbeddedConfig::new(dir.path())).await.unwrap();
        for e in &events {
            bus.publish(e).await.unwrap();
        }
        let mut sub = bus
            .subscribe(&spec("c").ack_wait(Duration::from_secs(60)))
            .await
            .unwrap();
        for _ in 0..3 {
            let d = next(&mut sub).await;
            d.ack().await.unwrap();
        }
        let unsettled = next(&mut sub).await;
        assert_eq!(n_of(&unsettled), 3);
    }
    let bus = EmbeddedBus::open(EmbeddedConfig::new(dir.path())).await.unwrap();
    assert!(bus.publish(&events[0]).await.unwrap().duplicate);
    let mut sub = bus
        .subscribe(&spec("c").ack_wait(Duration::from_secs(60)))
        .await
        .unwrap();
    let d = next(&mut sub).await;
    assert_eq!(
        (n_of(&d), d.delivered),
        (3, 2),
        "the unsettled delivery comes back at once"
    );
    d.ack().await.unwrap();
    assert_eq!(n_of(&next(&mut sub).await), 4);
}

/// A consumer reading while publishing goes on, with a cache that holds only
/// a few dozen events: reads cross from the segment files into memory and
/// back, and every event is seen once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_consumer_reads_across_disk_and_cache() {
    const EVENTS: u64 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.cache_bytes = 16 << 10;
    config.segment_bytes = 64 << 10;
    let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::open(config).await.unwrap());
    // A long ack wait: a redelivery after a slow ack is right, but not what
    // this test looks at.
    let mut sub = bus
        .subscribe(&spec("across").ack_wait(Duration::from_secs(60)))
        .await
        .unwrap();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for n in 0..EVENTS {
                bus.publish(&event("s", "e", n)).await.unwrap();
            }
        })
    };
    let mut last_sequence = 0;
    for n in 0..EVENTS {
        let d = next(&mut sub).await;
        assert_eq!(n_of(&d), n, "events out of order or missing");
        assert!(d.sequence > last_sequence);
        last_sequence = d.sequence;
        d.ack().await.unwrap();
        // Fall behind now and then, so the next reads find the disk.
        if n % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    publisher.await.unwrap();
    // Nothing more: no event came twice.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err(),
        "an event was delivered twice"
    );
}

/// Many publishers at once, their publishes sharing batches: every event is
/// stored once, under consecutive sequences, and is read back in that order
/// from the cache, from the segment files, and after a reopen (which scans
/// the files).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_concurrent_publishes_read_back_in_order() {
    const PUBLISHERS: u64 = 16;
    const EACH: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.cache_bytes = 16 << 10;
    config.segment_bytes = 256 << 10;
    let read_all = |bus: Arc<dyn EventBus>, name: &'static str| async move {
        // A long ack wait: a redelivery after a slow ack is right, but not
        // what this test looks at.
        let mut sub = bus
            .subscribe(&spec(name).ack_wait(Duration::from_secs(60)))
            .await
            .unwrap();
        let mut seen = std::collections::HashSet::new();
        for sequence in 1..=PUBLISHERS * EACH {
            let d = next(&mut sub).await;
            assert_eq!(d.sequence, sequence, "{name}: sequences in order, none missing");
            assert!(seen.insert(n_of(&d)), "{name}: event {} twice", n_of(&d));
            d.ack().await.unwrap();
        }
    };
    {
        let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::open(config.clone()).await.unwrap());
        let mut publishers = Vec::new();
        for p in 0..PUBLISHERS {
            let bus = bus.clone();
            publishers.push(tokio::spawn(async move {
                let mut sequences = Vec::new();
                for i in 0..EACH {
                    sequences.push(bus.publish(&event("s", "e", p * EACH + i)).await.unwrap().sequence);
                }
                sequences
            }));
        }
        let mut sequences = Vec::new();
        for publisher in publishers {
            sequences.extend(publisher.await.unwrap());
        }
        sequences.sort_unstable();
        assert_eq!(sequences, (1..=PUBLISHERS * EACH).collect::<Vec<_>>());
        read_all(bus, "live").await;
    }
    let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::open(config).await.unwrap());
    read_all(bus.clone(), "reopened").await;
    let ack = bus.publish(&event("s", "e", PUBLISHERS * EACH)).await.unwrap();
    assert_eq!(ack.sequence, PUBLISHERS * EACH + 1, "sequences go on after the reopen");
}

/// Files of the embedded bus's event log.
fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

/// Small segments: the log rolls over many files, retention deletes the old
/// ones, and after a reopen (even with retention turned off) the removed
/// events stay removed and the kept ones are read back from disk in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_segments_roll_and_retire() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.segment_bytes = 4 << 10;
    config.max_msgs = Some(40);
    {
        let bus = EmbeddedBus::open(config.clone()).await.unwrap();
        for n in 0..200 {
            bus.publish(&event("s", "e", n)).await.unwrap();
        }
        let mut sub = bus.subscribe(&spec("kept")).await.unwrap();
        let first = next(&mut sub).await;
        assert_eq!(n_of(&first), 160, "the 40 newest events are kept");
    }
    let files = segments(dir.path());
    assert!(files.len() >= 2, "the log rolled over: {files:?}");
    assert!(
        files.len() <= 10,
        "segments holding only removed events were deleted: {} left",
        files.len()
    );

    config.max_msgs = None;
    let bus = EmbeddedBus::open(config).await.unwrap();
    let mut sub = bus.subscribe(&spec("after-reopen")).await.unwrap();
    for n in 160..200 {
        let d = next(&mut sub).await;
        assert_eq!(n_of(&d), n);
        d.ack().await.unwrap();
    }
    let ack = bus.publish(&event("s", "e", 200)).await.unwrap();
    assert_eq!(ack.sequence, 201, "sequences go on after the reopen");
    assert_eq!(n_of(&next(&mut sub).await), 200);
}

/// A new log does not keep growing its first, empty file (each sync of a
/// growing file also commits its length): right after the first appends the
/// log moves into a segment written ahead of time, and every event is read
/// back in order across that move and a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_new_log_moves_into_a_prepared_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig::new(dir.path());
    let mut published = 0;
    {
        let bus = EmbeddedBus::open(config.clone()).await.unwrap();
        let deadline = Instant::now() + DEADLINE;
        while segments(dir.path()).len() < 2 {
            assert!(
                Instant::now() < deadline,
                "still one segment after {published} events: {:?}",
                segments(dir.path())
            );
            bus.publish(&event("s", "e", published)).await.unwrap();
            published += 1;
        }
        bus.publish(&event("s", "e", published)).await.unwrap();
        published += 1;
    }
    let files = segments(dir.path());
    let first = std::fs::metadata(&files[0]).unwrap().len();
    let second = std::fs::metadata(&files[1]).unwrap().len();
    assert!(
        first < 2 << 20,
        "the first segment holds only the first events: {first} bytes"
    );
    assert!(
        second >= 4 << 20,
        "the second was written ahead of time: {second} bytes"
    );

    let bus = EmbeddedBus::open(config).await.unwrap();
    let mut sub = bus.subscribe(&spec("all")).await.unwrap();
    for n in 0..published {
        let d = next(&mut sub).await;
        assert_eq!((n_of(&d), d.delivered), (n, 1), "seq {}", d.sequence);
        d.ack().await.unwrap();
    }
}

/// What follows the last whole record of the newest segment (a write torn by
/// a crash) is cut on reopen: the events before it are all there, new ones
/// follow them, and a second reopen reads them all back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_torn_tail_is_cut_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = EmbeddedBus::open(EmbeddedConfig::new(dir.path())).await.unwrap();
        for n in 0..5 {
            bus.publish(&event("s", "e", n)).await.unwrap();
        }
    }
    // A torn record: a plausible header and half a body, then garbage.
    let newest = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&newest).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    let mut torn = 900u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[0xab; 300]);
    {
        use std::os::unix::fs::FileExt as _;
        let file = std::fs::OpenOptions::new().write(true).open(&newest).unwrap();
        file.write_all_at(&torn, end as u64).unwrap();
    }
    for round in 0..2 {
        let bus = EmbeddedBus::open(EmbeddedConfig::new(dir.path())).await.unwrap();
        let ack = bus.publish(&event("s", "e", 5 + round)).await.unwrap();
        assert_eq!(ack.sequence, 6 + round, "round {round}");
        let mut sub = bus.subscribe(&spec(&format!("torn{round}"))).await.unwrap();
        for n in 0..=5 + round {
            assert_eq!(n_of(&next(&mut sub).await), n, "round {round}");
        }
    }
}

/// Retention by count removes the oldest events.
#[tokio::test]
async fn embedded_retention_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.max_msgs = Some(3);
    let bus = EmbeddedBus::open(config).await.unwrap();
    for n in 0..5 {
        bus.publish(&event("s", "e", n)).await.unwrap();
    }
    let mut sub = bus.subscribe(&spec("r")).await.unwrap();
    let got: Vec<u64> = [next(&mut sub).await, next(&mut sub).await, next(&mut sub).await]
        .iter()
        .map(n_of)
        .collect();
    assert_eq!(got, vec![2, 3, 4]);
}

/// Retention by size removes the oldest events, whole segments from the
/// files, and the history no longer lists them.
#[tokio::test]
async fn embedded_retention_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.segment_bytes = 4096;
    config.max_bytes = Some(8192);
    let bus = EmbeddedBus::open(config).await.unwrap();
    let padding = "x".repeat(400);
    for n in 0..100 {
        let e = Event::new("s", "e", "webhook", &json!({"body": {"n": n, "pad": padding}}));
        bus.publish(&e).await.unwrap();
    }
    // Retention runs with the publishes (at most every 100 ms) and when idle.
    let deadline = Instant::now() + DEADLINE;
    let mut query = HistoryQuery::newest(1000);
    query.filter.event = Some("e".into());
    loop {
        let page = bus.history(&query).await.unwrap();
        let kept: Vec<u64> = page.events.iter().map(|s| n_of_event(&s.event)).collect();
        // About 550 bytes a record: at most 8192 / 400 of them fit.
        if kept.len() <= 8192 / 400 {
            assert!(kept.len() >= 4, "{kept:?}");
            let want: Vec<u64> = (100 - kept.len() as u64..100).rev().collect();
            assert_eq!(kept, want, "the newest are kept");
            break;
        }
        assert!(Instant::now() < deadline, "still {} events kept", kept.len());
        bus.publish(&event("s", "tick", 0)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 8 KiB in 4 KiB segments: two sealed ones and the active one at most,
    // and the one being retired.
    let files = segments(dir.path()).len();
    assert!(files <= 4, "{files} segment files kept");
}

/// Retention by age removes old events.
#[tokio::test]
async fn embedded_retention_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.max_age = Some(Duration::from_millis(300));
    let bus = EmbeddedBus::open(config).await.unwrap();
    bus.publish(&event("s", "e", 0)).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    // Each publish commit also ages events out: wait until the old one is gone.
    let mut n = 1;
    loop {
        bus.publish(&event("s", "e", n)).await.unwrap();
        let mut sub = bus.subscribe(&spec(&format!("age{n}"))).await.unwrap();
        if n_of(&next(&mut sub).await) != 0 {
            break;
        }
        assert!(Instant::now() < deadline, "event 0 never aged out");
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// While NATS is down, publish fails within the configured bound with a
/// retryable error; when it is back, publishing and consuming resume without
/// reconnecting by hand, and every acked publish is delivered.
#[tokio::test]
async fn jetstream_server_killed_mid_stream_loses_no_acked_event() {
    let mut server = NatsServer::start();
    let mut config = JetStreamConfig::new(server.url());
    config.publish_timeout = Duration::from_secs(1);
    let bus = JetStreamBus::connect(config).await.unwrap();
    let mut sub = bus.subscribe(&spec("crash")).await.unwrap();

    let consumer = tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        while let Some(d) = sub.next().await {
            let Ok(d) = d else { continue };
            seen.insert(d.event.context.id.clone());
            // An ack lost in the crash only means a redelivery.
            let _ = d.ack().await;
            if seen.contains("last") {
                break;
            }
        }
        seen
    });

    let mut acked = BTreeSet::new();
    for n in 0..100 {
        let e = event("s", "e", n);
        bus.publish(&e).await.unwrap();
        acked.insert(e.context.id);
    }
    server.kill();
    let started = Instant::now();
    let err = bus.publish(&event("s", "e", 100)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "publish took {:?}",
        started.elapsed()
    );

    server.restart();
    let deadline = Instant::now() + DEADLINE;
    let mut n = 101;
    while acked.len() < 200 {
        let e = event("s", "e", n);
        n += 1;
        match bus.publish(&e).await {
            Ok(_) => {
                acked.insert(e.context.id);
            }
            Err(err) => {
                assert!(err.is_retryable(), "{err}");
                assert!(Instant::now() < deadline, "publishing did not resume: {err}");
            }
        }
    }
    let last = event("s", "e", 0).with_id("last");
    while bus.publish(&last).await.is_err() {
        assert!(Instant::now() < deadline, "publishing did not resume");
    }
    let seen = tokio::time::timeout(DEADLINE, consumer)
        .await
        .expect("consumer stalled")
        .unwrap();
    let missing: Vec<_> = acked.difference(&seen).collect();
    assert!(missing.is_empty(), "{} acked events never delivered", missing.len());
}

/// A stream lost on the server (e.g. a server restarted without its store) is
/// recreated by the next publish.
#[tokio::test]
async fn jetstream_publish_recreates_a_lost_stream() {
    let server = NatsServer::start();
    let bus = JetStreamBus::connect(JetStreamConfig::new(server.url())).await.unwrap();
    async_nats::jetstream::new(bus.client().clone())
        .delete_stream(bus.name())
        .await
        .unwrap();
    let e = event("s", "e", 1);
    bus.publish(&e).await.unwrap();
    let mut sub = bus.subscribe(&spec("after")).await.unwrap();
    assert_eq!(next(&mut sub).await.event.context.id, e.context.id);
}
