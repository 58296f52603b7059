//! The Argo Workflows kinds as Rust types: `Workflow`, `WorkflowTemplate`,
//! `ClusterWorkflowTemplate` and `CronWorkflow` (`argoproj.io/v1alpha1`), with
//! the `depends` expression language and semantic validation.
//!
//! The types mirror the upstream JSON shape exactly (field names, nesting,
//! which fields are required), so unmodified manifests load and a field that
//! upstream does not know is reported by the loader.
//!
//! Longer than most files because it is upstream's Workflow, WorkflowTemplate
//! and CronWorkflow types and their status, field for field.

pub mod artifact;
pub mod depends;
pub mod template;
pub mod validate;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    Affinity, HostAlias, LocalObjectReference, PersistentVolumeClaim, PodDNSConfig, PodSecurityContext, Toleration,
    Volume,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use artifact::*;
pub use depends::{Depends, DependsError, TaskResult};
pub use template::*;
pub use validate::{SpecKind, validate_cron_workflow, validate_spec, validate_workflow, validate_workflow_template};

/// Reads a list or map written as null (`dependencies:` with nothing after
/// it) as empty, as the Kubernetes tooling that reads these manifests does.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A string that a manifest may also write as a number or a boolean
/// (`value: 5` means the string `"5"`), as parameter values are in Argo.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AnyString(pub String);

