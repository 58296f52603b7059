//! DAG templates: runs each task once what it depends on has finished and
//! its `depends` holds, expanded over its items, with `target` and
//! `failFast`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use argon_crds::workflow::{ContinueOn, Depends, NodePhase, NodeStatus, NodeType, TaskResult};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::expand::{expand, item_label, item_vars, substitute_args};
use super::nodes::{is_failure, record, tolerated};
use super::outputs::template_outputs;
use super::{Call, Ctx, Finished, Resolved, Scope, joined, node_id, now, stopping};
use crate::expr::{self, Vars};

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

impl Ctx {
    pub(super) async fn dag(&self, id: &str, name: &str, resolved: &Resolved, vars: &Vars) -> Finished {
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
            if !stop_starting && let Err(e) = self.gate().await {
                first_failure.get_or_insert((e.to_string(), NodePhase::Failed));
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
                        let n = self.skipped_node(
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
                    running.push(tokio::spawn(self.clone().run_task(
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

    async fn run_task(
        self,
        scope: Scope,
        task: argon_crds::workflow::DagTask,
        tname: String,
        dag_id: String,
        vars: Vars,
        par: Option<Arc<Semaphore>>,
    ) -> TaskDone {
        let store = self.engine.store();
        let items = match expand(
            &task.with_items,
            task.with_param.as_deref(),
            task.with_sequence.as_ref(),
            &vars,
        ) {
            Ok(i) => i,
            Err(e) => {
                let n = self.error_node(&tname, &task.name, Some(&dag_id), Some(&dag_id), &e);
                return TaskDone {
                    task: task.name,
                    node: n,
                    children: Vec::new(),
                    expanded: false,
                };
            }
        };
        let Some(items) = items else {
            let node = self
                .run_task_instance(&scope, &task, &tname, &task.name, &dag_id, &dag_id, &vars, None, par)
                .await;
            return TaskDone {
                task: task.name,
                node,
                children: Vec::new(),
                expanded: false,
            };
        };
        let gid = node_id(&self.run.name, &tname);
        self.run.add_child(store, &dag_id, &gid);
        let t = now();
        self.run.update_node(store, &gid, |n| {
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
            self.run.add_child(store, &gid, &node_id(&self.run.name, &cname));
            let display = format!("{}({k}:{label})", task.name);
            let ctx = self.clone();
            let scope = scope.clone();
            let task = task.clone();
            let vars = vars.clone();
            let gid = gid.clone();
            let dag_id = dag_id.clone();
            let par = par.clone();
            handles.push(tokio::spawn(async move {
                ctx.run_task_instance(&scope, &task, &cname, &display, &gid, &dag_id, &vars, Some(&item), par)
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
        let node = self.finish(&gid, f);
        TaskDone {
            task: task.name,
            node,
            children,
            expanded: true,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_task_instance(
        &self,
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
        let mut local = item_vars(vars, item);
        local.insert("tasks.name".into(), task.name.clone());
        if let Some(when) = &task.when {
            match expr::eval_when(when, &local) {
                Ok(true) => {}
                Ok(false) => {
                    let text = expr::substitute(when, &local).unwrap_or_else(|_| when.clone());
                    return self.skipped_node(
                        cname,
                        display,
                        parent,
                        dag_id,
                        format!("when '{text}' evaluated false"),
                        NodePhase::Skipped,
                    );
                }
                Err(e) => {
                    return self.error_node(
                        cname,
                        display,
                        Some(parent),
                        Some(dag_id),
                        format!("when '{when}': {}", e.0),
                    );
                }
            }
        }
        let args = match substitute_args(&task.arguments, &local) {
            Ok(a) => a,
            Err(e) => return self.error_node(cname, display, Some(parent), Some(dag_id), &e),
        };
        let template = task
            .template
            .as_deref()
            .map(|t| expr::substitute(t, &local).unwrap_or_else(|_| t.to_string()));
        let callee = match self
            .resolve(
                scope,
                template.as_deref(),
                task.template_ref.as_ref(),
                task.inline.as_deref(),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => return self.error_node(cname, display, Some(parent), Some(dag_id), &e),
        };
        let _permit = match par {
            Some(p) => p.acquire_owned().await.ok(),
            None => None,
        };
        let node = self
            .execute(Call {
                name: cname.to_string(),
                display: display.to_string(),
                boundary: Some(dag_id.to_string()),
                parent: Some(parent.to_string()),
                resolved: callee,
                args,
            })
            .await;
        drop(_permit);
        if task.on_exit.is_some() || task.hooks.contains_key("exit") {
            self.run_exit_hook(
                ("tasks", &task.name),
                scope,
                task.on_exit.as_deref(),
                &task.hooks,
                &node,
                dag_id,
                &local,
            )
            .await;
        }
        node
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
        TaskResult::Daemoned => t.node.daemoned == Some(true),
        TaskResult::AnySucceeded => t.children.iter().any(|c| c.phase == Some(NodePhase::Succeeded)),
        TaskResult::AllFailed => {
            !t.children.is_empty() && t.children.iter().all(|c| c.phase == Some(NodePhase::Failed))
        }
    }
}
