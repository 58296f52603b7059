//! The container executor (`--executor podman|docker`): every step is a
//! container, run through the Docker Engine API that Podman and Docker both
//! serve on a Unix socket, with `bollard` as the client.
//!
//! A step's pod becomes: its init containers, run one after the other to
//! completion; its sidecars, started first, the first one owning the pod's
//! network namespace (so the containers reach each other on `localhost`, as
//! in a pod); and the main container. Every container is on the workflow's
//! own network (`argon-<workflow uid>`), not the host's, so a step cannot
//! reach the engine's loopback listeners; `hostNetwork: true` opts into the
//! host network. Inputs (artifacts, the script) are copied in before the
//! main container starts, outputs copied out after it ends, through the
//! archive endpoints.
//!
//! Containers are named after their workflow uid and node id and labelled
//! with them, and removed only once their outcome is collected: an engine
//! that restarts finds a step's container still running or finished and
//! re-attaches to it (logs from the start, exit code, outputs), so a step
//! outlives the engine.
//!
//! Longer than most files: the pod's life cycle (image, create, start,
//! follow, re-attach, clean-up), whose steps share the runtime client and its
//! bookkeeping; what crosses the boundary, volumes, containerSets and daemons
//! are in files of their own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptions,
    WaitContainerOptions,
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

mod daemon;
pub(in crate::executor) mod files;
mod set;
mod volumes;

use super::lines::Lines;
use super::{
    Backend, ContainerSpec, ExecutorChoice, ExecutorKind, ExecutorSettings, LogSink, StepOutcome, StepOwner,
    StepProcess,
};
use argon_crds::secret::Secrets;

/// The label holding the workflow's uid.
pub const WORKFLOW_LABEL: &str = "argon.workflow.uid";
/// The label holding the node's id.
pub const NODE_LABEL: &str = "argon.node.id";
/// The label holding the workflow's name.
pub const WORKFLOW_NAME_LABEL: &str = "argon.workflow.name";

/// How long a pull may take before the step fails.
const PULL_TIMEOUT: Duration = Duration::from_secs(300);

/// The most bytes of output files copied out of one step (they go through
/// a file on disk, not memory).
pub(in crate::executor) const OUTPUT_LIMIT: usize = 16 << 30;

/// Where a script's source is placed in the container.
const SCRIPT_PATH: &str = "/argo/staging/script";

/// Runs steps as containers.
pub struct ContainerBackend {
    docker: Docker,
    kind: ExecutorKind,
    socket: String,
    version: String,
    secrets: Secrets,
    allow_host_path: bool,
    networks: Mutex<std::collections::HashSet<String>>,
    /// Removals of finished steps' containers still going on, by workflow uid.
    removals: Mutex<HashMap<String, Vec<tokio::task::JoinHandle<()>>>>,
    /// Images seen present, whose `IfNotPresent` steps need not ask again.
    present_images: Mutex<std::collections::HashSet<String>>,
    /// The log streams of running daemon steps, by container name.
    daemon_logs: Mutex<HashMap<String, tokio::task::JoinHandle<LogsEnd>>>,
    /// The client of daemons' `httpGet` readiness probes, made at the first
    /// probe (the engine installs the TLS provider after the executor).
    http: std::sync::OnceLock<reqwest::Client>,
}

/// The sockets tried for a runtime: the environment's first, then the
/// default places of Podman (rootless, then system) and Docker.
fn candidates(choice: ExecutorChoice, explicit: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = explicit.map(str::to_string).into_iter().collect();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let podman = || {
        let mut v = Vec::new();
        if let Some(run) = env("XDG_RUNTIME_DIR") {
            v.push(format!("unix://{run}/podman/podman.sock"));
        }
        v.push("unix:///run/podman/podman.sock".to_string());
        v
    };
    match choice {
        ExecutorChoice::Podman => {
            out.extend(env("CONTAINER_HOST"));
            out.extend(env("DOCKER_HOST"));
            out.extend(podman());
        }
        ExecutorChoice::Docker => {
            out.extend(env("DOCKER_HOST"));
            out.push("unix:///var/run/docker.sock".to_string());
        }
        _ => {
            out.extend(env("CONTAINER_HOST"));
            out.extend(env("DOCKER_HOST"));
            out.extend(podman());
            out.push("unix:///var/run/docker.sock".to_string());
        }
    }
    out.dedup();
    out
}