impl AnyString {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AnyString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AnyString {
    fn from(s: &str) -> Self {
        AnyString(s.to_string())
    }
}

impl From<String> for AnyString {
    fn from(s: String) -> Self {
        AnyString(s)
    }
}

impl Serialize for AnyString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AnyString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AnyString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AnyString, E> {
                Ok(AnyString(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<AnyString, E> {
                Ok(AnyString(v))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<AnyString, E> {
                Ok(AnyString(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<AnyString, E> {
                Ok(AnyString(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<AnyString, E> {
                Ok(AnyString(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<AnyString, E> {
                Ok(AnyString(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for AnyString {
    fn schema_name() -> Cow<'static, str> {
        "AnyString".into()
    }

    fn inline_schema() -> bool {
        true
    }

    // Not `x-kubernetes-int-or-string`: that one admits only integer|string,
    // and Argo parameter values may also be written as floats and booleans.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A string; a number or a boolean is read as its text.",
            "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
        })
    }
}

/// The specification of a workflow: its templates, where to start, and how its
/// pods run. Also the spec of `WorkflowTemplate`, `ClusterWorkflowTemplate`
/// and the `workflowSpec` of a `CronWorkflow`.
#[serde_with::skip_serializing_none]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Workflow",
    namespaced,
    status = "WorkflowStatus",
    shortname = "wf"
)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// The templates of this workflow, each a reusable unit of work.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub templates: Vec<Template>,
    /// The name of the template the workflow starts with.
    pub entrypoint: Option<String>,
    /// Parameters and artifacts given to the workflow, visible as `{{workflow.parameters.NAME}}`.
    #[serde(default, skip_serializing_if = "Arguments::is_empty")]
    pub arguments: Arguments,
    /// The service account every pod of the workflow runs as.
    pub service_account_name: Option<String>,
    /// Whether a service account token is mounted into the workflow's pods.
    pub automount_service_account_token: Option<bool>,
    /// Settings of the executor that runs next to each step.
    pub executor: Option<ExecutorConfig>,
    /// Volumes the containers of the workflow may mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume>,
    /// Claims created when the workflow starts and deleted when it completes.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub volume_claim_templates: Vec<PersistentVolumeClaim>,
    /// The most pods of this workflow that may run at once.
    pub parallelism: Option<i64>,
    /// The config map and key that hold the artifact repository to use.
    pub artifact_repository_ref: Option<ArtifactRepositoryRef>,
    /// Suspends the workflow: no further step starts until it is resumed.
    pub suspend: Option<bool>,
    /// Node labels every pod of the workflow is scheduled onto (a template may override).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub node_selector: BTreeMap<String, String>,
    /// Scheduling constraints for every pod of the workflow (a template may override).
    pub affinity: Option<Affinity>,
    /// Tolerations applied to the workflow's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub tolerations: Vec<Toleration>,
    /// Secrets used to pull the images of the workflow's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Run the workflow's pods in the host network namespace.
    pub host_network: Option<bool>,
    /// The DNS policy of the workflow's pods.
    pub dns_policy: Option<DnsPolicy>,
    /// DNS settings of the workflow's pods on top of the DNS policy.
    pub dns_config: Option<PodDNSConfig>,
    /// A template run when the workflow ends, whatever its outcome.
    pub on_exit: Option<String>,
    /// How long a finished workflow is kept, by outcome.
    pub ttl_strategy: Option<TtlStrategy>,
    /// Seconds the workflow may run before it is terminated.
    pub active_deadline_seconds: Option<i64>,
    /// Workflows with a higher priority are processed first.
    pub priority: Option<i32>,
    /// The scheduler that places the workflow's pods.
    pub scheduler_name: Option<String>,
    /// When the workflow's completed pods are deleted.
    #[serde(default, rename = "podGC")]
    pub pod_gc: Option<PodGc>,
    /// The priority class of the workflow's pods.
    pub pod_priority_class_name: Option<String>,
    /// The priority of the workflow's pods (deprecated: use podPriorityClassName).
    pub pod_priority: Option<i32>,
    /// Extra entries for the pods' /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub host_aliases: Vec<HostAlias>,
    /// Pod-level security settings of the workflow's pods.
    pub security_context: Option<PodSecurityContext>,
    /// A strategic merge patch applied to every pod spec of the workflow.
    pub pod_spec_patch: Option<String>,
    /// A disruption budget for the workflow's pods.
    pub pod_disruption_budget: Option<PodDisruptionBudgetSpec>,
    /// Prometheus metrics emitted by this workflow.
    pub metrics: Option<Metrics>,
    /// Stops (running exit handlers) or terminates the workflow.
    pub shutdown: Option<ShutdownStrategy>,
    /// Runs the spec of a WorkflowTemplate (or ClusterWorkflowTemplate) instead of local templates.
    pub workflow_template_ref: Option<WorkflowTemplateRef>,
    /// Mutexes and semaphores the workflow must hold to run.
    pub synchronization: Option<Synchronization>,
    /// When the volumes created from volumeClaimTemplates are deleted.
    #[serde(default, rename = "volumeClaimGC")]
    pub volume_claim_gc: Option<VolumeClaimGc>,
    /// The retry strategy of every template of the workflow.
    pub retry_strategy: Option<RetryStrategy>,
    /// Labels and annotations added to the workflow's pods.
    pub pod_metadata: Option<Metadata>,
    /// Default values for every template of the workflow.
    pub template_defaults: Option<Box<Template>>,
    /// Archive the logs of the workflow's containers as artifacts.
    pub archive_logs: Option<bool>,
    /// Lifecycle hooks of the workflow (`exit`, or a named hook with an expression).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub hooks: BTreeMap<String, LifecycleHook>,
    /// Labels and annotations given to the workflow object itself.
    pub workflow_metadata: Option<WorkflowMetadata>,
    /// When the workflow's output artifacts are deleted.
    #[serde(default, rename = "artifactGC")]
    pub artifact_gc: Option<WorkflowLevelArtifactGc>,
}

impl WorkflowSpec {
    /// The template of this spec named `name`.
    pub fn template(&self, name: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.name == name)
    }
}

/// A reusable workflow definition, stored in a namespace: workflows run it
/// with `workflowTemplateRef` or call its templates with `templateRef`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "WorkflowTemplate",
    namespaced,
    status = "TemplateStatus",
    shortname = "wftmpl"
)]
pub struct WorkflowTemplateSpec {
    /// The workflow spec this template provides.
    #[serde(flatten)]
    pub spec: WorkflowSpec,
}

/// A WorkflowTemplate visible to every namespace of the cluster.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "ClusterWorkflowTemplate",
    status = "TemplateStatus",
    shortname = "cwftmpl"
)]
pub struct ClusterWorkflowTemplateSpec {
    /// The workflow spec this template provides.
    #[serde(flatten)]
    pub spec: WorkflowSpec,
}

// Both template kinds read as the WorkflowSpec they wrap (`t.spec.templates`).
impl std::ops::Deref for WorkflowTemplateSpec {
    type Target = WorkflowSpec;
    fn deref(&self) -> &WorkflowSpec {
        &self.spec
    }
}

impl std::ops::DerefMut for WorkflowTemplateSpec {
    fn deref_mut(&mut self) -> &mut WorkflowSpec {
        &mut self.spec
    }
}

impl std::ops::Deref for ClusterWorkflowTemplateSpec {
    type Target = WorkflowSpec;
    fn deref(&self) -> &WorkflowSpec {
        &self.spec
    }
}

impl std::ops::DerefMut for ClusterWorkflowTemplateSpec {
    fn deref_mut(&mut self) -> &mut WorkflowSpec {
        &mut self.spec
    }
}

/// The status of a (Cluster)WorkflowTemplate: upstream keeps none; accepted
/// loosely so a manifest carrying `status: {}` loads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateStatus {
    /// Whatever fields the status carries.
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// A workflow submitted on a cron schedule.
#[serde_with::skip_serializing_none]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "CronWorkflow",
    namespaced,
    status = "CronWorkflowStatus",
    shortname = "cwf"
)]
#[serde(rename_all = "camelCase")]
pub struct CronWorkflowSpec {
    /// The spec of the workflow submitted at each tick.
    pub workflow_spec: WorkflowSpec,
    /// The cron schedule (5 fields, or a descriptor such as `@hourly`); deprecated for `schedules`.
    pub schedule: Option<String>,
    /// Cron schedules; the workflow runs at the ticks of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub schedules: Vec<String>,
    /// What to do when a tick comes while an earlier run is still running.
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// Stops submitting new runs.
    pub suspend: Option<bool>,
    /// Seconds after a missed tick during which the run is still started.
    pub starting_deadline_seconds: Option<i64>,
    /// How many succeeded runs are kept.
    pub successful_jobs_history_limit: Option<i32>,
    /// How many failed runs are kept.
    pub failed_jobs_history_limit: Option<i32>,
    /// The time zone of the schedule, e.g. `Asia/Tokyo`; the machine's by default.
    pub timezone: Option<String>,
    /// Metadata given to each submitted workflow.
    pub workflow_metadata: Option<ObjectMeta>,
    /// When to stop scheduling for good.
    pub stop_strategy: Option<StopStrategy>,
    /// An expression that must be true for a tick to submit a run.
    pub when: Option<String>,
}

/// The status of a CronWorkflow.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronWorkflowStatus {
    /// The running workflows started by this CronWorkflow.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub active: Vec<k8s_openapi::api::core::v1::ObjectReference>,
    /// When a run was last submitted.
    pub last_scheduled_time: Option<Time>,
    /// Conditions of the CronWorkflow.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub conditions: Vec<Condition>,
    /// How many runs succeeded.
    pub succeeded: Option<i64>,
    /// How many runs failed.
    pub failed: Option<i64>,
    /// `Running`, or `Stopped` once the stop strategy fired.
    pub phase: Option<String>,
}

/// What a CronWorkflow does when a tick comes while a run is still going.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Start another run.
    Allow,
    /// Skip this tick.
    Forbid,
    /// Stop the running one and start a new run.
    Replace,
}

/// When a CronWorkflow stops scheduling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StopStrategy {
    /// An expression over the CronWorkflow's status (e.g. `cronworkflow.failed >= 3`).
    pub expression: String,
}

/// How long a finished workflow is kept.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TtlStrategy {
    /// Seconds a workflow is kept after it completes, whatever the outcome.
    pub seconds_after_completion: Option<i32>,
    /// Seconds a workflow is kept after it succeeds.
    pub seconds_after_success: Option<i32>,
    /// Seconds a workflow is kept after it fails.
    pub seconds_after_failure: Option<i32>,
}

