//! The kubernetes executor (`--executor kubernetes`): every step is a Pod
//! on the cluster, built from the template ([`pod`]), with Argon's
//! emissary inside it to hand the inputs in and the outcome and outputs
//! back through the engine's API ([`emissary`], [`transfer`]).
//!
//! One watch over the engine's step pods (label
//! `app.kubernetes.io/managed-by=argon-engine`) keeps their latest state;
//! each running step waits on it, and also asks for its pod now and then,
//! so a watch that breaks off delays nothing for long. Logs stream from
//! the pod log API. Pods are named after their workflow and node: an engine
//! that restarts finds a step's pod still running or finished and
//! re-attaches to it. Finished pods are deleted as the workflow's `podGC`
//! says; without one they are kept, as Argo does.

pub mod emissary;
pub mod pod;
pub mod transfer;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use argon_crds::workflow::{PodGc, PodGcStrategy};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::watcher;
use kube::runtime::{WatchStreamExt, watcher::Event};
use tokio_util::sync::CancellationToken;

use super::{Backend, ExecutorKind, LogSink, StepOutcome, StepProcess};
use crate::executor::container::WORKFLOW_LABEL;
use pod::{MANAGED_BY, MANAGER, POD_GC_ANNOTATION, PodConfig};
use transfer::{INPUTS_TAR, Transfers};

/// How often a running step asks for its pod besides the watch.
const RECHECK: Duration = Duration::from_secs(20);

/// Container states that end a step at once: the image cannot be pulled
/// or the container cannot be made.
const START_FAILURES: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Where and how steps run on the cluster.
#[derive(Clone)]
pub struct Settings {
    /// The cluster.
    pub client: kube::Client,
    /// The namespace the step pods are made in.
    pub namespace: String,
    /// The Argon image the pods' `init` container runs (it holds `argon`).
    pub image: String,
    /// The URL pods reach this engine's API at (its Service).
    pub callback_url: String,
    /// The engine's state dir (the steps' token key is kept there).
    pub state_dir: PathBuf,
    /// Whether `hostPath` volumes may be mounted.
    pub allow_host_path: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("namespace", &self.namespace)
            .field("image", &self.image)
            .field("callback_url", &self.callback_url)
            .finish_non_exhaustive()
    }
}

/// The template's pod as Kubernetes runs it: its containers with their
/// variables substituted and their environment left for the cluster to
/// resolve (`secretKeyRef`, `fieldRef`...), and its pod settings.
#[derive(Clone, Debug, Default)]
pub struct PodParts {
    /// The main container.
    pub main: Container,
    /// The template's init containers.
    pub init_containers: Vec<Container>,
    /// The template's sidecars.
    pub sidecars: Vec<Container>,
    /// Scheduling and security settings (service account, node selector,
    /// tolerations, affinity, security context, ...); containers and
    /// volumes are filled in by [`pod::build`].
    pub spec: PodSpec,
    /// Labels of the pod (the template's and the workflow's `podMetadata`).
    pub labels: BTreeMap<String, String>,
    /// Annotations of the pod.
    pub annotations: BTreeMap<String, String>,
    /// The workflow's `podGC`.
    pub pod_gc: Option<PodGc>,
}

/// Runs steps as pods.
pub struct KubernetesBackend {
    settings: Settings,
    api: Api<Pod>,
    transfers: Arc<Transfers>,
    /// The step pods' latest state, by name, as the watch reports it.
    pods: Arc<Mutex<HashMap<String, Pod>>>,
    /// Bumped on every change of `pods`.
    changed: tokio::sync::watch::Sender<u64>,
    watching: OnceLock<tokio::task::JoinHandle<()>>,
}

impl Drop for KubernetesBackend {
    fn drop(&mut self) {
        if let Some(w) = self.watching.get() {
            w.abort();
        }
    }
}

/// How a step's pod ended.
#[derive(Debug, PartialEq)]
enum End {
    /// The main container ended.
    Main {
        code: i32,
        reason: Option<String>,
        message: Option<String>,
    },
    /// The pod could not start (image, config, the emissary's init).
    Start(String),
    /// A template's init container failed.
    Init { name: String, code: i32 },
    /// The pod's activeDeadlineSeconds passed.
    Deadline,
    /// The pod failed otherwise (evicted, its node lost) or was deleted.
    Pod(String),
}

