//! The `Sensor` kind (`argoproj.io/v1alpha1`): which events a sensor waits for
//! (dependencies and their filters), and what it does once they arrive
//! (triggers, their parameters, retry, rate limit and DLQ).
//!
//! The types here are plain manifest data; the runtime in `argon-sensor`
//! reads them. [`conditions`] parses trigger condition expressions and
//! [`validate()`] reports what is wrong with a manifest beyond its shape.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::common::{Backoff, Status, Template};

pub mod conditions;
mod triggers;
mod validate;

#[cfg(test)]
mod tests;

pub use conditions::{Condition, ConditionError};
pub use triggers::*;
pub use validate::validate;

/// What a Sensor waits for and what it does when its dependencies are met.
#[serde_with::skip_serializing_none]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Sensor",
    namespaced,
    status = "SensorStatus",
    shortname = "sn",
    doc = "A Sensor: the events it waits for (dependencies) and the actions it takes when they arrive (triggers)."
)]
#[serde(rename_all = "camelCase")]
pub struct SensorSpec {
    /// The events this sensor waits for, each from one EventSource event.
    pub dependencies: Vec<EventDependency>,
    /// The actions this sensor takes when its dependencies are met.
    pub triggers: Vec<Trigger>,
    /// Pod settings used when the sensor is deployed on Kubernetes.
    pub template: Option<Template>,
    /// When true, a failed trigger round puts the sensor in an error state and stops further triggers.
    pub error_on_failed_round: Option<bool>,
    /// The EventBus to read events from; "default" when unset.
    pub event_bus_name: Option<String>,
    /// Number of sensor replicas (Kubernetes deployment); 1 when unset.
    pub replicas: Option<i32>,
    /// How many old deployment revisions to keep (Kubernetes deployment).
    pub revision_history_limit: Option<i32>,
    /// Extra key-value pairs added to every log line of this sensor.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub logging_fields: BTreeMap<String, String>,
}

impl SensorSpec {
    /// The EventBus this sensor reads from (`default` when unset or empty).
    pub fn event_bus(&self) -> &str {
        match self.event_bus_name.as_deref() {
            Some(name) if !name.is_empty() => name,
            _ => "default",
        }
    }

    /// The dependency with this name.
    pub fn dependency(&self, name: &str) -> Option<&EventDependency> {
        self.dependencies.iter().find(|d| d.name == name)
    }
}

/// The observed state of a Sensor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SensorStatus {
    /// Conditions of the sensor (DependenciesProvided, TriggersProvided, Deployed).
    #[serde(flatten)]
    pub status: Status,
}

/// One event the sensor waits for.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDependency {
    /// Unique name of this dependency, used in trigger conditions and parameters.
    pub name: String,
    /// Name of the EventSource the event comes from.
    pub event_source_name: String,
    /// Name of the event within that EventSource.
    pub event_name: String,
    /// Filters an event must pass to satisfy this dependency.
    pub filters: Option<EventDependencyFilter>,
    /// Transformation applied to the event before filters and triggers see it.
    pub transform: Option<EventDependencyTransformer>,
    /// How the filter groups (time, context, data, exprs, script) combine: and (default) or or.
    pub filters_logical_operator: Option<LogicalOperator>,
}

/// A transformation of the event, by jq or by a Lua script.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDependencyTransformer {
    /// jq program applied to the event data.
    pub jq: Option<String>,
    /// Lua script applied to the event data.
    pub script: Option<String>,
}

/// How several filters combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LogicalOperator {
    /// Every filter must pass (also what an empty value means).
    #[default]
    #[serde(rename = "and", alias = "")]
    And,
    /// At least one filter must pass.
    #[serde(rename = "or")]
    Or,
}

