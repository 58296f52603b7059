//! Node bookkeeping: nodes written without running a body (errors,
//! skipped steps), the `steps.NAME.*` and `tasks.NAME.*` variables a finished
//! node gives its siblings, failure tests, and the workflow's progress and
//! `workflow.failures`.

use std::collections::BTreeMap;

use argon_crds::workflow::{ContinueOn, NodePhase, NodeStatus, NodeType, Template, TemplateKind, Workflow};
use serde_json::Value;

use super::{ARTIFACT_REF, Ctx, Run, node_id, now};
use crate::expr::Vars;

pub(super) fn kind_type(tmpl: &Template) -> NodeType {
    match tmpl.kind() {
        Some(TemplateKind::Steps) => NodeType::Steps,
        Some(TemplateKind::Dag) => NodeType::Dag,
        Some(TemplateKind::Suspend) => NodeType::Suspend,
        Some(TemplateKind::Http) => NodeType::Http,
        _ => NodeType::Pod,
    }
}

pub(super) fn progress(nodes: &BTreeMap<String, NodeStatus>) -> String {
    let pods = nodes.values().filter(|n| n.type_ == Some(NodeType::Pod));
    let (done, total) = pods.fold((0, 0), |(d, t), n| {
        (d + usize::from(n.phase.is_some_and(|p| p.is_completed())), t + 1)
    });
    format!("{done}/{total}")
}

/// `workflow.failures`: the failed and errored leaf nodes, as JSON.
pub(super) fn failures(run: &Run) -> String {
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
    pub(super) fn update_workflow_ret<R>(&self, store: &crate::store::Store, f: impl FnOnce(&mut Workflow) -> R) -> R {
        let mut out = None;
        self.update_workflow(store, |wf| out = Some(f(wf)));
        out.expect("the update closure ran")
    }
}

impl Ctx {
    pub(super) fn error_node(
        &self,
        name: &str,
        display: &str,
        parent: Option<&str>,
        boundary: Option<&str>,
        msg: impl std::fmt::Display,
    ) -> NodeStatus {
        let id = node_id(&self.run.name, name);
        let store = self.engine.store();
        let t = now();
        let node = self.run.update_node(store, &id, |n| {
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
            self.run.add_child(store, p, &id);
        }
        node
    }

    pub(super) fn skipped_node(
        &self,
        name: &str,
        display: &str,
        parent: &str,
        boundary: &str,
        msg: String,
        phase: NodePhase,
    ) -> NodeStatus {
        let store = self.engine.store();
        let id = node_id(&self.run.name, name);
        self.run.add_child(store, parent, &id);
        if let Some(n) = self.run.node(&id).filter(|n| n.phase.is_some_and(|p| p.is_fulfilled())) {
            return n;
        }
        let t = now();
        self.run.update_node(store, &id, |n| {
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
}

/// Records `steps.NAME.*` (or `tasks.NAME.*`) for the nodes a step ran as.
pub(super) fn record(
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
    if let Some(ip) = &n.pod_ip {
        vars.insert(format!("{base}.ip"), ip.clone());
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
        if let Some(s3) = a.location.s3.as_ref().filter(|s| s.key.is_some()) {
            vars.insert(
                format!("{base}.outputs.artifacts.{}", a.name),
                format!("{ARTIFACT_REF}{}", crate::artifacts::reference(s3)),
            );
        }
    }
}

pub(super) fn tolerated(phase: Option<NodePhase>, continue_on: Option<&ContinueOn>) -> bool {
    match phase {
        Some(NodePhase::Failed) => continue_on.is_some_and(|c| c.failed),
        Some(NodePhase::Error) => continue_on.is_some_and(|c| c.error),
        _ => true,
    }
}

pub(super) fn is_failure(phase: Option<NodePhase>) -> bool {
    matches!(phase, Some(NodePhase::Failed | NodePhase::Error))
}
