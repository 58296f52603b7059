//! The client API of the engine: what the sensor (its workflow triggers) and
//! the CLI use, implemented in process by the engine itself and over HTTP
//! against `argon server`.

use std::collections::BTreeMap;

use argon_crds::workflow::Workflow;

use crate::Result;

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
