//! The `argon` binary: argument parsing and wiring of the Argon crates,
//! nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc instead of glibc's malloc: buffers are allocated on the request
/// tasks and freed on the bus threads, and glibc's arena locks turn those
/// cross-thread frees into futex wake-ups (measured in `argon-bench ingest`:
/// about 10% more webhook requests/s; idle RSS 20 MB where mimalloc gave 28).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod bus;
mod controller;
mod cp;
mod emissary;
mod engine;
mod events;
mod eventsource;
mod listen;
mod render;
mod run;
mod sensor;
mod verbs;

/// Argon: event-driven automation for argoproj.io manifests.
#[derive(Parser)]
#[command(name = "argon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check manifests (files or folders): prints PATH:LINE:COL: error|warning: MESSAGE
    /// and exits 1 when there is any error.
    Lint {
        /// Manifest files or folders (searched for .yaml, .yml and .json).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the CustomResourceDefinitions of EventSource, Sensor and EventBus.
    Crds,
    /// Run EventSources: `argon eventsource run FILE... --bus URL`.
    Eventsource {
        #[command(subcommand)]
        command: eventsource::EventsourceCommand,
    },
    /// Run Sensors (`argon sensor run FILE... --bus URL [--server URL]`) or
    /// dry-run one on sample events (`argon sensor test FILE --event EVENT.json`).
    Sensor {
        #[command(subcommand)]
        command: sensor::SensorCommand,
    },
    /// The events `argon run` accepted: `argon events list [--source S --since 1h]`,
    /// `argon events get ID`, `argon events replay ID [--sensor NAME]`.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// The Kubernetes controller: keeps a Deployment (and Service) per
    /// EventSource, a Deployment per Sensor and a JetStream StatefulSet per
    /// EventBus; `--dry-run PATH...` prints what it would apply.
    Controller(controller::ControllerArgs),
    /// Inside a step's pod (the kubernetes executor puts it there).
    #[command(hide = true)]
    Emissary {
        #[command(subcommand)]
        command: emissary::EmissaryCommand,
    },
    /// Print a shell completion script: `source <(argon completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run everything under PATH... in one process: event sources, sensors,
    /// templates, the event bus (embedded unless --bus) and the engine with its API.
    Run(run::RunArgs),
    /// The workflow engine: `argon server`, `submit`, `list`, `get`, `logs`, `delete`,
    /// `suspend`, `resume`, `stop`, `terminate`, `retry`, `template`.
    #[command(flatten)]
    Engine(engine::EngineCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lint { paths } => lint(&paths),
        Command::Crds => {
            print!("{}", argon_crds::crd::yaml());
            ExitCode::SUCCESS
        }
        Command::Eventsource { command } => eventsource::dispatch(command),
        Command::Sensor { command } => sensor::dispatch(command),
        Command::Run(args) => run::dispatch(args),
        Command::Events { command } => events::dispatch(command),
        Command::Controller(args) => controller::dispatch(args),
        Command::Emissary { command } => emissary::dispatch(command),
        Command::Completion { shell } => {
            use clap::CommandFactory as _;
            use std::io::Write as _;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "argon", &mut script);
            // A closed pipe (`argon completion bash | head`) is not an error.
            let _ = std::io::stdout().write_all(&script);
            ExitCode::SUCCESS
        }
        Command::Engine(command) => engine::dispatch(command),
    }
}

fn lint(paths: &[PathBuf]) -> ExitCode {
    let report = argon_crds::lint::lint_paths(paths);
    for d in &report.diagnostics {
        println!("{d}");
    }
    let errors = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == argon_crds::diag::Severity::Error)
        .count();
    let warnings = report.diagnostics.len() - errors;
    eprintln!(
        "{} manifest(s) checked: {errors} error(s), {warnings} warning(s)",
        report.manifests.len()
    );
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `f` to its end on a new async runtime.
fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(f)
}

/// The exit code of a command's outcome, printing its error.
fn exit_code(outcome: anyhow::Result<()>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, `info` unless `RUST_LOG` says otherwise.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
async fn stop_on_signal(shutdown: tokio_util::sync::CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = ctrl_c.await;
        }
    }
    shutdown.cancel();
}
