//! Semantic validation of workflow specs: what the schema cannot say.
//! Template names and references, DAG shape, `depends` expressions, the
//! `{{inputs...}}`, `{{steps...}}` and `{{tasks...}}` references, and cron
//! schedules. Every problem is a [`Finding`] located by its field path.
//!
//! A `templateRef` to a WorkflowTemplate is checked with a resolver the caller
//! gives: it answers whether the target is among the manifests being linted.
//! When it is not, that is a warning only, since the template may live in the
//! cluster.
//!
//! Longer than most files: every check of a workflow spec, in the order one
//! walk meets them, sharing that walk's context (the templates by name, the
//! variables in scope).

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{FieldPath, Finding, suggest};

use super::depends::Depends;
use super::template::{Arguments, DagTemplate, Template, TemplateRef, WorkflowStep};
use super::{ClusterWorkflowTemplate, CronWorkflow, LifecycleHook, Sequence, Workflow, WorkflowSpec, WorkflowTemplate};

/// Which object a spec belongs to: it decides whether `entrypoint` is required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecKind {
    /// A Workflow (or a CronWorkflow's workflowSpec): needs an entrypoint
    /// unless it runs a `workflowTemplateRef`.
    Workflow,
    /// A WorkflowTemplate or ClusterWorkflowTemplate: a library of templates,
    /// the entrypoint is optional (but must exist when given).
    Template,
}

/// Answers whether a referenced WorkflowTemplate exists among the manifests
/// being linted: for a `templateRef`, whether the WorkflowTemplate `name`
/// (a ClusterWorkflowTemplate when `cluster_scope`) has the template
/// `template`; for a `workflowTemplateRef`, `template` is empty and only the
/// WorkflowTemplate itself is asked about.
pub type Resolver<'a> = dyn Fn(&TemplateRef) -> bool + 'a;

/// Validates a Workflow: its spec, at `spec`.
pub fn validate_workflow(wf: &Workflow, resolver: &Resolver<'_>) -> Vec<Finding> {
    validate_spec(&wf.spec, SpecKind::Workflow, &FieldPath::root().key("spec"), resolver)
}

/// Validates a WorkflowTemplate: its spec, at `spec`.
pub fn validate_workflow_template(wt: &WorkflowTemplate, resolver: &Resolver<'_>) -> Vec<Finding> {
    validate_spec(
        &wt.spec.spec,
        SpecKind::Template,
        &FieldPath::root().key("spec"),
        resolver,
    )
}

/// Validates a ClusterWorkflowTemplate: its spec, at `spec`.
pub fn validate_cluster_workflow_template(cwt: &ClusterWorkflowTemplate, resolver: &Resolver<'_>) -> Vec<Finding> {
    validate_spec(
        &cwt.spec.spec,
        SpecKind::Template,
        &FieldPath::root().key("spec"),
        resolver,
    )
}

/// Validates a CronWorkflow: its schedules, and its workflow spec at
/// `spec.workflowSpec`.
pub fn validate_cron_workflow(cwf: &CronWorkflow, resolver: &Resolver<'_>) -> Vec<Finding> {
    let at = FieldPath::root().key("spec");
    let mut findings = Vec::new();
    let spec = &cwf.spec;
    if spec.schedule.as_deref().is_none_or(str::is_empty) && spec.schedules.is_empty() {
        findings.push(Finding::error(
            at.key("schedules"),
            "a CronWorkflow needs a schedule: set schedules (or the older schedule)",
        ));
    }
    if let Some(s) = spec.schedule.as_deref().filter(|s| !s.is_empty())
        && let Err(msg) = crate::time::check_schedule(s)
    {
        findings.push(Finding::error(at.key("schedule"), msg));
    }
    for (i, s) in spec.schedules.iter().enumerate() {
        if let Err(msg) = crate::time::check_schedule(s) {
            findings.push(Finding::error(at.key("schedules").index(i), msg));
        }
    }
    if let Some(zone) = spec.timezone.as_deref().filter(|z| !z.trim().is_empty())
        && let Err(msg) = crate::time::parse_zone(zone)
    {
        findings.push(Finding::error(at.key("timezone"), msg));
    }
    findings.extend(validate_spec(
        &spec.workflow_spec,
        SpecKind::Workflow,
        &at.key("workflowSpec"),
        resolver,
    ));
    findings
}

