//! The operator of one workflow: walks its templates from the entrypoint,
//! creating a node for every template call (steps and their groups, DAG
//! tasks, retries, leaf steps), runs leaf steps through the executor, and
//! records every change. Nodes are named as the upstream controller names
//! them, and their ids derive from their names, so a resumed operator finds
//! the nodes a previous run finished and reuses their outcome.
//!
//! This file owns the operator's types, the workflow's run from entrypoint
//! to exit handler ([`operate`]) and the run of one template call as a node
//! ([`Ctx::execute`]: resumption, retries, the dispatch to the body of its
//! kind); each kind of body lives in its own file.

mod artifacts;
pub(crate) use artifacts::{LOGS_ARTIFACT, collect_garbage, garbage};
mod daemon;
mod dag;
mod error;
mod expand;
mod hooks;
mod http;
mod inputs;
mod nodes;
mod outputs;
mod pod;
mod resolve;
mod retry;
mod steps;
mod suspend;

use std::sync::Arc;
use std::time::Duration;

use argon_crds::workflow::{
    Arguments, Inputs, NodePhase, NodeStatus, NodeType, Outputs, Parameter, Template, TemplateKind, TemplateRef,
    Workflow, WorkflowPhase, WorkflowSpec,
};
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Engine, Run, global_vars};
use crate::expr::Vars;
use error::{OperatorError, Result};
use inputs::resolve_inputs;
use nodes::{failures, kind_type, progress};

/// Prefix of the variable values that name an artifact in the repository.
const ARTIFACT_REF: &str = "argon-artifact:";

#[derive(Clone)]
struct Ctx {
    engine: Arc<Engine>,
    run: Arc<Run>,
    cancel: CancellationToken,
    depth: usize,
    globals: Arc<Vars>,
    wf_sem: Option<Arc<Semaphore>>,
    spec: Arc<WorkflowSpec>,
    /// The daemon steps of the innermost steps or DAG template running.
    daemons: Arc<daemon::Daemons>,
    /// The artifact repository the workflow stores its outputs in.
    repo: Arc<crate::artifacts::Chosen>,
}

/// Where template names resolve: the workflow's spec, or a WorkflowTemplate's.
#[derive(Clone)]
struct Scope {
    spec: Arc<WorkflowSpec>,
}

#[derive(Clone)]
struct Resolved {
    tmpl: Arc<Template>,
    scope: Scope,
    template_ref: Option<TemplateRef>,
}

/// A call of a template: the node it creates.
struct Call {
    name: String,
    display: String,
    boundary: Option<String>,
    parent: Option<String>,
    resolved: Resolved,
    args: Arguments,
}

/// The message of a step that runs again because the engine restarted.
const RESTARTED: &str = "the engine restarted while this step was running; the step runs again from the start";

/// How a template's body ended.
#[derive(Clone)]
struct Finished {
    phase: NodePhase,
    message: Option<String>,
    outputs: Option<Outputs>,
}

impl Finished {
    fn ok(outputs: Option<Outputs>) -> Finished {
        Finished {
            phase: NodePhase::Succeeded,
            message: None,
            outputs,
        }
    }

    fn error(msg: impl std::fmt::Display) -> Finished {
        Finished {
            phase: NodePhase::Error,
            message: Some(msg.to_string()),
            outputs: None,
        }
    }

    fn failed(msg: impl std::fmt::Display) -> Finished {
        Finished {
            phase: NodePhase::Failed,
            message: Some(msg.to_string()),
            outputs: None,
        }
    }
}

fn now() -> Time {
    crate::time::now()
}

/// The id of the node named `name`: the workflow's name for the root,
/// else the name's FNV-1a hash after the workflow's name.
fn node_id(wf_name: &str, name: &str) -> String {
    if name == wf_name {
        return wf_name.to_string();
    }
    let mut h: u32 = 0x811c9dc5;
    for b in name.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    format!("{wf_name}-{h}")
}