/// The filters an event must pass to satisfy a dependency.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDependencyFilter {
    /// Only events whose time of day falls in this window pass.
    pub time: Option<TimeFilter>,
    /// Only events whose context matches every field set here pass.
    pub context: Option<EventContext>,
    /// Comparisons of values in the event data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataFilter>,
    /// Boolean expressions over named values of the event data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exprs: Vec<ExprFilter>,
    /// How the data filters combine: and (default) or or.
    pub data_logical_operator: Option<LogicalOperator>,
    /// How the expression filters combine: and (default) or or.
    pub expr_logical_operator: Option<LogicalOperator>,
    /// Lua script returning whether the event passes.
    pub script: Option<String>,
}

/// A boolean expression over values taken from the event data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExprFilter {
    /// The expression, e.g. `a == "b" && c > 10`.
    pub expr: String,
    /// The names the expression uses, each bound to a path in the event data.
    pub fields: Vec<PayloadField>,
}

/// A name bound to the value at a path of the event data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayloadField {
    /// GJSON path of the value in the event data, e.g. `body.commits.0.id`.
    pub path: String,
    /// Name the expression uses for that value.
    pub name: String,
}

/// A daily time window; events outside it are ignored.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeFilter {
    /// Start of the window, `HH:MM:SS`, in `timezone` (UTC when unset).
    pub start: String,
    /// End of the window, `HH:MM:SS`; before `start` means the next day.
    pub stop: String,
    /// IANA time zone of `start` and `stop`, e.g. `America/New_York`; UTC when unset.
    pub timezone: Option<String>,
}

/// CloudEvents context attributes; as a filter, each field set must match.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventContext {
    /// Event id.
    pub id: Option<String>,
    /// Event source: the EventSource name.
    pub source: Option<String>,
    /// CloudEvents spec version, "1.0".
    pub specversion: Option<String>,
    /// Event type: the EventSource kind, e.g. "webhook".
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    /// Media type of the event data, e.g. "application/json".
    pub datacontenttype: Option<String>,
    /// Event subject: the event name within the EventSource.
    pub subject: Option<String>,
    /// Time of the event, RFC 3339.
    pub time: Option<String>,
}

/// The JSON type a data filter compares as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonType {
    /// Values parsed as booleans.
    Bool,
    /// Values parsed as numbers.
    Number,
    /// Values taken as regular expressions.
    String,
}

impl JsonType {
    /// The spellings a manifest may use.
    pub const NAMES: [&'static str; 3] = ["bool", "number", "string"];

    /// Parses `bool`, `number` or `string`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bool" => Some(JsonType::Bool),
            "number" => Some(JsonType::Number),
            "string" => Some(JsonType::String),
            _ => None,
        }
    }
}

/// How a data filter compares the event value with the filter values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparator {
    /// `=` (also what an empty comparator means).
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl Comparator {
    /// The spellings a manifest may use (besides the empty string, meaning `=`).
    pub const NAMES: [&'static str; 6] = ["=", "!=", "<", "<=", ">", ">="];

    /// Parses a comparator; the empty string is `=`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "=" => Some(Comparator::Equal),
            "!=" => Some(Comparator::NotEqual),
            "<" => Some(Comparator::Less),
            "<=" => Some(Comparator::LessOrEqual),
            ">" => Some(Comparator::Greater),
            ">=" => Some(Comparator::GreaterOrEqual),
            _ => None,
        }
    }
}

/// A comparison of a value of the event data with given values.
///
/// `type` and `comparator` are kept as written so that validation can name a
/// wrong one precisely; [`DataFilter::json_type`] and
/// [`DataFilter::comparator`] give the typed view.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataFilter {
    /// GJSON path of the value in the event data, e.g. `body.action`.
    pub path: String,
    /// How the values compare: bool, number or string (strings are regular expressions).
    #[serde(rename = "type")]
    pub type_: String,
    /// The values to compare with; the filter passes when any of them matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value: Vec<String>,
    /// Comparison: =, !=, <, <=, > or >=; empty means =.
    pub comparator: Option<String>,
    /// Go template applied to the value before comparing, e.g. `{{ b64dec .Input }}`.
    pub template: Option<String>,
}

