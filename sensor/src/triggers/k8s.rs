//! `k8s` triggers for kinds other than an Argo Workflow: the object, with
//! parameters applied, the sensor and trigger labels and a name derived from
//! the firing's idempotency key (for `generateName` objects), so that a
//! redelivered event finds the object it created instead of creating a second.
//!
//! Argon talks to a Kubernetes API only when one is configured; without a
//! cluster such a trigger is an error at startup (see
//! [`crate::sensor::CompiledSensor::needs_cluster`]).

use argon_crds::sensor::KubernetesResourceOperation;
use serde_json::Value;

use super::{LABEL_SENSOR, LABEL_TRIGGER, Request};
use crate::{Error, Result};

/// The manifest spelling of an operation.
pub fn operation_name(op: KubernetesResourceOperation) -> &'static str {
    match op {
        KubernetesResourceOperation::Create => "create",
        KubernetesResourceOperation::Update => "update",
        KubernetesResourceOperation::Patch => "patch",
        KubernetesResourceOperation::Delete => "delete",
    }
}

/// The object of one firing.
pub fn prepare(
    trigger: &str,
    sensor: &str,
    default_namespace: &str,
    operation: KubernetesResourceOperation,
    patch_strategy: Option<&str>,
    mut resource: Value,
    key: &str,
) -> Result<Request> {
    let Some(obj) = resource.as_object_mut() else {
        return Err(Error::permanent(trigger, "the k8s trigger's resource is not an object"));
    };
    if obj.get("apiVersion").and_then(Value::as_str).is_none() || obj.get("kind").and_then(Value::as_str).is_none() {
        return Err(Error::permanent(
            trigger,
            "the k8s trigger's resource needs apiVersion and kind",
        ));
    }
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(meta) = meta.as_object_mut() else {
        return Err(Error::permanent(trigger, "metadata is not an object"));
    };
    if operation == KubernetesResourceOperation::Create {
        let has_name = meta.get("name").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        if !has_name {
            let prefix = meta
                .remove("generateName")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            meta.insert(
                "name".to_owned(),
                Value::String(format!("{prefix}{}", &key[..key.len().min(12)])),
            );
        }
    }
    if meta.get("namespace").and_then(Value::as_str).is_none_or(str::is_empty) {
        meta.insert("namespace".to_owned(), Value::String(default_namespace.to_owned()));
    }
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(LABEL_SENSOR.to_owned(), Value::String(sensor.to_owned()));
        labels.insert(LABEL_TRIGGER.to_owned(), Value::String(trigger.to_owned()));
    }
    Ok(Request::K8s {
        operation: operation_name(operation).to_owned(),
        patch_strategy: (operation == KubernetesResourceOperation::Patch)
            .then(|| patch_strategy.unwrap_or("application/merge-patch+json").to_owned()),
        resource,
    })
}
