//! What `argon server`'s API and its HTTP client say to each other beyond
//! the Workflow manifests themselves.

use argon_crds::workflow::Workflow;
use serde::{Deserialize, Serialize};

/// The body of a create request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    pub workflow: Workflow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_options: Option<SubmitOpts>,
}

/// Submission options of a create request.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitOpts {
    /// `NAME=VALUE` overrides of workflow parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
    /// Labels, `k=v,k2=v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Makes the submission idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// The header saying whether a create made a new workflow (`false` for a repeated idempotency key).
pub const CREATED_HEADER: &str = "x-argon-created";

/// The label holding the WorkflowTemplate a workflow was submitted from.
pub const WORKFLOW_TEMPLATE_LABEL: &str = "workflows.argoproj.io/workflow-template";

/// The label selector for the runs of a WorkflowTemplate.
pub fn template_selector(name: &str) -> String {
    format!("{WORKFLOW_TEMPLATE_LABEL}={name}")
}
