//! `argon controller`: the Kubernetes controller, or with `--dry-run` the
//! objects it would apply for a folder of manifests. Wiring only; the work is
//! in the argon-controller crate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use argon_controller::Settings;
use argon_crds::diag::Severity;
use clap::Args;
use tokio_util::sync::CancellationToken;

/// Options of `argon controller`.
#[derive(Args)]
pub struct ControllerArgs {
    /// Watch only this namespace (every namespace when unset); with
    /// --dry-run, the namespace of the manifests that name none.
    #[arg(long, short = 'n', env = "ARGON_NAMESPACE")]
    namespace: Option<String>,
    /// The image holding the argon binary, run by EventSource and Sensor pods.
    #[arg(long, env = "ARGON_IMAGE", default_value_t = Settings::default().image)]
    image: String,
    /// Pull policy of that image (Always, IfNotPresent, Never) unless a
    /// manifest's template says one.
    #[arg(long, env = "ARGON_IMAGE_PULL_POLICY", value_parser = ["Always", "IfNotPresent", "Never"])]
    image_pull_policy: Option<String>,
    /// The engine server (`argon server`) sensors submit workflows to, e.g.
    /// http://argon-server.argon.svc:2746.
    #[arg(long, env = "ARGON_SERVER")]
    server: Option<String>,
    /// A Secret in each manifest's namespace whose key `token` holds the
    /// engine server's Bearer token; mounted into sensor pods.
    #[arg(long, env = "ARGON_SERVER_TOKEN_SECRET")]
    server_token_secret: Option<String>,
    /// Serve /metrics and /health on this address.
    #[arg(long, default_value = "127.0.0.1:7777")]
    metrics_addr: std::net::SocketAddr,
    #[command(flatten)]
    listen: crate::listen::ListenArgs,
    /// Print, as YAML, the objects the controller would apply for the
    /// manifests under PATH..., without a cluster.
    #[arg(long, requires = "paths")]
    dry_run: bool,
    /// Manifest files or folders (with --dry-run).
    paths: Vec<PathBuf>,
}

/// Runs the subcommand; errors are printed, the exit code says how it went.
pub fn dispatch(args: ControllerArgs) -> ExitCode {
    crate::init_tracing();
    let settings = Settings {
        image: args.image.clone(),
        image_pull_policy: args.image_pull_policy.clone(),
        server_url: args.server.clone(),
        server_token_secret: args.server_token_secret.clone(),
    };
    if args.dry_run {
        return crate::exit_code(dry_run(&args, &settings));
    }
    if !args.paths.is_empty() {
        eprintln!("error: PATH arguments are read only with --dry-run; the controller reads the cluster");
        return ExitCode::FAILURE;
    }
    crate::exit_code(crate::block_on(async move {
        let client = argon_controller::connect().await?;
        let ctx = argon_controller::Context::new(client, settings);
        let shutdown = CancellationToken::new();
        let render = {
            let metrics = ctx.metrics.clone();
            std::sync::Arc::new(move || metrics.render())
        };
        let local =
            argon_eventsource::server::serve_metrics(args.metrics_addr, render, args.listen.limits(), shutdown.clone())
                .await
                .context("cannot serve /metrics")?;
        println!("metrics http://{local}/metrics");
        tokio::spawn(crate::stop_on_signal(shutdown.clone()));
        argon_controller::run(ctx, args.namespace.as_deref(), shutdown).await;
        Ok(())
    }))
}

fn dry_run(args: &ControllerArgs, settings: &Settings) -> anyhow::Result<()> {
    let report = argon_crds::lint::lint_paths(&args.paths);
    for d in report.diagnostics.iter().filter(|d| d.severity == Severity::Error) {
        eprintln!("{d}");
    }
    if report.has_errors() {
        bail!("the manifests have errors (listed above)");
    }
    let manifests: Vec<_> = report.manifests.into_iter().map(|l| l.manifest).collect();
    let plan = argon_controller::dryrun::plan(&manifests, args.namespace.as_deref().unwrap_or("default"), settings)?;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    print!("{}", plan.to_yaml()?);
    Ok(())
}
