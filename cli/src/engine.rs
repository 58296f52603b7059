//! The workflow commands: `argon server`, and the argo-style client verbs
//! (`submit`, `list`, `get`, `logs`, `delete`, `suspend`, `resume`, `stop`,
//! `terminate`, `retry`, `template ...`) that talk to it over HTTP.
//!
//! Longer than most files: the workflow verbs of the CLI with their options
//! and their output (Argo's `get` and `list` layouts).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use argon_client::TemplateKind;
use argon_client::{HttpClient, SubmitOptions, WorkflowAction, WorkflowAdmin, WorkflowClient};
use argon_crds::manifest::Manifest;
use argon_crds::workflow::{NodePhase, NodeStatus, NodeType, Workflow, WorkflowPhase};
use argon_engine::{Engine, EngineConfig};
use clap::{Args, Subcommand, ValueEnum};

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
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Json,
    Yaml,
    Wide,
    Name,
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
    /// Submit workflows: argon submit FILE [-p NAME=VALUE]... [--watch].
    Submit {
        /// Workflow manifests.
        #[arg(required_unless_present = "from")]
        files: Vec<PathBuf>,
        /// Run a stored WorkflowTemplate: workflowtemplate/NAME (or clusterworkflowtemplate/NAME).
        #[arg(long)]
        from: Option<String>,
        /// Workflow parameter overrides.
        #[arg(short = 'p', long = "parameter", value_name = "NAME=VALUE")]
        parameters: Vec<String>,
        /// Labels for the workflow.
        #[arg(short = 'l', long = "labels", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Follow the workflow until it ends, showing its tree.
        #[arg(short, long)]
        watch: bool,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List workflows.
    List {
        /// Only the runs of this WorkflowTemplate.
        #[arg(long)]
        template: Option<String>,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
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
        /// Keep printing until the workflow ends.
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete workflows.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
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

fn client(conn: &Conn) -> Result<HttpClient> {
    Ok(HttpClient::new(&conn.server, conn.auth.token()?)?)
}

fn ns(conn: &Conn) -> String {
    conn.namespace.clone().unwrap_or_default()
}

/// How steps run: the options `argon run` and `argon server` share.
#[derive(clap::Args, Clone, Debug)]
pub struct ExecutorArgs {
    /// How steps run: auto (a container runtime when one answers on its
    /// socket, else the sandbox), podman, docker, sandbox (bubblewrap), or
    /// host (no isolation; only when asked for).
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
}

impl ExecutorArgs {
    /// Puts the artifact repositories into the engine's configuration: the
    /// default one of `--config`, and the ConfigMaps among `paths`.
    pub fn apply_artifacts(&self, config: &mut EngineConfig, paths: &[std::path::PathBuf]) -> Result<()> {
        if let Some(file) = &self.config {
            config.artifact_repository =
                argon_engine::artifacts::repository::engine_config(file).map_err(anyhow::Error::msg)?;
        }
        config.config_maps = argon_engine::artifacts::repository::config_maps(paths).map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// Puts the options into the engine's configuration.
    pub fn apply(&self, config: &mut EngineConfig) {
        config.executor = self.executor;
        config.allow_host_path = self.allow_host_path;
        config.drain_timeout = self.drain_timeout;
        // The sandbox mounts them by their host path, which must not depend
        // on the engine's working directory.
        config.extra_path = self
            .step_path
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .collect();
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
            from,
            parameters,
            labels,
            watch,
            output,
            conn,
        } => submit(files, from, parameters, labels, watch, output, conn).await,
        EngineCommand::List { template, output, conn } => {
            let c = client(&conn)?;
            let list = c.list(&ns(&conn), template.as_deref()).await?;
            match output {
                Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&list)?),
                Some(Output::Yaml) => print!("{}", serde_norway::to_string(&list)?),
                Some(Output::Name) => {
                    for w in &list {
                        println!("{}", w.metadata.name.clone().unwrap_or_default());
                    }
                }
                _ => print!("{}", render_list(&list, output == Some(Output::Wide))),
            }
            Ok(ExitCode::SUCCESS)
        }
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
        EngineCommand::Logs { name, follow, conn } => {
            let c = client(&conn)?;
            let wf = c.get(&ns(&conn), &name).await?;
            let namespace = wf.metadata.namespace.clone().unwrap_or_default();
            let name = wf.metadata.name.clone().unwrap_or_default();
            c.stream_logs(&namespace, &name, 0, follow, |l| {
                use std::io::Write as _;
                // A closed pipe (`argon logs X | head`) ends the command quietly.
                if writeln!(std::io::stdout(), "{}: {}", l.step, l.line).is_err() {
                    std::process::exit(0);
                }
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        EngineCommand::Delete { names, conn } => {
            let c = client(&conn)?;
            for n in names {
                let wf = c.get(&ns(&conn), &n).await?;
                let name = wf.metadata.name.clone().unwrap_or_default();
                c.delete(&wf.metadata.namespace.clone().unwrap_or_default(), &name)
                    .await?;
                println!("Workflow '{name}' deleted");
            }
            Ok(ExitCode::SUCCESS)
        }
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
    executor.apply(&mut config);
    executor.apply_artifacts(&mut config, paths)?;
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
    });
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

async fn submit(
    files: Vec<PathBuf>,
    from: Option<String>,
    parameters: Vec<String>,
    labels: Vec<String>,
    watch: bool,
    output: Option<Output>,
    conn: Conn,
) -> Result<ExitCode> {
    let c = client(&conn)?;
    let options = SubmitOptions {
        idempotency_key: None,
        parameters: parameters
            .iter()
            .map(|p| key_value(p, "parameter"))
            .collect::<Result<_>>()?,
        labels: labels
            .iter()
            .map(|l| key_value(l, "label"))
            .collect::<Result<BTreeMap<_, _>>>()?,
    };
    let mut workflows = Vec::new();
    if let Some(from) = from {
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
        let report = argon_crds::lint::lint_paths(&files);
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
        if failed {
            return Ok(ExitCode::FAILURE);
        }
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
    let mut code = ExitCode::SUCCESS;
    for (wf, at) in workflows.into_iter().zip(sources) {
        let s = c.submit(&ns(&conn), wf, options.clone()).await?;
        if !at.is_empty() {
            eprintln!("{at}: submitted Workflow '{}'", s.name);
        }
        let wf = c.get(&s.namespace, &s.name).await?;
        if watch {
            let done = watch_workflow(&c, &s.namespace, &s.name).await?;
            if output.is_some() {
                print_workflow(&done, output)?;
            }
            if phase(&done) != Some(WorkflowPhase::Succeeded) {
                code = ExitCode::FAILURE;
            }
        } else {
            print_workflow(&wf, output)?;
        }
    }
    Ok(code)
}

async fn watch_workflow(c: &HttpClient, namespace: &str, name: &str) -> Result<Workflow> {
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let wf = c.get(namespace, name).await?;
        let text = render_workflow(&wf, false);
        // Durations change every tick on a terminal; elsewhere print when the tree changes.
        let shape = render_shape(&wf);
        if tty {
            print!("\x1b[H\x1b[2J{text}");
        } else if shape != last {
            println!("{text}");
        }
        last = shape;
        if phase(&wf).is_some_and(|p| p.is_completed()) {
            if !tty {
                // The final state, durations included.
                println!("{}", render_workflow(&wf, false));
            }
            return Ok(wf);
        }
    }
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
    let c = client(&conn)?;
    let report = argon_crds::lint::lint_paths(&files);
    let mut failed = false;
    for d in &report.diagnostics {
        if d.severity == argon_crds::diag::Severity::Error {
            failed = true;
            eprintln!("{d}");
        } else if d.message.contains("skip") {
            eprintln!("{}:{}: skipped: {}", d.file, d.line, d.message);
        }
    }
    if failed {
        return Ok(ExitCode::FAILURE);
    }
    let mut stored_any = false;
    for m in report.manifests {
        let at = format!("{}:{}", m.doc.file, m.doc.start.line);
        let name = m.manifest.name();
        let kind = m.manifest.kind();
        let doc = match m.manifest {
            Manifest::WorkflowTemplate(t) => serde_json::to_value(*t)?,
            Manifest::ClusterWorkflowTemplate(t) => serde_json::to_value(*t)?,
            Manifest::CronWorkflow(t) => serde_json::to_value(*t)?,
            Manifest::Workflow(_) => {
                eprintln!("{at}: skipped Workflow '{name}': a Workflow runs once; start it with argon submit");
                continue;
            }
            Manifest::EventSource(_) | Manifest::Sensor(_) | Manifest::EventBus(_) => {
                eprintln!("{at}: skipped {kind} '{name}': the engine does not store it; run it with argon run");
                continue;
            }
        };
        let stored = c.put_template(&ns(&conn), doc).await?;
        println!(
            "{kind} '{}' stored",
            stored["metadata"]["name"].as_str().unwrap_or_default()
        );
        stored_any = true;
    }
    if !stored_any {
        bail!("nothing to apply: no WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow in the files");
    }
    Ok(ExitCode::SUCCESS)
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
        TemplateCommand::Create { files, conn } => {
            let c = client(&conn)?;
            let report = argon_crds::lint::lint_paths(&files);
            let mut failed = false;
            for d in &report.diagnostics {
                if d.severity == argon_crds::diag::Severity::Error {
                    failed = true;
                    eprintln!("{d}");
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
            for m in report.manifests {
                let (doc, kind) = match m.manifest {
                    Manifest::WorkflowTemplate(t) => (serde_json::to_value(*t)?, "WorkflowTemplate"),
                    Manifest::ClusterWorkflowTemplate(t) => (serde_json::to_value(*t)?, "ClusterWorkflowTemplate"),
                    Manifest::CronWorkflow(t) => (serde_json::to_value(*t)?, "CronWorkflow"),
                    other => bail!(
                        "{} is a {}: argon template create takes WorkflowTemplates, ClusterWorkflowTemplates and \
                         CronWorkflows",
                        m.doc.file,
                        other.kind()
                    ),
                };
                let stored = c.put_template(&ns(&conn), doc).await?;
                println!(
                    "{kind} '{}' created",
                    stored["metadata"]["name"].as_str().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
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

fn print_workflow(wf: &Workflow, output: Option<Output>) -> Result<()> {
    match output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(wf)?),
        Some(Output::Yaml) => print!("{}", serde_norway::to_string(wf)?),
        Some(Output::Name) => println!("{}", wf.metadata.name.clone().unwrap_or_default()),
        Some(Output::Wide) => print!("{}", render_workflow(wf, true)),
        None => print!("{}", render_workflow(wf, false)),
    }
    Ok(())
}

// ---------------------------------------------------------------- rendering

fn symbol(n: &NodeStatus) -> &'static str {
    match n.phase {
        Some(NodePhase::Succeeded) => "✔",
        Some(NodePhase::Failed) => "✖",
        Some(NodePhase::Error) => "⚠",
        Some(NodePhase::Skipped) | Some(NodePhase::Omitted) => "○",
        Some(NodePhase::Running) if n.type_ == Some(NodeType::Suspend) => "ǁ",
        Some(NodePhase::Running) => "●",
        Some(NodePhase::Pending) | None => "◷",
    }
}

fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s < 86400 {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{}h", s / 86400, (s % 86400) / 3600)
    }
}

fn span(start: Option<chrono::DateTime<chrono::Utc>>, end: Option<chrono::DateTime<chrono::Utc>>) -> String {
    match start {
        Some(s) => human(end.unwrap_or_else(chrono::Utc::now) - s),
        None => String::new(),
    }
}

/// The workflow as `argo get` shows it: a summary and the tree of its nodes.
fn render_workflow(wf: &Workflow, wide: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let status = wf.status.clone().unwrap_or_default();
    let start = status.started_at.as_ref().map(argon_engine::time::to_chrono);
    let end = status.finished_at.as_ref().map(argon_engine::time::to_chrono);
    let row = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "{:<20} {v}", format!("{k}:"));
    };
    row(&mut out, "Name", wf.metadata.name.clone().unwrap_or_default());
    row(&mut out, "Namespace", wf.metadata.namespace.clone().unwrap_or_default());
    row(
        &mut out,
        "Status",
        status
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "Pending".into()),
    );
    if let Some(m) = &status.message {
        row(&mut out, "Message", m.clone());
    }
    if let Some(t) = &wf.metadata.creation_timestamp {
        row(&mut out, "Created", argon_engine::time::to_chrono(t).to_rfc3339());
    }
    if let Some(s) = start {
        row(&mut out, "Started", s.to_rfc3339());
    }
    if let Some(e) = end {
        row(&mut out, "Finished", e.to_rfc3339());
    }
    if start.is_some() {
        row(&mut out, "Duration", span(start, end));
    }
    if let Some(p) = &status.progress {
        row(&mut out, "Progress", p.clone());
    }
    let params = &wf.spec.arguments.parameters;
    if !params.is_empty() {
        out.push_str("Parameters:\n");
        for p in params {
            let _ = writeln!(
                out,
                "  {:<18} {}",
                format!("{}:", p.name),
                p.value_or_default().unwrap_or("")
            );
        }
    }
    if let Some(o) = &status.outputs {
        out.push_str("Outputs:\n");
        for p in &o.parameters {
            let _ = writeln!(
                out,
                "  {:<18} {}",
                format!("{}:", p.name),
                p.value_or_default().unwrap_or("")
            );
        }
    }
    let root = wf.metadata.name.clone().unwrap_or_default();
    let mut rows: Vec<[String; 5]> = Vec::new();
    if status.nodes.contains_key(&root) {
        tree(&status.nodes, &root, "", "", &mut rows);
    }
    let exit = format!("{root}.onExit");
    let exit_id = status.nodes.values().find(|n| n.name == exit).map(|n| n.id.clone());
    if let Some(id) = exit_id {
        tree(&status.nodes, &id, "", "", &mut rows);
    }
    if rows.is_empty() {
        return out;
    }
    out.push('\n');
    let header = [
        "STEP".to_string(),
        "TEMPLATE".into(),
        "PODNAME".into(),
        "DURATION".into(),
        "MESSAGE".into(),
    ];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i == 2 && !wide {
                continue;
            }
            if i < 4 {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            } else {
                line.push_str(cell);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    artifacts_table(&status.nodes, &mut out);
    out
}

/// The output artifacts of the nodes with their locations, for `argon get`.
fn artifacts_table(nodes: &BTreeMap<String, NodeStatus>, out: &mut String) {
    use std::fmt::Write as _;
    let mut rows: Vec<[String; 3]> = Vec::new();
    for n in nodes.values() {
        let Some(o) = &n.outputs else { continue };
        for a in &o.artifacts {
            let Some(s3) = &a.location.s3 else { continue };
            let key = s3.key.clone().unwrap_or_default();
            let mut location = match (&s3.bucket, &s3.endpoint) {
                (Some(b), Some(e)) => format!("s3://{b}/{key} ({e})"),
                (Some(b), None) => format!("s3://{b}/{key}"),
                _ => format!("local:{key}"),
            };
            if a.deleted == Some(true) {
                location.push_str(" [deleted]");
            }
            rows.push([
                n.display_name.clone().unwrap_or_else(|| n.name.clone()),
                a.name.clone(),
                location,
            ]);
        }
    }
    if rows.is_empty() {
        return;
    }
    rows.sort();
    let header = ["STEP".to_string(), "ARTIFACT".into(), "LOCATION".into()];
    let w: Vec<usize> = (0..2)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    out.push('\n');
    for r in std::iter::once(&header).chain(rows.iter()) {
        let _ = writeln!(out, "{:<w0$}  {:<w1$}  {}", r[0], r[1], r[2], w0 = w[0], w1 = w[1]);
    }
}

/// What the tree looks like without times: to tell when it changed.
fn render_shape(wf: &Workflow) -> String {
    let status = wf.status.clone().unwrap_or_default();
    let mut s = format!("{:?}", status.phase);
    for n in status.nodes.values() {
        s.push_str(&format!("{}{:?}{:?}", n.id, n.phase, n.message));
    }
    s
}

fn tree(nodes: &BTreeMap<String, NodeStatus>, id: &str, prefix: &str, child_prefix: &str, rows: &mut Vec<[String; 5]>) {
    let Some(n) = nodes.get(id) else { return };
    let children: Vec<&String> = n.children.iter().collect();
    let template = n
        .template_ref
        .as_ref()
        .map(|r| format!("{}/{}", r.name, r.template))
        .or_else(|| n.template_name.clone())
        .unwrap_or_default();
    let duration = if n.type_ == Some(NodeType::Pod) || n.type_ == Some(NodeType::Suspend) {
        span(
            n.started_at.as_ref().map(argon_engine::time::to_chrono),
            n.finished_at.as_ref().map(argon_engine::time::to_chrono),
        )
    } else {
        String::new()
    };
    let pod = if n.type_ == Some(NodeType::Pod) {
        n.id.clone()
    } else {
        String::new()
    };
    rows.push([
        format!(
            "{prefix}{} {}",
            symbol(n),
            n.display_name.clone().unwrap_or_else(|| n.name.clone())
        ),
        template,
        pod,
        duration,
        n.message.clone().unwrap_or_default(),
    ]);
    let mut visible: Vec<&String> = children.iter().copied().filter(|c| nodes.contains_key(*c)).collect();
    let groups_only = !visible.is_empty()
        && visible
            .iter()
            .all(|c| nodes.get(*c).is_some_and(|x| x.type_ == Some(NodeType::StepGroup)));
    if groups_only {
        // Steps: the steps of every group, in order, as this node's children (as `argo get` shows them).
        visible = visible
            .iter()
            .filter_map(|g| nodes.get(*g))
            .flat_map(|g| g.children.iter())
            .filter(|c| nodes.contains_key(*c))
            .collect();
    }
    for (i, c) in visible.iter().enumerate() {
        let last = i + 1 == visible.len();
        let (p, cp) = if last {
            (format!("{child_prefix}└─"), format!("{child_prefix}  "))
        } else {
            (format!("{child_prefix}├─"), format!("{child_prefix}│ "))
        };
        tree(nodes, c, &p, &cp, rows);
    }
}

fn render_list(list: &[Workflow], wide: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36} {:<10} {:<8} {:<9} {}",
        "NAME",
        "STATUS",
        "AGE",
        "DURATION",
        if wide { "NAMESPACE  MESSAGE" } else { "MESSAGE" }
    );
    let now = chrono::Utc::now();
    for w in list {
        let s = w.status.clone().unwrap_or_default();
        let age = w
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| human(now - argon_engine::time::to_chrono(t)))
            .unwrap_or_default();
        let duration = span(
            s.started_at.as_ref().map(argon_engine::time::to_chrono),
            s.finished_at.as_ref().map(argon_engine::time::to_chrono),
        );
        let mut msg = s.message.clone().unwrap_or_default();
        if wide {
            msg = format!("{:<10} {msg}", w.metadata.namespace.clone().unwrap_or_default());
        }
        let _ = writeln!(
            out,
            "{:<36} {:<10} {:<8} {:<9} {}",
            w.metadata.name.clone().unwrap_or_default(),
            s.phase.map(|p| format!("{p:?}")).unwrap_or_else(|| "Pending".into()),
            age,
            duration,
            msg
        )
        .map(|_| ());
    }
    out
}

