//! The engine as its own client: [`WorkflowClient`] and [`WorkflowAdmin`]
//! in process, for the sensor of `argon run` and for tests.

use super::*;

#[async_trait::async_trait]
impl WorkflowClient for Engine {
    async fn submit(&self, namespace: &str, workflow: Workflow, options: SubmitOptions) -> Result<Submitted> {
        self.submit_workflow(namespace, workflow, options)
    }

    async fn act(&self, namespace: &str, name: &str, action: WorkflowAction) -> Result<Workflow> {
        self.act_on(namespace, name, action).await
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<Workflow> {
        self.get_workflow(namespace, name)
    }
}

#[async_trait::async_trait]
impl WorkflowAdmin for Engine {
    async fn list(&self, namespace: &str, options: &ListOptions) -> Result<WorkflowPage> {
        self.list_page(namespace, options)
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<()> {
        self.delete_workflow(namespace, name)
    }

    async fn logs(&self, namespace: &str, name: &str, after: i64) -> Result<Vec<argon_client::LogEntry>> {
        let lines = match Engine::logs(self, namespace, name, after) {
            Ok((_, lines)) => lines,
            // Gone from the live table (deleted, or by its ttlStrategy): the
            // archive's copy, with the logs its steps archived.
            Err(e @ Error::NotFound { kind: "workflow", .. }) => {
                return match self.archived_logs(namespace, name, after).await {
                    Err(Error::NotFound { .. }) => Err(e),
                    other => other,
                };
            }
            Err(e) => return Err(e),
        };
        Ok(lines
            .into_iter()
            .map(|(l, step)| argon_client::LogEntry {
                seq: l.seq,
                step,
                stream: l.stream,
                time: l.time,
                line: l.line,
            })
            .collect())
    }

    async fn put_template(&self, namespace: &str, manifest: serde_json::Value) -> Result<serde_json::Value> {
        let kind = manifest.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_string();
        match kind.as_str() {
            "WorkflowTemplate" => Ok(serde_json::to_value(
                self.put_workflow_template(namespace, serde_json::from_value(manifest).map_err(invalid)?)?,
            )?),
            "ClusterWorkflowTemplate" => Ok(serde_json::to_value(
                self.put_cluster_workflow_template(serde_json::from_value(manifest).map_err(invalid)?)?,
            )?),
            "CronWorkflow" => Ok(serde_json::to_value(
                self.put_cron_workflow(namespace, serde_json::from_value(manifest).map_err(invalid)?)?,
            )?),
            other => Err(Error::Invalid(format!(
                "kind '{other}' is not a template: expected WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow"
            ))),
        }
    }

    async fn list_templates(&self, kind: TemplateKind, namespace: &str) -> Result<Vec<serde_json::Value>> {
        self.templates(kind, namespace)
    }

    async fn get_template(&self, kind: TemplateKind, namespace: &str, name: &str) -> Result<serde_json::Value> {
        self.template(kind, namespace, name)
    }

    async fn delete_template(&self, kind: TemplateKind, namespace: &str, name: &str) -> Result<()> {
        Engine::delete_template(self, kind, namespace, name)
    }
}
