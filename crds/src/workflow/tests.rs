//! Tests of the workflow model and its validation: the example workflows in
//! `examples/workflows/` load, validate without errors and round-trip; each
//! validation check reports its exact message at its exact path.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::*;
use crate::diag::{Finding, Severity};

fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/workflows"))
}

/// Every example file, with its text.
fn examples() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(examples_dir())
        .expect("examples/workflows exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable example");
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 15, "expected the seed examples, found {}", out.len());
    out
}

/// The WorkflowTemplates among the examples: (name, cluster scoped, template names).
fn example_templates() -> Vec<(String, bool, Vec<String>)> {
    let mut out = Vec::new();
    for (_, text) in examples() {
        let v: Value = serde_norway::from_str(&text).unwrap();
        let (cluster, spec) = match v["kind"].as_str() {
            Some("WorkflowTemplate") => (
                false,
                serde_json::from_value::<WorkflowTemplate>(v.clone()).unwrap().spec.spec,
            ),
            Some("ClusterWorkflowTemplate") => (
                true,
                serde_json::from_value::<ClusterWorkflowTemplate>(v.clone())
                    .unwrap()
                    .spec
                    .spec,
            ),
            _ => continue,
        };
        let name = v["metadata"]["name"].as_str().unwrap().to_string();
        out.push((name, cluster, spec.templates.iter().map(|t| t.name.clone()).collect()));
    }
    out
}

fn resolves(known: &[(String, bool, Vec<String>)], r: &TemplateRef) -> bool {
    known.iter().any(|(name, cluster, templates)| {
        *name == r.name && *cluster == r.cluster_scope && (r.template.is_empty() || templates.contains(&r.template))
    })
}

/// Parses an example into its kind and validates it.
fn load_and_validate(file: &str, text: &str, known: &[(String, bool, Vec<String>)]) -> (Value, Vec<Finding>) {
    let resolver = |r: &TemplateRef| resolves(known, r);
    let input: Value = serde_norway::from_str(text).unwrap_or_else(|e| panic!("{file}: not YAML: {e}"));
    let de = serde_norway::Deserializer::from_str(text);
    macro_rules! load {
        ($ty:ty) => {{
            let parsed: $ty = serde_path_to_error::deserialize(de).unwrap_or_else(|e| panic!("{file}: {e}"));
            (serde_json::to_value(&parsed).unwrap(), parsed)
        }};
    }
    let (output, findings) = match input["kind"].as_str() {
        Some("Workflow") => {
            let (out, wf) = load!(Workflow);
            (out, validate_workflow(&wf, &resolver))
        }
        Some("WorkflowTemplate") => {
            let (out, wt) = load!(WorkflowTemplate);
            (out, validate_workflow_template(&wt, &resolver))
        }
        Some("ClusterWorkflowTemplate") => {
            let (out, wt) = load!(ClusterWorkflowTemplate);
            (out, validate::validate_cluster_workflow_template(&wt, &resolver))
        }
        Some("CronWorkflow") => {
            let (out, cwf) = load!(CronWorkflow);
            (out, validate_cron_workflow(&cwf, &resolver))
        }
        other => panic!("{file}: unexpected kind {other:?}"),
    };
    assert_round_trip(file, &input, &output);
    (output, findings)
}

/// Drops nulls, empty strings, empty lists and empty maps, recursively.
fn prune(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(items) => {
            let items: Vec<Value> = items.iter().map(|i| prune(i).unwrap_or(Value::Null)).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(map) => {
            let map: serde_json::Map<String, Value> = map
                .iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k.clone(), v)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        other => Some(other.clone()),
    }
}

