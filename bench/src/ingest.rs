//! Scenario `ingest`: ~500-byte JSON events posted to a webhook over 64
//! keep-alive connections, against (a) a bare axum handler answering 200
//! (the HTTP limit of this machine), (b) an Argon webhook on the embedded bus,
//! (c) an Argon webhook on JetStream, (r) the reference for (c): a bare axum
//! handler that publishes each body with async-nats to a JetStream stream
//! configured as Argon's (file storage, dedup window, a message id) and
//! answers once the ack came; then the raw JetStream publish rate at
//! the same concurrency, p99 latency at a paced 1,000 events/s, and the idle
//! RSS of `argon eventsource run` with one webhook.
//!
//! `cargo run --release -p argon-bench -- ingest [--max-secs S] [--size BYTES] [--rounds SLICES] [--targets a,x,b,c,r,raw,paced,rss]`
//! (build `argon` in release first for the RSS figure:
//! `cargo build --release -p argon`).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use argon_crds::manifest::{LoadReport, load_text};
use argon_crds::secret::Secrets;
use argon_eventbus::testing::{NatsServer, free_port};
use argon_eventbus::{BusConfig, EventBus, JetStreamConfig};
use argon_eventsource::{EventSourceRunner, RunnerConfig};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::Options;

/// Keep-alive connections of the throughput runs (`--in-flight` changes it).
const CONNECTIONS: usize = 64;
/// Rate of the paced runs.
const PACED_RATE: u64 = 1_000;
/// Connections of the paced runs (each sends every CONNECTIONS_PACED ms).
const CONNECTIONS_PACED: u64 = 16;
/// Length of each paced run.
const PACED_TIME: Duration = Duration::from_secs(10);

/// What one run (or the sum of a target's slices) measured.
#[derive(Default)]
struct Figure {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    /// Latencies in microseconds, sorted.
    latencies: Vec<u32>,
}

