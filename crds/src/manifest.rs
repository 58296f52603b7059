//! One typed manifest of any kind Argon knows, decoded strictly from a
//! document, and the loading of files and folders of them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::diag::{Diagnostic, Finding, Severity, suggest};
use crate::eventbus::EventBus;
use crate::eventsource::EventSource;
use crate::sensor::Sensor;
use crate::source::{self, Document};
use crate::strict;
use crate::workflow::validate::{self, Resolver};
use crate::workflow::{ClusterWorkflowTemplate, CronWorkflow, Workflow, WorkflowTemplate};

/// The API group and version of every manifest Argon reads.
pub const API_VERSION: &str = "argoproj.io/v1alpha1";

/// The kinds Argon decodes.
pub const KINDS: [&str; 7] = [
    "EventSource",
    "Sensor",
    "EventBus",
    "Workflow",
    "WorkflowTemplate",
    "ClusterWorkflowTemplate",
    "CronWorkflow",
];

/// `argoproj.io` kinds that Argon recognises but does not run.
const KNOWN_UNSUPPORTED: [&str; 4] = [
    "WorkflowEventBinding",
    "WorkflowTaskSet",
    "WorkflowTaskResult",
    "WorkflowArtifactGCTask",
];

/// A manifest of one of the kinds Argon runs.
#[derive(Clone, Debug)]
pub enum Manifest {
    EventSource(Box<EventSource>),
    Sensor(Box<Sensor>),
    EventBus(Box<EventBus>),
    Workflow(Box<Workflow>),
    WorkflowTemplate(Box<WorkflowTemplate>),
    ClusterWorkflowTemplate(Box<ClusterWorkflowTemplate>),
    CronWorkflow(Box<CronWorkflow>),
}

impl Manifest {
    /// The manifest's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Manifest::EventSource(_) => "EventSource",
            Manifest::Sensor(_) => "Sensor",
            Manifest::EventBus(_) => "EventBus",
            Manifest::Workflow(_) => "Workflow",
            Manifest::WorkflowTemplate(_) => "WorkflowTemplate",
            Manifest::ClusterWorkflowTemplate(_) => "ClusterWorkflowTemplate",
            Manifest::CronWorkflow(_) => "CronWorkflow",
        }
    }

    /// `metadata.name` (or `metadata.generateName` for a Workflow that only
    /// has that), empty when neither is set.
    pub fn name(&self) -> String {
        let meta = self.metadata();
        meta.name
            .clone()
            .or_else(|| meta.generate_name.clone())
            .unwrap_or_default()
    }

    /// Findings about this manifest. `resolver` answers whether a
    /// `templateRef` target exists (see [`crate::workflow::validate::Resolver`]).
    pub fn validate(&self, resolver: &Resolver<'_>) -> Vec<Finding> {
        let mut findings = crate::names::check_metadata(self.metadata());
        findings.extend(match self {
            Manifest::EventSource(m) => crate::eventsource::validate(m),
            Manifest::Sensor(m) => crate::sensor::validate(m),
            Manifest::EventBus(_) => Vec::new(),
            Manifest::Workflow(m) => validate::validate_workflow(m, resolver),
            Manifest::WorkflowTemplate(m) => validate::validate_workflow_template(m, resolver),
            Manifest::ClusterWorkflowTemplate(m) => validate::validate_cluster_workflow_template(m, resolver),
            Manifest::CronWorkflow(m) => validate::validate_cron_workflow(m, resolver),
        });
        findings
    }

    /// The object metadata of this manifest.
    pub fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Manifest::EventSource(m) => &m.metadata,
            Manifest::Sensor(m) => &m.metadata,
            Manifest::EventBus(m) => &m.metadata,
            Manifest::Workflow(m) => &m.metadata,
            Manifest::WorkflowTemplate(m) => &m.metadata,
            Manifest::ClusterWorkflowTemplate(m) => &m.metadata,
            Manifest::CronWorkflow(m) => &m.metadata,
        }
    }
}

/// What decoding one document gave.
#[derive(Debug)]
pub enum Decoded {
    /// A manifest Argon runs.
    Manifest(Manifest),
    /// A document Argon leaves alone, with the warning that says so.
    Skipped(Finding),
}

/// Decodes one document: checks `apiVersion` and `kind`, then decodes the
/// kind strictly. Errors come as findings with field paths.
pub fn decode(value: &Value) -> Result<Decoded, Vec<Finding>> {
    decode_reporting(value).map(|(d, _)| d)
}

/// [`decode`], with the warnings of a document that decoded: the upstream
/// fields it sets that Argon does not support yet.
pub fn decode_reporting(value: &Value) -> Result<(Decoded, Vec<Finding>), Vec<Finding>> {
    let mut warnings = Vec::new();
    let decoded = decode_kind(value, &mut warnings)?;
    Ok((decoded, warnings))
}