/// The spec a workflow runs: the stored WorkflowTemplate spec, or its own.
pub(crate) fn effective_spec(wf: &Workflow) -> WorkflowSpec {
    wf.status
        .as_ref()
        .and_then(|s| s.stored_workflow_template_spec.clone())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_else(|| wf.spec.clone())
}

pub(crate) async fn operate(engine: Arc<Engine>, run: Arc<Run>) {
    let store = engine.store();
    let (wf, spec) = run.with(|wf| (wf.clone(), effective_spec(wf)));
    let spec = Arc::new(spec);
    let started = run.update_workflow_ret(store, |wf| {
        let s = wf.status.get_or_insert_with(Default::default);
        s.phase = Some(WorkflowPhase::Running);
        crate::time::to_chrono(s.started_at.get_or_insert_with(now))
    });
    if let Some(secs) = spec.active_deadline_seconds {
        let r = run.clone();
        let deadline = started + chrono::Duration::seconds(secs.max(0));
        tokio::spawn(async move {
            let wait = (deadline - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {
                    r.expire(format!("Step exceeded its deadline: the workflow ran longer than its activeDeadlineSeconds ({secs}s)"));
                }
                _ = r.exit_cancel.cancelled() => {}
            }
        });
    }
    let wf_sem = spec
        .parallelism
        .filter(|p| *p > 0)
        .map(|p| Arc::new(Semaphore::new(p as usize)));
    let globals = Arc::new(global_vars(&wf, &spec));
    let repo = artifacts::choose_repository(&engine, &run);
    let ctx = Ctx {
        engine: engine.clone(),
        run: run.clone(),
        cancel: run.main_cancel.clone(),
        depth: 0,
        globals,
        wf_sem,
        spec: spec.clone(),
        daemons: Arc::default(),
        repo: Arc::new(repo.clone().unwrap_or_default()),
    };
    let scope = Scope { spec: spec.clone() };
    let entry = spec.entrypoint.clone().unwrap_or_default();
    let resolved = match repo {
        Ok(_) => ctx.resolve(&scope, Some(&entry), None, None).await,
        Err(e) => Err(OperatorError::Artifact(format!("artifact repository: {e}"))),
    };
    let root = match resolved {
        Ok(resolved) => {
            ctx.execute(Call {
                name: run.name.clone(),
                display: run.name.clone(),
                boundary: None,
                parent: None,
                resolved,
                args: spec.arguments.clone(),
            })
            .await
        }
        Err(msg) => ctx.error_node(&run.name, &run.name, None, None, msg),
    };
    // A daemon entrypoint lives as long as the workflow's main part.
    ctx.stop_daemons().await;
    let control = run.control_now();
    let (mut phase, mut message) = match root.phase {
        Some(NodePhase::Failed) => (WorkflowPhase::Failed, root.message.clone()),
        Some(NodePhase::Error) => (WorkflowPhase::Error, root.message.clone()),
        _ => (WorkflowPhase::Succeeded, None),
    };
    if let Some((_, msg)) = &control.shutdown {
        if phase == WorkflowPhase::Succeeded && !run.main_cancel.is_cancelled() {
            // Finished before the stop took effect.
        } else {
            phase = WorkflowPhase::Failed;
            message = Some(msg.clone());
        }
    }
    if let Some(on_exit) = spec.on_exit.clone().filter(|_| !run.exit_cancel.is_cancelled()) {
        let mut globals = (*ctx.globals).clone();
        globals.insert("workflow.status".into(), format!("{phase:?}"));
        globals.insert("workflow.failures".into(), failures(&run));
        let exit_ctx = Ctx {
            cancel: run.exit_cancel.clone(),
            globals: Arc::new(globals),
            ..ctx.clone()
        };
        let name = format!("{}.onExit", run.name);
        let node = match exit_ctx.resolve(&scope, Some(&on_exit), None, None).await {
            Ok(resolved) => {
                exit_ctx
                    .execute(Call {
                        name: name.clone(),
                        display: name.clone(),
                        boundary: None,
                        parent: None,
                        resolved,
                        args: Arguments::default(),
                    })
                    .await
            }
            Err(msg) => exit_ctx.error_node(&name, &name, None, None, msg),
        };
        exit_ctx.stop_daemons().await;
        if matches!(node.phase, Some(NodePhase::Failed | NodePhase::Error)) && phase == WorkflowPhase::Succeeded {
            phase = WorkflowPhase::Failed;
            message = Some(format!(
                "exit handler failed: {}",
                node.message.unwrap_or_else(|| "see its node".into())
            ));
        }
    }
    // What the steps shared (their network, containers still being removed)
    // is released before the workflow is reported finished.
    engine
        .executor
        .workflow_finished(&run.uid, phase == WorkflowPhase::Succeeded)
        .await;
    // Artifacts collected on completion are gone once it is reported.
    let on_completion = argon_crds::workflow::ArtifactGcStrategy::OnWorkflowCompletion;
    let garbage = run.with(|wf| artifacts::garbage(wf, on_completion));
    if !garbage.is_empty() {
        let deleted = artifacts::collect_garbage(&engine, garbage).await;
        run.artifacts_collected(store, on_completion, &deleted);
    }
    let outputs = run.global_outputs.lock().unwrap_or_else(|e| e.into_inner()).clone();
    run.update_workflow(store, |wf| {
        let s = wf.status.get_or_insert_with(Default::default);
        s.phase = Some(phase);
        s.message = message;
        s.finished_at = Some(now());
        if !outputs.is_empty() {
            s.outputs = Some(Outputs {
                parameters: outputs.iter().map(|(k, v)| Parameter::with_value(k, v)).collect(),
                ..Default::default()
            });
        }
        s.progress = Some(progress(&s.nodes));
    });
    run.exit_cancel.cancel();
    if !run.is_deleted() {
        if engine.config.archive
            && let Err(e) = store.archive(&run.snapshot())
        {
            tracing::error!(workflow = %run.name, error = %e, "cannot archive the workflow");
        }
        // Removed before the run leaves the live table (no await here): a
        // retry right after the workflow ended must not race the removal.
        let _ = std::fs::remove_dir_all(engine.config.state_dir.join("steps").join(&run.uid));
    }
}