impl Figure {
    /// Adds another slice of the same target; sort `latencies` afterwards.
    fn absorb(&mut self, other: Figure) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        f64::from(self.latencies[i]) / 1000.0
    }
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let duration = options.max_time;
    let connections = options.in_flight.unwrap_or(CONNECTIONS);
    let body = Bytes::from(payload(options.size));
    let slices = u32::try_from(options.rounds)?;
    let slice = duration / slices;
    println!(
        "ingest: {}-byte JSON events, {connections} keep-alive connections, {}s per target \
         in {slices} interleaved slices of {:.1}s",
        body.len(),
        duration.as_secs(),
        slice.as_secs_f64()
    );

    // Every target is up before the first measurement; the slices then take
    // turns (a, x, b, c, raw, a, ...), so a change in the machine's speed
    // during the run (frequent on a shared VM) weighs on every target alike
    // instead of on whichever ran at the time.
    let bare = bare_axum().await?;
    // Not a target: Argon's request handling alone, to tell it from the bus.
    let (x_addr, x_stop) = argon_webhook(Arc::new(AckAtOnce)).await?;
    let dir = tempfile::tempdir()?;
    let embedded = argon_eventbus::open(&format!("embedded:{}", dir.path().join("bus").display())).await?;
    let (b_addr, b_stop) = argon_webhook(embedded).await?;
    let nats = NatsServer::start();
    let jetstream_bus = argon_eventbus::open_config(BusConfig::JetStream(JetStreamConfig::new(nats.url()))).await?;
    let (c_addr, c_stop) = argon_webhook(jetstream_bus).await?;
    let raw_js = raw_jetstream_stream(&nats).await?;
    let reference = reference_axum(raw_js.clone()).await?;

    let on = |target: &str| options.targets.as_ref().is_none_or(|t| t.iter().any(|x| x == target));
    let paced_on = on("paced");
    let quiet = if paced_on {
        Some((
            paced(b_addr, "/example", &body).await?,
            paced(c_addr, "/example", &body).await?,
        ))
    } else {
        None
    };

    let mut figures: [Figure; 6] = Default::default();
    let [a, x, b, c, r, raw] = &mut figures;
    for _ in 0..slices {
        if on("a") {
            a.absorb(hammer(bare.0, "/example", &body, slice, connections).await?);
        }
        if on("x") {
            x.absorb(hammer(x_addr, "/example", &body, slice, connections).await?);
        }
        if on("b") {
            b.absorb(hammer(b_addr, "/example", &body, slice, connections).await?);
        }
        if on("c") {
            c.absorb(hammer(c_addr, "/example", &body, slice, connections).await?);
        }
        if on("r") {
            r.absorb(hammer(reference.0, "/example", &body, slice, connections).await?);
        }
        if on("raw") {
            raw.absorb(raw_jetstream(&raw_js, &body, slice, connections).await?);
        }
    }
    bare.1.cancel();
    reference.1.cancel();
    x_stop.cancel();
    for figure in &mut figures {
        figure.latencies.sort_unstable();
    }
    let [a, x, b, c, r, raw] = &figures;
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>8} {:>12}",
        "target", "req/s", "p50 ms", "p99 ms", "errors", "ratio to (a)"
    );
    for (name, figure) in [
        ("(a) bare axum handler, 200", a),
        ("(x) Argon webhook, no store", x),
        ("(b) Argon webhook -> embedded", b),
        ("(c) Argon webhook -> JetStream", c),
        ("(r) axum + JetStream publish, ack", r),
    ] {
        if figure.ok + figure.errors > 0 {
            print_row(name, figure, a.rate());
        }
    }
    if raw.ok > 0 {
        println!(
            "raw JetStream publish, {connections} in flight: {:.0} ev/s, p50 {:.2} ms, p99 {:.2} ms; \
             (c) / raw = {:.2} (target >= 0.8)",
            raw.rate(),
            raw.percentile_ms(0.50),
            raw.percentile_ms(0.99),
            c.rate() / raw.rate()
        );
    }
    if c.ok > 0 && r.ok > 0 {
        println!("(c) / (r) = {:.2} (target >= 0.9)", c.rate() / r.rate());
    }
    if a.ok > 0 && b.ok > 0 {
        println!("(b) / (a) = {:.2} (target >= 0.5)", b.rate() / a.rate());
    }
    if let Some(quiet) = quiet {
        print_paced("on a quiet disk, before the throughput runs", &quiet.0, &quiet.1);
        // The throughput runs write over a GB (JetStream's files, the
        // embedded store), which the kernel and the VM's host write back over
        // the next seconds; an fdatasync of (b) waits behind that on the same
        // disk. The paced runs are measured twice: on the quiet disk, before
        // any throughput run, and after them (with the guest's page cache
        // flushed first).
        let flushing = Instant::now();
        let synced = Command::new("sync").status().is_ok_and(|s| s.success());
        println!(
            "page cache flushed after the throughput runs: {} ({:.1}s)",
            if synced { "yes" } else { "no, `sync` failed" },
            flushing.elapsed().as_secs_f64()
        );
        print_paced(
            "after the throughput runs",
            &paced(b_addr, "/example", &body).await?,
            &paced(c_addr, "/example", &body).await?,
        );
    }
    b_stop.cancel();
    c_stop.cancel();

    if !on("rss") {
        return Ok(());
    }
    match idle_rss() {
        Ok(kib) => println!(
            "idle RSS of `argon eventsource run` with one webhook: {:.1} MB (target < 30 MB)",
            kib as f64 / 1024.0
        ),
        Err(e) => println!("idle RSS: not measured: {e:#}"),
    }
    Ok(())
}

fn print_paced(when: &str, b: &Figure, c: &Figure) {
    println!(
        "paced {PACED_RATE} ev/s for {}s over {CONNECTIONS_PACED} connections, {when} (latency from the scheduled send):",
        PACED_TIME.as_secs()
    );
    for (name, figure, target) in [
        ("(b) embedded: ", b, " (target p99 < 10 ms)"),
        ("(c) JetStream:", c, ""),
    ] {
        println!(
            "  {name} p50 {:.2} ms, p99 {:.2} ms, {} ok, {} errors{target}",
            figure.percentile_ms(0.50),
            figure.percentile_ms(0.99),
            figure.ok,
            figure.errors
        );
    }
}

fn print_row(name: &str, figure: &Figure, limit: f64) {
    println!(
        "{name:<34} {:>10.0} {:>9.2} {:>9.2} {:>8} {:>12.2}",
        figure.rate(),
        figure.percentile_ms(0.50),
        figure.percentile_ms(0.99),
        figure.errors,
        figure.rate() / limit
    );
}