impl ContainerBackend {
    /// Connects to the runtime `choice` names (`Auto`: the first that
    /// answers), checking that it answers.
    pub fn connect(choice: ExecutorChoice, settings: &ExecutorSettings) -> Result<ContainerBackend, String> {
        let mut tried = Vec::new();
        for socket in candidates(choice, settings.container_host.as_deref()) {
            let Some(path) = socket.strip_prefix("unix://") else {
                tried.push(format!("{socket}: only unix:// sockets are supported"));
                continue;
            };
            if !Path::new(path).exists() {
                tried.push(format!("{socket}: no such socket"));
                continue;
            }
            let docker = Docker::connect_with_unix(&socket, 600, bollard::API_DEFAULT_VERSION)
                .map_err(|e| format!("{socket}: {e}"))?;
            match probe(&docker) {
                Ok((is_podman, version)) => {
                    let kind = if is_podman {
                        ExecutorKind::Podman
                    } else {
                        ExecutorKind::Docker
                    };
                    if choice == ExecutorChoice::Docker && is_podman {
                        tracing::info!("{socket} is served by Podman; using it as the docker executor");
                    }
                    return Ok(ContainerBackend {
                        docker,
                        kind: if choice == ExecutorChoice::Podman {
                            ExecutorKind::Podman
                        } else {
                            kind
                        },
                        socket,
                        version,
                        secrets: settings.secrets.clone(),
                        allow_host_path: settings.allow_host_path,
                        networks: Mutex::new(Default::default()),
                        present_images: Mutex::new(Default::default()),
                        removals: Mutex::new(HashMap::new()),
                        daemon_logs: Mutex::new(HashMap::new()),
                        http: std::sync::OnceLock::new(),
                    });
                }
                Err(e) => tried.push(format!("{socket}: {e}")),
            }
        }
        let hint = match choice {
            ExecutorChoice::Docker => "start Docker or set DOCKER_HOST=unix:///PATH",
            _ => {
                "start one with `podman system service --time=0 unix:///run/podman/podman.sock` or set \
                  CONTAINER_HOST=unix:///PATH"
            }
        };
        Err(format!("no container runtime answered ({}); {hint}", tried.join("; ")))
    }

    fn container_name(owner: &StepOwner, role: &str) -> String {
        let h = super::node_hash(&owner.node_id);
        format!("argon-{}-{h:08x}-{role}", owner.workflow_uid)
    }

    fn labels(owner: &StepOwner, role: &str) -> HashMap<String, String> {
        HashMap::from([
            (WORKFLOW_LABEL.to_string(), owner.workflow_uid.clone()),
            (NODE_LABEL.to_string(), owner.node_id.clone()),
            (WORKFLOW_NAME_LABEL.to_string(), owner.workflow_name.clone()),
            ("argon.container".to_string(), role.to_string()),
        ])
    }

    /// The workflow's network, created the first time a step needs it.
    async fn network(&self, owner: &StepOwner) -> Result<String, String> {
        let name = format!("argon-{}", owner.workflow_uid);
        if self.networks.lock().expect("network set").contains(&name) {
            return Ok(name);
        }
        let req = NetworkCreateRequest {
            name: name.clone(),
            labels: Some(HashMap::from([(
                WORKFLOW_LABEL.to_string(),
                owner.workflow_uid.clone(),
            )])),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => {}
            Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => {}
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => {
                return Err(format!(
                    "cannot create the workflow's network {name}: {}",
                    runtime_message(&e)
                ));
            }
        }
        self.networks.lock().expect("network set").insert(name.clone());
        Ok(name)
    }

