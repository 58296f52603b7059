//! The operator of one workflow: walks its templates from the entrypoint,
//! creating a node for every template call (steps and their groups, DAG
//! tasks, retries, leaf steps), runs leaf steps through the executor, and
//! records every change. Nodes are named as the upstream controller names
//! them, and their ids derive from their names, so a resumed operator finds
//! the nodes a previous run finished and reuses their outcome.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use argon_crds::workflow::{
    Arguments, Artifact, ContinueOn, Depends, Inputs, NodePhase, NodeStatus, NodeType, Outputs, Parameter, RetryPolicy,
    S3Artifact, Sequence, TaskResult, Template, TemplateKind, TemplateRef, Workflow, WorkflowPhase, WorkflowSpec,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Engine, Run, global_vars};
use crate::executor::spec::container_spec;
use crate::executor::{ContainerSpec, LogSink, StepOwner, StepProcess};
use crate::expr::{self, Vars};

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

    fn error(msg: impl Into<String>) -> Finished {
        Finished {
            phase: NodePhase::Error,
            message: Some(msg.into()),
            outputs: None,
        }
    }

    fn failed(msg: impl Into<String>) -> Finished {
        Finished {
            phase: NodePhase::Failed,
            message: Some(msg.into()),
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
    let ctx = Ctx {
        engine: engine.clone(),
        run: run.clone(),
        cancel: run.main_cancel.clone(),
        depth: 0,
        globals,
        wf_sem,
        spec: spec.clone(),
    };
    let scope = Scope { spec: spec.clone() };
    let entry = spec.entrypoint.clone().unwrap_or_default();
    let root = match resolve(&ctx, &scope, Some(&entry), None, None).await {
        Ok(resolved) => {
            execute(
                ctx.clone(),
                Call {
                    name: run.name.clone(),
                    display: run.name.clone(),
                    boundary: None,
                    parent: None,
                    resolved,
                    args: spec.arguments.clone(),
                },
            )
            .await
        }
        Err(msg) => error_node(&ctx, &run.name, &run.name, None, None, &msg),
    };
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
        let node = match resolve(&exit_ctx, &scope, Some(&on_exit), None, None).await {
            Ok(resolved) => {
                execute(
                    exit_ctx.clone(),
                    Call {
                        name: name.clone(),
                        display: name.clone(),
                        boundary: None,
                        parent: None,
                        resolved,
                        args: Arguments::default(),
                    },
                )
                .await
            }
            Err(msg) => error_node(&exit_ctx, &name, &name, None, None, &msg),
        };
        if matches!(node.phase, Some(NodePhase::Failed | NodePhase::Error)) && phase == WorkflowPhase::Succeeded {
            phase = WorkflowPhase::Failed;
            message = Some(format!(
                "exit handler failed: {}",
                node.message.unwrap_or_else(|| "see its node".into())
            ));
        }
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
    engine.executor.workflow_finished(&run.uid).await;
    if !run.is_deleted() {
        let _ = std::fs::remove_dir_all(engine.config.state_dir.join("steps").join(&run.uid));
    }
}

fn progress(nodes: &BTreeMap<String, NodeStatus>) -> String {
    let pods = nodes.values().filter(|n| n.type_ == Some(NodeType::Pod));
    let (done, total) = pods.fold((0, 0), |(d, t), n| {
        (d + usize::from(n.phase.is_some_and(|p| p.is_completed())), t + 1)
    });
    format!("{done}/{total}")
}

/// `workflow.failures`: the failed and errored leaf nodes, as JSON.
fn failures(run: &Run) -> String {
    run.with(|wf| {
        let list: Vec<Value> = wf
            .status
            .iter()
            .flat_map(|s| s.nodes.values())
            .filter(|n| matches!(n.phase, Some(NodePhase::Failed | NodePhase::Error)))
            .filter(|n| n.children.is_empty())
            .map(|n| {
                serde_json::json!({
                    "displayName": n.display_name,
                    "message": n.message,
                    "templateName": n.template_name,
                    "phase": n.phase,
                    "podName": n.id,
                    "finishedAt": n.finished_at,
                })
            })
            .collect();
        Value::Array(list).to_string()
    })
}

impl Run {
    fn update_workflow_ret<R>(&self, store: &crate::store::Store, f: impl FnOnce(&mut Workflow) -> R) -> R {
        let mut out = None;
        self.update_workflow(store, |wf| out = Some(f(wf)));
        out.expect("the update closure ran")
    }
}

fn error_node(
    ctx: &Ctx,
    name: &str,
    display: &str,
    parent: Option<&str>,
    boundary: Option<&str>,
    msg: &str,
) -> NodeStatus {
    let id = node_id(&ctx.run.name, name);
    let store = ctx.engine.store();
    let t = now();
    let node = ctx.run.update_node(store, &id, |n| {
        n.name = name.to_string();
        n.display_name = Some(display.to_string());
        n.type_.get_or_insert(NodeType::Pod);
        n.phase = Some(NodePhase::Error);
        n.message = Some(msg.to_string());
        n.boundary_id = boundary.map(str::to_string);
        n.started_at.get_or_insert(t.clone());
        n.finished_at = Some(t);
    });
    if let Some(p) = parent {
        ctx.run.add_child(store, p, &id);
    }
    node
}

/// Finds the template a step, task or hook calls.
async fn resolve(
    ctx: &Ctx,
    scope: &Scope,
    template: Option<&str>,
    template_ref: Option<&TemplateRef>,
    inline: Option<&Template>,
) -> Result<Resolved, String> {
    let mut resolved = resolve_plain(ctx, scope, template, template_ref, inline).await?;
    if let Some(defaults) = &ctx.spec.template_defaults {
        resolved.tmpl = Arc::new(with_defaults(&resolved.tmpl, defaults)?);
    }
    Ok(resolved)
}

/// `templateDefaults` under a template: the template's own fields win; the
/// defaults' kind fields (container, script...) apply only to a template of
/// that kind.
fn with_defaults(tmpl: &Template, defaults: &Template) -> Result<Template, String> {
    fn merge(base: &mut Value, over: &Value) {
        match (base, over) {
            (Value::Object(b), Value::Object(o)) => {
                for (k, v) in o {
                    match b.get_mut(k) {
                        Some(existing) => merge(existing, v),
                        None => {
                            b.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (b, o) => *b = o.clone(),
        }
    }
    let mut base = serde_json::to_value(defaults).map_err(|e| e.to_string())?;
    if let Value::Object(m) = &mut base {
        let own: Vec<&str> = tmpl.kinds().iter().map(|k| k.field()).collect();
        for k in TemplateKind::ALL {
            if !own.contains(&k.field()) {
                m.remove(k.field());
            }
        }
        m.remove("name");
    }
    merge(&mut base, &serde_json::to_value(tmpl).map_err(|e| e.to_string())?);
    serde_json::from_value(base).map_err(|e| format!("templateDefaults: {e}"))
}

async fn resolve_plain(
    ctx: &Ctx,
    scope: &Scope,
    template: Option<&str>,
    template_ref: Option<&TemplateRef>,
    inline: Option<&Template>,
) -> Result<Resolved, String> {
    if let Some(t) = inline {
        return Ok(Resolved {
            tmpl: Arc::new(t.clone()),
            scope: scope.clone(),
            template_ref: None,
        });
    }
    if let Some(r) = template_ref {
        let key = (r.name.clone(), r.cluster_scope);
        let cached = ctx
            .run
            .refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let spec = match cached {
            Some(s) => s,
            None => {
                let spec = ctx
                    .engine
                    .resolve_ref(&ctx.run.namespace, r)
                    .map_err(|e| format!("templateRef {}/{}: {e}", r.name, r.template))?;
                let spec = Arc::new(spec);
                ctx.run
                    .refs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, spec.clone());
                spec
            }
        };
        let tmpl = spec
            .template(&r.template)
            .cloned()
            .ok_or_else(|| format!("template '{}' not found in WorkflowTemplate '{}'", r.template, r.name))?;
        return Ok(Resolved {
            tmpl: Arc::new(tmpl),
            scope: Scope { spec },
            template_ref: Some(r.clone()),
        });
    }
    let name = template.unwrap_or("");
    let tmpl = scope
        .spec
        .template(name)
        .cloned()
        .ok_or_else(|| format!("template '{name}' not found"))?;
    Ok(Resolved {
        tmpl: Arc::new(tmpl),
        scope: scope.clone(),
        template_ref: None,
    })
}

fn kind_type(tmpl: &Template) -> NodeType {
    match tmpl.kind() {
        Some(TemplateKind::Steps) => NodeType::Steps,
        Some(TemplateKind::Dag) => NodeType::Dag,
        Some(TemplateKind::Suspend) => NodeType::Suspend,
        Some(TemplateKind::Http) => NodeType::Http,
        _ => NodeType::Pod,
    }
}

/// Runs a template call as a node, with its retries; returns the finished node.
fn execute(ctx: Ctx, call: Call) -> BoxFuture<'static, NodeStatus> {
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
            if let Some(f) = interrupted(&ctx, &existing) {
                return finish(&ctx, &id, f);
            }
        }
        if ctx.depth >= ctx.engine.config.max_depth {
            return error_node(
                &ctx,
                &call.name,
                &call.display,
                None,
                call.boundary.as_deref(),
                &format!(
                    "maximum recursion depth exceeded: templates nested {} deep; a template that calls itself needs a \
                     condition that stops it",
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
            n.phase = Some(if node_type == NodeType::Pod {
                NodePhase::Pending
            } else {
                NodePhase::Running
            });
            n.started_at.get_or_insert(t);
        });
        let inputs = match resolve_inputs(&tmpl, &call.args) {
            Ok(i) => i,
            Err(msg) => return finish(&ctx, &id, Finished::error(msg)),
        };
        if !inputs.is_empty() {
            run.update_node(store, &id, |n| n.inputs = Some(inputs.clone()));
        }
        let vars = template_vars(&ctx, &tmpl, &inputs, &call.name, &id);
        let child_ctx = Ctx {
            depth: ctx.depth + 1,
            ..ctx.clone()
        };
        let finished = match retry {
            Some(strategy) => retry_loop(&child_ctx, &call, &id, &inputs, vars, &strategy).await,
            None => body(&child_ctx, &id, &call.name, &call.resolved, &inputs, vars).await,
        };
        if let Some(outputs) = &finished.outputs {
            export_globals(&ctx, &tmpl, outputs);
        }
        finish(&ctx, &id, finished)
    })
}

/// A step an engine that stopped left running: a container executor
/// re-attaches to it (the step goes on, `None`); a process executor's step
/// died with that engine and runs again from the start, once: a step
/// interrupted a second time fails.
fn interrupted(ctx: &Ctx, node: &NodeStatus) -> Option<Finished> {
    if node.type_ != Some(NodeType::Pod) || node.phase != Some(NodePhase::Running) {
        return None;
    }
    if ctx.engine.executor.steps_outlive_engine() {
        return None;
    }
    if node.message.as_deref() == Some(RESTARTED) {
        return Some(Finished::failed(
            "the engine restarted twice while this step was running; the step was interrupted",
        ));
    }
    ctx.run.update_node(ctx.engine.store(), &node.id, |n| {
        n.message = Some(RESTARTED.to_string())
    });
    None
}

/// The message of a step that runs again because the engine restarted.
const RESTARTED: &str = "the engine restarted while this step was running; the step runs again from the start";

fn finish(ctx: &Ctx, id: &str, f: Finished) -> NodeStatus {
    ctx.run.update_node(ctx.engine.store(), id, |n| {
        n.phase = Some(f.phase);
        n.message = f.message;
        if f.outputs.as_ref().is_some_and(|o| !o.is_empty()) {
            n.outputs = f.outputs;
        }
        n.finished_at = Some(now());
    })
}

/// Output parameters with a `globalName` become `workflow.outputs.parameters.*`.
fn export_globals(ctx: &Ctx, tmpl: &Template, outputs: &Outputs) {
    for decl in &tmpl.outputs.parameters {
        let Some(global) = &decl.global_name else { continue };
        let Some(p) = outputs.parameters.iter().find(|p| p.name == decl.name) else {
            continue;
        };
        let value = p.value_or_default().unwrap_or("").to_string();
        let mut g = ctx.run.global_outputs.lock().unwrap_or_else(|e| e.into_inner());
        g.retain(|(k, _)| k != global);
        g.push((global.clone(), value));
    }
}

/// The values of a template's inputs for this call.
fn resolve_inputs(tmpl: &Template, args: &Arguments) -> Result<Inputs, String> {
    let mut inputs = Inputs::default();
    for p in &tmpl.inputs.parameters {
        let value = args
            .parameter(&p.name)
            .and_then(|a| a.value_or_default().map(str::to_string))
            .or_else(|| p.value.as_ref().map(|v| v.0.clone()))
            .or_else(|| p.default.as_ref().map(|v| v.0.clone()));
        let Some(value) = value else {
            return Err(format!("inputs.parameters.{} was not supplied", p.name));
        };
        if !p.r#enum.is_empty() && !p.r#enum.iter().any(|e| e.0 == value) {
            return Err(format!(
                "inputs.parameters.{}: value '{value}' is not one of [{}]",
                p.name,
                p.r#enum.iter().map(|e| e.0.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        inputs.parameters.push(Parameter {
            value: Some(value.into()),
            ..p.clone()
        });
    }
    for a in &tmpl.inputs.artifacts {
        let mut art = a.clone();
        if let Some(arg) = args.artifacts.iter().find(|x| x.name == a.name) {
            if arg.from.is_some() {
                art.from = arg.from.clone();
            }
            if !arg.location.is_empty() {
                art.location = arg.location.clone();
            }
            if arg.archive.is_some() {
                art.archive = arg.archive.clone();
            }
        }
        let supplied = art.from.is_some() || !art.location.is_empty();
        if !supplied && !art.optional.unwrap_or(false) {
            return Err(format!("inputs.artifacts.{} was not supplied", a.name));
        }
        inputs.artifacts.push(art);
    }
    Ok(inputs)
}

fn template_vars(ctx: &Ctx, tmpl: &Template, inputs: &Inputs, node_name: &str, id: &str) -> Vars {
    let mut v = (*ctx.globals).clone();
    for (k, val) in ctx.run.global_outputs.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        v.insert(format!("workflow.outputs.parameters.{k}"), val.clone());
    }
    let mut all = serde_json::Map::new();
    for p in &inputs.parameters {
        let value = p.value_or_default().unwrap_or("").to_string();
        all.insert(p.name.clone(), Value::String(value.clone()));
        v.insert(format!("inputs.parameters.{}", p.name), value);
    }
    if !inputs.parameters.is_empty() {
        v.insert("inputs.parameters".into(), Value::Object(all).to_string());
    }
    for a in &inputs.artifacts {
        if let Some(path) = &a.path {
            v.insert(format!("inputs.artifacts.{}.path", a.name), path.clone());
        }
    }
    for p in &tmpl.outputs.parameters {
        if let Some(path) = p.value_from.as_ref().and_then(|f| f.path.as_ref()) {
            v.insert(format!("outputs.parameters.{}.path", p.name), path.clone());
        }
    }
    for a in &tmpl.outputs.artifacts {
        if let Some(path) = &a.path {
            v.insert(format!("outputs.artifacts.{}.path", a.name), path.clone());
        }
    }
    v.insert("node.name".into(), node_name.to_string());
    v.insert("pod.name".into(), id.to_string());
    v
}

