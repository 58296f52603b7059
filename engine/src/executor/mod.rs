//! The executor: runs one leaf step (a container or script template) and
//! reports how it ended, streaming its stdout and stderr line by line.
//!
//! One interface, [`Backend`], with one module per way of running a step:
//!
//! - [`container`]: a real container through the Docker Engine API, which
//!   Podman and Docker both serve on a Unix socket. Steps outlive the engine:
//!   containers are named and labelled after their workflow and node, and a
//!   restarted engine re-attaches to them.
//! - [`sandbox`]: a host process in a bubblewrap sandbox (read-only system,
//!   private /tmp, no network, an unprivileged uid), for machines without a
//!   container runtime.
//! - [`host`]: a bare host process, no isolation; only when asked for.
//! - [`kubernetes`]: a Pod per step on a Kubernetes cluster, with `argon
//!   emissary` in the pod to hand inputs in and outputs back.
//!
//! The operator builds a [`StepProcess`] and calls [`Executor::run`]; it does
//! not know which backend runs. [`ExecutorChoice::Auto`] picks a container
//! runtime when one answers, else the sandbox.

pub mod container;
pub mod host;
pub mod kubernetes;
mod lines;
mod process;
pub mod sandbox;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use argon_crds::secret::Secrets;
use k8s_openapi::api::core::v1::{Probe, Volume, VolumeMount};
use tokio_util::sync::CancellationToken;

pub use sandbox::Sandbox;

/// The most of a step's stdout kept as `outputs.result`.
pub const RESULT_LIMIT: usize = 256 * 1024;

/// Which executor the user asked for (`--executor`, `ARGON_EXECUTOR`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExecutorChoice {
    /// A container runtime when one answers on its socket, else the sandbox.
    #[default]
    Auto,
    /// Podman's Docker-compatible API.
    Podman,
    /// Docker's API.
    Docker,
    /// Bubblewrap on the host.
    Sandbox,
    /// Host processes without isolation.
    Host,
    /// A Pod per step on a Kubernetes cluster.
    Kubernetes,
}

impl ExecutorChoice {
    /// The names `--executor` takes.
    pub const NAMES: [&'static str; 6] = ["auto", "podman", "docker", "sandbox", "host", "kubernetes"];
}

impl std::str::FromStr for ExecutorChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "podman" => Ok(Self::Podman),
            "docker" => Ok(Self::Docker),
            "sandbox" => Ok(Self::Sandbox),
            "host" => Ok(Self::Host),
            "kubernetes" => Ok(Self::Kubernetes),
            other => Err(format!(
                "unknown executor '{other}': expected one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

impl std::fmt::Display for ExecutorChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Auto => "auto",
            Self::Podman => "podman",
            Self::Docker => "docker",
            Self::Sandbox => "sandbox",
            Self::Host => "host",
            Self::Kubernetes => "kubernetes",
        };
        f.write_str(name)
    }
}

/// Which executor runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorKind {
    /// Containers through Podman.
    Podman,
    /// Containers through Docker.
    Docker,
    /// Bubblewrap sandboxes.
    Sandbox,
    /// Bare host processes.
    Host,
    /// Pods on a Kubernetes cluster.
    Kubernetes,
}

impl ExecutorKind {
    /// Whether steps run in containers of a local runtime.
    pub fn is_container(self) -> bool {
        matches!(self, Self::Podman | Self::Docker)
    }
}

impl std::fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Podman => "podman",
            Self::Docker => "docker",
            Self::Sandbox => "sandbox",
            Self::Host => "host",
            Self::Kubernetes => "kubernetes",
        })
    }
}

/// How the executor is set up.
#[derive(Clone, Debug, Default)]
pub struct ExecutorSettings {
    /// Which executor to use.
    pub choice: ExecutorChoice,
    /// Host directories put in front of `PATH` for sandbox and host steps.
    pub extra_path: Vec<PathBuf>,
    /// Where `secret` and `configMap` volumes are read from.
    pub secrets: Secrets,
    /// Whether `hostPath` volumes may be mounted (`--allow-host-path`).
    pub allow_host_path: bool,
    /// The container runtime's socket (`unix:///PATH`), tried before
    /// `CONTAINER_HOST`, `DOCKER_HOST` and the default sockets.
    pub container_host: Option<String>,
    /// The cluster, namespace and callback of the kubernetes executor.
    pub kubernetes: Option<kubernetes::Settings>,
}