/// Compares input and output; a number or boolean in the input may come
/// back as its text (parameter values are strings).
fn diff(path: &str, input: &Value, output: &Value, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff(&format!("{path}.{k}"), x, y, out),
                    (Some(_), None) => out.push(format!("{path}.{k}: dropped")),
                    (None, Some(_)) => out.push(format!("{path}.{k}: added")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (Value::Number(n), Value::String(s)) if n.to_string() == *s => {}
        (Value::Bool(b), Value::String(s)) if b.to_string() == *s => {}
        // A file mode written 0755 comes back as the number it means.
        (Value::String(s), Value::Number(n)) if parse_file_mode(s) == n.as_i64() => {}
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

fn assert_round_trip(file: &str, input: &Value, output: &Value) {
    let (input, output) = (prune(input).unwrap(), prune(output).unwrap());
    let mut diffs = Vec::new();
    diff("", &input, &output, &mut diffs);
    assert!(diffs.is_empty(), "{file} does not round-trip:\n{}", diffs.join("\n"));
}

#[test]
fn examples_load_validate_and_round_trip() {
    let known = example_templates();
    assert!(known.iter().any(|(n, _, _)| n == "whalesay-template"));
    for (file, text) in examples() {
        assert!(
            text.starts_with("# "),
            "{file}: the first line must be a comment naming the scenario"
        );
        let (_, findings) = load_and_validate(&file, &text, &known);
        assert!(findings.is_empty(), "{file}: {findings:#?}");
    }
}

#[test]
fn example_shapes_are_what_the_engine_needs() {
    let text = std::fs::read_to_string(examples_dir().join("loops-maps.yaml")).unwrap();
    let wf: Workflow = serde_norway::from_str(&text).unwrap();
    let step = &wf.spec.templates[0].steps.as_ref().unwrap()[0][0];
    assert_eq!(step.with_items.len(), 4);
    assert_eq!(step.with_items[3]["tag"], "17.10");

    let text = std::fs::read_to_string(examples_dir().join("status-workflow.yaml")).unwrap();
    let wf: Workflow = serde_norway::from_str(&text).unwrap();
    let dag = wf.spec.templates[0].dag.as_ref().unwrap();
    assert_eq!(
        dag.tasks[1].continue_on,
        Some(ContinueOn {
            error: false,
            failed: true
        })
    );
    assert_eq!(
        dag.tasks[3].when.as_deref(),
        Some("{{tasks.check-status.status}} == 'Failed'")
    );
    assert_eq!(dag.tasks[3].template_ref.as_ref().unwrap().name, "whalesay-template");

    let text = std::fs::read_to_string(examples_dir().join("cron-workflow.yaml")).unwrap();
    let cwf: CronWorkflow = serde_norway::from_str(&text).unwrap();
    assert_eq!(cwf.spec.concurrency_policy, Some(ConcurrencyPolicy::Replace));
    assert_eq!(cwf.spec.workflow_spec.entrypoint.as_deref(), Some("whalesay"));

    let text = std::fs::read_to_string(examples_dir().join("scripts.yaml")).unwrap();
    let wf: Workflow = serde_norway::from_str(&text).unwrap();
    let script = wf
        .spec
        .template("gen-random-int-python")
        .unwrap()
        .script
        .as_ref()
        .unwrap();
    assert_eq!(script.container.image.as_deref(), Some("python:alpine3.6"));
    assert!(script.source.contains("random.randint(1, 100)"));
    assert_eq!(
        wf.spec.template("print-message").unwrap().kind(),
        Some(TemplateKind::Container)
    );
}

#[test]
fn any_string_reads_numbers_and_booleans_as_text() {
    let p: Parameter = serde_json::from_value(serde_json::json!({
        "name": "n", "value": 5, "default": true, "enum": [1.5, "x", false]
    }))
    .unwrap();
    assert_eq!(p.value.as_ref().unwrap().as_str(), "5");
    assert_eq!(p.default.as_ref().unwrap().as_str(), "true");
    assert_eq!(
        p.r#enum.iter().map(AnyString::as_str).collect::<Vec<_>>(),
        ["1.5", "x", "false"]
    );
    assert_eq!(serde_json::to_value(&p).unwrap()["value"], "5");
    let err = serde_json::from_value::<Parameter>(serde_json::json!({"name": "n", "value": [1]})).unwrap_err();
    assert!(err.to_string().contains("a string, a number or a boolean"), "{err}");
    let schema = serde_json::to_value(schemars::schema_for!(AnyString)).unwrap();
    assert_eq!(schema["anyOf"][2]["type"], "boolean");
}

#[test]
fn file_modes_are_octal_with_a_leading_zero() {
    for (yaml, want) in [
        ("mode: 0755", 493),
        ("mode: 493", 493),
        ("mode: '0o644'", 420),
        ("mode: 0", 0),
    ] {
        let a: Artifact = serde_norway::from_str(&format!("name: a\n{yaml}")).unwrap();
        assert_eq!(a.mode, Some(want), "{yaml}");
    }
    let err = serde_norway::from_str::<Artifact>("name: a\nmode: rwx").unwrap_err();
    assert!(err.to_string().contains("invalid file mode \"rwx\""), "{err}");
}

#[test]
fn kube_roots_have_the_upstream_names() {
    use kube::core::Resource;
    assert_eq!(Workflow::kind(&()), "Workflow");
    assert_eq!(Workflow::api_version(&()), "argoproj.io/v1alpha1");
    assert_eq!(WorkflowTemplate::plural(&()), "workflowtemplates");
    assert_eq!(ClusterWorkflowTemplate::kind(&()), "ClusterWorkflowTemplate");
    assert_eq!(CronWorkflow::plural(&()), "cronworkflows");
    use kube::core::CustomResourceExt;
    assert_eq!(ClusterWorkflowTemplate::crd().spec.scope, "Cluster");
    assert_eq!(Workflow::crd().spec.scope, "Namespaced");
    assert_eq!(Workflow::shortnames(), ["wf"]);
    assert_eq!(WorkflowTemplate::shortnames(), ["wftmpl"]);
    assert_eq!(ClusterWorkflowTemplate::shortnames(), ["cwftmpl"]);
    assert_eq!(CronWorkflow::shortnames(), ["cwf"]);
}

#[test]
fn status_loads_loosely() {
    let wf: Workflow = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "suspend": {}}]},
        "status": {
            "phase": "Running", "startedAt": "2024-01-02T03:04:05Z", "finishedAt": null,
            "nodes": {"w": {"id": "w", "name": "w", "displayName": "w", "type": "Steps", "phase": "Running",
                            "outputs": {"result": "heads", "exitCode": "0"}}}
        }
    }))
    .unwrap();
    let status = wf.status.unwrap();
    assert_eq!(status.phase, Some(WorkflowPhase::Running));
    assert_eq!(status.nodes["w"].type_, Some(NodeType::Steps));
    assert_eq!(
        status.nodes["w"].outputs.as_ref().unwrap().result.as_deref(),
        Some("heads")
    );
}