/// Waits while the workflow is suspended; an error once it is shut down.
async fn gate(ctx: &Ctx) -> Result<(), String> {
    let mut rx = ctx.run.control();
    loop {
        if ctx.cancel.is_cancelled() {
            return Err(shutdown_message(ctx));
        }
        if !rx.borrow_and_update().suspended {
            return Ok(());
        }
        tokio::select! {
            r = rx.changed() => { if r.is_err() { return Err(shutdown_message(ctx)); } }
            _ = ctx.cancel.cancelled() => {}
        }
    }
}

fn shutdown_message(ctx: &Ctx) -> String {
    ctx.run
        .control_now()
        .shutdown
        .map(|(_, m)| m)
        .unwrap_or_else(|| "the workflow was stopped".to_string())
}

async fn retry_loop(
    ctx: &Ctx,
    call: &Call,
    id: &str,
    inputs: &Inputs,
    vars: Vars,
    strategy: &argon_crds::workflow::RetryStrategy,
) -> Finished {
    let store = ctx.engine.store();
    let limit = strategy.limit.as_ref().map(|l| int_or_string(l, &vars)).transpose();
    let limit = match limit {
        Ok(l) => l,
        Err(e) => return Finished::error(format!("retryStrategy.limit: {e}")),
    };
    let policy = strategy.retry_policy.unwrap_or(RetryPolicy::OnFailure);
    let backoff = strategy.backoff.as_ref();
    let base = backoff
        .and_then(|b| b.duration.as_deref())
        .map(parse_seconds_or_duration)
        .transpose()
        .unwrap_or(None);
    let factor = backoff
        .and_then(|b| b.factor.as_ref())
        .and_then(|f| int_or_string(f, &vars).ok())
        .unwrap_or(1)
        .max(1) as u32;
    let cap = backoff
        .and_then(|b| b.cap.as_deref())
        .and_then(|c| parse_seconds_or_duration(c).ok());
    let max_duration = backoff
        .and_then(|b| b.max_duration.as_deref())
        .and_then(|c| parse_seconds_or_duration(c).ok());
    let started = std::time::Instant::now();
    let tmpl = &call.resolved.tmpl;
    let mut attempt = 0usize;
    loop {
        let name = format!("{}({attempt})", call.name);
        let display = format!("{}({attempt})", call.display);
        let child_id = node_id(&ctx.run.name, &name);
        ctx.run.add_child(store, id, &child_id);
        let mut avars = vars.clone();
        avars.insert("retries".into(), attempt.to_string());
        let node = match ctx.run.node(&child_id) {
            Some(n) if n.phase.is_some_and(|p| p.is_fulfilled()) => n,
            existing => {
                if let Some(f) = existing.as_ref().and_then(|n| interrupted(ctx, n)) {
                    finish(ctx, &child_id, f)
                } else {
                    let t = now();
                    ctx.run.update_node(store, &child_id, |n| {
                        n.name = name.clone();
                        n.display_name = Some(display.clone());
                        n.type_ = Some(kind_type(tmpl));
                        n.template_name =
                            (!tmpl.name.is_empty() && call.resolved.template_ref.is_none()).then(|| tmpl.name.clone());
                        n.template_ref = call.resolved.template_ref.clone();
                        n.boundary_id = call.boundary.clone();
                        n.phase = Some(NodePhase::Pending);
                        n.started_at.get_or_insert(t);
                    });
                    let f = body(ctx, &child_id, &name, &call.resolved, inputs, avars.clone()).await;
                    finish(ctx, &child_id, f)
                }
            }
        };
        let phase = node.phase.unwrap_or(NodePhase::Error);
        if phase == NodePhase::Succeeded {
            return Finished {
                phase,
                message: None,
                outputs: node.outputs,
            };
        }
        let retryable = match policy {
            RetryPolicy::Always => true,
            RetryPolicy::OnFailure => phase == NodePhase::Failed,
            RetryPolicy::OnError | RetryPolicy::OnTransientError => phase == NodePhase::Error,
        } && !ctx.cancel.is_cancelled();
        let mut allowed = retryable && limit.is_none_or(|l| (attempt as i64) < l);
        if allowed && let Some(expression) = &strategy.expression {
            let mut evars = avars.clone();
            evars.insert("lastRetry.status".into(), format!("{phase:?}"));
            evars.insert(
                "lastRetry.exitCode".into(),
                node.outputs
                    .as_ref()
                    .and_then(|o| o.exit_code.clone())
                    .unwrap_or_else(|| "-1".into()),
            );
            evars.insert("lastRetry.message".into(), node.message.clone().unwrap_or_default());
            allowed = expr::eval_condition(expression, &evars).unwrap_or(false);
        }
        if let Some(max) = max_duration
            && started.elapsed() >= max
        {
            allowed = false;
        }
        if !allowed {
            let mut msg = node.message.clone().unwrap_or_else(|| format!("{phase:?}"));
            if retryable && limit.is_some() {
                msg = format!("{msg} (no more retries left: {} attempt(s))", attempt + 1);
            }
            return Finished {
                phase: if phase == NodePhase::Error {
                    NodePhase::Error
                } else {
                    NodePhase::Failed
                },
                message: Some(msg),
                outputs: node.outputs,
            };
        }
        if let Some(base) = base {
            let mut wait = base.saturating_mul(factor.saturating_pow(attempt as u32));
            if let Some(cap) = cap {
                wait = wait.min(cap);
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = ctx.cancel.cancelled() => {
                    return Finished::failed(shutdown_message(ctx));
                }
            }
        }
        attempt += 1;
    }
}

