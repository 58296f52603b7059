//! Calendar events with a manual clock (no wall-clock waits): ticks,
//! exclusion dates, and catch-up of missed ticks after a restart, with the
//! state in the bus key-value store, against both buses.

mod common;

use std::sync::Arc;
use std::time::Duration;

use argon_crds::secret::Secrets;
use argon_eventbus::{ConsumerSpec, Event, EventBus, Subscription};
use argon_eventsource::{EventSourceRunner, ManualClock, RunnerConfig, Running};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use common::{BusKind, load, open_bus};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn start(yaml: &str, bus: &Arc<dyn EventBus>, clock: &ManualClock) -> (Running, CancellationToken) {
    let token = CancellationToken::new();
    let config = RunnerConfig {
        clock: Arc::new(clock.clone()),
        ..RunnerConfig::default()
    };
    let running = EventSourceRunner::start(&load(yaml), bus.clone(), &Secrets::new(None), config, token.clone())
        .await
        .unwrap();
    (running, token)
}

async fn stop(running: Running, token: CancellationToken) {
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .expect("stopped within 10s")
        .unwrap();
}

async fn next(sub: &mut Subscription) -> Event {
    let delivery = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("an event within 10s")
        .unwrap()
        .unwrap();
    let event = delivery.event.clone();
    delivery.ack().await.unwrap();
    event
}

fn event_time(event: &Event) -> DateTime<Utc> {
    let data = event.data.to_value().unwrap();
    at(data["eventTime"].as_str().unwrap())
}

const TICKS: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: cal
spec:
  calendar:
    every-minute:
      interval: 1m
      metadata: {purpose: test}
      persistence:
        catchup: {enabled: true, maxDuration: 3m}
    nightly:
      schedule: "0 0 * * *"
      timezone: Europe/Paris
      exclusionDates: ["2026-01-02"]
"#;

async fn calendar_suite(kind: BusKind) {
    let dir = tempfile::tempdir().unwrap();
    let (bus, _nats) = open_bus(kind, dir.path(), Duration::from_secs(5)).await;
    let mut sub = bus.subscribe(&ConsumerSpec::new("reader")).await.unwrap();
    let t0 = at("2026-01-01T22:30:00Z");
    let clock = ManualClock::new(t0);

    let (running, token) = start(TICKS, &bus, &clock).await;
    clock.set(at("2026-01-01T22:31:00Z"));
    let event = next(&mut sub).await;
    assert_eq!(event.context.source, "cal");
    assert_eq!(event.context.subject, "every-minute");
    assert_eq!(event.context.r#type, "calendar");
    assert_eq!(event.context.time, at("2026-01-01T22:31:00Z"));
    let data = event.data.to_value().unwrap();
    assert_eq!(data["metadata"], json!({"purpose": "test"}));
    assert_eq!(event_time(&event), at("2026-01-01T22:31:00Z"));
    stop(running, token).await;

    // Down for 10 minutes: the ticks of the last 3 are fired once each, in order.
    clock.set(at("2026-01-01T22:41:00Z"));
    let (running, token) = start(TICKS, &bus, &clock).await;
    for minute in 38..=41 {
        let event = next(&mut sub).await;
        assert_eq!(event.context.subject, "every-minute");
        assert_eq!(event_time(&event), at(&format!("2026-01-01T22:{minute}:00Z")));
    }
    stop(running, token).await;

    // A restart with nothing missed fires nothing again; the next tick is 22:42.
    let (running, token) = start(TICKS, &bus, &clock).await;
    clock.set(at("2026-01-01T22:42:00Z"));
    let event = next(&mut sub).await;
    assert_eq!(event_time(&event), at("2026-01-01T22:42:00Z"));
    stop(running, token).await;

    // Midnight in Paris is 23:00 UTC. 2026-01-02 is excluded: jumping to
    // the 3rd fires the 3rd only; the minute ticks missed are caught up
    // within 3m only.
    let (running, token) = start(TICKS, &bus, &clock).await;
    clock.set(at("2026-01-02T23:00:00Z"));
    let mut nightly = Vec::new();
    let mut minutes = Vec::new();
    while nightly.is_empty() || minutes.len() < 4 {
        let event = next(&mut sub).await;
        if event.context.subject == "nightly" {
            nightly.push(event_time(&event));
        } else {
            minutes.push(event_time(&event));
        }
    }
    assert_eq!(nightly, vec![at("2026-01-02T23:00:00Z")]);
    let expected: Vec<_> = (57..=60)
        .map(|m| at("2026-01-02T22:00:00Z") + chrono::Duration::minutes(m))
        .collect();
    assert_eq!(minutes, expected);
    stop(running, token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_embedded() {
    calendar_suite(BusKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_jetstream() {
    calendar_suite(BusKind::JetStream).await;
}
