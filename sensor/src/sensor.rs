//! A sensor compiled from its manifest: every filter, transform, template,
//! condition and parameter parsed once, every unsupported feature reported
//! at startup. Shared by the runner and the dry run.

use std::collections::HashMap;

use argon_crds::secret::Secrets;
use argon_crds::sensor::{
    ArgoWorkflowOperation, ArtifactLocation, Condition, EventDependency, KubernetesResourceOperation, Sensor, Trigger,
    TriggerKind, TriggerParameter, TriggerTemplate,
};
use serde_json::Value;

use crate::conditions::ResetSchedule;
use crate::filter::DependencyFilter;
use crate::params::{Events, Parameter, apply_all};
use crate::transform::Transform;
use crate::triggers::{self, Request, idempotency_key, workflow};
use crate::{Error, Result, SensorEvent};

/// A dependency with its transform and filters.
#[derive(Clone, Debug)]
pub struct CompiledDependency {
    /// The manifest entry.
    pub spec: EventDependency,
    filter: DependencyFilter,
    transform: Option<Transform>,
}

impl CompiledDependency {
    /// The event after the transform, if it passes the filters; `Ok(None)`
    /// when a filter rejects it, `Err` when a filter or transform fails on it.
    pub fn accept(&self, event: &SensorEvent) -> Result<Option<SensorEvent>> {
        let event = match &self.transform {
            Some(t) => t.apply(event)?,
            None => event.clone(),
        };
        Ok(if self.filter.matches(&event)? {
            Some(event)
        } else {
            None
        })
    }
}

/// A trigger with its condition and parameters parsed.
#[derive(Clone, Debug)]
pub struct CompiledTrigger {
    /// The trigger's name.
    pub name: String,
    /// The manifest entry.
    pub spec: Trigger,
    /// What completes it.
    pub condition: Condition,
    /// The dependencies the condition mentions.
    pub dependencies: Vec<String>,
    /// When half-met state is forgotten.
    pub resets: Vec<ResetSchedule>,
    template_params: Vec<Parameter>,
    kind: KindParams,
    /// The trigger fired when this one fails for good.
    pub dlq: Option<Box<CompiledTrigger>>,
}

/// The parameter lists of the trigger kind, compiled.
#[derive(Clone, Debug, Default)]
struct KindParams {
    resource: Vec<Parameter>,
    payload: Vec<Parameter>,
    headers: Vec<Parameter>,
}

impl KindParams {
    fn compile(template: &TriggerTemplate) -> Result<Self> {
        // Most kinds have only the parameters of what they send.
        let resource = |parameters: &[TriggerParameter]| -> Result<Self> {
            Ok(KindParams {
                resource: Parameter::compile_all(parameters)?,
                ..Default::default()
            })
        };
        Ok(match template.kind() {
            Some(TriggerKind::K8s(t)) => resource(&t.parameters)?,
            Some(TriggerKind::ArgoWorkflow(t)) => resource(&t.parameters)?,
            Some(TriggerKind::Http(t)) => KindParams {
                resource: Parameter::compile_all(&t.parameters)?,
                payload: Parameter::compile_all(&t.payload)?,
                headers: Parameter::compile_all(&t.dynamic_headers)?,
            },
            Some(TriggerKind::Nats(t)) => KindParams {
                resource: Parameter::compile_all(&t.parameters)?,
                payload: Parameter::compile_all(&t.payload)?,
                ..Default::default()
            },
            Some(TriggerKind::Slack(t)) => resource(&t.parameters)?,
            Some(TriggerKind::Email(t)) => resource(&t.parameters)?,
            _ => KindParams::default(),
        })
    }
}

/// Who is firing: what requests are labelled with.
#[derive(Clone, Debug)]
pub struct SensorIdentity {
    /// Sensor name.
    pub name: String,
    /// Sensor namespace (`default` when unset): the default namespace of created objects.
    pub namespace: String,
}

/// A whole sensor, ready to run.
#[derive(Clone, Debug)]
pub struct CompiledSensor {
    /// Name and namespace.
    pub identity: SensorIdentity,
    /// The manifest.
    pub spec: Sensor,
    /// Dependencies in manifest order.
    pub dependencies: Vec<CompiledDependency>,
    /// Triggers in manifest order.
    pub triggers: Vec<CompiledTrigger>,
    /// Where secrets are read from.
    pub secrets: Secrets,
    /// Resources of `url` sources, fetched at startup.
    url_sources: HashMap<String, Value>,
}