impl DataFilter {
    /// The typed `type`, `None` when it is not one Argon knows.
    pub fn json_type(&self) -> Option<JsonType> {
        JsonType::parse(&self.type_)
    }

    /// The typed `comparator` (`=` when unset), `None` when it is not one Argon knows.
    pub fn comparator(&self) -> Option<Comparator> {
        Comparator::parse(self.comparator.as_deref().unwrap_or(""))
    }
}

/// One action of the sensor, with its parameters and execution policy.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// What the trigger does: its name, conditions and kind.
    pub template: TriggerTemplate,
    /// Parameters applied to the trigger template itself (dest paths start at the kind, e.g. `http.url`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TriggerParameter>,
    /// How to decide whether the trigger succeeded.
    pub policy: Option<TriggerPolicy>,
    /// Retries of a failed trigger; no retry when unset.
    pub retry_strategy: Option<Backoff>,
    /// Limit on how often the trigger fires.
    pub rate_limit: Option<RateLimit>,
    /// When true, an event is acknowledged only after the trigger succeeded (at-least-once).
    pub at_least_once: Option<bool>,
    /// Trigger fired with the same events when this one fails after its retries (needs atLeastOnce).
    #[serde(default)]
    #[schemars(schema_with = "dlq_trigger_schema")]
    pub dlq_trigger: Option<Box<Trigger>>,
}

impl Trigger {
    /// Whether the trigger runs at-least-once: `atLeastOnce` of the trigger,
    /// else the one misplaced in its template, else false.
    pub fn at_least_once(&self) -> bool {
        self.at_least_once.or(self.template.at_least_once).unwrap_or(false)
    }

    /// The success policy: `policy` of the trigger, else the one misplaced in
    /// its template.
    pub fn policy(&self) -> Option<&TriggerPolicy> {
        self.policy.as_ref().or(self.template.policy.as_ref())
    }
}

/// The unit of a rate limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RateLimitUnit {
    /// Per second (the default).
    #[default]
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
}

/// How often a trigger may fire.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Second (default), Minute or Hour.
    pub unit: Option<RateLimitUnit>,
    /// Number of firings allowed per unit.
    pub requests_per_unit: Option<i32>,
}

/// The definition of a trigger: its name, when it fires and what it does.
/// Exactly one trigger kind (`k8s`, `argoWorkflow`, `http`, ...) is set.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = open_whisk_alias)]
pub struct TriggerTemplate {
    /// Unique name of the trigger.
    pub name: String,
    /// Which dependencies must be met, e.g. `(dep01 || dep02) && dep04`; all of them when unset.
    pub conditions: Option<String>,
    /// When to forget dependencies that were met but did not fire the trigger yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions_reset: Vec<ConditionsResetCriteria>,
    /// Create, update, patch or delete a Kubernetes resource.
    pub k8s: Option<StandardK8STrigger>,
    /// Submit or operate on an Argo workflow.
    pub argo_workflow: Option<ArgoWorkflowTrigger>,
    /// Send an HTTP request.
    pub http: Option<HTTPTrigger>,
    /// Invoke an AWS Lambda function (not run by Argon yet).
    #[serde(default)]
    #[schemars(schema_with = "free_object")]
    pub aws_lambda: Option<serde_json::Value>,
    /// Call a custom trigger gRPC server.
    #[serde(rename = "custom", default)]
    pub custom: Option<CustomTrigger>,
    /// Publish a message to a Kafka topic.
    pub kafka: Option<KafkaTrigger>,
    /// Publish a message to a NATS subject.
    pub nats: Option<NATSTrigger>,
    /// Send a Slack message.
    pub slack: Option<SlackTrigger>,
    /// Invoke an OpenWhisk action (not run by Argon yet).
    #[serde(default, alias = "openwhisk")]
    #[schemars(schema_with = "free_object")]
    pub open_whisk: Option<serde_json::Value>,
    /// Log the events that fired the trigger.
    pub log: Option<LogTrigger>,
    /// Send an event to Azure Event Hubs (not run by Argon yet).
    #[serde(default)]
    #[schemars(schema_with = "free_object")]
    pub azure_event_hubs: Option<serde_json::Value>,
    /// Publish a message to a Pulsar topic (not run by Argon yet).
    #[serde(default)]
    #[schemars(schema_with = "free_object")]
    pub pulsar: Option<serde_json::Value>,
    /// Send a message to Azure Service Bus (not run by Argon yet).
    #[serde(default)]
    #[schemars(schema_with = "free_object")]
    pub azure_service_bus: Option<serde_json::Value>,
    /// Send an email.
    pub email: Option<EmailTrigger>,
    /// Misplaced `atLeastOnce`: accepted here for manifests that write it in the template; it belongs on the trigger.
    pub at_least_once: Option<bool>,
    /// Misplaced `policy`: accepted here for manifests that write it in the template; it belongs on the trigger.
    pub policy: Option<TriggerPolicy>,
}