impl KubernetesBackend {
    /// The executor over `settings`' cluster.
    pub fn new(settings: Settings) -> Result<KubernetesBackend, String> {
        if settings.callback_url.is_empty() {
            return Err("--executor kubernetes needs --callback-url: the URL step pods reach this engine at".into());
        }
        let transfers = Arc::new(Transfers::open(&settings.state_dir)?);
        let api = Api::namespaced(settings.client.clone(), &settings.namespace);
        Ok(KubernetesBackend {
            settings,
            api,
            transfers,
            pods: Arc::new(Mutex::new(HashMap::new())),
            changed: tokio::sync::watch::channel(0).0,
            watching: OnceLock::new(),
        })
    }

    /// The step's token for its emissary (tests act as the emissary with it).
    pub fn token(&self, uid: &str, node: &str) -> String {
        self.transfers.token(uid, node)
    }

    /// Starts the watch over the step pods, once.
    fn watch(&self) {
        self.watching.get_or_init(|| {
            let config = watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER}"));
            let stream = watcher(self.api.clone(), config).default_backoff();
            let pods = self.pods.clone();
            let changed = self.changed.clone();
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                // A relist gathers the pods anew; those gone since vanish at its end.
                let mut relist: Option<HashMap<String, Pod>> = None;
                while let Some(event) = stream.next().await {
                    {
                        let mut map = pods.lock().expect("pod states");
                        match event {
                            Ok(Event::Apply(p)) => {
                                map.insert(p.metadata.name.clone().unwrap_or_default(), p);
                            }
                            Ok(Event::Delete(p)) => {
                                map.remove(p.metadata.name.as_deref().unwrap_or_default());
                            }
                            Ok(Event::Init) => relist = Some(HashMap::new()),
                            Ok(Event::InitApply(p)) => {
                                let name = p.metadata.name.clone().unwrap_or_default();
                                relist.get_or_insert_with(HashMap::new).insert(name, p);
                            }
                            Ok(Event::InitDone) => *map = relist.take().unwrap_or_default(),
                            Err(e) => {
                                tracing::warn!(error = %e, "the watch over step pods failed; it starts again");
                                continue;
                            }
                        }
                    }
                    changed.send_modify(|v| *v += 1);
                }
            })
        });
    }

    fn pod_state(&self, name: &str) -> Option<Pod> {
        self.pods.lock().expect("pod states").get(name).cloned()
    }

    /// Creates the pod; `Ok(true)` when it already existed and is
    /// re-attached to (a step an engine left running).
    async fn create(&self, pod: &Pod, resumed: bool) -> Result<bool, String> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        for _ in 0..2 {
            match self.api.create(&PostParams::default(), pod).await {
                Ok(p) => {
                    self.pods.lock().expect("pod states").insert(name.clone(), p);
                    return Ok(false);
                }
                Err(kube::Error::Api(e)) if e.code == 409 && resumed => return Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    // Left by an earlier run of this node that is over: start afresh.
                    self.delete(&name, Some(0)).await;
                    self.gone(&name).await?;
                }
                Err(e) => return Err(format!("cannot create pod {name}: {}", api_message(&e))),
            }
        }
        Err(format!("cannot create pod {name}: it exists and would not go away"))
    }

    /// Waits until the pod is deleted (at most a minute): asked again at
    /// each change the watch reports, and every few seconds in case it
    /// reports none.
    async fn gone(&self, name: &str) -> Result<(), String> {
        let mut changed = self.changed.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match self.api.get_opt(name).await {
                    Ok(None) => {
                        self.pods.lock().expect("pod states").remove(name);
                        return Ok(());
                    }
                    Ok(Some(_)) => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), changed.changed()).await;
                    }
                    Err(e) => return Err(format!("cannot read pod {name}: {}", api_message(&e))),
                }
            }
        });
        waited
            .await
            .unwrap_or_else(|_| Err(format!("pod {name} was not deleted within a minute")))
    }

    async fn delete(&self, name: &str, grace: Option<u32>) {
        let params = DeleteParams {
            grace_period_seconds: grace,
            ..Default::default()
        };
        match self.api.delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => tracing::warn!(pod = name, error = %api_message(&e), "cannot delete a step pod"),
        }
    }

    /// Follows the pod until it ends, streaming the main container's log.
    async fn follow(
        &self,
        name: &str,
        timeout: Option<Duration>,
        logs: LogSink,
        cancel: &CancellationToken,
    ) -> (StepOutcome, Option<End>) {
        let mut outcome = StepOutcome::default();
        let mut changed = self.changed.subscribe();
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        let mut seen = false;
        let mut log_task: Option<tokio::task::JoinHandle<()>> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        let end = loop {
            changed.borrow_and_update();
            match self.pod_state(name) {
                Some(p) => {
                    seen = true;
                    if deadline.is_none()
                        && let Some(t) = timeout
                    {
                        // A re-attached step's deadline counts from its start, not from now.
                        let ran = p
                            .status
                            .as_ref()
                            .and_then(|s| s.start_time.as_ref())
                            .map(|s| {
                                let ms = k8s_openapi::jiff::Timestamp::now().as_millisecond() - s.0.as_millisecond();
                                Duration::from_millis(ms.max(0) as u64)
                            })
                            .unwrap_or_default();
                        deadline = Some(tokio::time::Instant::now() + t.saturating_sub(ran));
                    }
                    if log_task.is_none() && main_started(&p) {
                        log_task = Some(self.stream_logs(name, logs.clone()));
                    }
                    if let Some(end) = ended(&p) {
                        break end;
                    }
                }
                None if seen => break End::Pod(format!("pod {name} was deleted")),
                None => {}
            }
            let until_deadline = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed.changed() => {}
                _ = recheck.tick() => match self.api.get_opt(name).await {
                    Ok(Some(p)) => { self.pods.lock().expect("pod states").insert(name.to_string(), p); }
                    // It existed (this engine made it or found it): gone now.
                    Ok(None) => { self.pods.lock().expect("pod states").remove(name); seen = true; }
                    Err(e) => tracing::warn!(pod = name, error = %api_message(&e), "cannot read a step pod"),
                },
                _ = until_deadline => {
                    outcome.timed_out = true;
                    self.delete(name, Some(0)).await;
                    break End::Deadline;
                }
                _ = cancel.cancelled() => {
                    outcome.cancelled = true;
                    self.delete(name, None).await;
                    break End::Pod("stopped".into());
                }
            }
        };
        match log_task {
            Some(task) => {
                let abort = task.abort_handle();
                if tokio::time::timeout(Duration::from_secs(10), task).await.is_err() {
                    abort.abort();
                }
            }
            // It ended before its log was followed: read it whole.
            None if matches!(end, End::Main { .. }) => {
                let _ = tokio::time::timeout(Duration::from_secs(10), self.stream_logs(name, logs)).await;
            }
            None => {}
        }
        (outcome, Some(end))
    }

    /// Streams the main container's log to `logs` until it ends, picking
    /// up where it broke off when the stream ends while the container runs.
    fn stream_logs(&self, name: &str, logs: LogSink) -> tokio::task::JoinHandle<()> {
        let api = self.api.clone();
        let pods = self.pods.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let mut last: Option<(String, usize)> = None;
            for _ in 0..100 {
                let params = LogParams {
                    container: Some("main".to_string()),
                    follow: true,
                    timestamps: true,
                    since_time: last
                        .as_ref()
                        .and_then(|(t, _)| t.parse::<k8s_openapi::jiff::Timestamp>().ok()),
                    ..Default::default()
                };
                let Ok(stream) = api.log_stream(&name, &params).await else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                let mut lines = stream.lines();
                let mut batch = Vec::new();
                let mut skip = last.clone();
                while let Ok(Some(line)) = lines.try_next().await {
                    let (stamp, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                    // Lines already seen before a reconnect (since_time is inclusive).
                    if let Some((t, n)) = &mut skip {
                        if stamp < t.as_str() || (stamp == t.as_str() && *n > 0) {
                            if stamp == t.as_str() {
                                *n -= 1;
                            }
                            continue;
                        }
                        skip = None;
                    }
                    match &mut last {
                        Some((t, n)) if t == stamp => *n += 1,
                        _ => last = Some((stamp.to_string(), 1)),
                    }
                    batch.push(text.to_string());
                    if batch.len() >= 256 {
                        logs("stdout", std::mem::take(&mut batch));
                    }
                }
                if !batch.is_empty() {
                    logs("stdout", batch);
                }
                let running = pods.lock().expect("pod states").get(&name).is_some_and(|p| {
                    main_status(p).is_some_and(|s| s.state.as_ref().is_some_and(|s| s.running.is_some()))
                });
                if !running {
                    return;
                }
            }
        })
    }

    /// Deletes the pod now, later or never, as the workflow's `podGC` says.
    fn collect(&self, name: &str, pod: &Pod, gc: Option<&PodGc>, succeeded: bool) {
        let Some(gc) = gc else { return };
        let now = match gc.strategy {
            Some(PodGcStrategy::OnPodCompletion) => true,
            Some(PodGcStrategy::OnPodSuccess) => succeeded,
            _ => false,
        };
        if now && selected(pod, gc) {
            self.delete_later(name.to_string(), gc);
        }
    }

    fn delete_later(&self, name: String, gc: &PodGc) {
        let delay = gc
            .delete_delay_duration
            .as_deref()
            .and_then(|d| argon_crds::time::parse_duration(d).ok())
            .unwrap_or_default();
        let api = self.api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => tracing::warn!(pod = name, error = %api_message(&e), "cannot delete a finished step pod"),
            }
        });
    }

    async fn run_pod(
        &self,
        step: &StepProcess,
        logs: LogSink,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, String> {
        let parts = step
            .pod
            .as_deref()
            .ok_or("the kubernetes executor got a step without its pod")?;
        if !step.container_set.is_empty() {
            return Err(
                "containerSet templates do not run on the kubernetes executor yet: use a container \
                        template with sidecars"
                    .into(),
            );
        }
        self.watch();
        let owner = &step.owner;
        let _active = self.transfers.activate(&owner.workflow_uid, &owner.node_id);
        self.pack_inputs(step).await?;
        let token = self.transfers.token(&owner.workflow_uid, &owner.node_id);
        let step_url = format!(
            "{}/api/v1/steps/{}/{}",
            self.settings.callback_url.trim_end_matches('/'),
            owner.workflow_uid,
            owner.node_id
        );
        let pod = pod::build(
            step,
            parts,
            &PodConfig {
                namespace: &self.settings.namespace,
                image: &self.settings.image,
                step_url: &step_url,
                token: &token,
                allow_host_path: self.settings.allow_host_path,
            },
        )?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let reattached = self.create(&pod, step.resumed).await?;
        let (mut outcome, end) = self.follow(&name, step.timeout, logs, cancel).await;
        outcome.reattached = reattached;
        match end {
            Some(End::Main { code, reason, message }) if !outcome.cancelled && !outcome.timed_out => {
                match reason.as_deref() {
                    Some("StartError" | "ContainerCannotRun") => {
                        return Ok(StepOutcome::not_started(format!(
                            "the main container could not start: {}",
                            message.unwrap_or_default()
                        )));
                    }
                    Some("OOMKilled") => outcome.reason = Some("OOMKilled".into()),
                    _ => {}
                }
                outcome.exit_code = Some(code);
                match transfer::read_outcome(&step.step_dir) {
                    Some(Ok(o)) => {
                        outcome.result = o.result;
                        outcome.last_stderr = o.last_stderr;
                        if outcome.reason.is_none() {
                            outcome.reason = o.error;
                        }
                    }
                    Some(Err(e)) => outcome.output_error = Some(e),
                    None => {
                        outcome.output_error = Some(format!(
                            "the step's outputs never reached the engine{}",
                            message.map(|m| format!(": {}", m.trim())).unwrap_or_default()
                        ))
                    }
                }
            }
            Some(End::Start(e)) => {
                self.delete(&name, Some(0)).await;
                return Ok(StepOutcome::not_started(e));
            }
            Some(End::Init { name: c, code }) => {
                outcome.exit_code = Some(code);
                outcome.reason = Some(format!("init container {c} failed"));
            }
            Some(End::Deadline) => outcome.timed_out = true,
            Some(End::Pod(why)) if !outcome.cancelled => return Ok(StepOutcome::not_started(why)),
            _ => {}
        }
        let latest = self.pod_state(&name).unwrap_or(pod);
        self.collect(&name, &latest, parts.pod_gc.as_ref(), outcome.exit_code == Some(0));
        Ok(outcome)
    }

    /// Packs the step's inputs and script for its emissary to fetch.
    async fn pack_inputs(&self, step: &StepProcess) -> Result<(), String> {
        let tar_file = step.step_dir.join(INPUTS_TAR);
        if step.mounts.is_empty() && step.script.is_none() {
            let _ = tokio::fs::remove_file(&tar_file).await;
            return Ok(());
        }
        let entries: Vec<(PathBuf, PathBuf)> = step
            .mounts
            .iter()
            .enumerate()
            .map(|(i, (host, _))| (host.clone(), PathBuf::from(format!("inputs/{i}"))))
            .collect();
        let script = step.script.clone().map(|s| (s, PathBuf::from("script")));
        let uid = step.main.run_as_user.unwrap_or(0).max(0) as u64;
        let gid = step.main.run_as_group.unwrap_or(uid as i64).max(0) as u64;
        let dir = step.step_dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let out = std::io::BufWriter::new(std::fs::File::create(&tar_file)?);
            super::container::files::input_tar(&entries, script, uid, gid, out)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot pack the step's inputs: {e}"))
    }
}

