//! The objects built for each kind, as pure functions of the manifests.

use argon_crds::manifest::{LoadReport, Manifest, load_text};
use serde_json::{Value, json};

use super::*;

fn load(text: &str) -> Manifest {
    let mut report = LoadReport::default();
    load_text("test.yaml", text, &mut report);
    assert!(!report.has_errors(), "{:?}", report.diagnostics);
    report.manifests.remove(0).manifest
}

fn eventsource(text: &str) -> EventSource {
    match load(text) {
        Manifest::EventSource(es) => *es,
        other => panic!("not an EventSource: {other:?}"),
    }
}

fn value(child: &Child) -> Value {
    match child {
        Child::ConfigMap(o) => serde_json::to_value(o),
        Child::Deployment(o) => serde_json::to_value(o),
        Child::Service(o) => serde_json::to_value(o),
        Child::StatefulSet(o) => serde_json::to_value(o),
    }
    .unwrap()
}

const TEMPLATED: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: hooks
  namespace: events
  uid: "1234"
  resourceVersion: "9"
  labels: {team: a}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    note: kept
spec:
  replicas: 2
  template:
    metadata:
      labels: {extra: pod}
      annotations: {scrape: "yes"}
    serviceAccountName: hooks
    nodeSelector: {disk: ssd}
    tolerations: [{key: dedicated, operator: Exists}]
    securityContext: {runAsUser: 1000}
    container:
      resources: {limits: {memory: 64Mi}}
      env: [{name: RUST_LOG, value: debug}]
      volumeMounts: [{name: scratch, mountPath: /scratch}]
      imagePullPolicy: Always
    volumes: [{name: scratch, emptyDir: {}}]
  service:
    metadata: {labels: {exposed: "true"}}
    ports: [{name: web, port: 80, targetPort: 12000}]
  webhook:
    a: {port: "12000", endpoint: /a, method: POST}
    b: {port: "12000", endpoint: /b, method: POST}
    c: {port: "12001", endpoint: /c, method: POST, authSecret: {name: tokens.v1, key: c}}
"#;

#[test]
fn the_pod_template_carries_the_manifest_settings() {
    let es = eventsource(TEMPLATED);
    assert_eq!(webhook_ports(&es), [12000, 12001]);
    let children = eventsource_children(&es, &exotic(""), &Settings::default()).unwrap();
    let kinds: Vec<_> = children.iter().map(Child::kind).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Service"]);
    for child in &children {
        let meta = child.meta();
        assert_eq!(meta.namespace.as_deref(), Some("events"));
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("EventSource", "hooks", "1234")
        );
        assert_eq!(meta.labels.as_ref().unwrap()[MANAGED_BY.0], MANAGED_BY.1);
    }

    let d = value(&children[1]);
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"];
    assert_eq!(pod["metadata"]["labels"]["extra"], "pod");
    assert_eq!(pod["metadata"]["labels"][INSTANCE_LABEL], "hooks");
    assert_eq!(pod["metadata"]["annotations"]["scrape"], "yes");
    assert_eq!(pod["spec"]["serviceAccountName"], "hooks");
    assert!(pod["spec"].get("automountServiceAccountToken").is_none());
    assert_eq!(pod["spec"]["nodeSelector"]["disk"], "ssd");
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["spec"]["securityContext"], json!({"runAsUser": 1000}));
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["resources"]["limits"]["memory"], "64Mi");
    assert_eq!(c["env"][0]["name"], "RUST_LOG");
    let ports: Vec<i64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [7777, 12000, 12001]);
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(
        mounts,
        ["/etc/argon/manifest", "/etc/argon/secrets/tokens.v1", "/scratch"]
    );
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    assert_eq!(volumes[1]["name"], "secret-tokens-v1");
    assert_eq!(volumes[1]["secret"]["secretName"], "tokens.v1");
    assert_eq!(volumes[2]["name"], "scratch");

    let svc = value(&children[2]);
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "web", "port": 80, "targetPort": 12000}])
    );
    assert_eq!(svc["metadata"]["labels"]["exposed"], "true");
    assert_eq!(svc["spec"]["selector"][INSTANCE_LABEL], "hooks");
    assert_eq!(
        d["spec"]["selector"]["matchLabels"], svc["spec"]["selector"],
        "the Service selects the Deployment's pods"
    );
}

