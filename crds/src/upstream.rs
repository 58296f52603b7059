//! Upstream fields Argon knows but does not act on yet. A manifest that sets
//! one loads, with a warning that names it; it is never an unknown-field
//! error. Checked against upstream's field list by the tests below.

/// `(schema definition, field, what happens)`: the definition is the name of
/// the type in Argon's schema (the Rust type, or the Kubernetes type's
/// OpenAPI name).
const NOT_SUPPORTED: &[(&str, &str, &str)] = &[
    // Workflow specs (the three kinds have their own schema definitions).
    ("WorkflowSpec", "executorPlugins", EXECUTOR_PLUGINS),
    ("WorkflowTemplateSpec", "executorPlugins", EXECUTOR_PLUGINS),
    ("ClusterWorkflowTemplateSpec", "executorPlugins", EXECUTOR_PLUGINS),
    ("WorkflowSpec", "podResources", POD_RESOURCES),
    ("WorkflowTemplateSpec", "podResources", POD_RESOURCES),
    ("ClusterWorkflowTemplateSpec", "podResources", POD_RESOURCES),
    ("WorkflowSpec", "resourceClaims", RESOURCE_CLAIMS),
    ("WorkflowTemplateSpec", "resourceClaims", RESOURCE_CLAIMS),
    ("ClusterWorkflowTemplateSpec", "resourceClaims", RESOURCE_CLAIMS),
    // Templates.
    ("Template", "podResources", POD_RESOURCES),
    ("Template", "resourceClaims", RESOURCE_CLAIMS),
    (
        "Template",
        "annotations",
        "the annotations are not recorded on the step's node",
    ),
    (
        "Template",
        "pendingTimeout",
        "a step is not failed for staying pending; 'timeout' still applies",
    ),
    // Containers.
    ("ContainerNode", "restartPolicyRules", RESTART_RULES),
    ("UserContainer", "restartPolicyRules", RESTART_RULES),
    ("ScriptTemplate", "restartPolicyRules", RESTART_RULES),
    ("io.k8s.api.core.v1.Container", "restartPolicyRules", RESTART_RULES),
    // Artifacts.
    ("Artifact", "plugin", ARTIFACT_PLUGIN),
    ("ArtifactLocation", "plugin", ARTIFACT_PLUGIN),
    ("HttpArtifact", "saveStreamViaFile", "uploads are sent as a stream"),
    (
        "S3Artifact",
        "addressingStyle",
        "the S3 client chooses path or virtual-hosted addressing itself",
    ),
];

/// The schema definitions of the Argo Events kinds in [`NOT_SUPPORTED`].
#[cfg(test)]
const EVENTS_DEFS: &[&str] = &[];

const EXECUTOR_PLUGINS: &str = "the workflow runs without its executor plugins";
const POD_RESOURCES: &str = "pod-level resource requests and limits are not applied";
const RESOURCE_CLAIMS: &str = "dynamic resource claims are not allocated";
const RESTART_RULES: &str = "container restart rules are not applied";
const ARTIFACT_PLUGIN: &str = "an artifact driver plugin cannot be used, so this location cannot be read or written";