/// Parses `"20"` (seconds) or a duration such as `2m`.
fn parse_seconds_or_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Ok(Duration::from_secs_f64(secs.max(0.0)));
    }
    argon_crds::common::parse_duration(s)
}

fn int_or_string(v: &IntOrString, vars: &Vars) -> Result<i64, String> {
    match v {
        IntOrString::Int(i) => Ok(*i as i64),
        IntOrString::String(s) => {
            let s = expr::substitute(s, vars).map_err(|e| e.0)?;
            s.trim().parse::<i64>().map_err(|_| format!("'{s}' is not a number"))
        }
    }
}

/// Runs a template's body on node `id`.
fn body<'a>(
    ctx: &'a Ctx,
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
                pod(ctx, id, tmpl, inputs, &vars).await
            }
            Some(TemplateKind::Steps) => steps(ctx, id, name, resolved, &vars).await,
            Some(TemplateKind::Dag) => dag(ctx, id, name, resolved, &vars).await,
            Some(TemplateKind::Suspend) => suspend(ctx, id, tmpl, &vars).await,
            Some(TemplateKind::Http) => http(ctx, id, tmpl, &vars).await,
            Some(TemplateKind::Resource) => Finished::error(
                "resource templates create Kubernetes resources and need a cluster; Argon runs this workflow locally \
                 without one",
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

// ---------------------------------------------------------------- pods

async fn pod(ctx: &Ctx, id: &str, tmpl: &Template, inputs: &Inputs, vars: &Vars) -> Finished {
    let engine = &ctx.engine;
    let store = engine.store();
    if tmpl.daemon.unwrap_or(false) {
        return Finished::error("daemon steps are not supported by Argon's engine yet");
    }
    let set_main = tmpl.container_set.as_ref().and_then(|set| {
        let main = set.containers.iter().find(|c| c.container.name == "main");
        main.or(set.containers.last()).map(|c| &c.container)
    });
    let (container, script) = match (&tmpl.container, &tmpl.script, set_main) {
        (Some(c), _, _) => (c, None),
        (None, Some(s), _) => (&s.container, Some(s.source.as_str())),
        (None, None, Some(c)) => (c, None),
        _ => return Finished::error("the template has no container"),
    };
    let owner = StepOwner {
        workflow_uid: ctx.run.uid.clone(),
        workflow_name: ctx.run.name.clone(),
        namespace: ctx.run.namespace.clone(),
        node_id: id.to_string(),
    };
    let pod_security = tmpl.security_context.as_ref().or(ctx.spec.security_context.as_ref());
    let spec_of = |name: &str, c: &k8s_openapi::api::core::v1::Container| -> Result<ContainerSpec, String> {
        let value = serde_json::to_value(c).map_err(|e| e.to_string())?;
        let c: k8s_openapi::api::core::v1::Container =
            serde_json::from_value(substitute_value(&value, vars)?).map_err(|e| e.to_string())?;
        container_spec(name, &c, pod_security, &engine.config.secrets, &owner)
    };
    let prepared: Result<_, String> = (|| {
        let main = spec_of("main", container)?;
        let init = tmpl
            .init_containers
            .iter()
            .map(|c| spec_of(&c.container.name, &c.container))
            .collect::<Result<Vec<_>, _>>()?;
        let sidecars = tmpl
            .sidecars
            .iter()
            .map(|c| spec_of(&c.container.name, &c.container))
            .collect::<Result<Vec<_>, _>>()?;
        let volumes: Vec<k8s_openapi::api::core::v1::Volume> = match serde_json::to_value(&tmpl.volumes) {
            Ok(v) => serde_json::from_value(substitute_value(&v, vars)?).map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
        };
        let volumes = ctx.spec.volumes.iter().cloned().chain(volumes).collect::<Vec<_>>();
        let script = script.map(|s| expr::substitute(s, vars).map_err(|e| e.0)).transpose()?;
        let mut set = Vec::new();
        if let Some(cs) = &tmpl.container_set {
            for member in &cs.containers {
                let mut c = member.container.clone();
                c.volume_mounts
                    .get_or_insert_with(Vec::new)
                    .extend(cs.volume_mounts.iter().cloned());
                set.push((spec_of(&c.name, &c)?, member.dependencies.clone()));
            }
        }
        let main = match set.iter().find(|(c, _)| c.name == "main").or(set.last()) {
            Some((c, _)) => c.clone(),
            None => main,
        };
        Ok((main, init, sidecars, volumes, script, set))
    })();
    let (main, init_containers, sidecars, volumes, script, container_set) = match prepared {
        Ok(p) => p,
        Err(e) => return Finished::error(e),
    };
    let working_dir = main.working_dir.clone();
    let timeout = match step_timeout(tmpl, vars) {
        Ok(t) => t,
        Err(e) => return Finished::error(e),
    };
    let step_dir = engine.config.state_dir.join("steps").join(&ctx.run.uid).join(id);
    let _ = std::fs::remove_dir_all(&step_dir);
    // The paths the step hands back, then those it reads or works in.
    let outputs = tmpl
        .outputs
        .parameters
        .iter()
        .filter_map(|p| p.value_from.as_ref()?.path.as_ref());
    let output_paths = match outputs
        .chain(tmpl.outputs.artifacts.iter().filter_map(|a| a.path.as_ref()))
        .map(|p| expr::substitute(p, vars).map_err(|e| e.0))
        .collect::<Result<Vec<String>, String>>()
    {
        Ok(p) => p,
        Err(e) => return Finished::error(e),
    };
    let mut paths = output_paths.clone();
    paths.extend(inputs.artifacts.iter().filter_map(|a| a.path.clone()));
    paths.extend(working_dir.clone());
    if let Err(e) = engine.executor.prepare_paths(&step_dir, &paths) {
        return Finished::error(format!("cannot prepare the step's directory: {e}"));
    }
    if let Err(e) = gate(ctx).await {
        return Finished::failed(e);
    }
    let mounts = match place_inputs(ctx, &step_dir, inputs, vars).await {
        Ok(m) => m,
        Err(e) => return Finished::error(e),
    };
    let _permit = match &ctx.wf_sem {
        Some(sem) => tokio::select! {
            p = sem.clone().acquire_owned() => p.ok(),
            _ = ctx.cancel.cancelled() => return Finished::failed(shutdown_message(ctx)),
        },
        None => None,
    };
    if ctx.cancel.is_cancelled() {
        return Finished::failed(shutdown_message(ctx));
    }
    // A stopping engine starts no step: this one stays Pending for the next.
    let Some(running) = engine.step_starting() else {
        return stopping().await;
    };
    ctx.run.update_node(store, id, |n| n.phase = Some(NodePhase::Running));
    let logs: LogSink = {
        let engine = engine.clone();
        let uid = ctx.run.uid.clone();
        let id = id.to_string();
        let run = ctx.run.clone();
        Arc::new(move |stream: &str, lines: Vec<String>| {
            if run.is_deleted() {
                return;
            }
            if let Err(e) = engine.store().append_logs(&uid, &id, stream, &lines) {
                tracing::warn!(error = %e, "cannot store step logs");
            }
            run.bump();
        })
    };
    let step = StepProcess {
        main,
        init_containers,
        sidecars,
        container_set,
        volumes,
        step_dir: step_dir.clone(),
        script,
        mounts,
        outputs: output_paths,
        timeout,
        host_network: ctx.spec.host_network.unwrap_or(false),
        owner,
    };
    if let Err(e) = store.clear_node_logs(&ctx.run.uid, id) {
        tracing::warn!(error = %e, "cannot clear the logs of a step that starts again");
    }
    let outcome = engine.executor.run(step, logs, ctx.cancel.clone()).await;
    drop(_permit);
    // The outcome is stored before the step stops counting as running, so an
    // engine that drains finds it recorded.
    let recorded = |f: Finished| {
        finish(ctx, id, f.clone());
        drop(running);
        f
    };
    if let Some(e) = outcome.start_error {
        let _ = std::fs::remove_dir_all(&step_dir);
        return recorded(Finished::failed(e));
    }
    let mut outputs = Outputs {
        result: Some(outcome.result.clone()),
        exit_code: outcome.exit_code.map(|c| c.to_string()),
        ..Default::default()
    };
    let (mut phase, mut message) = match outcome.exit_code {
        _ if outcome.cancelled => (NodePhase::Failed, Some(shutdown_message(ctx))),
        _ if outcome.timed_out => (
            NodePhase::Failed,
            Some(format!(
                "Pod was active on the node longer than the specified deadline ({}s): the process was killed",
                timeout.map(|t| t.as_secs_f64()).unwrap_or_default()
            )),
        ),
        Some(0) => (NodePhase::Succeeded, None),
        Some(code) if outcome.reason.as_deref() == Some("OOMKilled") => {
            (NodePhase::Failed, Some(format!("OOMKilled (exit code {code})")))
        }
        Some(code) if outcome.reason.is_some() => (
            NodePhase::Failed,
            Some(format!(
                "Error (exit code {code}): {}",
                outcome.reason.clone().unwrap_or_default()
            )),
        ),
        Some(code) => (
            NodePhase::Failed,
            Some(if outcome.last_stderr.is_empty() {
                format!("Error (exit code {code})")
            } else {
                format!("Error (exit code {code}): {}", truncate(&outcome.last_stderr, 300))
            }),
        ),
        None => (NodePhase::Error, Some("the process ended without an exit code".into())),
    };
    if let Some(e) = outcome.output_error.clone()
        && phase == NodePhase::Succeeded
    {
        phase = NodePhase::Error;
        message = Some(e);
    }
    if outcome.exit_code.is_some() && phase != NodePhase::Error {
        match collect_outputs(ctx, id, &step_dir, tmpl, vars, &mut outputs) {
            Ok(()) => {}
            Err(e) if phase == NodePhase::Succeeded => {
                phase = NodePhase::Error;
                message = Some(e);
            }
            Err(_) => {}
        }
    }
    let _ = std::fs::remove_dir_all(&step_dir);
    recorded(Finished {
        phase,
        message,
        outputs: Some(outputs),
    })
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn step_timeout(tmpl: &Template, vars: &Vars) -> Result<Option<Duration>, String> {
    let mut t: Option<Duration> = None;
    if let Some(s) = &tmpl.timeout {
        let s = expr::substitute(s, vars).map_err(|e| e.0)?;
        t = Some(parse_seconds_or_duration(&s).map_err(|e| format!("timeout: {e}"))?);
    }
    if let Some(d) = &tmpl.active_deadline_seconds {
        let secs = int_or_string(d, vars).map_err(|e| format!("activeDeadlineSeconds: {e}"))?;
        let d = Duration::from_secs(secs.max(0) as u64);
        t = Some(t.map_or(d, |x| x.min(d)));
    }
    Ok(t)
}

/// Places the input artifacts where the step sees them; returns the bind mounts needed.
async fn place_inputs(
    ctx: &Ctx,
    step_dir: &std::path::Path,
    inputs: &Inputs,
    vars: &Vars,
) -> Result<Vec<(std::path::PathBuf, String)>, String> {
    let engine = &ctx.engine;
    let mut mounts = Vec::new();
    for (i, art) in inputs.artifacts.iter().enumerate() {
        let Some(path) = &art.path else {
            return Err(format!("inputs.artifacts.{} has no path", art.name));
        };
        let path = expr::substitute(path, vars).map_err(|e| e.0)?;
        let (host, bind) = engine
            .executor
            .input_place(step_dir, &path, i)
            .map_err(|e| format!("input artifact '{}': {e}", art.name))?;
        let res: Result<(), String> = if let Some(from) = &art.from {
            let from = expr::substitute(from, vars).map_err(|e| e.0)?;
            match from.strip_prefix(ARTIFACT_REF) {
                Some(key) => engine.repo.load(key, &host),
                None => Err(format!("'{from}' does not name an output artifact of an earlier step")),
            }
        } else if let Some(raw) = &art.location.raw {
            let data = expr::substitute(&raw.data, vars).map_err(|e| e.0)?;
            crate::artifacts::fetch_raw(&data, &host)
        } else if let Some(h) = &art.location.http {
            let mut h = h.clone();
            h.url = expr::substitute(&h.url, vars).map_err(|e| e.0)?;
            crate::artifacts::fetch_http(&engine.http, &h, &engine.config.secrets, &host).await
        } else if let Some(g) = &art.location.git {
            let mut g = g.clone();
            g.repo = expr::substitute(&g.repo, vars).map_err(|e| e.0)?;
            g.revision = g.revision.map(|r| expr::substitute(&r, vars).unwrap_or(r));
            crate::artifacts::fetch_git(&g, &engine.config.secrets, &host, &step_dir.join("git")).await
        } else if art.optional.unwrap_or(false) {
            continue;
        } else if art.location.s3.is_some() && art.location.s3.as_ref().and_then(|s| s.key.as_ref()).is_some() {
            let key = art.location.s3.as_ref().and_then(|s| s.key.clone()).unwrap_or_default();
            engine.repo.load(&key, &host)
        } else {
            Err("this artifact location is not supported in local mode yet (use from, raw, http or git)".to_string())
        };
        res.map_err(|e| format!("input artifact '{}': {e}", art.name))?;
        if let Some(mode) = art.mode {
            crate::artifacts::set_mode(&host, mode)?;
        }
        if let Some(target) = bind {
            mounts.push((host, target));
        }
    }
    Ok(mounts)
}

/// Reads output parameters and saves output artifacts of a finished step.
fn collect_outputs(
    ctx: &Ctx,
    id: &str,
    step_dir: &std::path::Path,
    tmpl: &Template,
    vars: &Vars,
    outputs: &mut Outputs,
) -> Result<(), String> {
    let engine = &ctx.engine;
    for p in &tmpl.outputs.parameters {
        let from = p.value_from.as_ref();
        let value = if let Some(path) = from.and_then(|f| f.path.as_ref()) {
            let path = expr::substitute(path, vars).map_err(|e| e.0)?;
            let host = engine.executor.host_path(step_dir, &path);
            match std::fs::read(&host) {
                Ok(bytes) => {
                    let mut s = String::from_utf8_lossy(&bytes).into_owned();
                    if s.ends_with('\n') {
                        s.pop();
                    }
                    s
                }
                Err(e) => match from.and_then(|f| f.default.as_ref()) {
                    Some(d) => d.0.clone(),
                    None => {
                        return Err(format!("output parameter '{}': cannot read {path}: {e}", p.name));
                    }
                },
            }
        } else if let Some(expression) = from.and_then(|f| f.expression.as_ref()) {
            let mut v = vars.clone();
            v.insert("outputs.result".into(), outputs.result.clone().unwrap_or_default());
            expr::eval_expression(expression, &v)
                .map(|x| expr::to_text(&x))
                .map_err(|e| format!("output parameter '{}': {}", p.name, e.0))?
        } else if let Some(v) = &p.value {
            expr::substitute(&v.0, vars).map_err(|e| e.0)?
        } else if let Some(d) = from.and_then(|f| f.default.as_ref()) {
            d.0.clone()
        } else {
            continue;
        };
        outputs.parameters.push(Parameter {
            name: p.name.clone(),
            value: Some(value.into()),
            global_name: p.global_name.clone(),
            ..Default::default()
        });
    }
    for a in &tmpl.outputs.artifacts {
        let Some(path) = &a.path else { continue };
        let path = expr::substitute(path, vars).map_err(|e| e.0)?;
        let host = engine.executor.host_path(step_dir, &path);
        if !host.exists() {
            if a.optional.unwrap_or(false) {
                continue;
            }
            return Err(format!("output artifact '{}': {path} does not exist", a.name));
        }
        let key = format!("{}/{id}/{}", ctx.run.uid, a.name);
        let stored = engine
            .repo
            .save(&key, &host, a.archive.as_ref())
            .map_err(|e| format!("output artifact '{}': {e}", a.name))?;
        let mut out = Artifact {
            name: a.name.clone(),
            path: Some(path),
            global_name: a.global_name.clone(),
            archive: a.archive.clone(),
            ..Default::default()
        };
        // The local repository's keys, in the shape the S3 repository will use.
        out.location.s3 = Some(S3Artifact {
            key: Some(stored),
            ..Default::default()
        });
        outputs.artifacts.push(out);
    }
    Ok(())
}

/// Awaits a step's task. Step tasks are never aborted, so a cancelled one
/// means the runtime is shutting down (the engine is stopping): then this
/// never returns, nothing is written about the interrupted step, and the
/// engine that opens the state next resumes it.
async fn joined<T>(h: tokio::task::JoinHandle<T>) -> Result<T, String> {
    match h.await {
        Ok(v) => Ok(v),
        Err(e) if e.is_cancelled() => stopping().await,
        Err(e) => Err(e.to_string()),
    }
}

/// Waits for the shutting-down runtime to drop the caller.
async fn stopping<T>() -> T {
    std::future::pending().await
}

// ---------------------------------------------------------------- suspend and http

async fn suspend(ctx: &Ctx, id: &str, tmpl: &Template, vars: &Vars) -> Finished {
    let started = ctx
        .run
        .node(id)
        .and_then(|n| n.started_at)
        .map(|t| crate::time::to_chrono(&t))
        .unwrap_or_else(chrono::Utc::now);
    let duration = match tmpl.suspend.as_ref().and_then(|s| s.duration.as_deref()) {
        Some(d) => {
            let d = match expr::substitute(d, vars) {
                Ok(d) => d,
                Err(e) => return Finished::error(e.0),
            };
            match parse_seconds_or_duration(&d) {
                Ok(d) => Some(d),
                Err(e) => return Finished::error(format!("suspend duration: {e}")),
            }
        }
        None => None,
    };
    let mut rx = ctx.run.control();
    let seq0 = rx.borrow_and_update().resume_seq;
    ctx.run
        .update_node(ctx.engine.store(), id, |n| n.phase = Some(NodePhase::Running));
    let wake = async {
        match duration {
            Some(d) => {
                let end = started + chrono::Duration::from_std(d).unwrap_or_default();
                let wait = (end - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(wake);
    loop {
        let resumed = {
            let c = rx.borrow_and_update();
            c.resume_seq > seq0 || c.resumed.contains(id)
        };
        if resumed {
            return Finished::ok(None);
        }
        tokio::select! {
            _ = &mut wake => return Finished::ok(None),
            r = rx.changed() => if r.is_err() { return Finished::failed(shutdown_message(ctx)); },
            _ = ctx.cancel.cancelled() => return Finished::failed(shutdown_message(ctx)),
        }
    }
}

async fn http(ctx: &Ctx, _id: &str, tmpl: &Template, vars: &Vars) -> Finished {
    let Some(h) = &tmpl.http else {
        return Finished::error("no http");
    };
    if let Err(e) = gate(ctx).await {
        return Finished::failed(e);
    }
    let sub = |s: &str| expr::substitute(s, vars).map_err(|e| e.0);
    let prepared: Result<_, String> = (|| {
        let url = sub(&h.url)?;
        let method = reqwest::Method::from_bytes(h.method.as_deref().unwrap_or("GET").to_uppercase().as_bytes())
            .map_err(|e| format!("method: {e}"))?;
        let mut headers = Vec::new();
        for hd in &h.headers {
            let value = match (
                &hd.value,
                hd.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()),
            ) {
                (Some(v), _) => sub(v)?,
                (None, Some(sel)) => ctx.engine.config.secrets.require(sel).map_err(|e| e.to_string())?,
                _ => String::new(),
            };
            headers.push((hd.name.clone(), value));
        }
        let body = h.body.as_deref().map(sub).transpose()?;
        Ok((url, method, headers, body))
    })();
    let (url, method, headers, body) = match prepared {
        Ok(p) => p,
        Err(e) => return Finished::error(e),
    };
    let mut req = ctx
        .engine
        .http
        .request(method, &url)
        .timeout(Duration::from_secs(h.timeout_seconds.unwrap_or(30).max(1) as u64));
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = tokio::select! {
        r = req.send() => r,
        _ = ctx.cancel.cancelled() => return Finished::failed(shutdown_message(ctx)),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return Finished::failed(format!("{url}: {e}")),
    };
    let status = resp.status();
    let mut rvars = vars.clone();
    let mut hmap = serde_json::Map::new();
    for (k, v) in resp.headers() {
        hmap.insert(k.to_string(), Value::String(v.to_str().unwrap_or("").to_string()));
    }
    let body = resp.text().await.unwrap_or_default();
    rvars.insert("response.statusCode".into(), status.as_u16().to_string());
    rvars.insert("response.body".into(), body.clone());
    rvars.insert("response.headers".into(), Value::Object(hmap).to_string());
    let ok = match &h.success_condition {
        Some(c) => match expr::eval_condition(c, &rvars) {
            Ok(b) => b,
            Err(e) => return Finished::error(format!("successCondition: {}", e.0)),
        },
        None => status.is_success(),
    };
    let outputs = Some(Outputs {
        result: Some(truncate(&body, crate::executor::RESULT_LIMIT)),
        ..Default::default()
    });
    if ok {
        Finished::ok(outputs)
    } else {
        Finished {
            phase: NodePhase::Failed,
            message: Some(match &h.success_condition {
                Some(c) => format!("successCondition '{c}' is false (HTTP {status})"),
                None => format!("HTTP {status}"),
            }),
            outputs,
        }
    }
}

// ---------------------------------------------------------------- expansion

/// The items a step or task runs over: `None` when it is not expanded.
fn expand(
    with_items: &[Value],
    with_param: Option<&str>,
    with_sequence: Option<&Sequence>,
    vars: &Vars,
) -> Result<Option<Vec<Value>>, String> {
    if !with_items.is_empty() {
        let mut out = Vec::new();
        for item in with_items {
            out.push(substitute_value(item, vars)?);
        }
        return Ok(Some(out));
    }
    if let Some(p) = with_param {
        let text = expr::substitute(p, vars).map_err(|e| e.0)?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("withParam '{p}' gives '{}', not a JSON list: {e}", truncate(&text, 200)))?;
        return match v {
            Value::Array(items) => Ok(Some(items)),
            _ => Err(format!(
                "withParam '{p}' gives '{}', not a JSON list",
                truncate(&text, 200)
            )),
        };
    }
    if let Some(seq) = with_sequence {
        let get = |x: &Option<IntOrString>| x.as_ref().map(|v| int_or_string(v, vars)).transpose();
        let start = get(&seq.start)?.unwrap_or(0);
        let end = match (get(&seq.count)?, get(&seq.end)?) {
            (Some(count), _) => {
                if count <= 0 {
                    return Ok(Some(Vec::new()));
                }
                start + count - 1
            }
            (None, Some(end)) => end,
            (None, None) => return Err("withSequence needs count or end".into()),
        };
        let numbers: Vec<i64> = if end >= start {
            (start..=end).collect()
        } else {
            (end..=start).rev().collect()
        };
        return Ok(Some(
            numbers
                .into_iter()
                .map(|n| Value::String(format_sequence(seq.format.as_deref(), n)))
                .collect(),
        ));
    }
    Ok(None)
}

/// A number formatted with a printf format (`%02d`, `%x`, `%03X`, `%d`).
fn format_sequence(format: Option<&str>, n: i64) -> String {
    let Some(f) = format else { return n.to_string() };
    let Some(pos) = f.find('%') else { return f.to_string() };
    let rest = &f[pos + 1..];
    let spec_len = rest.find(|c: char| c.is_ascii_alphabetic()).map(|i| i + 1).unwrap_or(0);
    if spec_len == 0 {
        return f.to_string();
    }
    let spec = &rest[..spec_len];
    let (flags, conv) = spec.split_at(spec_len - 1);
    let zero = flags.starts_with('0');
    let width: usize = flags.trim_start_matches('0').parse().unwrap_or(0);
    let body = match conv {
        "x" => format!("{n:x}"),
        "X" => format!("{n:X}"),
        "o" => format!("{n:o}"),
        _ => n.to_string(),
    };
    let padded = if zero {
        format!("{body:0>width$}")
    } else {
        format!("{body:>width$}")
    };
    format!("{}{}{}", &f[..pos], padded, &rest[spec_len..])
}

fn substitute_value(v: &Value, vars: &Vars) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(expr::substitute(s, vars).map_err(|e| e.0)?),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute_value(x, vars)).collect::<Result<_, _>>()?),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), substitute_value(x, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The label of an item in a node name: `hello`, `image:debian,tag:9.1`.
fn item_label(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| format!("{k}:{}", expr::to_text(x)))
            .collect::<Vec<_>>()
            .join(","),
        other => expr::to_text(other),
    }
}

