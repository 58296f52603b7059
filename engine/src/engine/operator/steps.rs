//! Steps templates: runs the groups one after another and the steps of a
//! group side by side, each step expanded over its items.

use std::sync::Arc;

use argon_crds::workflow::{NodePhase, NodeStatus, NodeType};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::expand::{expand, item_label, item_vars, substitute_args};
use super::nodes::{is_failure, record, tolerated};
use super::outputs::template_outputs;
use super::{Call, Ctx, Finished, Resolved, joined, node_id, now};
use crate::expr::{self, Vars};

impl Ctx {
    pub(super) async fn steps(&self, id: &str, name: &str, resolved: &Resolved, vars: &Vars) -> Finished {
        let store = self.engine.store();
        let tmpl = &resolved.tmpl;
        let groups = tmpl.steps.clone().unwrap_or_default();
        let par = tmpl
            .parallelism
            .filter(|p| *p > 0)
            .map(|p| Arc::new(Semaphore::new(p as usize)));
        let mut scope_vars = vars.clone();
        for (i, group) in groups.iter().enumerate() {
            if let Err(e) = self.gate().await {
                return Finished::failed(e);
            }
            let gname = format!("{name}[{i}]");
            let gid = node_id(&self.run.name, &gname);
            self.run.add_child(store, id, &gid);
            let t = now();
            self.run.update_node(store, &gid, |n| {
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
                        let n =
                            self.error_node(&format!("{gname}.{}", step.name), &step.name, Some(&gid), Some(id), &e);
                        launched.push((si, false, vec![tokio::spawn(async move { n })]));
                        group_error.get_or_insert(e.to_string());
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
                    let mut local = item_vars(&scope_vars, item.as_ref());
                    local.insert("steps.name".into(), step.name.clone());
                    if let Some(when) = &step.when {
                        match expr::eval_when(when, &local) {
                            Ok(true) => {}
                            Ok(false) => {
                                let text = expr::substitute(when, &local).unwrap_or_else(|_| when.clone());
                                let n = self.skipped_node(
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
                                let n = self.error_node(
                                    &cname,
                                    &display,
                                    Some(&gid),
                                    Some(id),
                                    format!("when '{when}': {}", e.0),
                                );
                                handles.push(tokio::spawn(async move { n }));
                                continue;
                            }
                        }
                    }
                    let args = match substitute_args(&step.arguments, &local) {
                        Ok(a) => a,
                        Err(e) => {
                            let n = self.error_node(&cname, &display, Some(&gid), Some(id), &e);
                            handles.push(tokio::spawn(async move { n }));
                            continue;
                        }
                    };
                    let template = step
                        .template
                        .as_deref()
                        .map(|t| expr::substitute(t, &local).unwrap_or_else(|_| t.to_string()));
                    let callee = match self
                        .resolve(
                            &resolved.scope,
                            template.as_deref(),
                            step.template_ref.as_ref(),
                            step.inline.as_deref(),
                        )
                        .await
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let n = self.error_node(&cname, &display, Some(&gid), Some(id), &e);
                            handles.push(tokio::spawn(async move { n }));
                            continue;
                        }
                    };
                    // Children are listed in step order, not in the order their tasks get going.
                    self.run.add_child(store, &gid, &node_id(&self.run.name, &cname));
                    let child_ctx = self.clone();
                    let par = par.clone();
                    let gid2 = gid.clone();
                    let boundary = id.to_string();
                    let on_exit = step.on_exit.clone();
                    let hooks = step.hooks.clone();
                    let scope = resolved.scope.clone();
                    let hook_vars = local.clone();
                    let step_name = step.name.clone();
                    handles.push(tokio::spawn(async move {
                        let _permit = match par {
                            Some(p) => p.acquire_owned().await.ok(),
                            None => None,
                        };
                        let node = child_ctx
                            .execute(Call {
                                name: cname,
                                display,
                                boundary: Some(boundary.clone()),
                                parent: Some(gid2),
                                resolved: callee,
                                args,
                            })
                            .await;
                        if on_exit.is_some() || hooks.contains_key("exit") {
                            child_ctx
                                .run_exit_hook(
                                    ("steps", &step_name),
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
                        failure = Some(n.message.clone().unwrap_or_else(|| {
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
            self.finish(
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
}