/// What Argon does with `field` of an object made of the schema
/// definitions `names`, when the field is an upstream field Argon does not
/// support yet.
pub fn not_supported(names: &[String], field: &str) -> Option<&'static str> {
    NOT_SUPPORTED
        .iter()
        .find(|(def, f, _)| *f == field && names.iter().any(|n| n == def))
        .map(|(_, _, note)| *note)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;
    use crate::strict::{Shape, object_schema};
    use crate::workflow::{ClusterWorkflowTemplate, CronWorkflow, Workflow, WorkflowTemplate};

    const WORKFLOW_FIELDS: &str = include_str!("../tests/fixtures/argo-workflows-fields.json");
    const EVENTS_FIELDS: &str = include_str!("../tests/fixtures/argo-events-fields.json");

    /// Walks upstream's type `ty` and Argon's schema `node` side by side.
    struct Walk<'a> {
        types: &'a serde_json::Map<String, Value>,
        root: &'a Value,
        seen: BTreeSet<String>,
        missing: Vec<String>,
        warned: BTreeSet<String>,
        fields: usize,
        /// Fields checked against a structured part of Argon's schema (not
        /// under a free-form value, such as the raw spec of a kind Argon does
        /// not run yet).
        checked: usize,
    }

    impl Walk<'_> {
        fn walk(&mut self, ty: &str, node: &Value, path: &str) {
            if !self.seen.insert(ty.to_string()) {
                return;
            }
            let fields = self.types[ty]
                .as_object()
                .unwrap_or_else(|| panic!("no type {ty} in the fixture"));
            let shape = Shape::of(node, self.root);
            for (field, held) in fields {
                self.fields += 1;
                if shape.free {
                    continue;
                }
                self.checked += 1;
                let at = format!("{path}.{field}");
                match shape.field(field) {
                    Some(schema) => {
                        if let Some(held) = held.as_str() {
                            self.descend(held, schema, &at);
                        }
                    }
                    None if not_supported(&shape.names, field).is_some() => {
                        self.warned.insert(format!("{ty}.{field}"));
                    }
                    None => self
                        .missing
                        .push(format!("{ty}.{field} (at {at}; Argon's type: {:?})", shape.names)),
                }
            }
        }

        fn descend(&mut self, held: &str, schema: &Value, at: &str) {
            if let Some(inner) = held.strip_prefix("[]") {
                let shape = Shape::of(schema, self.root);
                if let Some(items) = shape.items.first() {
                    self.descend(inner, &items.clone(), &format!("{at}[]"));
                }
            } else if let Some(inner) = held.strip_prefix("{}") {
                let shape = Shape::of(schema, self.root);
                if let Some(values) = shape.additional.clone() {
                    self.descend(inner, &values, &format!("{at}{{}}"));
                }
            } else {
                self.walk(held, schema, at);
            }
        }
    }

    /// Walks a fixture of upstream's field list against Argon's schemas of
    /// the kinds; returns the fields Argon does not know, the fields that
    /// are warnings, and how many fields were walked.
    fn walk_fixture(text: &str, kinds: &[(&str, std::sync::Arc<Value>)]) -> (Vec<String>, BTreeSet<String>, usize) {
        let fixture: Value = serde_json::from_str(text).unwrap();
        let types = fixture["types"].as_object().unwrap();
        let mut missing = Vec::new();
        let mut total = 0;
        let mut warned = BTreeSet::new();
        for (kind, schema) in kinds {
            let spec_type = fixture["roots"][kind].as_str().unwrap();
            let spec = Shape::of(schema, schema)
                .field("spec")
                .cloned()
                .unwrap_or_else(|| panic!("{kind} has no spec"));
            let mut walk = Walk {
                types,
                root: schema,
                seen: BTreeSet::new(),
                missing: Vec::new(),
                warned: BTreeSet::new(),
                fields: 0,
                checked: 0,
            };
            walk.walk(spec_type, &spec, &format!("{kind}.spec"));
            eprintln!(
                "{kind}: {} upstream fields, {} checked against a structured schema",
                walk.fields, walk.checked
            );
            total += walk.checked;
            missing.extend(walk.missing);
            warned.extend(walk.warned);
        }
        (missing, warned, total)
    }

    #[test]
    fn every_upstream_workflow_field_is_known() {
        let kinds = [
            ("Workflow", object_schema::<Workflow>()),
            ("WorkflowTemplate", object_schema::<WorkflowTemplate>()),
            ("ClusterWorkflowTemplate", object_schema::<ClusterWorkflowTemplate>()),
            ("CronWorkflow", object_schema::<CronWorkflow>()),
        ];
        let (missing, warned, total) = walk_fixture(WORKFLOW_FIELDS, &kinds);
        assert!(
            missing.is_empty(),
            "{} upstream fields are unknown to Argon:\n{}",
            missing.len(),
            missing.join("\n")
        );
        assert!(total > 400, "walked only {total} fields");
        // Every entry of the table is an upstream field Argon lacks.
        for (def, field, _) in NOT_SUPPORTED.iter().filter(|(d, _, _)| !d.starts_with("io.k8s.")) {
            let events_entry = EVENTS_DEFS.contains(def);
            assert!(
                events_entry || warned.iter().any(|w| w.ends_with(&format!(".{field}"))),
                "'{def}.{field}' is in NOT_SUPPORTED but no upstream field needed it"
            );
        }
    }

    #[test]
    fn every_upstream_events_field_is_known() {
        let kinds = [
            ("EventSource", object_schema::<crate::eventsource::EventSource>()),
            ("Sensor", object_schema::<crate::sensor::Sensor>()),
        ];
        let (missing, warned, total) = walk_fixture(EVENTS_FIELDS, &kinds);
        assert!(
            missing.is_empty(),
            "{} upstream fields are unknown to Argon:\n{}",
            missing.len(),
            missing.join("\n")
        );
        assert!(total > 300, "walked only {total} fields");
        for (def, field, _) in NOT_SUPPORTED.iter().filter(|(d, _, _)| EVENTS_DEFS.contains(d)) {
            assert!(
                warned.iter().any(|w| w.ends_with(&format!(".{field}"))),
                "'{def}.{field}' is in NOT_SUPPORTED but no upstream field needed it"
            );
        }
    }

    #[test]
    fn fields_not_supported_yet_are_warnings() {
        let v = serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": "w-"},
            "spec": {
                "entrypoint": "main",
                "podResources": {"limits": {"cpu": "1"}},
                "templates": [{
                    "name": "main",
                    "annotations": {"workflows.argoproj.io/display-name": "Main"},
                    "container": {"image": "alpine", "restartPolicyRules": []},
                    "outputs": {"artifacts": [{"name": "a", "path": "/tmp/a", "plugin": {"name": "p", "key": "k"}}]}
                }]
            }
        });
        let (_, warnings) = crate::strict::decode_object_reporting::<Workflow>(&v).unwrap();
        let paths: Vec<&str> = warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.podResources",
                "spec.templates[0].annotations",
                "spec.templates[0].container.restartPolicyRules",
                "spec.templates[0].outputs.artifacts[0].plugin",
            ]
        );
        assert!(warnings.iter().all(|w| w.severity == crate::diag::Severity::Warning));
        assert_eq!(
            warnings[0].message,
            "field 'podResources' at spec.podResources is not supported by Argon yet; pod-level resource requests and limits are not applied"
        );
    }

    #[test]
    fn an_unknown_field_is_still_an_error() {
        let v = serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": "w-"},
            "spec": {"entrypoint": "main", "podResourcez": {}, "templates": []}
        });
        let e = crate::strict::decode_object_reporting::<Workflow>(&v).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].severity, crate::diag::Severity::Error);
        assert!(
            e[0].message
                .starts_with("unknown field 'podResourcez' at spec.podResourcez"),
            "{e:?}"
        );
    }
}