fn item_vars(vars: &Vars, item: Option<&Value>) -> Vars {
    let mut v = vars.clone();
    if let Some(item) = item {
        v.insert("item".into(), expr::to_text(item));
        if let Value::Object(m) = item {
            for (k, x) in m {
                v.insert(format!("item.{k}"), expr::to_text(x));
            }
        }
    }
    v
}

fn substitute_args(args: &Arguments, vars: &Vars) -> Result<Arguments, String> {
    let mut out = args.clone();
    for p in &mut out.parameters {
        if let Some(v) = &p.value {
            p.value = Some(expr::substitute(&v.0, vars).map_err(|e| e.0)?.into());
        }
        if let Some(v) = &p.default {
            p.default = Some(expr::substitute(&v.0, vars).map_err(|e| e.0)?.into());
        }
        if p.value.is_none()
            && let Some(from) = p.value_from.as_ref().and_then(|f| f.expression.clone())
        {
            let v = expr::eval_expression(&from, vars).map_err(|e| e.0)?;
            p.value = Some(expr::to_text(&v).into());
        }
    }
    for a in &mut out.artifacts {
        if let Some(from) = &a.from {
            a.from = Some(expr::substitute(from, vars).map_err(|e| e.0)?);
        }
        if let Some(e) = a.from_expression.clone() {
            let v = expr::eval_expression(&e, vars).map_err(|e| e.0)?;
            a.from = Some(expr::to_text(&v));
        }
    }
    Ok(out)
}