/// Removes the folder `dir` and all it holds, if it exists, on a blocking
/// thread: unlinking a step's files waits on the disk, and on the runtime's
/// own threads that wait held up every other workflow (a profile of 500
/// one-step workflows at once showed the runtime's threads waiting in
/// `remove_dir_all` of step folders more than anywhere else).
pub(super) async fn remove_dir(dir: &std::path::Path) {
    let dir = dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
}

impl Ctx {
    /// Runs a template call as a node, with its retries; returns the finished node.
    fn execute(&self, call: Call) -> BoxFuture<'static, NodeStatus> {
        let ctx = self.clone();
        Box::pin(async move {
            let store = ctx.engine.store();
            let run = ctx.run.clone();
            let id = node_id(&run.name, &call.name);
            if let Some(parent) = &call.parent {
                run.add_child(store, parent, &id);
            }
            if let Some(existing) = run.node(&id) {
                if existing.phase.is_some_and(|p| p.is_fulfilled()) {
                    return existing;
                }
                if let Some(f) = ctx.interrupted(&existing) {
                    return ctx.finish(&id, f);
                }
            }
            if ctx.depth >= ctx.engine.config.max_depth {
                return ctx.error_node(
                    &call.name,
                    &call.display,
                    None,
                    call.boundary.as_deref(),
                    format!(
                        "maximum recursion depth exceeded: templates nested {} deep; a template that calls \
                         itself needs a condition that stops it",
                        ctx.engine.config.max_depth
                    ),
                );
            }
            let tmpl = call.resolved.tmpl.clone();
            let retry = tmpl.retry_strategy.clone().or_else(|| ctx.spec.retry_strategy.clone());
            let node_type = if retry.is_some() {
                NodeType::Retry
            } else {
                kind_type(&tmpl)
            };
            let t = now();
            run.update_node(store, &id, |n| {
                n.name = call.name.clone();
                n.display_name = Some(call.display.clone());
                n.type_ = Some(node_type);
                n.template_name =
                    (!tmpl.name.is_empty() && call.resolved.template_ref.is_none()).then(|| tmpl.name.clone());
                n.template_ref = call.resolved.template_ref.clone();
                n.boundary_id = call.boundary.clone();
                // A step an engine left running stays Running (its executor
                // re-attaches to it); a new one waits as Pending.
                let resumed = n.phase == Some(NodePhase::Running);
                n.phase = Some(if node_type == NodeType::Pod && !resumed {
                    NodePhase::Pending
                } else {
                    NodePhase::Running
                });
                n.started_at.get_or_insert(t);
            });
            let inputs = match resolve_inputs(&tmpl, &call.args) {
                Ok(i) => i,
                Err(msg) => return ctx.finish(&id, Finished::error(msg)),
            };
            if !inputs.is_empty() {
                run.update_node(store, &id, |n| n.inputs = Some(inputs.clone()));
            }
            let vars = ctx.template_vars(&tmpl, &inputs, &call.name, &id);
            let child_ctx = Ctx {
                depth: ctx.depth + 1,
                ..ctx.clone()
            };
            let finished = match retry {
                Some(strategy) => child_ctx.retry_loop(&call, &id, &inputs, vars, &strategy).await,
                None => child_ctx.body(&id, &call.name, &call.resolved, &inputs, vars).await,
            };
            if let Some(outputs) = &finished.outputs {
                ctx.export_globals(&tmpl, outputs);
            }
            ctx.finish(&id, finished)
        })
    }

    /// A step an engine that stopped left running: a container executor
    /// re-attaches to it (the step goes on, `None`); a process executor's
    /// step died with that engine and runs again from the start, once: a
    /// step interrupted a second time fails.
    fn interrupted(&self, node: &NodeStatus) -> Option<Finished> {
        if node.type_ != Some(NodeType::Pod) || node.phase != Some(NodePhase::Running) {
            return None;
        }
        if self.engine.executor.steps_outlive_engine() {
            return None;
        }
        if node.message.as_deref() == Some(RESTARTED) {
            return Some(Finished::failed(
                "the engine restarted twice while this step was running; the step was interrupted",
            ));
        }
        self.run.update_node(self.engine.store(), &node.id, |n| {
            n.message = Some(RESTARTED.to_string())
        });
        None
    }

    fn finish(&self, id: &str, f: Finished) -> NodeStatus {
        // A daemon (or the retry node above one) runs on until its scope ends.
        let daemoned = f.phase == NodePhase::Running;
        if daemoned {
            self.daemons.add(id, None);
        }
        self.run.update_node(self.engine.store(), id, |n| {
            n.phase = Some(f.phase);
            n.message = f.message;
            if f.outputs.as_ref().is_some_and(|o| !o.is_empty()) {
                n.outputs = f.outputs;
            }
            if daemoned {
                n.daemoned = Some(true);
            } else {
                n.finished_at = Some(now());
            }
        })
    }

    /// Runs a template's body on node `id`.
    fn body<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        resolved: &'a Resolved,
        inputs: &'a Inputs,
        vars: Vars,
    ) -> BoxFuture<'a, Finished> {
        Box::pin(async move {
            let tmpl = &resolved.tmpl;
            match tmpl.kind() {
                Some(TemplateKind::Container | TemplateKind::Script | TemplateKind::ContainerSet) => {
                    self.pod(id, tmpl, inputs, &vars).await
                }
                Some(TemplateKind::Steps) => {
                    let scope = self.daemon_scope();
                    let f = scope.steps(id, name, resolved, &vars).await;
                    scope.stop_daemons().await;
                    f
                }
                Some(TemplateKind::Dag) => {
                    let scope = self.daemon_scope();
                    let f = scope.dag(id, name, resolved, &vars).await;
                    scope.stop_daemons().await;
                    f
                }
                Some(TemplateKind::Suspend) => self.suspend(id, tmpl, &vars).await,
                Some(TemplateKind::Http) => self.http(id, tmpl, &vars).await,
                Some(TemplateKind::Resource) => Finished::error(
                    "resource templates create Kubernetes resources and need a cluster; Argon runs this \
                     workflow locally without one",
                ),
                Some(other) => Finished::error(format!(
                    "{} templates are not supported by Argon's local engine yet",
                    other.field()
                )),
                None => Finished::error(format!(
                    "template '{}' has no kind (container, script, steps, dag...)",
                    tmpl.name
                )),
            }
        })
    }

    /// Waits while the workflow is suspended; an error once it is shut down.
    async fn gate(&self) -> Result<()> {
        let mut rx = self.run.control();
        loop {
            if self.cancel.is_cancelled() {
                return Err(OperatorError::Stopped(self.shutdown_message()));
            }
            if !rx.borrow_and_update().suspended {
                return Ok(());
            }
            tokio::select! {
                r = rx.changed() => { if r.is_err() { return Err(OperatorError::Stopped(self.shutdown_message())); } }
                _ = self.cancel.cancelled() => {}
            }
        }
    }

    fn shutdown_message(&self) -> String {
        self.run
            .control_now()
            .shutdown
            .map(|(_, m)| m)
            .unwrap_or_else(|| "the workflow was stopped".to_string())
    }
}

