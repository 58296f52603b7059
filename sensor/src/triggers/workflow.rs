//! `argoWorkflow` triggers, and `k8s` triggers whose resource is an
//! `argoproj.io` Workflow: submit (or act on) a workflow through the engine's
//! client API, in process or against `argon server`.
//!
//! A submission carries the firing's idempotency key: the engine turns a
//! second submission with the same key into a no-op that returns the
//! existing workflow, so a redelivered event never creates a second one.
//! It also carries its [`Lineage`]: the sensor, trigger and events that
//! created it.

use std::collections::BTreeMap;

use argon_crds::sensor::ArgoWorkflowOperation;
use serde_json::Value;

use super::{ANNOTATION_EVENTS, LABEL_EVENT, LABEL_REPLAY_OF, LABEL_SENSOR, LABEL_TRIGGER, Request};
use crate::params::Events;
use crate::{Error, Result};

/// Whether a resource is an Argo Workflow (`argoproj.io/*`, kind `Workflow`).
pub fn is_workflow(resource: &Value) -> bool {
    resource.get("kind").and_then(Value::as_str) == Some("Workflow")
        && resource
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("argoproj.io/"))
}

/// The manifest spelling of an operation.
pub fn operation_name(op: ArgoWorkflowOperation) -> &'static str {
    match op {
        ArgoWorkflowOperation::Submit => "submit",
        ArgoWorkflowOperation::SubmitFrom => "submit-from",
        ArgoWorkflowOperation::Resubmit => "resubmit",
        ArgoWorkflowOperation::Resume => "resume",
        ArgoWorkflowOperation::Retry => "retry",
        ArgoWorkflowOperation::Suspend => "suspend",
        ArgoWorkflowOperation::Terminate => "terminate",
        ArgoWorkflowOperation::Stop => "stop",
    }
}

/// The engine action of an operation other than submit.
pub fn action(op: &str) -> Option<argon_client::WorkflowAction> {
    use argon_client::WorkflowAction as A;
    Some(match op {
        "resubmit" => A::Resubmit,
        "resume" => A::Resume,
        "retry" => A::Retry,
        "suspend" => A::Suspend,
        "terminate" => A::Terminate,
        "stop" => A::Stop,
        _ => return None,
    })
}

/// The request of one firing: the workflow with the sensor and trigger
/// labels; with `strict`, the workflow is decoded strictly (dry run).
pub fn prepare(
    trigger: &str,
    sensor: &str,
    default_namespace: &str,
    operation: ArgoWorkflowOperation,
    mut resource: Value,
    strict: bool,
) -> Result<Request> {
    if operation == ArgoWorkflowOperation::SubmitFrom {
        return Err(Error::permanent(
            trigger,
            "operation submit-from is not supported yet; submit a Workflow with a workflowTemplateRef instead",
        ));
    }
    let namespace = resource
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(default_namespace)
        .to_owned();
    let op = operation_name(operation).to_owned();
    if operation != ArgoWorkflowOperation::Submit {
        let name = resource
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::permanent(
                    trigger,
                    format!("operation {op} needs the workflow's metadata.name (set it with a parameter)"),
                )
            })?;
        return Ok(Request::Workflow {
            operation: op,
            namespace,
            name: Some(name.to_owned()),
            workflow: None,
        });
    }
    if !is_workflow(&resource) {
        return Err(Error::permanent(
            trigger,
            "the source of an argoWorkflow trigger must be an argoproj.io/v1alpha1 Workflow",
        ));
    }
    let labels = resource
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| Value::Object(Default::default())))
        .and_then(Value::as_object_mut)
        .map(|m| m.entry("labels").or_insert_with(|| Value::Object(Default::default())));
    if let Some(Value::Object(labels)) = labels {
        labels.insert(LABEL_SENSOR.to_owned(), Value::String(sensor.to_owned()));
        labels.insert(LABEL_TRIGGER.to_owned(), Value::String(trigger.to_owned()));
    }
    // The source was checked strictly at startup; a dry run also checks what
    // the parameters made of it (unknown fields included). A firing relies on
    // the typed decode in `execute` and on the engine's validation.
    if strict {
        decode(trigger, &resource)?;
    }
    Ok(Request::Workflow {
        operation: op,
        namespace,
        name: None,
        workflow: Some(resource),
    })
}