fn decode_kind(value: &Value, warnings: &mut Vec<Finding>) -> Result<Decoded, Vec<Finding>> {
    fn strict<T: schemars::JsonSchema + serde::de::DeserializeOwned + 'static>(
        value: &Value,
        warnings: &mut Vec<Finding>,
    ) -> Result<Box<T>, Vec<Finding>> {
        let (t, w) = strict::decode_object_reporting(value)?;
        warnings.extend(w);
        Ok(Box::new(t))
    }
    let Some(obj) = value.as_object() else {
        return Err(vec![Finding::error(
            "",
            "a manifest must be a mapping with apiVersion, kind, metadata and spec",
        )]);
    };
    let kind = match obj.get("kind") {
        Some(Value::String(k)) if !k.is_empty() => k.as_str(),
        Some(_) => return Err(vec![Finding::error("kind", "'kind' must be a non-empty string")]),
        None => {
            return Err(vec![Finding::error(
                "",
                format!("document has no 'kind'; expected one of: {}", KINDS.join(", ")),
            )]);
        }
    };
    let api_version = match obj.get("apiVersion") {
        Some(Value::String(v)) => v.as_str(),
        Some(_) => return Err(vec![Finding::error("apiVersion", "'apiVersion' must be a string")]),
        None => {
            return Err(vec![Finding::error(
                "",
                format!("document of kind '{kind}' has no 'apiVersion'"),
            )]);
        }
    };
    if kind == "ConfigMap" && api_version == "v1" {
        return Ok(Decoded::Skipped(Finding::warning(
            "kind",
            "ConfigMap (v1): Argon skips it as a manifest; argon run and argon server read the artifact \
             repositories of the ConfigMaps named artifact-repositories (or what spec.artifactRepositoryRef \
             names) and workflow-controller-configmap",
        )));
    }
    if !api_version.starts_with("argoproj.io/") {
        return Ok(Decoded::Skipped(Finding::warning(
            "kind",
            format!("{kind} ({api_version}) is not an argoproj.io manifest; Argon skips it"),
        )));
    }
    if api_version != API_VERSION {
        return Err(vec![Finding::error(
            "apiVersion",
            format!("apiVersion '{api_version}' is not supported; Argon reads {API_VERSION}"),
        )]);
    }
    let manifest = match kind {
        "EventSource" => Manifest::EventSource(strict(value, warnings)?),
        "Sensor" => Manifest::Sensor(strict(value, warnings)?),
        "EventBus" => Manifest::EventBus(strict(value, warnings)?),
        "Workflow" => Manifest::Workflow(strict(value, warnings)?),
        "WorkflowTemplate" => Manifest::WorkflowTemplate(strict(value, warnings)?),
        "ClusterWorkflowTemplate" => Manifest::ClusterWorkflowTemplate(strict(value, warnings)?),
        "CronWorkflow" => Manifest::CronWorkflow(strict(value, warnings)?),
        other if KNOWN_UNSUPPORTED.contains(&other) => {
            return Ok(Decoded::Skipped(Finding::warning(
                "kind",
                format!("kind '{other}' is not supported by Argon yet; the document is skipped"),
            )));
        }
        other => {
            let mut message = format!("unknown kind '{other}' in {API_VERSION}");
            if let Some(s) = suggest(other, KINDS) {
                message.push_str(&format!("; did you mean '{s}'?"));
            } else {
                message.push_str(&format!("; expected one of: {}", KINDS.join(", ")));
            }
            return Err(vec![Finding::error("kind", message)]);
        }
    };
    Ok(Decoded::Manifest(manifest))
}

/// A manifest with the document it came from (for positions).
#[derive(Clone, Debug)]
pub struct Loaded {
    pub doc: Document,
    pub manifest: Manifest,
}

/// Everything read from a set of paths: the manifests that decoded, and the
/// diagnostics of everything that did not (and warnings).
#[derive(Debug, Default)]
pub struct LoadReport {
    pub manifests: Vec<Loaded>,
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadReport {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// The EventSources among the loaded manifests, in load order.
    pub fn event_sources(self) -> Vec<EventSource> {
        self.manifests
            .into_iter()
            .filter_map(|l| match l.manifest {
                Manifest::EventSource(es) => Some(*es),
                _ => None,
            })
            .collect()
    }

    /// The Sensors among the loaded manifests, in load order.
    pub fn sensors(self) -> Vec<Sensor> {
        self.manifests
            .into_iter()
            .filter_map(|l| match l.manifest {
                Manifest::Sensor(s) => Some(*s),
                _ => None,
            })
            .collect()
    }
}

/// The manifest files under `paths`: a file is taken as given; a folder is
/// searched recursively for `.yaml`, `.yml` and `.json` files (hidden
/// entries skipped), in name order.
pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut out = Vec::new();
    for p in paths {
        collect_files(p, true, &mut out).map_err(|e| Diagnostic {
            file: p.display().to_string(),
            line: 1,
            col: 1,
            severity: Severity::Error,
            message: format!("cannot read: {e}"),
        })?;
    }
    Ok(out)
}

