//! `argon eventsource run`: one EventSource process. Wiring only; the work is
//! in the argon-eventsource crate.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use argon_crds::secret::Secrets;
use argon_eventbus::BusConfig;
use argon_eventsource::{EventSourceRunner, RunnerConfig};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

/// `argon eventsource ...`
#[derive(Subcommand)]
pub enum EventsourceCommand {
    /// Run every event of the given EventSource manifests until SIGTERM.
    Run(RunArgs),
}

/// Options of `argon eventsource run`.
#[derive(Args)]
pub struct RunArgs {
    /// EventSource manifest files or folders.
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
    /// Directory of secrets: a selector {name, key} reads DIR/name/key.
    #[arg(long, env = "ARGON_SECRETS_DIR")]
    secrets_dir: Option<PathBuf>,
    /// Serve /metrics and /health on this address (never on the webhook ports).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Longest wait for the bus to store an event before answering 503.
    #[arg(long, default_value = "5s", value_parser = argon_crds::time::parse_duration)]
    publish_timeout: Duration,
    /// Address the webhook ports are bound on.
    #[arg(long, default_value = "0.0.0.0")]
    host: IpAddr,
    #[command(flatten)]
    listen: crate::listen::ListenArgs,
}

/// Runs the subcommand; errors are printed, the exit code says how it went.
pub fn dispatch(command: EventsourceCommand) -> ExitCode {
    let EventsourceCommand::Run(args) = command;
    crate::init_tracing();
    crate::exit_code(crate::block_on(run(args)))
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::listen::raise_fd_limit();
    let report = argon_crds::lint::lint_paths(&args.files);
    for d in &report.diagnostics {
        eprintln!("{d}");
    }
    if report.has_errors() {
        bail!("the manifests have errors (listed above)");
    }
    let sources = report.event_sources();
    if sources.is_empty() {
        bail!("no EventSource manifest in {:?}", args.files);
    }

    let secrets = Secrets::new(args.secrets_dir.clone());
    let manifest = args.eventbus.as_deref().map(crate::bus::load_manifest).transpose()?;
    let mut bus_config = crate::bus::bus_config(args.bus.as_deref(), manifest.as_ref(), &secrets)?;
    if let BusConfig::JetStream(js) = &mut bus_config {
        js.publish_timeout = args.publish_timeout;
    }
    let bus = argon_eventbus::open_config(bus_config)
        .await
        .context("cannot open the event bus")?;
    let shutdown = CancellationToken::new();
    let config = RunnerConfig {
        publish_timeout: args.publish_timeout,
        host: args.host,
        limits: args.listen.limits(),
        ..RunnerConfig::default()
    };
    let running = EventSourceRunner::start(&sources, bus, &secrets, config, shutdown.clone()).await?;
    if let Some(addr) = args.metrics_addr {
        let metrics = running.metrics().clone();
        let render = std::sync::Arc::new(move || metrics.render());
        let local =
            argon_eventsource::server::serve_metrics(addr, render, args.listen.limits(), shutdown.clone()).await?;
        println!("metrics http://{local}/metrics");
    }
    for endpoint in running.endpoints() {
        println!("{endpoint}");
    }
    tokio::spawn(stop_on_signal(shutdown));
    running.wait().await?;
    Ok(())
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("stopping: finishing requests in flight");
    shutdown.cancel();
}
