//! `argon lint`: every manifest under some paths decoded and validated on its
//! own, then the checks that need the whole set (colliding webhook
//! endpoints, sensor dependencies on event sources that are not there).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::diag::{Diagnostic, Severity};
use crate::eventsource::EventSourceKind;
use crate::manifest::{LoadReport, Loaded, Manifest, load_paths};
use crate::workflow::TemplateRef;

/// Loads, validates and cross-checks every manifest under `paths`.
/// Diagnostics come sorted by file, line and column.
pub fn lint_paths(paths: &[PathBuf]) -> LoadReport {
    let mut report = load_paths(paths);
    let checks = check(&report.manifests);
    report.diagnostics.extend(checks);
    report
        .diagnostics
        .sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    report
}

/// Validates every manifest of a set, each on its own (with `templateRef`s
/// resolved against the set) and then as a set.
pub fn check(manifests: &[Loaded]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let templates = TemplateIndex::new(manifests);
    let resolver = |r: &TemplateRef| templates.resolves(r);
    for l in manifests {
        for f in l.manifest.validate(&resolver) {
            out.push(l.doc.diagnostic(&f.path, f.severity, f.message));
        }
    }
    webhook_collisions(manifests, &mut out);
    missing_event_sources(manifests, &mut out);
    out
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

/// Two HTTP events on the same port and endpoint cannot both receive.
fn webhook_collisions(manifests: &[Loaded], out: &mut Vec<Diagnostic>) {
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
                out.push(l.doc.diagnostic(
                    &format!("{context_path}.endpoint"),
                    Severity::Error,
                    format!(
                        "port {} endpoint {} is already used by {first}; webhooks that run together need distinct ports or endpoints",
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
