//! Stored templates: WorkflowTemplates, ClusterWorkflowTemplates and
//! CronWorkflows, checked like workflows before they are kept.

use super::*;

impl Engine {
    /// Stores a WorkflowTemplate (replacing one of the same name) after validating it.
    pub fn put_workflow_template(&self, namespace: &str, mut t: WorkflowTemplate) -> Result<WorkflowTemplate> {
        let namespace = t
            .metadata
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.namespace_or_default(namespace));
        let name = t
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::Invalid("metadata.name: a WorkflowTemplate needs a name".into()))?;
        check_names(&namespace, &t.metadata)?;
        let resolver = |r: &TemplateRef| r.name == name || self.resolve_ref(&namespace, r).is_ok();
        check(validate::validate_workflow_template(&t, &resolver))?;
        t.metadata.namespace = Some(namespace.clone());
        t.metadata.creation_timestamp.get_or_insert_with(crate::time::now);
        self.store.put_template(
            TemplateKind::WorkflowTemplate,
            &namespace,
            &name,
            &serde_json::to_value(&t)?,
        )?;
        Ok(t)
    }

    /// Stores a ClusterWorkflowTemplate.
    pub fn put_cluster_workflow_template(&self, mut t: ClusterWorkflowTemplate) -> Result<ClusterWorkflowTemplate> {
        let name = t
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::Invalid("metadata.name: a ClusterWorkflowTemplate needs a name".into()))?;
        check_names("", &t.metadata)?;
        let resolver = |r: &TemplateRef| r.name == name || self.resolve_ref("", r).is_ok();
        check(validate::validate_cluster_workflow_template(&t, &resolver))?;
        t.metadata.creation_timestamp.get_or_insert_with(crate::time::now);
        self.store.put_template(
            TemplateKind::ClusterWorkflowTemplate,
            "",
            &name,
            &serde_json::to_value(&t)?,
        )?;
        Ok(t)
    }

    /// Stores a CronWorkflow; it is scheduled from the next tick on.
    pub fn put_cron_workflow(&self, namespace: &str, mut c: CronWorkflow) -> Result<CronWorkflow> {
        let namespace = c
            .metadata
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.namespace_or_default(namespace));
        let name = c
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::Invalid("metadata.name: a CronWorkflow needs a name".into()))?;
        check_names(&namespace, &c.metadata)?;
        let resolver = |r: &TemplateRef| self.resolve_ref(&namespace, r).is_ok();
        check(validate::validate_cron_workflow(&c, &resolver))?;
        c.metadata.namespace = Some(namespace.clone());
        c.metadata.creation_timestamp.get_or_insert_with(crate::time::now);
        let existing = self.store.template(TemplateKind::CronWorkflow, &namespace, &name)?;
        if c.status.is_none()
            && let Some(old) = existing
            && let Ok(old) = serde_json::from_value::<CronWorkflow>(old)
        {
            c.status = old.status;
        }
        self.store.put_template(
            TemplateKind::CronWorkflow,
            &namespace,
            &name,
            &serde_json::to_value(&c)?,
        )?;
        Ok(c)
    }

    /// Suspends (or resumes) a CronWorkflow: no run is scheduled while it is
    /// suspended, and a run that came due meanwhile starts on resume only within the
    /// tick's slack or `startingDeadlineSeconds`, as a late tick does.
    pub fn suspend_cron_workflow(&self, namespace: &str, name: &str, suspend: bool) -> Result<CronWorkflow> {
        let doc = self.template(TemplateKind::CronWorkflow, namespace, name)?;
        let mut c: CronWorkflow = serde_json::from_value(doc)?;
        let namespace = c.metadata.namespace.clone().unwrap_or_default();
        c.spec.suspend = Some(suspend);
        self.store
            .put_template(TemplateKind::CronWorkflow, &namespace, name, &serde_json::to_value(&c)?)?;
        Ok(c)
    }

    /// Stored template documents of a kind (all namespaces when `namespace` is empty).
    pub fn templates(&self, kind: TemplateKind, namespace: &str) -> Result<Vec<serde_json::Value>> {
        self.store.templates(kind, namespace)
    }

    /// One stored template document.
    pub fn template(&self, kind: TemplateKind, namespace: &str, name: &str) -> Result<serde_json::Value> {
        let ns = if kind == TemplateKind::ClusterWorkflowTemplate {
            ""
        } else {
            namespace
        };
        let ns = if ns.is_empty() && kind != TemplateKind::ClusterWorkflowTemplate {
            self.config.default_namespace.clone()
        } else {
            ns.to_string()
        };
        self.store.template(kind, &ns, name)?.ok_or_else(|| Error::NotFound {
            kind: kind.as_str(),
            namespace: ns,
            name: name.to_string(),
        })
    }

    /// Deletes a stored template.
    pub fn delete_template(&self, kind: TemplateKind, namespace: &str, name: &str) -> Result<()> {
        let ns = if kind == TemplateKind::ClusterWorkflowTemplate {
            String::new()
        } else {
            self.namespace_or_default(namespace)
        };
        if self.store.delete_template(kind, &ns, name)? {
            Ok(())
        } else {
            Err(Error::NotFound {
                kind: kind.as_str(),
                namespace: ns,
                name: name.to_string(),
            })
        }
    }
}
