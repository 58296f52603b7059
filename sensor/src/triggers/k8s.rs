//! `k8s` triggers for kinds other than an Argo Workflow: the object, with
//! parameters applied, the sensor and trigger labels and a name derived from
//! the firing's idempotency key (for `generateName` objects), so that a
//! redelivered event finds the object it created instead of creating a second.
//!
//! The API is reached with kube-rs (kubeconfig or in-cluster); a sensor with
//! such a trigger and no reachable cluster is an error at startup (see
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

/// A connection to a Kubernetes API (kubeconfig or in-cluster).
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
}

impl Kube {
    /// Connects with the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or the
    /// in-cluster service account, and checks that the API answers.
    pub async fn connect() -> std::result::Result<Self, String> {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("no Kubernetes API configured (kubeconfig or in-cluster): {e}"))?;
        tokio::time::timeout(std::time::Duration::from_secs(10), client.apiserver_version())
            .await
            .map_err(|_| "the Kubernetes API did not answer within 10s".to_owned())?
            .map_err(|e| format!("the Kubernetes API cannot be reached: {e}"))?;
        Ok(Kube { client })
    }

    /// Applies the request. A `create` that finds the object (same
    /// deterministic name: a redelivery) and a `delete` of an absent object
    /// succeed.
    pub async fn execute(&self, trigger: &str, request: &Request) -> Result<()> {
        use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
        use kube::core::GroupVersionKind;
        use kube::discovery::{Scope, pinned_kind};

        let Request::K8s {
            operation,
            patch_strategy,
            resource,
        } = request
        else {
            return Err(Error::permanent(trigger, "not a Kubernetes request"));
        };
        let api_version = resource.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = resource.get("kind").and_then(Value::as_str).unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| kube_error(trigger, e))?;
        let meta = resource.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), namespace, &ar),
            Scope::Cluster => Api::all_with(self.client.clone(), &ar),
        };
        let object: DynamicObject = serde_json::from_value(resource.clone())
            .map_err(|e| Error::permanent(trigger, format!("the resource is not a Kubernetes object: {e}")))?;
        let result = match operation.as_str() {
            "create" => match api.create(&PostParams::default(), &object).await {
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                other => other.map(|_| ()),
            },
            "update" => {
                let mut object = object;
                match api.get(&name).await {
                    Ok(live) => {
                        object.metadata.resource_version = live.metadata.resource_version;
                        api.replace(&name, &PostParams::default(), &object).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            }
            "patch" => {
                let params = PatchParams::default();
                match patch_strategy.as_deref().unwrap_or("application/merge-patch+json") {
                    "application/json-patch+json" => {
                        return Err(Error::permanent(
                            trigger,
                            "patchStrategy application/json-patch+json is not supported yet; use application/merge-patch+json",
                        ));
                    }
                    "application/strategic-merge-patch+json" => {
                        api.patch(&name, &params, &Patch::Strategic(resource)).await.map(|_| ())
                    }
                    _ => api.patch(&name, &params, &Patch::Merge(resource)).await.map(|_| ()),
                }
            }
            "delete" => match api.delete(&name, &DeleteParams::default()).await {
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                other => other.map(|_| ()),
            },
            other => return Err(Error::permanent(trigger, format!("unsupported operation {other}"))),
        };
        result.map_err(|e| kube_error(trigger, e))
    }
}

fn kube_error(trigger: &str, e: kube::Error) -> Error {
    match &e {
        kube::Error::Api(s) if s.code < 500 && s.code != 429 => Error::permanent(trigger, e.to_string()),
        _ => Error::transient(trigger, e.to_string()),
    }
}