/// When completed pods are deleted.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodGc {
    /// The moment pods are deleted; unset keeps them.
    pub strategy: Option<PodGcStrategy>,
    /// Only pods matching these labels are deleted.
    pub label_selector: Option<LabelSelector>,
    /// How long to wait before deleting a pod (e.g. `30s`).
    pub delete_delay_duration: Option<String>,
}

/// The moment completed pods are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PodGcStrategy {
    /// As soon as each pod completes.
    OnPodCompletion,
    /// As soon as each pod succeeds.
    OnPodSuccess,
    /// When the workflow completes.
    OnWorkflowCompletion,
    /// When the workflow succeeds.
    OnWorkflowSuccess,
}

/// When the volumes created from volumeClaimTemplates are deleted.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VolumeClaimGc {
    /// The moment the claims are deleted (default OnWorkflowSuccess).
    pub strategy: Option<VolumeClaimGcStrategy>,
}

/// The moment workflow volumes are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VolumeClaimGcStrategy {
    /// When the workflow completes.
    OnWorkflowCompletion,
    /// When the workflow succeeds.
    OnWorkflowSuccess,
}

/// How a running workflow is shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ShutdownStrategy {
    /// Stop at once, without running exit handlers.
    Terminate,
    /// Stop starting steps, but run exit handlers.
    Stop,
}