/// Records `steps.NAME.*` (or `tasks.NAME.*`) for the nodes a step ran as.
fn record(
    vars: &mut Vars,
    prefix: &str,
    name: &str,
    nodes: &[NodeStatus],
    expanded: bool,
    aggregate: Option<&NodeStatus>,
) {
    let base = format!("{prefix}.{name}");
    if !expanded {
        let Some(n) = nodes.first() else { return };
        record_node(vars, &base, n);
        return;
    }
    if let Some(g) = aggregate {
        vars.insert(format!("{base}.id"), g.id.clone());
        vars.insert(
            format!("{base}.status"),
            g.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
        );
    } else {
        let failed = nodes
            .iter()
            .any(|n| matches!(n.phase, Some(NodePhase::Failed | NodePhase::Error)));
        vars.insert(
            format!("{base}.status"),
            if failed { "Failed" } else { "Succeeded" }.into(),
        );
    }
    let mut params: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut all_params = Vec::new();
    let mut results = Vec::new();
    for n in nodes {
        let Some(o) = &n.outputs else { continue };
        let mut obj = serde_json::Map::new();
        for p in &o.parameters {
            let v = Value::String(p.value_or_default().unwrap_or("").to_string());
            params.entry(p.name.clone()).or_default().push(v.clone());
            obj.insert(p.name.clone(), v);
        }
        if !obj.is_empty() {
            all_params.push(Value::Object(obj));
        }
        if let Some(r) = &o.result {
            results.push(Value::String(r.clone()));
        }
    }
    for (k, list) in params {
        vars.insert(format!("{base}.outputs.parameters.{k}"), Value::Array(list).to_string());
    }
    vars.insert(
        format!("{base}.outputs.parameters"),
        Value::Array(all_params).to_string(),
    );
    if !results.is_empty() {
        vars.insert(format!("{base}.outputs.result"), Value::Array(results).to_string());
    }
}

