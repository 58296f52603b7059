//! Templates, the units of work of a workflow, and what they are made of:
//! steps and DAG tasks, inputs, outputs, parameters and retry strategies.
//!
//! Longer than most files because it is upstream's Template type and its
//! parts, field for field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapKeySelector, Container, HostAlias, PodSecurityContext, SecretKeySelector, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::artifact::{Artifact, ArtifactLocation};
use super::{AnyString, ExecutorConfig, Metadata, Metrics, Synchronization, null_as_default};

/// A reusable unit of work: exactly one kind (container, script, resource,
/// suspend, steps, dag, http, containerSet, data or plugin) plus its inputs,
/// outputs and pod settings.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// The name steps and tasks call the template by.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The parameters and artifacts the template takes.
    #[serde(default, skip_serializing_if = "Inputs::is_empty")]
    pub inputs: Inputs,
    /// The parameters and artifacts the template produces.
    #[serde(default, skip_serializing_if = "Outputs::is_empty")]
    pub outputs: Outputs,
    /// Node labels the template's pod is scheduled onto.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub node_selector: BTreeMap<String, String>,
    /// Scheduling constraints of the template's pod.
    pub affinity: Option<Affinity>,
    /// Labels and annotations of the template's pod.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// Let the workflow go on once the container is ready, keeping it running.
    pub daemon: Option<bool>,
    /// Groups of steps: the groups run one after the other, the steps of a group in parallel.
    pub steps: Option<Vec<Vec<WorkflowStep>>>,
    /// Run one container.
    pub container: Option<Container>,
    /// Run several containers in one pod.
    pub container_set: Option<ContainerSetTemplate>,
    /// Run a script's source with an interpreter; its stdout is `outputs.result`.
    pub script: Option<ScriptTemplate>,
    /// Create, apply, patch or delete a Kubernetes resource.
    pub resource: Option<ResourceTemplate>,
    /// Run a graph of tasks.
    pub dag: Option<DagTemplate>,
    /// Pause the workflow until resumed or for a duration.
    pub suspend: Option<SuspendTemplate>,
    /// Transform data with expressions.
    pub data: Option<Data>,
    /// Make an HTTP request.
    pub http: Option<Http>,
    /// Call an executor plugin (its configuration, under the plugin's name).
    pub plugin: Option<serde_json::Map<String, serde_json::Value>>,
    /// Volumes the template's containers may mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume>,
    /// Containers run before the main container.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub init_containers: Vec<UserContainer>,
    /// Containers run next to the main container and stopped when it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub sidecars: Vec<UserContainer>,
    /// Where the step's logs and output artifacts are stored.
    pub archive_location: Option<ArtifactLocation>,
    /// Seconds the pod may run before it is stopped.
    pub active_deadline_seconds: Option<IntOrString>,
    /// How to retry the template when it fails.
    pub retry_strategy: Option<RetryStrategy>,
    /// The most pods this template invocation may run at once.
    pub parallelism: Option<i64>,
    /// Fail the template as soon as one child fails.
    pub fail_fast: Option<bool>,
    /// Tolerations of the template's pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub tolerations: Vec<Toleration>,
    /// The scheduler that places the template's pod.
    pub scheduler_name: Option<String>,
    /// The priority class of the template's pod.
    pub priority_class_name: Option<String>,
    /// The priority of the template's pod.
    pub priority: Option<i32>,
    /// The service account the template's pod runs as.
    pub service_account_name: Option<String>,
    /// Whether a service account token is mounted into the pod.
    pub automount_service_account_token: Option<bool>,
    /// Settings of the executor container.
    pub executor: Option<ExecutorConfig>,
    /// Extra entries for the pod's /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub host_aliases: Vec<HostAlias>,
    /// Pod-level security settings.
    pub security_context: Option<PodSecurityContext>,
    /// A strategic merge patch applied to the pod spec.
    pub pod_spec_patch: Option<String>,
    /// Prometheus metrics emitted by this template.
    pub metrics: Option<Metrics>,
    /// Mutexes and semaphores to hold while the template runs.
    pub synchronization: Option<Synchronization>,
    /// Reuse the outputs of an earlier run with the same key.
    pub memoize: Option<Memoize>,
    /// The longest the node may take, pending time included (e.g. `10m`).
    pub timeout: Option<String>,
}