/// The DNS policy of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DnsPolicy {
    /// Cluster DNS first, falling back to the node's.
    ClusterFirst,
    /// Cluster DNS first, for pods on the host network.
    ClusterFirstWithHostNet,
    /// The node's DNS settings.
    Default,
    /// Only what dnsConfig says.
    None,
}

/// Settings of the executor container.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorConfig {
    /// The service account the executor runs as.
    pub service_account_name: Option<String>,
}

/// The config map holding the artifact repository to use.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRepositoryRef {
    /// The config map's name (default `artifact-repositories`).
    pub config_map: Option<String>,
    /// The key in the config map (default: the one its annotation names).
    pub key: Option<String>,
}

/// A reference to a WorkflowTemplate whose spec a workflow runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowTemplateRef {
    /// The name of the WorkflowTemplate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The template is a ClusterWorkflowTemplate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

/// Labels and annotations for pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metadata {
    /// Annotations to add.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: BTreeMap<String, String>,
    /// Labels to add.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub labels: BTreeMap<String, String>,
}

impl Metadata {
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty() && self.labels.is_empty()
    }
}

/// Labels and annotations given to the workflow object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowMetadata {
    /// Labels to add.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub labels: BTreeMap<String, String>,
    /// Annotations to add.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: BTreeMap<String, String>,
    /// Labels whose values are computed from expressions.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub labels_from: BTreeMap<String, LabelValueFrom>,
}

/// A label value computed from an expression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LabelValueFrom {
    /// The expression that gives the value.
    pub expression: String,
}

/// Mutexes and semaphores to hold while running.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Synchronization {
    /// One semaphore (deprecated: use semaphores).
    pub semaphore: Option<SemaphoreRef>,
    /// One mutex (deprecated: use mutexes).
    pub mutex: Option<Mutex>,
    /// Semaphores to hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub semaphores: Vec<SemaphoreRef>,
    /// Mutexes to hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub mutexes: Vec<Mutex>,
}

/// A semaphore whose limit is kept in a config map or a database.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SemaphoreRef {
    /// The config map key holding the semaphore's limit.
    pub config_map_key_ref: Option<k8s_openapi::api::core::v1::ConfigMapKeySelector>,
    /// The namespace of the config map (default: the workflow's).
    pub namespace: Option<String>,
    /// The semaphore kept in the synchronization database.
    pub database: Option<SyncDatabaseRef>,
}