// ---- validation checks: one test per check, asserting message and path ----

fn wf(yaml: &str) -> Workflow {
    let head = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: t\n";
    serde_norway::from_str(&format!("{head}{yaml}")).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn check(yaml: &str) -> Vec<Finding> {
    validate_workflow(&wf(yaml), &|_| true)
}

/// The findings as `severity path: message`, for exact comparison.
fn lines(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{} {}: {}", f.severity, f.path, f.message))
        .collect()
}

const ECHO: &str = "
  - name: echo
    inputs: {parameters: [{name: message}]}
    container: {image: alpine, command: [echo, '{{inputs.parameters.message}}']}";

#[test]
fn entrypoint_must_name_a_template() {
    let f = check(&format!(
        "spec:\n  entrypoint: mian\n  templates:\n  - name: main\n    suspend: {{}}{ECHO}"
    ));
    assert_eq!(
        lines(&f),
        ["error spec.entrypoint: entrypoint 'mian' is not a template of this workflow; did you mean 'main'?"]
    );
    let f = check("spec:\n  templates:\n  - name: main\n    suspend: {}");
    assert_eq!(
        lines(&f),
        ["error spec.entrypoint: entrypoint is required: name the template the workflow starts with"]
    );
}

#[test]
fn workflow_template_ref_replaces_the_entrypoint_check() {
    let w = wf("spec:\n  entrypoint: elsewhere\n  workflowTemplateRef: {name: lib}");
    assert!(validate_workflow(&w, &|r| r.name == "lib" && r.template.is_empty()).is_empty());
    assert_eq!(
        lines(&validate_workflow(&w, &|_| false)),
        [
            "warning spec.workflowTemplateRef: WorkflowTemplate 'lib' is not among the loaded manifests; it must exist in the cluster"
        ]
    );
}

#[test]
fn template_names_are_unique() {
    let f = check(
        "spec:\n  entrypoint: a\n  templates:\n  - {name: a, suspend: {}}\n  - {name: b, suspend: {}}\n  - {name: a, suspend: {}}",
    );
    assert_eq!(
        lines(&f),
        ["error spec.templates[2].name: duplicate template name 'a' (also templates[0])"]
    );
}

#[test]
fn a_template_has_exactly_one_kind() {
    let f = check(
        "spec:\n  entrypoint: a\n  templates:\n  - name: a\n  - name: b\n    suspend: {}\n    container: {image: x}",
    );
    assert_eq!(
        lines(&f),
        [
            "error spec.templates[0]: template 'a' has no kind: set one of container, script, resource, suspend, steps, dag, http, containerSet, data, plugin",
            "error spec.templates[1]: template 'b' sets more than one kind (container, suspend): keep one",
        ]
    );
}

#[test]
fn a_step_must_name_a_known_template() {
    let f = check(&format!(
        "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    steps:\n    - - name: a\n        template: ecko\n        arguments: {{parameters: [{{name: message, value: hi}}]}}\n      - name: b{ECHO}"
    ));
    assert_eq!(
        lines(&f),
        [
            "error spec.templates[0].steps[0][0].template: template 'ecko' not found in this workflow; did you mean 'echo'?",
            "error spec.templates[0].steps[0][1]: step 'b' names no template: set template, templateRef or inline",
        ]
    );
}

#[test]
fn an_unresolved_template_ref_is_a_warning() {
    let w = wf(
        "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    dag:\n      tasks:\n      - name: a\n        templateRef: {name: lib, template: hello}",
    );
    assert!(validate_workflow(&w, &|r| r.name == "lib" && r.template == "hello").is_empty());
    assert_eq!(
        lines(&validate_workflow(&w, &|_| false)),
        [
            "warning spec.templates[0].dag.tasks[0].templateRef: template 'hello' of WorkflowTemplate 'lib' is not among the loaded manifests; it must exist in the cluster"
        ]
    );
}

fn dag(tasks: &str) -> Vec<Finding> {
    check(&format!(
        "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    dag:\n      tasks:\n{tasks}\n  - {{name: s, suspend: {{}}}}"
    ))
}

#[test]
fn a_dag_cycle_is_named() {
    let f = dag(
        "      - {name: a, template: s, dependencies: [c]}\n      - {name: b, template: s, dependencies: [a]}\n      - {name: c, template: s, depends: b}\n      - {name: d, template: s, dependencies: [a]}",
    );
    assert_eq!(
        lines(&f),
        ["error spec.templates[0].dag.tasks: dag cycle: a -> b -> c -> a"]
    );
    let f = dag("      - {name: a, template: s, dependencies: [a]}");
    assert_eq!(lines(&f), ["error spec.templates[0].dag.tasks: dag cycle: a -> a"]);
}

#[test]
fn dependencies_and_depends_name_known_tasks() {
    let f = dag(
        "      - {name: build, template: s}\n      - {name: test, template: s, dependencies: [biuld]}\n      - {name: ship, template: s, depends: 'test.Succeeded && pakage'}\n      - {name: x, template: s, depends: 'test &'}\n      - {name: y, template: s, depends: build, dependencies: [test]}",
    );
    assert_eq!(
        lines(&f),
        [
            "error spec.templates[0].dag.tasks[1].dependencies[0]: dependencies of task 'test' names unknown task 'biuld'; did you mean 'build'?",
            "error spec.templates[0].dag.tasks[2].depends: depends of task 'ship' names unknown task 'pakage'",
            "error spec.templates[0].dag.tasks[3].depends: depends 'test &' does not parse: expected '&&', found '&' at column 6",
            "error spec.templates[0].dag.tasks[4]: task 'y' sets both depends and dependencies: use one",
        ]
    );
}

#[test]
fn task_names_are_unique() {
    let f = dag("      - {name: a, template: s}\n      - {name: a, template: s}");
    assert_eq!(
        lines(&f),
        ["error spec.templates[0].dag.tasks[1].name: duplicate task name 'a' (also tasks[0])"]
    );
}

#[test]
fn the_path_of_a_task_template_is_exact() {
    let f = check(
        "spec:\n  entrypoint: s\n  templates:\n  - {name: s, suspend: {}}\n  - name: main\n    dag:\n      tasks:\n      - {name: a, template: s}\n      - {name: b, template: s}\n      - {name: c, template: nope}",
    );
    assert_eq!(
        lines(&f),
        ["error spec.templates[1].dag.tasks[2].template: template 'nope' not found in this workflow"]
    );
}

#[test]
fn input_references_must_be_declared() {
    let f = check(
        "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    inputs: {parameters: [{name: message}], artifacts: [{name: src, path: /src}]}\n    container:\n      image: alpine\n      args: ['{{inputs.parameters.mesage}} {{inputs.parameters.message}}', '{{inputs.artifacts.source.path}}']",
    );
    assert_eq!(
        lines(&f),
        [
            "error spec.templates[0].container.args[0]: '{{inputs.parameters.mesage}}' refers to input parameter 'mesage', which template 'main' does not declare in inputs.parameters; did you mean 'message'?",
            "error spec.templates[0].container.args[1]: '{{inputs.artifacts.source.path}}' refers to input artifact 'source', which template 'main' does not declare in inputs.artifacts; did you mean 'src'?",
        ]
    );
}

#[test]
fn arguments_must_match_the_inputs_of_the_called_template() {
    let f = check(&format!(
        "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    steps:\n    - - name: a\n        template: echo\n        arguments: {{parameters: [{{name: mesage, value: hi}}]}}{ECHO}"
    ));
    assert_eq!(
        lines(&f),
        [
            "warning spec.templates[0].steps[0][0].arguments.parameters[0].name: argument 'mesage' is not an input parameter of template 'echo'; did you mean 'message'?",
            "error spec.templates[0].steps[0][0].arguments.parameters: step 'a' does not pass input parameter 'message', which template 'echo' requires",
        ]
    );
}

#[test]
fn steps_references_name_earlier_steps() {
    let f = check(&format!(
        "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    steps:\n    - - name: gen\n        template: s\n      - name: same\n        template: echo\n        arguments: {{parameters: [{{name: message, value: '{{{{steps.gen.outputs.result}}}}'}}]}}\n    - - name: later\n        template: echo\n        when: '{{{{steps.gen.outputs.result}}}} == x'\n        arguments: {{parameters: [{{name: message, value: '{{{{steps.gem.outputs.result}}}} {{{{steps.last.ip}}}}'}}]}}\n    - - name: last\n        template: s\n  - {{name: s, suspend: {{}}}}{ECHO}"
    ));
    assert_eq!(
        lines(&f),
        [
            "error spec.templates[0].steps[0][1].arguments.parameters[0].value: '{{steps.gen.outputs.result}}' refers to step 'gen', which runs in the same group (steps[0]); only steps of earlier groups can be referenced",
            "error spec.templates[0].steps[1][0].arguments.parameters[0].value: '{{steps.gem.outputs.result}}' refers to step 'gem', which is not a step of template 'main'; did you mean 'gen'?",
            "error spec.templates[0].steps[1][0].arguments.parameters[0].value: '{{steps.last.ip}}' refers to step 'last', which runs in a later group (steps[2]); only steps of earlier groups can be referenced",
        ]
    );
}

#[test]
fn tasks_references_name_tasks_of_the_dag() {
    let f = dag(
        "      - {name: a, template: s}\n      - {name: b, template: s, when: '{{tasks.x.status}} == Failed'}\n      - {name: c, template: s, when: '{{tasks.a.status}} == Failed'}\n      - {name: d, template: s, depends: a, when: '{{tasks.a.status}} == Failed'}",
    );
    assert_eq!(
        lines(&f),
        [
            "error spec.templates[0].dag.tasks[1].when: '{{tasks.x.status}}' refers to task 'x', which is not a task of this dag",
            "warning spec.templates[0].dag.tasks[2].when: task 'c' uses '{{tasks.a.status}}' but does not depend on task 'a'; add it to depends or dependencies",
        ]
    );
}

#[test]
fn with_sequence_takes_count_or_end() {
    let f = dag(
        "      - {name: a, template: s, withSequence: {count: 5, end: '9'}}\n      - {name: b, template: s, withSequence: {start: 1, end: 3}}",
    );
    assert_eq!(
        lines(&f),
        ["error spec.templates[0].dag.tasks[0].withSequence: withSequence sets both count and end: use one"]
    );
}

#[test]
fn exit_handlers_and_hooks_name_known_templates() {
    let f = check(
        "spec:\n  entrypoint: s\n  onExit: exit-handlr\n  hooks:\n    exit: {template: exit-handler}\n    running: {expression: 'true'}\n  templates:\n  - {name: s, suspend: {}}\n  - {name: exit-handler, suspend: {}}",
    );
    assert_eq!(
        lines(&f),
        [
            "error spec.onExit: template 'exit-handlr' not found in this workflow; did you mean 'exit-handler'?",
            "error spec.hooks.running: hook names no template: set template or templateRef",
        ]
    );
}

#[test]
fn inline_templates_are_validated_in_their_own_scope() {
    let f = check(
        "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    inputs: {parameters: [{name: p}]}\n    steps:\n    - - name: a\n        inline:\n          container: {image: alpine, args: ['{{inputs.parameters.p}}']}",
    );
    assert_eq!(
        lines(&f),
        [
            "error spec.templates[0].steps[0][0].inline.container.args[0]: '{{inputs.parameters.p}}' refers to input parameter 'p', which this inline template does not declare in inputs.parameters"
        ]
    );
}

#[test]
fn workflow_templates_need_no_entrypoint() {
    let wt: WorkflowTemplate = serde_norway::from_str(
        "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: lib}\nspec:\n  templates:\n  - {name: s, suspend: {}}",
    )
    .unwrap();
    assert!(validate_workflow_template(&wt, &|_| true).is_empty());
}

fn cron(schedule: &str) -> Vec<String> {
    let cwf: CronWorkflow = serde_norway::from_str(&format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata: {{name: c}}\nspec:\n  {schedule}\n  workflowSpec:\n    entrypoint: s\n    templates: [{{name: s, suspend: {{}}}}]"
    ))
    .unwrap();
    lines(&validate_cron_workflow(&cwf, &|_| true))
}