fn record_node(vars: &mut Vars, base: &str, n: &NodeStatus) {
    vars.insert(format!("{base}.id"), n.id.clone());
    vars.insert(
        format!("{base}.status"),
        n.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
    );
    if let Some(t) = &n.started_at {
        vars.insert(format!("{base}.startedAt"), t.0.to_string());
    }
    if let Some(t) = &n.finished_at {
        vars.insert(format!("{base}.finishedAt"), t.0.to_string());
    }
    let Some(o) = &n.outputs else { return };
    if let Some(r) = &o.result {
        vars.insert(format!("{base}.outputs.result"), r.clone());
    }
    if let Some(c) = &o.exit_code {
        vars.insert(format!("{base}.outputs.exitCode"), c.clone());
        vars.insert(format!("{base}.exitCode"), c.clone());
    }
    let mut obj = serde_json::Map::new();
    for p in &o.parameters {
        let v = p.value_or_default().unwrap_or("").to_string();
        vars.insert(format!("{base}.outputs.parameters.{}", p.name), v.clone());
        obj.insert(p.name.clone(), Value::String(v));
    }
    vars.insert(format!("{base}.outputs.parameters"), Value::Object(obj).to_string());
    for a in &o.artifacts {
        if let Some(key) = a.location.s3.as_ref().and_then(|s| s.key.as_ref()) {
            vars.insert(
                format!("{base}.outputs.artifacts.{}", a.name),
                format!("{ARTIFACT_REF}{key}"),
            );
        }
    }
}

/// The outputs of a steps or DAG template, from its steps' or tasks' variables.
fn template_outputs(tmpl: &Template, vars: &Vars) -> Result<Option<Outputs>, String> {
    if tmpl.outputs.parameters.is_empty() && tmpl.outputs.artifacts.is_empty() {
        return Ok(None);
    }
    let mut out = Outputs::default();
    for p in &tmpl.outputs.parameters {
        let from = p.value_from.as_ref();
        let value = if let Some(param) = from.and_then(|f| f.parameter.as_ref()) {
            let v = expr::substitute(param, vars).map_err(|e| e.0)?;
            if v.contains("{{") {
                match from.and_then(|f| f.default.as_ref()) {
                    Some(d) => d.0.clone(),
                    None => return Err(format!("output parameter '{}': '{param}' has no value", p.name)),
                }
            } else {
                v
            }
        } else if let Some(e) = from.and_then(|f| f.expression.as_ref()) {
            expr::to_text(
                &expr::eval_expression(e, vars).map_err(|e| format!("output parameter '{}': {}", p.name, e.0))?,
            )
        } else if let Some(v) = &p.value {
            expr::substitute(&v.0, vars).map_err(|e| e.0)?
        } else {
            continue;
        };
        out.parameters.push(Parameter {
            name: p.name.clone(),
            value: Some(value.into()),
            global_name: p.global_name.clone(),
            ..Default::default()
        });
    }
    for a in &tmpl.outputs.artifacts {
        if let Some(from) = &a.from {
            let v = expr::substitute(from, vars).map_err(|e| e.0)?;
            if let Some(key) = v.strip_prefix(ARTIFACT_REF) {
                let mut art = Artifact {
                    name: a.name.clone(),
                    ..Default::default()
                };
                art.location.s3 = Some(S3Artifact {
                    key: Some(key.to_string()),
                    ..Default::default()
                });
                out.artifacts.push(art);
            }
        }
    }
    Ok(Some(out))
}

fn tolerated(phase: Option<NodePhase>, continue_on: Option<&ContinueOn>) -> bool {
    match phase {
        Some(NodePhase::Failed) => continue_on.is_some_and(|c| c.failed),
        Some(NodePhase::Error) => continue_on.is_some_and(|c| c.error),
        _ => true,
    }
}

fn is_failure(phase: Option<NodePhase>) -> bool {
    matches!(phase, Some(NodePhase::Failed | NodePhase::Error))
}

fn skipped_node(
    ctx: &Ctx,
    name: &str,
    display: &str,
    parent: &str,
    boundary: &str,
    msg: String,
    phase: NodePhase,
) -> NodeStatus {
    let store = ctx.engine.store();
    let id = node_id(&ctx.run.name, name);
    ctx.run.add_child(store, parent, &id);
    if let Some(n) = ctx.run.node(&id).filter(|n| n.phase.is_some_and(|p| p.is_fulfilled())) {
        return n;
    }
    let t = now();
    ctx.run.update_node(store, &id, |n| {
        n.name = name.to_string();
        n.display_name = Some(display.to_string());
        n.type_ = Some(NodeType::Skipped);
        n.phase = Some(phase);
        n.message = Some(msg);
        n.boundary_id = Some(boundary.to_string());
        n.started_at = Some(t.clone());
        n.finished_at = Some(t);
    })
}

/// Runs a step's or task's exit hook (`onExit`, `hooks.exit`) after its node.
async fn run_exit_hook(
    ctx: &Ctx,
    scope: &Scope,
    on_exit: Option<&str>,
    hooks: &BTreeMap<String, argon_crds::workflow::LifecycleHook>,
    node: &NodeStatus,
    boundary: &str,
    vars: &Vars,
) {
    let hook = hooks.get("exit");
    let (template, template_ref, args) = match (hook, on_exit) {
        (Some(h), _) => (h.template.as_deref(), h.template_ref.as_ref(), h.arguments.clone()),
        (None, Some(t)) => (Some(t), None, Arguments::default()),
        (None, None) => return,
    };
    let name = format!("{}.onExit", node.name);
    let mut hvars = vars.clone();
    hvars.insert(
        "status".into(),
        node.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
    );
    let args = match substitute_args(&args, &hvars) {
        Ok(a) => a,
        Err(e) => {
            error_node(ctx, &name, &name, Some(&node.id), Some(boundary), &e);
            return;
        }
    };
    match resolve(ctx, scope, template, template_ref, None).await {
        Ok(resolved) => {
            execute(
                ctx.clone(),
                Call {
                    name: name.clone(),
                    display: format!("{}.onExit", node.display_name.clone().unwrap_or_default()),
                    boundary: Some(boundary.to_string()),
                    parent: Some(node.id.clone()),
                    resolved,
                    args,
                },
            )
            .await;
        }
        Err(e) => {
            error_node(ctx, &name, &name, Some(&node.id), Some(boundary), &e);
        }
    }
}

// ---------------------------------------------------------------- steps

