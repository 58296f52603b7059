//! Argon's Kubernetes controller (`argon controller`): it watches
//! EventSources, Sensors and EventBuses and keeps, for each, the objects that
//! run it (see [`objects`]), with kube-runtime's `Controller`, a finalizer,
//! owner references, server-side apply and Argo Events' status conditions.

pub mod conditions;
pub mod dryrun;
mod error;
pub mod objects;
pub mod reconcile;
pub mod secrets;
#[cfg(test)]
mod testing;

use argon_crds::eventbus::EventBus;
use argon_crds::eventsource::EventSource;
use argon_crds::sensor::Sensor;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};
pub use objects::Settings;
pub use reconcile::Context;

/// A client of the cluster's API: the pod's service account in a cluster,
/// else the kubeconfig (`KUBECONFIG`, `~/.kube/config`).
pub async fn connect() -> Result<Client> {
    Client::try_default().await.map_err(Error::Connect)
}

/// Reconciles the EventSources, Sensors and EventBuses of `namespace` (of
/// every namespace when `None`) until `shutdown` is cancelled.
pub async fn run(client: Client, namespace: Option<&str>, settings: Settings, shutdown: CancellationToken) {
    let ctx = Context::new(client.clone(), settings);
    let owned = watcher::Config::default().labels(&format!("{}={}", objects::MANAGED_BY.0, objects::MANAGED_BY.1));
    let watched = watcher::Config::default();

    let eventsources = Controller::new(api::<EventSource>(&client, namespace), watched.clone());
    let store = eventsources.store();
    let eventsources = eventsources
        .owns(api::<Deployment>(&client, namespace), owned.clone())
        .owns(api::<Service>(&client, namespace), owned.clone())
        .owns(api::<ConfigMap>(&client, namespace), owned.clone())
        .watches(api::<EventBus>(&client, namespace), watched.clone(), move |bus| {
            users(&store, &bus, |es| objects::eventsource_bus(es).to_string())
        })
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile::reconcile_eventsource, reconcile::error_policy, ctx.clone())
        .for_each(log_outcome);

    let sensors = Controller::new(api::<Sensor>(&client, namespace), watched.clone());
    let store = sensors.store();
    let sensors = sensors
        .owns(api::<Deployment>(&client, namespace), owned.clone())
        .owns(api::<ConfigMap>(&client, namespace), owned.clone())
        .watches(api::<EventBus>(&client, namespace), watched.clone(), move |bus| {
            users(&store, &bus, |s| s.spec.event_bus().to_string())
        })
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile::reconcile_sensor, reconcile::error_policy, ctx.clone())
        .for_each(log_outcome);

    let eventbuses = Controller::new(api::<EventBus>(&client, namespace), watched)
        .owns(api::<StatefulSet>(&client, namespace), owned.clone())
        .owns(api::<Service>(&client, namespace), owned.clone())
        .owns(api::<ConfigMap>(&client, namespace), owned)
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile::reconcile_eventbus, reconcile::error_policy, ctx)
        .for_each(log_outcome);

    tracing::info!(namespace = namespace.unwrap_or("(all)"), "controller running");
    futures::join!(eventsources, sensors, eventbuses);
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The manifests in `store` that use `bus`: an EventBus change reconciles them.
fn users<K>(store: &Store<K>, bus: &EventBus, bus_of: impl Fn(&K) -> String) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let name = bus.name_any();
    store
        .state()
        .into_iter()
        .filter(|obj| obj.meta().namespace == bus.meta().namespace && bus_of(obj) == name)
        .map(|obj| ObjectRef::from_obj(obj.as_ref()))
        .collect()
}

type Outcome<K> =
    std::result::Result<(ObjectRef<K>, kube::runtime::controller::Action), controller::Error<Error, watcher::Error>>;

async fn log_outcome<K: Resource<DynamicType = ()>>(outcome: Outcome<K>) {
    match outcome {
        Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
        // error_policy has logged it with its backoff.
        Err(controller::Error::ReconcilerFailed(_, _)) => {}
        Err(e) => tracing::warn!(error = %e, "controller"),
    }
}
