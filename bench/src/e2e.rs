//! Scenario `e2e`: webhook -> embedded bus -> sensor -> engine -> a workflow
//! of one `true` step, all in one process as `argon run` hosts them. Events
//! are posted at a steady rate; the figure is the time from the POST to the
//! workflow reaching Succeeded. The raw limit beside it is the time to run the
//! same `true` process alone, measured in the same run. Every second it
//! prints the backlog (events posted but not yet Succeeded) and the
//! process's RSS; at the end, how long after the last POST the last
//! workflow Succeeded, and the RSS idle before, at peak, and settled after.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use argon_client::{SubmitOptions, Submitted, WorkflowAction, WorkflowClient};
use argon_crds::manifest::Manifest;
use argon_crds::secret::Secrets;
use argon_crds::workflow::{Workflow, WorkflowPhase};
use argon_engine::{Engine, EngineConfig};
use argon_eventbus::{BusConfig, EmbeddedConfig};
use argon_eventsource::{EventSourceRunner, RunnerConfig};
use argon_sensor::{SensorRunner, Services};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::Options;

use crate::ingest::{connect, post};

/// Events per second, and for how long.
const RATE: u64 = 100;
const SECONDS: u64 = 30;

fn event_source(port: u16) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: bench
spec:
  webhook:
    e2e:
      port: \"{port}\"
      endpoint: /e2e
      method: POST
"
    )
}