/// The typed workflow of a resource, decoded strictly.
pub fn decode(trigger: &str, resource: &Value) -> Result<argon_crds::workflow::Workflow> {
    use argon_crds::manifest::{Decoded, Manifest, decode};
    match decode(resource) {
        Ok(Decoded::Manifest(Manifest::Workflow(wf))) => Ok(*wf),
        Ok(_) => Err(Error::permanent(trigger, "the trigger's resource is not a Workflow")),
        Err(findings) => Err(Error::permanent(
            trigger,
            format!(
                "invalid workflow: {}",
                findings
                    .iter()
                    .map(|f| format!("{}: {}", f.path, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
    }
}

/// Where a workflow came from: the labels and annotations a sensor puts on
/// the workflows it creates, so that a workflow names its events and the
/// events' workflows can be found by label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    /// `events.argoproj.io/sensor`, `events.argoproj.io/trigger`,
    /// `events.argon.dev/event` and, for a replay, `events.argon.dev/replay-of`.
    pub labels: BTreeMap<String, String>,
    /// `events.argon.dev/events`: `{"DEPENDENCY": "EVENT ID", ...}`.
    pub annotations: BTreeMap<String, String>,
}

impl Lineage {
    /// The lineage of a firing of `trigger` of `sensor` by `events`.
    pub fn of(sensor: &str, trigger: &str, events: &Events) -> Lineage {
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_SENSOR.to_owned(), sensor.to_owned());
        labels.insert(LABEL_TRIGGER.to_owned(), trigger.to_owned());
        // The newest event is the one whose arrival completed the condition.
        if let Some(newest) = events.values().max_by_key(|e| e.context.time) {
            if let Some(id) = label_value(&newest.context.id) {
                labels.insert(LABEL_EVENT.to_owned(), id.to_owned());
            }
            if let Some(original) = newest.context.argonreplayof.as_deref().and_then(label_value) {
                labels.insert(LABEL_REPLAY_OF.to_owned(), original.to_owned());
            }
        }
        let ids: serde_json::Map<String, Value> = events
            .iter()
            .map(|(dep, e)| (dep.clone(), Value::String(e.context.id.clone())))
            .collect();
        let mut annotations = BTreeMap::new();
        annotations.insert(ANNOTATION_EVENTS.to_owned(), Value::Object(ids).to_string());
        Lineage { labels, annotations }
    }
}

/// `text` when it is a valid Kubernetes label value (63 characters at most,
/// letters, digits, `-`, `_` and `.`, beginning and ending alphanumeric).
fn label_value(text: &str) -> Option<&str> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric());
    ok.then_some(text)
}

/// Submits the workflow (idempotently) or applies the action; returns
/// `namespace/name` of the workflow. A submitted workflow carries its
/// `lineage`.
pub async fn execute(
    trigger: &str,
    client: &dyn argon_client::WorkflowClient,
    request: &Request,
    key: &str,
    lineage: &Lineage,
) -> Result<String> {
    let Request::Workflow {
        operation,
        namespace,
        name,
        workflow,
    } = request
    else {
        return Err(Error::permanent(trigger, "not a workflow request"));
    };
    if let Some(resource) = workflow {
        let mut wf: argon_crds::workflow::Workflow = serde_json::from_value(resource.clone())
            .map_err(|e| Error::permanent(trigger, format!("invalid workflow: {e}")))?;
        let annotations = wf.metadata.annotations.get_or_insert_with(Default::default);
        for (k, v) in &lineage.annotations {
            annotations.insert(k.clone(), v.clone());
        }
        let options = argon_client::SubmitOptions {
            idempotency_key: Some(key.to_owned()),
            labels: lineage.labels.clone(),
            ..Default::default()
        };
        let submitted = client
            .submit(namespace, wf, options)
            .await
            .map_err(|e| engine_error(trigger, e))?;
        return Ok(format!("{}/{}", submitted.namespace, submitted.name));
    }
    let name = name.as_deref().unwrap_or_default();
    let action =
        action(operation).ok_or_else(|| Error::permanent(trigger, format!("unsupported operation {operation}")))?;
    client
        .act(namespace, name, action)
        .await
        .map_err(|e| engine_error(trigger, e))?;
    Ok(format!("{namespace}/{name}"))
}

fn engine_error(trigger: &str, e: argon_client::Error) -> Error {
    match e {
        argon_client::Error::Unavailable(m) => Error::transient(trigger, format!("workflow engine unavailable: {m}")),
        other => Error::permanent(trigger, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use argon_eventbus::Event;
    use serde_json::json;

    use super::*;
    use crate::SensorEvent;

    #[test]
    fn lineage_names_the_events_and_the_replayed_original() {
        let original = Event::new("hooks", "push", "webhook", &json!({}));
        let replay = original.replay(None);
        let mut events = Events::new();
        events.insert("push".into(), SensorEvent::from_event(&replay));
        let lineage = Lineage::of("ci", "build", &events);
        assert_eq!(lineage.labels[LABEL_SENSOR], "ci");
        assert_eq!(lineage.labels[LABEL_TRIGGER], "build");
        assert_eq!(lineage.labels[LABEL_EVENT], replay.context.id);
        assert_eq!(lineage.labels[LABEL_REPLAY_OF], original.context.id);
        let ids: Value = serde_json::from_str(&lineage.annotations[ANNOTATION_EVENTS]).unwrap();
        assert_eq!(ids, json!({"push": replay.context.id}));

        // An id that cannot be a label value is only in the annotation.
        let odd = Event::new("hooks", "push", "webhook", &json!({})).with_id("a/b:c");
        let mut events = Events::new();
        events.insert("push".into(), SensorEvent::from_event(&odd));
        let lineage = Lineage::of("ci", "build", &events);
        assert!(!lineage.labels.contains_key(LABEL_EVENT));
        assert!(lineage.annotations[ANNOTATION_EVENTS].contains("a/b:c"));
    }
}