/// A semaphore kept in the synchronization database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SyncDatabaseRef {
    /// The semaphore's key in the database.
    pub key: String,
}

/// A named mutex.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Mutex {
    /// The name of the mutex.
    pub name: Option<String>,
    /// The namespace of the mutex (default: the workflow's).
    pub namespace: Option<String>,
    /// Keep the mutex in the synchronization database.
    pub database: Option<bool>,
}

/// Prometheus metrics emitted by a workflow or template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metrics {
    /// The metrics to emit.
    pub prometheus: Vec<Prometheus>,
}

/// One Prometheus metric.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Prometheus {
    /// The name of the metric.
    pub name: String,
    /// Labels of the metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub labels: Vec<MetricLabel>,
    /// What the metric means.
    pub help: String,
    /// A condition for emitting the metric.
    pub when: Option<String>,
    /// A gauge metric.
    pub gauge: Option<Gauge>,
    /// A histogram metric.
    pub histogram: Option<Histogram>,
    /// A counter metric.
    pub counter: Option<Counter>,
}

/// A metric label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricLabel {
    /// The label name.
    pub key: String,
    /// The label value.
    pub value: String,
}

/// A gauge metric.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Gauge {
    /// The value (or operand of the operation).
    pub value: String,
    /// Emit the metric while the node runs.
    pub realtime: Option<bool>,
    /// How the value changes the gauge.
    pub operation: Option<GaugeOperation>,
}

/// How a value changes a gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GaugeOperation {
    /// Replace the gauge's value.
    Set,
    /// Add to it.
    Add,
    /// Subtract from it.
    Sub,
}

/// A histogram metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Histogram {
    /// The observed value.
    pub value: String,
    /// The bucket bounds.
    pub buckets: Vec<f64>,
}

/// A counter metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Counter {
    /// The amount to add.
    pub value: String,
}

/// A condition of a workflow or CronWorkflow.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Condition {
    /// The kind of condition (e.g. `Completed`, `SpecError`).
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// `True`, `False` or `Unknown`.
    pub status: Option<String>,
    /// What the condition says.
    pub message: Option<String>,
}

/// Where a workflow is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum WorkflowPhase {
    /// Not yet started.
    Pending,
    /// Running.
    Running,
    /// Finished, all went well.
    Succeeded,
    /// Finished, a step failed.
    Failed,
    /// Finished, something other than a step failed.
    Error,
}

impl WorkflowPhase {
    /// Succeeded, Failed or Error.
    pub fn is_completed(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Error)
    }
}

/// Where a node (a step, a task, a pod) is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NodePhase {
    /// Waiting to run.
    Pending,
    /// Running.
    Running,
    /// Finished without error.
    Succeeded,
    /// Not run: its `when` was false.
    Skipped,
    /// Finished with a non-zero exit code (or a child did).
    Failed,
    /// Finished with an error other than a non-zero exit code.
    Error,
    /// Not run: its `depends` was not satisfied.
    Omitted,
}

impl NodePhase {
    /// Succeeded, Failed or Error.
    pub fn is_completed(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Error)
    }

    /// Completed, skipped or omitted: the node will not change any more.
    pub fn is_fulfilled(self) -> bool {
        self.is_completed() || matches!(self, Self::Skipped | Self::Omitted)
    }
}

/// What a node of the workflow's graph is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NodeType {
    /// A pod (container, script, resource, data template).
    Pod,
    /// A containerSet container.
    Container,
    /// A steps template.
    Steps,
    /// One group of parallel steps.
    StepGroup,
    /// A DAG template.
    #[serde(rename = "DAG")]
    Dag,
    /// The expansion of one task (withItems ...).
    TaskGroup,
    /// A node that retries its child.
    Retry,
    /// A step that was skipped.
    Skipped,
    /// A suspend template.
    Suspend,
    /// An HTTP template.
    #[serde(rename = "HTTP")]
    Http,
    /// A plugin template.
    Plugin,
}