fn collect_files(p: &Path, explicit: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(p)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for e in entries {
            let hidden = e
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if !hidden {
                collect_files(&e, false, out)?;
            }
        }
    } else if explicit || matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
        out.push(p.to_path_buf());
    }
    Ok(())
}

/// Reads and decodes every manifest under `paths`. Validation is
/// [`crate::lint::lint_paths`]'s job, since it needs the whole set.
pub fn load_paths(paths: &[PathBuf]) -> LoadReport {
    let mut report = LoadReport::default();
    let files = match manifest_files(paths) {
        Ok(f) => f,
        Err(d) => {
            report.diagnostics.push(d);
            return report;
        }
    };
    for file in files {
        let name = file.display().to_string();
        match std::fs::read(&file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => load_text(&name, &text, &mut report),
                Err(_) => report.diagnostics.push(Diagnostic {
                    file: name,
                    line: 1,
                    col: 1,
                    severity: Severity::Error,
                    message: "file is not UTF-8 text".to_string(),
                }),
            },
            Err(e) => report.diagnostics.push(Diagnostic {
                file: name,
                line: 1,
                col: 1,
                severity: Severity::Error,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    report
}

/// Decodes the documents of one file's text into `report`.
pub fn load_text(file: &str, text: &str, report: &mut LoadReport) {
    let docs = match source::parse(file, text) {
        Ok(d) => d,
        Err(d) => {
            report.diagnostics.push(d);
            return;
        }
    };
    for doc in docs {
        match decode_reporting(&doc.value) {
            Ok((Decoded::Manifest(manifest), warnings)) => {
                for f in warnings {
                    report.diagnostics.push(doc.diagnostic(&f.path, f.severity, f.message));
                }
                report.manifests.push(Loaded { doc, manifest });
            }
            Ok((Decoded::Skipped(f), _)) => report.diagnostics.push(doc.diagnostic(&f.path, f.severity, f.message)),
            Err(findings) => {
                for f in findings {
                    report.diagnostics.push(doc.diagnostic(&f.path, f.severity, f.message));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Manifest, load_paths};

    /// Serializes a manifest the way the API answers it.
    fn to_json(manifest: &Manifest) -> serde_json::Value {
        match manifest {
            Manifest::EventSource(m) => serde_json::to_value(m),
            Manifest::Sensor(m) => serde_json::to_value(m),
            Manifest::EventBus(m) => serde_json::to_value(m),
            Manifest::Workflow(m) => serde_json::to_value(m),
            Manifest::WorkflowTemplate(m) => serde_json::to_value(m),
            Manifest::ClusterWorkflowTemplate(m) => serde_json::to_value(m),
            Manifest::CronWorkflow(m) => serde_json::to_value(m),
        }
        .expect("a manifest serializes")
    }

    fn nulls(value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Null => out.push(path.to_owned()),
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    nulls(v, &format!("{path}[{i}]"), out);
                }
            }
            serde_json::Value::Object(fields) => {
                for (k, v) in fields {
                    nulls(v, &format!("{path}.{k}"), out);
                }
            }
            _ => {}
        }
    }

    /// Unset optional fields are left out (as Argo writes them), not written
    /// as `null`, and what is written reads back as the same manifest.
    #[test]
    fn examples_serialize_without_nulls_and_read_back() {
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"));
        let report = load_paths(&[root]);
        assert!(
            report.manifests.len() > 20,
            "examples hold {} manifests",
            report.manifests.len()
        );
        for loaded in &report.manifests {
            let json = to_json(&loaded.manifest);
            let mut found = Vec::new();
            nulls(&json, "", &mut found);
            assert!(
                found.is_empty(),
                "{} {}: null at {found:?}",
                loaded.manifest.kind(),
                loaded.manifest.name()
            );
            let again = super::decode(&json).unwrap_or_else(|e| panic!("{} reads back: {e:?}", loaded.manifest.name()));
            let super::Decoded::Manifest(again) = again else {
                panic!("{} reads back as a manifest", loaded.manifest.name())
            };
            assert_eq!(to_json(&again), json, "{} round-trips", loaded.manifest.name());
        }
    }
}
