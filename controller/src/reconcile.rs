//! The reconcilers of EventSource, Sensor and EventBus, and the error policy
//! they share: small free functions over a [`Context`], run by
//! kube-runtime's `Controller` (see [`crate::run`]).
//!
//! Each reconcile goes through kube-runtime's finalizer helper: `Apply`
//! server-side-applies every object of the manifest (so a spec change rolls
//! out and an object deleted by hand comes back) and writes the status
//! conditions; `Cleanup` deletes the objects and lets the manifest go.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon_crds::common::Condition;
use argon_crds::diag::{Finding, Severity};
use argon_crds::eventbus::EventBus;
use argon_crds::eventsource::EventSource;
use argon_crds::sensor::Sensor;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::conditions::{self, Observed};
use crate::metrics::Metrics;
use crate::objects::{self, Child, Settings};
use crate::{Error, Result};

/// The finalizer the controller puts on the manifests it runs.
pub const FINALIZER: &str = "argon.io/controller";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "argon-controller";
/// How often a reconciled manifest is looked at again without any change.
pub const RESYNC: Duration = Duration::from_secs(600);
/// How soon a manifest waiting for its EventBus is looked at again (the
/// EventBus watch usually comes first).
pub const BUS_WAIT: Duration = Duration::from_secs(60);
/// The first retry after an error; each further error doubles it.
pub const BACKOFF_START: Duration = Duration::from_secs(2);
/// The longest wait between retries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What the reconcilers share: the API client, the settings of the objects
/// and the count of consecutive failures of each manifest.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Metrics,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for `client` with these settings.
    pub fn new(client: Client, settings: Settings) -> Arc<Self> {
        Arc::new(Context {
            client,
            settings,
            metrics: Metrics::new(),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one more failure of `key`; the count so far.
    fn failed(&self, key: String) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `key`.
    fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// The wait before retrying after the `failures`-th error in a row: 2 s,
/// doubling, at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (BACKOFF_START * 2u32.pow(doublings)).min(BACKOFF_MAX)
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// What the controller does after a failed reconcile: retry with backoff.
pub fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key(obj.as_ref());
    let failures = ctx.failed(key.clone());
    let delay = backoff(failures);
    tracing::warn!(object = %key, failures, retry_in = ?delay, error = %error, "reconcile failed");
    Action::requeue(delay)
}

fn namespace<K: Resource<DynamicType = ()>>(obj: &K) -> Result<String> {
    obj.meta().namespace.clone().ok_or_else(|| Error::NoNamespace {
        kind: match K::kind(&()).as_ref() {
            "EventSource" => "EventSource",
            "Sensor" => "Sensor",
            _ => "EventBus",
        },
        name: obj.name_any(),
    })
}

/// Runs `apply` or `cleanup` through the finalizer helper and keeps the
/// failure count.
async fn reconcile_with<K, A, C, FA, FC>(obj: Arc<K>, ctx: Arc<Context>, apply: A, cleanup: C) -> Result<Action>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
    A: FnOnce(Arc<K>, Arc<Context>) -> FA,
    C: FnOnce(Arc<K>, Arc<Context>) -> FC,
    FA: Future<Output = Result<Action>>,
    FC: Future<Output = Result<Action>>,
{
    let started = std::time::Instant::now();
    let key = key(obj.as_ref());
    let inner = ctx.clone();
    let outcome = async move {
        let ns = namespace(obj.as_ref())?;
        let api: Api<K> = Api::namespaced(inner.client.clone(), &ns);
        let action = finalizer(&api, FINALIZER, obj, |event| async move {
            match event {
                Event::Apply(obj) => apply(obj, inner).await,
                Event::Cleanup(obj) => cleanup(obj, inner).await,
            }
        })
        .await?;
        Ok(action)
    }
    .await;
    ctx.metrics
        .observe(&K::kind(&()), outcome.is_ok(), started.elapsed().as_secs_f64());
    if outcome.is_ok() {
        ctx.succeeded(&key);
    }
    outcome
}

/// Reconciles one EventSource.
pub async fn reconcile_eventsource(es: Arc<EventSource>, ctx: Arc<Context>) -> Result<Action> {
    reconcile_with(es, ctx, apply_eventsource, cleanup_eventsource).await
}

/// Reconciles one Sensor.
pub async fn reconcile_sensor(sensor: Arc<Sensor>, ctx: Arc<Context>) -> Result<Action> {
    reconcile_with(sensor, ctx, apply_sensor, cleanup_sensor).await
}

/// Reconciles one EventBus.
pub async fn reconcile_eventbus(bus: Arc<EventBus>, ctx: Arc<Context>) -> Result<Action> {
    reconcile_with(bus, ctx, apply_eventbus, cleanup_eventbus).await
}

/// The messages of the errors among `findings`, with their field paths.
fn errors<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Vec<String> {
    findings
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| {
            if f.path.is_empty() {
                f.message.clone()
            } else {
                format!("{}: {}", f.path, f.message)
            }
        })
        .collect()
}

/// Server-side applies one object, taking over fields another manager set
/// (the controller owns what it makes).
async fn apply_child(client: &Client, namespace: &str, child: &Child) -> Result<()> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = child.name();
    match child {
        Child::ConfigMap(o) => {
            Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Apply(o))
                .await?;
        }
        Child::Deployment(o) => {
            Api::<Deployment>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Apply(o))
                .await?;
        }
        Child::Service(o) => {
            Api::<Service>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Apply(o))
                .await?;
        }
        Child::StatefulSet(o) => {
            Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Apply(o))
                .await?;
        }
    }
    Ok(())
}

