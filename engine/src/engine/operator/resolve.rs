//! Template resolution: the template a step, task or hook calls, from the
//! workflow's spec or a WorkflowTemplate, with `templateDefaults` applied.

use std::sync::Arc;

use argon_crds::workflow::{Template, TemplateKind, TemplateRef};
use serde_json::Value;

use super::error::{OperatorError, Result};
use super::{Ctx, Resolved, Scope};

impl Ctx {
    /// Finds the template a step, task or hook calls.
    pub(super) async fn resolve(
        &self,
        scope: &Scope,
        template: Option<&str>,
        template_ref: Option<&TemplateRef>,
        inline: Option<&Template>,
    ) -> Result<Resolved> {
        let mut resolved = self.resolve_plain(scope, template, template_ref, inline).await?;
        if let Some(defaults) = &self.spec.template_defaults {
            resolved.tmpl = Arc::new(with_defaults(&resolved.tmpl, defaults)?);
        }
        Ok(resolved)
    }

    async fn resolve_plain(
        &self,
        scope: &Scope,
        template: Option<&str>,
        template_ref: Option<&TemplateRef>,
        inline: Option<&Template>,
    ) -> Result<Resolved> {
        if let Some(t) = inline {
            return Ok(Resolved {
                tmpl: Arc::new(t.clone()),
                scope: scope.clone(),
                template_ref: None,
            });
        }
        if let Some(r) = template_ref {
            let key = (r.name.clone(), r.cluster_scope);
            let cached = self
                .run
                .refs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned();
            let spec = match cached {
                Some(s) => s,
                None => {
                    let spec = self.engine.resolve_ref(&self.run.namespace, r).map_err(|source| {
                        OperatorError::TemplateRef {
                            name: r.name.clone(),
                            template: r.template.clone(),
                            source,
                        }
                    })?;
                    let spec = Arc::new(spec);
                    self.run
                        .refs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, spec.clone());
                    spec
                }
            };
            let tmpl = spec
                .template(&r.template)
                .cloned()
                .ok_or_else(|| OperatorError::TemplateNotInRef {
                    name: r.name.clone(),
                    template: r.template.clone(),
                })?;
            return Ok(Resolved {
                tmpl: Arc::new(tmpl),
                scope: Scope { spec },
                template_ref: Some(r.clone()),
            });
        }
        let name = template.unwrap_or("");
        let tmpl = scope
            .spec
            .template(name)
            .cloned()
            .ok_or_else(|| OperatorError::TemplateNotFound(name.to_string()))?;
        Ok(Resolved {
            tmpl: Arc::new(tmpl),
            scope: scope.clone(),
            template_ref: None,
        })
    }
}

/// `templateDefaults` under a template: the template's own fields win; the
/// defaults' kind fields (container, script...) apply only to a template of
/// that kind.
fn with_defaults(tmpl: &Template, defaults: &Template) -> Result<Template> {
    fn merge(base: &mut Value, over: &Value) {
        match (base, over) {
            (Value::Object(b), Value::Object(o)) => {
                for (k, v) in o {
                    match b.get_mut(k) {
                        Some(existing) => merge(existing, v),
                        None => {
                            b.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (b, o) => *b = o.clone(),
        }
    }
    let mut base = serde_json::to_value(defaults).map_err(OperatorError::Serialize)?;
    if let Value::Object(m) = &mut base {
        let own: Vec<&str> = tmpl.kinds().iter().map(|k| k.field()).collect();
        for k in TemplateKind::ALL {
            if !own.contains(&k.field()) {
                m.remove(k.field());
            }
        }
        m.remove("name");
    }
    merge(
        &mut base,
        &serde_json::to_value(tmpl).map_err(OperatorError::Serialize)?,
    );
    serde_json::from_value(base).map_err(OperatorError::TemplateDefaults)
}