/// The kind of a template: what it does when it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    Container,
    ContainerSet,
    Script,
    Resource,
    Steps,
    Dag,
    Suspend,
    Data,
    Http,
    Plugin,
}

impl TemplateKind {
    /// The manifest field that selects this kind.
    pub fn field(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::ContainerSet => "containerSet",
            Self::Script => "script",
            Self::Resource => "resource",
            Self::Steps => "steps",
            Self::Dag => "dag",
            Self::Suspend => "suspend",
            Self::Data => "data",
            Self::Http => "http",
            Self::Plugin => "plugin",
        }
    }

    /// Every kind, in the order they are listed to users.
    pub const ALL: [TemplateKind; 10] = [
        Self::Container,
        Self::Script,
        Self::Resource,
        Self::Suspend,
        Self::Steps,
        Self::Dag,
        Self::Http,
        Self::ContainerSet,
        Self::Data,
        Self::Plugin,
    ];
}

impl Template {
    /// The kinds this template sets; a valid template sets exactly one.
    pub fn kinds(&self) -> Vec<TemplateKind> {
        let mut kinds = Vec::new();
        for kind in TemplateKind::ALL {
            let set = match kind {
                TemplateKind::Container => self.container.is_some(),
                TemplateKind::ContainerSet => self.container_set.is_some(),
                TemplateKind::Script => self.script.is_some(),
                TemplateKind::Resource => self.resource.is_some(),
                TemplateKind::Steps => self.steps.is_some(),
                TemplateKind::Dag => self.dag.is_some(),
                TemplateKind::Suspend => self.suspend.is_some(),
                TemplateKind::Data => self.data.is_some(),
                TemplateKind::Http => self.http.is_some(),
                TemplateKind::Plugin => self.plugin.is_some(),
            };
            if set {
                kinds.push(kind);
            }
        }
        kinds
    }

    /// The template's kind, when it sets exactly one.
    pub fn kind(&self) -> Option<TemplateKind> {
        match self.kinds().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// The parameters and artifacts a template takes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Inputs {
    /// Input parameters, referenced as `{{inputs.parameters.NAME}}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub parameters: Vec<Parameter>,
    /// Input artifacts, placed at their `path` before the container starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub artifacts: Vec<Artifact>,
}

impl Inputs {
    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty() && self.artifacts.is_empty()
    }

    /// The input parameter named `name`.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

/// The parameters and artifacts a template produces.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    /// Output parameters, read by later steps as `{{steps.NAME.outputs.parameters.X}}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub parameters: Vec<Parameter>,
    /// Output artifacts, saved from their `path` when the container ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub artifacts: Vec<Artifact>,
    /// The captured stdout of a script or container (set at run time).
    pub result: Option<String>,
    /// The exit code of the main container (set at run time).
    pub exit_code: Option<String>,
}

impl Outputs {
    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty() && self.artifacts.is_empty() && self.result.is_none() && self.exit_code.is_none()
    }
}

/// Parameters and artifacts passed to a template or a workflow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Arguments {
    /// Parameters passed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub parameters: Vec<Parameter>,
    /// Artifacts passed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub artifacts: Vec<Artifact>,
}

impl Arguments {
    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty() && self.artifacts.is_empty()
    }

    /// The parameter named `name`.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

/// A named string value: an input, an output or an argument.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// The parameter's name.
    pub name: String,
    /// The value used when none is passed.
    pub default: Option<AnyString>,
    /// The value; for an input it wins over a passed value.
    pub value: Option<AnyString>,
    /// Where an output parameter's value comes from.
    pub value_from: Option<ValueFrom>,
    /// Also export the output as `{{workflow.outputs.parameters.NAME}}`.
    pub global_name: Option<String>,
    /// The values the parameter may take.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub r#enum: Vec<AnyString>,
    /// What the parameter is for.
    pub description: Option<AnyString>,
}