/// Which kind of trigger a template is, with its configuration: the closed
/// set the sensor runtime dispatches on.
#[derive(Clone, Debug, PartialEq)]
pub enum TriggerKind<'a> {
    /// `k8s`
    K8s(&'a StandardK8STrigger),
    /// `argoWorkflow`
    ArgoWorkflow(&'a ArgoWorkflowTrigger),
    /// `http`
    Http(&'a HTTPTrigger),
    /// `log`
    Log(&'a LogTrigger),
    /// `nats`
    Nats(&'a NATSTrigger),
    /// `kafka`
    Kafka(&'a KafkaTrigger),
    /// `slack`
    Slack(&'a SlackTrigger),
    /// `email`
    Email(&'a EmailTrigger),
    /// `custom`
    Custom(&'a CustomTrigger),
    /// A kind the manifest may use but Argon does not run yet, by its field name (`awsLambda`).
    Unsupported(String),
}

impl TriggerKind<'_> {
    /// The manifest field name of the kind (`argoWorkflow`).
    pub fn name(&self) -> &str {
        match self {
            TriggerKind::K8s(_) => "k8s",
            TriggerKind::ArgoWorkflow(_) => "argoWorkflow",
            TriggerKind::Http(_) => "http",
            TriggerKind::Log(_) => "log",
            TriggerKind::Nats(_) => "nats",
            TriggerKind::Kafka(_) => "kafka",
            TriggerKind::Slack(_) => "slack",
            TriggerKind::Email(_) => "email",
            TriggerKind::Custom(_) => "custom",
            TriggerKind::Unsupported(name) => name,
        }
    }

    /// The parameter lists of the kind's own configuration, by field name
    /// (`parameters`, `payload`, `dynamicHeaders`): the places a
    /// `src.dependencyName` may appear.
    pub fn parameter_lists(&self) -> Vec<(&'static str, &[TriggerParameter])> {
        match self {
            TriggerKind::K8s(t) => vec![("parameters", &t.parameters)],
            TriggerKind::ArgoWorkflow(t) => vec![("parameters", &t.parameters)],
            TriggerKind::Http(t) => {
                vec![
                    ("parameters", &t.parameters),
                    ("payload", &t.payload),
                    ("dynamicHeaders", &t.dynamic_headers),
                ]
            }
            TriggerKind::Nats(t) => vec![("parameters", &t.parameters), ("payload", &t.payload)],
            TriggerKind::Kafka(t) => vec![("parameters", &t.parameters), ("payload", &t.payload)],
            TriggerKind::Slack(t) => vec![("parameters", &t.parameters)],
            TriggerKind::Email(t) => vec![("parameters", &t.parameters)],
            TriggerKind::Custom(t) => vec![("parameters", &t.parameters), ("payload", &t.payload)],
            TriggerKind::Log(_) | TriggerKind::Unsupported(_) => Vec::new(),
        }
    }
}

impl TriggerTemplate {
    /// The kind of this trigger: the first one set, in the order of the
    /// manifest fields. `None` when no kind is set.
    pub fn kind(&self) -> Option<TriggerKind<'_>> {
        self.kinds().into_iter().next()
    }

    /// Every kind set on this template (validation reports more than one).
    pub fn kinds(&self) -> Vec<TriggerKind<'_>> {
        let mut kinds = Vec::new();
        if let Some(t) = &self.k8s {
            kinds.push(TriggerKind::K8s(t));
        }
        if let Some(t) = &self.argo_workflow {
            kinds.push(TriggerKind::ArgoWorkflow(t));
        }
        if let Some(t) = &self.http {
            kinds.push(TriggerKind::Http(t));
        }
        if self.aws_lambda.is_some() {
            kinds.push(TriggerKind::Unsupported(String::from("awsLambda")));
        }
        if let Some(t) = &self.custom {
            kinds.push(TriggerKind::Custom(t));
        }
        if let Some(t) = &self.kafka {
            kinds.push(TriggerKind::Kafka(t));
        }
        if let Some(t) = &self.nats {
            kinds.push(TriggerKind::Nats(t));
        }
        if let Some(t) = &self.slack {
            kinds.push(TriggerKind::Slack(t));
        }
        if self.open_whisk.is_some() {
            kinds.push(TriggerKind::Unsupported(String::from("openWhisk")));
        }
        if let Some(t) = &self.log {
            kinds.push(TriggerKind::Log(t));
        }
        if self.azure_event_hubs.is_some() {
            kinds.push(TriggerKind::Unsupported(String::from("azureEventHubs")));
        }
        if self.pulsar.is_some() {
            kinds.push(TriggerKind::Unsupported(String::from("pulsar")));
        }
        if self.azure_service_bus.is_some() {
            kinds.push(TriggerKind::Unsupported(String::from("azureServiceBus")));
        }
        if let Some(t) = &self.email {
            kinds.push(TriggerKind::Email(t));
        }
        kinds
    }

    /// The raw configuration of a kind Argon does not run yet, by field name.
    pub fn unsupported_config(&self, kind: &str) -> Option<&serde_json::Value> {
        match kind {
            "awsLambda" => self.aws_lambda.as_ref(),
            "openWhisk" => self.open_whisk.as_ref(),
            "azureEventHubs" => self.azure_event_hubs.as_ref(),
            "pulsar" => self.pulsar.as_ref(),
            "azureServiceBus" => self.azure_service_bus.as_ref(),
            _ => None,
        }
    }

    /// The parsed `conditions`, or, when unset or blank, the conjunction of
    /// all `dependencies` (what a trigger without conditions waits for).
    pub fn condition<'a>(&self, dependencies: impl IntoIterator<Item = &'a str>) -> Result<Condition, ConditionError> {
        match self.conditions.as_deref().map(str::trim) {
            Some(expr) if !expr.is_empty() => Condition::parse(expr),
            _ => Ok(Condition::all(dependencies)),
        }
    }
}

/// When to reset conditions that were partly met.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionsResetCriteria {
    /// Reset on a cron schedule.
    pub by_time: Option<ConditionsResetByTime>,
}

/// A cron schedule at which partly met conditions are reset.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionsResetByTime {
    /// Standard 5-field cron expression, e.g. `0 23 * * *`, or a descriptor like `@daily`.
    pub cron: Option<String>,
    /// IANA time zone of the schedule, e.g. `America/Los_Angeles`; UTC when unset.
    pub timezone: Option<String>,
}

/// What to do with the existing value at a parameter's `dest`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TriggerParameterOperation {
    /// Replace it (the default; also what an empty value means).
    #[default]
    #[serde(rename = "overwrite", alias = "")]
    Overwrite,
    /// Append the new value to it.
    #[serde(rename = "append")]
    Append,
    /// Prepend the new value to it.
    #[serde(rename = "prepend")]
    Prepend,
}

/// A value taken from an event and written into the trigger at `dest`.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerParameter {
    /// Where the value comes from.
    pub src: Option<TriggerParameterSource>,
    /// Dotted path of the key to set, e.g. `spec.arguments.parameters.0.value` (`-1` appends to a list).
    pub dest: String,
    /// overwrite (default), append or prepend to the existing value.
    pub operation: Option<TriggerParameterOperation>,
}