/// Awaits a step's task. Step tasks are never aborted, so a cancelled one
/// means the runtime is shutting down (the engine is stopping): then this
/// never returns, nothing is written about the interrupted step, and the
/// engine that opens the state next resumes it.
async fn joined<T>(h: tokio::task::JoinHandle<T>) -> Result<T> {
    match h.await {
        Ok(v) => Ok(v),
        Err(e) if e.is_cancelled() => stopping().await,
        Err(e) => Err(OperatorError::Panicked(e)),
    }
}

/// Waits for the shutting-down runtime to drop the caller.
pub(super) async fn stopping<T>() -> T {
    std::future::pending().await
}

/// Parses `"20"` (seconds) or a duration such as `2m`.
fn parse_seconds_or_duration(s: &str) -> Result<Duration> {
    argon_crds::time::parse_seconds_or_duration(s).map_err(OperatorError::Duration)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_task_cancelled_by_a_stopping_runtime_is_not_reported() {
        use futures::FutureExt;
        let ok = tokio::spawn(async { 7 });
        assert_eq!(joined(ok).await.ok(), Some(7));

        let panics = tokio::spawn(async { panic!("boom") });
        let err: Result<()> = joined(panics).await;
        assert!(err.unwrap_err().to_string().contains("boom"));

        // What a stopping runtime does to every task: cancel it.
        let cancelled = tokio::spawn(std::future::pending::<()>());
        cancelled.abort();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cancelled.is_finished() {
            assert!(std::time::Instant::now() < deadline, "the task was never cancelled");
            tokio::task::yield_now().await;
        }
        // Its result is ready, yet the waiter never gets it as an error to record.
        assert!(joined(cancelled).now_or_never().is_none());
    }

    #[test]
    fn node_ids_are_stable_and_the_root_is_the_workflow() {
        assert_eq!(node_id("wf", "wf"), "wf");
        assert_eq!(node_id("wf", "wf[0].a"), node_id("wf", "wf[0].a"));
        assert_ne!(node_id("wf", "wf[0].a"), node_id("wf", "wf[0].b"));
    }
}