/// Deletes one object; one already gone is fine.
async fn delete_child<K>(client: &Client, namespace: &str, name: &str) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes the conditions (and, for an EventBus, `config`) into the status,
/// unless they are what the status already says.
async fn write_status<K>(
    api: &Api<K>,
    obj: &K,
    existing: &[Condition],
    observed: &[Observed],
    extra: Option<(&str, serde_json::Value, Option<serde_json::Value>)>,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let merged = conditions::merge(existing, observed, &conditions::now());
    let extra_changed = extra.as_ref().is_some_and(|(_, new, old)| Some(new) != old.as_ref());
    if merged == existing && !extra_changed {
        return Ok(());
    }
    let mut status = json!({ "conditions": merged });
    if let Some((field, value, _)) = extra {
        status[field] = value;
    }
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// The EventBus `name`, if its clients can use it, or the condition that
/// says why there is none.
async fn resolve_bus(client: &Client, namespace: &str, name: &str) -> Result<Result<EventBus, Observed>> {
    let buses: Api<EventBus> = Api::namespaced(client.clone(), namespace);
    let Some(bus) = buses.get_opt(name).await? else {
        return Ok(Err(Observed::fails(
            conditions::DEPLOYED,
            "EventBusNotFound",
            format!("EventBus '{name}' does not exist in namespace {namespace}"),
        )));
    };
    Ok(objects::bus_url(&bus)
        .map(|_| bus)
        .map_err(|e| Observed::fails(conditions::DEPLOYED, "EventBusNotSupported", e.to_string())))
}

async fn apply_eventsource(es: Arc<EventSource>, ctx: Arc<Context>) -> Result<Action> {
    let ns = namespace(es.as_ref())?;
    let api: Api<EventSource> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = es.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    let problems = errors(&argon_crds::eventsource::validate(&es));
    if !problems.is_empty() {
        let observed = [
            Observed::fails(conditions::SOURCES_PROVIDED, "InvalidEventSource", problems.join("; ")),
            Observed::fails(
                conditions::DEPLOYED,
                "InvalidEventSource",
                "not deployed: the spec has errors",
            ),
        ];
        write_status(&api, es.as_ref(), &existing, &observed, None).await?;
        return Ok(Action::await_change());
    }
    let sources = Observed::holds(conditions::SOURCES_PROVIDED, "EventSourceValid", "");
    let bus = match resolve_bus(&ctx.client, &ns, objects::eventsource_bus(&es)).await? {
        Ok(bus) => bus,
        Err(waiting) => {
            write_status(&api, es.as_ref(), &existing, &[sources, waiting], None).await?;
            return Ok(Action::requeue(BUS_WAIT));
        }
    };
    let children = objects::eventsource_children(&es, &bus, &ctx.settings)?;
    for child in &children {
        apply_child(&ctx.client, &ns, child).await?;
    }
    let (_, deployment, service) = objects::eventsource_names(&es.name_any());
    if !children.iter().any(|c| matches!(c, Child::Service(_))) {
        // No webhook port any more: the Service of an earlier spec goes.
        delete_child::<Service>(&ctx.client, &ns, &service).await?;
    }
    let deployed = Observed::holds(
        conditions::DEPLOYED,
        "Deployed",
        format!("Deployment {deployment} applied"),
    );
    write_status(&api, es.as_ref(), &existing, &[sources, deployed], None).await?;
    Ok(Action::requeue(RESYNC))
}

async fn cleanup_eventsource(es: Arc<EventSource>, ctx: Arc<Context>) -> Result<Action> {
    let ns = namespace(es.as_ref())?;
    let (config_map, deployment, service) = objects::eventsource_names(&es.name_any());
    delete_child::<Deployment>(&ctx.client, &ns, &deployment).await?;
    delete_child::<Service>(&ctx.client, &ns, &service).await?;
    delete_child::<ConfigMap>(&ctx.client, &ns, &config_map).await?;
    Ok(Action::await_change())
}

async fn apply_sensor(sensor: Arc<Sensor>, ctx: Arc<Context>) -> Result<Action> {
    let ns = namespace(sensor.as_ref())?;
    let api: Api<Sensor> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = sensor
        .status
        .as_ref()
        .map(|s| s.status.conditions.clone())
        .unwrap_or_default();
    let findings = argon_crds::sensor::validate(&sensor);
    let (dependency_findings, trigger_findings): (Vec<&Finding>, Vec<&Finding>) =
        findings.iter().partition(|f| f.path.starts_with("spec.dependencies"));
    let dependency_errors = errors(dependency_findings);
    let trigger_errors = errors(trigger_findings);
    let dependencies = if dependency_errors.is_empty() {
        Observed::holds(conditions::DEPENDENCIES_PROVIDED, "DependenciesValid", "")
    } else {
        Observed::fails(
            conditions::DEPENDENCIES_PROVIDED,
            "InvalidDependencies",
            dependency_errors.join("; "),
        )
    };
    let triggers = if trigger_errors.is_empty() {
        Observed::holds(conditions::TRIGGERS_PROVIDED, "TriggersValid", "")
    } else {
        Observed::fails(
            conditions::TRIGGERS_PROVIDED,
            "InvalidTriggers",
            trigger_errors.join("; "),
        )
    };
    if !dependency_errors.is_empty() || !trigger_errors.is_empty() {
        let observed = [
            dependencies,
            triggers,
            Observed::fails(
                conditions::DEPLOYED,
                "InvalidSensor",
                "not deployed: the spec has errors",
            ),
        ];
        write_status(&api, sensor.as_ref(), &existing, &observed, None).await?;
        return Ok(Action::await_change());
    }
    let bus = match resolve_bus(&ctx.client, &ns, sensor.spec.event_bus()).await? {
        Ok(bus) => bus,
        Err(waiting) => {
            write_status(
                &api,
                sensor.as_ref(),
                &existing,
                &[dependencies, triggers, waiting],
                None,
            )
            .await?;
            return Ok(Action::requeue(BUS_WAIT));
        }
    };
    for child in objects::sensor_children(&sensor, &bus, &ctx.settings)? {
        apply_child(&ctx.client, &ns, &child).await?;
    }
    let (_, deployment) = objects::sensor_names(&sensor.name_any());
    let deployed = Observed::holds(
        conditions::DEPLOYED,
        "Deployed",
        format!("Deployment {deployment} applied"),
    );
    write_status(
        &api,
        sensor.as_ref(),
        &existing,
        &[dependencies, triggers, deployed],
        None,
    )
    .await?;
    Ok(Action::requeue(RESYNC))
}

async fn cleanup_sensor(sensor: Arc<Sensor>, ctx: Arc<Context>) -> Result<Action> {
    let ns = namespace(sensor.as_ref())?;
    let (config_map, deployment) = objects::sensor_names(&sensor.name_any());
    delete_child::<Deployment>(&ctx.client, &ns, &deployment).await?;
    delete_child::<ConfigMap>(&ctx.client, &ns, &config_map).await?;
    Ok(Action::await_change())
}

async fn apply_eventbus(bus: Arc<EventBus>, ctx: Arc<Context>) -> Result<Action> {
    let ns = namespace(bus.as_ref())?;
    let api: Api<EventBus> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = bus.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    let old_config = bus
        .status
        .as_ref()
        .and_then(|s| s.config.as_ref())
        .map(|c| serde_json::to_value(c).unwrap_or_default());
    let config = match objects::bus_config(&bus) {
        Ok(config) => config,
        Err(e) => {
            let observed = [
                Observed::fails(conditions::CONFIGURED, "NotSupported", e.to_string()),
                Observed::fails(conditions::DEPLOYED, "NotSupported", "nothing deployed"),
            ];
            write_status(&api, bus.as_ref(), &existing, &observed, None).await?;
            return Ok(Action::await_change());
        }
    };
    let children = objects::eventbus_children(&bus)?;
    for child in &children {
        apply_child(&ctx.client, &ns, child).await?;
    }
    let deployed = match children.iter().find(|c| matches!(c, Child::StatefulSet(_))) {
        Some(sts) => Observed::holds(
            conditions::DEPLOYED,
            "Deployed",
            format!("JetStream StatefulSet {} applied", sts.name()),
        ),
        None => Observed::holds(
            conditions::DEPLOYED,
            "Skipped",
            "Skip deployment because of using exotic config.",
        ),
    };
    let observed = [
        Observed::holds(conditions::CONFIGURED, "Configured", unused_settings(&bus)),
        deployed,
    ];
    let config = serde_json::to_value(&config).map_err(|e| Error::Serialize {
        what: format!("the status of EventBus {}", bus.name_any()),
        message: e.to_string(),
    })?;
    write_status(
        &api,
        bus.as_ref(),
        &existing,
        &observed,
        Some(("config", config, old_config)),
    )
    .await?;
    Ok(Action::requeue(RESYNC))
}

/// What of an EventBus's settings the pods do not get: `argon eventsource
/// run` and `argon sensor run` take the bus as `--bus URL` alone.
fn unused_settings(bus: &EventBus) -> String {
    let Some(exotic) = bus
        .spec
        .jetstream_exotic
        .as_ref()
        .filter(|_| bus.spec.jetstream.is_none())
    else {
        return String::new();
    };
    // url, accessSecret, auth, streamConfig and tls all reach the pods
    // (objects::PodBus); this one the pods refuse at start-up.
    if exotic.tls.as_ref().and_then(|t| t.insecure_skip_verify) == Some(true) {
        return "jetstreamExotic.tls.insecureSkipVerify is not supported: event source and sensor pods refuse to start; give tls.caCertSecret with the CA of the NATS server".into();
    }
    String::new()
}

async fn cleanup_eventbus(bus: Arc<EventBus>, ctx: Arc<Context>) -> Result<Action> {
    let ns = namespace(bus.as_ref())?;
    let name = bus.name_any();
    let mut users = Vec::new();
    let sources: Api<EventSource> = Api::namespaced(ctx.client.clone(), &ns);
    for es in sources.list(&ListParams::default()).await? {
        if objects::eventsource_bus(&es) == name && es.meta().deletion_timestamp.is_none() {
            users.push(format!("EventSource {}", es.name_any()));
        }
    }
    let sensors: Api<Sensor> = Api::namespaced(ctx.client.clone(), &ns);
    for sensor in sensors.list(&ListParams::default()).await? {
        if sensor.spec.event_bus() == name && sensor.meta().deletion_timestamp.is_none() {
            users.push(format!("Sensor {}", sensor.name_any()));
        }
    }
    if !users.is_empty() {
        return Err(Error::BusInUse {
            name,
            users: users.join(", "),
        });
    }
    let (config_map, statefulset, service) = objects::eventbus_names(&name);
    delete_child::<StatefulSet>(&ctx.client, &ns, &statefulset).await?;
    delete_child::<Service>(&ctx.client, &ns, &service).await?;
    delete_child::<ConfigMap>(&ctx.client, &ns, &config_map).await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests;