/// Whether the pod's labels match the podGC's label selector (none: all).
fn selected(pod: &Pod, gc: &PodGc) -> bool {
    let Some(sel) = &gc.label_selector else { return true };
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let by_labels = sel.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    by_labels && by_expressions
}

fn main_status(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == "main")
}

fn main_started(pod: &Pod) -> bool {
    main_status(pod)
        .and_then(|s| s.state.as_ref())
        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
}

/// How the pod ended, if it has.
fn ended(pod: &Pod) -> Option<End> {
    let status = pod.status.as_ref()?;
    if let Some(t) = main_status(pod).and_then(|s| s.state.as_ref()?.terminated.as_ref()) {
        return Some(End::Main {
            code: t.exit_code,
            reason: t.reason.clone(),
            message: t.message.clone(),
        });
    }
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in all {
        let state = c.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref()
            && START_FAILURES.contains(&reason)
        {
            let message = w.message.clone().unwrap_or_default();
            return Some(End::Start(format!("{}: {reason}: {}", c.name, message.trim())));
        }
        if let Some(t) = state.and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
            && c.name != "main"
        {
            if c.name == "init" {
                let message = t.message.clone().unwrap_or_default();
                return Some(End::Start(format!(
                    "the step could not be prepared (init container, exit code {}): {}",
                    t.exit_code,
                    message.trim()
                )));
            }
            return Some(End::Init {
                name: c.name.clone(),
                code: t.exit_code,
            });
        }
    }
    if status.phase.as_deref() == Some("Failed") {
        if status.reason.as_deref() == Some("DeadlineExceeded") {
            return Some(End::Deadline);
        }
        return Some(End::Pod(format!(
            "pod failed: {}: {}",
            status.reason.as_deref().unwrap_or("unknown reason"),
            status.message.as_deref().unwrap_or_default()
        )));
    }
    None
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

#[async_trait::async_trait]
impl Backend for KubernetesBackend {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Kubernetes
    }

    fn describe(&self) -> String {
        format!(
            "steps run as pods in namespace {} (init image {}); pods reach this engine at {}",
            self.settings.namespace, self.settings.image, self.settings.callback_url
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

    fn runs_pods(&self) -> bool {
        true
    }

    fn step_routes(&self) -> Option<axum::Router> {
        Some(self.transfers.routes())
    }

    async fn run(&self, step: StepProcess, logs: LogSink, cancel: CancellationToken) -> StepOutcome {
        match self.run_pod(&step, logs, &cancel).await {
            Ok(o) => o,
            Err(e) => StepOutcome::not_started(e),
        }
    }

    async fn workflow_finished(&self, uid: &str, succeeded: bool) {
        let params = ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER},{WORKFLOW_LABEL}={uid}"));
        let pods = match self.api.list(&params).await {
            Ok(l) => l.items,
            Err(e) => {
                tracing::warn!(error = %api_message(&e), "cannot list a finished workflow's pods");
                return;
            }
        };
        for p in pods {
            let strategy = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(POD_GC_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            let due = strategy == "OnWorkflowCompletion" || (strategy == "OnWorkflowSuccess" && succeeded);
            if due && let Some(name) = p.metadata.name.clone() {
                self.delete(&name, None).await;
            }
        }
    }
}

impl Settings {
    /// Settings over the cluster the environment names: the in-cluster
    /// service account, else the kubeconfig (`KUBECONFIG`, `~/.kube/config`).
    /// `namespace` defaults to the client's (the pod's own namespace in a
    /// cluster).
    pub async fn infer(
        namespace: Option<String>,
        image: String,
        callback_url: String,
        state_dir: PathBuf,
        allow_host_path: bool,
    ) -> Result<Settings, String> {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("--executor kubernetes: no cluster to talk to: {e}"))?;
        Ok(Settings {
            namespace: namespace.unwrap_or_else(|| client.default_namespace().to_string()),
            client,
            image,
            callback_url,
            state_dir,
            allow_host_path,
        })
    }
}
