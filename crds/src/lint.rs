//! `argon lint`: every manifest under some paths decoded and validated on its
//! own, then the checks that need the whole set (colliding webhook
//! endpoints, sensor dependencies on event sources that are not there).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::diag::{Diagnostic, Severity};
use crate::eventsource::EventSourceKind;
use crate::manifest::{API_VERSION, Decoded, LoadReport, Loaded, Manifest, decode_reporting, load_paths};
use crate::sensor::TriggerKind;
use crate::workflow::TemplateRef;
use crate::workflow::validate::Resolver;

/// How the manifests of a set will run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// Each on its own (a pod apiece on Kubernetes): what `argon lint` assumes.
    /// Clashes between manifests, such as two webhooks on one port and
    /// endpoint, are warnings.
    Separate,
    /// Together in one process (`argon run`): such clashes are errors.
    Together,
}

/// Loads, validates and cross-checks every manifest under `paths`, as
/// manifests deployed separately. Diagnostics come sorted by file, line and
/// column.
pub fn lint_paths(paths: &[PathBuf]) -> LoadReport {
    lint_paths_for(paths, Deployment::Separate)
}

/// [`lint_paths`] for manifests deployed as `deployment` says.
pub fn lint_paths_for(paths: &[PathBuf], deployment: Deployment) -> LoadReport {
    let mut report = load_paths(paths);
    let checks = check_for(&report.manifests, deployment);
    report.diagnostics.extend(checks);
    report
        .diagnostics
        .sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    report
}

/// Validates every manifest of a set, each on its own (with `templateRef`s
/// resolved against the set) and then as a set deployed separately.
pub fn check(manifests: &[Loaded]) -> Vec<Diagnostic> {
    check_for(manifests, Deployment::Separate)
}

/// [`check`] for manifests deployed as `deployment` says.
pub fn check_for(manifests: &[Loaded], deployment: Deployment) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let templates = TemplateIndex::new(manifests);
    let resolver = |r: &TemplateRef| templates.resolves(r);
    for l in manifests {
        for f in l.manifest.validate(&resolver) {
            out.push(l.doc.diagnostic(&f.path, f.severity, f.message));
        }
    }
    webhook_collisions(manifests, deployment, &mut out);
    missing_event_sources(manifests, &mut out);
    inline_workflows(manifests, &resolver, &mut out);
    out
}

/// The Workflows that sensor triggers submit, written inline: a typo in
/// them is as much an error as in the sensor itself. Their semantic findings
/// are warnings, because trigger parameters fill fields in at run time.
fn inline_workflows(manifests: &[Loaded], resolver: &Resolver<'_>, out: &mut Vec<Diagnostic>) {
    for l in manifests {
        let Manifest::Sensor(sensor) = &l.manifest else {
            continue;
        };
        for (i, trigger) in sensor.spec.triggers.iter().enumerate() {
            let (key, source) = match trigger.template.kind() {
                Some(TriggerKind::ArgoWorkflow(t)) => ("argoWorkflow", &t.source),
                Some(TriggerKind::K8s(t)) => ("k8s", &t.source),
                _ => continue,
            };
            let Some(resource) = source.as_ref().and_then(|s| s.resource.as_ref()) else {
                continue;
            };
            let is_workflow = resource.get("apiVersion").and_then(|v| v.as_str()) == Some(API_VERSION)
                && resource.get("kind").and_then(|v| v.as_str()) == Some("Workflow");
            if !is_workflow {
                continue;
            }
            let at = format!("spec.triggers[{i}].template.{key}.source.resource");
            let place = |path: &str| {
                if path.is_empty() {
                    at.clone()
                } else {
                    format!("{at}.{path}")
                }
            };
            match decode_reporting(resource) {
                Ok((Decoded::Manifest(workflow), warnings)) => {
                    for f in warnings {
                        let path = place(&f.path);
                        let message = f.message.replace(&format!(" at {}", f.path), &format!(" at {path}"));
                        out.push(l.doc.diagnostic(&path, f.severity, message));
                    }
                    for f in workflow.validate(resolver) {
                        let path = place(&f.path);
                        let message = format!("in the workflow this trigger submits: {}", f.message);
                        out.push(l.doc.diagnostic(&path, Severity::Warning, message));
                    }
                }
                Ok((Decoded::Skipped(_), _)) => {}
                Err(findings) => {
                    for f in findings {
                        let path = place(&f.path);
                        let message = f.message.replace(&format!(" at {}", f.path), &format!(" at {path}"));
                        out.push(l.doc.diagnostic(&path, f.severity, message));
                    }
                }
            }
        }
    }
}