#[test]
fn cron_schedules_have_five_fields_or_a_descriptor() {
    assert!(cron("schedule: '*/5 * * * *'").is_empty());
    assert!(cron("schedules: ['@hourly', '@every 1h30m', 'CRON_TZ=Asia/Tokyo 0 9 * * MON-FRI']").is_empty());
    assert_eq!(
        cron("schedule: '@daily'\n  timezone: Mars/Base"),
        ["error spec.timezone: unknown time zone 'Mars/Base' (use an IANA name such as Europe/Paris)"]
    );
    assert_eq!(
        cron("schedule: '0 * * * * *'"),
        [
            "error spec.schedule: schedule '0 * * * * *' has 6 fields; a cron schedule has 5 (minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'), or use a descriptor such as '@hourly'"
        ]
    );
    assert_eq!(
        cron("schedules: ['* * * * *', '@hourlly']"),
        [
            "error spec.schedules[1]: schedule '@hourlly': unknown descriptor '@hourlly'; did you mean '@hourly'? (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every DURATION)"
        ]
    );
    assert_eq!(
        cron("suspend: true"),
        ["error spec.schedules: a CronWorkflow needs a schedule: set schedules (or the older schedule)"]
    );
    let bad: CronWorkflow = serde_norway::from_str::<CronWorkflow>(
        "apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata: {name: c}\nspec:\n  schedule: '* * * * *'\n  concurrencyPolicy: Sometimes\n  workflowSpec: {}",
    )
    .map(|_| panic!("concurrencyPolicy is a closed set"))
    .unwrap_or_else(|e| {
        assert!(e.to_string().contains("unknown variant `Sometimes`"), "{e}");
        serde_norway::from_str("apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata: {name: c}\nspec:\n  schedule: '* * * * *'\n  workflowSpec: {}").unwrap()
    });
    assert_eq!(
        lines(&validate_cron_workflow(&bad, &|_| true)),
        ["error spec.workflowSpec.entrypoint: entrypoint is required: name the template the workflow starts with"]
    );
}

