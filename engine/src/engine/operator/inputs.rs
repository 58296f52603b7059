//! A template call's inputs: the values its parameters and artifacts take
//! from the call's arguments, and the variables its body sees.

use argon_crds::workflow::{Arguments, Inputs, Parameter, Template};
use serde_json::Value;

use super::Ctx;
use super::error::{OperatorError, Result};
use crate::expr::Vars;

/// The values of a template's inputs for this call.
pub(super) fn resolve_inputs(tmpl: &Template, args: &Arguments) -> Result<Inputs> {
    let mut inputs = Inputs::default();
    for p in &tmpl.inputs.parameters {
        let value = args
            .parameter(&p.name)
            .and_then(|a| a.value_or_default().map(str::to_string))
            .or_else(|| p.value.as_ref().map(|v| v.0.clone()))
            .or_else(|| p.default.as_ref().map(|v| v.0.clone()));
        let Some(value) = value else {
            return Err(OperatorError::ParameterMissing(p.name.clone()));
        };
        if !p.r#enum.is_empty() && !p.r#enum.iter().any(|e| e.0 == value) {
            return Err(OperatorError::ParameterNotAllowed {
                name: p.name.clone(),
                value,
                allowed: p.r#enum.iter().map(|e| e.0.as_str()).collect::<Vec<_>>().join(", "),
            });
        }
        inputs.parameters.push(Parameter {
            value: Some(value.into()),
            ..p.clone()
        });
    }
    for a in &tmpl.inputs.artifacts {
        let mut art = a.clone();
        if let Some(arg) = args.artifacts.iter().find(|x| x.name == a.name) {
            if arg.from.is_some() {
                art.from = arg.from.clone();
            }
            if !arg.location.is_empty() {
                art.location = arg.location.clone();
            }
            if arg.archive.is_some() {
                art.archive = arg.archive.clone();
            }
            if arg.sub_path.is_some() {
                art.sub_path = arg.sub_path.clone();
            }
        }
        let supplied = art.from.is_some() || !art.location.is_empty();
        if !supplied && !art.optional.unwrap_or(false) {
            return Err(OperatorError::ArtifactMissing(a.name.clone()));
        }
        inputs.artifacts.push(art);
    }
    Ok(inputs)
}

impl Ctx {
    pub(super) fn template_vars(&self, tmpl: &Template, inputs: &Inputs, node_name: &str, id: &str) -> Vars {
        let mut v = (*self.globals).clone();
        for (k, val) in self.run.global_outputs.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            v.insert(format!("workflow.outputs.parameters.{k}"), val.clone());
        }
        let mut all = serde_json::Map::new();
        for p in &inputs.parameters {
            let value = p.value_or_default().unwrap_or("").to_string();
            all.insert(p.name.clone(), Value::String(value.clone()));
            v.insert(format!("inputs.parameters.{}", p.name), value);
        }
        if !inputs.parameters.is_empty() {
            v.insert("inputs.parameters".into(), Value::Object(all).to_string());
        }
        for a in &inputs.artifacts {
            if let Some(path) = &a.path {
                v.insert(format!("inputs.artifacts.{}.path", a.name), path.clone());
            }
        }
        for p in &tmpl.outputs.parameters {
            if let Some(path) = p.value_from.as_ref().and_then(|f| f.path.as_ref()) {
                v.insert(format!("outputs.parameters.{}.path", p.name), path.clone());
            }
        }
        for a in &tmpl.outputs.artifacts {
            if let Some(path) = &a.path {
                v.insert(format!("outputs.artifacts.{}.path", a.name), path.clone());
            }
        }
        v.insert("node.name".into(), node_name.to_string());
        v.insert("pod.name".into(), id.to_string());
        v
    }
}
