//! The client API of the engine: what the sensor (its workflow triggers) and
//! the CLI use, implemented in process by the engine itself and over HTTP
//! against `argon server` ([`crate::HttpClient`]).

use std::collections::BTreeMap;

use argon_crds::workflow::Workflow;

use crate::Result;
use crate::list::{ListOptions, WorkflowPage};

/// Options of a submission.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// Makes the submission idempotent: a second submission with the same key
    /// creates nothing and returns the workflow the first one created. The
    /// sensor derives it from (sensor, trigger, ids of the events used), so a
    /// redelivered event never creates a second workflow.
    pub idempotency_key: Option<String>,
    /// `workflow.parameters` overrides (`-p NAME=VALUE`).
    pub parameters: Vec<(String, String)>,
    /// Labels added to the workflow's metadata.
    pub labels: BTreeMap<String, String>,
}

/// The workflow a submission created (or found, for a repeated idempotency key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// False when the idempotency key had been used before and nothing new was created.
    pub created: bool,
}

/// The operations on an existing workflow (the argoWorkflow trigger's
/// `operation` values other than `submit`, and the CLI verbs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkflowAction {
    Suspend,
    Resume,
    Stop,
    Terminate,
    Retry,
    Resubmit,
}

impl WorkflowAction {
    /// The verb as the API path and the CLI spell it.
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkflowAction::Suspend => "suspend",
            WorkflowAction::Resume => "resume",
            WorkflowAction::Stop => "stop",
            WorkflowAction::Terminate => "terminate",
            WorkflowAction::Retry => "retry",
            WorkflowAction::Resubmit => "resubmit",
        }
    }
}

/// The engine as its callers see it.
#[async_trait::async_trait]
pub trait WorkflowClient: Send + Sync {
    /// Validates and submits a workflow in `namespace` (the workflow's own
    /// namespace when it has one). Invalid workflows are rejected with the
    /// lint message.
    async fn submit(&self, namespace: &str, workflow: Workflow, options: SubmitOptions) -> Result<Submitted>;

    /// Applies `action` to the workflow `name`; returns the workflow as it is after it.
    async fn act(&self, namespace: &str, name: &str, action: WorkflowAction) -> Result<Workflow>;

    /// The workflow `name`, with its status.
    async fn get(&self, namespace: &str, name: &str) -> Result<Workflow>;
}

/// One line a step wrote, as `argon logs` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    /// Position in the workflow's log: ask for lines after it to follow.
    pub seq: i64,
    /// The display name of the step that wrote it.
    pub step: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When the line was read (RFC 3339).
    pub time: String,
    pub line: String,
}

/// What the CLI needs beyond [`WorkflowClient`]: listing, deleting, logs and
/// stored templates. A separate trait so that implementations of the sensor's
/// contract (and its test doubles) need not provide them.
#[async_trait::async_trait]
pub trait WorkflowAdmin: WorkflowClient {
    /// A page of the workflows in `namespace` (all namespaces when empty)
    /// that pass `options`, newest first, without their nodes.
    async fn list(&self, namespace: &str, options: &ListOptions) -> Result<WorkflowPage>;

    /// Deletes a workflow (stopping it when it runs), its nodes and logs.
    async fn delete(&self, namespace: &str, name: &str) -> Result<()>;

    /// The log lines of a workflow after position `after` (0: from the start).
    async fn logs(&self, namespace: &str, name: &str, after: i64) -> Result<Vec<LogEntry>>;

    /// Stores a WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow
    /// (the manifest's `kind` says which); returns it as stored.
    async fn put_template(&self, namespace: &str, manifest: serde_json::Value) -> Result<serde_json::Value>;

    /// Stored templates of a kind.
    async fn list_templates(&self, kind: TemplateKind, namespace: &str) -> Result<Vec<serde_json::Value>>;

    /// One stored template.
    async fn get_template(&self, kind: TemplateKind, namespace: &str, name: &str) -> Result<serde_json::Value>;

    /// Deletes a stored template.
    async fn delete_template(&self, kind: TemplateKind, namespace: &str, name: &str) -> Result<()>;
}

/// The kinds of stored templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    WorkflowTemplate,
    ClusterWorkflowTemplate,
    CronWorkflow,
}

impl TemplateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateKind::WorkflowTemplate => "WorkflowTemplate",
            TemplateKind::ClusterWorkflowTemplate => "ClusterWorkflowTemplate",
            TemplateKind::CronWorkflow => "CronWorkflow",
        }
    }
}