/// A JSON object of about `size` bytes.
fn payload(size: usize) -> String {
    let head = r#"{"repository":"argon","action":"push","ref":"refs/heads/main","pad":""#;
    let tail = r#""}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

/// (a): an axum server whose handler reads the body and answers 200.
async fn bare_axum() -> anyhow::Result<(SocketAddr, CancellationToken)> {
    let router = axum::Router::new().route(
        "/example",
        axum::routing::post(|_body: Bytes| async { axum::http::StatusCode::OK }),
    );
    crate::serve(router).await
}

/// (r): an axum server whose handler publishes the body to JetStream with a
/// message id and answers 200 once the stream acked it (503 when it did not):
/// what a webhook that stores to JetStream costs without Argon.
async fn reference_axum(js: jetstream::Context) -> anyhow::Result<(SocketAddr, CancellationToken)> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let router = axum::Router::new().route(
        "/example",
        axum::routing::post(move |body: Bytes| {
            let (js, next) = (js.clone(), next.clone());
            async move {
                let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let message = jetstream::message::PublishMessage::build()
                    .payload(body)
                    .message_id(format!("ref-{id}"));
                let acked = match js.send_publish("rawingest.reference.event", message).await {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if acked {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    crate::serve(router).await
}

/// A bus that acknowledges every publish at once and stores nothing: the
/// cost of Argon's webhook handling without any bus.
struct AckAtOnce;

#[async_trait::async_trait]
impl EventBus for AckAtOnce {
    fn name(&self) -> &str {
        "default"
    }

    async fn publish(&self, event: &argon_eventbus::Event) -> argon_eventbus::Result<argon_eventbus::PublishAck> {
        // Encode as the real buses do, so only storing is left out.
        std::hint::black_box(event.to_json());
        Ok(argon_eventbus::PublishAck {
            sequence: 0,
            duplicate: false,
        })
    }

    async fn subscribe(
        &self,
        _: &argon_eventbus::ConsumerSpec,
    ) -> argon_eventbus::Result<argon_eventbus::Subscription> {
        Err(argon_eventbus::Error::Closed)
    }

    async fn kv(&self, _: &str) -> argon_eventbus::Result<Arc<dyn argon_eventbus::KeyValue>> {
        Err(argon_eventbus::Error::Closed)
    }
}

fn webhook_manifest(port: u16) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata:\n  name: bench\nspec:\n  webhook:\n    \
         example:\n      endpoint: /example\n      method: POST\n      port: \"{port}\"\n"
    )
}

/// (b), (c): an Argon webhook on `bus`.
async fn argon_webhook(bus: Arc<dyn EventBus>) -> anyhow::Result<(SocketAddr, CancellationToken)> {
    let port = free_port();
    let mut report = LoadReport::default();
    load_text("bench.yaml", &webhook_manifest(port), &mut report);
    let manifests = report.event_sources();
    let stop = CancellationToken::new();
    let config = RunnerConfig {
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        ..RunnerConfig::default()
    };
    let running = EventSourceRunner::start(&manifests, bus, &Secrets::new(None), config, stop.clone()).await?;
    tokio::spawn(async move {
        if let Err(e) = running.wait().await {
            eprintln!("webhook stopped: {e}");
        }
    });
    Ok((SocketAddr::from(([127, 0, 0, 1], port)), stop))
}

pub(crate) type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One request; `Ok(true)` for a 200.
pub(crate) async fn post(sender: &mut Sender, addr: SocketAddr, path: &str, body: &Bytes) -> anyhow::Result<bool> {
    sender.ready().await?;
    let request = Request::post(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body.clone()))?;
    let response = sender.send_request(request).await?;
    let ok = response.status() == hyper::StatusCode::OK;
    response.into_body().collect().await?;
    Ok(ok)
}

fn merge(parts: Vec<(usize, usize, Vec<u32>)>, elapsed: Duration) -> Figure {
    let mut figure = Figure {
        ok: 0,
        errors: 0,
        elapsed,
        latencies: Vec::new(),
    };
    for (ok, errors, latencies) in parts {
        figure.ok += ok;
        figure.errors += errors;
        figure.latencies.extend(latencies);
    }
    figure.latencies.sort_unstable();
    figure
}

/// As many requests as the target takes over `connections` connections.
async fn hammer(
    addr: SocketAddr,
    path: &str,
    body: &Bytes,
    duration: Duration,
    connections: usize,
) -> anyhow::Result<Figure> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(addr).await?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for mut sender in senders {
        let (path, body) = (path.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut latencies) = (0, 0, Vec::with_capacity(100_000));
            while Instant::now() < deadline {
                let t = Instant::now();
                match post(&mut sender, addr, &path, &body).await {
                    Ok(true) => {
                        ok += 1;
                        latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                    Ok(false) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        match connect(addr).await {
                            Ok(s) => sender = s,
                            Err(_) => break,
                        }
                    }
                }
            }
            (ok, errors, latencies)
        }));
    }
    let mut parts = Vec::new();
    for task in tasks {
        parts.push(task.await?);
    }
    Ok(merge(parts, started.elapsed()))
}