    /// Makes sure the image is there, following the pull policy.
    async fn ensure_image(&self, spec: &ContainerSpec, logs: &LogSink) -> Result<(), String> {
        let Some(image) = &spec.image else {
            return Err(format!("container '{}' has no image", spec.name));
        };
        let known = self.present_images.lock().expect("image set").contains(image);
        let present = known || self.docker.inspect_image(image).await.is_ok();
        let policy = spec.pull_policy.clone().unwrap_or_else(|| {
            let tagged = image
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':') || last.contains('@'));
            if !tagged || image.ends_with(":latest") {
                "Always"
            } else {
                "IfNotPresent"
            }
            .to_string()
        });
        match policy.as_str() {
            "Never" if present => return Ok(()),
            "Never" => {
                return Err(format!(
                    "image {image} is not present and imagePullPolicy is Never (ErrImageNeverPull)"
                ));
            }
            "IfNotPresent" if present => {
                self.present_images.lock().expect("image set").insert(image.clone());
                return Ok(());
            }
            "Always" | "IfNotPresent" => {}
            other => {
                return Err(format!(
                    "imagePullPolicy {other}: expected Always, IfNotPresent or Never"
                ));
            }
        }
        let options = CreateImageOptionsBuilder::default().from_image(image).build();
        let pull = async {
            let mut stream = self.docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                item.map_err(|e| runtime_message(&e))?;
            }
            Ok::<(), String>(())
        };
        let result = match tokio::time::timeout(PULL_TIMEOUT, pull).await {
            Ok(r) => r,
            Err(_) => Err(format!("the pull took longer than {}s", PULL_TIMEOUT.as_secs())),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if present => {
                logs(
                    "stderr",
                    vec![format!("argon: pulling {image} failed ({e}); using the local copy")],
                );
                Ok(())
            }
            Err(e) => Err(format!("cannot pull image {image} (ErrImagePull): {e}")),
        }
    }

    /// Creates a container of the pod (not started).
    async fn create(
        &self,
        name: &str,
        role: &str,
        spec: &ContainerSpec,
        step: &StepProcess,
        network: &str,
        extra_cmd: Option<&str>,
    ) -> Result<(), String> {
        let mut cmd = spec.args.clone();
        if let Some(script) = extra_cmd {
            cmd.insert(0, script.to_string());
        }
        let user = spec.run_as_user.map(|u| match spec.run_as_group {
            Some(g) => format!("{u}:{g}"),
            None => u.to_string(),
        });
        if spec.run_as_non_root && spec.run_as_user.is_none() {
            let image = spec.image.clone().unwrap_or_default();
            let image_user = self
                .docker
                .inspect_image(&image)
                .await
                .ok()
                .and_then(|i| i.config)
                .and_then(|c| c.user)
                .unwrap_or_default();
            let uid = image_user.split(':').next().unwrap_or("");
            if uid.is_empty() || uid == "0" || uid == "root" {
                return Err(format!(
                    "container '{}' has runAsNonRoot and image {image} will run as root \
                     (CreateContainerConfigError)",
                    spec.name
                ));
            }
        }
        let host_config = HostConfig {
            memory: spec.memory_limit.map(|b| b as i64),
            nano_cpus: spec.cpu_limit,
            readonly_rootfs: Some(spec.read_only_root),
            mounts: Some(self.mounts(spec, &step.volumes, &step.owner)?),
            network_mode: Some(network.to_string()),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            init: Some(false),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: spec.image.clone(),
            entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
            cmd: (!cmd.is_empty()).then_some(cmd),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: spec.working_dir.clone(),
            user,
            labels: Some(Self::labels(&step.owner, role)),
            host_config: Some(host_config),
            ..Default::default()
        };
        // A daemon is reachable by its step's name on the workflow's network,
        // through the container that owns the pod's network namespace.
        let owns_netns = role == "sidecar-0" || (role == "main" && step.sidecars.is_empty());
        let body = match &step.network_alias {
            Some(alias) if owns_netns && network != "host" && !network.starts_with("container:") => {
                ContainerCreateBody {
                    networking_config: Some(NetworkingConfig {
                        endpoints_config: Some(HashMap::from([(
                            network.to_string(),
                            EndpointSettings {
                                aliases: Some(vec![alias.clone()]),
                                ..Default::default()
                            },
                        )])),
                    }),
                    ..body
                }
            }
            _ => body,
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| format!("cannot create container '{}': {}", spec.name, runtime_message(&e)))?;
        Ok(())
    }

    /// Runs a container to its end (it may already be running), streaming
    /// its logs: (outcome, started at).
    async fn follow(
        &self,
        name: &str,
        timeout: Option<Duration>,
        logs: LogSink,
        cancel: &CancellationToken,
    ) -> StepOutcome {
        let mut outcome = StepOutcome::default();
        // Only a deadline needs the start time (a re-attached step's counts
        // from its start, not from now).
        let started = match timeout {
            Some(_) => self.inspect(name).await.ok(),
            None => None,
        };
        let started = started
            .and_then(|c| c.state)
            .and_then(|s| s.started_at)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
        // A re-attached step's deadline counts from its start, not from now.
        let remaining = timeout.map(|t| {
            let ran = started
                .map(|s| {
                    (chrono::Utc::now() - s.with_timezone(&chrono::Utc))
                        .to_std()
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            t.saturating_sub(ran)
        });
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        let sink = logs.clone();
        let log_task = stream_logs(self.docker.clone(), name, logs, Some(ended_tx), true);
        let deadline = async {
            match remaining {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        // The log stream ends when the container does, often well before
        // the runtime's wait answers (Podman's compatible wait polls its
        // state): once the stream has ended, the state is asked directly,
        // and the runtime's wait decides when the stream ended early.
        let wait = async {
            let waited = async {
                let mut s = self.docker.wait_container(name, None::<WaitContainerOptions>);
                while s.next().await.is_some() {}
            };
            tokio::pin!(waited);
            tokio::select! {
                _ = &mut waited => return,
                _ = ended => {}
            }
            for _ in 0..50 {
                if self
                    .inspect(name)
                    .await
                    .is_ok_and(|c| c.state.and_then(|s| s.running) != Some(true))
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            waited.await
        };
        tokio::select! {
            _ = wait => {}
            _ = deadline => {
                outcome.timed_out = true;
                self.kill(name).await;
            }
            _ = cancel.cancelled() => {
                outcome.cancelled = true;
                self.kill(name).await;
            }
        }
        // The wait may return before the runtime records the exit: ask until it has.
        let mut state = None;
        for _ in 0..100 {
            match self.inspect(name).await {
                Ok(c) => {
                    let s = c.state.unwrap_or_default();
                    if s.running == Some(true) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    state = Some(s);
                }
                Err(e) => outcome.start_error = Some(format!("the container vanished: {}", runtime_message(&e))),
            }
            break;
        }
        let mut ended: LogsEnd = match tokio::time::timeout(Duration::from_secs(10), log_task).await {
            Ok(Ok(r)) => r,
            _ => Default::default(),
        };
        // A follow asked for just before a quick container ended can get an
        // empty stream from Podman (its log file not written yet): the
        // finished container's logs are read again, whole.
        if ended.0.0.is_empty() && ended.1.0.is_empty() && (state.is_some() || outcome.timed_out) {
            let again = stream_logs(self.docker.clone(), name, sink.clone(), None, false);
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(10), again).await {
                ended = r;
            }
        }
        let ((result, _), (_, last_err)) = ended;
        outcome.result = result;
        outcome.last_stderr = last_err;
        if let Some(s) = state
            && !outcome.timed_out
            && !outcome.cancelled
        {
            outcome.exit_code = s.exit_code.map(|c| c as i32);
            if s.oom_killed == Some(true) {
                outcome.reason = Some("OOMKilled".to_string());
            }
        }
        outcome
    }

    /// Inspects a container. Podman reports a state Docker's API does not
    /// have (`stopped`) for a moment while a container ends, which the
    /// client cannot read: asked again until the state settles.
    async fn inspect(&self, name: &str) -> Result<bollard::models::ContainerInspectResponse, DockerError> {
        let mut tries = 0;
        loop {
            match self.docker.inspect_container(name, None).await {
                Err(DockerError::JsonDataError { .. } | DockerError::JsonSerdeError { .. }) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    async fn kill(&self, name: &str) {
        let options = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
        let _ = self.docker.kill_container(name, Some(options)).await;
    }

    async fn remove(&self, name: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let _ = self.docker.remove_container(name, Some(options)).await;
    }

    /// Removes every container and volume of the step.
    async fn clean_up(&self, step: &StepProcess) {
        let (containers, volumes) = Self::step_parts(step);
        remove_all(&self.docker, containers, volumes).await;
    }

    /// Removes the step's containers and volumes in the background, so the
    /// step's outcome is recorded without waiting on the runtime;
    /// [`Backend::workflow_finished`] waits for these removals.
    fn clean_up_later(&self, step: &StepProcess) {
        let (containers, volumes) = Self::step_parts(step);
        let docker = self.docker.clone();
        let task = tokio::spawn(async move { remove_all(&docker, containers, volumes).await });
        let mut removals = self.removals.lock().expect("removals");
        let list = removals.entry(step.owner.workflow_uid.clone()).or_default();
        list.retain(|t| !t.is_finished());
        list.push(task);
    }

    /// The names of a step's containers and of its `emptyDir` volumes.
    fn step_parts(step: &StepProcess) -> (Vec<String>, Vec<String>) {
        let mut roles = vec!["main".to_string()];
        roles.extend((0..step.sidecars.len()).map(|i| format!("sidecar-{i}")));
        roles.extend((0..step.init_containers.len()).map(|i| format!("init-{i}")));
        roles.extend(step.container_set.iter().map(|(c, _)| format!("set-{}", c.name)));
        let containers = roles.iter().map(|r| Self::container_name(&step.owner, r)).collect();
        let volumes = step
            .volumes
            .iter()
            .filter(|v| v.empty_dir.is_some())
            .map(|v| volume_name(&step.owner, &v.name))
            .collect();
        (containers, volumes)
    }

    /// The state of the main container when it exists: `Some(true)` when it
    /// was started (re-attach), `Some(false)` when only created.
    async fn existing(&self, name: &str) -> Result<Option<bool>, String> {
        match self.inspect(name).await {
            Ok(c) => {
                let status = c.state.and_then(|s| s.status);
                Ok(Some(!matches!(status, Some(ContainerStateStatusEnum::CREATED) | None)))
            }
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(format!("the container runtime failed: {}", runtime_message(&e))),
        }
    }

    /// Creates and runs the pod of a step up to the start of its main container.
    async fn start_pod(
        &self,
        step: &StepProcess,
        logs: &LogSink,
        cancel: &CancellationToken,
    ) -> Result<(), StepOutcome> {
        let fail = |e: String| StepOutcome::not_started(e);
        let network = if step.host_network {
            "host".to_string()
        } else {
            self.network(&step.owner).await.map_err(fail)?
        };
        for spec in step.init_containers.iter().chain(&step.sidecars).chain([&step.main]) {
            self.ensure_image(spec, logs).await.map_err(fail)?;
        }
        for (i, spec) in step.init_containers.iter().enumerate() {
            let name = Self::container_name(&step.owner, &format!("init-{i}"));
            self.remove(&name).await;
            self.create(&name, &format!("init-{i}"), spec, step, &network, None)
                .await
                .map_err(fail)?;
            self.docker.start_container(&name, None).await.map_err(|e| {
                fail(format!(
                    "cannot start init container '{}': {}",
                    spec.name,
                    runtime_message(&e)
                ))
            })?;
            let out = self.follow(&name, step.timeout, logs.clone(), cancel).await;
            self.remove(&name).await;
            if out.cancelled || out.timed_out {
                return Err(out);
            }
            if out.exit_code != Some(0) {
                let mut failed = StepOutcome::not_started(format!(
                    "init container '{}' failed (exit code {}){}",
                    spec.name,
                    out.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "none".into()),
                    if out.last_stderr.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", out.last_stderr)
                    }
                ));
                failed.exit_code = None;
                return Err(failed);
            }
        }
        // The first sidecar owns the pod's network namespace; the others and the main container join it.
        let mut pod_network = network.clone();
        for (i, spec) in step.sidecars.iter().enumerate() {
            let name = Self::container_name(&step.owner, &format!("sidecar-{i}"));
            self.remove(&name).await;
            self.create(&name, &format!("sidecar-{i}"), spec, step, &pod_network, None)
                .await
                .map_err(fail)?;
            self.docker
                .start_container(&name, None)
                .await
                .map_err(|e| fail(format!("cannot start sidecar '{}': {}", spec.name, runtime_message(&e))))?;
            if i == 0 && network != "host" {
                pod_network = format!("container:{name}");
            }
        }
        let main = Self::container_name(&step.owner, "main");
        self.create(
            &main,
            "main",
            &step.main,
            step,
            &pod_network,
            step.script.as_ref().map(|_| SCRIPT_PATH),
        )
        .await
        .map_err(fail)?;
        self.upload_inputs(&main, step).await.map_err(fail)?;
        self.docker
            .start_container(&main, None)
            .await
            .map_err(|e| fail(format!("cannot start the container: {}", runtime_message(&e))))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Backend for ContainerBackend {
    fn kind(&self) -> ExecutorKind {
        self.kind
    }

    fn describe(&self) -> String {
        format!(
            "steps run in {} containers ({} {}, {}); each workflow has its own network",
            self.kind, self.kind, self.version, self.socket
        )
    }

    fn host_path(&self, step_dir: &Path, path: &str) -> PathBuf {
        super::copied_output(step_dir, path)
    }

    fn input_place(&self, step_dir: &Path, path: &str, index: usize) -> Result<(PathBuf, Option<String>), String> {
        Ok(super::copied_input(step_dir, path, index))
    }

    fn prepare_paths(&self, _step_dir: &Path, _paths: &[String]) -> std::io::Result<()> {
        Ok(())
    }

    fn steps_outlive_engine(&self) -> bool {
        true
    }

    fn runs_daemons(&self) -> bool {
        true
    }

    async fn start_daemon(
        &self,
        step: &StepProcess,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> Result<String, StepOutcome> {
        self.start_daemon_pod(step, logs, cancel).await
    }

    async fn stop_daemon(&self, step: &StepProcess) -> StepOutcome {
        self.stop_daemon_pod(step).await
    }

    async fn workflow_finished(&self, uid: &str, _succeeded: bool) {
        let pending = self.removals.lock().expect("removals").remove(uid).unwrap_or_default();
        for task in pending {
            let _ = task.await;
        }
        // Containers a step left behind: daemons of a scope that ended in an
        // error, steps of a workflow stopped while the engine was down.
        let filters = HashMap::from([("label".to_string(), vec![format!("{WORKFLOW_LABEL}={uid}")])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        if let Ok(list) = self.docker.list_containers(Some(options)).await {
            for c in list {
                if let Some(id) = c.id {
                    self.remove(&id).await;
                }
            }
        }
        let name = format!("argon-{uid}");
        // Also when this engine did not create it (a restart re-attached its steps).
        self.networks.lock().expect("network set").remove(&name);
        let _ = self.docker.remove_network(&name).await;
    }

    async fn run(&self, step: StepProcess, logs: LogSink, cancel: CancellationToken) -> StepOutcome {
        if !step.container_set.is_empty() {
            let outcome = self.run_set(&step, &logs, &cancel).await;
            self.clean_up(&step).await;
            return outcome;
        }
        if step.main.image.is_none() {
            return StepOutcome::not_started("the container has no image");
        }
        let main = Self::container_name(&step.owner, "main");
        // Only a step an engine left running can have containers already.
        let reattached = match step.resumed {
            false => false,
            true => match self.existing(&main).await {
                Ok(Some(true)) => true,
                Ok(Some(false)) => {
                    // Created by an engine that stopped before starting it: start over.
                    self.clean_up(&step).await;
                    false
                }
                Ok(None) => false,
                Err(e) => return StepOutcome::not_started(e),
            },
        };
        if !reattached && let Err(out) = self.start_pod(&step, &logs, &cancel).await {
            self.clean_up(&step).await;
            return out;
        }
        let mut outcome = self.follow(&main, step.timeout, logs, &cancel).await;
        outcome.reattached = reattached;
        if outcome.exit_code.is_some()
            && let Err(e) = self.download_outputs(&main, &step).await
        {
            outcome.output_error = Some(e);
        }
        self.clean_up_later(&step);
        outcome
    }
}

/// Removes containers (with their anonymous volumes) and named volumes,
/// whether they exist or not.
async fn remove_all(docker: &Docker, containers: Vec<String>, volumes: Vec<String>) {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    for name in containers {
        let _ = docker.remove_container(&name, Some(options.clone())).await;
    }
    for volume in volumes {
        let _ = docker.remove_volume(&volume, None::<RemoveVolumeOptions>).await;
    }
}

/// What a container's log stream ends with: (stdout capped as the
/// result, its last line), (stderr in full, its last line).
type LogsEnd = ((String, String), (String, String));

/// Streams a container's logs from its start into `logs` until it ends.
/// `ended` hears when the stream has ended; `follow: false` reads what the
/// container wrote so far and stops.
fn stream_logs(
    docker: Docker,
    name: &str,
    logs: LogSink,
    ended: Option<tokio::sync::oneshot::Sender<()>>,
    follow: bool,
) -> tokio::task::JoinHandle<LogsEnd> {
    let name = name.to_string();
    tokio::spawn(async move {
        let options = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .build();
        let mut out = Lines::new("stdout", logs.clone(), true);
        let mut err = Lines::new("stderr", logs, false);
        let mut stream = docker.logs(&name, Some(options));
        while let Some(item) = stream.next().await {
            match item {
                Ok(bollard::container::LogOutput::StdOut { message }) => out.feed(&message),
                Ok(bollard::container::LogOutput::StdErr { message }) => err.feed(&message),
                Ok(bollard::container::LogOutput::Console { message }) => out.feed(&message),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if let Some(ended) = ended {
            let _ = ended.send(());
        }
        (out.finish(), err.finish())
    })
}

fn volume_name(owner: &StepOwner, volume: &str) -> String {
    let base = ContainerBackend::container_name(owner, "vol");
    format!("{base}-{volume}")
}

/// What the runtime said, without the client's wrapping.
fn runtime_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Asks the runtime for its version: (is Podman, version).
fn probe(docker: &Docker) -> Result<(bool, String), String> {
    let docker = docker.clone();
    // A thread with its own runtime: the engine opens from sync code, inside
    // or outside a runtime.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let v = tokio::time::timeout(Duration::from_secs(3), docker.version())
                .await
                .map_err(|_| "no answer within 3 s".to_string())?
                .map_err(|e| runtime_message(&e))?;
            let podman = v
                .components
                .iter()
                .flatten()
                .any(|c| c.name.to_ascii_lowercase().contains("podman"));
            Ok((podman, v.version.unwrap_or_default()))
        })
    })
    .join()
    .map_err(|_| "the probe panicked".to_string())?
}