/// Validates a workflow spec found at `at` (`spec`, or
/// `spec.workflowSpec` in a CronWorkflow). See the module doc for what is
/// checked; `resolver` answers for `templateRef`s (see [`Resolver`]).
pub fn validate_spec(spec: &WorkflowSpec, kind: SpecKind, at: &FieldPath, resolver: &Resolver<'_>) -> Vec<Finding> {
    let mut v = Validator {
        spec,
        resolver,
        findings: Vec::new(),
    };
    v.spec(kind, at);
    v.findings
}

/// A call of a template by a step, a task or a hook.
struct Call<'t> {
    what: &'static str,
    name: &'t str,
    template: Option<&'t str>,
    template_ref: Option<&'t TemplateRef>,
    inline: Option<&'t Template>,
    arguments: &'t Arguments,
}

struct Validator<'a, 'r> {
    spec: &'a WorkflowSpec,
    resolver: &'a Resolver<'r>,
    findings: Vec<Finding>,
}

/// The list of template names, for suggestions.
fn names_of(spec: &WorkflowSpec) -> Vec<&str> {
    spec.templates
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !n.is_empty())
        .collect()
}

fn did_you_mean(s: Option<&str>) -> String {
    s.map(|s| format!("; did you mean '{s}'?")).unwrap_or_default()
}

impl Validator<'_, '_> {
    fn error(&mut self, at: impl Into<String>, msg: impl Into<String>) {
        self.findings.push(Finding::error(at, msg));
    }

    fn warning(&mut self, at: impl Into<String>, msg: impl Into<String>) {
        self.findings.push(Finding::warning(at, msg));
    }