impl Parameter {
    /// A parameter with a literal value.
    pub fn with_value(name: impl Into<String>, value: impl Into<String>) -> Self {
        Parameter {
            name: name.into(),
            value: Some(AnyString(value.into())),
            ..Default::default()
        }
    }

    /// The value, else the default.
    pub fn value_or_default(&self) -> Option<&str> {
        self.value.as_ref().or(self.default.as_ref()).map(AnyString::as_str)
    }
}

/// Where a parameter's value comes from.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// A file in the container whose content is the value.
    pub path: Option<String>,
    /// A JSONPath into the resource of a resource template.
    pub json_path: Option<String>,
    /// A jq filter over the resource of a resource template.
    pub jq_filter: Option<String>,
    /// An expression over the event that resumed a suspend template.
    pub event: Option<String>,
    /// Another step's or task's output parameter (`{{steps.a.outputs.parameters.x}}`).
    pub parameter: Option<String>,
    /// The value is supplied later, through the CLI or the API.
    pub supplied: Option<SuppliedValueFrom>,
    /// A config map key holding the value.
    pub config_map_key_ref: Option<ConfigMapKeySelector>,
    /// The value used when the source fails.
    pub default: Option<AnyString>,
    /// An expression giving the value.
    pub expression: Option<String>,
}

/// Marks a value as supplied later (an empty object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SuppliedValueFrom {}

/// One step of a steps template: a call of a template.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStep {
    /// The step's name, used in `{{steps.NAME...}}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The template of this workflow to run.
    pub template: Option<String>,
    /// A template written in place.
    pub inline: Option<Box<Template>>,
    /// Arguments passed to the template.
    #[serde(default, skip_serializing_if = "Arguments::is_empty")]
    pub arguments: Arguments,
    /// A template of a WorkflowTemplate or ClusterWorkflowTemplate to run.
    pub template_ref: Option<TemplateRef>,
    /// Run the step once per item of this list (`{{item}}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub with_items: Vec<serde_json::Value>,
    /// Run the step once per item of this JSON list.
    pub with_param: Option<String>,
    /// Run the step once per number of a sequence.
    pub with_sequence: Option<Sequence>,
    /// A condition; the step is skipped when it is false.
    pub when: Option<String>,
    /// Go on with the workflow even if this step fails or errors.
    pub continue_on: Option<ContinueOn>,
    /// A template run when the step ends (deprecated: use hooks.exit).
    pub on_exit: Option<String>,
    /// Lifecycle hooks of the step.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub hooks: BTreeMap<String, LifecycleHook>,
}

/// One task of a DAG template.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DagTask {
    /// The task's name, used in `dependencies`, `depends` and `{{tasks.NAME...}}`.
    pub name: String,
    /// The template of this workflow to run.
    pub template: Option<String>,
    /// A template written in place.
    pub inline: Option<Box<Template>>,
    /// Arguments passed to the template.
    #[serde(default, skip_serializing_if = "Arguments::is_empty")]
    pub arguments: Arguments,
    /// A template of a WorkflowTemplate or ClusterWorkflowTemplate to run.
    pub template_ref: Option<TemplateRef>,
    /// Tasks that must succeed before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub dependencies: Vec<String>,
    /// Run the task once per item of this list (`{{item}}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub with_items: Vec<serde_json::Value>,
    /// Run the task once per item of this JSON list.
    pub with_param: Option<String>,
    /// Run the task once per number of a sequence.
    pub with_sequence: Option<Sequence>,
    /// A condition; the task is skipped when it is false.
    pub when: Option<String>,
    /// Go on with the DAG even if this task fails or errors.
    pub continue_on: Option<ContinueOn>,
    /// A template run when the task ends (deprecated: use hooks.exit).
    pub on_exit: Option<String>,
    /// A boolean expression over other tasks' results (`A && (B.Failed || C)`).
    pub depends: Option<String>,
    /// Lifecycle hooks of the task.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub hooks: BTreeMap<String, LifecycleHook>,
}

