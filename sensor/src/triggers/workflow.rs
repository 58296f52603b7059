//! `argoWorkflow` triggers, and `k8s` triggers whose resource is an
//! `argoproj.io` Workflow: submit (or act on) a workflow through the engine's
//! client API, in process or against `argon server`.
//!
//! A submission carries the firing's idempotency key: the engine turns a
//! second submission with the same key into a no-op that returns the
//! existing workflow, so a redelivered event never creates a second one.

use argon_crds::sensor::ArgoWorkflowOperation;
use serde_json::Value;

use super::{LABEL_SENSOR, LABEL_TRIGGER, Request};
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

/// Submits the workflow (idempotently) or applies the action; returns
/// `namespace/name` of the workflow.
pub async fn execute(
    trigger: &str,
    client: &dyn argon_client::WorkflowClient,
    request: &Request,
    key: &str,
    labels: &[(&str, &str)],
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
        let wf: argon_crds::workflow::Workflow = serde_json::from_value(resource.clone())
            .map_err(|e| Error::permanent(trigger, format!("invalid workflow: {e}")))?;
        let options = argon_client::SubmitOptions {
            idempotency_key: Some(key.to_owned()),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
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
