//! `argon controller --dry-run`: the objects the controller would apply for
//! a set of manifests, without a cluster.

use argon_crds::eventbus::{EventBus, EventBusSpec, JetStreamBus};
use argon_crds::manifest::Manifest;
use kube::ResourceExt;

use crate::Result;
use crate::objects::{self, Child, Settings};

/// What the controller would apply, and notes on what it assumed.
#[derive(Debug, Default)]
pub struct Plan {
    pub children: Vec<Child>,
    pub notes: Vec<String>,
}

impl Plan {
    /// The objects as one multi-document YAML text.
    pub fn to_yaml(&self) -> Result<String> {
        let mut out = String::new();
        for child in &self.children {
            out.push_str("---\n");
            out.push_str(&child.to_yaml()?);
        }
        Ok(out)
    }
}

/// The objects of the EventSources, Sensors and EventBuses among
/// `manifests` (the other kinds have none, as notes say), each in
/// `namespace` unless it names its own. A manifest's EventBus is looked for among `manifests`; one
/// not there is taken to be a `jetstream` EventBus of that name, as a note says.
pub fn plan(manifests: &[Manifest], namespace: &str, settings: &Settings) -> Result<Plan> {
    let in_namespace = |mut meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        if meta.namespace.as_deref().is_none_or(str::is_empty) {
            meta.namespace = Some(namespace.to_string());
        }
        meta
    };
    let mut buses = Vec::new();
    let mut eventsources = Vec::new();
    let mut sensors = Vec::new();
    let mut skipped = Vec::new();
    for manifest in manifests {
        match manifest {
            Manifest::EventBus(b) => {
                let mut b = b.as_ref().clone();
                b.metadata = in_namespace(b.metadata);
                buses.push(b);
            }
            Manifest::EventSource(es) => {
                let mut es = es.as_ref().clone();
                es.metadata = in_namespace(es.metadata);
                eventsources.push(es);
            }
            Manifest::Sensor(s) => {
                let mut s = s.as_ref().clone();
                s.metadata = in_namespace(s.metadata);
                sensors.push(s);
            }
            other => skipped.push(format!(
                "{} {}: the controller does not run it (argon apply or argon submit sends it to argon server)",
                other.kind(),
                other.name()
            )),
        }
    }

    let mut plan = Plan {
        notes: skipped,
        ..Plan::default()
    };
    let bus_of = |kind: &str, name: &str, ns: &str, bus: &str, notes: &mut Vec<String>| -> EventBus {
        if let Some(found) = buses
            .iter()
            .find(|b| b.name_any() == bus && b.namespace().as_deref() == Some(ns))
        {
            return found.clone();
        }
        notes.push(format!(
            "{kind} {ns}/{name}: EventBus '{bus}' is not among the manifests; assuming a jetstream EventBus of that name"
        ));
        let mut assumed = EventBus::new(
            bus,
            EventBusSpec {
                jetstream: Some(JetStreamBus::default()),
                ..EventBusSpec::default()
            },
        );
        assumed.metadata.namespace = Some(ns.to_string());
        assumed
    };
    for bus in &buses {
        plan.children.extend(objects::eventbus_children(bus)?);
    }
    for es in &eventsources {
        let ns = es.namespace().unwrap_or_default();
        let bus = bus_of(
            "EventSource",
            &es.name_any(),
            &ns,
            objects::eventsource_bus(es),
            &mut plan.notes,
        );
        plan.children.extend(objects::eventsource_children(es, &bus, settings)?);
    }
    for sensor in &sensors {
        let ns = sensor.namespace().unwrap_or_default();
        let bus = bus_of(
            "Sensor",
            &sensor.name_any(),
            &ns,
            sensor.spec.event_bus(),
            &mut plan.notes,
        );
        plan.children.extend(objects::sensor_children(sensor, &bus, settings)?);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use argon_crds::manifest::{LoadReport, load_text};

    use super::*;

    fn manifests(text: &str) -> Vec<Manifest> {
        let mut report = LoadReport::default();
        load_text("test.yaml", text, &mut report);
        assert!(!report.has_errors(), "{:?}", report.diagnostics);
        report.manifests.into_iter().map(|l| l.manifest).collect()
    }

    const WEBHOOK: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: webhook}
spec:
  webhook:
    example: {port: "12000", endpoint: /example, method: POST}
---
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: webhook, namespace: events}
spec:
  eventBusName: main
  dependencies:
    - {name: dep, eventSourceName: webhook, eventName: example}
  triggers:
    - template:
        name: log
        log: {}
"#;

    #[test]
    fn plans_every_object_and_notes_the_assumed_bus() {
        let plan = plan(&manifests(WEBHOOK), "argo-events", &Settings::default()).unwrap();
        let kinds: Vec<_> = plan.children.iter().map(|c| (c.kind(), c.name().to_string())).collect();
        assert_eq!(
            kinds,
            [
                ("ConfigMap", "webhook-eventsource-manifest".to_string()),
                ("Deployment", "webhook-eventsource".to_string()),
                ("Service", "webhook-eventsource-svc".to_string()),
                ("ConfigMap", "webhook-sensor-manifest".to_string()),
                ("Deployment", "webhook-sensor".to_string()),
            ]
        );
        assert_eq!(plan.children[0].meta().namespace.as_deref(), Some("argo-events"));
        assert_eq!(plan.children[3].meta().namespace.as_deref(), Some("events"));
        assert_eq!(plan.notes.len(), 2, "{:?}", plan.notes);
        assert!(
            plan.notes[1].contains("Sensor events/webhook: EventBus 'main'"),
            "{:?}",
            plan.notes
        );
        let yaml = plan.to_yaml().unwrap();
        assert!(
            yaml.contains("nats://eventbus-default-js-svc.argo-events.svc:4222"),
            "{yaml}"
        );
        assert!(yaml.contains("nats://eventbus-main-js-svc.events.svc:4222"), "{yaml}");
        assert_eq!(yaml.matches("---\n").count(), 5);
        // No owner references without the uid a cluster gives.
        assert!(!yaml.contains("ownerReferences"), "{yaml}");
    }

    #[test]
    fn a_bus_among_the_manifests_is_used_and_deployed() {
        let text = format!(
            "{WEBHOOK}---\napiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {{name: main, namespace: events}}\nspec:\n  jetstreamExotic: {{url: 'nats://nats.example:4222'}}\n---\napiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {{name: default}}\nspec:\n  jetstream: {{replicas: 1}}\n"
        );
        let plan = plan(&manifests(&text), "argo-events", &Settings::default()).unwrap();
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        assert_eq!(plan.children[1].kind(), "StatefulSet");
        let yaml = plan.to_yaml().unwrap();
        assert!(yaml.contains("nats://nats.example:4222"), "{yaml}");
    }

    #[test]
    fn an_unsupported_bus_is_an_error() {
        let text = "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {name: default}\nspec:\n  kafka: {url: 'kafka:9092'}\n";
        let err = plan(&manifests(text), "default", &Settings::default()).unwrap_err();
        assert!(err.to_string().contains("Kafka (spec.kafka) is not supported"), "{err}");
    }
}
