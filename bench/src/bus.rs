//! Scenario `bus`: durable publishes per second at 1, 64 and 256 in flight.
//!
//! - raw: async-nats JetStream publish of pre-encoded envelopes with
//!   `Nats-Msg-Id`, awaiting each PubAck (the limit of the JetStream path);
//! - jetstream: Argon's `JetStreamBus::publish` (encodes the envelope);
//! - embedded: Argon's `EmbeddedBus::publish`, durable on local disk;
//! - disk: the embedded path's own limit, a bare append + `fdatasync` of one
//!   batch of `in flight` events, measured right before it.
//!
//! Every row gets a fresh stream or store; the ratio is against raw at the
//! same number in flight, measured in the same run.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use argon_eventbus::embedded::EmbeddedBus;
use argon_eventbus::jetstream::JetStreamBus;
use argon_eventbus::testing::NatsServer;
use argon_eventbus::{EmbeddedConfig, Event, EventBus, JetStreamConfig, StreamSettings};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use serde_json::json;

use crate::Options;

const IN_FLIGHT: [usize; 3] = [1, 64, 256];

/// One measurement.
struct Figure {
    events: usize,
    elapsed: Duration,
}

impl Figure {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let server = NatsServer::start();
    let events = Arc::new(make_events(options.events, options.size));
    let encoded = events.first().map_or(0, |e| e.to_json().len());
    println!(
        "bus: {} events of {encoded} bytes per row (capped at {:?}), JetStream rows best of {}, nats-server at {}",
        options.events,
        options.max_time,
        options.rounds,
        server.url()
    );
    println!(
        "{:<10} {:>9} {:>10} {:>12} {:>8}",
        "path", "in flight", "events", "events/s", "vs raw"
    );
    for in_flight in IN_FLIGHT {
        // The JetStream rows alternate raw and Argon `rounds` times and keep
        // the best of each, so a burst of load on the machine does not decide
        // the ratio.
        let mut raw: Option<Figure> = None;
        let mut argon: Option<Figure> = None;
        for round in 0..options.rounds {
            // Alternate which side goes first, so neither always runs on a
            // warmer (or busier) server.
            for side in [round % 2, 1 - round % 2] {
                if side == 0 {
                    let figure = raw_jetstream(&server, &events, in_flight, round, options.max_time).await?;
                    raw = Some(best(raw, figure));
                } else {
                    let mut config = JetStreamConfig::new(server.url());
                    config.name = format!("argon{in_flight}r{round}");
                    config.stream = StreamSettings::default();
                    let bus: Arc<dyn EventBus> = Arc::new(JetStreamBus::connect(config).await?);
                    let figure = publish_all(bus, &events, in_flight, options.max_time).await?;
                    argon = Some(best(argon, figure));
                }
            }
        }
        let (Some(raw), Some(argon)) = (raw, argon) else {
            continue;
        };
        print_row("raw", in_flight, &raw, raw.rate());
        print_row("jetstream", in_flight, &argon, raw.rate());

        let dir = tempfile::tempdir()?;
        let ceiling = fsync_ceiling(dir.path(), in_flight, encoded)?;
        print_row("disk", in_flight, &ceiling, raw.rate());
        let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::open(EmbeddedConfig::new(dir.path())).await?);
        let figure = publish_all(bus, &events, in_flight, options.max_time).await?;
        print_row("embedded", in_flight, &figure, raw.rate());
    }
    Ok(())
}

/// The embedded bus's ceiling on this disk: one append and `fdatasync` of
/// `in_flight` events per commit, nothing else. Measured next to each
/// embedded row, since other work on the machine changes it a lot.
fn fsync_ceiling(dir: &Path, in_flight: usize, event_bytes: usize) -> anyhow::Result<Figure> {
    const COMMITS: usize = 20;
    let mut file = std::fs::File::create(dir.join("fsync-probe"))?;
    let chunk = vec![0u8; in_flight * (event_bytes + 64)];
    let started = Instant::now();
    for _ in 0..COMMITS {
        file.write_all(&chunk)?;
        file.sync_data()?;
    }
    Ok(Figure {
        events: COMMITS * in_flight,
        elapsed: started.elapsed(),
    })
}

fn best(previous: Option<Figure>, figure: Figure) -> Figure {
    match previous {
        Some(previous) if previous.rate() >= figure.rate() => previous,
        _ => figure,
    }
}

fn print_row(path: &str, in_flight: usize, figure: &Figure, raw_rate: f64) {
    println!(
        "{path:<10} {in_flight:>9} {:>10} {:>12.0} {:>8.2}",
        figure.events,
        figure.rate(),
        figure.rate() / raw_rate
    );
}

/// Events whose JSON envelope is about `size` bytes.
fn make_events(count: usize, size: usize) -> Vec<Event> {
    let probe = Event::new("bench", "event", "webhook", &json!({"body": {"message": ""}}));
    let padding = size.saturating_sub(probe.to_json().len());
    let message = "x".repeat(padding);
    (0..count)
        .map(|_| Event::new("bench", "event", "webhook", &json!({"body": {"message": message}})))
        .collect()
}

/// Runs `in_flight` publishers until every event is out or time is up.
async fn drive<F, Fut>(count: usize, in_flight: usize, max_time: Duration, publish: F) -> anyhow::Result<Figure>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let publish = Arc::new(publish);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + max_time;
    let mut workers = Vec::new();
    for _ in 0..in_flight {
        let (publish, next, done) = (publish.clone(), next.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() >= deadline {
                    return Ok::<_, anyhow::Error>(());
                }
                publish(i).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(Figure {
        events: done.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

async fn publish_all(
    bus: Arc<dyn EventBus>,
    events: &Arc<Vec<Event>>,
    in_flight: usize,
    max_time: Duration,
) -> anyhow::Result<Figure> {
    let events = events.clone();
    drive(events.len(), in_flight, max_time, move |i| {
        let (bus, events) = (bus.clone(), events.clone());
        async move {
            bus.publish(&events[i]).await.context("publish")?;
            Ok(())
        }
    })
    .await
}

async fn raw_jetstream(
    server: &NatsServer,
    events: &[Event],
    in_flight: usize,
    round: usize,
    max_time: Duration,
) -> anyhow::Result<Figure> {
    let client = async_nats::connect(server.url()).await?;
    let js = jetstream::new(client);
    let name = format!("raw{in_flight}r{round}");
    let settings = StreamSettings::default();
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.*.*")],
        max_messages: settings.max_msgs,
        max_bytes: settings.max_bytes,
        max_age: settings.max_age,
        duplicate_window: settings.duplicates,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let subject = format!("{name}.bench.event");
    let messages: Arc<Vec<(String, Bytes)>> = Arc::new(
        events
            .iter()
            .map(|e| (e.context.id.clone(), Bytes::from(e.to_json())))
            .collect(),
    );
    let count = messages.len();
    drive(count, in_flight, max_time, move |i| {
        let (js, messages, subject) = (js.clone(), messages.clone(), subject.clone());
        async move {
            let (id, payload) = &messages[i];
            let message = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(id);
            js.send_publish(subject, message).await?.await?;
            Ok(())
        }
    })
    .await
}
