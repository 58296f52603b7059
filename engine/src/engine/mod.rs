//! The engine: accepts workflows, keeps them in the store, and runs each one
//! with an operator task (see [`operator`]) that walks its templates, steps
//! and DAGs, runs leaf steps through the executor and records every node.
//! A restarted engine picks its unfinished workflows up from the store.
//!
//! Longer than most files: the engine's state and its API operations (submit,
//! get, list, delete, logs, actions, TTL), which share the store and the live
//! runs; stored templates and the in-process client are in files of their
//! own.

mod client;
mod operator;
mod run;
mod templates;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use argon_crds::secret::Secrets;
use argon_crds::workflow::{
    ClusterWorkflowTemplate, CronWorkflow, Parameter, ShutdownStrategy, TemplateRef, Workflow, WorkflowPhase,
    WorkflowSpec, WorkflowStatus, WorkflowTemplate, validate,
};

use crate::artifacts::{ArtifactRepository, Artifacts, Repositories};
use crate::executor::{Executor, ExecutorChoice, ExecutorKind, ExecutorSettings};
use crate::store::{LogLine, Store};
use crate::{Error, Result};
use argon_client::TemplateKind;
use argon_client::api::WORKFLOW_TEMPLATE_LABEL;
use argon_client::list::{Filter, LabelRequirement, ListOptions, WorkflowPage};
use argon_client::{SubmitOptions, Submitted, WorkflowAction, WorkflowAdmin, WorkflowClient};

pub(crate) use run::Run;

/// The label that names the CronWorkflow that submitted a workflow.
pub const CRON_WORKFLOW_LABEL: &str = "workflows.argoproj.io/cron-workflow";

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where the store, the artifact repository and the steps' directories live.
    pub state_dir: PathBuf,
    /// Where `secretKeyRef`s are read from.
    pub secrets: Secrets,
    /// Which executor runs steps (`--executor`).
    pub executor: ExecutorChoice,
    /// Whether `hostPath` volumes may be mounted into containers.
    pub allow_host_path: bool,
    /// The container runtime's socket, before `CONTAINER_HOST`/`DOCKER_HOST`.
    pub container_host: Option<String>,
    /// The cluster of `--executor kubernetes`.
    pub kubernetes: Option<crate::executor::kubernetes::Settings>,
    /// Directories put in front of `PATH` for sandbox and host steps.
    pub extra_path: Vec<PathBuf>,
    /// The namespace of workflows that name none.
    pub default_namespace: String,
    /// How deep templates may call templates (recursion stops there with an error).
    pub max_depth: usize,
    /// How long a stopping engine lets running steps that die with it
    /// (sandbox, host) finish; container steps go on and are re-attached.
    pub drain_timeout: Duration,
    /// The default artifact repository (`artifactRepository` of the
    /// engine's config); `None` stores artifacts under the state dir.
    pub artifact_repository: Option<ArtifactRepository>,
    /// The ConfigMaps given with the manifests (`artifact-repositories`...).
    pub config_maps: Vec<k8s_openapi::api::core::v1::ConfigMap>,
    /// Whether finished workflows are kept in the archive (Argo's
    /// `persistence.archive`), which outlives their deletion.
    pub archive: bool,
    /// How long archived workflows are kept after they finished (`None`: for ever).
    pub archive_ttl: Option<Duration>,
}

impl EngineConfig {
    /// The defaults for a state dir.
    pub fn new(state_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            state_dir: state_dir.into(),
            secrets: Secrets::default(),
            executor: ExecutorChoice::Auto,
            allow_host_path: false,
            container_host: None,
            kubernetes: None,
            extra_path: Vec::new(),
            default_namespace: "default".to_string(),
            max_depth: 100,
            drain_timeout: Duration::from_secs(30),
            artifact_repository: None,
            config_maps: Vec::new(),
            archive: true,
            archive_ttl: None,
        }
    }
}

/// Steps running, and whether the engine is stopping.
#[derive(Default)]
struct Drain {
    stopping: std::sync::atomic::AtomicBool,
    running: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// A running step, counted until dropped.
pub(crate) struct StepGuard<'a>(&'a Drain);

impl Drop for StepGuard<'_> {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The workflow engine. Open it with [`Engine::open`]; submitted workflows
/// start at once; [`Engine::run`] resumes the workflows a previous process
/// left unfinished and deletes expired workflows (`crate::serve` also runs
/// the CronWorkflows).
pub struct Engine {
    config: EngineConfig,
    store: Store,
    executor: Executor,
    artifacts: Artifacts,
    http: reqwest::Client,
    runs: Mutex<HashMap<String, Arc<Run>>>,
    drain: Drain,
    me: Weak<Engine>,
}