/// A template run at a point of a workflow's, step's or task's life.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHook {
    /// The template of this workflow to run.
    pub template: Option<String>,
    /// Arguments passed to the template.
    #[serde(default, skip_serializing_if = "Arguments::is_empty")]
    pub arguments: Arguments,
    /// A template of a WorkflowTemplate or ClusterWorkflowTemplate to run.
    pub template_ref: Option<TemplateRef>,
    /// When the hook runs (an expression); the `exit` hook needs none.
    pub expression: Option<String>,
}

/// A template of a WorkflowTemplate or ClusterWorkflowTemplate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// The name of the WorkflowTemplate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The name of the template in it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template: String,
    /// The WorkflowTemplate is a ClusterWorkflowTemplate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

/// A numeric range a step or task is expanded over.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Sequence {
    /// How many numbers (not with `end`).
    pub count: Option<IntOrString>,
    /// The first number (default 0).
    pub start: Option<IntOrString>,
    /// The last number (not with `count`).
    pub end: Option<IntOrString>,
    /// A printf format for each number (e.g. `2020-05-%02X`).
    pub format: Option<String>,
}

/// Which failures of a step or task the workflow carries on after.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContinueOn {
    /// Carry on when the node errors.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
    /// Carry on when the node fails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

/// A graph of tasks.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DagTemplate {
    /// Names of the tasks to run (space separated); all tasks by default.
    pub target: Option<String>,
    /// The tasks of the graph.
    pub tasks: Vec<DagTask>,
    /// Stop starting tasks once one fails (default true).
    pub fail_fast: Option<bool>,
}

/// A container that runs a script: the container's fields plus `source`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScriptTemplate {
    /// The container that runs the script (its `command` is the interpreter).
    #[serde(flatten)]
    pub container: Container,
    /// The script's source, passed to the command as a file.
    pub source: String,
}

/// A container specified by a user (init container or sidecar).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserContainer {
    /// The container.
    #[serde(flatten)]
    pub container: Container,
    /// Mount the main container's volumes at the same paths.
    pub mirror_volume_mounts: Option<bool>,
}

/// Several containers in one pod, optionally ordered by dependencies.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSetTemplate {
    /// The containers.
    pub containers: Vec<ContainerNode>,
    /// Volume mounts shared by all the containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub volume_mounts: Vec<VolumeMount>,
    /// How to retry a failed container of the set.
    pub retry_strategy: Option<ContainerSetRetryStrategy>,
}

/// A container of a container set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContainerNode {
    /// The container.
    #[serde(flatten)]
    pub container: Container,
    /// Containers of the set that must finish before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub dependencies: Vec<String>,
}

/// How to retry a container of a container set.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContainerSetRetryStrategy {
    /// How many times to retry.
    pub retries: IntOrString,
    /// How long to wait between retries (e.g. `20s`).
    pub duration: Option<String>,
}

/// What a resource template does to its resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceAction {
    /// Read it.
    Get,
    /// Create it.
    Create,
    /// Create or update it.
    Apply,
    /// Delete it.
    Delete,
    /// Replace it.
    Replace,
    /// Patch it.
    Patch,
}

/// How a resource template's patch is merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MergeStrategy {
    /// Strategic merge patch (the default).
    Strategic,
    /// JSON merge patch.
    Merge,
    /// JSON patch.
    Json,
}

/// Create, apply, patch or delete a Kubernetes resource.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplate {
    /// What to do to the resource.
    pub action: ResourceAction,
    /// How a patch is merged.
    pub merge_strategy: Option<MergeStrategy>,
    /// The resource's manifest (YAML or JSON).
    pub manifest: Option<String>,
    /// Read the manifest from an artifact.
    pub manifest_from: Option<ManifestFrom>,
    /// Make the workflow the owner of the created resource.
    pub set_owner_reference: Option<bool>,
    /// A label-selector-like condition on the resource meaning success.
    pub success_condition: Option<String>,
    /// A label-selector-like condition on the resource meaning failure.
    pub failure_condition: Option<String>,
    /// Extra kubectl flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub flags: Vec<String>,
}

