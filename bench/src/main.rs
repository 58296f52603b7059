//! Argon benchmarks. Each scenario prints its figures next to the raw limit
//! measured in the same run, on the same machine.
//!
//! `cargo run --release -p argon-bench -- SCENARIO [options]`; `--help` lists
//! the scenarios and options.

mod api;
mod bus;
mod e2e;
mod engine;
mod ingest;
mod sensor;
mod source;

use std::time::Duration;

/// The allocator of the `argon` binary, so in-process targets run as they do there.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::{Context as _, bail};

const USAGE: &str = "usage: argon-bench SCENARIO [--events N] [--max-secs S] [--size BYTES] [--rounds R] \
                     [--in-flight N] [--targets a,x,b,c,raw,paced,rss] [--rate R] [--duration S]\n\
                     scenarios: bus, ingest, sensor, engine, e2e, api, source KIND (nats, redisStream, amqp, mqtt, sqs)";

/// Options shared by the scenarios.
#[derive(Clone, Debug)]
pub struct Options {
    /// Events per measurement.
    pub events: usize,
    /// A measurement stops after this long even if not all events are out.
    pub max_time: Duration,
    /// Approximate size of one encoded event.
    pub size: usize,
    /// Repetitions of a comparison; the best of each side is kept.
    pub rounds: usize,
    /// Requests in flight (keep-alive connections) of `ingest`; 64 when unset.
    pub in_flight: Option<usize>,
    /// The targets of `ingest` to measure (`a,x,b,c,raw,paced,rss`); all when unset.
    pub targets: Option<Vec<String>>,
    /// Events per second of `e2e` (100 when unset).
    pub rate: Option<u64>,
    /// Seconds of load of `e2e` (30 when unset).
    pub duration: Option<u64>,
}

/// Serves `router` on a free loopback port until the token is cancelled.
async fn serve(router: axum::Router) -> anyhow::Result<(std::net::SocketAddr, tokio_util::sync::CancellationToken)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(token.cancelled_owned())
            .await;
    });
    Ok((addr, stop))
}

/// The manifest of a bench's YAML document.
fn manifest(yaml: &str) -> anyhow::Result<argon_crds::manifest::Manifest> {
    use argon_crds::manifest::{Decoded, decode};
    let docs = argon_crds::source::parse("bench.yaml", yaml).map_err(|d| anyhow::anyhow!("{d}"))?;
    match decode(&docs[0].value) {
        Ok(Decoded::Manifest(m)) => Ok(m),
        Ok(Decoded::Skipped(f)) => anyhow::bail!("{}", f.message),
        Err(f) => anyhow::bail!("{f:?}"),
    }
}

fn main() -> anyhow::Result<()> {
    // What Argon's parts log, to stderr, when RUST_LOG asks (silent otherwise).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()))
        .with_writer(std::io::stderr)
        .init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let mut args = argv.into_iter();
    let scenario = args.next().unwrap_or_default();
    let kind = if scenario == "source" {
        args.next()
            .with_context(|| format!("source needs a KIND: {}", source::KINDS.join(", ")))?
    } else {
        String::new()
    };
    let mut options = Options {
        events: 100_000,
        max_time: Duration::from_secs(20),
        size: 500,
        rounds: 3,
        in_flight: None,
        targets: None,
        rate: None,
        duration: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--events" => options.events = value()?.parse()?,
            "--max-secs" => options.max_time = Duration::from_secs(value()?.parse()?),
            "--size" => options.size = value()?.parse()?,
            "--rounds" => options.rounds = value()?.parse::<usize>()?.max(1),
            "--in-flight" => options.in_flight = Some(value()?.parse::<usize>()?.max(1)),
            "--rate" => options.rate = Some(value()?.parse::<u64>()?.max(1)),
            "--duration" => options.duration = Some(value()?.parse::<u64>()?.max(1)),
            "--targets" => options.targets = Some(value()?.split(',').map(str::to_owned).collect()),
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match scenario.as_str() {
        "api" => runtime.block_on(api::run(&options)),
        "bus" => runtime.block_on(bus::run(&options)),
        "e2e" => runtime.block_on(e2e::run(&options)),
        "engine" => runtime.block_on(engine::run(&options)),
        "ingest" => runtime.block_on(ingest::run(&options)),
        "sensor" => runtime.block_on(sensor::run(&options)),
        "source" => runtime.block_on(source::run(&kind, &options)),
        "" => bail!("no scenario given\n{USAGE}"),
        other => bail!("unknown scenario {other:?}\n{USAGE}"),
    }
}
