//! The `argon` binary: argument parsing and wiring of the Argon crates,
//! nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod eventsource;

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