async fn steps(ctx: &Ctx, id: &str, name: &str, resolved: &Resolved, vars: &Vars) -> Finished {
    let store = ctx.engine.store();
    let tmpl = &resolved.tmpl;
    let groups = tmpl.steps.clone().unwrap_or_default();
    let par = tmpl
        .parallelism
        .filter(|p| *p > 0)
        .map(|p| Arc::new(Semaphore::new(p as usize)));
    let mut scope_vars = vars.clone();
    for (i, group) in groups.iter().enumerate() {
        if let Err(e) = gate(ctx).await {
            return Finished::failed(e);
        }
        let gname = format!("{name}[{i}]");
        let gid = node_id(&ctx.run.name, &gname);
        ctx.run.add_child(store, id, &gid);
        let t = now();
        ctx.run.update_node(store, &gid, |n| {
            n.name = gname.clone();
            n.display_name = Some(format!("[{i}]"));
            n.type_ = Some(NodeType::StepGroup);
            n.boundary_id = Some(id.to_string());
            n.phase = Some(NodePhase::Running);
            n.started_at.get_or_insert(t);
        });
        // (step index, expanded, handle of each instance)
        let mut launched: Vec<(usize, bool, Vec<tokio::task::JoinHandle<NodeStatus>>)> = Vec::new();
        let mut group_error: Option<String> = None;
        for (si, step) in group.iter().enumerate() {
            let items = match expand(
                &step.with_items,
                step.with_param.as_deref(),
                step.with_sequence.as_ref(),
                &scope_vars,
            ) {
                Ok(i) => i,
                Err(e) => {
                    let n = error_node(
                        ctx,
                        &format!("{gname}.{}", step.name),
                        &step.name,
                        Some(&gid),
                        Some(id),
                        &e,
                    );
                    launched.push((si, false, vec![tokio::spawn(async move { n })]));
                    group_error.get_or_insert(e);
                    continue;
                }
            };
            let expanded = items.is_some();
            let instances: Vec<Option<Value>> = match items {
                Some(list) => list.into_iter().map(Some).collect(),
                None => vec![None],
            };
            let mut handles = Vec::new();
            for (k, item) in instances.into_iter().enumerate() {
                let (cname, display) = match &item {
                    Some(v) => {
                        let label = item_label(v);
                        (
                            format!("{gname}.{}({k}:{label})", step.name),
                            format!("{}({k}:{label})", step.name),
                        )
                    }
                    None => (format!("{gname}.{}", step.name), step.name.clone()),
                };
                let local = item_vars(&scope_vars, item.as_ref());
                if let Some(when) = &step.when {
                    match expr::eval_when(when, &local) {
                        Ok(true) => {}
                        Ok(false) => {
                            let text = expr::substitute(when, &local).unwrap_or_else(|_| when.clone());
                            let n = skipped_node(
                                ctx,
                                &cname,
                                &display,
                                &gid,
                                id,
                                format!("when '{text}' evaluated false"),
                                NodePhase::Skipped,
                            );
                            handles.push(tokio::spawn(async move { n }));
                            continue;
                        }
                        Err(e) => {
                            let n = error_node(
                                ctx,
                                &cname,
                                &display,
                                Some(&gid),
                                Some(id),
                                &format!("when '{when}': {}", e.0),
                            );
                            handles.push(tokio::spawn(async move { n }));
                            continue;
                        }
                    }
                }
                let args = match substitute_args(&step.arguments, &local) {
                    Ok(a) => a,
                    Err(e) => {
                        let n = error_node(ctx, &cname, &display, Some(&gid), Some(id), &e);
                        handles.push(tokio::spawn(async move { n }));
                        continue;
                    }
                };
                let template = step
                    .template
                    .as_deref()
                    .map(|t| expr::substitute(t, &local).unwrap_or_else(|_| t.to_string()));
                let callee = match resolve(
                    ctx,
                    &resolved.scope,
                    template.as_deref(),
                    step.template_ref.as_ref(),
                    step.inline.as_deref(),
                )
                .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        let n = error_node(ctx, &cname, &display, Some(&gid), Some(id), &e);
                        handles.push(tokio::spawn(async move { n }));
                        continue;
                    }
                };
                // Children are listed in step order, not in the order their tasks get going.
                ctx.run.add_child(store, &gid, &node_id(&ctx.run.name, &cname));
                let child_ctx = ctx.clone();
                let par = par.clone();
                let gid2 = gid.clone();
                let boundary = id.to_string();
                let on_exit = step.on_exit.clone();
                let hooks = step.hooks.clone();
                let scope = resolved.scope.clone();
                let hook_vars = local.clone();
                handles.push(tokio::spawn(async move {
                    let _permit = match par {
                        Some(p) => p.acquire_owned().await.ok(),
                        None => None,
                    };
                    let node = execute(
                        child_ctx.clone(),
                        Call {
                            name: cname,
                            display,
                            boundary: Some(boundary.clone()),
                            parent: Some(gid2),
                            resolved: callee,
                            args,
                        },
                    )
                    .await;
                    if on_exit.is_some() || hooks.contains_key("exit") {
                        run_exit_hook(
                            &child_ctx,
                            &scope,
                            on_exit.as_deref(),
                            &hooks,
                            &node,
                            &boundary,
                            &hook_vars,
                        )
                        .await;
                    }
                    node
                }));
            }
            launched.push((si, expanded, handles));
        }
        let mut failure: Option<String> = group_error.clone();
        let mut errored = group_error.is_some();
        for (si, expanded, handles) in launched {
            let step = &group[si];
            let mut nodes = Vec::new();
            for h in handles {
                match joined(h).await {
                    Ok(n) => nodes.push(n),
                    Err(e) => {
                        failure.get_or_insert(format!("step '{}' panicked: {e}", step.name));
                    }
                }
            }
            record(&mut scope_vars, "steps", &step.name, &nodes, expanded, None);
            for n in &nodes {
                if is_failure(n.phase) && !tolerated(n.phase, step.continue_on.as_ref()) && failure.is_none() {
                    errored = n.phase == Some(NodePhase::Error);
                    failure =
                        Some(n.message.clone().unwrap_or_else(|| {
                            format!("child '{}' failed", n.display_name.clone().unwrap_or_default())
                        }));
                }
            }
        }
        let phase = match (&failure, errored) {
            (None, _) => NodePhase::Succeeded,
            (Some(_), true) => NodePhase::Error,
            (Some(_), false) => NodePhase::Failed,
        };
        finish(
            ctx,
            &gid,
            Finished {
                phase,
                message: failure.clone(),
                outputs: None,
            },
        );
        if let Some(msg) = failure {
            return Finished {
                phase,
                message: Some(msg),
                outputs: None,
            };
        }
    }
    match template_outputs(tmpl, &scope_vars) {
        Ok(o) => Finished::ok(o),
        Err(e) => Finished::error(e),
    }
}

// ---------------------------------------------------------------- dag

struct TaskDone {
    task: String,
    node: NodeStatus,
    children: Vec<NodeStatus>,
    expanded: bool,
}

/// Rewrites bare task names as the results they stand for, counting a
/// failure the task continues on as fulfilled.
fn expand_bare(d: &Depends, continue_on: &HashMap<String, ContinueOn>) -> Depends {
    match d {
        Depends::Task { name, result: None } => {
            let mut results = vec![TaskResult::Succeeded, TaskResult::Skipped, TaskResult::Daemoned];
            if let Some(c) = continue_on.get(name) {
                if c.failed {
                    results.push(TaskResult::Failed);
                }
                if c.error {
                    results.push(TaskResult::Errored);
                }
            }
            results
                .into_iter()
                .map(|r| Depends::Task {
                    name: name.clone(),
                    result: Some(r),
                })
                .reduce(|a, b| Depends::Or(Box::new(a), Box::new(b)))
                .expect("at least one result")
        }
        Depends::Task { .. } => d.clone(),
        Depends::Not(x) => Depends::Not(Box::new(expand_bare(x, continue_on))),
        Depends::And(a, b) => Depends::And(
            Box::new(expand_bare(a, continue_on)),
            Box::new(expand_bare(b, continue_on)),
        ),
        Depends::Or(a, b) => Depends::Or(
            Box::new(expand_bare(a, continue_on)),
            Box::new(expand_bare(b, continue_on)),
        ),
    }
}

/// Task names an expression asks an explicit non-success result of (their failure is handled).
fn explicit_checks(d: &Depends, out: &mut BTreeSet<String>) {
    match d {
        Depends::Task { name, result: Some(r) } if *r != TaskResult::Succeeded => {
            out.insert(name.clone());
        }
        Depends::Task { .. } => {}
        Depends::Not(x) => explicit_checks(x, out),
        Depends::And(a, b) | Depends::Or(a, b) => {
            explicit_checks(a, out);
            explicit_checks(b, out);
        }
    }
}

async fn dag(ctx: &Ctx, id: &str, name: &str, resolved: &Resolved, vars: &Vars) -> Finished {
    let tmpl = &resolved.tmpl;
    let Some(dag) = &tmpl.dag else {
        return Finished::error("no dag");
    };
    let par = tmpl
        .parallelism
        .filter(|p| *p > 0)
        .map(|p| Arc::new(Semaphore::new(p as usize)));
    let fail_fast = dag.fail_fast.or(tmpl.fail_fast).unwrap_or(true);
    let continue_on: HashMap<String, ContinueOn> = dag
        .tasks
        .iter()
        .filter_map(|t| t.continue_on.clone().map(|c| (t.name.clone(), c)))
        .collect();
    let mut exprs: HashMap<String, Option<Depends>> = HashMap::new();
    let mut handled = BTreeSet::new();
    for t in &dag.tasks {
        let d = match &t.depends {
            Some(text) => {
                let text = expr::substitute(text, vars).unwrap_or_else(|_| text.clone());
                match Depends::parse(&text) {
                    Ok(d) => Some(d),
                    Err(e) => return Finished::error(format!("task '{}': depends '{text}': {e}", t.name)),
                }
            }
            None => Depends::from_dependencies(&t.dependencies),
        };
        if let Some(d) = &d {
            explicit_checks(d, &mut handled);
        }
        exprs.insert(t.name.clone(), d.map(|d| expand_bare(&d, &continue_on)));
    }
    // Targets and everything they depend on.
    let mut wanted: BTreeSet<String> = dag.tasks.iter().map(|t| t.name.clone()).collect();
    if let Some(target) = &dag.target {
        let target = expr::substitute(target, vars).unwrap_or_else(|_| target.clone());
        let mut stack: Vec<String> = target.split_whitespace().map(str::to_string).collect();
        wanted.clear();
        while let Some(t) = stack.pop() {
            if wanted.insert(t.clone())
                && let Some(Some(d)) = exprs.get(&t)
            {
                stack.extend(d.names().into_iter().map(str::to_string));
            }
        }
    }
    let mut scope_vars = vars.clone();
    let mut done: HashMap<String, TaskDone> = HashMap::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let mut running: FuturesUnordered<tokio::task::JoinHandle<TaskDone>> = FuturesUnordered::new();
    let mut stop_starting = false;
    let mut first_failure: Option<(String, NodePhase)> = None;
    loop {
        if !stop_starting && let Err(e) = gate(ctx).await {
            first_failure.get_or_insert((e, NodePhase::Failed));
            stop_starting = true;
        }
        if !stop_starting {
            for task in &dag.tasks {
                if !wanted.contains(&task.name) || started.contains(&task.name) {
                    continue;
                }
                let dep = exprs.get(&task.name).cloned().flatten();
                let ready = dep
                    .as_ref()
                    .is_none_or(|d| d.names().iter().all(|n| done.contains_key(*n)));
                if !ready {
                    continue;
                }
                started.insert(task.name.clone());
                let tname = format!("{name}.{}", task.name);
                let satisfied = dep.as_ref().is_none_or(|d| {
                    d.eval(&|n, r| {
                        let Some(t) = done.get(n) else { return false };
                        task_has(t, r)
                    })
                });
                if !satisfied {
                    let n = skipped_node(
                        ctx,
                        &tname,
                        &task.name,
                        id,
                        id,
                        format!(
                            "omitted: depends condition not met ({})",
                            task.depends.clone().unwrap_or_else(|| task.dependencies.join(" && "))
                        ),
                        NodePhase::Omitted,
                    );
                    let t = TaskDone {
                        task: task.name.clone(),
                        node: n,
                        children: Vec::new(),
                        expanded: false,
                    };
                    record(
                        &mut scope_vars,
                        "tasks",
                        &t.task,
                        std::slice::from_ref(&t.node),
                        false,
                        None,
                    );
                    done.insert(task.name.clone(), t);
                    continue;
                }
                running.push(tokio::spawn(run_task(
                    ctx.clone(),
                    resolved.scope.clone(),
                    task.clone(),
                    tname,
                    id.to_string(),
                    scope_vars.clone(),
                    par.clone(),
                )));
            }
        }
        // Tasks resolved as omitted may have made others ready: go round again before waiting.
        let more_ready = !stop_starting
            && dag.tasks.iter().any(|t| {
                wanted.contains(&t.name)
                    && !started.contains(&t.name)
                    && exprs
                        .get(&t.name)
                        .cloned()
                        .flatten()
                        .as_ref()
                        .is_none_or(|d| d.names().iter().all(|n| done.contains_key(*n)))
            });
        if more_ready {
            continue;
        }
        let Some(next) = running.next().await else { break };
        let t = match next {
            Ok(t) => t,
            Err(e) if e.is_cancelled() => return stopping().await,
            Err(e) => {
                first_failure.get_or_insert((format!("a task panicked: {e}"), NodePhase::Error));
                stop_starting = true;
                continue;
            }
        };
        let failed_hard = is_failure(t.node.phase)
            && !tolerated(t.node.phase, continue_on.get(&t.task))
            && !handled.contains(&t.task);
        if failed_hard {
            first_failure.get_or_insert((
                t.node
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("task '{}' failed", t.task)),
                t.node.phase.unwrap_or(NodePhase::Failed),
            ));
            if fail_fast {
                stop_starting = true;
            }
        }
        let agg = t.expanded.then_some(&t.node);
        let nodes = if t.expanded {
            t.children.clone()
        } else {
            vec![t.node.clone()]
        };
        record(&mut scope_vars, "tasks", &t.task, &nodes, t.expanded, agg);
        done.insert(t.task.clone(), t);
    }
    if let Some((msg, phase)) = first_failure {
        return Finished {
            phase,
            message: Some(msg),
            outputs: None,
        };
    }
    match template_outputs(tmpl, &scope_vars) {
        Ok(o) => Finished::ok(o),
        Err(e) => Finished::error(e),
    }
}