/// The WorkflowTemplates and ClusterWorkflowTemplates of a set, by name,
/// with the names of their templates.
struct TemplateIndex {
    namespaced: BTreeMap<String, BTreeSet<String>>,
    cluster: BTreeMap<String, BTreeSet<String>>,
}

impl TemplateIndex {
    fn new(manifests: &[Loaded]) -> Self {
        let mut index = TemplateIndex {
            namespaced: BTreeMap::new(),
            cluster: BTreeMap::new(),
        };
        for l in manifests {
            let (map, meta, spec) = match &l.manifest {
                Manifest::WorkflowTemplate(t) => (&mut index.namespaced, &t.metadata, &*t.spec),
                Manifest::ClusterWorkflowTemplate(t) => (&mut index.cluster, &t.metadata, &*t.spec),
                _ => continue,
            };
            let names = spec.templates.iter().map(|t| t.name.clone()).collect();
            map.insert(meta.name.clone().unwrap_or_default(), names);
        }
        index
    }

    fn resolves(&self, r: &TemplateRef) -> bool {
        let map = if r.cluster_scope {
            &self.cluster
        } else {
            &self.namespaced
        };
        map.get(&r.name)
            .is_some_and(|names| r.template.is_empty() || names.contains(&r.template))
    }
}

/// Two HTTP events on the same port and endpoint cannot both receive when
/// they run in one process; deployed separately, each has its own port.
fn webhook_collisions(manifests: &[Loaded], deployment: Deployment, out: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for l in manifests {
        let Manifest::EventSource(es) = &l.manifest else {
            continue;
        };
        let source = es.metadata.name.clone().unwrap_or_default();
        for event in es.spec.events() {
            let Some(context) = event.config.webhook_context() else {
                continue;
            };
            let key = (context.port.clone(), context.endpoint.clone());
            let me = format!("{source}/{} ({})", event.name, event.kind);
            if let Some(first) = seen.get(&key) {
                // The `webhook` kind is its own HTTP context; the git-hook
                // kinds carry theirs under `webhook`.
                let context_path = match event.kind {
                    EventSourceKind::Webhook => format!("spec.webhook.{}", event.name),
                    _ => format!("spec.{}.{}.webhook", event.kind, event.name),
                };
                let (severity, consequence) = match deployment {
                    Deployment::Together => (
                        Severity::Error,
                        "webhooks that run together need distinct ports or endpoints",
                    ),
                    Deployment::Separate => (
                        Severity::Warning,
                        "fine where each event source runs on its own, an error where they run together (argon run)",
                    ),
                };
                out.push(l.doc.diagnostic(
                    &format!("{context_path}.endpoint"),
                    severity,
                    format!(
                        "port {} endpoint {} is already used by {first}; {consequence}",
                        key.0, key.1
                    ),
                ));
            } else {
                seen.insert(key, me);
            }
        }
    }
}

