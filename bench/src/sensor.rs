//! Scenario `sensor`.
//!
//! 1. Throughput: events/s through one sensor (three data filters, two
//!    parameters, a workflow trigger whose engine only counts) on the embedded
//!    bus, next to the raw limit: the same events read and acknowledged by a
//!    bare consumer of the same bus.
//! 2. End to end: webhook -> embedded bus -> sensor -> HTTP trigger -> a local
//!    HTTP sink, at a steady 1,000 events/s; p50/p99 from the POST to the
//!    sink, next to the raw limit: the same POSTs straight to the sink.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use argon_client::{SubmitOptions, Submitted, WorkflowAction, WorkflowClient};
use argon_crds::manifest::Manifest;
use argon_crds::secret::Secrets;
use argon_crds::workflow::Workflow;
use argon_eventbus::{BusConfig, ConsumerSpec, EmbeddedConfig, Event, EventBus, SubjectFilter};
use argon_eventsource::{EventSourceRunner, RunnerConfig};
use argon_sensor::{SensorRunner, Services};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::Options;
use crate::ingest::{connect, post};

/// Steady rate of the end-to-end part, and for how long.
const E2E_RATE: u64 = 1_000;
const E2E_SECONDS: u64 = 10;

fn sensor_manifest(yaml: &str) -> anyhow::Result<argon_crds::sensor::Sensor> {
    match crate::manifest(yaml)? {
        Manifest::Sensor(s) => Ok(*s),
        other => anyhow::bail!("expected a Sensor, got {}", other.kind()),
    }
}

const COUNTING_SENSOR: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: bench-count
spec:
  dependencies:
    - name: dep
      eventSourceName: bench
      eventName: count
      filters:
        data:
          - path: body.action
            type: string
            value: ["^open"]
          - path: body.size
            type: number
            comparator: ">="
            value: ["0"]
          - path: body.draft
            type: bool
            value: ["false"]
  triggers:
    - template:
        name: count
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata:
                generateName: bench-
              spec:
                entrypoint: main
                arguments:
                  parameters:
                    - name: id
                    - name: who
                templates:
                  - name: main
                    container:
                      image: busybox
                      command: ["true"]
          parameters:
            - src:
                dependencyName: dep
                dataKey: body.id
              dest: spec.arguments.parameters.0.value
            - src:
                dependencyName: dep
                dataTemplate: "{{ .Input.body.user | upper }}"
              dest: spec.arguments.parameters.1.value
"#;

/// An engine that only counts submissions.
#[derive(Default)]
struct Counter {
    submitted: AtomicUsize,
}

#[async_trait::async_trait]
impl WorkflowClient for Counter {
    async fn submit(&self, namespace: &str, _: Workflow, options: SubmitOptions) -> argon_client::Result<Submitted> {
        self.submitted.fetch_add(1, Ordering::Relaxed);
        Ok(Submitted {
            namespace: namespace.to_owned(),
            name: options.idempotency_key.unwrap_or_default(),
            uid: String::new(),
            created: true,
        })
    }