fn task_has(t: &TaskDone, r: TaskResult) -> bool {
    let phase = t.node.phase;
    match r {
        TaskResult::Succeeded => phase == Some(NodePhase::Succeeded),
        TaskResult::Failed => phase == Some(NodePhase::Failed),
        TaskResult::Errored => phase == Some(NodePhase::Error),
        TaskResult::Skipped => phase == Some(NodePhase::Skipped),
        TaskResult::Omitted => phase == Some(NodePhase::Omitted),
        TaskResult::Daemoned => false,
        TaskResult::AnySucceeded => t.children.iter().any(|c| c.phase == Some(NodePhase::Succeeded)),
        TaskResult::AllFailed => {
            !t.children.is_empty() && t.children.iter().all(|c| c.phase == Some(NodePhase::Failed))
        }
    }
}

async fn run_task(
    ctx: Ctx,
    scope: Scope,
    task: argon_crds::workflow::DagTask,
    tname: String,
    dag_id: String,
    vars: Vars,
    par: Option<Arc<Semaphore>>,
) -> TaskDone {
    let store = ctx.engine.store();
    let items = match expand(
        &task.with_items,
        task.with_param.as_deref(),
        task.with_sequence.as_ref(),
        &vars,
    ) {
        Ok(i) => i,
        Err(e) => {
            let n = error_node(&ctx, &tname, &task.name, Some(&dag_id), Some(&dag_id), &e);
            return TaskDone {
                task: task.name,
                node: n,
                children: Vec::new(),
                expanded: false,
            };
        }
    };
    let Some(items) = items else {
        let node = run_task_instance(
            &ctx, &scope, &task, &tname, &task.name, &dag_id, &dag_id, &vars, None, par,
        )
        .await;
        return TaskDone {
            task: task.name,
            node,
            children: Vec::new(),
            expanded: false,
        };
    };
    let gid = node_id(&ctx.run.name, &tname);
    ctx.run.add_child(store, &dag_id, &gid);
    let t = now();
    ctx.run.update_node(store, &gid, |n| {
        n.name = tname.clone();
        n.display_name = Some(task.name.clone());
        n.type_ = Some(NodeType::TaskGroup);
        n.boundary_id = Some(dag_id.clone());
        n.phase = Some(NodePhase::Running);
        n.started_at.get_or_insert(t);
    });
    let mut handles = Vec::new();
    for (k, item) in items.into_iter().enumerate() {
        let label = item_label(&item);
        let cname = format!("{tname}({k}:{label})");
        ctx.run.add_child(store, &gid, &node_id(&ctx.run.name, &cname));
        let display = format!("{}({k}:{label})", task.name);
        let ctx = ctx.clone();
        let scope = scope.clone();
        let task = task.clone();
        let vars = vars.clone();
        let gid = gid.clone();
        let dag_id = dag_id.clone();
        let par = par.clone();
        handles.push(tokio::spawn(async move {
            run_task_instance(
                &ctx,
                &scope,
                &task,
                &cname,
                &display,
                &gid,
                &dag_id,
                &vars,
                Some(&item),
                par,
            )
            .await
        }));
    }
    let mut children = Vec::new();
    let mut panicked = None;
    for h in handles {
        match joined(h).await {
            Ok(n) => children.push(n),
            Err(e) => {
                panicked.get_or_insert(e);
            }
        }
    }
    let failed = children
        .iter()
        .find(|c| is_failure(c.phase) && !tolerated(c.phase, task.continue_on.as_ref()));
    let f = match (panicked, failed) {
        (Some(e), _) => Finished::error(format!("task '{}' panicked: {e}", task.name)),
        (None, Some(c)) => Finished::failed(c.message.clone().unwrap_or_else(|| "a child failed".into())),
        (None, None) => Finished::ok(None),
    };
    let node = finish(&ctx, &gid, f);
    TaskDone {
        task: task.name,
        node,
        children,
        expanded: true,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_task_instance(
    ctx: &Ctx,
    scope: &Scope,
    task: &argon_crds::workflow::DagTask,
    cname: &str,
    display: &str,
    parent: &str,
    dag_id: &str,
    vars: &Vars,
    item: Option<&Value>,
    par: Option<Arc<Semaphore>>,
) -> NodeStatus {
    let local = item_vars(vars, item);
    if let Some(when) = &task.when {
        match expr::eval_when(when, &local) {
            Ok(true) => {}
            Ok(false) => {
                let text = expr::substitute(when, &local).unwrap_or_else(|_| when.clone());
                return skipped_node(
                    ctx,
                    cname,
                    display,
                    parent,
                    dag_id,
                    format!("when '{text}' evaluated false"),
                    NodePhase::Skipped,
                );
            }
            Err(e) => {
                return error_node(
                    ctx,
                    cname,
                    display,
                    Some(parent),
                    Some(dag_id),
                    &format!("when '{when}': {}", e.0),
                );
            }
        }
    }
    let args = match substitute_args(&task.arguments, &local) {
        Ok(a) => a,
        Err(e) => return error_node(ctx, cname, display, Some(parent), Some(dag_id), &e),
    };
    let template = task
        .template
        .as_deref()
        .map(|t| expr::substitute(t, &local).unwrap_or_else(|_| t.to_string()));
    let callee = match resolve(
        ctx,
        scope,
        template.as_deref(),
        task.template_ref.as_ref(),
        task.inline.as_deref(),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return error_node(ctx, cname, display, Some(parent), Some(dag_id), &e),
    };
    let _permit = match par {
        Some(p) => p.acquire_owned().await.ok(),
        None => None,
    };
    let node = execute(
        ctx.clone(),
        Call {
            name: cname.to_string(),
            display: display.to_string(),
            boundary: Some(dag_id.to_string()),
            parent: Some(parent.to_string()),
            resolved: callee,
            args,
        },
    )
    .await;
    drop(_permit);
    if task.on_exit.is_some() || task.hooks.contains_key("exit") {
        run_exit_hook(ctx, scope, task.on_exit.as_deref(), &task.hooks, &node, dag_id, &local).await;
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_task_cancelled_by_a_stopping_runtime_is_not_reported() {
        use futures::FutureExt;
        let ok = tokio::spawn(async { 7 });
        assert_eq!(joined(ok).await, Ok(7));

        let panics = tokio::spawn(async { panic!("boom") });
        let err: Result<(), String> = joined(panics).await;
        assert!(err.unwrap_err().contains("boom"));

        // What a stopping runtime does to every task: cancel it.
        let cancelled = tokio::spawn(std::future::pending::<()>());
        cancelled.abort();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cancelled.is_finished() {
            assert!(std::time::Instant::now() < deadline, "the task was never cancelled");
            tokio::task::yield_now().await;
        }
        // Its result is ready, yet the waiter never gets it as an error to record.
        assert_eq!(joined(cancelled).now_or_never(), None);
    }

    #[test]
    fn sequences_format_like_printf() {
        assert_eq!(format_sequence(Some("2020-05-%02X"), 10), "2020-05-0A");
        assert_eq!(format_sequence(Some("%03d"), 7), "007");
        assert_eq!(format_sequence(None, 7), "7");
        let seq = Sequence {
            count: Some(IntOrString::Int(3)),
            start: Some(IntOrString::String("2".into())),
            ..Default::default()
        };
        let items = expand(&[], None, Some(&seq), &Vars::new()).unwrap().unwrap();
        assert_eq!(items, vec![Value::from("2"), Value::from("3"), Value::from("4")]);
    }

    #[test]
    fn node_ids_are_stable_and_the_root_is_the_workflow() {
        assert_eq!(node_id("wf", "wf"), "wf");
        assert_eq!(node_id("wf", "wf[0].a"), node_id("wf", "wf[0].a"));
        assert_ne!(node_id("wf", "wf[0].a"), node_id("wf", "wf[0].b"));
    }

    #[test]
    fn item_labels_follow_the_upstream_shape() {
        assert_eq!(
            item_label(&serde_json::json!({"image": "debian", "tag": "9.1"})),
            "image:debian,tag:9.1"
        );
        assert_eq!(item_label(&serde_json::json!("hello argo")), "hello argo");
    }
}
