//! The workflow commands: `argon server`, and the argo-style client verbs
//! (`submit`, `list`, `get`, `logs`, `delete`, `suspend`, `resume`, `stop`,
//! `terminate`, `retry`, `template ...`) that talk to it over HTTP.
//!
//! Longer than most files: the workflow verbs of the CLI with their options
//! and their output (Argo's `get` and `list` layouts).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use argon_client::TemplateKind;
use argon_client::{HttpClient, SubmitOptions, WorkflowAction, WorkflowAdmin, WorkflowClient};
use argon_crds::manifest::Manifest;
use argon_crds::workflow::{Workflow, WorkflowPhase};
use argon_engine::{Engine, EngineConfig};
use clap::{Args, Subcommand, ValueEnum};

use crate::cp::{CpFilter, copy_artifacts};
use crate::render::{render_summary, render_workflow};

/// How to reach the server.
#[derive(Args, Clone, Debug)]
pub struct Conn {
    /// The argon server.
    #[arg(long, env = "ARGON_SERVER", default_value = "http://127.0.0.1:2746", global = true)]
    server: String,
    #[command(flatten)]
    auth: crate::listen::ClientAuthArgs,
    /// Namespace (default: the workflow's own, or any namespace for lookups and lists).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// Every namespace (the default when no --namespace is given).
    #[arg(short = 'A', long, global = true, conflicts_with = "namespace")]
    all_namespaces: bool,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Json,
    Yaml,
    Wide,
    Name,
    /// The summary without the tree of steps.
    Short,
}