const SENSOR: &str = "apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: bench
spec:
  dependencies:
    - name: e2e
      eventSourceName: bench
      eventName: e2e
  triggers:
    - template:
        name: run-true
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata:
                generateName: e2e-
              spec:
                entrypoint: main
                arguments:
                  parameters:
                    - name: id
                templates:
                  - name: main
                    container:
                      image: busybox
                      command: [\"true\"]
          parameters:
            - src:
                dependencyName: e2e
                dataKey: body.id
              dest: spec.arguments.parameters.0.value
";

/// Forwards to the engine and tells which workflow each posted id became.
struct Recorder {
    engine: Arc<Engine>,
    /// How many workflows the sensor submitted.
    count: Arc<std::sync::atomic::AtomicUsize>,
    submitted: tokio::sync::mpsc::UnboundedSender<(String, String)>,
}

#[async_trait::async_trait]
impl WorkflowClient for Recorder {
    async fn submit(
        &self,
        namespace: &str,
        workflow: Workflow,
        options: SubmitOptions,
    ) -> argon_client::Result<Submitted> {
        let id = workflow
            .spec
            .arguments
            .parameters
            .first()
            .and_then(|p| p.value.as_ref())
            .map(|v| v.to_string())
            .unwrap_or_default();
        let submitted = self.engine.submit(namespace, workflow, options).await?;
        self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.submitted.send((id, submitted.name.clone()));
        Ok(submitted)
    }

    async fn act(&self, namespace: &str, name: &str, action: WorkflowAction) -> argon_client::Result<Workflow> {
        self.engine.act(namespace, name, action).await
    }

    async fn get(&self, namespace: &str, name: &str) -> argon_client::Result<Workflow> {
        self.engine.get(namespace, name).await
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// The process's resident set, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let seconds = options.duration.unwrap_or(SECONDS);
    let rate = options.rate.unwrap_or(RATE);
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let mut config = EngineConfig::new(dir.path().join("engine"));
    config.executor = argon_engine::ExecutorChoice::Sandbox;
    let engine = Engine::open(config)?;
    println!("engine: {}", engine.executor_description());
    let engine_task = tokio::spawn(argon_engine::serve(
        Arc::clone(&engine),
        shutdown.clone().cancelled_owned(),
    ));
    let bus = argon_eventbus::open_config(BusConfig::Embedded(EmbeddedConfig::new(dir.path().join("bus")))).await?;

    let port = argon_eventbus::testing::free_port();
    let Manifest::EventSource(es) = crate::manifest(&event_source(port))? else {
        anyhow::bail!("not an EventSource")
    };
    let Manifest::Sensor(sensor) = crate::manifest(SENSOR)? else {
        anyhow::bail!("not a Sensor")
    };
    let sources = EventSourceRunner::start(
        &[*es],
        bus.clone(),
        &Secrets::default(),
        RunnerConfig::default(),
        shutdown.clone(),
    )
    .await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let submitted_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client: Arc<dyn WorkflowClient> = Arc::new(Recorder {
        engine: engine.clone(),
        submitted: tx,
        count: submitted_count.clone(),
    });
    let services = Services {
        bus,
        client: Some(client),
        secrets: Secrets::default(),
        metrics: Default::default(),
    };
    let sensor = SensorRunner::start(&sensor, services, shutdown.clone()).await?;

    // Watch every submitted workflow until it ends; record when it Succeeded.
    let posted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let failed = Arc::new(Mutex::new(0usize));
    let watcher = {
        let (engine, posted, latencies, failed) = (engine.clone(), posted.clone(), latencies.clone(), failed.clone());
        tokio::spawn(async move {
            let mut watches = tokio::task::JoinSet::new();
            while let Some((id, name)) = rx.recv().await {
                let (engine, posted, latencies, failed) =
                    (engine.clone(), posted.clone(), latencies.clone(), failed.clone());
                watches.spawn(async move {
                    loop {
                        let Ok(wf) = engine.watch("default", &name, Duration::from_secs(5)).await else {
                            return;
                        };
                        match wf.status.as_ref().and_then(|s| s.phase) {
                            Some(WorkflowPhase::Succeeded) => {
                                let at = Instant::now();
                                if let Some(t) = posted.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
                                    latencies.lock().unwrap_or_else(|p| p.into_inner()).push(at - *t);
                                }
                                return;
                            }
                            Some(WorkflowPhase::Failed | WorkflowPhase::Error) => {
                                *failed.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                                return;
                            }
                            _ => {}
                        }
                    }
                });
            }
            while watches.join_next().await.is_some() {}
        })
    };

    // The raw limit: spawning `true` directly.
    let mut raw = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        tokio::process::Command::new("true").status().await?;
        raw.push(t.elapsed());
    }
    raw.sort();

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let total = rate * seconds;
    let idle_rss = rss_mib();
    println!("e2e: webhook -> workflow of one `true` step, {rate} events/s for {seconds} s, one process");
    println!("  idle RSS {idle_rss:.0} MiB");
    let peak = Arc::new(Mutex::new(idle_rss));
    let sampler = {
        let (posted, latencies, failed, peak) = (posted.clone(), latencies.clone(), failed.clone(), peak.clone());
        let submitted_count = submitted_count.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let p = posted.lock().unwrap_or_else(|p| p.into_inner()).len();
                let done = latencies.lock().unwrap_or_else(|p| p.into_inner()).len()
                    + *failed.lock().unwrap_or_else(|p| p.into_inner());
                let rss = rss_mib();
                {
                    let mut peak = peak.lock().unwrap_or_else(|p| p.into_inner());
                    *peak = peak.max(rss);
                }
                let submitted = submitted_count.load(std::sync::atomic::Ordering::Relaxed);
                println!(
                    "  t={:>3} s  posted {p:>6}  submitted {submitted:>6}  finished {done:>6}  backlog {:>6}  RSS {rss:>6.0} MiB",
                    start.elapsed().as_secs(),
                    p.saturating_sub(done)
                );
            }
        })
    };
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut posts = tokio::task::JoinSet::new();
    let mut rejected = 0usize;
    for i in 0..total {
        tick.tick().await;
        let posted = posted.clone();
        posts.spawn(async move {
            let id = format!("e{i}");
            let body = Bytes::from(format!("{{\"id\":\"{id}\"}}"));
            posted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, Instant::now());
            let mut sender = connect(addr).await?;
            post(&mut sender, addr, "/e2e", &body).await
        });
        while let Some(done) = posts.try_join_next() {
            if !matches!(done, Ok(Ok(true))) {
                rejected += 1;
            }
        }
    }
    while let Some(done) = posts.join_next().await {
        if !matches!(done, Ok(Ok(true))) {
            rejected += 1;
        }
    }
    let last_post = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let finished = latencies.lock().unwrap_or_else(|p| p.into_inner()).len()
            + *failed.lock().unwrap_or_else(|p| p.into_inner());
        if finished as u64 + rejected as u64 >= total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = last_post.elapsed();
    sampler.abort();
    let mut lat = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    lat.sort();
    println!(
        "  the last workflow finished {:.2} s after the last POST",
        drained.as_secs_f64()
    );
    println!(
        "  POST -> Succeeded   n={:<5} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  (failed {}, rejected {})",
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        failed.lock().unwrap_or_else(|p| p.into_inner()),
        rejected
    );
    println!(
        "  raw `true` spawn    n={:<5} p50 {:>7.1} ms  p99 {:>7.1} ms  (the floor of one step)",
        raw.len(),
        percentile(&raw, 0.50),
        percentile(&raw, 0.99)
    );
    // Settled: finished workflows are not held; what stays is caches.
    let settle = Instant::now();
    let mut settled = rss_mib();
    while settle.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        settled = rss_mib();
    }
    println!(
        "  RSS idle {idle_rss:.0} MiB, peak {:.0} MiB, 10 s after the load {settled:.0} MiB ({:.2}x idle)",
        *peak.lock().unwrap_or_else(|p| p.into_inner()),
        settled / idle_rss
    );
    shutdown.cancel();
    sensor.wait().await;
    sources.wait().await.context("event sources")?;
    drop(watcher);
    engine_task.await??;
    Ok(())
}
