//! Argon's Kubernetes controller (`argon controller`): it watches
//! EventSources, Sensors and EventBuses and keeps, for each, the objects that
//! run it (see [`objects`]), with kube-runtime's `Controller`, a finalizer,
//! owner references, server-side apply and Argo Events' status conditions.

pub mod conditions;
pub mod dryrun;
mod error;
pub mod metrics;
pub mod objects;
pub mod reconcile;
pub mod secrets;
#[cfg(test)]
mod testing;

use std::sync::Arc;

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
/// every namespace when `None`) with `ctx` until `shutdown` is cancelled.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>, shutdown: CancellationToken) {
    let client = ctx.client.clone();
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

#[cfg(test)]
mod tests {
    //! The controllers as `run` wires them, against an API that answers by
    //! path: the initial lists, an apply of every object, and an owned
    //! Deployment deleted by hand coming back.

    use std::time::Duration;

    use http::{Method, Request, Response};
    use kube::client::Body;
    use kube::runtime::reflector;
    use serde_json::{Value, json};

    use super::*;
    use crate::testing;

    fn list(kind: &str, items: Vec<Value>) -> Value {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
    }

    fn eventsource() -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
            "metadata": {"name": "webhook", "namespace": "default", "uid": "uid-es", "resourceVersion": "3",
                         "finalizers": [reconcile::FINALIZER]},
            "spec": {"webhook": {"example": {"port": "12000", "endpoint": "/example", "method": "POST"}}}
        })
    }

    fn bus() -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "EventBus",
            "metadata": {"name": "default", "namespace": "default", "uid": "uid-bus", "resourceVersion": "4"},
            "spec": {"jetstream": {}}
        })
    }

    /// What the scripted API saw.
    #[derive(Default)]
    struct Seen {
        deployment_applies: usize,
        owned_selectors: Vec<String>,
    }

    #[tokio::test]
    async fn an_owned_deployment_deleted_by_hand_is_applied_again() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let shutdown = CancellationToken::new();
        let controller = run(
            Context::new(client, Settings::default()),
            Some("default"),
            shutdown.clone(),
        );

        let api = async {
            let mut seen = Seen::default();
            // Watches stay open (their answers are held) unless a test step answers them.
            let mut held = Vec::new();
            let mut deployment_watch = None;
            let mut deleted_sent = false;
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let body = request.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let collection = path.rsplit('/').next().unwrap_or_default().to_string();
                match method {
                    Method::GET if query.contains("watch=true") => {
                        if collection == "deployments" && deployment_watch.is_none() && !deleted_sent {
                            deployment_watch = Some(send);
                        } else {
                            held.push(send);
                        }
                        continue;
                    }
                    Method::GET if path.ends_with("/eventbus/default") => {
                        send.send_response(testing::json_response(200, &bus()));
                    }
                    Method::GET => {
                        if ["deployments", "services", "configmaps", "statefulsets"].contains(&collection.as_str()) {
                            seen.owned_selectors.push(query.clone());
                        }
                        let items = match collection.as_str() {
                            "eventsources" => vec![eventsource()],
                            // No EventBus list: only the deletion below reconciles the EventSource again.
                            _ => vec![],
                        };
                        send.send_response(testing::json_response(200, &list("List", items)));
                    }
                    Method::PATCH if path.ends_with("/status") => {
                        let mut es = eventsource();
                        es["status"] = body["status"].clone();
                        send.send_response(testing::json_response(200, &es));
                    }
                    Method::PATCH => {
                        send.send_response(testing::json_response(200, &body));
                        if collection == "webhook-eventsource" && path.contains("/deployments/") {
                            seen.deployment_applies += 1;
                            if seen.deployment_applies == 1 {
                                let watch = deployment_watch.take().expect("the Deployments are watched");
                                let mut gone = body.clone();
                                gone["metadata"]["resourceVersion"] = json!("11");
                                let event = json!({"type": "DELETED", "object": gone});
                                watch.send_response(
                                    Response::builder()
                                        .status(200)
                                        .body(Body::from(format!("{event}\n").into_bytes()))
                                        .unwrap(),
                                );
                                deleted_sent = true;
                            } else {
                                shutdown.cancel();
                            }
                        }
                    }
                    other => panic!("unexpected {other} {path}?{query}"),
                }
            }
            drop(held);
            seen
        };
        let ((), seen) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(controller, api) })
            .await
            .expect("the controller applied the deleted Deployment again and stopped");
        assert_eq!(seen.deployment_applies, 2);
        assert!(!seen.owned_selectors.is_empty());
        for query in &seen.owned_selectors {
            assert!(
                query.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dargon-controller"),
                "owned objects are watched by their label: {query}"
            );
        }
    }

    #[test]
    fn an_eventbus_change_reconciles_the_manifests_that_use_it() {
        let (store, mut writer) = reflector::store::<EventSource>();
        let mut on_main: EventSource = serde_json::from_value(eventsource()).unwrap();
        on_main.metadata.name = Some("on-main".into());
        on_main.spec.event_bus_name = Some("main".into());
        let mut elsewhere = on_main.clone();
        elsewhere.metadata.name = Some("elsewhere".into());
        elsewhere.metadata.namespace = Some("other".into());
        let on_default: EventSource = serde_json::from_value(eventsource()).unwrap();
        for es in [on_main, elsewhere, on_default] {
            writer.apply_watcher_event(&watcher::Event::Apply(es));
        }
        let mut main: EventBus = serde_json::from_value(bus()).unwrap();
        main.metadata.name = Some("main".into());
        let refs = users(&store, &main, |es| objects::eventsource_bus(es).to_string());
        let names: Vec<_> = refs.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, ["on-main"]);
    }
}