/// An artifact that holds a resource's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestFrom {
    /// The artifact.
    pub artifact: Box<Artifact>,
}

/// Pause the workflow.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SuspendTemplate {
    /// Resume by itself after this long (seconds, or `2m`, `6h`); otherwise wait to be resumed.
    pub duration: Option<String>,
}

/// Make an HTTP request.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    /// The method (default GET).
    pub method: Option<String>,
    /// The URL.
    pub url: String,
    /// Request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub headers: Vec<HttpHeader>,
    /// Request timeout in seconds (default 30).
    pub timeout_seconds: Option<i64>,
    /// An expression over the response meaning success (e.g. `response.statusCode == 201`).
    pub success_condition: Option<String>,
    /// The request body.
    pub body: Option<String>,
    /// The request body as bytes.
    pub body_from: Option<HttpBodySource>,
    /// Skip TLS certificate verification.
    pub insecure_skip_verify: Option<bool>,
}

/// A request header.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// The header name.
    pub name: String,
    /// The header value.
    pub value: Option<String>,
    /// Where the value comes from.
    pub value_from: Option<HttpHeaderSource>,
}

/// Where a header value comes from.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeaderSource {
    /// A secret key holding the value.
    pub secret_key_ref: Option<SecretKeySelector>,
}

/// A request body given as bytes.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpBodySource {
    /// The body, base64 encoded.
    pub bytes: Option<String>,
}

/// Transform data with expressions.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Data {
    /// `Always` runs the data template in a pod even without artifact paths.
    pub pod_policy: Option<String>,
    /// Where the data comes from.
    pub source: Option<DataSource>,
    /// The transformations applied, in order.
    pub transformation: Vec<TransformationStep>,
}

/// Where a data template's data comes from.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// Literal data.
    pub raw: Option<String>,
    /// The paths of the files of an artifact.
    pub artifact_paths: Option<Box<Artifact>>,
}

/// One transformation of a data template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TransformationStep {
    /// The expression applied.
    pub expression: String,
}

/// Reuse the outputs of an earlier run with the same key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Memoize {
    /// The cache key.
    pub key: String,
    /// Where the cache is kept.
    pub cache: MemoizeCache,
    /// How old a cached entry may be (e.g. `180s`, `24h`).
    pub max_age: String,
}

/// Where memoized outputs are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoizeCache {
    /// A config map holding the cache.
    pub config_map: ConfigMapKeySelector,
}

/// Which failures are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RetryPolicy {
    /// Every failure and error.
    Always,
    /// Failures (non-zero exit) only; the default.
    OnFailure,
    /// Errors only.
    OnError,
    /// Transient errors only.
    OnTransientError,
}

/// How a failed template is retried.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// How many retries after the first attempt.
    pub limit: Option<IntOrString>,
    /// Which failures are retried.
    pub retry_policy: Option<RetryPolicy>,
    /// How long to wait between attempts.
    pub backoff: Option<Backoff>,
    /// Keep retries off the node of the failed attempt.
    pub affinity: Option<RetryAffinity>,
    /// An expression that must be true for a retry to happen.
    pub expression: Option<String>,
}

/// The waiting time between retries.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// The first wait (seconds, or `2m`, `1h`).
    pub duration: Option<String>,
    /// What the wait is multiplied by after each retry.
    pub factor: Option<IntOrString>,
    /// The longest all retries together may take.
    pub max_duration: Option<String>,
    /// The longest a single wait may be.
    pub cap: Option<String>,
}

/// Where retries may run.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryAffinity {
    /// Avoid the nodes of earlier attempts (an empty object).
    pub node_anti_affinity: Option<RetryNodeAntiAffinity>,
}

/// Avoid the nodes of earlier attempts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetryNodeAntiAffinity {}
