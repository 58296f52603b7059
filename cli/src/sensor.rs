//! `argon sensor run` (one Sensor process) and `argon sensor test` (dry run).
//! Wiring only; the work is in the argon-sensor crate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use argon_crds::secret::Secrets;
use argon_crds::sensor::Sensor;
use argon_sensor::dryrun::{self, Sample};
use argon_sensor::metrics::Metrics;
use argon_sensor::sensor::CompiledSensor;
use argon_sensor::{RunnerOptions, SensorRunner, Services};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

/// `argon sensor ...`
#[derive(Subcommand)]
pub enum SensorCommand {
    /// Run the given Sensors until SIGTERM or Ctrl-C.
    Run(RunArgs),
    /// Dry run: pass sample events through a Sensor offline and print, as
    /// JSON, what each trigger would do.
    Test(TestArgs),
}

/// Options of `argon sensor run`.
#[derive(Args)]
pub struct RunArgs {
    /// Sensor manifest files or folders.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The event bus: nats://HOST:PORT or embedded:DIR (default: the
    /// --eventbus manifest's jetstreamExotic.url).
    #[arg(long, env = "ARGON_BUS")]
    bus: Option<String>,
    /// An EventBus manifest configuring the bus: its streamConfig, and with
    /// jetstreamExotic its url, accessSecret, auth and tls (read from --secrets-dir).
    #[arg(long, env = "ARGON_EVENTBUS")]
    eventbus: Option<PathBuf>,
    /// The workflow engine (`argon server`) that workflow triggers submit to.
    #[arg(long, env = "ARGON_SERVER")]
    server: Option<String>,
    #[command(flatten)]
    auth: crate::listen::ClientAuthArgs,
    /// Directory of secrets: a selector {name, key} reads DIR/name/key.
    #[arg(long, env = "ARGON_SECRETS_DIR")]
    secrets_dir: Option<PathBuf>,
    /// Serve /metrics on this address.
    #[arg(long, default_value = "127.0.0.1:7777")]
    metrics_addr: SocketAddr,
    /// How long an event may stay unacknowledged before the bus delivers it
    /// again: how soon the events in flight at a crash come back (an event
    /// being fired is kept alive with in-progress acks meanwhile).
    #[arg(long, default_value = "3s", value_parser = argon_crds::time::parse_duration)]
    ack_wait: Duration,
    #[command(flatten)]
    listen: crate::listen::ListenArgs,
}

/// Options of `argon sensor test`.
#[derive(Args)]
pub struct TestArgs {
    /// The Sensor manifest.
    file: PathBuf,
    /// A sample event (JSON: `{"context": {...}, "data": ...}` or just the
    /// data); repeat for conditions over several dependencies.
    #[arg(long = "event", required = true)]
    events: Vec<PathBuf>,
    /// The dependency the event is for (when the sensor has several and the
    /// event does not say it with context.source and context.subject).
    #[arg(long)]
    dependency: Option<String>,
}

/// Runs the subcommand; errors are printed, the exit code says how it went.
pub fn dispatch(command: SensorCommand) -> ExitCode {
    crate::init_tracing();
    crate::exit_code(match command {
        SensorCommand::Run(args) => crate::block_on(run(args)),
        SensorCommand::Test(args) => test(args),
    })
}

fn load_sensors(files: &[PathBuf]) -> anyhow::Result<Vec<Sensor>> {
    let report = argon_crds::lint::lint_paths(files);
    // Warnings (e.g. an event source that runs in another process) are
    // `argon lint`'s business; only errors stop a sensor.
    for d in report
        .diagnostics
        .iter()
        .filter(|d| d.severity == argon_crds::diag::Severity::Error)
    {
        eprintln!("{d}");
    }
    if report.has_errors() {
        bail!("the manifests have errors (listed above)");
    }
    let sensors = report.sensors();
    if sensors.is_empty() {
        bail!("no Sensor manifest in {files:?}");
    }
    Ok(sensors)
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::listen::raise_fd_limit();
    let sensors = load_sensors(&args.files)?;
    let secrets = Secrets::new(args.secrets_dir.clone());
    let manifest = args.eventbus.as_deref().map(crate::bus::load_manifest).transpose()?;
    let bus_config = crate::bus::bus_config(args.bus.as_deref(), manifest.as_ref(), &secrets)?;
    let bus = argon_eventbus::open_config(bus_config)
        .await
        .context("cannot open the event bus")?;
    let client: Option<Arc<dyn argon_client::WorkflowClient>> = match &args.server {
        Some(url) => Some(Arc::new(
            argon_client::HttpClient::new(url, args.auth.token()?)
                .with_context(|| format!("bad engine server URL {url}"))?,
        )),
        None => None,
    };
    let metrics = Metrics::new();
    let services = Services {
        bus,
        client,
        secrets,
        metrics: metrics.clone(),
    };
    let shutdown = CancellationToken::new();
    let options = RunnerOptions {
        ack_wait: args.ack_wait,
        ..RunnerOptions::default()
    };
    let mut runners = Vec::new();
    for sensor in &sensors {
        let name = sensor.metadata.name.clone().unwrap_or_default();
        let runner = SensorRunner::start_with(sensor, services.clone(), options.clone(), shutdown.clone())
            .await
            .with_context(|| format!("cannot start sensor '{name}'"))?;
        runners.push(runner);
    }
    let render = {
        let metrics = metrics.clone();
        Arc::new(move || metrics.render())
    };
    let local =
        argon_eventsource::server::serve_metrics(args.metrics_addr, render, args.listen.limits(), shutdown.clone())
            .await
            .context("cannot serve /metrics")?;
    println!("metrics http://{local}/metrics");
    println!("sensor running");
    crate::stop_on_signal(shutdown.clone()).await;
    for r in runners {
        r.wait().await;
    }
    Ok(())
}

fn test(args: TestArgs) -> anyhow::Result<()> {
    let sensors = load_sensors(std::slice::from_ref(&args.file))?;
    let [sensor] = sensors.as_slice() else {
        bail!(
            "{} holds {} sensors; give a file with one",
            args.file.display(),
            sensors.len()
        );
    };
    let compiled = CompiledSensor::compile(sensor, Secrets::default())?;
    let mut samples = Vec::new();
    for path in &args.events {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let json = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        samples.push(Sample {
            json,
            dependency: args.dependency.clone(),
        });
    }
    let report = dryrun::run(&compiled, &samples)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