/// A sensor dependency on an event source or event the set does not have.
fn missing_event_sources(manifests: &[Loaded], out: &mut Vec<Diagnostic>) {
    let mut known: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in manifests {
        let Manifest::EventSource(es) = &l.manifest else {
            continue;
        };
        let events = known.entry(es.metadata.name.clone().unwrap_or_default()).or_default();
        events.extend(es.spec.events().iter().map(|e| e.name.to_string()));
    }
    for l in manifests {
        let Manifest::Sensor(sensor) = &l.manifest else {
            continue;
        };
        for (i, dep) in sensor.spec.dependencies.iter().enumerate() {
            let path = format!("spec.dependencies[{i}]");
            match known.get(&dep.event_source_name) {
                None => out.push(l.doc.diagnostic(
                    &format!("{path}.eventSourceName"),
                    Severity::Warning,
                    format!(
                        "dependency '{}' names event source '{}', which is not among the manifests checked",
                        dep.name, dep.event_source_name
                    ),
                )),
                Some(events) if !events.contains(&dep.event_name) => {
                    let mut message = format!(
                        "dependency '{}' names event '{}', which event source '{}' does not define",
                        dep.name, dep.event_name, dep.event_source_name
                    );
                    if let Some(s) = crate::diag::suggest(&dep.event_name, events.iter().map(String::as_str)) {
                        message.push_str(&format!("; did you mean '{s}'?"));
                    }
                    out.push(
                        l.doc
                            .diagnostic(&format!("{path}.eventName"), Severity::Warning, message),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load_text;

    fn lint_text(text: &str) -> Vec<String> {
        lint_text_for(text, Deployment::Separate)
    }

    fn lint_text_for(text: &str, deployment: Deployment) -> Vec<String> {
        let mut report = LoadReport::default();
        load_text("set.yaml", text, &mut report);
        assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
        check_for(&report.manifests, deployment)
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    const EVENT_SOURCE: &str = "apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: hooks
spec:
  webhook:
    push:
      port: \"12000\"
      endpoint: /push
      method: POST
";

    #[test]
    fn dependency_on_a_missing_event_source_or_event_is_a_warning() {
        let text = format!(
            "{EVENT_SOURCE}---
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: s
spec:
  dependencies:
    - name: a
      eventSourceName: hooks
      eventName: pushh
    - name: b
      eventSourceName: elsewhere
      eventName: x
  triggers:
    - template:
        name: t
        log: {{}}
"
        );
        let found = lint_text(&text);
        assert_eq!(
            found,
            vec![
                "set.yaml:20:7: warning: dependency 'a' names event 'pushh', which event source 'hooks' does not define; did you mean 'push'?",
                "set.yaml:22:7: warning: dependency 'b' names event source 'elsewhere', which is not among the manifests checked",
            ]
        );
    }

    #[test]
    fn two_webhooks_on_one_port_and_endpoint_collide_where_they_run_together() {
        let second = EVENT_SOURCE.replace("name: hooks", "name: other");
        let found = lint_text_for(&format!("{EVENT_SOURCE}---\n{second}"), Deployment::Together);
        assert_eq!(
            found,
            vec![
                "set.yaml:20:7: error: port 12000 endpoint /push is already used by hooks/push (webhook); webhooks that run together need distinct ports or endpoints"
            ]
        );
        let found = lint_text(&format!("{EVENT_SOURCE}---\n{second}"));
        assert_eq!(
            found,
            vec![
                "set.yaml:20:7: warning: port 12000 endpoint /push is already used by hooks/push (webhook); fine where each event source runs on its own, an error where they run together (argon run)"
            ]
        );
    }

    #[test]
    fn a_typo_in_an_inline_workflow_is_an_error() {
        let text = "apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: s
spec:
  dependencies:
    - name: a
      eventSourceName: hooks
      eventName: push
  triggers:
    - template:
        name: t
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata:
                generateName: x-
              spec:
                entrypoint: main
                templates:
                  - name: main
                    container:
                      image: alpine
                      comand: [echo]
";
        let found = lint_text(text);
        let errors: Vec<&String> = found.iter().filter(|d| d.contains(": error: ")).collect();
        assert_eq!(
            errors,
            vec![
                "set.yaml:27:23: error: unknown field 'comand' at spec.triggers[0].template.argoWorkflow.source.resource.spec.templates[0].container.comand; did you mean 'command'?"
            ]
        );
    }

    #[test]
    fn template_refs_resolve_against_the_set() {
        let text = "apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: lib
spec:
  templates:
    - name: say
      container:
        image: alpine
        command: [echo]
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: w-
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: ok
            templateRef: {name: lib, template: say}
        - - name: missing
            templateRef: {name: lib, template: shout}
";
        let found = lint_text(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("set.yaml:24:"), "{found:?}");
        assert!(found[0].contains("warning:") && found[0].contains("shout"), "{found:?}");
    }

    #[test]
    fn names_kubernetes_would_refuse_are_errors_at_their_line() {
        let text = "apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: ../../tmp/x
  labels:
    app: -bad
spec:
  templates:
    - name: main
      container: {image: alpine}
";
        let found = lint_text(text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("set.yaml:4:3: error: name '../../tmp/x' may hold only"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("set.yaml:6:5: error: label value '-bad'"),
            "{found:?}"
        );
    }
}
