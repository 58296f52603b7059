//! Template outputs: the output parameters and artifacts of a finished leaf
//! step or of a steps or DAG template, and their export as
//! `workflow.outputs.parameters.*`.

use argon_crds::workflow::{Artifact, Outputs, Parameter, S3Artifact, Template};

use super::error::{OperatorError, Result};
use super::{ARTIFACT_REF, Ctx};
use crate::expr::{self, Vars};

impl Ctx {
    /// Reads output parameters and saves output artifacts of a finished step.
    pub(super) fn collect_outputs(
        &self,
        id: &str,
        step_dir: &std::path::Path,
        tmpl: &Template,
        vars: &Vars,
        outputs: &mut Outputs,
    ) -> Result<()> {
        let engine = &self.engine;
        for p in &tmpl.outputs.parameters {
            let from = p.value_from.as_ref();
            let value = if let Some(path) = from.and_then(|f| f.path.as_ref()) {
                let path = expr::substitute(path, vars)?;
                let host = engine.executor.host_path(step_dir, &path);
                match std::fs::read(&host) {
                    Ok(bytes) => {
                        let mut s = String::from_utf8_lossy(&bytes).into_owned();
                        if s.ends_with('\n') {
                            s.pop();
                        }
                        s
                    }
                    Err(e) => match from.and_then(|f| f.default.as_ref()) {
                        Some(d) => d.0.clone(),
                        None => {
                            return Err(OperatorError::OutputUnreadable {
                                name: p.name.clone(),
                                path,
                                source: e,
                            });
                        }
                    },
                }
            } else if let Some(expression) = from.and_then(|f| f.expression.as_ref()) {
                let mut v = vars.clone();
                v.insert("outputs.result".into(), outputs.result.clone().unwrap_or_default());
                expr::eval_expression(expression, &v)
                    .map(|x| expr::to_text(&x))
                    .map_err(|source| OperatorError::OutputExpression {
                        name: p.name.clone(),
                        source,
                    })?
            } else if let Some(v) = &p.value {
                expr::substitute(&v.0, vars)?
            } else if let Some(d) = from.and_then(|f| f.default.as_ref()) {
                d.0.clone()
            } else {
                continue;
            };
            outputs.parameters.push(Parameter {
                name: p.name.clone(),
                value: Some(value.into()),
                global_name: p.global_name.clone(),
                ..Default::default()
            });
        }
        for a in &tmpl.outputs.artifacts {
            let Some(path) = &a.path else { continue };
            let path = expr::substitute(path, vars)?;
            let host = engine.executor.host_path(step_dir, &path);
            if !host.exists() {
                if a.optional.unwrap_or(false) {
                    continue;
                }
                return Err(OperatorError::OutputArtifactMissing {
                    name: a.name.clone(),
                    path,
                });
            }
            let key = format!("{}/{id}/{}", self.run.uid, a.name);
            let stored =
                engine
                    .repo
                    .save(&key, &host, a.archive.as_ref())
                    .map_err(|e| OperatorError::OutputArtifact {
                        name: a.name.clone(),
                        source: Box::new(OperatorError::Artifact(e)),
                    })?;
            let mut out = Artifact {
                name: a.name.clone(),
                path: Some(path),
                global_name: a.global_name.clone(),
                archive: a.archive.clone(),
                ..Default::default()
            };
            // The local repository's keys, in the shape the S3 repository will use.
            out.location.s3 = Some(S3Artifact {
                key: Some(stored),
                ..Default::default()
            });
            outputs.artifacts.push(out);
        }
        Ok(())
    }

    /// Output parameters with a `globalName` become `workflow.outputs.parameters.*`.
    pub(super) fn export_globals(&self, tmpl: &Template, outputs: &Outputs) {
        for decl in &tmpl.outputs.parameters {
            let Some(global) = &decl.global_name else { continue };
            let Some(p) = outputs.parameters.iter().find(|p| p.name == decl.name) else {
                continue;
            };
            let value = p.value_or_default().unwrap_or("").to_string();
            let mut g = self.run.global_outputs.lock().unwrap_or_else(|e| e.into_inner());
            g.retain(|(k, _)| k != global);
            g.push((global.clone(), value));
        }
    }
}

/// The outputs of a steps or DAG template, from its steps' or tasks' variables.
pub(super) fn template_outputs(tmpl: &Template, vars: &Vars) -> Result<Option<Outputs>> {
    if tmpl.outputs.parameters.is_empty() && tmpl.outputs.artifacts.is_empty() {
        return Ok(None);
    }
    let mut out = Outputs::default();
    for p in &tmpl.outputs.parameters {
        let from = p.value_from.as_ref();
        let value = if let Some(param) = from.and_then(|f| f.parameter.as_ref()) {
            let v = expr::substitute(param, vars)?;
            if v.contains("{{") {
                match from.and_then(|f| f.default.as_ref()) {
                    Some(d) => d.0.clone(),
                    None => {
                        return Err(OperatorError::OutputNoValue {
                            name: p.name.clone(),
                            reference: param.clone(),
                        });
                    }
                }
            } else {
                v
            }
        } else if let Some(e) = from.and_then(|f| f.expression.as_ref()) {
            expr::to_text(
                &expr::eval_expression(e, vars).map_err(|source| OperatorError::OutputExpression {
                    name: p.name.clone(),
                    source,
                })?,
            )
        } else if let Some(v) = &p.value {
            expr::substitute(&v.0, vars)?
        } else {
            continue;
        };
        out.parameters.push(Parameter {
            name: p.name.clone(),
            value: Some(value.into()),
            global_name: p.global_name.clone(),
            ..Default::default()
        });
    }
    for a in &tmpl.outputs.artifacts {
        if let Some(from) = &a.from {
            let v = expr::substitute(from, vars)?;
            if let Some(key) = v.strip_prefix(ARTIFACT_REF) {
                let mut art = Artifact {
                    name: a.name.clone(),
                    ..Default::default()
                };
                art.location.s3 = Some(S3Artifact {
                    key: Some(key.to_string()),
                    ..Default::default()
                });
                out.artifacts.push(art);
            }
        }
    }
    Ok(Some(out))
}