    fn spec(&mut self, kind: SpecKind, at: &FieldPath) {
        let spec = self.spec;
        let names = names_of(spec);
        let runs_ref = spec.workflow_template_ref.is_some();

        if let Some(r) = &spec.workflow_template_ref {
            let target = TemplateRef {
                name: r.name.clone(),
                template: String::new(),
                cluster_scope: r.cluster_scope,
            };
            if r.name.is_empty() {
                self.error(
                    at.key("workflowTemplateRef").key("name"),
                    "workflowTemplateRef needs a name",
                );
            } else if !(self.resolver)(&target) {
                let what = if r.cluster_scope {
                    "ClusterWorkflowTemplate"
                } else {
                    "WorkflowTemplate"
                };
                self.warning(
                    at.key("workflowTemplateRef"),
                    format!(
                        "{what} '{}' is not among the loaded manifests; it must exist in the cluster",
                        r.name
                    ),
                );
            }
        }

        match spec.entrypoint.as_deref().filter(|e| !e.is_empty()) {
            None if kind == SpecKind::Workflow && !runs_ref => {
                self.error(
                    at.key("entrypoint"),
                    "entrypoint is required: name the template the workflow starts with",
                );
            }
            Some(entry) if spec.template(entry).is_none() && !runs_ref => {
                self.error(
                    at.key("entrypoint"),
                    format!(
                        "entrypoint '{entry}' is not a template of this workflow{}",
                        did_you_mean(suggest(entry, names.iter().copied()))
                    ),
                );
            }
            _ => {}
        }

        if let Some(on_exit) = spec.on_exit.as_deref().filter(|s| !s.is_empty()) {
            self.local_template(on_exit, &at.key("onExit"));
        }
        for (event, hook) in &spec.hooks {
            self.hook(hook, &at.key("hooks").key(event));
        }

        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, t) in spec.templates.iter().enumerate() {
            let tat = at.key("templates").index(i);
            if t.name.is_empty() {
                self.error(tat.key("name"), "template has no name");
            } else if let Some(j) = first.get(t.name.as_str()) {
                self.error(
                    tat.key("name"),
                    format!("duplicate template name '{}' (also templates[{j}])", t.name),
                );
            } else {
                first.insert(&t.name, i);
            }
            self.template(t, &tat);
        }
    }

    /// `name` must be a template of this spec.
    fn local_template(&mut self, name: &str, at: &FieldPath) -> bool {
        if self.spec.template(name).is_some() {
            return true;
        }
        let hint = did_you_mean(suggest(name, names_of(self.spec)));
        self.error(
            at.clone(),
            format!("template '{name}' not found in this workflow{hint}"),
        );
        false
    }

    fn template_ref(&mut self, r: &TemplateRef, at: &FieldPath) {
        if r.name.is_empty() || r.template.is_empty() {
            self.error(at.clone(), "templateRef needs both name and template");
            return;
        }
        if !(self.resolver)(r) {
            let what = if r.cluster_scope {
                "ClusterWorkflowTemplate"
            } else {
                "WorkflowTemplate"
            };
            self.warning(
                at.clone(),
                format!(
                    "template '{}' of {what} '{}' is not among the loaded manifests; it must exist in the cluster",
                    r.template, r.name
                ),
            );
        }
    }

    fn hook(&mut self, hook: &LifecycleHook, at: &FieldPath) {
        match (&hook.template, &hook.template_ref) {
            (Some(t), None) => {
                if self.local_template(t, &at.key("template")) {
                    self.call_arguments(t, &hook.arguments, "hook", at);
                }
            }
            (None, Some(r)) => self.template_ref(r, &at.key("templateRef")),
            (None, None) => self.error(at.clone(), "hook names no template: set template or templateRef"),
            (Some(_), Some(_)) => self.error(at.clone(), "hook sets both template and templateRef: keep one"),
        }
    }

    fn template(&mut self, t: &Template, at: &FieldPath) {
        let label = if t.name.is_empty() {
            "inline template".to_string()
        } else {
            format!("template '{}'", t.name)
        };
        let kinds = t.kinds();
        match kinds.len() {
            0 => self.error(
                at.clone(),
                format!(
                    "{label} has no kind: set one of container, script, resource, suspend, steps, dag, http, \
                     containerSet, data, plugin"
                ),
            ),
            1 => {}
            _ => {
                let list: Vec<&str> = kinds.iter().map(|k| k.field()).collect();
                self.error(
                    at.clone(),
                    format!("{label} sets more than one kind ({}): keep one", list.join(", ")),
                );
            }
        }
        self.input_references(t, at);
        if let Some(groups) = &t.steps {
            self.steps(t, groups, &at.key("steps"));
        }
        if let Some(dag) = &t.dag {
            self.dag(t, dag, &at.key("dag"));
        }
    }

    /// Every `{{inputs.parameters.x}}` / `{{inputs.artifacts.x}}` of the
    /// template must name a declared input.
    fn input_references(&mut self, t: &Template, at: &FieldPath) {
        let label = if t.name.is_empty() {
            "this inline template".to_string()
        } else {
            format!("template '{}'", t.name)
        };
        for (path, s) in template_strings(t, at) {
            // An expression Argon cannot evaluate fails the step at run time.
            match argon_expr::template::expressions(&s) {
                Ok(exprs) => {
                    for e in exprs {
                        if let Err(e) = argon_expr::check(e) {
                            self.error(path.clone(), e.to_string());
                        }
                    }
                }
                Err(e) => self.error(path.clone(), e.to_string()),
            }
            for var in variables(&s) {
                let Some(rest) = var.strip_prefix("inputs.") else {
                    continue;
                };
                let (kind, declared): (&str, Vec<&str>) = if let Some(r) = rest.strip_prefix("parameters.") {
                    let _ = r;
                    (
                        "parameter",
                        t.inputs.parameters.iter().map(|p| p.name.as_str()).collect(),
                    )
                } else if rest.starts_with("artifacts.") {
                    ("artifact", t.inputs.artifacts.iter().map(|a| a.name.as_str()).collect())
                } else {
                    continue;
                };
                let name = leading_name(rest.split_once('.').map(|(_, n)| n).unwrap_or(""));
                if name.is_empty() || declared.contains(&name) {
                    continue;
                }
                let hint = did_you_mean(suggest(name, declared.iter().copied()));
                self.error(
                    path.clone(),
                    format!(
                        "'{{{{{var}}}}}' refers to input {kind} '{name}', which {label} does not declare in \
                         inputs.{kind}s{hint}"
                    ),
                );
            }
        }
    }

    /// Checks a call of a template: by name, by templateRef, or inline.
    fn call(&mut self, call: Call<'_>, at: &FieldPath) {
        let Call {
            what,
            name,
            template,
            template_ref,
            inline,
            arguments,
        } = call;
        match (template, template_ref, inline) {
            (Some(t), None, None) => {
                if self.local_template(t, &at.key("template")) {
                    self.call_arguments(t, arguments, &format!("{what} '{name}'"), at);
                }
            }
            (None, Some(r), None) => self.template_ref(r, &at.key("templateRef")),
            (None, None, Some(inline)) => self.template(inline, &at.key("inline")),
            (None, None, None) => self.error(
                at.clone(),
                format!("{what} '{name}' names no template: set template, templateRef or inline"),
            ),
            _ => self.error(
                at.clone(),
                format!("{what} '{name}' sets more than one of template, templateRef and inline: keep one"),
            ),
        }
    }

    /// The arguments of a call must match the inputs of the local template `t`.
    fn call_arguments(&mut self, t: &str, args: &Arguments, caller: &str, at: &FieldPath) {
        let Some(tmpl) = self.spec.template(t) else { return };
        let inputs = &tmpl.inputs;
        for (k, p) in args.parameters.iter().enumerate() {
            if inputs.parameter(&p.name).is_none() {
                let hint = did_you_mean(suggest(&p.name, inputs.parameters.iter().map(|p| p.name.as_str())));
                self.warning(
                    at.key("arguments").key("parameters").index(k).key("name"),
                    format!(
                        "argument '{}' is not an input parameter of template '{t}'{hint}",
                        p.name
                    ),
                );
            }
        }
        for (k, a) in args.artifacts.iter().enumerate() {
            if !inputs.artifacts.iter().any(|i| i.name == a.name) {
                let hint = did_you_mean(suggest(&a.name, inputs.artifacts.iter().map(|a| a.name.as_str())));
                self.warning(
                    at.key("arguments").key("artifacts").index(k).key("name"),
                    format!(
                        "argument artifact '{}' is not an input artifact of template '{t}'{hint}",
                        a.name
                    ),
                );
            }
        }
        for p in &inputs.parameters {
            let has_own = p.value.is_some() || p.default.is_some() || p.value_from.is_some();
            if !has_own && args.parameter(&p.name).is_none() {
                self.error(
                    at.key("arguments").key("parameters"),
                    format!(
                        "{caller} does not pass input parameter '{}', which template '{t}' requires",
                        p.name
                    ),
                );
            }
        }
        for a in &inputs.artifacts {
            let has_own =
                !a.location.is_empty() || a.from.is_some() || a.from_expression.is_some() || a.optional == Some(true);
            if !has_own && !args.artifacts.iter().any(|x| x.name == a.name) {
                self.error(
                    at.key("arguments").key("artifacts"),
                    format!(
                        "{caller} does not pass input artifact '{}', which template '{t}' requires",
                        a.name
                    ),
                );
            }
        }
    }

    fn sequence(&mut self, seq: Option<&Sequence>, at: &FieldPath) {
        if let Some(seq) = seq
            && seq.count.is_some()
            && seq.end.is_some()
        {
            self.error(at.key("withSequence"), "withSequence sets both count and end: use one");
        }
    }

    fn step_hooks(&mut self, on_exit: Option<&str>, hooks: &BTreeMap<String, LifecycleHook>, at: &FieldPath) {
        if let Some(on_exit) = on_exit.filter(|s| !s.is_empty()) {
            self.local_template(on_exit, &at.key("onExit"));
        }
        for (event, hook) in hooks {
            self.hook(hook, &at.key("hooks").key(event));
        }
    }

    fn steps(&mut self, t: &Template, groups: &[Vec<WorkflowStep>], at: &FieldPath) {
        // The group each step name is in.
        let mut group_of: BTreeMap<&str, usize> = BTreeMap::new();
        for (g, group) in groups.iter().enumerate() {
            for (s, step) in group.iter().enumerate() {
                let sat = at.index(g).index(s);
                if step.name.is_empty() {
                    self.error(sat.key("name"), "step has no name");
                } else if group_of.contains_key(step.name.as_str()) {
                    self.error(
                        sat.key("name"),
                        format!("duplicate step name '{}' in this template", step.name),
                    );
                } else {
                    group_of.insert(&step.name, g);
                }
            }
        }
        let all: Vec<&str> = group_of.keys().copied().collect();
        for (g, group) in groups.iter().enumerate() {
            for (s, step) in group.iter().enumerate() {
                let sat = at.index(g).index(s);
                self.call(
                    Call {
                        what: "step",
                        name: &step.name,
                        template: step.template.as_deref(),
                        template_ref: step.template_ref.as_ref(),
                        inline: step.inline.as_deref(),
                        arguments: &step.arguments,
                    },
                    &sat,
                );
                self.sequence(step.with_sequence.as_ref(), &sat);
                self.step_hooks(step.on_exit.as_deref(), &step.hooks, &sat);
                let hooks_at = format!("{}.hooks.", sat.as_str());
                for (path, text) in value_strings(&to_value(step), &sat) {
                    // An exit hook runs after its step: it may read the step's own results.
                    let in_hook = path.as_str().starts_with(&hooks_at);
                    for var in variables(&text) {
                        let Some(rest) = var.strip_prefix("steps.") else {
                            continue;
                        };
                        if rest == "name" {
                            // `{{steps.name}}`: the name of this step.
                            continue;
                        }
                        let name = leading_name(rest);
                        if in_hook && name == step.name {
                            continue;
                        }
                        match group_of.get(name) {
                            Some(&h) if h < g => {}
                            Some(&h) => {
                                let when = if h == g {
                                    "in the same group"
                                } else {
                                    "in a later group"
                                };
                                self.error(
                                    path.clone(),
                                    format!(
                                        "'{{{{{var}}}}}' refers to step '{name}', which runs {when} (steps[{h}]); only steps of \
                                         earlier groups can be referenced"
                                    ),
                                );
                            }
                            None => {
                                let hint = did_you_mean(suggest(name, all.iter().copied()));
                                let msg = format!(
                                    "'{{{{{var}}}}}' refers to step '{name}', which is not a step of template '{}'{hint}",
                                    t.name
                                );
                                self.error(path.clone(), msg);
                            }
                        }
                    }
                }
            }
        }
        // The template's outputs may use any of its steps.
        let outputs_at = at.parent_key("outputs");
        for (path, text) in value_strings(&to_value(&t.outputs), &outputs_at) {
            for var in variables(&text) {
                let Some(rest) = var.strip_prefix("steps.") else {
                    continue;
                };
                let name = leading_name(rest);
                if !group_of.contains_key(name) {
                    let hint = did_you_mean(suggest(name, all.iter().copied()));
                    self.error(
                        path,
                        format!(
                            "'{{{{{var}}}}}' refers to step '{name}', which is not a step of template '{}'{hint}",
                            t.name
                        ),
                    );
                    break;
                }
            }
        }
    }

    fn dag(&mut self, t: &Template, dag: &DagTemplate, at: &FieldPath) {
        let tasks_at = at.key("tasks");
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, task) in dag.tasks.iter().enumerate() {
            if let Some(j) = index.get(task.name.as_str()) {
                self.error(
                    tasks_at.index(i).key("name"),
                    format!("duplicate task name '{}' (also tasks[{j}])", task.name),
                );
            } else {
                index.insert(&task.name, i);
            }
        }
        let names: Vec<&str> = dag.tasks.iter().map(|t| t.name.as_str()).collect();

        // Edges: task -> the tasks it depends on (known ones only).
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); dag.tasks.len()];
        for (i, task) in dag.tasks.iter().enumerate() {
            let tat = tasks_at.index(i);
            let unknown = |v: &mut Self, name: &str, at: FieldPath, field: &str| {
                let hint = did_you_mean(suggest(name, names.iter().copied()));
                v.error(
                    at,
                    format!("{field} of task '{}' names unknown task '{name}'{hint}", task.name),
                );
            };
            for (k, d) in task.dependencies.iter().enumerate() {
                match index.get(d.as_str()) {
                    Some(&j) => deps[i].push(j),
                    None => unknown(self, d, tat.key("dependencies").index(k), "dependencies"),
                }
            }
            if let Some(expr) = task.depends.as_deref() {
                if !task.dependencies.is_empty() {
                    self.error(
                        tat.clone(),
                        format!("task '{}' sets both depends and dependencies: use one", task.name),
                    );
                }
                match Depends::parse(expr) {
                    Ok(parsed) => {
                        for name in parsed.names() {
                            match index.get(name) {
                                Some(&j) => deps[i].push(j),
                                None => unknown(self, name, tat.key("depends"), "depends"),
                            }
                        }
                    }
                    Err(e) => self.error(tat.key("depends"), format!("depends '{expr}' does not parse: {e}")),
                }
            }
            self.call(
                Call {
                    what: "task",
                    name: &task.name,
                    template: task.template.as_deref(),
                    template_ref: task.template_ref.as_ref(),
                    inline: task.inline.as_deref(),
                    arguments: &task.arguments,
                },
                &tat,
            );
            self.sequence(task.with_sequence.as_ref(), &tat);
            self.step_hooks(task.on_exit.as_deref(), &task.hooks, &tat);
        }
        // A target with a parameter in it is known only at run time.
        if let Some(target) = dag.target.as_deref().filter(|t| !t.contains("{{")) {
            for name in target.split_whitespace() {
                if !index.contains_key(name) {
                    let hint = did_you_mean(suggest(name, names.iter().copied()));
                    self.error(at.key("target"), format!("target names unknown task '{name}'{hint}"));
                }
            }
        }

        let cycle = find_cycle(&deps);
        if let Some(cycle) = &cycle {
            let path: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
            self.error(tasks_at.clone(), format!("dag cycle: {}", path.join(" -> ")));
        }

        // {{tasks.x...}}: x must be a task; and (without a cycle) one this task waits for.
        let ancestors = if cycle.is_none() { Some(ancestors(&deps)) } else { None };
        for (i, task) in dag.tasks.iter().enumerate() {
            let tat = tasks_at.index(i);
            for (path, text) in value_strings(&to_value(task), &tat) {
                for var in variables(&text) {
                    let Some(rest) = var.strip_prefix("tasks.") else {
                        continue;
                    };
                    if rest == "name" {
                        // `{{tasks.name}}`: the name of this task.
                        continue;
                    }
                    let name = leading_name(rest);
                    match index.get(name) {
                        None => {
                            let hint = did_you_mean(suggest(name, names.iter().copied()));
                            self.error(
                                path.clone(),
                                format!(
                                    "'{{{{{var}}}}}' refers to task '{name}', which is not a task of this dag{hint}"
                                ),
                            );
                        }
                        Some(&j) if j == i => {}
                        Some(&j) => {
                            if let Some(anc) = &ancestors
                                && !anc[i].contains(&j)
                            {
                                self.warning(
                                    path.clone(),
                                    format!(
                                        "task '{}' uses '{{{{{var}}}}}' but does not depend on task '{name}'; add it \
                                         to depends or dependencies",
                                        task.name
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
        let outputs_at = at.parent_key("outputs");
        for (path, text) in value_strings(&to_value(&t.outputs), &outputs_at) {
            for var in variables(&text) {
                let Some(rest) = var.strip_prefix("tasks.") else {
                    continue;
                };
                let name = leading_name(rest);
                if !index.contains_key(name) {
                    let hint = did_you_mean(suggest(name, names.iter().copied()));
                    self.error(
                        path.clone(),
                        format!("'{{{{{var}}}}}' refers to task '{name}', which is not a task of this dag{hint}"),
                    );
                }
            }
        }
    }
}

/// A cycle of the graph `deps` (node -> nodes it depends on), as node
/// indexes in execution order, first node repeated at the end.
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(n: usize, deps: &[Vec<usize>], marks: &mut [Mark], stack: &mut Vec<usize>) -> Option<Vec<usize>> {
        marks[n] = Mark::Active;
        stack.push(n);
        for &d in &deps[n] {
            match marks[d] {
                Mark::Active => {
                    // stack[pos..] is d -> ... -> n along "depends on" edges.
                    let pos = stack.iter().position(|&x| x == d).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[pos..].to_vec();
                    cycle.reverse(); // n ... d: execution order runs against "depends on".
                    let start = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, x)| **x)
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    cycle.rotate_left(start);
                    cycle.push(cycle[0]);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(d, deps, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[n] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; deps.len()];
    for n in 0..deps.len() {
        if marks[n] == Mark::New {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, deps, &mut marks, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// For each node of an acyclic graph, every node it transitively depends on.
fn ancestors(deps: &[Vec<usize>]) -> Vec<BTreeSet<usize>> {
    fn fill(n: usize, deps: &[Vec<usize>], memo: &mut Vec<Option<BTreeSet<usize>>>) -> BTreeSet<usize> {
        if let Some(s) = &memo[n] {
            return s.clone();
        }
        let mut out = BTreeSet::new();
        for &d in &deps[n] {
            out.insert(d);
            out.extend(fill(d, deps, memo));
        }
        memo[n] = Some(out.clone());
        out
    }
    let mut memo = vec![None; deps.len()];
    (0..deps.len()).map(|n| fill(n, deps, &mut memo)).collect()
}

fn to_value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Every string of a template (its own, not those of inline templates of
/// its steps or tasks), with its field path.
fn template_strings(t: &Template, at: &FieldPath) -> Vec<(FieldPath, String)> {
    value_strings(&to_value(t), at)
}

/// Every string in `v` with its field path, not descending into `inline`.
fn value_strings(v: &serde_json::Value, at: &FieldPath) -> Vec<(FieldPath, String)> {
    fn walk(v: &serde_json::Value, at: &FieldPath, out: &mut Vec<(FieldPath, String)>) {
        match v {
            serde_json::Value::String(s) if s.contains("{{") => out.push((at.clone(), s.clone())),
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &at.index(i), out);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    if k != "inline" {
                        walk(item, &at.key(k), out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, at, &mut out);
    out
}

/// The variables referenced as `{{ name }}` in `s`, trimmed; expression
/// tags (`{{= ...}}`) are left out.
pub fn variables(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        if !inner.starts_with('=') && !inner.is_empty() {
            out.push(inner);
        }
        rest = &after[end + 2..];
    }
    out
}

/// The name at the start of `s`: letters, digits, `-` and `_`.
fn leading_name(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

trait ParentKey {
    /// The sibling field `name` of this path's last key (`a.steps` -> `a.outputs`).
    fn parent_key(&self, name: &str) -> FieldPath;
}

impl ParentKey for FieldPath {
    fn parent_key(&self, name: &str) -> FieldPath {
        let s = self.as_str();
        let parent = s.rfind('.').map(|i| &s[..i]).unwrap_or("");
        FieldPath::root().key(parent).key(name)
    }
}