/// Where a parameter's value comes from: an event of one dependency.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerParameterSource {
    /// The dependency whose event supplies the value.
    pub dependency_name: String,
    /// GJSON path into the event context, e.g. `type`.
    pub context_key: Option<String>,
    /// Go template over the event context; tried before `contextKey`.
    pub context_template: Option<String>,
    /// GJSON path into the event data, e.g. `body.message`.
    pub data_key: Option<String>,
    /// Go template over the event data, e.g. `{{ .Input.body.name | upper }}`; tried before `dataKey`.
    pub data_template: Option<String>,
    /// Literal value used when the key or template yields nothing.
    pub value: Option<String>,
    /// Keep the value's JSON type (number, bool, object) instead of turning it into a string.
    pub use_raw_data: Option<bool>,
}

/// How to decide whether a trigger succeeded.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerPolicy {
    /// For Kubernetes-resource triggers: wait for labels on the created resource.
    pub k8s: Option<K8SResourcePolicy>,
    /// For request triggers: the response statuses that count as success.
    pub status: Option<StatusPolicy>,
}

/// Success of a Kubernetes-resource trigger, judged by the resource's labels.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct K8SResourcePolicy {
    /// Labels that mark the resource as succeeded, e.g. `workflows.argoproj.io/phase: Succeeded`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How long and how often to check the labels.
    pub backoff: Backoff,
    /// When true, a check that times out fails the trigger.
    pub error_on_backoff_timeout: Option<bool>,
}