impl CompiledSensor {
    /// Compiles a sensor. Anything Argon cannot run (a trigger kind, a
    /// `configmap`/`git`/`s3` source, a bad filter) is an error here.
    pub fn compile(sensor: &Sensor, secrets: Secrets) -> Result<Self> {
        let name = sensor.metadata.name.clone().unwrap_or_default();
        let cfg = |m: String| Error::config(&name, m);
        let dependencies = sensor
            .spec
            .dependencies
            .iter()
            .map(|d| {
                Ok(CompiledDependency {
                    spec: d.clone(),
                    filter: DependencyFilter::compile(d).map_err(|e| cfg(format!("dependency '{}': {e}", d.name)))?,
                    transform: d
                        .transform
                        .as_ref()
                        .map(Transform::compile)
                        .transpose()
                        .map_err(|e| cfg(format!("dependency '{}': {e}", d.name)))?
                        .flatten(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let dep_names: Vec<&str> = sensor.spec.dependencies.iter().map(|d| d.name.as_str()).collect();
        let triggers = sensor
            .spec
            .triggers
            .iter()
            .map(|t| compile_trigger(t, &dep_names).map_err(|e| cfg(format!("trigger '{}': {e}", t.template.name))))
            .collect::<Result<Vec<_>>>()?;
        Ok(CompiledSensor {
            identity: SensorIdentity {
                name,
                namespace: sensor
                    .metadata
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "default".to_owned()),
            },
            spec: sensor.clone(),
            dependencies,
            triggers,
            secrets,
            url_sources: HashMap::new(),
        })
    }

    /// Fetches the resources of `url` sources (once, at startup).
    pub async fn fetch_sources(&mut self) -> Result<()> {
        let mut urls = Vec::new();
        for t in &self.triggers {
            collect_urls(t, &mut urls);
        }
        for (url, verify) in urls {
            let tls = crate::triggers::tls::client_config(
                "source",
                Some(&argon_crds::common::TLSConfig {
                    insecure_skip_verify: Some(!verify),
                    ..Default::default()
                }),
                &self.secrets,
            )?;
            let fetch_error =
                |m: String| Error::config(&self.identity.name, format!("cannot fetch trigger source {url}: {m}"));
            let resp = crate::triggers::client::HttpClient::new(tls)
                .send(
                    "GET",
                    &url,
                    &[],
                    bytes::Bytes::new(),
                    std::time::Duration::from_secs(60),
                )
                .await
                .map_err(fetch_error)?;
            if !(200..300).contains(&resp.status) {
                return Err(fetch_error(format!("status {}", resp.status)));
            }
            let text = String::from_utf8_lossy(&resp.body).into_owned();
            let value =
                parse_resource(&text).map_err(|e| Error::config(&self.identity.name, format!("source {url}: {e}")))?;
            self.url_sources.insert(url, value);
        }
        Ok(())
    }

    /// The dependency with this name.
    pub fn dependency(&self, name: &str) -> Option<&CompiledDependency> {
        self.dependencies.iter().find(|d| d.spec.name == name)
    }

    /// Names of `k8s` triggers whose resource is not a Workflow (they need a cluster).
    pub fn needs_cluster(&self) -> Vec<String> {
        self.triggers
            .iter()
            .filter(|t| {
                matches!(t.spec.template.kind(), Some(TriggerKind::K8s(k)) if k.source.as_ref()
                    .and_then(|s| self.load_source(s).ok())
                    .is_some_and(|r| !workflow::is_workflow(&r)))
            })
            .map(|t| t.name.clone())
            .collect()
    }

    /// The request `trigger` sends for `events`, and its idempotency key.
    /// With `redact`, secrets are not read and shown as placeholders.
    pub fn prepare(&self, trigger: &CompiledTrigger, events: &Events, redact: bool) -> Result<(Request, String)> {
        let key = idempotency_key(
            &self.identity.name,
            &trigger.name,
            events.values().map(|e| e.context.id.as_str()),
        );
        let name = trigger.name.as_str();
        // Parameters on the template itself first (their dests start at the kind: `http.url`).
        let applied;
        let applied_kind;
        let (template, kind) = if trigger.template_params.is_empty() {
            (&trigger.spec.template, &trigger.kind)
        } else {
            let mut value = serde_json::to_value(&trigger.spec.template).unwrap_or(Value::Null);
            apply_all(&mut value, &trigger.template_params, events)?;
            applied = serde_json::from_value::<TriggerTemplate>(value).map_err(|e| {
                Error::Parameter(format!("trigger '{name}': parameters made the template invalid: {e}"))
            })?;
            applied_kind = KindParams::compile(&applied)?;
            (&applied, &applied_kind)
        };
        let sensor = &self.identity;
        let request = match template.kind() {
            Some(TriggerKind::ArgoWorkflow(t)) => {
                let mut resource = match &t.source {
                    Some(s) => self.load_source(s)?,
                    None => Value::Null,
                };
                apply_all(&mut resource, &kind.resource, events)?;
                workflow::prepare(
                    name,
                    &sensor.name,
                    &sensor.namespace,
                    t.operation.unwrap_or_default(),
                    resource,
                    redact,
                )?
            }
            Some(TriggerKind::K8s(t)) => {
                let source = t
                    .source
                    .as_ref()
                    .ok_or_else(|| Error::permanent(name, "k8s trigger without a source"))?;
                let mut resource = self.load_source(source)?;
                apply_all(&mut resource, &kind.resource, events)?;
                let op = t.operation.unwrap_or_default();
                if workflow::is_workflow(&resource) && op == KubernetesResourceOperation::Create {
                    workflow::prepare(
                        name,
                        &sensor.name,
                        &sensor.namespace,
                        ArgoWorkflowOperation::Submit,
                        resource,
                        redact,
                    )?
                } else {
                    triggers::k8s::prepare(
                        name,
                        &sensor.name,
                        &sensor.namespace,
                        op,
                        t.patch_strategy.as_deref(),
                        resource,
                        &key,
                    )?
                }
            }
            Some(TriggerKind::Http(t)) => {
                let mut config = t.clone();
                if !kind.resource.is_empty() {
                    let mut value = serde_json::to_value(&config).unwrap_or(Value::Null);
                    apply_all(&mut value, &kind.resource, events)?;
                    config =
                        serde_json::from_value(value).map_err(|e| Error::Parameter(format!("http parameters: {e}")))?;
                }
                triggers::http::prepare(
                    name,
                    &config,
                    &kind.payload,
                    &kind.headers,
                    trigger.spec.policy(),
                    events,
                    &self.secrets,
                    &key,
                    redact,
                )?
            }
            Some(TriggerKind::Log(_)) => triggers::log::prepare(events),
            Some(TriggerKind::Nats(t)) => {
                let mut config = t.clone();
                if !kind.resource.is_empty() {
                    let mut value = serde_json::to_value(&config).unwrap_or(Value::Null);
                    apply_all(&mut value, &kind.resource, events)?;
                    config =
                        serde_json::from_value(value).map_err(|e| Error::Parameter(format!("nats parameters: {e}")))?;
                }
                triggers::nats::prepare(&config, &kind.payload, events)?
            }
            Some(TriggerKind::Slack(t)) => {
                let config = apply_to_config(t, &kind.resource, events, "slack")?;
                triggers::slack::prepare(name, &config, &self.secrets, redact)?
            }
            Some(TriggerKind::Email(t)) => {
                let config = apply_to_config(t, &kind.resource, events, "email")?;
                triggers::email::prepare(name, &config, &self.secrets, redact)?
            }
            Some(other) => {
                return Err(Error::permanent(
                    name,
                    format!("trigger kind {} is not supported yet", other.name()),
                ));
            }
            None => return Err(Error::permanent(name, "the trigger template sets no trigger kind")),
        };
        Ok((request, key))
    }

    /// The resource a source names.
    fn load_source(&self, source: &ArtifactLocation) -> Result<Value> {
        if let Some(r) = &source.resource {
            return Ok(r.clone());
        }
        if let Some(inline) = &source.inline {
            return parse_resource(inline).map_err(|e| Error::Parameter(format!("inline source: {e}")));
        }
        if let Some(path) = source.file.as_ref().and_then(|f| f.path.as_deref()) {
            let text =
                std::fs::read_to_string(path).map_err(|e| Error::Parameter(format!("file source {path}: {e}")))?;
            return parse_resource(&text).map_err(|e| Error::Parameter(format!("file source {path}: {e}")));
        }
        if let Some(url) = &source.url {
            return self
                .url_sources
                .get(&url.path)
                .cloned()
                .ok_or_else(|| Error::Parameter(format!("url source {} was not fetched", url.path)));
        }
        Err(Error::Parameter("the trigger has no source".to_owned()))
    }
}

/// A trigger kind's config with its own `parameters` applied.
fn apply_to_config<T>(config: &T, params: &[Parameter], events: &Events, kind: &str) -> Result<T>
where
    T: Clone + serde::Serialize + serde::de::DeserializeOwned,
{
    if params.is_empty() {
        return Ok(config.clone());
    }
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    apply_all(&mut value, params, events)?;
    serde_json::from_value(value).map_err(|e| Error::Parameter(format!("{kind} parameters: {e}")))
}

fn collect_urls(t: &CompiledTrigger, out: &mut Vec<(String, bool)>) {
    let source = match t.spec.template.kind() {
        Some(TriggerKind::K8s(k)) => k.source.as_ref(),
        Some(TriggerKind::ArgoWorkflow(w)) => w.source.as_ref(),
        _ => None,
    };
    if let Some(url) = source.and_then(|s| s.url.as_ref()) {
        out.push((url.path.clone(), url.verify_cert.unwrap_or(true)));
    }
    if let Some(dlq) = &t.dlq {
        collect_urls(dlq, out);
    }
}

/// A YAML or JSON document as JSON.
fn parse_resource(text: &str) -> std::result::Result<Value, String> {
    serde_norway::from_str::<Value>(text).map_err(|e| format!("not YAML or JSON: {e}"))
}

/// Compiles one trigger; the error says what is wrong in it.
fn compile_trigger(t: &Trigger, deps: &[&str]) -> std::result::Result<CompiledTrigger, String> {
    let name = t.template.name.clone();
    let condition = t
        .template
        .condition(deps.iter().copied())
        .map_err(|e| format!("conditions: {e}"))?;
    let dependencies: Vec<String> = condition.names().into_iter().map(str::to_owned).collect();
    for d in &dependencies {
        if !deps.contains(&d.as_str()) {
            return Err(format!("condition names unknown dependency '{d}'"));
        }
    }
    match t.template.kind() {
        None => return Err("no trigger kind set".to_owned()),
        Some(TriggerKind::ArgoWorkflow(w)) => {
            if w.operation == Some(ArgoWorkflowOperation::SubmitFrom) {
                return Err("argoWorkflow operation submit-from is not supported yet".to_owned());
            }
            check_source(
                w.source.as_ref(),
                w.operation.unwrap_or_default() == ArgoWorkflowOperation::Submit,
            )?;
            if w.operation.unwrap_or_default() == ArgoWorkflowOperation::Submit {
                check_workflow_source(w.source.as_ref())?;
            }
        }
        Some(TriggerKind::K8s(k)) => {
            check_source(k.source.as_ref(), true)?;
            check_workflow_source(k.source.as_ref())?;
        }
        Some(
            TriggerKind::Http(_)
            | TriggerKind::Log(_)
            | TriggerKind::Nats(_)
            | TriggerKind::Slack(_)
            | TriggerKind::Email(_),
        ) => {}
        Some(other) => {
            return Err(format!(
                "trigger kind '{}' is not supported yet (Argon runs argoWorkflow, k8s, http, log, nats, slack and \
                 email; kafka needs a broker Argon cannot test against yet)",
                other.name()
            ));
        }
    }
    let resets = t
        .template
        .conditions_reset
        .iter()
        .filter_map(|r| r.by_time.as_ref())
        .map(ResetSchedule::parse)
        .filter_map(Result::transpose)
        .collect::<Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    let dlq = t
        .dlq_trigger
        .as_deref()
        .map(|d| {
            compile_trigger(d, deps)
                .map(Box::new)
                .map_err(|e| format!("dlqTrigger '{}': {e}", d.template.name))
        })
        .transpose()?;
    Ok(CompiledTrigger {
        name,
        spec: t.clone(),
        condition,
        dependencies,
        resets,
        template_params: Parameter::compile_all(&t.parameters).map_err(|e| e.to_string())?,
        kind: KindParams::compile(&t.template).map_err(|e| e.to_string())?,
        dlq,
    })
}

/// A Workflow written in the manifest (resource or inline) is decoded
/// strictly at startup, so that a misspelled field stops the sensor with its
/// path instead of failing each firing.
fn check_workflow_source(source: Option<&ArtifactLocation>) -> std::result::Result<(), String> {
    let Some(s) = source else { return Ok(()) };
    let value = match (&s.resource, &s.inline) {
        (Some(r), _) => r.clone(),
        (None, Some(inline)) => parse_resource(inline).map_err(|e| format!("inline source: {e}"))?,
        _ => return Ok(()),
    };
    if workflow::is_workflow(&value) {
        workflow::decode("source", &value).map_err(|e| match e {
            Error::Trigger { message, .. } => format!("the source workflow: {message}"),
            other => other.to_string(),
        })?;
    }
    Ok(())
}

fn check_source(source: Option<&ArtifactLocation>, required: bool) -> std::result::Result<(), String> {
    let Some(s) = source else {
        return if required {
            Err("the trigger has no source".to_owned())
        } else {
            Ok(())
        };
    };
    let unsupported = [
        ("configmap", s.configmap.is_some()),
        ("git", s.git.is_some()),
        ("s3", s.s3.is_some()),
    ];
    let located = s.inline.is_some() || s.resource.is_some() || s.file.is_some() || s.url.is_some();
    if let Some((kind, _)) = unsupported.iter().find(|(_, set)| *set)
        && !located
    {
        return Err(format!(
            "trigger source '{kind}' is not supported yet; use resource, inline, file or url"
        ));
    }
    if s.inline.is_none() && s.resource.is_none() && s.file.is_none() && s.url.is_none() {
        return Err("the trigger source sets none of resource, inline, file, url".to_owned());
    }
    Ok(())
}
