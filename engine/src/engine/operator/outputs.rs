//! Template outputs: the output parameters and artifacts of a finished leaf
//! step or of a steps or DAG template, and their export as
//! `workflow.outputs.parameters.*`.

use std::path::Path;

use argon_crds::workflow::{Artifact, Outputs, Parameter, Template};

use super::error::{OperatorError, Result};
use super::{ARTIFACT_REF, Ctx};
use crate::expr::{self, Vars};

/// Where the outputs a template declares take their values.
enum Source<'a> {
    /// A finished leaf step: the files it left in its directory (output
    /// parameters' `path`; its output artifacts are saved by
    /// `Ctx::save_output`), and its result for `outputs.result` in expressions.
    Step { ctx: &'a Ctx, step_dir: &'a Path },
    /// A steps or DAG template: its steps' or tasks' variables (output
    /// parameters' `valueFrom.parameter`, output artifacts' `from`).
    Children,
}

impl Ctx {
    /// Reads output parameters and saves output artifacts of a finished step.
    pub(super) async fn collect_outputs(
        &self,
        id: &str,
        step_dir: &Path,
        tmpl: &Template,
        vars: &Vars,
        outputs: &mut Outputs,
    ) -> Result<()> {
        declared_outputs(tmpl, vars, &Source::Step { ctx: self, step_dir }, outputs)?;
        for a in &tmpl.outputs.artifacts {
            if let Some(art) = self.save_output(id, step_dir, a, vars).await? {
                outputs.artifacts.push(art);
            }
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
    declared_outputs(tmpl, vars, &Source::Children, &mut out)?;
    Ok(Some(out))
}

/// Adds the output parameters and artifacts `tmpl` declares to `outputs`,
/// each valued from `source`, then from its `expression` or `value`.
fn declared_outputs(tmpl: &Template, vars: &Vars, source: &Source, outputs: &mut Outputs) -> Result<()> {
    for p in &tmpl.outputs.parameters {
        let from = p.value_from.as_ref();
        let value = if let Some(v) = source.parameter(p, vars)? {
            v
        } else if let Some(expression) = from.and_then(|f| f.expression.as_ref()) {
            let mut v = vars.clone();
            if let Source::Step { .. } = source {
                v.insert("outputs.result".into(), outputs.result.clone().unwrap_or_default());
            }
            expr::eval_expression(expression, &v)
                .map(|x| expr::to_text(&x))
                .map_err(|source| OperatorError::OutputExpression {
                    name: p.name.clone(),
                    source,
                })?
        } else if let Some(v) = &p.value {
            expr::substitute(&v.0, vars)?
        } else if let (Source::Step { .. }, Some(d)) = (source, from.and_then(|f| f.default.as_ref())) {
            // Only a step's default stands alone; a steps or DAG template's
            // default is its parameter reference's fallback.
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
        if let Some(art) = source.artifact(a, vars)? {
            outputs.artifacts.push(art);
        }
    }
    Ok(())
}

impl Source<'_> {
    /// The value of output parameter `p` from where this source keeps it
    /// (a step's file, a child's variable); `None` when `p` names no such place.
    fn parameter(&self, p: &Parameter, vars: &Vars) -> Result<Option<String>> {
        let from = p.value_from.as_ref();
        let default = || from.and_then(|f| f.default.as_ref()).map(|d| d.0.clone());
        match self {
            Source::Step { ctx, step_dir, .. } => {
                let Some(path) = from.and_then(|f| f.path.as_ref()) else {
                    return Ok(None);
                };
                let path = expr::substitute(path, vars)?;
                let host = ctx.engine.executor.host_path(step_dir, &path);
                match std::fs::read(&host) {
                    Ok(bytes) => {
                        let mut s = String::from_utf8_lossy(&bytes).into_owned();
                        if s.ends_with('\n') {
                            s.pop();
                        }
                        Ok(Some(s))
                    }
                    Err(e) => match default() {
                        Some(d) => Ok(Some(d)),
                        None => Err(OperatorError::OutputUnreadable {
                            name: p.name.clone(),
                            path,
                            source: e,
                        }),
                    },
                }
            }
            Source::Children => {
                let Some(param) = from.and_then(|f| f.parameter.as_ref()) else {
                    return Ok(None);
                };
                let v = expr::substitute(param, vars)?;
                if !v.contains("{{") {
                    return Ok(Some(v));
                }
                match default() {
                    Some(d) => Ok(Some(d)),
                    None => Err(OperatorError::OutputNoValue {
                        name: p.name.clone(),
                        reference: param.clone(),
                    }),
                }
            }
        }
    }

    /// Output artifact `a` of a steps or DAG template: the one a child's
    /// variable names; `None` when there is none (a `from` that names no
    /// artifact). A step's artifacts are saved by `Ctx::save_output`.
    fn artifact(&self, a: &Artifact, vars: &Vars) -> Result<Option<Artifact>> {
        match self {
            Source::Step { .. } => Ok(None),
            Source::Children => {
                let Some(from) = &a.from else { return Ok(None) };
                let v = expr::substitute(from, vars)?;
                let Some(key) = v.strip_prefix(ARTIFACT_REF) else {
                    return Ok(None);
                };
                let mut art = Artifact {
                    name: a.name.clone(),
                    ..Default::default()
                };
                art.location.s3 = Some(crate::artifacts::dereference(key));
                Ok(Some(art))
            }
        }
    }
}