#[test]
fn findings_are_errors_or_warnings() {
    let f = check(&format!(
        "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    steps: [[{{name: a, template: echo, arguments: {{parameters: [{{name: message}}, {{name: extra}}]}}}}]]{ECHO}"
    ));
    assert_eq!(f.iter().map(|f| f.severity).collect::<Vec<_>>(), [Severity::Warning]);
}

/// Every Argo Workflows object in the Argo Events corpus (most are
/// embedded in Sensor triggers), with the file it came from.
fn corpus_objects() -> Vec<(String, Value)> {
    fn walk(v: &Value, file: &str, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(map) => {
                let ours = matches!(
                    map.get("kind").and_then(Value::as_str),
                    Some("Workflow" | "WorkflowTemplate" | "ClusterWorkflowTemplate" | "CronWorkflow")
                ) && map.get("apiVersion").and_then(Value::as_str) == Some("argoproj.io/v1alpha1");
                if ours && map.contains_key("spec") {
                    out.push((file.to_string(), v.clone()));
                }
                map.values().for_each(|x| walk(x, file, out));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, file, out)),
            _ => {}
        }
    }
    let root = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/argo-events/examples"
    ));
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("corpus dir") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        for doc in serde_norway::Deserializer::from_str(&text) {
            if let Ok(v) = Value::deserialize(doc) {
                walk(&v, &name, &mut out);
            }
        }
    }
    out
}