#[test]
fn the_mounted_manifest_is_the_spec_without_server_bookkeeping_and_loads_back() {
    let es = eventsource(TEMPLATED);
    let children = eventsource_children(&es, &exotic(""), &Settings::default()).unwrap();
    let Child::ConfigMap(cm) = &children[0] else {
        panic!("a ConfigMap first")
    };
    let text = &cm.data.as_ref().unwrap()["eventsource.yaml"];
    assert!(
        !text.contains("resourceVersion") && !text.contains("uid") && !text.contains("last-applied"),
        "{text}"
    );
    assert!(text.contains("note: kept"), "{text}");
    let Manifest::EventSource(back) = load(text) else {
        panic!("not an EventSource")
    };
    assert_eq!(back.spec, es.spec);
}

#[test]
fn defaults_without_a_template_are_non_root_and_a_service_for_the_webhook_ports() {
    let es = eventsource(
        "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata: {name: w}\nspec:\n  webhook:\n    e: {port: '12000', endpoint: /e, method: POST}\n",
    );
    let children = eventsource_children(&es, &exotic(""), &Settings::default()).unwrap();
    let d = value(&children[1]);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(pod["containers"][0]["image"], Settings::default().image);
    assert_eq!(d["spec"]["replicas"], 1);
    assert!(d["metadata"].get("ownerReferences").is_none());
    let svc = value(&children[2]);
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http-12000", "port": 12000, "targetPort": 12000, "protocol": "TCP"}])
    );
}

#[test]
fn a_sensor_without_a_server_or_secrets_gets_neither_flag() {
    let Manifest::Sensor(sensor) = load(
        "apiVersion: argoproj.io/v1alpha1\nkind: Sensor\nmetadata: {name: s, namespace: n, uid: u}\nspec:\n  replicas: 1\n  revisionHistoryLimit: 2\n  dependencies: [{name: d, eventSourceName: e, eventName: x}]\n  triggers: [{template: {name: t, log: {}}}]\n",
    ) else {
        panic!("not a Sensor")
    };
    let children = sensor_children(&sensor, &exotic(""), &Settings::default()).unwrap();
    assert_eq!(children.len(), 2);
    let d = value(&children[1]);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 2);
    let args = d["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert_eq!(
        args,
        r#"["sensor","run","/etc/argon/manifest/sensor.yaml","--bus","nats://bus:4222","--eventbus","/etc/argon/manifest/eventbus.yaml","--metrics-addr","0.0.0.0:7777"]"#
    );
}

/// A `jetstreamExotic` EventBus at nats://bus:4222 with `extra` settings
/// (indented YAML lines under `jetstreamExotic`).
fn exotic(extra: &str) -> EventBus {
    bus(&format!("  jetstreamExotic:\n    url: nats://bus:4222\n{extra}"))
}

#[test]
fn the_eventbus_manifest_and_its_secrets_reach_the_pods() {
    let bus = exotic(
        "    accessSecret: {name: nats-auth, key: auth.yaml}\n    tls:\n      caCertSecret: {name: nats-tls, key: ca.crt}\n",
    );
    // The EventSource names a Secret too; the sensor none.
    let es = eventsource(TEMPLATED);
    let Manifest::Sensor(sensor) = load(
        "apiVersion: argoproj.io/v1alpha1\nkind: Sensor\nmetadata: {name: s, namespace: ev}\nspec:\n  dependencies: [{name: d, eventSourceName: e, eventName: x}]\n  triggers: [{template: {name: t, log: {}}}]\n",
    ) else {
        panic!("not a Sensor")
    };
    let es_children = eventsource_children(&es, &bus, &Settings::default()).unwrap();
    let sensor_children = sensor_children(&sensor, &bus, &Settings::default()).unwrap();
    for (children, own) in [(&es_children, Some("tokens.v1")), (&sensor_children, None)] {
        let Child::ConfigMap(cm) = &children[0] else {
            panic!("a ConfigMap first")
        };
        let Manifest::EventBus(back) = load(&cm.data.as_ref().unwrap()[EVENTBUS_FILE]) else {
            panic!("not an EventBus")
        };
        assert_eq!(back.spec, bus.spec);
        let pod = &value(&children[1])["spec"]["template"]["spec"];
        let args: Vec<&str> = pod["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let flag = |name: &str| args.iter().position(|a| *a == name).map(|i| args[i + 1]);
        assert_eq!(flag("--bus"), Some("nats://bus:4222"));
        assert_eq!(flag("--eventbus"), Some("/etc/argon/manifest/eventbus.yaml"));
        assert_eq!(flag("--secrets-dir"), Some(SECRETS_DIR));
        let mut secrets: Vec<String> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["secret"]["secretName"].as_str().map(str::to_string))
            .collect();
        secrets.sort();
        let mut expected = vec!["nats-auth".to_string(), "nats-tls".to_string()];
        expected.extend(own.map(str::to_string));
        expected.sort();
        assert_eq!(secrets, expected);
        let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
        for secret in ["nats-auth", "nats-tls"] {
            let mount = mounts
                .iter()
                .find(|m| m["mountPath"] == format!("{SECRETS_DIR}/{secret}"))
                .unwrap_or_else(|| panic!("{secret} not mounted: {mounts:?}"));
            assert_eq!(mount["readOnly"], true);
        }
    }
    // A change of the bus rolls the pods.
    let other = exotic("    accessSecret: {name: nats-auth, key: other.yaml}\n");
    let hash = |children: &[Child]| {
        value(&children[1])["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION].clone()
    };
    assert_ne!(
        hash(&es_children),
        hash(&eventsource_children(&es, &other, &Settings::default()).unwrap())
    );
}

fn bus(spec: &str) -> EventBus {
    match load(&format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {{name: main, namespace: ev, uid: u}}\nspec:\n{spec}"
    )) {
        Manifest::EventBus(b) => *b,
        other => panic!("not an EventBus: {other:?}"),
    }
}