/// Success of a request trigger, judged by its response status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusPolicy {
    /// Response statuses that count as success, e.g. `[200, 201]`.
    pub allow: Vec<i32>,
}

/// Also accept the `openwhisk` spelling used by some published manifests.
fn open_whisk_alias(schema: &mut Schema) {
    add_alias_property(schema, "openWhisk", "openwhisk");
}

/// Declares `alias` in an object schema as a second name of the `canonical`
/// property (serde accepts it through `#[serde(alias)]`), so that the strict
/// loader does not report it as unknown.
pub(crate) fn add_alias_property(schema: &mut Schema, canonical: &str, alias: &str) {
    let Some(props) = schema.get_mut("properties").and_then(serde_json::Value::as_object_mut) else {
        return;
    };
    let Some(mut property) = props.get(canonical).cloned() else {
        return;
    };
    if let Some(obj) = property.as_object_mut() {
        obj.insert(
            "description".into(),
            format!("Alternative spelling of `{canonical}`.").into(),
        );
    }
    props.insert(alias.to_string(), property);
}

thread_local! {
    static IN_DLQ_SCHEMA: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Schema of `dlqTrigger`: the trigger schema written out in place, because
/// a CRD schema cannot refer to itself (`$ref`). The DLQ trigger's own
/// `dlqTrigger` is a free-form object, which ends the recursion.
fn dlq_trigger_schema(generator: &mut SchemaGenerator) -> Schema {
    if IN_DLQ_SCHEMA.with(|flag| flag.replace(true)) {
        return free_object(generator);
    }
    let mut schema = Trigger::json_schema(generator);
    IN_DLQ_SCHEMA.with(|flag| flag.set(false));
    schema.insert("nullable".into(), true.into());
    schema
}

/// Schema of a configuration kept as raw JSON: any object.
pub(crate) fn free_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