#[test]
fn corpus_workflows_load_and_round_trip() {
    let objects = corpus_objects();
    assert!(
        objects.len() >= 20,
        "expected workflows embedded in the corpus, found {}",
        objects.len()
    );
    let mut failures = Vec::new();
    for (file, v) in &objects {
        let output = match v["kind"].as_str() {
            Some("Workflow") => serde_path_to_error::deserialize(v).map(|w: Workflow| serde_json::to_value(w).unwrap()),
            Some("WorkflowTemplate") => {
                serde_path_to_error::deserialize(v).map(|w: WorkflowTemplate| serde_json::to_value(w).unwrap())
            }
            Some("ClusterWorkflowTemplate") => {
                serde_path_to_error::deserialize(v).map(|w: ClusterWorkflowTemplate| serde_json::to_value(w).unwrap())
            }
            _ => serde_path_to_error::deserialize(v).map(|w: CronWorkflow| serde_json::to_value(w).unwrap()),
        };
        match output {
            Ok(out) => {
                let (a, b) = (prune(v).unwrap(), prune(&out).unwrap());
                let mut diffs = Vec::new();
                diff("", &a, &b, &mut diffs);
                if !diffs.is_empty() {
                    failures.push(format!("{file}: {}", diffs.join("; ")));
                }
            }
            Err(e) => failures.push(format!("{file}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        objects.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_workflows_validate_without_errors() {
    let mut failures = Vec::new();
    for (file, v) in corpus_objects() {
        let findings = match v["kind"].as_str() {
            Some("Workflow") => validate_workflow(&serde_json::from_value(v).unwrap(), &|_| true),
            Some("WorkflowTemplate") => validate_workflow_template(&serde_json::from_value(v).unwrap(), &|_| true),
            Some("CronWorkflow") => validate_cron_workflow(&serde_json::from_value(v).unwrap(), &|_| true),
            _ => continue,
        };
        for f in findings.iter().filter(|f| f.severity == Severity::Error) {
            failures.push(format!("{file}: {}: {}", f.path, f.message));
        }
    }
    // The one corpus workflow Argo itself rejects: its template uses inputs
    // it does not declare (the workflow arguments are message1 and message2).
    let known_bad = [
        "multi-dependencies.yaml: spec.templates[0].container.args[0]: '{{inputs.parameters.message1}}' refers to \
         input parameter 'message1', which template 'print-message' does not declare in inputs.parameters; did you \
         mean 'message'?",
        "multi-dependencies.yaml: spec.templates[0].container.args[1]: '{{inputs.parameters.message2}}' refers to \
         input parameter 'message2', which template 'print-message' does not declare in inputs.parameters; did you \
         mean 'message'?",
    ];
    let unexpected: Vec<&String> = failures
        .iter()
        .filter(|f| !known_bad.iter().any(|k| f.ends_with(&format!("/{k}"))))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert_eq!(failures.len(), known_bad.len(), "{failures:#?}");
}

#[test]
fn null_lists_and_maps_read_as_empty() {
    let w = wf(
        "spec:\n  entrypoint: main\n  nodeSelector:\n  templates:\n  - name: main\n    dag:\n      tasks:\n      - {name: a, template: s, dependencies: }\n      - name: b\n        template: s\n        dependencies:\n        withItems:\n  - {name: s, suspend: {}}",
    );
    let tasks = &w.spec.templates[0].dag.as_ref().unwrap().tasks;
    assert!(tasks[0].dependencies.is_empty() && tasks[1].with_items.is_empty());
    assert!(validate_workflow(&w, &|_| true).is_empty());
}

#[test]
fn the_schema_merges_flattened_containers() {
    let schema = serde_json::to_value(schemars::schema_for!(Workflow)).unwrap();
    let defs = &schema["$defs"];
    let script = &defs["ScriptTemplate"]["properties"];
    assert!(
        script["source"].is_object() && script["image"].is_object() && script["command"].is_object(),
        "{script}"
    );
    let artifact = &defs["Artifact"]["properties"];
    assert!(artifact["s3"].is_object() && artifact["from"].is_object(), "{artifact}");
    let sidecar = &defs["UserContainer"]["properties"];
    assert!(
        sidecar["mirrorVolumeMounts"].is_object() && sidecar["image"].is_object(),
        "{sidecar}"
    );
    assert_eq!(
        defs["Template"]["properties"]["steps"]["type"],
        serde_json::json!(["array", "null"])
    );
}

#[test]
fn valid_references_that_are_not_errors() {
    // An exit hook reads its own step's (or task's) results; `{{steps.name}}`
    // and `{{tasks.name}}` are the current step's and task's names; a
    // parameterized dag target is known only at run time.
    let found = check(
        &("spec:
  entrypoint: main
  arguments: {parameters: [{name: target, value: b}]}
  templates:
    - name: main
      steps:
        - - name: step1
            template: produce
            arguments: {parameters: [{name: message, value: '{{steps.name}}'}]}
            hooks:
              exit:
                template: echo
                arguments:
                  parameters:
                    - name: message
                      value: '{{steps.step1.outputs.parameters.out}} {{steps.step1.status}}'
    - name: d
      dag:
        target: '{{workflow.parameters.target}}'
        tasks:
          - name: a
            template: produce
            arguments: {parameters: [{name: message, value: '{{tasks.name}}'}]}
            hooks:
              exit:
                template: echo
                arguments: {parameters: [{name: message, value: '{{tasks.a.outputs.parameters.out}}'}]}
          - name: b
            template: echo
            arguments: {parameters: [{name: message, value: x}]}
    - name: produce
      inputs: {parameters: [{name: message}]}
      container: {image: alpine, command: [sh, -c, 'echo {{inputs.parameters.message}} > /tmp/out']}
      outputs: {parameters: [{name: out, valueFrom: {path: /tmp/out}}]}
"
        .to_owned()
            + &ECHO.replace('\n', "\n  ")),
    );
    assert!(
        found.iter().all(|f| f.severity != crate::diag::Severity::Error),
        "{:#?}",
        lines(&found)
    );
    // A step of the same group is still an error outside the hook.
    let found = check(
        &("spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: a
            template: echo
            arguments: {parameters: [{name: message, value: x}]}
          - name: b
            template: echo
            arguments: {parameters: [{name: message, value: '{{steps.a.status}}'}]}
"
        .to_owned()
            + &ECHO.replace('\n', "\n  ")),
    );
    assert!(
        lines(&found).iter().any(|l| l.contains("runs in the same group")),
        "{:#?}",
        lines(&found)
    );
}

#[test]
fn an_expression_argon_cannot_evaluate_is_an_error_naming_it() {
    let found = check(
        &("spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: a
            template: echo
            arguments:
              parameters:
                - name: message
                  value: \"{{=\n  sprig.upper('x',\n}}\"
        - - name: b
            template: echo
            arguments:
              parameters:
                - name: message
                  value: \"{{= filter([1, 2], {# > 1}) }}\"
"
        .to_owned()
            + &ECHO.replace('\n', "\n  ")),
    );
    let errors: Vec<String> = lines(&found).into_iter().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with(
            "error spec.templates[0].steps[0][0].arguments.parameters[0].value: expression 'sprig.upper('x','"
        ),
        "{errors:#?}"
    );
    assert!(errors[0].contains("syntax error"), "{errors:#?}");
}