/// One container of a step, with its variables substituted and its
/// environment resolved.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    /// The container's name (`main` for the main container).
    pub name: String,
    /// The image; `None` for templates without one (sandbox and host only).
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`; `None` follows Kubernetes'
    /// default (`Always` for `:latest` or no tag, else `IfNotPresent`).
    pub pull_policy: Option<String>,
    /// The command; empty runs the image's entrypoint.
    pub command: Vec<String>,
    /// The arguments.
    pub args: Vec<String>,
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub working_dir: Option<String>,
    /// Memory limit in bytes.
    pub memory_limit: Option<u64>,
    /// CPU limit in billionths of a CPU.
    pub cpu_limit: Option<i64>,
    /// Run as this user id.
    pub run_as_user: Option<i64>,
    /// Run as this group id.
    pub run_as_group: Option<i64>,
    /// Refuse to run as root.
    pub run_as_non_root: bool,
    /// Mount the root filesystem read-only.
    pub read_only_root: bool,
    /// Volumes mounted into the container.
    pub volume_mounts: Vec<VolumeMount>,
    /// When a daemon step counts as ready (`exec`, `httpGet`, `tcpSocket`).
    pub readiness_probe: Option<Probe>,
}

impl ContainerSpec {
    /// The command line for a process backend: command, then args.
    pub fn argv(&self) -> Vec<String> {
        self.command.iter().chain(&self.args).cloned().collect()
    }
}

/// What to run for one step.
#[derive(Clone, Debug, Default)]
pub struct StepProcess {
    /// The main container.
    pub main: ContainerSpec,
    /// Containers run to completion, in order, before the main one.
    pub init_containers: Vec<ContainerSpec>,
    /// Containers run beside the main one and stopped when it ends.
    pub sidecars: Vec<ContainerSpec>,
    /// A `containerSet`: its containers with the names each waits for (the
    /// main container is the one named `main`, else the last). Empty for
    /// other templates.
    pub container_set: Vec<(ContainerSpec, Vec<String>)>,
    /// The volumes the containers mount.
    pub volumes: Vec<Volume>,
    /// The step's private directory under the state dir.
    pub step_dir: PathBuf,
    /// A script template's source (passed as a file after the command).
    pub script: Option<String>,
    /// Input files or directories (host location, path in the step).
    pub mounts: Vec<(PathBuf, String)>,
    /// Paths the step hands back (output parameters and artifacts).
    pub outputs: Vec<String>,
    /// Kill the step after this long.
    pub timeout: Option<Duration>,
    /// The template asked for the host's network (`hostNetwork: true`).
    pub host_network: bool,
    /// Who the step belongs to: labels on its containers.
    pub owner: StepOwner,
    /// The name later steps reach a daemon step by on the workflow's network.
    pub network_alias: Option<String>,
    /// The step was running when an engine stopped: its containers may
    /// exist, to re-attach to.
    pub resumed: bool,
    /// The template's pod as Kubernetes runs it (containers with their
    /// environment unresolved, scheduling); only for the kubernetes executor.
    pub pod: Option<Box<kubernetes::PodParts>>,
}

/// The workflow and node a step belongs to.
#[derive(Clone, Debug, Default)]
pub struct StepOwner {
    /// The workflow's uid.
    pub workflow_uid: String,
    /// The workflow's name.
    pub workflow_name: String,
    /// The workflow's namespace.
    pub namespace: String,
    /// The node's id.
    pub node_id: String,
}

/// How a step ended.
#[derive(Clone, Debug, Default)]
pub struct StepOutcome {
    /// The exit code; `None` when the step was killed or never started.
    pub exit_code: Option<i32>,
    /// Stdout, capped at [`RESULT_LIMIT`], without its final newline.
    pub result: String,
    /// The last line the step wrote to stderr.
    pub last_stderr: String,
    /// The step was killed because its timeout passed.
    pub timed_out: bool,
    /// The step was killed because the workflow was stopped.
    pub cancelled: bool,
    /// The step could not be started, and why.
    pub start_error: Option<String>,
    /// Why the step failed, when the executor knows better than its last
    /// stderr line (`OOMKilled`, a command missing on the host).
    pub reason: Option<String>,
    /// The step ended but its outputs could not be copied out, and why.
    pub output_error: Option<String>,
    /// The step was already running when the engine started (re-attached).
    pub reattached: bool,
}

impl StepOutcome {
    /// An outcome for a step that could not start.
    pub fn not_started(error: impl Into<String>) -> StepOutcome {
        StepOutcome {
            start_error: Some(error.into()),
            ..Default::default()
        }
    }
}

/// Receives a step's output lines: (stream, lines).
pub type LogSink = Arc<dyn Fn(&str, Vec<String>) + Send + Sync>;

/// A way of running steps.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Which executor this is.
    fn kind(&self) -> ExecutorKind;

    /// One line for the start-up message: what runs the steps, and where.
    fn describe(&self) -> String;

    /// Where the engine finds the file a finished step wrote at `path`.
    fn host_path(&self, step_dir: &Path, path: &str) -> PathBuf;

    /// Where to put an input the step must see at `path`: the host location,
    /// and the path it is mounted at (`Some`) when it must be mounted.
    fn input_place(&self, step_dir: &Path, path: &str, index: usize) -> Result<(PathBuf, Option<String>), String>;

    /// Prepares the step directory for the paths the step uses.
    fn prepare_paths(&self, step_dir: &Path, paths: &[String]) -> std::io::Result<()>;

    /// Runs the step to its end (or re-attaches to it when it already runs).
    async fn run(&self, step: StepProcess, logs: LogSink, cancel: CancellationToken) -> StepOutcome;

    /// Whether a step goes on when the engine stops, for a restarted engine
    /// to re-attach to (`run` again finds it); else it dies with the engine.
    fn steps_outlive_engine(&self) -> bool {
        false
    }

    /// Whether this backend runs `daemon: true` steps.
    fn runs_daemons(&self) -> bool {
        false
    }

    /// Whether steps need the template's pod ([`StepProcess::pod`]), their
    /// environment left for the cluster to resolve.
    fn runs_pods(&self) -> bool {
        false
    }

    /// Routes the steps themselves call on the engine's API (outside its
    /// Bearer-token check: each carries a step's own token).
    fn step_routes(&self) -> Option<axum::Router> {
        None
    }

    /// Starts a daemon step (or re-attaches to it when it already runs),
    /// streams its logs, and returns its address on the workflow's network
    /// once it is ready (its readiness probe passed); the outcome when it
    /// could not start or ended before it was ready.
    async fn start_daemon(
        &self,
        _step: &StepProcess,
        _logs: LogSink,
        _cancel: CancellationToken,
    ) -> Result<String, StepOutcome> {
        Err(StepOutcome::not_started(DAEMON_NEEDS_CONTAINERS))
    }

    /// Stops a daemon step at the end of its scope and removes it. The
    /// outcome has an exit code only when the daemon ended by itself before.
    async fn stop_daemon(&self, _step: &StepProcess) -> StepOutcome {
        StepOutcome::default()
    }

    /// Releases what the workflow's steps shared (its network, daemons
    /// left behind, pods kept for `podGC`), once it ended.
    async fn workflow_finished(&self, _workflow_uid: &str, _succeeded: bool) {}
}

/// Why a daemon step cannot run on a process executor.
pub const DAEMON_NEEDS_CONTAINERS: &str = "daemon steps need a container executor (--executor podman or docker): a sandbox step has no network \
     address for later steps to reach";

/// Runs steps with the backend chosen at start.
pub struct Executor {
    backend: Box<dyn Backend>,
}

impl Executor {
    /// The executor the settings ask for. `Auto` tries the container
    /// runtimes' sockets, then bubblewrap; it never falls back to the host.
    pub fn new(settings: ExecutorSettings) -> Result<Executor, String> {
        let backend: Box<dyn Backend> = match settings.choice {
            ExecutorChoice::Host => Box::new(host::Host::new(settings.extra_path)),
            ExecutorChoice::Sandbox => Box::new(sandbox::SandboxBackend::new(
                Sandbox::detect().ok_or_else(sandbox_missing)?,
                &settings,
            )),
            ExecutorChoice::Kubernetes => {
                Box::new(kubernetes::KubernetesBackend::new(settings.kubernetes.clone().ok_or(
                    "--executor kubernetes needs a cluster (in-cluster config or a kubeconfig)",
                )?)?)
            }
            ExecutorChoice::Podman | ExecutorChoice::Docker => {
                Box::new(container::ContainerBackend::connect(settings.choice, &settings)?)
            }
            ExecutorChoice::Auto => match container::ContainerBackend::connect(ExecutorChoice::Auto, &settings) {
                Ok(c) => Box::new(c),
                Err(runtime) => match Sandbox::detect() {
                    Some(s) => Box::new(sandbox::SandboxBackend::new(s, &settings)),
                    None => {
                        return Err(format!(
                            "no way to isolate steps: {runtime}, and {}; pass --executor host to run steps as \
                             plain host processes without isolation",
                            sandbox_missing()
                        ));
                    }
                },
            },
        };
        Ok(Executor { backend })
    }

    /// An executor over a given backend.
    pub fn with_backend(backend: Box<dyn Backend>) -> Executor {
        Executor { backend }
    }

    /// Which executor runs.
    pub fn kind(&self) -> ExecutorKind {
        self.backend.kind()
    }

    /// What runs the steps, for the start-up message.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Where the engine finds the file a finished step wrote at `path`.
    pub fn host_path(&self, step_dir: &Path, path: &str) -> PathBuf {
        self.backend.host_path(step_dir, path)
    }

    /// Where to put an input artifact the step must see at `path`.
    pub fn input_place(&self, step_dir: &Path, path: &str, index: usize) -> Result<(PathBuf, Option<String>), String> {
        self.backend.input_place(step_dir, path, index)
    }

    /// Prepares the step directory for the paths the step uses.
    pub fn prepare_paths(&self, step_dir: &Path, paths: &[String]) -> std::io::Result<()> {
        std::fs::create_dir_all(step_dir.join("tmp"))?;
        self.backend.prepare_paths(step_dir, paths)
    }

    /// Runs the step to its end, streaming its output lines to `logs`.
    pub async fn run(&self, step: StepProcess, logs: LogSink, cancel: CancellationToken) -> StepOutcome {
        self.backend.run(step, logs, cancel).await
    }

    /// Whether steps go on when the engine stops (see [`Backend::steps_outlive_engine`]).
    pub fn steps_outlive_engine(&self) -> bool {
        self.backend.steps_outlive_engine()
    }

    /// Whether `daemon: true` steps can run.
    pub fn runs_daemons(&self) -> bool {
        self.backend.runs_daemons()
    }

    /// Whether steps need the template's pod (see [`Backend::runs_pods`]).
    pub fn runs_pods(&self) -> bool {
        self.backend.runs_pods()
    }

    /// The routes steps call (see [`Backend::step_routes`]).
    pub fn step_routes(&self) -> Option<axum::Router> {
        self.backend.step_routes()
    }

    /// Starts a daemon step (see [`Backend::start_daemon`]).
    pub async fn start_daemon(
        &self,
        step: &StepProcess,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> Result<String, StepOutcome> {
        self.backend.start_daemon(step, logs, cancel).await
    }

    /// Stops a daemon step (see [`Backend::stop_daemon`]).
    pub async fn stop_daemon(&self, step: &StepProcess) -> StepOutcome {
        self.backend.stop_daemon(step).await
    }

    /// Releases what a finished workflow's steps shared.
    pub async fn workflow_finished(&self, workflow_uid: &str, succeeded: bool) {
        self.backend.workflow_finished(workflow_uid, succeeded).await
    }
}

fn sandbox_missing() -> String {
    "bubblewrap (bwrap) is not installed or cannot create a sandbox here (install the bubblewrap package)".to_string()
}

/// The message of a step whose command is not on this machine.
pub fn not_found_message(program: &str, image: Option<&str>) -> String {
    match image {
        Some(image) if !image.is_empty() => {
            format!("{program}: not found; image {image} is not run by the sandbox or host executor")
        }
        _ => format!("{program}: not found"),
    }
}

/// A short, stable hash of a node id (FNV-1a), for names of what runs it.
pub(crate) fn node_hash(node_id: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in node_id.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// Where the engine finds a file a step wrote at `path`, for executors that
/// copy the step's outputs out into its folder (containers, pods).
pub(crate) fn copied_output(step_dir: &Path, path: &str) -> PathBuf {
    step_dir.join("fs").join(relative(path))
}

/// Where an input goes for executors that copy it into the step: its own
/// folder under the step's, mounted (copied) at `path`.
pub(crate) fn copied_input(step_dir: &Path, path: &str, index: usize) -> (PathBuf, Option<String>) {
    (step_dir.join("inputs").join(index.to_string()), Some(path.to_string()))
}

/// `path` without its leading `/`, with `.` and `..` resolved lexically.
pub(crate) fn relative(path: &str) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}