impl Engine {
    /// Opens the engine on its state dir (creating it).
    pub fn open(config: EngineConfig) -> Result<Arc<Engine>> {
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| Error::Unavailable(format!("cannot create state dir {}: {e}", config.state_dir.display())))?;
        let store = Store::open(&config.state_dir.join("engine.sqlite"))?;
        let executor = Executor::new(ExecutorSettings {
            choice: config.executor,
            extra_path: config.extra_path.clone(),
            secrets: config.secrets.clone(),
            allow_host_path: config.allow_host_path,
            container_host: config.container_host.clone(),
            kubernetes: config.kubernetes.clone(),
        })
        .map_err(Error::Unavailable)?;
        let artifacts = Artifacts::new(
            &config.state_dir.join("artifacts"),
            config.secrets.clone(),
            Repositories {
                default: config.artifact_repository.clone(),
                config_maps: config.config_maps.clone(),
                default_namespace: config.default_namespace.clone(),
            },
        )
        .map_err(Error::Unavailable)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        Ok(Arc::new_cyclic(|me| Engine {
            config,
            store,
            executor,
            artifacts,
            http,
            runs: Mutex::new(HashMap::new()),
            drain: Drain::default(),
            me: me.clone(),
        }))
    }

    fn arc(&self) -> Arc<Engine> {
        self.me.upgrade().expect("the engine is alive while its methods run")
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Which executor runs the steps.
    pub fn executor_kind(&self) -> ExecutorKind {
        self.executor.kind()
    }

    /// What runs the steps, in one line for the start-up message.
    pub fn executor_description(&self) -> String {
        self.executor.describe()
    }

    /// The routes step pods call (the kubernetes executor's transfers).
    pub fn step_routes(&self) -> Option<axum::Router> {
        self.executor.step_routes()
    }

    fn namespace_or_default(&self, ns: &str) -> String {
        if ns.is_empty() {
            self.config.default_namespace.clone()
        } else {
            ns.to_string()
        }
    }

    /// Resumes unfinished workflows, then runs the TTL clean-up until
    /// `shutdown` completes, then drains the running steps
    /// ([`Engine::drain_steps`]). [`crate::serve`] runs this and the
    /// CronWorkflow scheduler together.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        self.resume_unfinished()?;
        let engine = self.clone();
        let background = async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = engine.collect_expired() {
                    tracing::warn!(error = %e, "ttl clean-up failed");
                }
                if let Some(ttl) = engine.config.archive_ttl
                    && let Ok(ttl) = chrono::Duration::from_std(ttl)
                    && let Err(e) = engine.store.expire_archive(chrono::Utc::now() - ttl)
                {
                    tracing::warn!(error = %e, "archive clean-up failed");
                }
            }
        };
        tokio::select! {
            _ = shutdown => {}
            _ = background => {}
        }
        self.drain_steps().await;
        Ok(())
    }

    /// Stops starting steps, then waits for the running steps that would
    /// die with the process (at most the drain timeout). Steps that have
    /// not started stay Pending for the next engine; container steps go on.
    pub async fn drain_steps(&self) {
        self.drain.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        if self.executor.steps_outlive_engine() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.config.drain_timeout;
        loop {
            let idle = self.drain.idle.notified();
            let running = self.drain.running.load(std::sync::atomic::Ordering::SeqCst);
            if running == 0 {
                return;
            }
            tracing::info!(running, "waiting for running steps to finish");
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                tracing::warn!(
                    running,
                    "steps still running after the drain timeout are stopped with the engine"
                );
                return;
            }
        }
    }

    /// Counts a step as running until the guard drops; `None` when the
    /// engine is stopping and no step may start.
    pub(crate) fn step_starting(&self) -> Option<StepGuard<'_>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.drain.running.fetch_add(1, SeqCst);
        let guard = StepGuard(&self.drain);
        if self.drain.stopping.load(SeqCst) {
            return None;
        }
        Some(guard)
    }

    /// Starts operators for the workflows the store holds as unfinished.
    pub fn resume_unfinished(&self) -> Result<()> {
        for uid in self.store.unfinished()? {
            if self.live(&uid).is_some() {
                continue;
            }
            if let Some(wf) = self.store.workflow(&uid)? {
                tracing::info!(workflow = %wf.metadata.name.clone().unwrap_or_default(), "resuming workflow");
                self.start(wf)?;
            }
        }
        Ok(())
    }

    fn live(&self, uid: &str) -> Option<Arc<Run>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).get(uid).cloned()
    }

    /// Starts the operator of a stored workflow.
    fn start(&self, wf: Workflow) -> Result<Arc<Run>> {
        let run = Arc::new(Run::new(wf));
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run.uid.clone(), run.clone());
        let engine = self.arc();
        let r = run.clone();
        tokio::spawn(async move {
            operator::operate(engine.clone(), r.clone()).await;
            engine.runs.lock().unwrap_or_else(|e| e.into_inner()).remove(&r.uid);
            r.bump();
        });
        Ok(run)
    }

    /// Checks a workflow against the stored templates; the error carries the lint messages.
    pub fn validate(&self, namespace: &str, wf: &Workflow) -> Result<()> {
        let resolver = |r: &TemplateRef| self.resolve_ref(namespace, r).is_ok();
        let findings: Vec<String> = validate::validate_workflow(wf, &resolver)
            .into_iter()
            .filter(|f| f.severity == argon_crds::diag::Severity::Error)
            .map(|f| {
                if f.path.is_empty() {
                    f.message
                } else {
                    format!("{}: {}", f.path, f.message)
                }
            })
            .collect();
        let mut findings = findings;
        // Templates live in this engine's store: a reference to one it lacks is an error here.
        for (i, t) in wf.spec.templates.iter().enumerate() {
            let mut refs: Vec<(String, &TemplateRef)> = Vec::new();
            for (g, group) in t.steps.iter().flatten().enumerate() {
                for (k, step) in group.iter().enumerate() {
                    if let Some(r) = &step.template_ref {
                        refs.push((format!("spec.templates[{i}].steps[{g}][{k}].templateRef"), r));
                    }
                }
            }
            for (k, task) in t.dag.iter().flat_map(|d| d.tasks.iter()).enumerate() {
                if let Some(r) = &task.template_ref {
                    refs.push((format!("spec.templates[{i}].dag.tasks[{k}].templateRef"), r));
                }
            }
            for (path, r) in refs {
                if let Err(e) = self.resolve_ref(namespace, r) {
                    findings.push(format!("{path}: {e}; store it first with argon template create"));
                }
            }
        }
        if let Some(r) = &wf.spec.workflow_template_ref
            && let Err(e) = self.template_spec(namespace, &r.name, r.cluster_scope)
        {
            findings.push(format!(
                "spec.workflowTemplateRef: {e}; store it first with argon template create"
            ));
        }
        if findings.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(findings.join("; ")))
        }
    }

    /// The spec of a WorkflowTemplate (`cluster_scope`: a ClusterWorkflowTemplate),
    /// checked to hold `r.template` when it names one.
    pub(crate) fn resolve_ref(&self, namespace: &str, r: &TemplateRef) -> Result<WorkflowSpec> {
        let spec = self.template_spec(namespace, &r.name, r.cluster_scope)?;
        if !r.template.is_empty() && spec.template(&r.template).is_none() {
            return Err(Error::NotFound {
                kind: "template",
                namespace: namespace.to_string(),
                name: format!("{}/{}", r.name, r.template),
            });
        }
        Ok(spec)
    }

    fn template_spec(&self, namespace: &str, name: &str, cluster: bool) -> Result<WorkflowSpec> {
        if cluster {
            let doc = self
                .store
                .template(TemplateKind::ClusterWorkflowTemplate, "", name)?
                .ok_or_else(|| Error::NotFound {
                    kind: "ClusterWorkflowTemplate",
                    namespace: String::new(),
                    name: name.to_string(),
                })?;
            let t: ClusterWorkflowTemplate = serde_json::from_value(doc)?;
            Ok(t.spec.spec)
        } else {
            let doc = self
                .store
                .template(TemplateKind::WorkflowTemplate, namespace, name)?
                .ok_or_else(|| Error::NotFound {
                    kind: "WorkflowTemplate",
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                })?;
            let t: WorkflowTemplate = serde_json::from_value(doc)?;
            Ok(t.spec.spec)
        }
    }

    /// Submits a workflow: see [`WorkflowClient::submit`].
    pub fn submit_workflow(&self, namespace: &str, mut wf: Workflow, options: SubmitOptions) -> Result<Submitted> {
        let namespace = wf
            .metadata
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.namespace_or_default(namespace));
        check_names(&namespace, &wf.metadata)?;
        if let Some(key) = &options.idempotency_key
            && let Some(existing) = self.store_idempotent(key)?
        {
            return Ok(existing);
        }
        self.validate(&namespace, &wf)?;
        // The spec that runs: the workflow's, or its WorkflowTemplate's with the workflow's settings on top.
        let mut effective = wf.spec.clone();
        if let Some(r) = wf.spec.workflow_template_ref.clone() {
            let base = self.template_spec(&namespace, &r.name, r.cluster_scope)?;
            effective = merge_template_spec(base, &wf.spec);
            if !r.cluster_scope {
                wf.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(WORKFLOW_TEMPLATE_LABEL.to_string(), r.name.clone());
            }
        }
        apply_parameters(&mut effective, &options.parameters)?;
        if wf.spec.workflow_template_ref.is_none() {
            wf.spec.arguments = effective.arguments.clone();
        } else {
            apply_parameters(&mut wf.spec, &options.parameters)?;
        }
        for p in &effective.arguments.parameters {
            if p.value.is_none() && p.default.is_none() && p.value_from.is_none() {
                return Err(Error::Invalid(format!(
                    "spec.arguments.parameters: parameter '{}' has no value; give one with -p {}=VALUE",
                    p.name, p.name
                )));
            }
        }
        if effective.entrypoint.as_deref().unwrap_or("").is_empty() {
            return Err(Error::Invalid(
                "spec.entrypoint: the workflow names no entrypoint".into(),
            ));
        }
        let name = match wf.metadata.name.clone().filter(|n| !n.is_empty()) {
            Some(n) => {
                if self.store.name_taken(&namespace, &n)? {
                    return Err(Error::Conflict {
                        action: "submit".into(),
                        name: n,
                        reason: "a workflow of that name exists; delete it or use generateName".into(),
                    });
                }
                n
            }
            None => self.generate_name(&namespace, wf.metadata.generate_name.as_deref().unwrap_or("workflow-"))?,
        };
        let uid = uuid::Uuid::new_v4().to_string();
        wf.metadata.name = Some(name.clone());
        wf.metadata.namespace = Some(namespace.clone());
        wf.metadata.uid = Some(uid.clone());
        wf.metadata.creation_timestamp = Some(crate::time::now());
        wf.metadata.generation = Some(1);
        wf.metadata.resource_version = None;
        if !options.labels.is_empty() {
            let labels = wf.metadata.labels.get_or_insert_with(Default::default);
            labels.extend(options.labels.clone());
        }
        // Again: the labels of the submission are on it now.
        check_names(&namespace, &wf.metadata)?;
        let mut status = WorkflowStatus {
            phase: Some(WorkflowPhase::Pending),
            ..Default::default()
        };
        if wf.spec.workflow_template_ref.is_some() {
            status.stored_workflow_template_spec = Some(serde_json::to_value(&effective)?);
        }
        wf.status = Some(status);
        if let Some(existing) = self.store.insert_workflow(&wf, options.idempotency_key.as_deref())? {
            return self.submitted_of(&existing, false);
        }
        self.start(wf)?;
        Ok(Submitted {
            namespace,
            name,
            uid,
            created: true,
        })
    }

    fn store_idempotent(&self, key: &str) -> Result<Option<Submitted>> {
        // Checked before validation so a repeat answers at once; a race between
        // two first submissions is settled by the insert's own transaction.
        match self.store.idempotent(key)? {
            Some(uid) => Ok(Some(self.submitted_of(&uid, false)?)),
            None => Ok(None),
        }
    }

    fn submitted_of(&self, uid: &str, created: bool) -> Result<Submitted> {
        let wf = self.store.workflow(uid)?.ok_or_else(|| Error::NotFound {
            kind: "workflow",
            namespace: String::new(),
            name: uid.to_string(),
        })?;
        Ok(Submitted {
            namespace: wf.metadata.namespace.clone().unwrap_or_default(),
            name: wf.metadata.name.clone().unwrap_or_default(),
            uid: uid.to_string(),
            created,
        })
    }

    fn generate_name(&self, namespace: &str, prefix: &str) -> Result<String> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            let suffix: String = (0..5)
                .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
                .collect();
            let name = format!("{prefix}{suffix}");
            if !self.store.name_taken(namespace, &name)? {
                return Ok(name);
            }
        }
    }

    fn uid_of(&self, namespace: &str, name: &str) -> Result<String> {
        self.store.find(namespace, name)?.ok_or_else(|| Error::NotFound {
            kind: "workflow",
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// The workflow `name` (`@latest`: the newest) in `namespace` (any namespace when empty).
    pub fn get_workflow(&self, namespace: &str, name: &str) -> Result<Workflow> {
        let uid = self.uid_of(namespace, name)?;
        self.workflow_by_uid(&uid)
    }

    fn workflow_by_uid(&self, uid: &str) -> Result<Workflow> {
        if let Some(run) = self.live(uid) {
            return Ok(run.snapshot());
        }
        self.store.workflow(uid)?.ok_or_else(|| Error::NotFound {
            kind: "workflow",
            namespace: String::new(),
            name: uid.to_string(),
        })
    }

    /// The phase of a workflow, cheaply (no copy of its nodes).
    pub fn phase_of(&self, namespace: &str, name: &str) -> Result<Option<WorkflowPhase>> {
        let uid = self.uid_of(namespace, name)?;
        match self.live(&uid) {
            Some(run) => Ok(run.phase()),
            None => Ok(self.workflow_by_uid(&uid)?.status.and_then(|s| s.phase)),
        }
    }

    /// Waits until the workflow changes (or `timeout` passes); returns it.
    pub async fn watch(&self, namespace: &str, name: &str, timeout: Duration) -> Result<Workflow> {
        let uid = self.uid_of(namespace, name)?;
        if let Some(run) = self.live(&uid) {
            let mut rx = run.subscribe();
            let _ = tokio::time::timeout(timeout, rx.changed()).await;
        }
        self.workflow_by_uid(&uid)
    }

    /// Workflows in `namespace` (all when empty), newest first, without their nodes;
    /// `label` filters on `key=value`.
    pub fn list_workflows(&self, namespace: &str, label: Option<(&str, &str)>) -> Result<Vec<Workflow>> {
        let mut filter = Filter::default();
        if let Some((k, v)) = label {
            filter
                .labels
                .push(LabelRequirement::In(k.to_string(), vec![v.to_string()]));
        }
        let (rows, _) = self.store.list_page(namespace, &filter, None, None)?;
        Ok(rows.into_iter().map(|row| self.current(row)).collect())
    }

    /// A page of the workflows in `namespace` (all when empty) that pass
    /// `options`, newest first, without their nodes (Argo's list semantics).
    pub fn list_page(&self, namespace: &str, options: &ListOptions) -> Result<WorkflowPage> {
        let (filter, after) = parse_list(options)?;
        let (rows, next) = self
            .store
            .list_page(namespace, &filter, options.limit, after.as_ref())?;
        Ok(WorkflowPage {
            items: rows.into_iter().map(|row| self.current(row)).collect(),
            continue_token: next.map(|p| p.token()),
        })
    }

    /// A listed workflow as it is now: a running one's live state, without nodes.
    fn current(&self, row: crate::store::WorkflowRow) -> Workflow {
        match self.live(&row.uid) {
            Some(run) => {
                let mut w = run.snapshot();
                if let Some(s) = w.status.as_mut() {
                    s.nodes.clear();
                }
                w
            }
            None => row.doc,
        }
    }

    /// A page of the archive, as [`Engine::list_page`] (items without nodes).
    pub fn list_archived(&self, namespace: &str, options: &ListOptions) -> Result<WorkflowPage> {
        let (filter, after) = parse_list(options)?;
        let (rows, next) = self
            .store
            .archived_page(namespace, &filter, options.limit, after.as_ref())?;
        Ok(WorkflowPage {
            items: rows.into_iter().map(|r| r.doc).collect(),
            continue_token: next.map(|p| p.token()),
        })
    }

    /// An archived workflow by uid, or by name (the newest of that name).
    pub fn get_archived(&self, namespace: &str, id: &str) -> Result<Workflow> {
        if let Some(wf) = self.store.archived(id)? {
            return Ok(wf);
        }
        let filter = Filter {
            fields: vec![argon_client::list::FieldRequirement {
                field: argon_client::list::Field::Name,
                equal: true,
                value: id.to_string(),
            }],
            ..Default::default()
        };
        let (rows, _) = self.store.archived_page(namespace, &filter, Some(1), None)?;
        match rows.first() {
            Some(row) => self.store.archived(&row.uid)?,
            None => None,
        }
        .ok_or_else(|| Error::NotFound {
            kind: "archived workflow",
            namespace: namespace.to_string(),
            name: id.to_string(),
        })
    }

    /// Removes a workflow (by uid or name) from the archive.
    pub fn delete_archived(&self, namespace: &str, id: &str) -> Result<()> {
        let wf = self.get_archived(namespace, id)?;
        self.store
            .delete_archived(wf.metadata.uid.as_deref().unwrap_or_default())?;
        Ok(())
    }

    /// The workflow with uid `uid` as it is now (nodes included), if it exists.
    pub fn workflow_now(&self, uid: &str) -> Result<Option<Workflow>> {
        match self.workflow_by_uid(uid) {
            Ok(wf) => Ok(Some(wf)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Hears every stored change of a workflow from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::store::Change> {
        self.store.subscribe()
    }

    /// Deletes a workflow, stopping it first when it runs.
    pub fn delete_workflow(&self, namespace: &str, name: &str) -> Result<()> {
        let uid = self.uid_of(namespace, name)?;
        if let Some(run) = self.live(&uid) {
            run.deleted();
            run.shutdown(ShutdownStrategy::Terminate, "the workflow was deleted".into());
        }
        let garbage = self
            .workflow_by_uid(&uid)
            .ok()
            .map(|wf| operator::garbage(&wf, argon_crds::workflow::ArtifactGcStrategy::OnWorkflowDeletion));
        self.store.delete_workflow(&uid)?;
        let _ = std::fs::remove_dir_all(self.config.state_dir.join("steps").join(&uid));
        let _ = std::fs::remove_dir_all(self.config.state_dir.join("artifacts").join(&uid));
        if let Some(garbage) = garbage.filter(|g| !g.is_empty())
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            // The workflow is gone at once; its objects go in the background.
            let engine = self.arc();
            rt.spawn(async move {
                operator::collect_garbage(&engine, garbage).await;
            });
        }
        Ok(())
    }

    /// Replaces the ConfigMaps artifact repositories are looked up in.
    pub fn set_config_maps(&self, config_maps: Vec<k8s_openapi::api::core::v1::ConfigMap>) {
        self.artifacts.set_config_maps(config_maps);
    }

    /// Output artifact `artifact` of node `node_id` of a workflow, as it is
    /// stored (a `.tgz` stays packed), for `argon cp`: its object, or, for
    /// a directory stored as it is, the list of its files; `file` names one
    /// of those.
    pub async fn artifact_object(
        &self,
        namespace: &str,
        name: &str,
        node_id: &str,
        artifact: &str,
        file: Option<&str>,
    ) -> Result<crate::artifacts::StoredArtifact> {
        let wf = self.get_workflow(namespace, name)?;
        let not_found = |what: String| Error::NotFound {
            kind: "artifact",
            namespace: namespace.to_string(),
            name: what,
        };
        let Some((_, a)) = crate::artifacts::outputs_of(&wf)
            .into_iter()
            .find(|(n, a)| n == node_id && a.name == artifact)
        else {
            return Err(not_found(format!("{name}/{node_id}/{artifact}")));
        };
        let Some(mut place) = stored_place(&wf, &a) else {
            return Err(not_found(format!(
                "{name}/{node_id}/{artifact} (deleted by its artifactGC)"
            )));
        };
        if let Some(file) = file {
            if file.split('/').any(|p| p == ".." || p.is_empty()) {
                return Err(Error::Invalid(format!("'{file}' is not a file of the artifact")));
            }
            place = place.child(file);
        }
        let unavailable = |m: String| Error::Unavailable(m);
        match self.artifacts.stream(&place).await {
            Ok(s) => Ok(crate::artifacts::StoredArtifact::Object(s)),
            Err(crate::artifacts::Missing::NotFound(m)) if file.is_none() => {
                let files = self.artifacts.list_under(&place).await.map_err(unavailable)?;
                if files.is_empty() {
                    return Err(not_found(m));
                }
                Ok(crate::artifacts::StoredArtifact::Directory(files))
            }
            Err(crate::artifacts::Missing::NotFound(m)) => Err(not_found(m)),
            Err(crate::artifacts::Missing::Failed(m)) => Err(unavailable(m)),
        }
    }

    /// The logs of a workflow that is no longer live but is in the archive,
    /// read back from the `main-logs` artifacts its steps stored
    /// (`archiveLogs`), step by step in the order they started. Positions
    /// count lines from 1, so `after` works as it does for live logs.
    pub async fn archived_logs(&self, namespace: &str, name: &str, after: i64) -> Result<Vec<argon_client::LogEntry>> {
        use futures::TryStreamExt;
        let wf = self.get_archived(namespace, name)?;
        let nodes = wf.status.as_ref().map(|s| &s.nodes);
        let mut logs: Vec<_> = crate::artifacts::outputs_of(&wf)
            .into_iter()
            .filter(|(_, a)| a.name == operator::LOGS_ARTIFACT)
            .filter_map(|(id, a)| {
                let node = nodes.and_then(|n| n.get(&id));
                let started = node.and_then(|n| n.started_at.clone());
                let finished = node.and_then(|n| n.finished_at.as_ref()).map(|t| t.0.to_string());
                let step = node.and_then(|n| n.display_name.clone()).unwrap_or_else(|| id.clone());
                Some((started, id, step, finished, stored_place(&wf, &a)?))
            })
            .collect();
        logs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut out = Vec::new();
        let mut seq = 0;
        for (_, _, step, finished, place) in logs {
            let bytes: Vec<u8> = match self.artifacts.stream(&place).await {
                Ok(s) => s
                    .try_fold(Vec::new(), |mut all, chunk| async move {
                        all.extend_from_slice(&chunk);
                        Ok(all)
                    })
                    .await
                    .map_err(|e| Error::Unavailable(format!("cannot read the archived logs of {step}: {e}")))?,
                Err(crate::artifacts::Missing::NotFound(_)) => continue,
                Err(crate::artifacts::Missing::Failed(m)) => return Err(Error::Unavailable(m)),
            };
            for line in String::from_utf8_lossy(&bytes).lines() {
                seq += 1;
                if seq > after {
                    out.push(argon_client::LogEntry {
                        seq,
                        step: step.clone(),
                        // Archived logs keep only the text, as Argo's main.log does.
                        stream: "stdout".into(),
                        time: finished.clone().unwrap_or_default(),
                        line: line.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Log lines of a workflow after position `after`, with the display
    /// name of the node each comes from.
    pub fn logs(&self, namespace: &str, name: &str, after: i64) -> Result<(Workflow, Vec<(LogLine, String)>)> {
        let uid = self.uid_of(namespace, name)?;
        let wf = self.workflow_by_uid(&uid)?;
        let lines = self.store.logs(&uid, after)?;
        let nodes = wf.status.as_ref().map(|s| &s.nodes);
        let out = lines
            .into_iter()
            .map(|l| {
                let display = nodes
                    .and_then(|n| n.get(&l.node_id))
                    .and_then(|n| n.display_name.clone())
                    .unwrap_or_else(|| l.node_id.clone());
                (l, display)
            })
            .collect();
        Ok((wf, out))
    }

    /// Applies an action to a workflow.
    pub async fn act_on(&self, namespace: &str, name: &str, action: WorkflowAction) -> Result<Workflow> {
        let uid = self.uid_of(namespace, name)?;
        let conflict = |reason: &str| Error::Conflict {
            action: action.as_str().to_string(),
            name: name.to_string(),
            reason: reason.to_string(),
        };
        match action {
            WorkflowAction::Suspend | WorkflowAction::Resume | WorkflowAction::Stop | WorkflowAction::Terminate => {
                let run = self.live(&uid).ok_or_else(|| conflict("it is not running"))?;
                match action {
                    WorkflowAction::Suspend => run.set_suspended(true),
                    WorkflowAction::Resume => run.resume(),
                    WorkflowAction::Stop => run.shutdown(ShutdownStrategy::Stop, "Stopped with strategy 'Stop'".into()),
                    _ => run.shutdown(ShutdownStrategy::Terminate, "Stopped with strategy 'Terminate'".into()),
                }
                run.persist_workflow(&self.store);
                Ok(run.snapshot())
            }
            WorkflowAction::Retry => {
                if self.live(&uid).is_some() {
                    return Err(conflict("it is still running; stop it first"));
                }
                let mut wf = self.workflow_by_uid(&uid)?;
                let phase = wf.status.as_ref().and_then(|s| s.phase);
                if !matches!(phase, Some(WorkflowPhase::Failed | WorkflowPhase::Error)) {
                    return Err(conflict("only a Failed or Errored workflow can be retried"));
                }
                let status = wf.status.get_or_insert_with(Default::default);
                let forget: Vec<String> = status
                    .nodes
                    .values()
                    .filter(|n| {
                        !matches!(
                            n.phase,
                            Some(argon_crds::workflow::NodePhase::Succeeded | argon_crds::workflow::NodePhase::Skipped)
                        )
                    })
                    .map(|n| n.id.clone())
                    .collect();
                for id in &forget {
                    status.nodes.remove(id);
                }
                for n in status.nodes.values_mut() {
                    n.children.retain(|c| !forget.contains(c));
                }
                status.phase = Some(WorkflowPhase::Running);
                status.finished_at = None;
                status.message = None;
                wf.spec.shutdown = None;
                wf.spec.suspend = None;
                self.store.delete_nodes(&uid, &forget)?;
                for n in status.nodes.values() {
                    self.store.put_node(&uid, n)?;
                }
                self.store.update_workflow(&wf)?;
                let run = self.start(wf)?;
                Ok(run.snapshot())
            }
            WorkflowAction::Resubmit => {
                let old = self.workflow_by_uid(&uid)?;
                let mut wf = Workflow::new("", old.spec.clone());
                wf.metadata.name = None;
                wf.metadata.generate_name = Some(format!("{}-", old.metadata.name.clone().unwrap_or_default()));
                wf.metadata.namespace = old.metadata.namespace.clone();
                wf.metadata.labels = old.metadata.labels.clone();
                let s = self.submit_workflow(namespace, wf, SubmitOptions::default())?;
                self.get_workflow(&s.namespace, &s.name)
            }
        }
    }

    /// Deletes finished workflows whose `ttlStrategy` says so (the store
    /// keeps each one's expiry time, indexed: a tick reads only those due).
    fn collect_expired(&self) -> Result<()> {
        for (namespace, name) in self.store.expired(chrono::Utc::now())? {
            tracing::info!(workflow = %name, "deleting workflow past its ttl");
            match self.delete_workflow(&namespace, &name) {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

/// The filter of list options and the position their `continue` token stands for.
fn parse_list(options: &ListOptions) -> Result<(Filter, Option<crate::store::Position>)> {
    let filter = Filter::parse(options)?;
    let after = options
        .continue_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(crate::store::Position::from_token)
        .transpose()?;
    Ok((filter, after))
}

fn check(findings: Vec<argon_crds::diag::Finding>) -> Result<()> {
    let errors: Vec<String> = findings
        .into_iter()
        .filter(|f| f.severity == argon_crds::diag::Severity::Error)
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors.join("; ")))
    }
}

/// Sets `-p NAME=VALUE` overrides on `spec.arguments.parameters`, adding
/// parameters the spec does not declare.
fn apply_parameters(spec: &mut WorkflowSpec, params: &[(String, String)]) -> Result<()> {
    for (name, value) in params {
        match spec.arguments.parameters.iter_mut().find(|p| &p.name == name) {
            Some(p) => {
                if !p.r#enum.is_empty() && !p.r#enum.iter().any(|e| e.as_str() == value) {
                    return Err(Error::Invalid(format!(
                        "parameter '{name}': value '{value}' is not one of [{}]",
                        p.r#enum.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
                    )));
                }
                p.value = Some(value.as_str().into());
            }
            None => spec.arguments.parameters.push(Parameter::with_value(name, value)),
        }
    }
    Ok(())
}

/// A WorkflowTemplate's spec with the settings of the workflow that refers to it on top.
fn merge_template_spec(mut base: WorkflowSpec, wf: &WorkflowSpec) -> WorkflowSpec {
    for p in &wf.arguments.parameters {
        match base.arguments.parameters.iter_mut().find(|b| b.name == p.name) {
            Some(b) => *b = p.clone(),
            None => base.arguments.parameters.push(p.clone()),
        }
    }
    for a in &wf.arguments.artifacts {
        match base.arguments.artifacts.iter_mut().find(|b| b.name == a.name) {
            Some(b) => *b = a.clone(),
            None => base.arguments.artifacts.push(a.clone()),
        }
    }
    macro_rules! take {
        ($($field:ident),*) => {$(
            if wf.$field.is_some() {
                base.$field = wf.$field.clone();
            }
        )*};
    }
    take!(
        entrypoint,
        on_exit,
        ttl_strategy,
        active_deadline_seconds,
        parallelism,
        service_account_name,
        retry_strategy,
        suspend,
        security_context
    );
    base.templates.extend(wf.templates.iter().cloned());
    base.workflow_template_ref = None;
    base
}

fn invalid(e: serde_json::Error) -> Error {
    Error::Invalid(e.to_string())
}

/// Control state of a running workflow, changed by actions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Control {
    pub suspended: bool,
    pub shutdown: Option<(ShutdownStrategy, String)>,
    /// Counts resumes; a suspend node compares it with the count it saw
    /// when it began waiting.
    pub resume_seq: u64,
    /// Suspend nodes that were waiting when a resume came. A node shows as
    /// Running a moment before it reads `resume_seq`, so a resume in that
    /// moment is kept here and not lost.
    pub resumed: std::collections::BTreeSet<String>,
}

/// The variables every template of a workflow sees.
pub(crate) fn global_vars(wf: &Workflow, spec: &WorkflowSpec) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let name = wf.metadata.name.clone().unwrap_or_default();
    v.insert("workflow.name".into(), name);
    v.insert(
        "workflow.namespace".into(),
        wf.metadata.namespace.clone().unwrap_or_default(),
    );
    v.insert("workflow.uid".into(), wf.metadata.uid.clone().unwrap_or_default());
    v.insert(
        "workflow.mainEntrypoint".into(),
        spec.entrypoint.clone().unwrap_or_default(),
    );
    v.insert(
        "workflow.serviceAccountName".into(),
        spec.service_account_name.clone().unwrap_or_default(),
    );
    if let Some(t) = &wf.metadata.creation_timestamp {
        v.insert(
            "workflow.creationTimestamp".into(),
            crate::time::to_chrono(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    if let Some(p) = spec.priority {
        v.insert("workflow.priority".into(), p.to_string());
    }
    let mut all = serde_json::Map::new();
    for p in &spec.arguments.parameters {
        let value = p.value_or_default().unwrap_or("").to_string();
        all.insert(p.name.clone(), serde_json::Value::String(value.clone()));
        v.insert(format!("workflow.parameters.{}", p.name), value);
    }
    v.insert("workflow.parameters".into(), serde_json::Value::Object(all).to_string());
    for (k, val) in wf.metadata.labels.iter().flatten() {
        v.insert(format!("workflow.labels.{k}"), val.clone());
    }
    for (k, val) in wf.metadata.annotations.iter().flatten() {
        v.insert(format!("workflow.annotations.{k}"), val.clone());
    }
    if let Some(t) = wf
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("workflows.argoproj.io/scheduled-time"))
    {
        v.insert("workflow.scheduledTime".into(), t.clone());
    }
    v
}

/// Refuses the names, labels and annotations Kubernetes would refuse
/// ([`argon_crds::names`]): they become store keys and parts of paths.
fn check_names(namespace: &str, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Result<()> {
    let mut problems: Vec<String> = argon_crds::names::check_metadata(meta)
        .into_iter()
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect();
    if !namespace.is_empty()
        && let Some(e) = argon_crds::names::namespace_error(namespace)
    {
        problems.push(format!("namespace {} {e}", argon_crds::names::shown(namespace)));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(problems.join("; ")))
    }
}

/// Where a recorded output artifact of `wf` is stored, in the repository the
/// workflow recorded in its status; `None` once its artifactGC deleted it.
fn stored_place(wf: &Workflow, a: &argon_crds::workflow::Artifact) -> Option<crate::artifacts::Place> {
    let chosen = wf
        .status
        .as_ref()
        .and_then(|s| s.artifact_repository_ref.as_ref())
        .and_then(crate::artifacts::Chosen::from_status)
        .unwrap_or_default();
    a.location
        .s3
        .as_ref()
        .filter(|_| a.deleted != Some(true))
        .map(|l| chosen.place_of(l))
}