#[derive(Subcommand, Debug)]
pub enum EngineCommand {
    /// Run the workflow engine and its API (Argo Server-like REST).
    Server {
        /// Where the store, artifacts and steps' directories live.
        #[arg(long, env = "ARGON_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Address of the API (a non-loopback one needs a token).
        #[arg(long, env = "ARGON_API_ADDR", default_value = "127.0.0.1:2746")]
        api_addr: SocketAddr,
        /// Secrets as DIR/NAME/KEY files (secretKeyRef).
        #[arg(long)]
        secrets_dir: Option<PathBuf>,
        /// Manifest files or folders whose ConfigMaps hold artifact
        /// repositories (`artifact-repositories`, `workflow-controller-configmap`).
        paths: Vec<PathBuf>,
        #[command(flatten)]
        auth: crate::listen::ServerAuthArgs,
        #[command(flatten)]
        listen: crate::listen::ListenArgs,
        #[command(flatten)]
        executor: ExecutorArgs,
    },
    /// Submit workflows: argon submit FILE [-p NAME=VALUE]... [--watch | -w].
    Submit {
        /// Workflow manifests.
        #[arg(required_unless_present = "from")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        submit: SubmitArgs,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List workflows, newest first.
    List {
        #[command(flatten)]
        selection: crate::verbs::Selection,
        /// How many workflows to ask the server for at a time (0: all at once).
        #[arg(long, default_value_t = 500)]
        chunk_size: usize,
        /// No header line.
        #[arg(long)]
        no_headers: bool,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Follow a workflow until it ends, showing its tree (@latest: the newest).
    Watch {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Wait until workflows end; fails unless all succeeded.
    Wait {
        #[arg(required = true)]
        names: Vec<String>,
        /// A workflow that does not exist is not an error.
        #[arg(long)]
        ignore_not_found: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Submit a workflow again, as a new workflow.
    Resubmit {
        name: String,
        /// Wait until the new workflow ends.
        #[arg(short, long)]
        wait: bool,
        /// Follow the new workflow until it ends, showing its tree.
        #[arg(long)]
        watch: bool,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// The archive of finished workflows: list, get, delete.
    Archive {
        #[command(subcommand)]
        command: crate::verbs::ArchiveCommand,
    },
    /// CronWorkflows: list, get, create, delete, suspend, resume.
    Cron {
        #[command(subcommand)]
        command: crate::verbs::CronCommand,
    },
    /// Show a workflow (@latest: the newest).
    Get {
        name: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Download a workflow's output artifacts into DIR, as they are stored
    /// (like `argo cp`): DIR/PATH/FILE, PATH from --path.
    Cp {
        name: String,
        dir: PathBuf,
        /// Only the artifacts of this node.
        #[arg(long)]
        node_id: Option<String>,
        /// Only the artifacts of nodes of this template.
        #[arg(long)]
        template_name: Option<String>,
        /// Only the artifacts of this name.
        #[arg(long)]
        artifact_name: Option<String>,
        /// Where under DIR each artifact goes: {namespace}, {workflowName},
        /// {nodeId}, {templateName} and {artifactName} are replaced.
        #[arg(long, default_value = "{namespace}/{workflowName}/{nodeId}/outputs/{artifactName}")]
        path: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print a workflow's logs, each line prefixed by its step.
    Logs {
        name: String,
        /// Only this step's lines (its name as `argon get` shows it).
        step: Option<String>,
        #[command(flatten)]
        args: crate::verbs::LogArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete workflows: by name, or those the flags select.
    Delete {
        names: Vec<String>,
        /// Every workflow (narrowed by the other flags).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        selection: crate::verbs::Selection,
        /// Say what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Suspend a workflow: no new step starts until it is resumed.
    Suspend {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Resume a suspended workflow (and its suspend steps).
    Resume {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop a workflow: running steps are killed, exit handlers run.
    Stop {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Terminate a workflow: running steps are killed, no exit handler.
    Terminate {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Retry a failed workflow from its failed steps.
    Retry {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Store the WorkflowTemplates, ClusterWorkflowTemplates and CronWorkflows
    /// of files on the server (created, or replaced when they exist), like
    /// `kubectl apply`; other kinds are listed as skipped.
    Apply {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Manage WorkflowTemplates (and ClusterWorkflowTemplates, CronWorkflows).
    Template {
        #[command(subcommand)]
        command: TemplateCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum TemplateCommand {
    /// Store the WorkflowTemplates, ClusterWorkflowTemplates and CronWorkflows of files.
    Create {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List stored templates.
    List {
        /// ClusterWorkflowTemplates instead.
        #[arg(long)]
        cluster: bool,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a stored template.
    Get {
        name: String,
        #[arg(long)]
        cluster: bool,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a stored template.
    Delete {
        name: String,
        #[arg(long)]
        cluster: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

/// How `argon submit` builds and follows its workflows (argo's flags).
#[derive(Args, Clone, Debug, Default)]
pub struct SubmitArgs {
    /// Run a stored WorkflowTemplate: workflowtemplate/NAME (or clusterworkflowtemplate/NAME).
    #[arg(long)]
    from: Option<String>,
    /// Workflow parameter overrides.
    #[arg(short = 'p', long = "parameter", value_name = "NAME=VALUE")]
    parameters: Vec<String>,
    /// A YAML or JSON file of parameter values (NAME: VALUE); -p wins over it.
    #[arg(short = 'f', long, value_name = "FILE")]
    parameter_file: Option<PathBuf>,
    /// Start from this template instead of spec.entrypoint.
    #[arg(short = 'e', long)]
    entrypoint: Option<String>,
    /// The workflow's name.
    #[arg(long, conflicts_with = "generate_name")]
    name: Option<String>,
    /// A prefix the server completes into a unique name.
    #[arg(long)]
    generate_name: Option<String>,
    /// Labels for the workflow.
    #[arg(short = 'l', long = "labels", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Print the workflows as they would be submitted; submit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Wait until the workflow ends; fail unless it succeeded.
    #[arg(short, long)]
    wait: bool,
    /// Follow the workflow until it ends, showing its tree.
    #[arg(long)]
    watch: bool,
    /// Print the workflow's logs as they come, until it ends.
    #[arg(long)]
    log: bool,
}

/// Runs an engine command.
pub fn dispatch(command: EngineCommand) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("argon: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("argon: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn client(conn: &Conn) -> Result<HttpClient> {
    Ok(HttpClient::new(&conn.server, conn.auth.token()?)?)
}

/// The namespace to use: `""` for all.
pub(crate) fn ns(conn: &Conn) -> String {
    if conn.all_namespaces {
        return String::new();
    }
    conn.namespace.clone().unwrap_or_default()
}

/// How steps run: the options `argon run` and `argon server` share.
#[derive(clap::Args, Clone, Debug)]
pub struct ExecutorArgs {
    /// How steps run: auto (a container runtime when one answers on its
    /// socket, else the sandbox), podman, docker, sandbox (bubblewrap),
    /// host (no isolation; only when asked for), or kubernetes (a Pod per
    /// step; needs --callback-url).
    #[arg(long, env = "ARGON_EXECUTOR", default_value = "auto", value_parser = parse_executor)]
    pub executor: argon_engine::ExecutorChoice,
    /// Let templates mount hostPath volumes (host folders) into their steps.
    #[arg(long)]
    pub allow_host_path: bool,
    /// On SIGTERM, how long running sandbox and host steps may take to
    /// finish (container steps go on and are re-attached at the next start).
    #[arg(long, default_value = "30s", value_parser = argon_crds::time::parse_duration)]
    pub drain_timeout: std::time::Duration,
    /// Folders of tools for sandbox and host steps (repeat the flag, or
    /// separate them with `:` in ARGON_STEP_PATH): mounted read-only in the
    /// sandbox and put first on the steps' PATH. Container steps use their
    /// image instead.
    #[arg(
        long = "step-path",
        value_name = "DIR",
        env = "ARGON_STEP_PATH",
        value_delimiter = ':'
    )]
    pub step_path: Vec<std::path::PathBuf>,
    /// The engine's config, as Argo's controller config: a YAML file with
    /// `artifactRepository:` (the default artifact repository), or the
    /// `workflow-controller-configmap` ConfigMap.
    #[arg(long = "config", value_name = "FILE", env = "ARGON_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Keep no archive of finished workflows (`argon archive ...`).
    #[arg(long)]
    pub no_archive: bool,
    /// How long archived workflows are kept after they finished (30d, 12h); for ever when unset.
    #[arg(long, value_parser = argon_crds::time::parse_duration, value_name = "DURATION")]
    pub archive_ttl: Option<std::time::Duration>,
    /// With --executor kubernetes: the namespace step pods are made in
    /// (default: the engine's own namespace in a cluster, else the
    /// kubeconfig's).
    #[arg(long, env = "ARGON_POD_NAMESPACE", value_name = "NAMESPACE")]
    pub pod_namespace: Option<String>,
    /// With --executor kubernetes: the Argon image of the step pods' init
    /// container, which puts `argon emissary` into each pod.
    #[arg(long, env = "ARGON_STEP_IMAGE", value_name = "IMAGE", default_value = concat!("argon:", env!("CARGO_PKG_VERSION")))]
    pub step_image: String,
    /// With --executor kubernetes: the URL step pods reach this engine's
    /// API at (its Service), e.g. http://argon-server.argon.svc:2746.
    #[arg(long, env = "ARGON_CALLBACK_URL", value_name = "URL")]
    pub callback_url: Option<String>,
}

impl ExecutorArgs {
    /// Puts the artifact repositories into the engine's configuration: the
    /// default one of `--config`, and the ConfigMaps among `paths`.
    fn apply_artifacts(&self, config: &mut EngineConfig, paths: &[std::path::PathBuf]) -> Result<()> {
        if let Some(file) = &self.config {
            config.artifact_repository =
                argon_engine::artifacts::repository::engine_config(file).map_err(anyhow::Error::msg)?;
        }
        config.config_maps = argon_engine::artifacts::repository::config_maps(paths).map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// Puts the options into the engine's configuration.
    fn apply(&self, config: &mut EngineConfig) {
        config.executor = self.executor;
        config.allow_host_path = self.allow_host_path;
        config.drain_timeout = self.drain_timeout;
        config.archive = !self.no_archive;
        config.archive_ttl = self.archive_ttl;
        // The sandbox mounts them by their host path, which must not depend
        // on the engine's working directory.
        config.extra_path = self
            .step_path
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .collect();
    }
}

impl ExecutorArgs {
    /// Puts every option into the engine's configuration: the executor's,
    /// the artifact repositories among `paths`, the cluster.
    pub async fn configure(&self, config: &mut EngineConfig, paths: &[std::path::PathBuf]) -> Result<()> {
        self.apply(config);
        self.apply_artifacts(config, paths)?;
        self.apply_cluster(config).await
    }

    /// Connects to the cluster when steps run as pods (`--executor kubernetes`).
    async fn apply_cluster(&self, config: &mut EngineConfig) -> Result<()> {
        if self.executor != argon_engine::ExecutorChoice::Kubernetes {
            return Ok(());
        }
        let Some(callback_url) = self.callback_url.clone() else {
            anyhow::bail!(
                "--executor kubernetes needs --callback-url (ARGON_CALLBACK_URL): the URL step pods reach this \
                 engine's API at, e.g. http://argon-server.argon.svc:2746"
            );
        };
        let settings = argon_engine::executor::kubernetes::Settings::infer(
            self.pod_namespace.clone(),
            self.step_image.clone(),
            callback_url,
            config.state_dir.clone(),
            self.allow_host_path,
        )
        .await
        .map_err(anyhow::Error::msg)?;
        config.kubernetes = Some(settings);
        Ok(())
    }
}

fn parse_executor(s: &str) -> Result<argon_engine::ExecutorChoice, String> {
    s.parse()
}

async fn run(command: EngineCommand) -> Result<ExitCode> {
    match command {
        EngineCommand::Server {
            state_dir,
            api_addr,
            secrets_dir,
            paths,
            auth,
            listen,
            executor,
        } => server(state_dir, api_addr, secrets_dir, &paths, &auth, &listen, executor).await,
        EngineCommand::Submit {
            files,
            submit: args,
            output,
            conn,
        } => submit(files, args, output, conn).await,
        EngineCommand::List {
            selection,
            chunk_size,
            no_headers,
            output,
            conn,
        } => {
            crate::verbs::list(
                &conn,
                crate::verbs::Source::Live,
                &selection,
                chunk_size,
                output,
                no_headers,
            )
            .await
        }
        EngineCommand::Watch { name, conn } => {
            let c = client(&conn)?;
            let wf = c.get(&ns(&conn), &name).await?;
            let done = crate::verbs::watch(
                &c,
                &wf.metadata.namespace.clone().unwrap_or_default(),
                &wf.metadata.name.clone().unwrap_or_default(),
            )
            .await?;
            Ok(exit_of(&done))
        }
        EngineCommand::Wait {
            names,
            ignore_not_found,
            conn,
        } => crate::verbs::wait(&conn, &names, ignore_not_found).await,
        EngineCommand::Resubmit {
            name,
            wait,
            watch,
            output,
            conn,
        } => {
            let c = client(&conn)?;
            let wf = c.get(&ns(&conn), &name).await?;
            let namespace = wf.metadata.namespace.clone().unwrap_or_default();
            let new = c
                .act(
                    &namespace,
                    &wf.metadata.name.clone().unwrap_or_default(),
                    WorkflowAction::Resubmit,
                )
                .await?;
            let new_name = new.metadata.name.clone().unwrap_or_default();
            let old_name = wf.metadata.name.clone().unwrap_or_default();
            eprintln!("Workflow '{old_name}' resubmitted as '{new_name}'");
            follow(&c, &namespace, &new_name, new, wait, watch, false, output).await
        }
        EngineCommand::Cron { command } => crate::verbs::cron(command).await,
        EngineCommand::Archive { command } => crate::verbs::archive(command).await,
        EngineCommand::Get { name, output, conn } => {
            let wf = client(&conn)?.get(&ns(&conn), &name).await?;
            print_workflow(&wf, output)?;
            Ok(ExitCode::SUCCESS)
        }
        EngineCommand::Cp {
            name,
            dir,
            node_id,
            template_name,
            artifact_name,
            path,
            conn,
        } => {
            let c = client(&conn)?;
            let wf = c.get(&ns(&conn), &name).await?;
            let filter = CpFilter {
                node_id,
                template_name,
                artifact_name,
            };
            let n = copy_artifacts(&c, &wf, &filter, &dir, &path).await?;
            if n == 0 {
                bail!("workflow {name} has no output artifacts to copy");
            }
            Ok(ExitCode::SUCCESS)
        }
        EngineCommand::Logs { name, step, args, conn } => {
            crate::verbs::logs(&conn, &name, step.as_deref(), &args).await
        }
        EngineCommand::Delete {
            names,
            all,
            selection,
            dry_run,
            conn,
        } => crate::verbs::delete(&conn, &names, all, &selection, dry_run).await,
        EngineCommand::Suspend { name, conn } => act(conn, name, WorkflowAction::Suspend, "suspended").await,
        EngineCommand::Resume { name, conn } => act(conn, name, WorkflowAction::Resume, "resumed").await,
        EngineCommand::Stop { name, conn } => act(conn, name, WorkflowAction::Stop, "stopped").await,
        EngineCommand::Terminate { name, conn } => act(conn, name, WorkflowAction::Terminate, "terminated").await,
        EngineCommand::Retry { name, conn } => act(conn, name, WorkflowAction::Retry, "retried").await,
        EngineCommand::Template { command } => template(command).await,
        EngineCommand::Apply { files, conn } => apply(files, conn).await,
    }
}

async fn server(
    state_dir: Option<PathBuf>,
    api_addr: SocketAddr,
    secrets_dir: Option<PathBuf>,
    paths: &[PathBuf],
    auth: &crate::listen::ServerAuthArgs,
    listen: &crate::listen::ListenArgs,
    executor: ExecutorArgs,
) -> Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .try_init();
    let auth = auth.resolve(api_addr)?;
    crate::listen::raise_fd_limit();
    let state_dir = match state_dir {
        Some(d) => d,
        None => default_state_dir(),
    };
    let mut config = EngineConfig::new(&state_dir);
    config.secrets = argon_crds::secret::Secrets::new(secrets_dir);
    executor.configure(&mut config, paths).await?;
    let engine = Engine::open(config).with_context(|| format!("opening the engine in {}", state_dir.display()))?;
    eprintln!("argon: {}", engine.executor_description());
    let listener = tokio::net::TcpListener::bind(api_addr)
        .await
        .with_context(|| format!("cannot listen on {api_addr}"))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "argon server: listening on http://{addr}, state in {}",
        state_dir.display()
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            shutdown.cancel();
        });
    }
    let app = argon_engine::server::router(argon_engine::server::ApiState {
        engine: engine.clone(),
        auth,
        metrics: None,
        events: None,
    })
    // The web UI, outside the API's token check (its files hold no data).
    .merge(argon_ui::router::<()>());
    let engine_task = {
        let token = shutdown.clone();
        tokio::spawn(argon_engine::serve(Arc::clone(&engine), async move {
            token.cancelled().await
        }))
    };
    argon_eventsource::listener::serve(listener, None, app, listen.limits(), shutdown.clone(), API_DRAIN).await?;
    engine_task.await??;
    Ok(ExitCode::SUCCESS)
}

/// How long the API server may take to finish its requests after shutdown.
pub(crate) const API_DRAIN: Duration = Duration::from_secs(10);

pub(crate) fn default_state_dir() -> PathBuf {
    if let Ok(d) = std::env::var("XDG_STATE_HOME") {
        return PathBuf::from(d).join("argon");
    }
    match std::env::var("HOME") {
        Ok(h) => PathBuf::from(h).join(".local/state/argon"),
        Err(_) => PathBuf::from(".argon"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

fn key_value(s: &str, what: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("{what} '{s}' is not NAME=VALUE"),
    }
}

/// The parameter values of `--parameter-file` then `-p` (later ones win).
fn submit_parameters(args: &SubmitArgs) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(file) = &args.parameter_file {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let values: BTreeMap<String, serde_json::Value> = serde_norway::from_str(&text)
            .with_context(|| format!("{}: a parameter file is a map of NAME: VALUE", file.display()))?;
        for (k, v) in values {
            let v = match v {
                serde_json::Value::String(s) => s,
                // Argo takes non-string values as their JSON text.
                other => other.to_string(),
            };
            out.push((k, v));
        }
    }
    for p in &args.parameters {
        let (k, v) = key_value(p, "parameter")?;
        out.retain(|(n, _)| *n != k);
        out.push((k, v));
    }
    Ok(out)
}

async fn submit(files: Vec<PathBuf>, args: SubmitArgs, output: Option<Output>, conn: Conn) -> Result<ExitCode> {
    let options = SubmitOptions {
        idempotency_key: None,
        parameters: submit_parameters(&args)?,
        labels: args
            .labels
            .iter()
            .flat_map(|l| l.split(','))
            .filter(|l| !l.is_empty())
            .map(|l| key_value(l, "label"))
            .collect::<Result<BTreeMap<_, _>>>()?,
    };
    let mut workflows = Vec::new();
    if let Some(from) = &args.from {
        let (kind, name) = from
            .split_once('/')
            .with_context(|| format!("--from '{from}': use workflowtemplate/NAME or clusterworkflowtemplate/NAME"))?;
        let cluster = match kind.to_ascii_lowercase().as_str() {
            "workflowtemplate" | "wftmpl" => false,
            "clusterworkflowtemplate" | "cwftmpl" => true,
            other => bail!("--from: unknown kind '{other}'; use workflowtemplate/NAME"),
        };
        let mut wf = Workflow::new("", Default::default());
        wf.metadata.name = None;
        wf.metadata.generate_name = Some(format!("{name}-"));
        wf.spec.workflow_template_ref = Some(argon_crds::workflow::WorkflowTemplateRef {
            name: name.to_string(),
            cluster_scope: cluster,
        });
        workflows.push(wf);
    }
    // Where each workflow came from, to say what was submitted.
    let mut sources: Vec<String> = vec![String::new(); workflows.len()];
    if !files.is_empty() {
        let Some(report) = checked(&files) else {
            return Ok(ExitCode::FAILURE);
        };
        for m in report.manifests {
            let at = format!("{}:{}", m.doc.file, m.doc.start.line);
            let name = m.manifest.name();
            match m.manifest {
                Manifest::Workflow(w) => {
                    workflows.push(*w);
                    sources.push(at);
                }
                other => eprintln!("{at}: skipped {} '{name}': {}", other.kind(), not_submitted(&other)),
            }
        }
    }
    if workflows.is_empty() {
        bail!("no Workflow to submit");
    }
    if workflows.len() > 1 && args.name.is_some() {
        bail!("--name names one workflow, and there are {} to submit", workflows.len());
    }
    for wf in &mut workflows {
        if let Some(e) = &args.entrypoint {
            wf.spec.entrypoint = Some(e.clone());
        }
        if let Some(n) = &args.name {
            wf.metadata.name = Some(n.clone());
            wf.metadata.generate_name = None;
        }
        if let Some(g) = &args.generate_name {
            wf.metadata.generate_name = Some(g.clone());
            wf.metadata.name = None;
        }
    }
    if args.dry_run {
        for mut wf in workflows {
            // What the server would be sent: parameters and labels applied here.
            for (k, v) in &options.parameters {
                let params = &mut wf.spec.arguments.parameters;
                match params.iter_mut().find(|p| p.name == *k) {
                    Some(p) => p.value = Some(v.clone().into()),
                    None => params.push(argon_crds::workflow::Parameter {
                        name: k.clone(),
                        value: Some(v.clone().into()),
                        ..Default::default()
                    }),
                }
            }
            if !options.labels.is_empty() {
                wf.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .extend(options.labels.clone());
            }
            match output {
                Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&wf)?),
                _ => print!("---\n{}", serde_norway::to_string(&wf)?),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let c = client(&conn)?;
    let mut code = ExitCode::SUCCESS;
    for (wf, at) in workflows.into_iter().zip(sources) {
        let s = c.submit(&ns(&conn), wf, options.clone()).await?;
        if !at.is_empty() {
            eprintln!("{at}: submitted Workflow '{}'", s.name);
        }
        let wf = c.get(&s.namespace, &s.name).await?;
        let done = follow(&c, &s.namespace, &s.name, wf, args.wait, args.watch, args.log, output).await?;
        if done != ExitCode::SUCCESS {
            code = done;
        }
    }
    Ok(code)
}

/// The exit code for a finished workflow: success only if it succeeded.
fn exit_of(wf: &Workflow) -> ExitCode {
    if phase(wf) == Some(WorkflowPhase::Succeeded) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// After a submission: prints the workflow, and with `watch`, `wait` or
/// `log` follows it to its end (failing unless it succeeded).
#[allow(clippy::too_many_arguments)]
async fn follow(
    c: &HttpClient,
    namespace: &str,
    name: &str,
    wf: Workflow,
    wait: bool,
    watch: bool,
    log: bool,
    output: Option<Output>,
) -> Result<ExitCode> {
    if watch {
        let done = crate::verbs::watch(c, namespace, name).await?;
        if output.is_some() {
            print_workflow(&done, output)?;
        }
        return Ok(exit_of(&done));
    }
    print_workflow(&wf, output)?;
    if log {
        // Lines as they come, until the workflow ends.
        c.stream_logs(namespace, name, 0, true, |l| println!("{}: {}", l.step, l.line))
            .await?;
    }
    if wait || log {
        let done = crate::verbs::until_done(c, namespace, name, |_| {}).await?;
        let p = phase(&done).unwrap_or(WorkflowPhase::Error);
        println!("{name} {p:?}");
        return Ok(exit_of(&done));
    }
    Ok(ExitCode::SUCCESS)
}

/// The manifests of `files` when they lint without error (the errors are
/// printed otherwise, and documents left out are listed as skipped).
fn checked(files: &[PathBuf]) -> Option<argon_crds::manifest::LoadReport> {
    let report = argon_crds::lint::lint_paths(files);
    let mut failed = false;
    for d in &report.diagnostics {
        if d.severity == argon_crds::diag::Severity::Error {
            failed = true;
            eprintln!("{d}");
        } else if d.message.contains("skip") {
            // Documents the loader leaves out (other API groups, kinds Argon does not run yet).
            eprintln!("{}:{}: skipped: {}", d.file, d.line, d.message);
        }
    }
    (!failed).then_some(report)
}

/// Why `argon submit` leaves a manifest of another kind alone, and what to do with it.
fn not_submitted(m: &Manifest) -> &'static str {
    match m {
        Manifest::WorkflowTemplate(_) | Manifest::ClusterWorkflowTemplate(_) | Manifest::CronWorkflow(_) => {
            "argon submit runs Workflows; store it with argon apply"
        }
        Manifest::EventSource(_) | Manifest::Sensor(_) | Manifest::EventBus(_) => {
            "argon submit runs Workflows; run it with argon run"
        }
        Manifest::Workflow(_) => "",
    }
}

/// `argon apply FILE...`: stores the templates and cron workflows of files.
async fn apply(files: Vec<PathBuf>, conn: Conn) -> Result<ExitCode> {
    store_templates(files, conn, &TEMPLATE_KINDS).await
}

/// The kinds the engine stores.
const TEMPLATE_KINDS: [&str; 3] = ["WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"];

/// Stores the manifests of `files` whose kind is one of `kinds` (created,
/// or replaced when they exist: "configured") and says why it leaves the others.
pub(crate) async fn store_templates(files: Vec<PathBuf>, conn: Conn, kinds: &[&str]) -> Result<ExitCode> {
    let c = client(&conn)?;
    let Some(report) = checked(&files) else {
        return Ok(ExitCode::FAILURE);
    };
    let mut stored_any = false;
    for m in report.manifests {
        let at = format!("{}:{}", m.doc.file, m.doc.start.line);
        let name = m.manifest.name();
        let kind = m.manifest.kind();
        let wanted = kinds.contains(&kind);
        let doc = match m.manifest {
            Manifest::WorkflowTemplate(t) if wanted => serde_json::to_value(*t)?,
            Manifest::ClusterWorkflowTemplate(t) if wanted => serde_json::to_value(*t)?,
            Manifest::CronWorkflow(t) if wanted => serde_json::to_value(*t)?,
            Manifest::Workflow(_) => {
                eprintln!("{at}: skipped Workflow '{name}': a Workflow runs once; start it with argon submit");
                continue;
            }
            Manifest::EventSource(_) | Manifest::Sensor(_) | Manifest::EventBus(_) => {
                eprintln!("{at}: skipped {kind} '{name}': the engine does not store it; run it with argon run");
                continue;
            }
            _ => {
                eprintln!(
                    "{at}: skipped {kind} '{name}': this command stores {}",
                    kinds.join(", ")
                );
                continue;
            }
        };
        let existed = c.get_template(template_kind(kind), &ns(&conn), &name).await.is_ok();
        let stored = c.put_template(&ns(&conn), doc).await?;
        println!(
            "{kind} '{}' {}",
            stored["metadata"]["name"].as_str().unwrap_or_default(),
            if existed { "configured" } else { "created" }
        );
        stored_any = true;
    }
    if !stored_any {
        bail!("nothing to apply: no {} in the files", kinds.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn template_kind(kind: &str) -> TemplateKind {
    match kind {
        "ClusterWorkflowTemplate" => TemplateKind::ClusterWorkflowTemplate,
        "CronWorkflow" => TemplateKind::CronWorkflow,
        _ => TemplateKind::WorkflowTemplate,
    }
}

fn phase(wf: &Workflow) -> Option<WorkflowPhase> {
    wf.status.as_ref().and_then(|s| s.phase)
}

async fn act(conn: Conn, name: String, action: WorkflowAction, done: &str) -> Result<ExitCode> {
    let c = client(&conn)?;
    let wf = c.get(&ns(&conn), &name).await?;
    let real = wf.metadata.name.clone().unwrap_or_default();
    c.act(&wf.metadata.namespace.clone().unwrap_or_default(), &real, action)
        .await?;
    println!("workflow {real} {done}");
    Ok(ExitCode::SUCCESS)
}

async fn template(command: TemplateCommand) -> Result<ExitCode> {
    let kind = |cluster: bool| {
        if cluster {
            TemplateKind::ClusterWorkflowTemplate
        } else {
            TemplateKind::WorkflowTemplate
        }
    };
    match command {
        TemplateCommand::Create { files, conn } => store_templates(files, conn, &TEMPLATE_KINDS).await,
        TemplateCommand::List { cluster, output, conn } => {
            let c = client(&conn)?;
            let items = c.list_templates(kind(cluster), &ns(&conn)).await?;
            match output {
                Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&items)?),
                Some(Output::Yaml) => print!("{}", serde_norway::to_string(&items)?),
                _ => {
                    println!("{:<32} {:<16} TEMPLATES", "NAME", "NAMESPACE");
                    for t in items {
                        let names: Vec<&str> = t["spec"]["templates"]
                            .as_array()
                            .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
                            .unwrap_or_default();
                        println!(
                            "{:<32} {:<16} {}",
                            t["metadata"]["name"].as_str().unwrap_or_default(),
                            t["metadata"]["namespace"].as_str().unwrap_or("-"),
                            names.join(",")
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplateCommand::Get {
            name,
            cluster,
            output,
            conn,
        } => {
            let t = client(&conn)?.get_template(kind(cluster), &ns(&conn), &name).await?;
            match output {
                Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&t)?),
                _ => print!("{}", serde_norway::to_string(&t)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplateCommand::Delete { name, cluster, conn } => {
            client(&conn)?.delete_template(kind(cluster), &ns(&conn), &name).await?;
            println!("{} '{name}' deleted", kind(cluster).as_str());
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn print_workflow(wf: &Workflow, output: Option<Output>) -> Result<()> {
    match output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(wf)?),
        Some(Output::Yaml) => print!("{}", serde_norway::to_string(wf)?),
        Some(Output::Name) => println!("{}", wf.metadata.name.clone().unwrap_or_default()),
        Some(Output::Wide) => print!("{}", render_workflow(wf, true)),
        Some(Output::Short) => print!("{}", render_summary(wf)),
        None => print!("{}", render_workflow(wf, false)),
    }
    Ok(())
}