/// PACED_RATE requests per second for PACED_TIME; latency counted from when
/// each request was due, so a stall is not hidden by sending later.
async fn paced(addr: SocketAddr, path: &str, body: &Bytes) -> anyhow::Result<Figure> {
    let period = Duration::from_micros(1_000_000 * CONNECTIONS_PACED / PACED_RATE);
    let started = Instant::now();
    let deadline = started + PACED_TIME;
    let mut tasks = Vec::new();
    for i in 0..CONNECTIONS_PACED {
        let mut sender = connect(addr).await?;
        let (path, body) = (path.to_owned(), body.clone());
        // Spread the connections evenly over one period.
        let offset = period * u32::try_from(i)? / u32::try_from(CONNECTIONS_PACED)?;
        tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at((started + offset).into(), period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let (mut ok, mut errors, mut latencies) = (0, 0, Vec::new());
            loop {
                let due = ticks.tick().await.into_std();
                if due >= deadline {
                    break;
                }
                match post(&mut sender, addr, &path, &body).await {
                    Ok(true) => {
                        ok += 1;
                        latencies.push(due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                    _ => errors += 1,
                }
            }
            (ok, errors, latencies)
        }));
    }
    let mut parts = Vec::new();
    for task in tasks {
        parts.push(task.await?);
    }
    Ok(merge(parts, started.elapsed()))
}

/// A stream for the raw publish runs, with the dedup window Argon's streams
/// have.
async fn raw_jetstream_stream(server: &NatsServer) -> anyhow::Result<jetstream::Context> {
    let client = async_nats::connect(server.url()).await?;
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "rawingest".into(),
        subjects: vec!["rawingest.>".into()],
        duplicate_window: Duration::from_secs(300),
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    Ok(js)
}

/// JetStream publish with ack, `connections` in flight, straight with
/// async-nats. Message ids are unique across calls.
async fn raw_jetstream(
    js: &jetstream::Context,
    body: &Bytes,
    duration: Duration,
    connections: usize,
) -> anyhow::Result<Figure> {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (js, body) = (js.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut latencies) = (0, 0, Vec::new());
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let t = Instant::now();
                let message = jetstream::message::PublishMessage::build()
                    .payload(body.clone())
                    .message_id(format!("{run}-{worker}-{n}"));
                let acked = match js.send_publish("rawingest.bench.event", message).await {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if acked {
                    ok += 1;
                    latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                } else {
                    errors += 1;
                }
            }
            (ok, errors, latencies)
        }));
    }
    let mut parts = Vec::new();
    for task in tasks {
        parts.push(task.await?);
    }
    Ok(merge(parts, started.elapsed()))
}

/// Resident memory (KiB) of `argon eventsource run` with one webhook, once
/// it serves and has settled.
fn idle_rss() -> anyhow::Result<u64> {
    let argon = std::env::current_exe()?.with_file_name("argon");
    if !argon.is_file() {
        bail!(
            "{} not found; build it with `cargo build --release -p argon`",
            argon.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let file = dir.path().join("webhook.yaml");
    std::fs::write(&file, webhook_manifest(port))?;
    let mut child = Command::new(&argon)
        .args(["eventsource", "run"])
        .arg(&file)
        .arg("--bus")
        .arg(format!("embedded:{}", dir.path().join("bus").display()))
        .args(["--host", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let serving = loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("webhook example POST") => break true,
            Some(Ok(_)) => {}
            _ => break false,
        }
    };
    // Let startup allocations settle before reading the figure.
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
    let _ = child.kill();
    let _ = child.wait();
    if !serving {
        bail!("argon eventsource run did not start");
    }
    let status = status?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(rss)
}