#[test]
fn a_jetstream_bus_is_a_clustered_statefulset() {
    let b = bus(
        "  jetstream:\n    version: '2.10.10'\n    maxPayload: 2MB\n    settings: |\n      max_file_store: 10GB\n    startArgs: ['-D']\n    persistence: {storageClassName: fast, volumeSize: 5Gi}\n",
    );
    assert_eq!(bus_url(&b).unwrap(), "nats://eventbus-main-js-svc.ev.svc:4222");
    let children = eventbus_children(&b).unwrap();
    let Child::ConfigMap(cm) = &children[0] else {
        panic!("a ConfigMap first")
    };
    let conf = &cm.data.as_ref().unwrap()["nats.conf"];
    assert!(conf.contains("max_payload: 2MB\n"), "{conf}");
    assert!(conf.contains("  max_file_store: 10GB\n"), "{conf}");
    assert!(conf.contains("name: eventbus-main\n"), "{conf}");
    for i in 0..3 {
        assert!(
            conf.contains(&format!("nats://eventbus-main-js-{i}.eventbus-main-js-svc.ev.svc:6222")),
            "{conf}"
        );
    }
    let sts = value(&children[1]);
    assert_eq!(sts["spec"]["serviceName"], "eventbus-main-js-svc");
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nats:2.10.10-alpine");
    assert_eq!(c["args"], json!(["--config", "/etc/nats-config/nats.conf", "-D"]));
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["spec"]["storageClassName"], "fast");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    let svc = value(&children[2]);
    assert_eq!(svc["spec"]["clusterIP"], "None");
    assert_eq!(svc["spec"]["publishNotReadyAddresses"], true);
}

#[test]
fn a_single_server_bus_has_no_cluster_and_keeps_its_data_in_an_empty_dir() {
    let b = bus("  jetstream: {replicas: 1}\n");
    let children = eventbus_children(&b).unwrap();
    let Child::ConfigMap(cm) = &children[0] else {
        panic!("a ConfigMap first")
    };
    assert!(!cm.data.as_ref().unwrap()["nats.conf"].contains("cluster"));
    let sts = value(&children[1]);
    assert!(sts["spec"].get("volumeClaimTemplates").is_none());
    assert_eq!(
        sts["spec"]["template"]["spec"]["volumes"][1],
        json!({"name": "data", "emptyDir": {}})
    );
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("nats:{DEFAULT_NATS_VERSION}-alpine")
    );
}

#[test]
fn an_exotic_bus_has_no_objects_and_other_kinds_are_errors() {
    let exotic = bus("  jetstreamExotic: {url: 'nats://ext:4222'}\n");
    assert!(eventbus_children(&exotic).unwrap().is_empty());
    assert_eq!(bus_url(&exotic).unwrap(), "nats://ext:4222");
    assert_eq!(
        bus_config(&exotic).unwrap().jetstream.unwrap().url.as_deref(),
        Some("nats://ext:4222")
    );
    let no_url = bus("  jetstreamExotic: {}\n");
    assert!(bus_url(&no_url).unwrap_err().to_string().contains("needs a url"));
    let streaming = bus("  nats: {native: {}}\n");
    assert!(
        eventbus_children(&streaming)
            .unwrap_err()
            .to_string()
            .contains("NATS Streaming")
    );
}

#[test]
fn long_names_stay_dns_labels_and_distinct() {
    assert_eq!(dns_label("short", "eventsource"), "short-eventsource");
    let a = dns_label(&"a".repeat(60), "eventsource-svc");
    let b = dns_label(&format!("{}b", "a".repeat(59)), "eventsource-svc");
    assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
    assert!(a.ends_with("-eventsource-svc"));
    assert_ne!(a, b);
}
