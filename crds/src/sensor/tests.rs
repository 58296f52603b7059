//! Conformance: every example Sensor of the argoproj.io corpus deserializes
//! into [`Sensor`] and serializes back to the same JSON, and validation finds
//! no error in it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use serde_json::Value;

use super::*;
use crate::diag::{FieldPath, Severity};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/argo-events/examples/sensors"
);

/// Keys the corpus spells differently from the canonical field name; Argon
/// accepts both (as aliases) and writes the canonical one.
const ALIASES: [(&str, &str); 2] = [("openwhisk", "openWhisk"), ("verifycert", "verifyCert")];

/// The Sensor document of a file (some files also hold other kinds).
fn sensor_document(text: &str) -> Result<Value, String> {
    let mut sensors = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| format!("not YAML: {e}"))?;
        if value.get("kind").and_then(Value::as_str) == Some("Sensor") {
            sensors.push(value);
        }
    }
    match sensors.len() {
        1 => Ok(sensors.remove(0)),
        n => Err(format!("expected one Sensor document, found {n}")),
    }
}

fn load(path: &Path) -> Sensor {
    let doc = sensor_document(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap_or_else(|e| panic!("cannot read {CORPUS}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// Drops nulls, empty strings, empty lists and empty maps (recursively) and
/// renames aliased keys, so that only real differences remain.
fn normalize(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(items) => {
            let items: Vec<Value> = items.into_iter().filter_map(normalize).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(map) => {
            let map: serde_json::Map<String, Value> = map
                .into_iter()
                .filter_map(|(k, v)| {
                    let k = ALIASES
                        .iter()
                        .find(|(alias, _)| *alias == k)
                        .map_or(k, |(_, canonical)| canonical.to_string());
                    normalize(v).map(|v| (k, v))
                })
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        other => Some(other),
    }
}

/// The first difference between two JSON values, as a path and both sides.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let p = format!("{path}.{key}");
                match (x.get(key), y.get(key)) {
                    (Some(l), Some(r)) => {
                        if let Some(d) = first_difference(l, r, &p) {
                            return Some(d);
                        }
                    }
                    (l, r) => return Some(format!("{p}: input {l:?}, output {r:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (l, r))| first_difference(l, r, &format!("{path}[{i}]"))),
        _ => (a != b).then(|| format!("{path}: input {a}, output {b}")),
    }
}

#[test]
fn every_corpus_sensor_round_trips() {
    let files = corpus_files();
    assert_eq!(files.len(), 79, "the corpus should hold 79 sensors");
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let input = match sensor_document(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let sensor: Sensor = match serde_path_to_error::deserialize(&input) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{name}: does not deserialize at {}: {}", e.path(), e.inner()));
                continue;
            }
        };
        let output = serde_json::to_value(&sensor).unwrap();
        let (input, output) = (normalize(input).unwrap(), normalize(output).unwrap());
        if let Some(diff) = first_difference(&input, &output, "") {
            failures.push(format!("{name}: round trip differs at {diff}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} sensors fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// The strict loader finds unknown fields by walking a document against the
/// schema; every field of the corpus must be in the schema of the spec
/// (`apiVersion`, `kind` and `metadata` are the loader's business).
#[test]
fn every_corpus_sensor_spec_matches_the_schema() {
    let schema = crate::strict::schema_of::<SensorSpec>();
    let mut failures = Vec::new();
    for file in corpus_files() {
        let doc = sensor_document(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut findings = Vec::new();
        crate::strict::unknown_fields(
            &doc["spec"],
            &schema,
            &schema,
            &FieldPath::root().key("spec"),
            &mut findings,
        );
        for f in findings {
            failures.push(format!("{}: {}: {}", file.display(), f.path, f.message));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A misspelled field is reported, with the field it was probably meant to be.
#[test]
fn unknown_spec_field_is_found_by_the_schema() {
    let schema = crate::strict::schema_of::<SensorSpec>();
    let doc = serde_json::json!({
        "dependencies": [{"name": "d", "eventSourceName": "es", "eventName": "e", "filter": {}}],
        "triggers": [{"template": {"name": "t", "log": {}, "argoWorkflows": {}}}],
    });
    let mut findings = Vec::new();
    crate::strict::unknown_fields(&doc, &schema, &schema, &FieldPath::root().key("spec"), &mut findings);
    let paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["spec.dependencies[0].filter", "spec.triggers[0].template.argoWorkflows"],
        "{findings:#?}"
    );
}

#[test]
fn every_corpus_sensor_validates_without_errors() {
    let mut failures = Vec::new();
    for file in corpus_files() {
        for f in validate(&load(&file))
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
        {
            failures.push(format!("{}: {}: {}", file.display(), f.path, f.message));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn trigger_kind_of_corpus_examples() {
    let load = |name: &str| load(&Path::new(CORPUS).join(name));
    let kind_name = |s: &Sensor| s.spec.triggers[0].template.kind().map(|k| k.name().to_string());
    assert_eq!(kind_name(&load("log.yaml")).as_deref(), Some("log"));
    assert_eq!(
        kind_name(&load("special-workflow-trigger-submit-existing.yml")).as_deref(),
        Some("argoWorkflow")
    );
    assert_eq!(
        kind_name(&load("aws-lambda-trigger.yaml")).as_deref(),
        Some("awsLambda")
    );
    // `openwhisk` (lower case) in the corpus is the `openWhisk` kind.
    let s = load("trigger-openwhisk.yaml");
    assert_eq!(
        s.spec.triggers[0].template.kind(),
        Some(TriggerKind::Unsupported("openWhisk".into()))
    );
    match load("special-workflow-trigger-submit-existing.yml").spec.triggers[0]
        .template
        .kind()
    {
        Some(TriggerKind::ArgoWorkflow(t)) => assert_eq!(t.operation, Some(ArgoWorkflowOperation::SubmitFrom)),
        other => panic!("expected argoWorkflow, got {other:?}"),
    }
}

#[test]
fn trigger_condition_defaults_to_all_dependencies() {
    let s = load(&Path::new(CORPUS).join("multi-dependencies.yaml"));
    let deps: Vec<&str> = s.spec.dependencies.iter().map(|d| d.name.as_str()).collect();
    for trigger in &s.spec.triggers {
        let condition = trigger.template.condition(deps.iter().copied()).unwrap();
        for name in condition.names() {
            assert!(deps.contains(&name), "{name}");
        }
    }
}

/// Kubernetes rejects a CRD schema with `$ref`; the recursive `dlqTrigger`
/// must be written out.
#[test]
fn crd_schema_has_no_references() {
    use kube::CustomResourceExt;
    let crd = serde_json::to_string(&Sensor::crd()).unwrap();
    assert!(!crd.contains("$ref"), "the Sensor CRD schema must not contain $ref");
    assert!(crd.contains("\"dlqTrigger\""));
}

#[test]
fn schema_is_generated_with_free_form_resources() {
    let schema = serde_json::to_value(schemars::schema_for!(Sensor)).unwrap();
    let text = schema.to_string();
    assert!(
        text.contains("x-kubernetes-preserve-unknown-fields"),
        "resource must be free-form"
    );
    assert!(text.contains("\"dlqTrigger\""));
}