/// Which artifacts `argon cp` copies.
struct CpFilter {
    node_id: Option<String>,
    template_name: Option<String>,
    artifact_name: Option<String>,
}

/// Downloads the output artifacts of `wf` that `filter` lets through under
/// `dir` (`argon cp`); returns how many.
async fn copy_artifacts(
    c: &HttpClient,
    wf: &Workflow,
    filter: &CpFilter,
    dir: &std::path::Path,
    pattern: &str,
) -> Result<usize> {
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let name = wf.metadata.name.clone().unwrap_or_default();
    let mut copied = 0;
    let Some(status) = &wf.status else { return Ok(0) };
    for (id, node) in &status.nodes {
        let template = node
            .template_name
            .clone()
            .or_else(|| node.template_ref.as_ref().map(|r| r.template.clone()))
            .unwrap_or_default();
        if filter.node_id.as_ref().is_some_and(|n| n != id)
            || filter.template_name.as_ref().is_some_and(|t| *t != template)
        {
            continue;
        }
        let Some(outputs) = &node.outputs else { continue };
        for a in &outputs.artifacts {
            let Some(key) = a.location.s3.as_ref().and_then(|s| s.key.clone()) else {
                continue;
            };
            if filter.artifact_name.as_ref().is_some_and(|n| *n != a.name) || a.deleted == Some(true) {
                continue;
            }
            let sub = pattern
                .replace("{namespace}", &namespace)
                .replace("{workflowName}", &name)
                .replace("{nodeId}", id)
                .replace("{templateName}", &template)
                .replace("{artifactName}", &a.name);
            let target_dir = dir.join(sub);
            tokio::fs::create_dir_all(&target_dir)
                .await
                .with_context(|| format!("cannot create {}", target_dir.display()))?;
            let file_name = key.rsplit('/').next().unwrap_or(&a.name).to_string();
            let target = target_dir.join(&file_name);
            let resp = c.artifact(&namespace, &name, id, &a.name, None).await?;
            if resp.headers().contains_key("x-argon-artifact-directory") {
                let listing = resp.text().await.context("reading the artifact's file list")?;
                for rel in listing.lines().filter(|l| !l.is_empty()) {
                    let resp = c.artifact(&namespace, &name, id, &a.name, Some(rel)).await?;
                    save_body(resp, &target.join(rel)).await?;
                }
            } else {
                save_body(resp, &target).await?;
            }
            eprintln!("Created {}", target.display());
            copied += 1;
        }
    }
    Ok(copied)
}

/// Writes a response's body to `path`, chunk by chunk.
async fn save_body(mut resp: reqwest::Response, path: &std::path::Path) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut f = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    while let Some(chunk) = resp.chunk().await.context("downloading the artifact")? {
        f.write_all(&chunk).await?;
    }
    f.flush().await?;
    Ok(())
}