    async fn act(&self, namespace: &str, name: &str, _: WorkflowAction) -> argon_client::Result<Workflow> {
        Err(argon_client::Error::NotFound {
            kind: "Workflow",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    async fn get(&self, namespace: &str, name: &str) -> argon_client::Result<Workflow> {
        Err(argon_client::Error::NotFound {
            kind: "Workflow",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn data(i: usize, size: usize) -> serde_json::Value {
    let pad = "x".repeat(size.saturating_sub(120));
    serde_json::json!({"body": {"id": i, "action": "opened", "size": i % 100, "draft": false, "user": "argon", "pad": pad}})
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    throughput(options).await?;
    end_to_end(options).await
}

async fn throughput(options: &Options) -> anyhow::Result<()> {
    let n = options.events;
    let dir = tempfile::tempdir()?;
    let bus = argon_eventbus::open_config(BusConfig::Embedded(EmbeddedConfig::new(dir.path().join("bus")))).await?;
    println!(
        "sensor throughput: {n} events of ~{} bytes on the embedded bus",
        options.size
    );
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(512));
    let mut publishes = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = permits.clone().acquire_owned().await?;
        let bus = bus.clone();
        publishes.spawn(async move {
            let event = Event::new("bench", "count", "webhook", &data(i, 500)).with_id(format!("e{i}"));
            let r = bus.publish(&event).await;
            drop(permit);
            r
        });
        while let Some(r) = publishes.try_join_next() {
            r??;
        }
    }
    while let Some(r) = publishes.join_next().await {
        r??;
    }
    println!("  loaded in {:.1}s", started.elapsed().as_secs_f64());

    let mut best_raw = f64::MAX;
    let mut best_sensor = f64::MAX;
    for round in 0..options.rounds {
        let raw = raw_consume(&bus, &format!("raw{round}"), n, options.max_time).await?;
        best_raw = best_raw.min(raw);
        let sensor = sensor_consume(&bus, round, n, options.max_time).await?;
        best_sensor = best_sensor.min(sensor);
    }
    println!(
        "  raw consumer (read + ack):            {:>9.0} events/s",
        n as f64 / best_raw
    );
    println!(
        "  sensor (3 data filters, 2 params):    {:>9.0} events/s  ({:.0}% of raw)",
        n as f64 / best_sensor,
        100.0 * best_raw / best_sensor
    );
    Ok(())
}

/// Seconds to read and acknowledge `n` events with a bare consumer.
async fn raw_consume(bus: &Arc<dyn EventBus>, name: &str, n: usize, max: Duration) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut sub = bus
        .subscribe(
            &ConsumerSpec::new(name)
                .filter(SubjectFilter::new("bench", "count"))
                .max_deliver(None),
        )
        .await?;
    let permits = Arc::new(Semaphore::new(256));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut seen = 0;
    while seen < n && started.elapsed() < max {
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await else {
            break;
        };
        let d = d?;
        seen += 1;
        let permit = permits.clone().acquire_owned().await?;
        let acked = acked.clone();
        tasks.spawn(async move {
            if d.ack().await.is_ok() {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    anyhow::ensure!(
        acked.load(Ordering::Relaxed) == n,
        "raw consumer acked {} of {n}",
        acked.load(Ordering::Relaxed)
    );
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds for the sensor to fire its trigger for `n` events.
async fn sensor_consume(bus: &Arc<dyn EventBus>, round: usize, n: usize, max: Duration) -> anyhow::Result<f64> {
    let yaml = COUNTING_SENSOR.replace("name: bench-count", &format!("name: bench-count-{round}"));
    let sensor = sensor_manifest(&yaml)?;
    let counter = Arc::new(Counter::default());
    let client: Arc<dyn WorkflowClient> = counter.clone();
    let shutdown = CancellationToken::new();
    let services = Services {
        bus: bus.clone(),
        client: Some(client),
        secrets: Secrets::default(),
        metrics: Default::default(),
    };
    let started = Instant::now();
    let runner = SensorRunner::start(&sensor, services, shutdown.clone()).await?;
    while counter.submitted.load(Ordering::Relaxed) < n && started.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let fired = counter.submitted.load(Ordering::Relaxed);
    shutdown.cancel();
    runner.wait().await;
    anyhow::ensure!(fired >= n, "the sensor fired {fired} of {n} within {max:?}");
    Ok(elapsed)
}

/// A sink that records when each id arrives.
async fn sink(arrivals: Arc<Mutex<HashMap<u64, Instant>>>) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(arrivals): axum::extract::State<Arc<Mutex<HashMap<u64, Instant>>>>,
                 body: Bytes| async move {
                    let now = Instant::now();
                    if let Some(id) = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["id"].as_u64())
                    {
                        arrivals
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(id)
                            .or_insert(now);
                    }
                    "ok"
                },
            ),
        )
        .with_state(arrivals);
    // Dropping the token does not stop the server: it serves until the
    // benchmark ends.
    let (addr, _) = crate::serve(app).await?;
    Ok(addr)
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// Posts `{"id": i}` to `addr` at `rate` per second for `seconds`; returns the send times.
async fn paced_posts(
    addr: SocketAddr,
    path: &'static str,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<HashMap<u64, Instant>> {
    const CONNECTIONS: usize = 32;
    let mut senders = Vec::new();
    for _ in 0..CONNECTIONS {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Bytes)>();
        let mut conn = connect(addr).await?;
        senders.push(tx);
        tokio::spawn(async move {
            while let Some((_, body)) = rx.recv().await {
                if !matches!(post(&mut conn, addr, path, &body).await, Ok(true)) {
                    eprintln!("a POST to {addr}{path} failed");
                }
            }
        });
    }
    let mut sent = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for id in 0..rate * seconds {
        tick.tick().await;
        sent.insert(id, Instant::now());
        let body = Bytes::from(format!("{{\"id\":{id}}}"));
        senders[id as usize % CONNECTIONS]
            .send((id, body))
            .context("sender stopped")?;
    }
    Ok(sent)
}

async fn wait_all(arrivals: &Arc<Mutex<HashMap<u64, Instant>>>, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while arrivals.lock().unwrap_or_else(|p| p.into_inner()).len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn report(label: &str, sent: &HashMap<u64, Instant>, arrivals: &Arc<Mutex<HashMap<u64, Instant>>>) {
    let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner());
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, t)| arrivals.get(id).map(|a| a.saturating_duration_since(*t)))
        .collect();
    latencies.sort();
    println!(
        "  {label:<36} {:>6} of {:>6} arrived   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        latencies.len(),
        sent.len(),
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99),
        percentile_ms(&latencies, 1.0),
    );
}

async fn end_to_end(_options: &Options) -> anyhow::Result<()> {
    println!("webhook -> sensor -> HTTP trigger at {E2E_RATE} events/s for {E2E_SECONDS}s");
    let n = (E2E_RATE * E2E_SECONDS) as usize;

    // Raw limit: the same POSTs straight to the sink.
    let direct = Arc::new(Mutex::new(HashMap::new()));
    let sink_addr = sink(direct.clone()).await?;
    let sent = paced_posts(sink_addr, "/hook", E2E_RATE, E2E_SECONDS).await?;
    wait_all(&direct, n, Duration::from_secs(30)).await;
    report("raw: POST straight to the sink", &sent, &direct);

    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let bus = argon_eventbus::open_config(BusConfig::Embedded(EmbeddedConfig::new(dir.path().join("bus")))).await?;
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let sink_addr = sink(arrivals.clone()).await?;
    let port = argon_eventbus::testing::free_port();
    let Manifest::EventSource(es) = crate::manifest(&format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata:\n  name: bench\nspec:\n  webhook:\n    e2e:\n      port: \"{port}\"\n      endpoint: /e2e\n      method: POST\n"
    ))?
    else {
        anyhow::bail!("not an EventSource")
    };
    let sensor = sensor_manifest(&format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: bench-http
spec:
  dependencies:
    - name: e2e
      eventSourceName: bench
      eventName: e2e
  triggers:
    - template:
        name: forward
        http:
          url: http://{sink_addr}/hook
          payload:
            - src:
                dependencyName: e2e
                dataKey: body.id
                useRawData: true
              dest: id
"#
    ))?;
    let sources = EventSourceRunner::start(
        &[*es],
        bus.clone(),
        &Secrets::default(),
        RunnerConfig::default(),
        shutdown.clone(),
    )
    .await?;
    let services = Services {
        bus,
        client: None,
        secrets: Secrets::default(),
        metrics: Default::default(),
    };
    let runner = SensorRunner::start(&sensor, services, shutdown.clone()).await?;
    let webhook: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let sent = paced_posts(webhook, "/e2e", E2E_RATE, E2E_SECONDS).await?;
    wait_all(&arrivals, n, Duration::from_secs(60)).await;
    report("argon: webhook -> sensor -> HTTP", &sent, &arrivals);
    shutdown.cancel();
    runner.wait().await;
    drop(sources);
    Ok(())
}