/// The observed state of a workflow.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    /// Pending, Running, Succeeded, Failed or Error.
    pub phase: Option<WorkflowPhase>,
    /// When the workflow started.
    pub started_at: Option<Time>,
    /// When the workflow finished.
    pub finished_at: Option<Time>,
    /// Estimated duration in seconds.
    pub estimated_duration: Option<i64>,
    /// Progress, as `done/total`.
    pub progress: Option<String>,
    /// Why the workflow is in this phase.
    pub message: Option<String>,
    /// The nodes compressed and base64 encoded.
    pub compressed_nodes: Option<String>,
    /// The nodes of the workflow's graph, by node id.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub nodes: BTreeMap<String, NodeStatus>,
    /// Set when the nodes are kept in a database instead.
    pub offload_node_status_version: Option<String>,
    /// Templates resolved from templateRefs, by reference.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub stored_templates: BTreeMap<String, serde_json::Value>,
    /// The volume claims the workflow created.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub persistent_volume_claims: Vec<serde_json::Value>,
    /// The workflow's global outputs.
    pub outputs: Option<Outputs>,
    /// Conditions of the workflow.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub conditions: Vec<Condition>,
    /// Resource usage times duration, by resource.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub resources_duration: BTreeMap<String, i64>,
    /// The WorkflowTemplate spec the workflow runs, as stored at submission.
    pub stored_workflow_template_spec: Option<serde_json::Value>,
    /// Held and awaited locks.
    pub synchronization: Option<serde_json::Value>,
    /// The artifact repository the workflow uses.
    pub artifact_repository_ref: Option<serde_json::Value>,
    /// State of artifact garbage collection.
    #[serde(default, rename = "artifactGCStatus")]
    pub artifact_gc_status: Option<serde_json::Value>,
    /// Which task results are complete, by node id.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub task_results_completion_status: BTreeMap<String, bool>,
}

/// The observed state of one node of a workflow.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node's id, unique in the workflow.
    pub id: String,
    /// The node's full name (`wf.step[0].a`).
    pub name: String,
    /// The short name shown to users.
    pub display_name: Option<String>,
    /// What the node is.
    #[serde(default, rename = "type")]
    pub type_: Option<NodeType>,
    /// The template the node runs.
    pub template_name: Option<String>,
    /// The templateRef the node runs.
    pub template_ref: Option<TemplateRef>,
    /// Where the template was found (`namespaced/NAME`, `cluster/NAME`).
    pub template_scope: Option<String>,
    /// Where the node is in its lifecycle.
    pub phase: Option<NodePhase>,
    /// The id of the steps or DAG node this node belongs to.
    #[serde(default, rename = "boundaryID")]
    pub boundary_id: Option<String>,
    /// Why the node is in this phase.
    pub message: Option<String>,
    /// When the node started.
    pub started_at: Option<Time>,
    /// When the node finished.
    pub finished_at: Option<Time>,
    /// Estimated duration in seconds.
    pub estimated_duration: Option<i64>,
    /// Progress, as `done/total`.
    pub progress: Option<String>,
    /// Resource usage times duration, by resource.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub resources_duration: BTreeMap<String, i64>,
    /// The pod's IP, for daemoned steps.
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<String>,
    /// The node runs as a daemon.
    pub daemoned: Option<bool>,
    /// Whether the node was started by a hook, or retried.
    pub node_flag: Option<serde_json::Value>,
    /// The input values the node ran with.
    pub inputs: Option<Inputs>,
    /// The outputs the node produced.
    pub outputs: Option<Outputs>,
    /// Ids of the child nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub children: Vec<String>,
    /// Ids of the last nodes of this node's template.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub outbound_nodes: Vec<String>,
    /// The Kubernetes node the pod ran on.
    pub host_node_name: Option<String>,
    /// Whether the outputs came from the memoization cache.
    pub memoization_status: Option<serde_json::Value>,
    /// The lock the node waits for.
    pub synchronization_status: Option<serde_json::Value>,
}
